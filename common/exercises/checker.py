"""The checker's engine: registration (``exercise``, ``Case``, ``Mutant``, ``Accepted``), running
a learner's block and the reference on each case, comparing them stage by stage, and the report
in words. The package's docstring (``common.exercises``) says what ``check`` compares and how a
paper registers its exercises; the paper files (``common/exercises/<paper>.py``) hold them."""
from __future__ import annotations

import contextlib
import copy
import difflib
import importlib
import inspect
import itertools
import math
import pkgutil
import re
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import nn

__all__ = ["check", "diagnose", "list_exercises", "get_exercise", "exercise", "register",
           "Case", "Mutant", "Accepted", "Exercise", "Report", "TAG_HINTS"]

#: What it means when exactly the cases with a tag fail (an exercise's ``hints`` override these).
TAG_HINTS = {
    "stride": "Right at stride 1, wrong at stride 2: the stride is in the wrong convolution (or "
              "the shortcut subsamples other pixels than the residual branch does).",
    "channels": "Right where the number of channels stays the same, wrong where it changes: "
                "look at how your block (its shortcut in particular) changes the channels.",
    "shortcut": "Right where the shortcut is the identity, wrong where the shortcut has to change "
                "the shape: look at your shortcut (the projection, or the subsampling and zero "
                "padding).",
    "batch_norm": "Right without batch norm, wrong with it: check the order (conv, then batch "
                  "norm, then ReLU) and that each batch norm follows its own conv.",
}

ATOL, RTOL = 1e-5, 1e-4          # outputs count as equal within these (torch.allclose)
_MAX_MAPPINGS = 8                # ways of copying the weights tried per case
_SEED = 0
_TORCH_DIR = str(Path(torch.__file__).resolve().parent)


# --------------------------------------------------------------------------- the registration API

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


@dataclass
class Exercise:
    """A registered exercise; see the module docstring. A block takes one tensor and returns
    one. ``train_mode``: also compare in train mode (None: when the reference has batch norm;
    give False for a block that is random in training, such as dropout or stochastic depth,
    or give cases where its probability is 0). ``same_names``: the learner's parameter and
    buffer names must be the reference's (for blocks whose point is to load torchvision's
    weights). ``accepted``: ``Accepted`` variants (other readings of the paper that pass, with a
    note). ``not_a_module``: what to say when the learner's factory returns something that is
    not a module (for an exercise that wraps a function, such as ``as_block``). ``hints``: texts
    for the exercise's tags, or replacing a generic pattern's text (a key of ``_HINTS``)."""

    name: str
    reference: Callable[..., nn.Module]
    cases: tuple
    paper: str
    mutants: tuple = ()
    hints: dict = field(default_factory=dict)
    train_mode: Optional[bool] = None
    same_names: bool = False
    accepted: tuple = ()
    not_a_module: str = ""
    _ref_cache: dict = field(default_factory=dict, repr=False)
    _mutant_cache: dict = field(default_factory=dict, repr=False)
    _variant_cache: dict = field(default_factory=dict, repr=False)

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
            raise ValueError(f"Exercise {ex.name!r}, case {case.label!r}: its arguments do not fit "
                             f"the reference's signature {ex.signature}: {err}.") from None
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


_PACKAGE = __name__.rpartition(".")[0]             # common.exercises
_ENGINE = {__name__.rpartition(".")[2]}             # this file: not a paper's


def _load_all() -> None:
    """Import every paper file of the package (each registers its exercises)."""
    for m in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not m.name.startswith("_") and m.name not in _ENGINE:
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


# --------------------------------------------------------------------------- running one block

@dataclass
class _Layer:
    """A module that owns parameters or buffers, as the report shows it."""

    name: str
    module: nn.Module
    keys: list                  # its state_dict keys: parameters first, then buffers
    shapes: tuple               # their shapes, in the same order
    n_params: int
    calls: int
    signature: tuple            # what must be equal for two layers to be "the same layer"
    reg_index: int              # position in model.named_modules(): the order of definition
    in_shape: tuple = ()        # the shape of its first input (when forward uses it)

    @property
    def kind(self) -> str:
        """Its type, with "FC" for a fully connected layer: an nn.Linear, or a convolution that
        sees a 1x1 map (an SE block's FCs written as 1x1 convolutions)."""
        m = self.module
        if isinstance(m, nn.Linear) or (isinstance(m, nn.modules.conv._ConvNd)
                                        and len(self.in_shape) > 2
                                        and all(s == 1 for s in self.in_shape[2:])):
            return "FC"
        return type(m).__name__

    @property
    def desc(self) -> str:
        return f"{self.name or '(the block itself)'}: {_describe(self.module)}"


@dataclass
class _Run:
    """What building and running one block on one case showed."""

    model: Optional[nn.Module] = None
    error: Optional[BaseException] = None
    where: str = ""             # "building" or "running" when error is set
    not_done: bool = False
    out: Optional[torch.Tensor] = None
    layers: list = field(default_factory=list)        # in order of first use, then unused ones
    input_modified: bool = False


def _describe(m: nn.Module) -> str:
    if isinstance(m, nn.modules.conv._ConvNd):
        k = "x".join(map(str, m.kernel_size))
        d = f"{type(m).__name__} {m.in_channels}→{m.out_channels}, {k}"
        if any(s != 1 for s in m.stride):
            d += f", stride {m.stride[0] if len(set(m.stride)) == 1 else m.stride}"
        if m.groups != 1:
            d += f", groups {m.groups}"
        return d + (", with bias" if m.bias is not None else ", no bias")
    if isinstance(m, nn.modules.batchnorm._NormBase):
        d = f"{type(m).__name__}({m.num_features})"
        if not m.affine:
            d += ", affine=False"
        if not m.track_running_stats:
            d += ", no running statistics"
        return d
    if isinstance(m, nn.Linear):
        return f"Linear {m.in_features}→{m.out_features}" + (
            ", with bias" if m.bias is not None else ", no bias")
    shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in
                       [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)])
    return f"{type(m).__name__} ({shapes})"


def _value_shape(shape) -> tuple:
    """The shape that decides whether two tensors hold the same values: a 1x1 convolution's
    weight (C_out, C_in, 1, 1) is a fully connected layer's (C_out, C_in), so an SE block or a
    classifier written with ``nn.Linear`` matches one written with 1x1 ``nn.Conv2d`` (weights
    are reshaped when copied)."""
    shape = tuple(shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def _layers(model: nn.Module, order: dict) -> list:
    """Modules with state (parameters or persistent buffers), in order of first use in forward
    (``order``: name -> (first call index, number of calls, first input's shape)), unused ones
    last."""
    state = model.state_dict(keep_vars=True)
    out = []
    for reg_index, (name, m) in enumerate(model.named_modules()):
        prefix = f"{name}." if name else ""
        local = [n for n, _ in m.named_parameters(recurse=False)] + \
                [n for n, _ in m.named_buffers(recurse=False)]
        keys = [prefix + n for n in local if prefix + n in state]
        if not keys:
            continue
        shapes = tuple(_value_shape(state[k].shape) for k in keys)
        n_params = sum(p.numel() for p in m.parameters(recurse=False))
        first, calls, in_shape = order.get(name, (math.inf, 0, ()))
        kinds = tuple("p" if k[len(prefix):] in m._parameters else "b" for k in keys)
        out.append((first, reg_index, _Layer(name, m, keys, shapes, n_params, calls,
                                              tuple(zip(kinds, shapes)), reg_index, in_shape)))
    return [layer for *_, layer in sorted(out, key=lambda t: (t[0], t[1]))]


def _is_not_done(err: BaseException) -> bool:
    """A NotImplementedError raised by the learner's own code (the skeleton), or torch's
    complaint that forward is missing; not one raised inside torch for an unsupported op."""
    if not isinstance(err, NotImplementedError):
        return False
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return True
    last = frames[-1]
    return last.name == "_forward_unimplemented" or not last.filename.startswith(_TORCH_DIR)


def _where_in_your_code(err: BaseException) -> str:
    """The last line of the traceback outside torch and this file: where the learner looks."""
    for fr in reversed(traceback.extract_tb(err.__traceback__)):
        if not fr.filename.startswith(_TORCH_DIR) and fr.filename != __file__:
            return f" (in {fr.name}, line {fr.lineno}: {(fr.line or '').strip()})"
    return ""


def _input(case: Case) -> torch.Tensor:
    g = torch.Generator().manual_seed(_SEED + 1)
    return torch.randn(*case.input_shape, generator=g) * case.scale


def _forward(model: nn.Module, x: torch.Tensor, seed: int = _SEED) -> torch.Tensor:
    """``model(x)`` without autograd, seeded (a random block draws the same numbers every time
    unless ``seed`` changes), leaving the learner's random state alone."""
    with torch.no_grad(), _quiet_rng(seed):
        return model(x)


def _grads(model: nn.Module, case: Case) -> tuple:
    """One backward pass in eval mode: (the input's gradient, {parameter name: its gradient})
    for a fixed random weighting of the outputs; a gradient that does not exist is None."""
    model.eval()
    x = _input(case).requires_grad_(True)
    try:
        with torch.enable_grad(), _quiet_rng():
            out = model(x)
            w = torch.randn(out.shape, generator=torch.Generator().manual_seed(_SEED + 2))
            if out.requires_grad:
                (out * w).sum().backward()
        grads = {n: None if p.grad is None else p.grad.detach().clone()
                 for n, p in model.named_parameters()}
    finally:
        model.zero_grad(set_to_none=True)
    return (None if x.grad is None else x.grad.detach().clone()), grads


def _grad_close(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> bool:
    """Gradients equal up to rounding (a missing gradient counts as zeros)."""
    if a is None and b is None:
        return True
    if a is None or b is None:
        t = b if a is None else a
        return not bool(t.abs().max() > 1e-6) if t.numel() else True
    if a.numel() != b.numel():
        return False
    a = a.reshape(b.shape)
    return bool((a - b).abs().max() <= 1e-4 * b.abs().max() + 1e-6) if b.numel() else True


def _elsewhere(model: nn.Module, case: Case, in_place: bool = False) -> Optional[str]:
    """Run the block (a copy, unless ``in_place``) in bfloat16, and on the learner's GPU in
    float32 when CUDA is already in use: what went wrong, or None. A tensor made inside forward
    without ``dtype=x.dtype`` (say ``torch.zeros(n, c, h, w)``, float32 on the CPU whatever x
    is) turns the output into float32 (or fails); one made without ``device=x.device`` fails
    on the GPU. (The ``meta`` device would expose the device too, but its first use imports
    torch's Python decompositions: seconds.)"""
    targets = [("cpu", torch.bfloat16)]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        targets.append(("cuda", torch.float32))
    for device, dtype in targets:
        where = f"on {device} in {str(dtype).replace('torch.', '')}"
        try:
            moved = (model if in_place and device == "cpu" else copy.deepcopy(model)).to(
                device=device, dtype=dtype)
            x = _input(case).to(device=device, dtype=dtype)
            out = _forward(moved.eval(), x)
        except Exception as err:                   # noqa: BLE001 (reported to the learner)
            msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
            return f"{where}: {type(err).__name__}: {msg}{_where_in_your_code(err)}"
        if not isinstance(out, torch.Tensor):
            return f"{where}: forward returned {type(out).__name__}"
        if out.device.type != device or out.dtype != dtype:
            return (f"{where}: the output is on {out.device.type} in "
                    f"{str(out.dtype).replace('torch.', '')}")
    return None


@contextlib.contextmanager
def _one_thread():
    """These blocks are tiny: one thread is faster than several (and far faster on a busy
    machine, where threads wait for each other)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@contextlib.contextmanager
def _quiet_rng(seed: int = _SEED):
    """Seeded. ``diagnose`` keeps the learner's random state (``_learners_rng_kept``) around
    the whole check: one save and restore, not one per forward pass (they cost more than these
    small blocks' forward passes)."""
    torch.manual_seed(seed)
    yield


@contextlib.contextmanager
def _learners_rng_kept():
    with torch.random.fork_rng(devices=[]):
        yield


def _run(factory: Callable, case: Case, model: Optional[nn.Module] = None) -> _Run:
    """Build (unless given) and run one block in eval mode, recording which modules forward uses."""
    r = _Run()
    try:
        with _quiet_rng():
            if model is None:     # a copy of the arguments: a block may change a list it gets
                model = factory(*copy.deepcopy(case.args), **copy.deepcopy(dict(case.kwargs)))
    except Exception as err:                       # noqa: BLE001 (reported to the learner)
        r.error, r.where, r.not_done = err, "building", _is_not_done(err)
        return r
    if not isinstance(model, nn.Module):
        r.error = TypeError(f"it returned {type(model).__name__}, not an nn.Module"
                            + (": wrap the layers in nn.Sequential(*layers)"
                               if isinstance(model, (list, tuple)) else ""))
        r.error.not_a_module = True
        r.where = "building"
        return r
    r.model = model.eval()
    order: dict = {}

    def hook(name, module, args):
        shape = tuple(args[0].shape) if args and isinstance(args[0], torch.Tensor) else ()
        first, calls, in_shape = order.get(name, (len(order), 0, shape))
        order[name] = (first, calls + 1, in_shape)

    handles = [m.register_forward_pre_hook(lambda *a, n=name: hook(n, *a))
               for name, m in model.named_modules()]
    x = _input(case)
    x_in = x.clone()
    try:
        out = _forward(model, x_in)
    except Exception as err:                       # noqa: BLE001
        r.error, r.where, r.not_done = err, "running", _is_not_done(err)
        return r
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, torch.Tensor):
        r.error = TypeError(f"forward returned {type(out).__name__}, not a tensor")
        r.where = "running"
        return r
    r.out, r.layers = out, _layers(model, order)
    r.input_modified = not torch.equal(x_in, x)
    return r


# --------------------------------------------------------------------------- weights and outputs

def _mappings(cand: list, ref: list):
    """Ways to copy the reference's state into the candidate, ``(how, {cand key: ref key})``,
    each with every shape equal: by name when every name and shape is the reference's; by
    position, in order of use in forward, then in order of definition; then by matching each
    reference layer to a candidate layer of the same shapes, trying the orders of the layers
    that share their shapes (a block that computes its shortcut first, say)."""
    seen = set()

    def new(mapping):
        key = tuple(sorted(mapping.items()))
        fresh = key not in seen
        seen.add(key)
        return fresh

    ck = {k: s for layer in cand for k, s in zip(layer.keys, layer.shapes)}
    rk = {k: s for layer in ref for k, s in zip(layer.keys, layer.shapes)}
    if ck == rk and new(m := {k: k for k in rk}):
        yield "by name", m

    def flat(layers):
        return [(k, s) for layer in layers for k, s in zip(layer.keys, layer.shapes)]

    def by_definition(layers):
        return sorted(layers, key=lambda layer: layer.reg_index)

    for how, c, r in [("by position, in order of use in forward", cand, ref),
                      ("by position, in order of definition", by_definition(cand),
                       by_definition(ref))]:
        fc, fr = flat(c), flat(r)
        if len(fc) == len(fr) and all(a[1] == b[1] for a, b in zip(fc, fr)):
            if new(m := {a[0]: b[0] for a, b in zip(fc, fr)}):
                yield how, m
    groups_r, groups_c = {}, {}
    for layer in ref:
        groups_r.setdefault(layer.signature, []).append(layer)
    for layer in cand:
        groups_c.setdefault(layer.signature, []).append(layer)
    if {s: len(g) for s, g in groups_r.items()} != {s: len(g) for s, g in groups_c.items()}:
        return
    sigs = list(groups_r)
    orders = [list(itertools.islice(itertools.permutations(groups_c[s]), _MAX_MAPPINGS))
              for s in sigs]
    for combo in itertools.islice(itertools.product(*orders), _MAX_MAPPINGS):
        m = {}
        for s, layers in zip(sigs, combo):
            for c, r in zip(layers, groups_r[s]):
                m.update(zip(c.keys, r.keys))
        if new(m):
            yield "by position, matching layers of the same shapes", m


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=ATOL, rtol=RTOL))


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item() if a.shape == b.shape and a.numel() else math.inf


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@dataclass
class _Ref:
    """The reference block of one case, with random weights and batch-norm statistics."""

    run: _Run
    state: dict
    out_train: torch.Tensor
    buffers_train: dict
    case: Case
    _lazy: dict = field(default_factory=dict)

    @property
    def grads(self) -> tuple:
        """(the input's gradient, {state key: gradient}): see _grads (computed when needed)."""
        if "grads" not in self._lazy:
            self._lazy["grads"] = _grads(self.run.model, self.case)
        return self._lazy["grads"]

    @property
    def elsewhere_ok(self) -> bool:
        """The reference runs in bfloat16 (and on the GPU in use): see _elsewhere."""
        if "elsewhere" not in self._lazy:
            self._lazy["elsewhere"] = _elsewhere(self.run.model, self.case) is None
        return self._lazy["elsewhere"]


def _reference(ex: Exercise, i: int) -> _Ref:
    if i not in ex._ref_cache:
        from common.inspection import random_reference

        case = ex.cases[i]
        with _quiet_rng():
            model = random_reference(lambda: ex.reference(*copy.deepcopy(case.args),
                                                      **copy.deepcopy(dict(case.kwargs))),
                                     seed=_SEED)
        run = _run(ex.reference, case, model)
        if run.error is not None:
            raise RuntimeError(f"The reference of exercise {ex.name!r} fails in case "
                               f"{case.label!r}: {run.error!r}") from run.error
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        trained = copy.deepcopy(model).train()
        out_train = _forward(trained, _input(case))
        ex._ref_cache[i] = _Ref(run, state, out_train, dict(trained.state_dict()), case)
    return ex._ref_cache[i]


class _Outputs:
    """A block's eval-mode outputs with the reference's weights copied in, under each way of
    copying that fits (up to ``limit``; stops at the first whose outputs are the reference's),
    and, on demand, its train-mode outputs and updated buffers under one of them."""

    def __init__(self, run: _Run, ref: _Ref, case: Case, limit: int = _MAX_MAPPINGS):
        self.model, self.ref, self.case = run.model, ref, case
        self.maps, self.eval, self._train, self._grads = [], [], {}, {}
        for how, mapping in _mappings(run.layers, ref.run.layers):
            try:
                self._load(mapping)
                out = _forward(self.model.eval(), _input(case))
            except Exception:                      # noqa: BLE001 (a mapping that cannot be used)
                continue
            self.maps.append((how, mapping))
            self.eval.append(out)
            if _close(out, ref.run.out) or len(self.maps) >= limit:
                break

    def _load(self, mapping: dict) -> None:
        own = self.model.state_dict()
        self.model.load_state_dict({c: self.ref.state[r].clone().reshape(own[c].shape)
                                    for c, r in mapping.items()}, strict=True)

    def train(self, k: int) -> tuple:
        """(output, {reference key: state after the forward pass}) in train mode, mapping k."""
        if k not in self._train:
            mapping = self.maps[k][1]
            self._load(mapping)
            try:
                out = _forward(self.model.train(), _input(self.case))
            finally:
                self.model.eval()
            state = self.model.state_dict()
            self._train[k] = (out, {r: state[c].detach().clone().reshape(self.ref.state[r].shape)
                                    for c, r in mapping.items()})     # nn.Linear's as 1x1 conv's
        return self._train[k]

    def grads(self, k: int) -> tuple:
        """(the input's gradient, {reference key: gradient}) in eval mode under mapping k, and
        whether the output required grad at all."""
        if k not in self._grads:
            mapping = self.maps[k][1]
            self._load(mapping)
            try:
                x_grad, grads = _grads(self.model, self.case)
                ok = True
            except Exception:                      # noqa: BLE001 (a backward pass that fails)
                x_grad, grads, ok = None, {}, False
            self._grads[k] = (x_grad, {mapping[n]: g for n, g in grads.items() if n in mapping},
                              ok)
        return self._grads[k]


# --------------------------------------------------------------------------- the report

@dataclass
class Report:
    """What ``check`` found. ``status``: "passed", "not done" or "failed"; ``stage``: where it
    failed ("build", "shape", "parameters", "transplant", "outputs", "train", "names");
    ``known_bugs``: titles of the known bugs the block behaves exactly like; ``hints``: keys of
    the generic patterns recognised (see ``_HINTS``); ``accepted``: the title of the accepted
    variant a passing block behaves like (None when it behaves like the reference); ``text``:
    what is printed or raised."""

    name: str
    status: str
    text: str
    stage: Optional[str] = None
    known_bugs: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    case: Optional[str] = None
    accepted: Optional[str] = None

    def __str__(self) -> str:
        return self.text


_HINTS = {
    "activation-after": "Your output is never negative where the reference's is: an activation "
                        "(ReLU) is applied after the last projection or addition, where the paper "
                        "has none.",
    "activation-missing": "Your output has negative values where the reference's never has: the "
                          "last activation (the ReLU at the end of the block) is missing.",
    "small-difference": "The outputs are close but not equal (the largest difference is under 1% "
                        "of the output's range): a numerical detail differs, such as batch "
                        "norm's eps (PyTorch's default 1e-5) or a constant of a normalisation "
                        "layer.",
    "small-difference-no-bn": "The outputs are close but not equal (the largest difference is "
                              "under 5% of the output's range): a function is approximated, "
                              "such as a hard sigmoid (F.hardsigmoid, nn.Hardsigmoid: piecewise "
                              "linear) as the gate where the paper has the sigmoid, or a hard "
                              "swish for SiLU.",
    "input-modified": "An in-place operation changed the tensor your block was given (an "
                      "in-place ReLU on x, `x += ...`, `x *= ...`): whatever uses x after it "
                      "(a residual block's shortcut, the dense block that concatenates every "
                      "earlier map, the caller) sees the modified tensor, and in training "
                      "autograd fails where the previous layer saved it for the backward pass. "
                      "Compute new tensors (`out = out + identity`, `x * s`), leave x as it is.",
    "train-only": "The outputs agree in eval mode but not in train mode: something behaves "
                  "differently during training, such as a batch norm that uses running "
                  "statistics while training, or dropout; or a batch norm that sees other "
                  "pixels than the reference's (a stride moved to another conv).",
    "stride-late": "Your stride sits in a 1x1 conv after the 3x3 ({names}). Subsampling after a "
                   "1x1 conv gives the same outputs in eval mode as subsampling before it (batch "
                   "norm with running statistics and ReLU act pixel by pixel), but the batch "
                   "norms in between then see the full-size maps, so their batch statistics, "
                   "and the outputs in training, differ; it also costs 4x the multiply-adds "
                   "there. Put the stride in the 3x3 (depthwise) conv.",
    "random-in-eval": "Dropout or stochastic depth that stays on in eval mode: F.dropout(x, p) "
                      "(its default is training=True) and torchvision.ops.stochastic_depth(x, "
                      "p, mode, training=True) are random whatever the module's mode. Pass "
                      "training=self.training, or use the modules (nn.Dropout, "
                      "torchvision.ops.StochasticDepth), which follow model.eval().",
    "no-autograd": "No gradient flows through your block at all: its forward runs under "
                   "torch.no_grad() (or detaches its output), so nothing before or inside it "
                   "would learn.",
    "no-gradient": "No gradient reaches {names}: their output is computed under "
                   "torch.no_grad() or from a detached tensor (.detach(), .data), so in "
                   "training these layers would never learn (in an SE block: the gradient "
                   "does not flow through your SE branch).",
    "input-gradient": "The gradient with respect to your block's input differs while every "
                      "parameter's agrees: a path from the input to the output is cut "
                      "(.detach(), .data, torch.no_grad()). In a residual block that is the "
                      "shortcut: `identity = x.clone().detach()` gives the same outputs but "
                      "the gradient does not flow through your shortcut, which removes the "
                      "gradient highway, the point of the block. `identity = x` is safe: x is "
                      "never modified.",
    "gradient-differs": "The gradients of {names} differ although the outputs agree: part of "
                        "the path from them to the output is cut (.detach(), .data, "
                        "torch.no_grad()).",
    "device": "A tensor created inside forward without the input's device and dtype "
              "(`torch.zeros(n, c, h, w)` lives on the CPU in float32 whatever x is): on a GPU "
              "the block fails, in mixed precision it changes the dtype. Create it from x: "
              "`x.new_zeros(n, c, h, w)`, `torch.zeros_like(...)`, or `torch.zeros(..., "
              "device=x.device, dtype=x.dtype)`; or pad with `F.pad`.",
    "se-position": "Your SE block sits {yours}; the reference's {ref}: check after which layer "
                   "the SE block acts and how many channels it rescales.",
    "bn-momentum": "The outputs agree, but after one training step the batch norms' running "
                   "statistics differ: check the batch norm's momentum (PyTorch's 0.1 is the "
                   "0.9 of TensorFlow/Keras: new = (1 - momentum) * old + momentum * batch).",
    "width-x4": "A factor of 4 in the parameters: a bottleneck's width multiplied (or divided) by "
                "the expansion factor 4 where it should not be. Check which layers work at the "
                "narrow width and which only at the wide one.",
    "conv-bias": "Your convolutions {yours} (nn.Conv2d has bias=True by default). Whether a "
                 "conv has one is the reference's choice: before a batch norm a bias is "
                 "redundant (the batch norm's shift replaces it), but weights saved with one "
                 "(torchvision's vgg*_bn) need it to load; see the exercise's statement.",
    "unused-layer": "Your block has layers that forward never uses: {names}.",
    "shared-layer": "Your forward uses the same layer twice ({names}): every conv and batch norm "
                    "of the block needs its own module, with its own weights.",
    "kernel-size": "A kernel size differs: {pairs}.",
    "padding": "The height and width shrink or grow by a few pixels: the padding. A KxK conv "
               "keeps the size with padding K // 2 (1 for 3x3, 0 for 1x1).",
    "spatial-larger": "Your output is {factor}x larger in height and width: a stride (or a "
                      "pooling) is missing.",
    "spatial-smaller": "Your output is {factor}x smaller in height and width: a stride (or a "
                       "pooling) too many.",
    "channels-x4": "Your output has 4x the reference's channels (or a quarter of them): the "
                   "bottleneck width and the expansion factor 4 are mixed up.",
    "channel-mismatch": "A conv receives another number of channels than it was built for: check "
                        "each layer's in_channels against the output of the layer before it.",
    "shape-mismatch": "Two tensors of different shapes meet (usually the shortcut and the "
                      "residual branch at the addition): in this case the shortcut has to change "
                      "the shape exactly as the branch does.",
}


class _Failure(Exception):
    def __init__(self, stage, what, details="", case=None, known=(), hints=()):
        super().__init__(what)
        self.stage, self.what, self.details, self.case = stage, what, details, case
        self.known, self.hints = list(known), list(hints)


def _mutant_factory(ex: Exercise, m: Mutant) -> Callable:
    if m.build is not None:
        return m.build

    def build(*args, **kwargs):
        block = ex.reference(*args, **kwargs)
        block.forward = types.MethodType(m.forward, block)
        return block
    return build


def _mutant_runs(ex: Exercise, j: int) -> list:
    """Runs of known bug ``j`` on every case, with its outputs under the reference's weights."""
    if j not in ex._mutant_cache:
        factory = _mutant_factory(ex, ex.mutants[j])
        runs = []
        for i, case in enumerate(ex.cases):
            run = _run(factory, case)
            outs = None
            if run.error is None:
                outs = _Outputs(run, _reference(ex, i), case, limit=1)
            runs.append((run, outs))
        ex._mutant_cache[j] = runs
    return ex._mutant_cache[j]


def _train(ex: Exercise, i: int) -> bool:
    if ex.train_mode is not None:
        return ex.train_mode
    return _has_batch_norm(_reference(ex, i).run.model)


def _known(ex: Exercise, same: Callable) -> list:
    """The known bugs for which ``same(mutant runs)`` holds."""
    return [m for j, m in enumerate(ex.mutants) if same(_mutant_runs(ex, j))]


def _crash_print(runs) -> tuple:
    """Where each case fails, with what error, and the numbers in its message (sorted: the same
    bug written as `out + identity` or `identity + out` gives the same numbers)."""
    return tuple((r.where, type(r.error).__name__, tuple(sorted(re.findall(r"\d+", str(r.error)))))
                 if r.error is not None else None for r in runs)


def _param_print(run: _Run) -> tuple:
    return tuple(sorted(layer.signature for layer in run.layers))


def _layer_table(cand: list, ref: list) -> tuple[str, list]:
    """Yours and the reference's layers side by side, aligned by kind of layer; and the
    (yours, reference) pairs that differ."""
    kinds = lambda layers: [l.kind for l in layers]                    # noqa: E731
    sm = difflib.SequenceMatcher(a=kinds(cand), b=kinds(ref), autojunk=False)
    rows, pairs = [], []
    for _, i1, i2, j1, j2 in sm.get_opcodes():
        a, b = cand[i1:i2], ref[j1:j2]
        for k in range(max(len(a), len(b))):
            la = a[k] if k < len(a) else None
            lb = b[k] if k < len(b) else None
            if la is None:
                mark = "missing in yours"
            elif lb is None:
                mark = "extra in yours"
            elif la.signature != lb.signature:
                mark = "differs"
                pairs.append((la, lb))
            else:
                mark = ""
            rows.append((f"{la.desc} [{la.n_params:,}]" if la else "-",
                         f"{lb.desc} [{lb.n_params:,}]" if lb else "-", mark))
    w = max(len(r[0]) for r in rows + [("yours", "", "")])
    text = [f"    {'yours':<{w}}   reference"]
    text += [f"    {a:<{w}}   {b}" + (f"  <-- {m}" if m else "") for a, b, m in rows]
    return "\n".join(text), pairs


def _param_hints(cand: list, ref: list, pairs: list) -> list:
    se = _se_position(cand, ref)
    if se:                 # a moved SE block misaligns the table: the other patterns would mislead
        return se + _unused_hints(cand, ref)
    hints = []
    total_c, total_r = sum(l.n_params for l in cand), sum(l.n_params for l in ref)
    ratios = [la.n_params / lb.n_params for la, lb in pairs if lb.n_params]
    if any(r in (4, 16, 1 / 4, 1 / 16) for r in ratios) or (
            total_r and any(math.isclose(total_c / total_r, f, rel_tol=0.1) for f in (4, 1 / 4))):
        hints.append(("width-x4", {}))
    convs = [(la.module, lb.module) for la, lb in pairs
             if isinstance(la.module, nn.modules.conv._ConvNd)
             and isinstance(lb.module, nn.modules.conv._ConvNd)]
    biased = [(a.bias is not None) for a, b in convs
              if a.weight.shape == b.weight.shape and (a.bias is None) != (b.bias is None)]
    if biased:
        hints.append(("conv-bias", {"yours": "have a bias where the reference's have none"
                                    if all(biased) else "have no bias where the reference's "
                                    "have one"}))
    ks = [f"yours {'x'.join(map(str, a.kernel_size))}, the reference's "
          f"{'x'.join(map(str, b.kernel_size))}" for a, b in convs if a.kernel_size != b.kernel_size]
    if ks:
        hints.append(("kernel-size", {"pairs": "; ".join(ks)}))
    hints += _unused_hints(cand, ref)
    shared = [f"{l.name} {l.calls} times" for l in cand if l.calls > 1]
    if shared and all(l.calls <= 1 for l in ref):
        hints.append(("shared-layer", {"names": ", ".join(shared)}))
    return hints


def _same_grads(a: tuple, b: tuple) -> bool:
    """Two (input's gradient, {key: gradient}, ...) equal up to rounding."""
    (xa, ga), (xb, gb) = a[:2], b[:2]
    return _grad_close(xa, xb) and all(_grad_close(ga.get(k), gb.get(k)) for k in {*ga, *gb})


def _layer_names(keys: list) -> list:
    """The layers that own these state keys, in order, each once."""
    names = []
    for k in keys:
        name = k.rsplit(".", 1)[0] if "." in k else "(the block itself)"
        if name not in names:
            names.append(name)
    return names


def _unused_hints(cand: list, ref: list, outs: Optional["_Outputs"] = None, k: int = 0) -> list:
    """Layers forward never calls (and, when ``outs`` can tell, that no gradient reaches: a
    layer used through its weights, F.batch_norm(x, bn.running_mean, ...), is used)."""
    unused = [l for l in cand if l.calls == 0]
    if unused and outs is not None and outs.maps:
        mapping, grads = outs.maps[k][1], outs.grads(k)[1]
        unused = [l for l in unused if all(_grad_close(grads.get(mapping.get(key)), None)
                                           for key in l.keys if key in mapping)]
    unused = [l.name for l in unused]
    return [("unused-layer", {"names": ", ".join(unused)})] if unused and all(
        l.calls for l in ref) else []


def _late_strides(cand: list, ref: list) -> list:
    """Your 1x1 convolutions with a stride, when you have more of them than the reference
    (a stride moved from the 3x3 into a later 1x1 conv)."""
    def strided(layers):
        return [l.name for l in layers if isinstance(l.module, nn.modules.conv._ConvNd)
                and all(k == 1 for k in l.module.kernel_size) and any(s != 1 for s in
                                                                       l.module.stride)]
    yours = strided(cand)
    return yours if len(yours) > len(strided(ref)) else []


def _se_position(cand: list, ref: list) -> list:
    """Where the SE block (the layers that see a 1x1 map) sits in yours and in the reference:
    after how many other layers, after which one, and on how many channels."""
    def where(layers):
        used = [l for l in layers if l.calls]
        k = next((j for j, l in enumerate(used) if l.kind == "FC"), None)
        if k is None:
            return None
        before = [l for l in used[:k] if l.kind != "FC"]
        fc = used[k].module
        width = fc.in_features if isinstance(fc, nn.Linear) else fc.in_channels
        return len(before), (before[-1].name if before else "the input"), width
    a, b = where(cand), where(ref)
    if a is None or b is None or a == b:
        return []
    return [("se-position", {"yours": f"after {a[1]}, on {a[2]} channels",
                             "ref": f"after {b[1]}, on {b[2]} channels"})]


def _shape_hints(yours: tuple, ref: tuple) -> list:
    hints = []
    if len(yours) == len(ref) == 4:
        if yours[1] != ref[1] and (yours[1] * 4 == ref[1] or ref[1] * 4 == yours[1]):
            hints.append(("channels-x4", {}))
        hy, hr = yours[2], ref[2]
        if hy != hr:
            if hy > hr and hy % hr == 0 and hr > 1:
                hints.append(("spatial-larger", {"factor": hy // hr}))
            elif hr > hy and hr % hy == 0 and hy > 1:
                hints.append(("spatial-smaller", {"factor": hr // hy}))
            elif abs(hy - hr) <= 4:
                hints.append(("padding", {}))
    return hints


def _error_hints(err: BaseException) -> list:
    msg = str(err)
    if re.search(r"expected input.*to have \d+ channels", msg):
        return [("channel-mismatch", {})]
    if re.search(r"size of tensor a \(\d+\) must match the size of tensor b", msg):
        return [("shape-mismatch", {})]
    return []


def _tag_hints(ex: Exercise, failing: set) -> list:
    hints = []
    if not failing or len(failing) == len(ex.cases):
        return hints
    tags = sorted({t for c in ex.cases for t in c.tags})
    for t in tags:
        if {i for i, c in enumerate(ex.cases) if t in c.tags} == failing:
            hints.append((f"tag:{t}", {"text": ex.hints.get(t) or TAG_HINTS.get(t)
                                       or f"Wrong exactly in the cases tagged {t!r}."}))
    return hints


def _hint_text(key: str, fmt: dict, ex: Optional[Exercise] = None) -> str:
    if key.startswith("tag:"):
        return fmt["text"]
    text = ex.hints.get(key) if ex is not None else None
    return (text or _HINTS[key]).format(**fmt)


def _compare(ex: Exercise, candidate: Callable, who: str) -> list:
    """Run every check; raise _Failure at the first difference; return the success lines."""
    n = len(ex.cases)
    runs = [_run(candidate, case) for case in ex.cases]

    # 0. not written yet
    for i, r in enumerate(runs):
        if r.not_done:
            raise _Failure("not done", f"not done yet: your {who} raises NotImplementedError "
                           f"while {r.where}", case=ex.cases[i].label)
    refs = [_reference(ex, i) for i in range(n)]
    # 1. builds and runs
    crashed = [i for i, r in enumerate(runs) if r.error is not None]
    if crashed:
        i = crashed[0]
        r, case = runs[i], ex.cases[i]
        fp = _crash_print(runs)
        known = _known(ex, lambda mr: _crash_print([x for x, _ in mr]) == fp)
        err = r.error
        others = [ex.cases[k].label for k in crashed[1:]]
        details = (f"{ex.call(case, who)} failed while {r.where}: {type(err).__name__}: "
                   f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                   f"{_where_in_your_code(err)}")
        if getattr(err, "not_a_module", False) and ex.not_a_module:
            details += "\n  " + ex.not_a_module
        if others:
            details += "\n  It fails in these cases too: " + "; ".join(others) + "."
        ok = [ex.cases[k].label for k in range(n) if k not in crashed]
        if ok:
            details += "\n  It runs in: " + "; ".join(ok) + "."
        raise _Failure("build", f"your {who} does not run in case {case.label!r}", details,
                       case.label, known, _error_hints(err))
    modified = [i for i, r in enumerate(runs) if r.input_modified]
    if modified:
        case = ex.cases[modified[0]]
        raise _Failure("build", "your forward changes its input tensor in place",
                       f"In case {case.label!r} the tensor given to your block's forward was "
                       "different after the call.", case.label, hints=[("input-modified", {})])
    # 2. output shape
    bad = [i for i in range(n) if tuple(runs[i].out.shape) != tuple(refs[i].run.out.shape)]
    if bad:
        fp = tuple(tuple(r.out.shape) for r in runs)
        known = _known(ex, lambda mr: all(x.error is None for x, _ in mr)
                       and tuple(tuple(x.out.shape) for x, _ in mr) == fp)
        lines = [f"  {ex.cases[i].label}: yours {tuple(runs[i].out.shape)}, the reference's "
                 f"{tuple(refs[i].run.out.shape)}" for i in bad]
        i = bad[0]
        raise _Failure("shape", f"the output shape differs in {len(bad)} of {n} cases",
                       f"Input {tuple(ex.cases[i].input_shape)}, {ex.call(ex.cases[i], who)}:\n"
                       + "\n".join(lines), ex.cases[i].label, known,
                       _shape_hints(tuple(runs[i].out.shape), tuple(refs[i].run.out.shape))
                       + _tag_hints(ex, set(bad)))
    # 3. parameters, layer by layer
    bad = [i for i in range(n) if _param_print(runs[i]) != _param_print(refs[i].run)]
    if bad:
        fp = tuple(_param_print(r) for r in runs)
        known = _known(ex, lambda mr: all(x.error is None for x, _ in mr)
                       and tuple(_param_print(x) for x, _ in mr) == fp)
        i = bad[0]
        cand, ref = runs[i].layers, refs[i].run.layers
        table, pairs = _layer_table(cand, ref)
        pc, pr = sum(l.n_params for l in cand), sum(l.n_params for l in ref)
        ratio = f" ({pc / pr:.2f}x)" if pr else ""
        raise _Failure("parameters", f"the parameters differ in {len(bad)} of {n} cases",
                       f"Case {ex.cases[i].label!r}, {ex.call(ex.cases[i], who)}: yours has "
                       f"{pc:,} parameters, the reference {pr:,}{ratio}. Layer by layer, in "
                       f"order of use in forward [parameters]:\n{table}",
                       ex.cases[i].label, known,
                       _param_hints(cand, ref, pairs) + _tag_hints(ex, set(bad)))
    # 4. outputs with the reference's weights
    outs = [_Outputs(runs[i], refs[i], ex.cases[i]) for i in range(n)]
    no_map = [i for i in range(n) if not outs[i].maps]
    if no_map:
        i = no_map[0]
        table, _ = _layer_table(runs[i].layers, refs[i].run.layers)
        raise _Failure("transplant", "the reference's weights cannot be copied into your block",
                       f"Case {ex.cases[i].label!r}: the parameters agree, but the buffers (such "
                       f"as batch norm's running statistics) or their order do not:\n{table}",
                       ex.cases[i].label)

    def matching(vals, targets):
        """Indices of the mappings whose output equals one of ``targets``."""
        return [k for k, v in enumerate(vals) if v is not None
                and any(t is not None and _close(v, t) for t in targets)]

    good = [matching(outs[i].eval, [refs[i].run.out]) for i in range(n)]
    bad = [i for i in range(n) if not good[i]]
    if bad:
        # the same outputs every time in eval mode? (dropout or stochastic depth left on)
        i = bad[0]
        again = _forward(runs[i].model.eval(), _input(ex.cases[i]), seed=_SEED + 7)
        if not (isinstance(again, torch.Tensor) and _close(again, outs[i].eval[-1])):
            raise _Failure("random", "your block is random in eval mode",
                           f"In case {ex.cases[i].label!r}, two forward passes in eval mode (with "
                           f"other random seeds) gave different outputs (max |difference| = "
                           f"{_max_diff(again, outs[i].eval[-1]):.3g}).", ex.cases[i].label,
                           hints=[("random-in-eval", {})])
        known = _known(ex, lambda mr: all(
            mo is not None and matching(outs[i].eval, mo.eval) for i, (_, mo) in enumerate(mr)))
        first = [(outs[i].eval[0], refs[i].run.out) for i in bad]
        hints = []
        if all(a.min() >= 0 > b.min() for a, b in first):
            hints.append(("activation-after", {}))
        if all(a.min() < 0 <= b.min() for a, b in first):
            hints.append(("activation-missing", {}))
        with_bn = _has_batch_norm(refs[bad[0]].run.model)
        # an eps differs by far less than an approximated function (hard sigmoid: up to 2%)
        small = 1e-2 if with_bn else 5e-2
        if all(_max_diff(a, b) < small * (b.max() - b.min()).item() for a, b in first):
            hints.append(("small-difference" if with_bn else "small-difference-no-bn", {}))
        hints += _unused_hints(runs[bad[0]].layers, refs[bad[0]].run.layers, outs[bad[0]])
        hints += _tag_hints(ex, set(bad))
        w = max(len(c.label) for c in ex.cases)
        rows = [f"  {'DIFFERS' if i in bad else 'ok     '}  {ex.cases[i].label:<{w}}  max |yours - "
                f"reference| = {_max_diff(outs[i].eval[0], refs[i].run.out):.3g} (the reference's "
                f"outputs lie in [{refs[i].run.out.min():.3g}, {refs[i].run.out.max():.3g}])"
                for i in range(n)]
        raise _Failure("outputs", f"the outputs differ in {len(bad)} of {n} cases",
                       f"With the reference's weights copied into yours ({_hows(outs)}), in eval "
                       f"mode with random batch-norm statistics:\n" + "\n".join(rows),
                       ex.cases[bad[0]].label, known, hints)
    chosen = [good[i][0] for i in range(n)]
    # 5. gradients: one backward pass in eval mode (a detached shortcut or an SE gate under
    # torch.no_grad() gives the same outputs, but cuts the gradient)
    grad_bad = [i for i in range(n)
                if not _same_grads(outs[i].grads(chosen[i]), refs[i].grads)]
    if grad_bad:
        known = _known(ex, lambda mr: all(
            mr[ii][1] is not None and mr[ii][1].maps
            and _close(mr[ii][1].eval[0], refs[ii].run.out)
            and _same_grads(outs[ii].grads(chosen[ii]), mr[ii][1].grads(0)[:2])
            for ii in range(n)))
        i = grad_bad[0]
        x_grad, grads, ok = outs[i].grads(chosen[i])
        rx_grad, rgrads = refs[i].grads
        inverse = {r: c for c, r in outs[i].maps[chosen[i]][1].items()}
        no_grad = _layer_names([inverse[k] for k in rgrads if k in inverse
                                and _grad_close(grads.get(k), None)
                                and not _grad_close(rgrads[k], None)])
        differ = _layer_names([inverse[k] for k in rgrads if k in inverse
                               and not _grad_close(grads.get(k), rgrads[k])])
        x_ok = _grad_close(x_grad, rx_grad)
        lines = [f"  the input's gradient: {'agrees' if x_ok else 'DIFFERS'}"
                 + ("" if x_ok or x_grad is not None else " (none: the output does not depend on "
                    "the input through autograd)")]
        if differ:
            lines.append(f"  the gradients of your layers {', '.join(differ)}: DIFFER"
                         + (f" (none reaches {', '.join(no_grad)})" if no_grad else ""))
        else:
            lines.append("  every parameter's gradient: agrees")
        hints = []
        if not ok or (x_grad is None and not any(g is not None for g in grads.values())):
            hints.append(("no-autograd", {}))
        elif no_grad:
            hints.append(("no-gradient", {"names": ", ".join(no_grad)}))
        elif not x_ok and not differ:
            hints.append(("input-gradient", {}))
        else:
            hints.append(("gradient-differs", {"names": ", ".join(differ) or "the input"}))
        raise _Failure("gradients", f"the outputs agree, but the gradients differ in "
                       f"{len(grad_bad)} of {n} cases",
                       f"Case {ex.cases[i].label!r}: one backward pass in eval mode with the "
                       f"reference's weights copied into yours:\n" + "\n".join(lines),
                       ex.cases[i].label, known, hints)
    # 6. train mode: batch statistics, and the running statistics the forward pass updates
    trained = [i for i in range(n) if _train(ex, i)]

    def same_train(result, others):
        out, buffers = result
        return any(_close(out, o) and all(_close(buffers[key].float(), ob[key].float())
                                          for key in buffers) for o, ob in others)

    for i in trained:
        result, ref, case = outs[i].train(chosen[i]), refs[i], ex.cases[i]
        if same_train(result, [(ref.out_train, ref.buffers_train)]):
            continue
        known = _known(ex, lambda mr: all(mr[ii][1] is not None and same_train(
            outs[ii].train(chosen[ii]), [mr[ii][1].train(k) for k in range(len(mr[ii][1].maps))])
            for ii in trained))
        diff = _max_diff(result[0], ref.out_train)
        if diff <= ATOL + RTOL * ref.out_train.abs().max().item():
            raise _Failure("train", "the running statistics differ after a forward pass in train "
                           "mode", f"Case {case.label!r}: the outputs agree in eval and in train "
                           "mode, but the buffers the forward pass updates (batch norm's running "
                           "mean and variance) do not.", case.label, known, [("bn-momentum", {})])
        late = _late_strides(runs[i].layers, ref.run.layers)
        raise _Failure("train", "the outputs differ in train mode",
                       f"Case {case.label!r}: the outputs agree in eval mode; in train mode max "
                       f"|yours - reference| = {diff:.3g}.", case.label, known,
                       [("stride-late", {"names": ", ".join(late)})] if late
                       else _unused_hints(runs[i].layers, ref.run.layers, outs[i], chosen[i])
                       or [("train-only", {})])
    # 7. names (for blocks that must load torchvision's weights)
    if ex.same_names:
        hows = {outs[i].maps[chosen[i]][0] for i in range(n)}
        if hows != {"by name"}:
            from common.inspection import state_dict_differences

            i = next(i for i in range(n) if outs[i].maps[chosen[i]][0] != "by name")
            diffs = state_dict_differences(runs[i].model.state_dict(), refs[i].state,
                                           "the reference")
            raise _Failure("names", "the outputs agree, but your parameter names are not the "
                           "reference's", f"Case {ex.cases[i].label!r}: " + "; ".join(diffs)
                           + ". The names must be the reference's so that its (torchvision's) "
                           "state_dict loads with strict=True.", ex.cases[i].label)
    # 8. the input's device and dtype (a tensor made on the CPU in float32 fails on a GPU)
    for i, case in enumerate(ex.cases):
        if refs[i].elsewhere_ok:
            problem = _elsewhere(runs[i].model, case, in_place=True)   # its last use
            if problem is not None:
                raise _Failure("device", "your block works only on the CPU in float32",
                               f"Case {case.label!r}, run {problem}.", case.label,
                               hints=[("device", {})])

    lines = []
    w = max(len(c.label) for c in ex.cases)
    for i, case in enumerate(ex.cases):
        k = chosen[i]
        d = f"max |diff| {_max_diff(outs[i].eval[k], refs[i].run.out):.1e} (eval)"
        if _train(ex, i):
            d += f", {_max_diff(outs[i].train(k)[0], refs[i].out_train):.1e} (train)"
        pc = sum(l.n_params for l in runs[i].layers)
        lines.append(f"  ok  {case.label:<{w}}  output {tuple(runs[i].out.shape)}, "
                     f"{pc:,} parameters, {d}")
    how = sorted({outs[i].maps[chosen[i]][0] for i in range(n)})
    lines.insert(0, f"{ex.name}: all {n} cases pass (weights copied {' / '.join(how)}).")
    return lines


#: Where a block that differs from the reference may still be an accepted variant (another
#: reading of the paper builds, runs, is deterministic and device-agnostic like the reference).
_VARIANT_STAGES = {"shape", "parameters", "outputs", "gradients", "train"}


def _accepted_variant(ex: Exercise, candidate: Callable, who: str) -> Optional[tuple]:
    """(the accepted variant, the success lines) when ``candidate`` passes every check against
    one of the exercise's accepted variants, else None."""
    for j, v in enumerate(ex.accepted):
        if j not in ex._variant_cache:
            ex._variant_cache[j] = Exercise(ex.name, _mutant_factory(ex, v), ex.cases, ex.paper,
                                            hints=ex.hints, train_mode=ex.train_mode,
                                            same_names=ex.same_names)
        try:
            return v, _compare(ex._variant_cache[j], candidate, who)
        except _Failure:
            continue
    return None


def _hows(outs: list) -> str:
    return " / ".join(sorted({o.maps[0][0] for o in outs if o.maps}))


def diagnose(name: str, candidate: Callable) -> Report:
    """Check ``candidate`` against exercise ``name`` and return the Report (never raises for a
    wrong block; ``check`` raises)."""
    ex = get_exercise(name)
    if isinstance(candidate, nn.Module):
        kind = type(candidate)
        if kind.__module__.split(".")[0] == "torch":     # nn.Sequential, nn.Conv2d...: built by
            raise TypeError(f"Pass your function itself, not what it returned (a block already "
                            f"built, {kind.__name__}): check({name!r}, my_function), not "
                            f"check({name!r}, my_function(...)).")      # the learner's function
        raise TypeError(f"Pass your class (or a function that builds the block), not a block "
                        f"already built: check({name!r}, {kind.__name__}), not "
                        f"check({name!r}, {kind.__name__}(...)).")
    if not callable(candidate):
        raise TypeError(f"check({name!r}, ...) needs your class or a function with the signature "
                        f"{ex.signature}; got {type(candidate).__name__}.")
    who = getattr(candidate, "__name__", type(candidate).__name__)
    footer = f"(The exercise: {ex.signature}; {ex.paper}.)"
    try:
        with _one_thread(), _learners_rng_kept():
            lines = _compare(ex, candidate, who)
    except _Failure as f:
        if f.stage in _VARIANT_STAGES:
            with _one_thread(), _learners_rng_kept():
                variant = _accepted_variant(ex, candidate, who)
            if variant is not None:
                v, lines = variant
                text = "\n".join([lines[0], f"Accepted: {v.title}. {v.diagnosis}", *lines[1:]])
                return Report(name, "passed", text, accepted=v.title)
        if f.stage == "not done":
            cases = "\n".join(f"  - {c.label}: {ex.call(c, who)}" for c in ex.cases)
            text = (f"{ex.name}: {f.what}. Write it, then run this cell again; it will be "
                    f"checked on these cases:\n{cases}")
            return Report(name, "not done", text, "not done", case=f.case)
        parts = [f"{ex.name}: {f.what}."]
        if f.details:
            parts.append(f.details)
        bugs = [m for m in f.known]
        if bugs:
            for m in bugs:
                parts.append(f"Known bug: {m.title}. {m.diagnosis}")
        elif f.hints:
            parts.append("Likely cause: " + " ".join(_hint_text(k, fmt, ex) for k, fmt in f.hints))
        elif f.stage != "build":          # a build or run error speaks for itself
            parts.append("No known pattern: compare your code with the paper line by line, "
                         "starting with the simplest case that differs.")
        parts.append(footer)
        return Report(name, "failed", "\n".join(parts), f.stage, [m.title for m in bugs],
                      [k for k, _ in f.hints], f.case)
    return Report(name, "passed", "\n".join(lines))


def check(name: str, candidate: Callable) -> None:
    """Check your block against exercise ``name`` (see the module docstring): prints one line per
    case when it is right, "not done yet" for a skeleton, and raises AssertionError with a
    diagnosis when something differs."""
    report = diagnose(name, candidate)
    if report.status == "failed":
        raise AssertionError(report.text)
    print(report.text)
