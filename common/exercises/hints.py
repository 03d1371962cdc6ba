"""The likely causes the report names when no known bug fits: their texts (``TAG_HINTS``,
``HINTS``) and the detectors that recognise them from what the stages saw. A detector returns a
list of ``(key, format arguments)``; an exercise's ``hints`` replace a text by its key. To add a
pattern: a text here, a detector below, and a call in the stage that sees it (``stages``)."""
from __future__ import annotations

import difflib
import math
import re
from typing import Optional

from torch import nn

from common.exercises.registry import Case, Exercise
from common.exercises.running import Layer, grad_close

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

#: The default near-miss cause of a block without batch norm whose modules say nothing more.
_APPROXIMATED = ("a function is approximated, such as a hard sigmoid (F.hardsigmoid, "
                 "nn.Hardsigmoid: piecewise linear) as the gate where the paper has the sigmoid, "
                 "or a hard swish for SiLU")

HINTS = {
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
                              "under 5% of the output's range): {causes}.",
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
    "random-in-train": "Your block is random in train mode: {which}. The exercise's block has "
                       "none (the statement says so; the reference is the same in every "
                       "training step), so the checker compares in train mode too: leave it "
                       "out, or give it probability 0.",
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
    "initial-value": "Your block starts from other values than the paper's: {pairs}. The "
                     "checker copies the reference's values into your block for every other "
                     "comparison, so it compares these at their start: a parameter the paper "
                     "starts at a constant must start there (see the exercise's statement).",
    "device": "A tensor created inside forward without the input's device and dtype "
              "(`torch.zeros(n, c, h, w)` lives on the CPU in float32 whatever x is): on a GPU "
              "the block fails, in mixed precision it changes the dtype. Create it from x: "
              "`x.new_zeros(n, c, h, w)`, `torch.zeros_like(...)`, or `torch.zeros(..., "
              "device=x.device, dtype=x.dtype)`; or pad with `F.pad`.",
    "dtype-cast": "Your block casts to {dtype} inside forward (`.float()`, `.to(torch.float32)`, "
                  "`dtype=torch.float32`): the output's dtype is not the input's, so in mixed "
                  "precision (bfloat16, float16) the next layer gets another dtype than it "
                  "expects, and the block costs float32's time and memory. Keep the input's "
                  "dtype: leave the cast out, or cast back with `.to(x.dtype)`.",
    "se-position": "Your SE block sits {yours}; the reference's {ref}: check after which layer "
                   "the SE block acts and how many channels it rescales.",
    "se-reduction": "Your SE block squeezes {width} channels to {yours} (a reduction ratio r = "
                    "{r_yours:g}); the reference's to {ref} (r = {r_ref:g}): check the reduction "
                    "ratio, and which width it divides.",
    "bn-momentum": "The outputs agree, but after one training step the batch norms' running "
                   "statistics differ: check the batch norm's momentum (PyTorch's 0.1 is the "
                   "0.9 of TensorFlow/Keras: new = (1 - momentum) * old + momentum * batch).",
    "width-x4": "A factor of 4 in the parameters: a bottleneck's width multiplied (or divided) by "
                "the expansion factor 4 where it should not be. Check which layers work at the "
                "narrow width and which only at the wide one.",
    "groups": "Your {pairs}: a depthwise convolution has one filter per channel, "
              "groups = channels (`nn.Conv2d(c, c, k, padding=k // 2, groups=c)`); without "
              "groups it is a full convolution.",
    "conv-bias": "Your convolutions {yours} (nn.Conv2d has bias=True by default). Whether a "
                 "conv has one is the reference's choice: before a batch norm a bias is "
                 "redundant (the batch norm's shift replaces it), but weights saved with one "
                 "(torchvision's vgg*_bn) need it to load; see the exercise's statement.",
    "layer-width": "A layer's width differs ({pairs}): check how many channels each layer makes "
                   "(an expansion or reduction ratio; which width a layer works at).",
    "missing-layer": "The reference has {names} where your block has nothing like it.",
    "extra-layer": "Your block has {names}, which the reference does not have.",
    "regrouped": "Your block has the same parameters as the reference, but held by other "
                 "layers: yours {yours}; the reference's {ref}. The checker compares layer by "
                 "layer (each module with parameters of its own is a layer), so it cannot tell "
                 "which of yours is which: give each its own module. A norm written as the "
                 "block's own weight and bias (used with F.layer_norm, or by hand) is such a "
                 "case: make it a module (nn.LayerNorm, or a module of your own that holds its "
                 "weight and bias).",
    "unused-layer": "Your block has layers that forward never uses: {names}.",
    "shared-layer": "Your forward uses the same layer twice ({names}): every conv and batch norm "
                    "of the block needs its own module, with its own weights.",
    "kernel-size": "A kernel size differs: {pairs}.",
    "padding": "The height and width shrink or grow by a few pixels: the padding. A KxK conv "
               "keeps the size with padding K // 2 (1 for 3x3, 0 for 1x1).",
    "padding-mismatch": "Two maps whose height or width differ by a few pixels ({sizes}) meet, "
                        "at the addition of the branch and the input, say: a convolution's "
                        "padding does not keep the size. A KxK conv keeps it with padding K // 2 "
                        "(3 for 7x7, 1 for 3x3, 0 for 1x1).",
    "transposed": "Your height and width are swapped ({sizes}): a permute back that does not undo "
                  "the first one. permute(0, 3, 1, 2) undoes permute(0, 2, 3, 1) ((N, C, H, W) "
                  "-> (N, H, W, C) -> (N, C, H, W)); permute(0, 3, 2, 1) gives (N, C, W, H). On "
                  "square maps the shapes still match.",
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


def hint_text(key: str, fmt: dict, ex: Optional[Exercise] = None) -> str:
    if key.startswith("tag:"):
        return fmt["text"]
    text = ex.hints.get(key) if ex is not None else None
    return (text or HINTS[key]).format(**fmt)


# --------------------------------------------------------------------------- the layer table

def layer_table(cand: list, ref: list) -> tuple[str, list]:
    """Yours and the reference's layers side by side, aligned by kind of layer; and the
    (yours, reference) pairs that differ."""
    kinds = lambda layers: [layer.kind for layer in layers]            # noqa: E731
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


# --------------------------------------------------------------------------- parameters

def param_hints(cand: list, ref: list, pairs: list) -> list:
    """What a difference in the parameters, layer by layer, points to."""
    moved = se_position(cand, ref)
    if moved:              # a moved SE block misaligns the table: the other patterns would mislead
        return moved + unused_hints(cand, ref)
    regrouped = _regrouped(cand, ref)
    if regrouped:
        return regrouped
    hints = _se_reduction(cand, ref)
    convs = [(la, lb) for la, lb in pairs if _conv(la) and _conv(lb)]
    grouped = [(la, lb) for la, lb in convs if la.module.groups != lb.module.groups]
    hints += _groups(grouped)
    plain = [(la, lb) for la, lb in pairs if (la, lb) not in grouped
             and not (la.pooled_fc or lb.pooled_fc)]
    if _width_x4(cand, ref, plain, whole=not (grouped or len(plain) < len(pairs))):
        hints.append(("width-x4", {}))
    hints += _conv_bias(convs) + _kernel_size(convs) + _layer_width(plain)
    hints += _missing_or_extra(cand, ref) + unused_hints(cand, ref)
    shared = [f"{layer.name} {layer.calls} times" for layer in cand if layer.calls > 1]
    if shared and all(layer.calls <= 1 for layer in ref):
        hints.append(("shared-layer", {"names": ", ".join(shared)}))
    return hints


def _conv(layer: Layer) -> bool:
    return isinstance(layer.module, nn.modules.conv._ConvNd)


def _k(conv: nn.Module) -> str:
    return "x".join(map(str, conv.kernel_size))


def _groups(grouped: list) -> list:
    text = "; ".join(f"{la.name} ({_k(la.module)}, {la.module.in_channels}→"
                     f"{la.module.out_channels}) has groups={la.module.groups}, the reference's "
                     f"{lb.name or 'block'} groups={lb.module.groups}" for la, lb in grouped)
    return [("groups", {"pairs": text})] if grouped else []


def _width_x4(cand: list, ref: list, pairs: list, whole: bool) -> bool:
    total_c, total_r = sum(layer.n_params for layer in cand), sum(layer.n_params for layer in ref)
    ratios = [la.n_params / lb.n_params for la, lb in pairs if lb.n_params]
    return any(r in (4, 16, 1 / 4, 1 / 16) for r in ratios) or (whole and total_r > 0 and any(
        math.isclose(total_c / total_r, f, rel_tol=0.1) for f in (4, 1 / 4)))


def _conv_bias(convs: list) -> list:
    biased = [(a.module.bias is not None) for a, b in convs
              if a.module.weight.shape == b.module.weight.shape
              and (a.module.bias is None) != (b.module.bias is None)]
    if not biased:
        return []
    return [("conv-bias", {"yours": "have a bias where the reference's have none" if all(biased)
                           else "have no bias where the reference's have one"})]


def _kernel_size(convs: list) -> list:
    ks = [f"yours {_k(a.module)}, the reference's {_k(b.module)}" for a, b in convs
          if a.module.kernel_size != b.module.kernel_size]
    return [("kernel-size", {"pairs": "; ".join(ks)})] if ks else []


def _layer_width(pairs: list) -> list:
    """Convolutions or FCs of the same kind whose channels in or out differ."""
    ws = [f"{la.name}: yours {la.width[0]}→{la.width[1]}, the reference's {lb.width[0]}→"
          f"{lb.width[1]}" for la, lb in pairs
          if la.width and lb.width and la.width != lb.width and la.kind == lb.kind]
    return [("layer-width", {"pairs": "; ".join(ws)})] if ws else []


def _counts(layers: list) -> dict:
    out: dict = {}
    for layer in layers:
        out[layer.signature] = out.get(layer.signature, 0) + 1
    return out


def _missing_or_extra(cand: list, ref: list) -> list:
    """Layers the reference has and yours lacks (or the other way round), when every other
    layer is the same."""
    cc, rc = _counts(cand), _counts(ref)
    if all(cc.get(s, 0) <= n for s, n in rc.items()) and len(cand) < len(ref):
        seen: dict = {}
        missing = []
        for layer in ref:
            seen[layer.signature] = seen.get(layer.signature, 0) + 1
            if seen[layer.signature] > cc.get(layer.signature, 0):
                missing.append(layer.desc)
        return [("missing-layer", {"names": "; ".join(missing)})]
    if all(rc.get(s, 0) <= n for s, n in cc.items()) and len(cand) > len(ref):
        extra = [layer.desc for layer in cand
                 if layer.calls and cc[layer.signature] > rc.get(layer.signature, 0)]
        return [("extra-layer", {"names": "; ".join(extra)})] if extra else []
    return []


def _regrouped(cand: list, ref: list) -> list:
    """The same parameters, held by other layers (a LayerNorm's weight and bias as loose
    parameters of the block): every parameter's shape is the reference's, the layers not."""
    def flat(layers):
        return sorted(s for layer in layers for s in layer.signature)
    if flat(cand) != flat(ref) or _counts(cand) == _counts(ref):
        return []
    rc, cc = _counts(ref), _counts(cand)
    yours = [layer.desc for layer in cand if cc[layer.signature] > rc.get(layer.signature, 0)]
    theirs = [layer.desc for layer in ref if rc[layer.signature] > cc.get(layer.signature, 0)]
    return [("regrouped", {"yours": "; ".join(yours), "ref": "; ".join(theirs)})]


def unused_hints(cand: list, ref: list, outs=None, k: int = 0) -> list:
    """Layers forward never calls (and, when ``outs`` can tell, that no gradient reaches: a
    layer used through its weights, F.batch_norm(x, bn.running_mean, ...), is used)."""
    unused = [layer for layer in cand if layer.calls == 0]
    if unused and outs is not None and outs.maps:
        mapping, found = outs.maps[k][1], outs.grads(k)[1]
        unused = [layer for layer in unused
                  if all(grad_close(found.get(mapping.get(key)), None)
                         for key in layer.keys if key in mapping)]
    unused = [layer.name for layer in unused]
    return [("unused-layer", {"names": ", ".join(unused)})] if unused and all(
        layer.calls for layer in ref) else []


# --------------------------------------------------------------------------- SE blocks

def _se(layers: list) -> Optional[tuple]:
    """The SE block, found by structure: (how many other layers forward uses before it, the
    layer just before it, its width, its reduced width), or None. Its first FC on a pooled
    input is where it starts (``Layer.pooled_fc``)."""
    used = [layer for layer in layers if layer.calls]
    k = next((j for j, layer in enumerate(used) if layer.pooled_fc), None)
    if k is None or not used[k].width:
        return None
    before = [layer for layer in used[:k] if not layer.pooled_fc]
    width, reduced = used[k].width
    return len(before), (before[-1].name if before else "the input"), width, reduced


def se_position(cand: list, ref: list) -> list:
    """Where the SE block sits in yours and in the reference, when it rescales another number
    of channels (a moved SE block). Told by structure, never by the layers' names; where the
    widths agree, its place in the order of use cannot tell it apart from a shortcut computed
    first, so this says nothing."""
    a, b = _se(cand), _se(ref)
    if a is None or b is None or a[2] == b[2]:
        return []
    return [("se-position", {"yours": f"after {a[1]}, on {a[2]} channels",
                             "ref": f"after {b[1]}, on {b[2]} channels"})]


def _se_reduction(cand: list, ref: list) -> list:
    a, b = _se(cand), _se(ref)
    if a is None or b is None or a[2] != b[2] or a[3] == b[3]:
        return []
    return [("se-reduction", {"width": a[2], "yours": a[3], "ref": b[3],
                              "r_yours": a[2] / a[3], "r_ref": b[2] / b[3]})]


# --------------------------------------------------------------------------- shapes and errors

def shape_hints(yours: tuple, ref: tuple) -> list:
    hints = []
    if len(yours) == len(ref) == 4:
        if yours[1] != ref[1] and (yours[1] * 4 == ref[1] or ref[1] * 4 == yours[1]):
            hints.append(("channels-x4", {}))
        hy, hr = yours[2], ref[2]
        if yours[2:] != ref[2:] and yours[2:] == ref[2:][::-1]:
            hints.append(("transposed", {"sizes": f"yours {yours[2]}x{yours[3]}, the "
                                                  f"reference's {ref[2]}x{ref[3]}"}))
        elif hy != hr:
            if hy > hr and hy % hr == 0 and hr > 1:
                hints.append(("spatial-larger", {"factor": hy // hr}))
            elif hr > hy and hr % hy == 0 and hy > 1:
                hints.append(("spatial-smaller", {"factor": hr // hy}))
            elif abs(hy - hr) <= 4:
                hints.append(("padding", {}))
    return hints


def error_hints(err: BaseException, case: Case) -> list:
    msg = str(err)
    if re.search(r"expected input.*to have \d+ channels", msg):
        return [("channel-mismatch", {})]
    m = re.search(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at "
                  r"non-singleton dimension (\d+)", msg)
    if m is None:
        return []
    a, b, dim = (int(v) for v in m.groups())
    spatial = case.input_shape[2:] if len(case.input_shape) == 4 else ()
    if dim >= 2 and len(spatial) == 2 and spatial[0] != spatial[1] and {a, b} == set(spatial):
        return [("transposed", {"sizes": f"{a} and {b} where the input is "
                                         f"{spatial[0]}x{spatial[1]}"})]
    if dim >= 2 and spatial and max(a, b) % min(a, b) != 0:
        return [("padding-mismatch", {"sizes": f"{a} and {b}"})]
    return [("shape-mismatch", {})]


def tag_hints(ex: Exercise, failing: set) -> list:
    hints = []
    if not failing or len(failing) == len(ex.cases):
        return hints
    tags = sorted({t for c in ex.cases for t in c.tags})
    for t in tags:
        if {i for i, c in enumerate(ex.cases) if t in c.tags} == failing:
            hints.append((f"tag:{t}", {"text": ex.hints.get(t) or TAG_HINTS.get(t)
                                       or f"Wrong exactly in the cases tagged {t!r}."}))
    return hints


# --------------------------------------------------------------------------- outputs

def near_misses(model: nn.Module) -> str:
    """The details that make outputs close but not equal, for the modules the reference has:
    a norm's eps and axes, GELU's form; by default, a hard sigmoid or a hard swish."""
    kinds = tuple(type(m) for m in model.modules())
    causes = []
    if any(issubclass(t, (nn.LayerNorm, nn.GroupNorm)) for t in kinds):
        causes.append("the norm's eps (nn.LayerNorm's default is 1e-5; the statement says which "
                      "this block uses) or the axes it normalises over")
    if any(issubclass(t, nn.GELU) for t in kinds):
        causes.append("GELU's form (nn.GELU() is exact; approximate=\"tanh\" and x * "
                      "sigmoid(1.702 x) approximate it)")
    if not causes:
        return _APPROXIMATED
    if any(issubclass(t, (nn.Sigmoid, nn.SiLU)) for t in kinds):
        causes.append("a hard sigmoid for the sigmoid, or a hard swish for SiLU")
    return "a numerical detail differs: " + "; or ".join(causes)


def output_hints(first: list, ref_model: nn.Module, with_bn: bool) -> list:
    """What (your outputs, the reference's) pairs of the failing cases point to."""
    hints = []
    if all(a.min() >= 0 > b.min() for a, b in first):
        hints.append(("activation-after", {}))
    if all(a.min() < 0 <= b.min() for a, b in first):
        hints.append(("activation-missing", {}))
    # an eps differs by far less than an approximated function (hard sigmoid: up to 2%)
    small = 1e-2 if with_bn else 5e-2
    if all((a - b).abs().max() < small * (b.max() - b.min()) for a, b in first):
        hints.append(("small-difference", {}) if with_bn else
                     ("small-difference-no-bn", {"causes": near_misses(ref_model)}))
    return hints


def late_strides(cand: list, ref: list) -> list:
    """Your 1x1 convolutions with a stride, when you have more of them than the reference
    (a stride moved from the 3x3 into a later 1x1 conv)."""
    def strided(layers):
        return [layer.name for layer in layers
                if isinstance(layer.module, nn.modules.conv._ConvNd)
                and all(k == 1 for k in layer.module.kernel_size)
                and any(s != 1 for s in layer.module.stride)]
    yours = strided(cand)
    return yours if len(yours) > len(strided(ref)) else []
