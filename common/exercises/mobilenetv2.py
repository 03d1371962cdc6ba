"""Exercises of notebook 05 (MobileNetV2, Sandler et al. 2018, arXiv:1801.04381): the inverted
residual block with its linear bottleneck.

The reference is the course's saved block (``common.models.mobilenetv2.InvertedResidual``),
called as ``(in_channels, out_channels, stride, expand_ratio)``; the known bugs change one thing
in it (a subclass, or a forward that reuses its layers ``conv[0..]``)."""
from torch import nn

from common.exercises import Case, Mutant, exercise
from common.models import mobilenetv2 as M

# --------------------------------------------------------------------------- known bugs

class _ShortcutWhenChannelsMatch(M.InvertedResidual):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_res_connect = self.out_channels == self.conv[0][0].in_channels   # stride ignored


class _ShortcutWhenStride1(M.InvertedResidual):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_res_connect = self.stride == 1                                # channels ignored


class _NoShortcut(M.InvertedResidual):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_res_connect = False


class _ProjectionShortcut(M.InvertedResidual):
    """A 1x1 conv + BN on the shortcut where the channels change at stride 1."""

    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__(inp, oup, stride, expand_ratio)
        self.shortcut = (nn.Sequential(nn.Conv2d(inp, oup, 1, bias=False), nn.BatchNorm2d(oup))
                         if stride == 1 and inp != oup else None)

    def forward(self, x):
        out = self.conv(x)
        if self.shortcut is not None:
            return out + self.shortcut(x)
        return out + x if self.use_res_connect else out


def _always_expand(inp, oup, stride, expand_ratio):
    block = M.InvertedResidual(inp, oup, stride, expand_ratio)
    if expand_ratio == 1:
        block.conv.insert(0, M.ConvNormActivation(inp, inp, 1))
    return block


def _expand_3x3(inp, oup, stride, expand_ratio):
    block = M.InvertedResidual(inp, oup, stride, expand_ratio)
    if expand_ratio != 1:
        block.conv[0] = M.ConvNormActivation(inp, round(inp * expand_ratio), 3)
    return block


def _expand_the_output(inp, oup, stride, expand_ratio):
    """The hidden width t * out_channels instead of t * in_channels."""
    block = M.InvertedResidual(oup, oup, stride, expand_ratio)
    hidden = round(oup * expand_ratio)
    if expand_ratio != 1:
        block.conv[0] = M.ConvNormActivation(inp, hidden, 1)
    else:
        block.conv[0] = M.ConvNormActivation(inp, inp, 3, stride, groups=inp)
        block.conv[1] = nn.Conv2d(inp, oup, 1, bias=False)
    block.use_res_connect = stride == 1 and inp == oup
    return block


def _stride_in_expansion(inp, oup, stride, expand_ratio):
    block = M.InvertedResidual(inp, oup, stride, expand_ratio)
    if expand_ratio != 1:
        block.conv[0][0].stride = (stride, stride)
        block.conv[1][0].stride = (1, 1)
    return block


def _stride_in_projection(inp, oup, stride, expand_ratio):
    block = M.InvertedResidual(inp, oup, stride, expand_ratio)
    block.conv[-3][0].stride = (1, 1)                      # the depthwise conv
    block.conv[-2].stride = (stride, stride)               # the projection
    return block


def _detached_shortcut(b, x):
    out = b.conv(x)
    return out + x.clone().detach() if b.use_res_connect else out


def _no_relu6_after_depthwise(b, x):
    layers = list(b.conv)
    out = layers.pop(0)(x) if b.expand_ratio != 1 else x
    depthwise = layers.pop(0)
    out = depthwise[1](depthwise[0](out))                 # conv and BN, but no ReLU6
    for layer in layers:
        out = layer(out)
    return out + x if b.use_res_connect else out


@exercise(
    "mobilenetv2.InvertedResidual",
    paper="Sandler et al. 2018 (arXiv:1801.04381), Table 1, Fig. 3b, sec. 3.2-3.3 and 4",
    cases=[
        Case("inside a row: 24 → 24, stride 1, t = 6 (shortcut)", (24, 24, 1, 6), (2, 24, 8, 8),
             scale=4.0),
        Case("first block of a row: 16 → 24, stride 2, t = 6", (16, 24, 2, 6), (2, 16, 8, 8),
             tags=("stride", "channels", "shortcut")),
        Case("channels change at stride 1: 32 → 48, t = 6 (as 64 → 96 in Table 2)", (32, 48, 1, 6),
             (2, 32, 8, 8), tags=("channels", "shortcut")),
        Case("the first block: 32 → 16, stride 1, t = 1 (nothing to expand)", (32, 16, 1, 1),
             (2, 32, 8, 8), tags=("expansion", "channels", "shortcut")),
        Case("stride 2, channels kept: 24 → 24, t = 6 (not in the paper's net)", (24, 24, 2, 6),
             (2, 24, 8, 8), tags=("stride", "shortcut")),
    ],
    hints={"expansion": "Right when t = 6, wrong when t = 1: the exercise's statement (like the "
                        "official TF code and torchvision) leaves the expansion layer out when "
                        "expand_ratio is 1: depthwise 3x3, then the projection."},
    mutants=[
        Mutant("a ReLU6 after the projection",
               "Your projection (the last 1x1 conv and its batch norm) is followed by a ReLU6. "
               "It must be linear: a ReLU on the thin bottleneck destroys information (sec. "
               "3.2, Figure 1; Table 1: \"linear 1x1 conv2d\"). The ablation of Figure 6a shows "
               "the cost on ImageNet.",
               build=lambda inp, oup, stride, t: M.InvertedResidual(
                   inp, oup, stride, t, project_activation=nn.ReLU6)),
        Mutant("ReLU instead of ReLU6",
               "Your block uses ReLU; the paper uses ReLU6, min(max(x, 0), 6), \"because of its "
               "robustness when used with low-precision computation\" (sec. 4). The two differ "
               "only where activations exceed 6.",
               build=lambda inp, oup, stride, t: M.InvertedResidual(
                   inp, oup, stride, t, activation_layer=nn.ReLU)),
        Mutant("no ReLU6 after the depthwise convolution",
               "The depthwise 3x3 convolution is followed by batch norm but no ReLU6. Table 1: "
               "\"3x3 dwise s=s, ReLU6\"; only the projection is linear.",
               forward=_no_relu6_after_depthwise),
        Mutant("the shortcut at stride 2",
               "Your block adds its input whenever the channels match, also at stride 2, where "
               "the output is half the size. The shortcut needs stride 1 and equal channels.",
               build=lambda inp, oup, stride, t: _ShortcutWhenChannelsMatch(inp, oup, stride, t)),
        Mutant("the shortcut when the channels change",
               "Your block adds its input whenever the stride is 1 (`if stride == 1:`), but the "
               "first block of the 96- and 320-channel rows (and the very first block, 32 → 16) "
               "keep the resolution and change the channels. The shortcut needs stride 1 *and* "
               "in_channels == out_channels.",
               build=lambda inp, oup, stride, t: _ShortcutWhenStride1(inp, oup, stride, t)),
        Mutant("no shortcut",
               "Your block never adds its input. Where the shapes agree (stride 1, equal "
               "channels) the inverted residual adds it: \"we use shortcuts directly between the "
               "bottlenecks\" (sec. 3.3, Fig. 3b).",
               build=lambda inp, oup, stride, t: _NoShortcut(inp, oup, stride, t)),
        Mutant("the stride in the projection",
               "Your stride sits in the last 1x1 conv, the projection, after the depthwise 3x3. "
               "In eval mode that gives the same outputs (batch norm with running statistics and "
               "ReLU6 act pixel by pixel, so subsampling after them equals subsampling before), "
               "but the depthwise conv then works on the full-size map and its batch norm sees "
               "other pixels, so the batch statistics in training differ. Table 1 puts the "
               "stride in the depthwise conv (\"3x3 dwise s=s\").",
               build=_stride_in_projection),
        Mutant("the shortcut detached",
               "Your shortcut adds a detached copy of the input (`x.clone().detach()`, `x.data`): "
               "the outputs are right, but the gradient does not flow through your shortcut, "
               "only through the convolutions. `out + x` is safe: nothing modifies x.",
               forward=_detached_shortcut),
        Mutant("a projection shortcut where the channels change",
               "Your block has a 1x1 convolution (and batch norm) on its shortcut where the "
               "channels change, as kuangliu/pytorch-cifar's MobileNetV2 does. The paper's "
               "block has no shortcut there at all (the official code adds the input only at "
               "stride 1 with equal depths): no extra weights.",
               build=_ProjectionShortcut),
        Mutant("an expansion layer when t = 1",
               "Your block has a 1x1 expansion even when expand_ratio is 1. The paper's Table 1 "
               "starts every block with a 1x1 conv, but the official TF code and torchvision "
               "leave it out when t = 1 (depthwise 3x3, then the projection), and so does the "
               "exercise's statement, so that their weights load: drop the layer when "
               "expand_ratio is 1.",
               build=_always_expand),
        Mutant("a 3x3 expansion",
               "Your expansion is a 3x3 convolution. Table 1: the expansion is a 1x1 conv; the "
               "only spatial filtering is the depthwise 3x3.",
               build=_expand_3x3),
        Mutant("the expansion applied to the output channels",
               "Your hidden width is t * out_channels. The expansion factor \"is always applied "
               "to the input size\" (Table 2's caption; sec. 4: a 64-channel input expands to "
               "64 * 6 = 384 channels whatever the output).",
               build=_expand_the_output),
        Mutant("the stride in the expansion",
               "Your stride sits in the 1x1 expansion. Table 1 puts it in the depthwise 3x3 "
               "(\"3x3 dwise s=s\"): a 1x1 conv with stride 2 throws three pixels of four away "
               "before anything has looked at them.",
               build=_stride_in_expansion),
    ],
)
def inverted_residual(in_channels, out_channels, stride, expand_ratio):
    """The inverted residual: 1x1 expansion to expand_ratio * in_channels (BN, ReLU6; none when
    expand_ratio is 1), 3x3 depthwise with the stride (BN, ReLU6), linear 1x1 projection (BN),
    plus the input when stride is 1 and in_channels == out_channels."""
    return M.InvertedResidual(in_channels, out_channels, stride, expand_ratio)
