"""Exercises of notebook 08 (ConvNeXt, Liu et al. 2022, arXiv:2201.03545): the ConvNeXt block and
the downsampling layer between stages.

The references are the course's saved code (``common.models.convnext``): ``CNBlock(dim)`` with
stochastic depth 0 (the checker compares in train mode too, where dropping would be random), and
the downsampling layer ``nn.Sequential(LayerNorm2d(in_channels), Conv2d(in_channels,
out_channels, 2, stride=2))`` as ``ConvNeXt`` builds it. The checker gives the reference random
weights, LayerNorm parameters *and layer-scale values* (``common.random_reference``): at layer
scale's initial 1e-6 every block would look like the identity and hide every bug below; the
initial 1e-6 itself is compared on its own (the stage "initial values").

GELU's tanh approximation is an accepted variant of the block, not a bug: section 2.6 names
"the Gaussian Error Linear Unit, or GELU [32]" and the Transformers it comes from, BERT and
GPT-2, whose code uses the tanh form; Hendrycks & Gimpel (arXiv:1606.08415, sec. 2) give it as
an approximation of GELU. The official code and torchvision use the exact ``nn.GELU()``, so the
course does too: their weights reproduce exactly only with it."""
import types

import torch
from torch import nn
from torch.nn import functional as F

from common.exercises import Accepted, Case, Mutant, exercise
from common.models import convnext as C

# -------------------------------------------------------------------------- the block's known bugs

def _branch(block, x, act=None, norm=None, back=(0, 3, 1, 2)):
    """The reference block's branch with one piece swapped (``block.block[0..6]``)."""
    dw, _, ln, fc1, gelu, fc2, _ = block.block
    out = dw(x).permute(0, 2, 3, 1)
    out = (norm or ln)(out)
    out = fc2((act or gelu)(fc1(out)))
    return out.permute(*back)


def _relu(block, x):
    return x + block.layer_scale * _branch(block, x, act=F.relu)


def _norm_over_sample(block, x):
    ln = block.block[2]

    def norm(t):                                     # over (H, W, C), not C alone
        mean = t.mean(dim=(1, 2, 3), keepdim=True)
        var = t.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        return (t - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias
    return x + block.layer_scale * _branch(block, x, norm=norm)


def _scale_after_addition(block, x):
    return block.layer_scale * (x + _branch(block, x))          # scales the identity too


def _transposed(block, x):
    return x + block.layer_scale * _branch(block, x, back=(0, 3, 2, 1))    # H and W swapped


def _norm_over_height_and_width(block, x):
    ln = block.block[2]

    def norm(t):                                     # over (H, W): an instance norm, not C
        mean = t.mean(dim=(1, 2), keepdim=True)
        var = t.var(dim=(1, 2), unbiased=False, keepdim=True)
        return (t - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias
    return x + block.layer_scale * _branch(block, x, norm=norm)


def _no_layer_scale(dim):
    block = cn_block(dim)
    del block.layer_scale
    block.forward = types.MethodType(lambda b, x: x + _branch(b, x), block)   # x + branch(x)
    return block


def _default_eps(dim):
    block = cn_block(dim)
    block.block[2] = nn.LayerNorm(dim)               # eps 1e-5, PyTorch's default
    return block


def _tanh_gelu(dim):
    return C.CNBlock(dim, layer_scale=1e-6, stochastic_depth_prob=0.0,
                     activation=lambda: nn.GELU(approximate="tanh"))


def _norm_first(block, x):
    dw, _, ln, fc1, gelu, fc2, _ = block.block
    out = ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)          # a Transformer's pre-norm
    out = dw(out).permute(0, 2, 3, 1)
    out = fc2(gelu(fc1(out))).permute(0, 3, 1, 2)
    return x + block.layer_scale * out


@exercise(
    "convnext.CNBlock",
    paper="Liu et al. 2022 (arXiv:2201.03545), Figure 4 and sec. 2.3-2.6; layer scale: sec. 3.1",
    cases=[
        # label, positional arguments, input shape, tags
        Case("stage 1 width: 16 channels, an 8x8 map", (16,), (2, 16, 8, 8)),
        Case("a non-square map: 16 channels, 8x6", (16,), (2, 16, 8, 6), tags=("square",)),
        Case("wider: 24 channels, 7x7, small inputs (x 0.1: the LayerNorm's eps counts)", (24,),
             (2, 24, 7, 7), scale=0.1),
    ],
    mutants=[
        Mutant("ReLU instead of GELU",
               "The block's one activation is a ReLU. Section 2.6 replaces ReLU by GELU "
               "(nn.GELU()). At layer scale's initial 1e-6 this bug is invisible in the outputs; "
               "with trained (here: random) layer-scale values it is not.", forward=_relu),
        Mutant("LayerNorm over the whole sample",
               "Your LayerNorm normalises over (H, W, C) (or the whole map), like "
               "nn.GroupNorm(1, C). ConvNeXt's LayerNorm normalises the C values of each pixel: "
               "nn.LayerNorm(C) on the channels-last (N, H, W, C) map.",
               forward=_norm_over_sample),
        Mutant("layer scale after the addition",
               "Layer scale multiplies the sum x + branch(x), so it also scales the identity "
               "path. It belongs on the branch only: out = x + gamma * branch(x) "
               "(sec. 3.1; CaiT).",
               forward=_scale_after_addition),
        Mutant("map transposed by the second permute",
               "The permute back to channels-first swaps H and W: use permute(0, 3, 1, 2) after "
               "permute(0, 2, 3, 1). On square maps the shapes still match.", forward=_transposed),
        Mutant("LayerNorm before the depthwise conv",
               "The LayerNorm comes first, as in a Transformer's pre-norm block. In ConvNeXt it "
               "follows the 7x7 depthwise convolution, before the 1x1 layers (Figure 4).",
               forward=_norm_first),
        Mutant("LayerNorm over the height and width",
               "Your norm computes a mean and variance per channel over the map (H, W), like "
               "nn.InstanceNorm2d or nn.GroupNorm(C, C). ConvNeXt's LayerNorm normalises the C "
               "values of each pixel: nn.LayerNorm(C) on the channels-last (N, H, W, C) map.",
               forward=_norm_over_height_and_width),
        Mutant("LayerNorm with PyTorch's default eps",
               "Your LayerNorm has eps 1e-5, nn.LayerNorm's default; ConvNeXt's is 1e-6 (the "
               "official code and torchvision: LayerNorm(dim, eps=1e-6)). The difference shows "
               "where a pixel's channels vary little.", build=_default_eps),
        Mutant("no layer scale",
               "Your block adds the branch unscaled: out = x + branch(x). ConvNeXt multiplies the "
               "branch by a learned per-channel scale gamma first, nn.Parameter(1e-6 * "
               "torch.ones(dim)) (\"Layer Scale [74] of initial value 1e-6 is applied\", "
               "sec. 3.1).", build=_no_layer_scale),
    ],
    accepted=[
        Accepted("GELU's tanh approximation",
                 "nn.GELU(approximate=\"tanh\") passes: sec. 2.6 says only GELU, citing BERT and "
                 "GPT-2, which use this form, and Hendrycks & Gimpel give it as GELU's "
                 "approximation. The course, the official code and torchvision use the exact "
                 "nn.GELU(), and their weights reproduce exactly only with it.", build=_tanh_gelu),
    ],
    hints={"square": "Right on square maps, wrong on a non-square one: H and W are swapped "
                     "somewhere (check the order of your permutes).",
           "layer-width": "A layer's width differs ({pairs}): the inverted bottleneck's hidden "
                          "layer is 4 x dim wide (sec. 2.4: the 1x1 layer to 4 dim, GELU, the 1x1 "
                          "layer back to dim).",
           "initial-value": "Your block starts from other values than the paper's: {pairs}. "
                            "Layer scale starts at 1e-6 (\"Layer Scale [74] of initial value "
                            "1e-6 is applied\", sec. 3.1): each block's branch then starts "
                            "nearly switched off. The checker copies the reference's values into "
                            "your block for every other comparison, so it compares this one at "
                            "its start."},
)
def cn_block(dim):
    return C.CNBlock(dim, layer_scale=1e-6, stochastic_depth_prob=0.0)


# -------------------------------------------------------------------------- the downsampling layer

def _downsample(in_channels, out_channels):
    return nn.Sequential(C.LayerNorm2d(in_channels, eps=1e-6),
                         nn.Conv2d(in_channels, out_channels, kernel_size=2, stride=2))


def _norm_after_conv(in_channels, out_channels):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=2, stride=2),
                         C.LayerNorm2d(out_channels, eps=1e-6))


def _norm_over_map(layer, x):
    ln, conv = layer
    mean = x.mean(dim=(1, 2, 3), keepdim=True)                   # over (C, H, W): GroupNorm(1, C)
    var = x.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    out = (x - mean) / torch.sqrt(var + ln.eps) * ln.weight[:, None, None] + ln.bias[:, None, None]
    return conv(out)


def _norm_over_width(layer, x):
    ln, conv = layer
    mean = x.mean(dim=-1, keepdim=True)                          # over W: the permute forgotten
    var = x.var(dim=-1, unbiased=False, keepdim=True)
    return conv((x - mean) / torch.sqrt(var + ln.eps))


def _transposed_back(layer, x):
    ln, conv = layer
    out = F.layer_norm(x.permute(0, 2, 3, 1), ln.normalized_shape, ln.weight, ln.bias, ln.eps)
    return conv(out.permute(0, 3, 2, 1))                         # (N, C, W, H): H and W swapped


def _resnet_style(in_channels, out_channels):
    return nn.Sequential(C.LayerNorm2d(in_channels, eps=1e-6),
                         nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1))


@exercise(
    "convnext.Downsample",
    paper="Liu et al. 2022 (arXiv:2201.03545), sec. 2.6 'Separate downsampling layers'",
    cases=[
        Case("stage 1 -> 2: 16 -> 32 channels, 8x8", (16, 32), (2, 16, 8, 8)),
        Case("a non-square map: 16 -> 32, 8x6", (16, 32), (2, 16, 8, 6), tags=("square",)),
        Case("24 -> 48 channels, 6x6", (24, 48), (2, 24, 6, 6)),
    ],
    mutants=[
        Mutant("LayerNorm after the convolution",
               "The LayerNorm follows the 2x2 convolution. Section 2.6 puts one LN *before* each "
               "downsampling layer, over the input's channels.", build=_norm_after_conv),
        Mutant("LayerNorm over the whole map",
               "Your norm computes one mean and variance per sample over (C, H, W), like "
               "nn.GroupNorm(1, C). LayerNorm here normalises the C values of each pixel "
               "(LayerNorm2d: permute to (N, H, W, C), nn.LayerNorm(C), permute back).",
               forward=_norm_over_map),
        Mutant("LayerNorm over the width (permute forgotten)",
               "nn.LayerNorm normalises the LAST dimension: on an (N, C, H, W) map that is the "
               "width W. Permute to (N, H, W, C) first and back afterwards (LayerNorm2d).",
               forward=_norm_over_width),
        Mutant("3x3 convolution with stride 2",
               "The downsampling convolution is ResNet's 3x3 with stride 2. ConvNeXt's is 2x2 "
               "with stride 2, non-overlapping like Swin's patch merging (sec. 2.6).",
               build=_resnet_style),
        Mutant("map transposed by the permute back",
               "Your permute back to channels-first swaps H and W: permute(0, 3, 2, 1) gives "
               "(N, C, W, H); permute(0, 3, 1, 2) undoes permute(0, 2, 3, 1). On square maps the "
               "shapes still match, and the convolution then sees the map transposed.",
               forward=_transposed_back),
    ],
    hints={"square": "Right on square maps, wrong on a non-square one: check which dimensions "
                     "your norm reduces over, and that your permute back undoes the first one."},
)
def downsample(in_channels, out_channels):
    return _downsample(in_channels, out_channels)
