"""Exercises of notebook 08 (ConvNeXt, Liu et al. 2022, arXiv:2201.03545): the ConvNeXt block and
the downsampling layer between stages.

The references are the course's saved code (``common.models.convnext``): ``CNBlock(dim)`` with
stochastic depth 0 (the checker compares in train mode too, where dropping would be random), and
the downsampling layer ``nn.Sequential(LayerNorm2d(in_channels), Conv2d(in_channels,
out_channels, 2, stride=2))`` as ``ConvNeXt`` builds it. The checker gives the reference random
weights, LayerNorm parameters *and layer-scale values* (``common.random_reference``): at layer
scale's initial 1e-6 every block would look like the identity and hide every bug below."""
import torch
from torch import nn
from torch.nn import functional as F

from common.exercises import Case, Mutant, exercise
from common.models import convnext as C


# --------------------------------------------------------------------------- the block's known bugs

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
        Case("wider: 24 channels, 7x7", (24,), (2, 24, 7, 7)),
    ],
    mutants=[
        Mutant("ReLU instead of GELU",
               "The block's one activation is a ReLU. Section 2.6 replaces ReLU by GELU "
               "(nn.GELU()). At layer scale's initial 1e-6 this bug is invisible in the outputs; "
               "with trained (here: random) layer-scale values it is not.", forward=_relu),
        Mutant("LayerNorm over the whole sample",
               "Your LayerNorm normalises over (H, W, C) (or the whole map), like "
               "nn.GroupNorm(1, C). ConvNeXt's LayerNorm normalises the C values of each pixel: "
               "nn.LayerNorm(C) on the channels-last (N, H, W, C) map.", forward=_norm_over_sample),
        Mutant("layer scale after the addition",
               "Layer scale multiplies the sum x + branch(x), so it also scales the identity path. "
               "It belongs on the branch only: out = x + gamma * branch(x) (sec. 3.1; CaiT).",
               forward=_scale_after_addition),
        Mutant("map transposed by the second permute",
               "The permute back to channels-first swaps H and W: use permute(0, 3, 1, 2) after "
               "permute(0, 2, 3, 1). On square maps the shapes still match.", forward=_transposed),
        Mutant("LayerNorm before the depthwise conv",
               "The LayerNorm comes first, as in a Transformer's pre-norm block. In ConvNeXt it "
               "follows the 7x7 depthwise convolution, before the 1x1 layers (Figure 4).",
               forward=_norm_first),
    ],
    hints={"square": "Right on square maps, wrong on a non-square one: H and W are swapped "
                     "somewhere (check the order of your permutes)."},
)
def cn_block(dim):
    return C.CNBlock(dim, layer_scale=1e-6, stochastic_depth_prob=0.0)


# --------------------------------------------------------------------------- the downsampling layer

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
               "The downsampling convolution is ResNet's 3x3 with stride 2. ConvNeXt's is 2x2 with "
               "stride 2, non-overlapping like Swin's patch merging (sec. 2.6).", build=_resnet_style),
    ],
    hints={"square": "Right on square maps, wrong on a non-square one: check which dimensions "
                     "your norm reduces over."},
)
def downsample(in_channels, out_channels):
    return _downsample(in_channels, out_channels)
