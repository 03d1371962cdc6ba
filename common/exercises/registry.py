"""The registry of exercises: what a paper file declares (``exercise``, ``Case``, ``Mutant``,
``Accepted``) and how ``check`` finds it (``list_exercises``, ``get_exercise``). Nothing here runs
a block: ``running`` does that, ``stages`` compares, ``report`` says what it found."""
from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class Case:
    """One configuration to check. ``args``/``kwargs``: the arguments of the factory (and of the
    learner's class); ``input_shape``: the batch fed to the block (random normal values times
    ``scale``); ``tags``: what the case exercises ("stride", "channels", "shortcut",
    "batch_norm", or the exercise's own), used to say which kind of case fails."""

    label: str
    args: tuple
    input_shape: tuple
    kwargs: Mapping = field(default_factory=dict)
    tags: tuple = ()
    scale: float = 1.0


@dataclass(frozen=True)
class Mutant:
    """A known bug: the reference with one classic mistake, and the diagnosis a learner reads
    when their block behaves exactly like it. Give either ``build`` (a factory with the
    reference's signature that returns the buggy block) or ``forward`` (a function
    ``(block, x) -> y`` used as the forward of the reference block: the bug is in the forward)."""

    title: str
    diagnosis: str
    build: Optional[Callable[..., nn.Module]] = None
    forward: Optional[Callable[[nn.Module, torch.Tensor], torch.Tensor]] = None

    def __post_init__(self):
        if (self.build is None) == (self.forward is None):
            raise ValueError(f"{type(self).__name__} {self.title!r}: give exactly one of build= "
                             "or forward=.")


@dataclass(frozen=True)
class Accepted(Mutant):
    """An accepted variant: another reading of the paper that must pass, given like a
    ``Mutant`` (the reference with one change). ``diagnosis`` is the one-line note the learner
    reads when their block behaves exactly like it (what the paper allows, and the course's
    choice). ``check`` tries the accepted variants only when a block differs from the
    reference."""


@dataclass(frozen=True, eq=False)
class Exercise:
    """A registered exercise; see the package docstring. A block takes one tensor and returns
    one. ``train_mode``: also compare in train mode (None: wherever the reference is
    deterministic in train mode, told by running it twice; False for a block that is random in
    training on purpose). ``same_names``: the learner's parameter and buffer names must be the
    reference's (for blocks whose point is to load torchvision's weights). ``accepted``:
    ``Accepted`` variants (other readings of the paper that pass, with a note).
    ``not_a_module``: what to say when the learner's factory returns something that is not a
    module (for an exercise that wraps a function, such as ``as_block``). ``hints``: texts for
    the exercise's tags, or replacing a generic pattern's text (a key of ``hints.HINTS``).

    The record holds what the paper file declares, nothing computed: the reference's runs are
    cached by ``transplant`` (keyed by the exercise), so a record is never changed."""

    name: str
    reference: Callable[..., nn.Module]
    cases: tuple
    paper: str
    mutants: tuple = ()
    hints: Mapping = field(default_factory=dict)
    train_mode: Optional[bool] = None
    same_names: bool = False
    accepted: tuple = ()
    not_a_module: str = ""

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[-1]

    @property
    def signature(self) -> str:
        """The signature the learner implements, e.g. ``BasicBlock(in_channels, ...)``."""
        sig = inspect.signature(self.reference)
        params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
        sig = sig.replace(parameters=params, return_annotation=inspect.Signature.empty)
        return f"{self.short_name}{sig}"

    def call(self, case: Case, who: str = "") -> str:
        """``BasicBlock(in_channels=16, out_channels=32, stride=2)`` for a case."""
        bound = inspect.signature(self.reference).bind(*case.args, **case.kwargs)
        args = ", ".join(f"{k}={v!r}" for k, v in bound.arguments.items())
        return f"{who or self.short_name}({args})"


_REGISTRY: dict[str, Exercise] = {}


def register(ex: Exercise) -> Exercise:
    """Add an exercise to the registry (``exercise`` is the decorator form)."""
    if "." not in ex.name:
        raise ValueError(f"Exercise names are '<paper>.<block>', e.g. 'resnet.BasicBlock'; "
                         f"got {ex.name!r}.")
    old = _REGISTRY.get(ex.name)
    if old is not None and old.reference.__module__ != ex.reference.__module__:
        raise ValueError(f"Exercise {ex.name!r} is already registered by "
                         f"{old.reference.__module__}: choose another name.")
    if not ex.cases:
        raise ValueError(f"Exercise {ex.name!r} needs at least one Case.")
    sig = inspect.signature(ex.reference)
    for case in ex.cases:
        try:
            sig.bind(*case.args, **case.kwargs)
        except TypeError as err:
            raise ValueError(f"Exercise {ex.name!r}, case {case.label!r}: its arguments do not "
                             f"fit the reference's signature {ex.signature}: {err}.") from None
    titles = [m.title for m in (*ex.mutants, *ex.accepted)]
    if len(set(titles)) != len(titles):
        raise ValueError(f"Exercise {ex.name!r}: two known bugs (or accepted variants) have the "
                         "same title.")
    _REGISTRY[ex.name] = ex
    return ex


def exercise(name: str, *, cases: Sequence[Case], paper: str, mutants: Sequence[Mutant] = (),
             hints: Optional[Mapping[str, str]] = None, train_mode: Optional[bool] = None,
             same_names: bool = False, accepted: Sequence[Accepted] = (), not_a_module: str = ""):
    """Decorator: register the decorated reference factory as exercise ``name``."""
    def deco(reference):
        register(Exercise(name, reference, tuple(cases), paper, tuple(mutants), dict(hints or {}),
                          train_mode, same_names, tuple(accepted), not_a_module))
        return reference
    return deco


def mutant_factory(ex: Exercise, m: Mutant) -> Callable[..., nn.Module]:
    """The factory of a known bug or an accepted variant: its ``build``, or the reference with
    its ``forward`` bound in."""
    if m.build is not None:
        return m.build
    reference = ex.reference             # not ex: the runs cached per exercise must not keep it

    def build(*args, **kwargs):
        block = reference(*args, **kwargs)
        block.forward = types.MethodType(m.forward, block)
        return block
    return build


_PACKAGE = __name__.rpartition(".")[0]             # common.exercises
#: The engine's modules (every other module of the package is a paper's file of exercises).
ENGINE = frozenset({"registry", "running", "transplant", "hints", "stages", "report"})


def _load_all() -> None:
    """Import every paper file of the package (each registers its exercises)."""
    for m in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not m.name.startswith("_") and m.name not in ENGINE:
            importlib.import_module(f"{_PACKAGE}.{m.name}")


def list_exercises() -> list[str]:
    """The names of every exercise of the course (every paper file of this package)."""
    _load_all()
    return sorted(_REGISTRY)


def get_exercise(name: str) -> Exercise:
    """The registered exercise ``name``; an unknown name is a ValueError listing them all."""
    names = list_exercises()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"Unknown exercise {name!r}{hint}. The exercises are: "
                         + ", ".join(names) + ".")
    return _REGISTRY[name]
