"""A model registry in torchvision's style: ``register_model``, ``get_model``, ``list_models``.

Model files in this folder (written in the notebooks, saved here by ``python -m common.save``)
decorate their public constructors with ``@register_model("name")``. Re-running a notebook cell
re-registers the name, so ``get_model`` then builds the version the learner just edited.
"""
from __future__ import annotations

import difflib
import fnmatch
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


def get_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model, e.g. ``get_model("resnet50", num_classes=1000)``."""
    if not isinstance(name, str) or name not in _MODELS:
        close = difflib.get_close_matches(str(name), _MODELS, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown model name {name!r}.{hint} Available models: {', '.join(list_models())}."
        )
    model = _MODELS[name](**kwargs)
    model.name = name          # how common.fit labels the run (a plain attribute: not in state_dict)
    return model


def check_image_batch(x, channels: int = 3, min_size: int = 1) -> None:
    """Raise a clear error unless ``x`` is a float batch shaped (N, channels, H, W)."""
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
