"""Looking inside a model: parameters, multiply-adds, a block-by-block summary, the paper's
numbers beside ours, and the equivalence check against a reference implementation."""
from __future__ import annotations

import math
from copy import deepcopy
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


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
    from torchinfo import summary as _summary

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
        import difflib
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
    """``model.load_state_dict(state_dict, strict=True)``, with an error that lists what differs."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        parts = state_dict_differences(model.state_dict(), state_dict, source) or [str(err)]
        raise ValueError(
            f"The weights of {source} do not fit {type(model).__name__}: " + "; ".join(parts)
            + ". Module names and shapes must match the reference's exactly.") from err


#: The normalisation layers whose parameters and statistics the checks randomise: batch, sync-batch,
#: instance, group, layer and RMS norm, and any other module that keeps running statistics.
NORM_LAYERS = tuple(t for t in (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm,
                                getattr(nn, "RMSNorm", None)) if t is not None)
# (entry, low, high): scales and variances in [0.5, 1.5], shifts and means in [-0.5, 0.5]. Far
# enough from the default (1, 0, 0, 1) that a skipped, swapped or misplaced layer changes the
# output by far more than any tolerance; close enough to 1 that deep nets stay well scaled.
_NORM_RANGES = (("weight", 0.5, 1.5), ("bias", -0.5, 0.5),
                ("running_mean", -0.5, 0.5), ("running_var", 0.5, 1.5))


def is_norm_layer(module: nn.Module) -> bool:
    """A normalisation layer: one of ``NORM_LAYERS`` or any module with a ``running_var`` buffer."""
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


# Range of the random values given to a parameter that starts at a constant (``constant_parameters``):
# a non-zero constant is a scale (layer scale starts at 1e-6: ConvNeXt, CaiT), drawn in [0.5, 1.5]
# with its sign; a zero constant is a shift (a bias initialised to 0), drawn in [-0.5, 0.5].
_CONSTANT_SCALE, _CONSTANT_SHIFT = (0.5, 1.5), (-0.5, 0.5)


def constant_parameters(module: nn.Module) -> list[str]:
    """Names of ``module``'s floating-point parameters outside normalisation layers whose entries
    are all equal: a parameter initialised to a constant and not trained since, above all
    *layer scale* (ConvNeXt: ``layer_scale``, every entry 1e-6 at initialisation) and biases
    initialised to zero. At such values a wrong branch hides: ConvNeXt's block output is
    ``x + 1e-6 * branch(x)``, so a block with ReLU in place of GELU, or a LayerNorm over the
    wrong axis, changes the outputs by about 1e-6, inside any float tolerance."""
    inside = {id(p) for m in module.modules() if is_norm_layer(m) for p in m.parameters(recurse=False)}
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
    inside = {id(t) for m in norms for t in [*m.parameters(recurse=False), *m.buffers(recurse=False)]}
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


def sample_photo() -> torch.Tensor:
    """The flower photo that ships with scikit-learn (no download): uint8, (3, H, W)."""
    from sklearn.datasets import load_sample_image

    return torch.from_numpy(load_sample_image("flower.jpg").copy()).permute(2, 0, 1)


def classify_photo(model: nn.Module, weights, photo: torch.Tensor | None = None, top: int = 5,
                   rename=None, offline: bool | None = None, show: bool = True):
    """Official weights in *our* model, on a real photo: download torchvision's ``weights`` (a
    ``WeightsEnum`` member such as ``ResNet50_Weights.IMAGENET1K_V1``), load them into ``model``
    with ``strict=True`` (a name or shape that differs raises), and classify ``photo`` (default
    ``sample_photo()``) with the weights' own preprocessing (``weights.transforms()``).
    ``rename(key) -> key`` maps old checkpoint names first (DenseNet's ``norm.1`` -> ``norm1``).
    Shows the photo (``show``), prints the ``top`` classes and returns them as
    ``[(probability, category), ...]``. Offline (``common.OFFLINE``) or when the download fails
    it says so and returns None: the weights need internet (Colab has it; the tests do not)."""
    from . import runtime

    label = f"{type(weights).__name__}.{weights.name}"
    photo = sample_photo() if photo is None else photo
    batch = weights.transforms()(photo).unsqueeze(0)
    if runtime.OFFLINE if offline is None else offline:
        print(f"Offline (IMAGENET5_OFFLINE=1): {label} cannot be downloaded, so this cell stops "
              f"here. On Colab it loads them into our {type(model).__name__} and classifies the "
              "photo.")
        return None
    try:
        state = weights.get_state_dict(progress=True)
    except Exception as err:                          # noqa: BLE001 (no internet, a proxy, ...)
        print(f"Could not download {weights.url} ({type(err).__name__}: {err}); moving on.")
        return None
    if rename is not None:
        state = {rename(k): v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        probs = model.eval()(batch).softmax(1)[0]
    if show:
        import matplotlib.pyplot as plt

        plt.figure(figsize=(4, 3))
        plt.imshow(photo.permute(1, 2, 0))
        plt.axis("off")
        plt.show()
    result = [(p.item(), weights.meta["categories"][i]) for p, i in zip(*probs.topk(top))]
    for p, name in result:
        print(f"{p:6.1%}  {name}")
    return result
