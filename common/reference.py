"""The check against the official implementation: our model must compute what the reference
computes, with the reference's weights (``check_against_reference``). First the reference's
normalisation layers get random affine parameters and running statistics, and its parameters
that start at a constant (layer scale, zero biases) random values: at default initialisation a
batch norm is the identity in eval mode and ConvNeXt's layer scale is 1e-6, so a misplaced,
swapped or skipped layer would pass. Then a strict load, and equal outputs.

Also the pieces the checks, the tests and the exercises share: ``random_reference`` (a big
reference built fast, with random weights), ``state_dict_differences`` and
``load_state_dict_strict`` (what keeps one state dict from loading into a model, in words).
"""
from __future__ import annotations

import math
from copy import deepcopy
from typing import Sequence

import torch
from torch import nn


def state_dict_differences(ours: dict, theirs: dict, source: str = "the reference") -> list[str]:
    """What keeps ``theirs`` from loading into a model whose state_dict is ``ours`` (empty when
    every name and shape matches): names only one side has, and shapes that differ. Works on
    meta-device state dicts, so whole ImageNet models compare without allocating weights."""
    missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    shapes = [k for k in ours if k in theirs and ours[k].shape != theirs[k].shape]
    parts = []
    if missing:
        parts.append(f"ours has {len(missing)} entries {source} lacks, e.g. {missing[:4]}")
    if extra:
        parts.append(f"{source} has {len(extra)} entries ours lacks, e.g. {extra[:4]}")
    if shapes:
        parts.append(f"{len(shapes)} entries differ in shape, e.g. " + ", ".join(
            f"{k}: ours {tuple(ours[k].shape)} vs {tuple(theirs[k].shape)}" for k in shapes[:3]))
    return parts


def load_state_dict_strict(model: nn.Module, state_dict: dict, source: str = "the reference"):
    """``model.load_state_dict(state_dict, strict=True)``, with an error that lists what
    differs."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        parts = state_dict_differences(model.state_dict(), state_dict, source) or [str(err)]
        raise ValueError(
            f"The weights of {source} do not fit {type(model).__name__}: " + "; ".join(parts)
            + ". Module names and shapes must match the reference's exactly.") from err


#: The normalisation layers whose parameters and statistics the checks randomise: batch,
#: sync-batch, instance, group, layer and RMS norm, and any other module that keeps running
#: statistics.
NORM_LAYERS = tuple(t for t in (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm,
                                getattr(nn, "RMSNorm", None)) if t is not None)
# (entry, low, high): scales and variances in [0.5, 1.5], shifts and means in [-0.5, 0.5]. Far
# enough from the default (1, 0, 0, 1) that a skipped, swapped or misplaced layer changes the
# output by far more than any tolerance; close enough to 1 that deep nets stay well scaled.
_NORM_RANGES = (("weight", 0.5, 1.5), ("bias", -0.5, 0.5),
                ("running_mean", -0.5, 0.5), ("running_var", 0.5, 1.5))


def is_norm_layer(module: nn.Module) -> bool:
    """A normalisation layer: one of ``NORM_LAYERS`` or any module with a ``running_var``
    buffer."""
    return isinstance(module, NORM_LAYERS) or isinstance(getattr(module, "running_var", None),
                                                         torch.Tensor)


def random_norm_state(module: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random values for a normalisation layer's affine parameters and running statistics (those
    it has: ``weight``, ``bias``, ``running_mean``, ``running_var``), keyed by their local names.
    The one place the checks draw them, so that ``random_reference`` and
    ``check_against_reference`` agree."""
    out = {}
    for name, low, high in _NORM_RANGES:
        t = getattr(module, name, None)
        if isinstance(t, torch.Tensor):
            out[name] = torch.empty(t.shape).uniform_(low, high, generator=generator)
    return out


@torch.no_grad()
def random_reference(build, seed: int = 0, reuse: dict | None = None) -> nn.Module:
    """``build()`` (for example ``torchvision.models.vgg16``) with random weights, made fast: the
    model is constructed on the meta device (no default initialisation, which dominates the time
    of building a big model), then every weight gets fan-in scaled uniform values and every
    normalisation layer random affine parameters and running statistics (``random_norm_state``),
    so that a strict load followed by equal outputs exercises every entry. ``reuse``: a dict
    shared between calls; entries of the same name and shape are drawn once and shared (VGG's
    124M-parameter classifier is the same in all eight torchvision VGGs)."""
    with torch.device("meta"):
        ref = build()
    g = torch.Generator().manual_seed(seed)
    reuse = {} if reuse is None else reuse
    norm = {}                  # state_dict key -> (norm layer's name, its module, the entry)
    for name, m in ref.named_modules():
        if is_norm_layer(m):
            norm.update({f"{name}.{k}" if name else k: (name, m, k) for k, *_ in _NORM_RANGES})
    drawn, state = {}, {}
    for key, t in ref.state_dict().items():
        if key in reuse and reuse[key].shape == t.shape:
            state[key] = reuse[key]
            continue
        if key in norm:
            name, m, entry = norm[key]
            if name not in drawn:
                drawn[name] = random_norm_state(m, g)
            v = drawn[name][entry]
        elif t.is_floating_point():
            bound = 1 / math.sqrt(t[0].numel()) if t.ndim > 1 else 0.1
            v = torch.empty(t.shape).uniform_(-bound, bound, generator=g)
        else:
            v = torch.zeros(t.shape, dtype=t.dtype)        # num_batches_tracked
        state[key] = reuse[key] = v
    ref.load_state_dict(state, strict=True, assign=True)
    return ref


# Range of the random values given to a parameter that starts at a constant
# (``constant_parameters``): a non-zero constant is a scale (layer scale starts at 1e-6 in
# ConvNeXt; in CaiT at 1e-5 for its 24-layer models and 1e-6 for its 36- and 48-layer ones,
# facebookresearch/deit@0176669, cait_models.py), drawn in [0.5, 1.5] with its sign; a zero
# constant is a shift (a bias initialised to 0), drawn in [-0.5, 0.5].
_CONSTANT_SCALE, _CONSTANT_SHIFT = (0.5, 1.5), (-0.5, 0.5)


def constant_parameters(module: nn.Module) -> list[str]:
    """Names of ``module``'s floating-point parameters outside normalisation layers whose entries
    are all equal: a parameter initialised to a constant and not trained since, above all
    *layer scale* (ConvNeXt: ``layer_scale``, every entry 1e-6 at initialisation) and biases
    initialised to zero. At such values a wrong branch hides: ConvNeXt's block output is
    ``x + 1e-6 * branch(x)``, so a block with ReLU in place of GELU, or a LayerNorm over the
    wrong axis, changes the outputs by about 1e-6, inside any float tolerance."""
    inside = {id(p) for m in module.modules() if is_norm_layer(m)
              for p in m.parameters(recurse=False)}
    names = []
    for name, p in module.named_parameters():
        if (id(p) not in inside and p.is_floating_point() and p.device.type != "meta"
                and p.numel() > 0 and bool((p == p.reshape(-1)[0]).all())):
            names.append(name)
    return names


def random_constant_state(t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random values for a parameter that starts at a constant (``constant_parameters``): a
    non-zero constant (a scale) in [0.5, 1.5] with its sign, a zero constant (a shift) in
    [-0.5, 0.5]. Far from layer scale's 1e-6, so that every block's branch counts."""
    c = t.reshape(-1)[0].item()
    low, high = _CONSTANT_SHIFT if c == 0 else _CONSTANT_SCALE
    v = torch.empty(t.shape).uniform_(low, high, generator=generator)
    return v if c >= 0 else -v


@torch.no_grad()
def randomized_norm_copy(model: nn.Module, seed: int = 0) -> tuple[nn.Module, int]:
    """A copy of ``model`` whose normalisation layers have random affine parameters and running
    statistics (``random_norm_state``), and whose parameters that start at a constant (layer
    scale, zero biases: ``constant_parameters``) have random values (``random_constant_state``);
    and the number of such layers and parameters. ``model`` is untouched; the copy shares every
    other tensor with it (so copying a big model costs nearly nothing)."""
    norms = [m for m in model.modules() if is_norm_layer(m)]
    constant = set(constant_parameters(model))
    params = dict(model.named_parameters())
    inside = {id(t) for m in norms
              for t in [*m.parameters(recurse=False), *m.buffers(recurse=False)]}
    inside |= {id(params[n]) for n in constant}
    memo = {id(t): t for t in [*model.parameters(), *model.buffers()] if id(t) not in inside}
    copy = deepcopy(model, memo)
    g = torch.Generator().manual_seed(seed)
    n = 0
    for m in copy.modules():
        if is_norm_layer(m):
            for name, v in random_norm_state(m, g).items():
                getattr(m, name).copy_(v)
            n += 1
    for name, p in copy.named_parameters():
        if name in constant:
            p.copy_(random_constant_state(p, g))
            n += 1
    return copy, n


@torch.no_grad()
def check_against_reference(ours: nn.Module, reference: nn.Module,
                            input_size: Sequence[int] = (2, 3, 224, 224), atol: float = 1e-5,
                            rtol: float = 1e-4, seed: int = 0, verbose: bool = True,
                            label: str | None = None) -> float:
    """Check that ``ours`` computes what ``reference`` computes, with the reference's weights.

    First, on a copy of ``reference`` (the caller's model is never modified), every
    normalisation layer (batch, group, layer norm, ...: ``NORM_LAYERS``) gets random affine
    parameters and running statistics, and every other parameter whose entries are all equal
    (layer scale, biases initialised to zero: ``constant_parameters``) random values. A
    default-initialised batch norm (weight 1, bias 0, mean 0, variance 1) is the identity in
    eval mode, so without this step a batch norm placed after the ReLU, two batch norms
    swapped, or one never applied would all pass; and ConvNeXt's layer scale starts at 1e-6,
    which hides any bug in a block's branch (GELU replaced by ReLU, a LayerNorm over the wrong
    axis, a missing permute) below every float tolerance. Then the
    copy's ``state_dict()`` is loaded into ``ours`` with strict=True, both run in eval mode on
    the same random input, their outputs must be equal (torch.testing.assert_close with ``atol``
    and ``rtol``), and the largest absolute difference is returned. ``label`` names the pair in
    the printed line. ``ours`` keeps the loaded weights and is left in eval mode."""
    n_constant = len(constant_parameters(reference))
    reference, n_random = randomized_norm_copy(reference, seed)
    n_norm = n_random - n_constant
    load_state_dict_strict(ours, reference.state_dict(), type(reference).__name__)
    ours.eval()
    reference.eval()
    p = next(ours.parameters(), None)
    x = torch.randn(*input_size, generator=torch.Generator().manual_seed(seed))
    x = x.to(p.device) if p is not None else x
    a, b = ours(x), reference(x)
    diff = (a - b).abs().max().item()
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)
    if verbose:
        label = label or f"{type(ours).__name__} == {type(reference).__name__}"
        constants = (f", {n_constant} parameters that start at a constant (layer scale, zero "
                     "biases) random values" if n_constant else "")
        norms = (f" (the reference's {n_norm} normalisation layers given random statistics"
                 f"{constants} first)" if n_random else "")
        print(f"{label}: strict load OK{norms}, outputs {tuple(a.shape)} match, "
              f"max |ours - reference| = {diff:.2e}")
    return diff
