"""Looking inside a model: parameters, multiply-adds, a block-by-block summary, the output shape
of each part, and the paper's numbers beside ours.

The check against the official implementation lives in ``common.reference`` and the official
weights in ``common.weights``; their names are re-exported here, where they used to live, so
``common.inspection.random_reference`` and the like keep working."""
from __future__ import annotations

import difflib
import math
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from common.reference import (
    NORM_LAYERS,
    check_against_reference,
    constant_parameters,
    is_norm_layer,
    load_state_dict_strict,
    random_constant_state,
    random_norm_state,
    random_reference,
    randomized_norm_copy,
    state_dict_differences,
)
from common.weights import classify_photo, sample_photo

__all__ = ["count_params", "count_macs", "summary", "output_shapes", "paper_vs_ours",
           # re-exported from common.reference and common.weights
           "NORM_LAYERS", "check_against_reference", "constant_parameters", "is_norm_layer",
           "load_state_dict_strict", "random_constant_state", "random_norm_state",
           "random_reference", "randomized_norm_copy", "state_dict_differences",
           "classify_photo", "sample_photo"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as batch-norm running means are not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224)) -> int:
    """Multiply-adds of one forward pass per image, as papers count "FLOPs" (ResNet's Table 1:
    3.6 x 10^9 for ResNet-34 are multiply-adds). Counted by torch.utils.flop_counter over
    convolutions and matrix products (the layers with weights), which count 2 FLOPs per
    multiply-add; batch norm, activations and pooling are left out, as in the papers.
    The count is divided by the batch size of ``input_size``."""
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        x = torch.zeros(*input_size, device=p.device if p is not None else "cpu")
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2 // input_size[0]


def summary(model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224), depth: int = 2,
            **kwargs):
    """A torchinfo summary grouped by blocks (``depth`` levels of modules): output shape,
    parameters and multiply-adds of each."""
    from torchinfo import summary as _summary  # optional: torchinfo only when a summary is asked

    kwargs.setdefault("col_names", ("output_size", "num_params", "mult_adds"))
    kwargs.setdefault("row_settings", ("var_names",))
    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("device", next(model.parameters()).device)
    return _summary(model, input_size=tuple(input_size), depth=depth, **kwargs)


@torch.no_grad()
def output_shapes(model: nn.Module, input_size: Sequence[int] | torch.Tensor,
                  names: Sequence[str] | None = None) -> dict[str, tuple | None]:
    """The output shape of each named submodule (``names``, e.g. ``["layer1", "layer1.0.conv1"]``)
    or, by default, of each top-level child, in one forward pass of a zero input shaped
    ``input_size`` (or of the given tensor), in eval mode, without gradients. Shapes are tuples
    (a tuple of tuples for a module returning several tensors), in the order the modules ran;
    a module called twice keeps its first call's shape, one never called maps to None. The
    forward hooks are removed and the training mode restored, whatever happens::

        common.output_shapes(common.get_model("cifar_resnet20"), (1, 3, 32, 32))
        # {'conv1': (1, 16, 32, 32), 'bn1': (1, 16, 32, 32), ..., 'fc': (1, 10)}
    """
    modules = dict(model.named_modules())
    if names is None:
        names = [n for n, _ in model.named_children()]
    unknown = [n for n in names if n not in modules or n == ""]
    if unknown:
        close = difflib.get_close_matches(unknown[0], [n for n in modules if n], n=3)
        raise ValueError(f"{type(model).__name__} has no submodule {unknown[0]!r}"
                         + (f"; did you mean {', '.join(map(repr, close))}?" if close else ".")
                         + " Names are those of model.named_modules(), e.g. 'layer1.0.conv1'.")

    def shape(out):
        if isinstance(out, torch.Tensor):
            return tuple(out.shape)
        if isinstance(out, (tuple, list)):
            return tuple(shape(o) for o in out)
        return type(out).__name__

    shapes: dict[str, tuple] = {}

    def record(name):
        def hook(module, args, out):              # returns None: the output stays as it is
            shapes.setdefault(name, shape(out))
        return hook

    handles = [modules[n].register_forward_hook(record(n)) for n in names]
    was_training = model.training
    try:
        model.eval()
        if isinstance(input_size, torch.Tensor):
            x = input_size
        else:
            p = next(model.parameters(), None)
            x = torch.zeros(*input_size, device=p.device if p is not None else "cpu")
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {**shapes, **{n: None for n in names if n not in shapes}}


def _fmt(v) -> str:
    if v is None:
        return "not stated"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.4g}"
    v = int(v)
    if abs(v) >= 1e9:
        return f"{v / 1e9:.3f}G"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.3f}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.1f}k"
    return str(v)


def paper_vs_ours(rows: Iterable[Sequence], rtol: float = 0.01, title: str = "",
                  show: bool = True, source: str = "paper") -> list[dict]:
    """Print the paper's numbers beside ours, as paper / ours / ratio, and assert that each ratio
    is within ``rtol`` of 1. A row is ``(label, paper, ours)`` or ``(label, paper, ours, rtol)``;
    ``paper=None`` means the paper does not state it (shown, not asserted). ``source`` names the
    column when the numbers are not the paper's (``source="torchvision"``: a library's
    documented values), so a table never calls another source "paper"."""
    table, bad = [], []
    for row in rows:
        label, paper, ours, tol = (*row, rtol) if len(row) == 3 else row
        ratio = None if paper in (None, 0) else ours / paper
        ok = ratio is None or math.isclose(ratio, 1.0, abs_tol=tol)
        table.append({"label": label, "paper": paper, "ours": ours, "ratio": ratio,
                      "rtol": tol, "ok": ok})
        if not ok:
            bad.append(f"{label}: {source} {_fmt(paper)}, ours {_fmt(ours)} (ratio {ratio:.4f}, "
                       f"allowed 1 +/- {tol})")
    if show:
        w = max([len(str(r["label"])) for r in table] + [5])
        lines = [title] if title else []
        rw = max(10, len(f"ours/{source}"))
        lines.append(f"{'':{w}}  {source:>11}  {'ours':>11}  {'ours/' + source:>{rw}}")
        for r in table:
            ratio = "" if r["ratio"] is None else f"{r['ratio']:.4f}"
            mark = "" if r["ok"] else "  <-- outside tolerance"
            lines.append(f"{r['label']:{w}}  {_fmt(r['paper']):>11}  {_fmt(r['ours']):>11}  "
                         f"{ratio:>{rw}}{mark}")
        print("\n".join(lines))
    if bad:
        what = "the paper" if source == "paper" else source
        raise AssertionError(f"Ours differs from {what} beyond tolerance:\n  " + "\n  ".join(bad))
    return table
