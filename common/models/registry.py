"""A model registry in torchvision's style: ``register_model``, ``get_model``, ``list_models``.

Model files in this folder (written in the notebooks, saved here by ``python -m common.save``)
decorate their public constructors with ``@register_model("name")``. Re-running a notebook cell
re-registers the name, so ``get_model`` then builds the version the learner just edited.
"""
from __future__ import annotations

import ast
import difflib
import fnmatch
import inspect
import numbers
import re
import textwrap
from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str | None = None):
    """Decorator: register a model constructor under ``name`` (default: the function's name)."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _MODELS[name or fn.__name__] = fn
        return fn

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, e.g. ``list_models("cifar_*")``."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def get_model(name: str, /, **kwargs) -> nn.Module:
    """Build a registered model, e.g. ``get_model("resnet50", num_classes=1000)``. A keyword the
    model does not take is refused with the list of those it does take."""
    if not isinstance(name, str) or name not in _MODELS:
        close = difflib.get_close_matches(str(name), _MODELS, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown model name {name!r}.{hint} Available models: {', '.join(list_models())}."
        )
    n = kwargs.get("num_classes", 1)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise ValueError(f"num_classes must be a positive whole number, the number of classes in "
                         f"your data (e.g. num_classes=data.num_classes); got {n!r}.")
    try:
        model = _MODELS[name](**kwargs)
    except TypeError as err:
        bad = _keyword_in_error(err, kwargs)
        if bad is None:
            raise
        raise TypeError(_keyword_help(name, bad)) from err
    model.name = name          # how common.fit labels the run (a plain attribute: not in state_dict)
    return model


_BINDING_ERROR = re.compile(r"(unexpected keyword argument|multiple values for (?:keyword )?"
                            r"argument) '(\w+)'")


def _keyword_in_error(err: TypeError, kwargs: dict) -> str | None:
    """The caller's keyword that a call in the constructor chain refused, if that is the error."""
    m = _BINDING_ERROR.search(str(err))
    return m.group(2) if m and m.group(2) in kwargs else None


def _keyword_help(name: str, bad: str) -> str:
    chain = accepted_keywords(_MODELS[name])
    if chain is None:
        return (f"get_model({name!r}) does not take the keyword {bad!r}; see "
                f"help({_MODELS[name].__module__}.{_MODELS[name].__qualname__}).")
    accepted, fixed = chain
    if bad in fixed:
        msg = (f"get_model({name!r}) does not take {bad!r}: {name} sets it itself. Choose the "
               f"model by name instead (list_models() shows them all).")
    else:
        close = difflib.get_close_matches(bad, accepted, n=3)
        near_fixed = difflib.get_close_matches(bad, fixed, n=1)
        msg = f"get_model({name!r}) does not take the keyword {bad!r}." + (
            f" Did you mean {', '.join(map(repr, close))}?" if close else
            f" ({name} sets {near_fixed[0]!r} itself.)" if near_fixed else "")
    return msg + f" {name} takes: {', '.join(sorted(accepted)) or 'no keywords'}."


def accepted_keywords(fn: Callable, _fixed: frozenset = frozenset(), _depth: int = 0
                      ) -> tuple[set[str], set[str]] | None:
    """``(accepted, fixed)``: the keywords a constructor takes, following ``**kwargs`` down the
    calls it is passed to (``resnet18(**kwargs)`` -> ``_resnet(18, **kwargs)`` ->
    ``ResNet(block, layers, **kwargs)``), and those the chain sets itself (positionally or by
    keyword) so that the caller cannot. None where the chain cannot be read from the source."""
    try:
        target = fn.__init__ if inspect.isclass(fn) else fn
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = {p.name for p in params if p.kind in kinds} - _fixed
    fixed = set(_fixed)
    varkw = next((p.name for p in params if p.kind is inspect.Parameter.VAR_KEYWORD), None)
    if varkw is None:
        return accepted, fixed
    if _depth > 8:
        return None
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(target)))
    except (OSError, TypeError, SyntaxError):
        return None
    found = False
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and any(
                k.arg is None and isinstance(k.value, ast.Name) and k.value.id == varkw
                for k in call.keywords)):
            continue
        callee = _resolve(call.func, target)
        if callee is None or any(isinstance(a, ast.Starred) for a in call.args):
            return None
        try:
            positional = [p.name for p in inspect.signature(callee).parameters.values()
                          if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        inspect.Parameter.POSITIONAL_ONLY)]
        except (TypeError, ValueError):
            return None
        here = {k.arg for k in call.keywords if k.arg} | set(positional[:len(call.args)])
        sub = accepted_keywords(callee, frozenset(here), _depth + 1)
        if sub is None:
            return None
        accepted |= sub[0]                  # this level's own parameters stay accepted even if it
        fixed |= sub[1]                     # passes them on explicitly (residual=residual)
        found = True
    return (accepted, fixed - accepted) if found else None


def _resolve(node: ast.expr, fn: Callable):
    """The object a call's ``func`` names (``Name`` or ``module.attr``) in ``fn``'s globals."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None                                      # super().__init__(**kwargs) and the like
    scope = dict(getattr(fn, "__globals__", {}))
    if getattr(fn, "__closure__", None):
        scope.update(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__)))
    obj = scope.get(node.id, getattr(__builtins__, node.id, None) if not isinstance(
        __builtins__, dict) else __builtins__.get(node.id))
    for attr in reversed(names):
        obj = getattr(obj, attr, None)
    return obj if callable(obj) else None


def check_image_batch(x, channels: int = 3, min_size: int = 1, training: bool = False,
                      final_map_size=None) -> None:
    """Raise a clear error unless ``x`` is a float batch shaped (N, channels, H, W) with H and W
    at least ``min_size``. With ``training=True`` (pass the model's ``self.training``), also
    refuse one image whose last feature map is 1x1: batch norm in train mode cannot normalise a
    single value per channel (torch's own error says only "Expected more than 1 value per
    channel"). ``final_map_size(side) -> side`` gives that map; by default a network whose total
    stride is ``min_size`` (convolutions padded, so a side of ``min_size`` or less ends at 1)."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(
            f"Expected a batch of images shaped (N, {channels}, H, W); got a tensor shaped "
            f"{tuple(x.shape)}. Add a batch dimension with x.unsqueeze(0) for a single image, "
            f"and give {channels} channels (grey images: x.expand(-1, {channels}, -1, -1))."
        )
    if min(x.shape[-2:]) < min_size:
        raise ValueError(
            f"Images of {tuple(x.shape[-2:])} pixels are too small for this model: "
            f"it needs at least {min_size}x{min_size}."
        )
    if not x.is_floating_point():
        raise ValueError(
            f"Expected a float tensor, got {x.dtype}: convert and normalise uint8 images first "
            "(data.normalize(x) does both)."
        )
    if training and x.shape[0] == 1:
        side = final_map_size or (lambda n: 1 if n <= min_size else 2)
        if side(x.shape[-2]) * side(x.shape[-1]) == 1:
            raise ValueError(
                f"One {x.shape[-2]}x{x.shape[-1]} image in train mode ends on a 1x1 map, and batch "
                "norm cannot normalise a single value per channel. Train on batches of 2 or more, "
                "or on larger images; to predict one image, call model.eval() first.")
