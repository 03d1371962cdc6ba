"""Exercises of notebook 06 (EfficientNet, Tan & Le 2019, arXiv:1905.11946): the MBConv block,
and the official code's channel rounding, `round_filters`.

The MBConv reference is the course's saved block (``common.models.efficientnet.MBConv``), called
as ``(in_channels, out_channels, kernel_size, stride, expand_ratio)`` with no stochastic depth
(the checker also compares in train mode, where it would be random); the known bugs change one
thing in it (a factory, or a forward that reuses its layers ``block[0..]``).

``round_filters`` is a function from numbers to a number, and the checker compares blocks: the
exercise's "block" is a 1x1 convolution from 8 channels to ``round_filters(filters, width)``
channels, so a wrong count shows as a wrong output shape. ``as_block(fn)`` turns the learner's
function into such a block factory::

    check("efficientnet.round_filters", as_block(my_round_filters))
"""
import functools
import math

from torch import nn

from common.exercises import Accepted, Case, Mutant, exercise
from common.models import efficientnet as E
from common.models.mobilenetv2 import ConvNormActivation
from common.models.senet import SqueezeExcitation

# --------------------------------------------------------------------------- MBConv


def _se_from_expanded(inp, oup, kernel_size, stride, expand_ratio):
    block = mbconv(inp, oup, kernel_size, stride, expand_ratio)
    hidden = inp * expand_ratio
    block.block[-2] = SqueezeExcitation(hidden, max(1, hidden // 4), activation=nn.SiLU)
    return block


def _se_from_output(inp, oup, kernel_size, stride, expand_ratio):
    block = mbconv(inp, oup, kernel_size, stride, expand_ratio)
    block.block[-2] = SqueezeExcitation(inp * expand_ratio, max(1, oup // 4), activation=nn.SiLU)
    return block


def _no_se(b, x):
    *convs, _se, project = b.block
    out = x
    for layer in convs:
        out = layer(out)
    out = project(out)
    return out + x if b.use_res_connect else out


def _relu(inp, oup, kernel_size, stride, expand_ratio):
    return E.MBConv(inp, oup, kernel_size, stride, expand_ratio, activation_layer=nn.ReLU)


def _relu_in_se(inp, oup, kernel_size, stride, expand_ratio):
    block = mbconv(inp, oup, kernel_size, stride, expand_ratio)
    block.block[-2] = SqueezeExcitation(inp * expand_ratio, max(1, inp // 4))   # ReLU, SE-Net's
    return block


def _silu_after_projection(b, x):
    out = nn.functional.silu(b.block(x))
    return out + x if b.use_res_connect else out


def _se_before_depthwise(b, x):
    *convs, se, project = b.block
    out = x
    if len(convs) == 2:
        out = convs[0](out)
    out = project(convs[-1](se(out)))
    return out + x if b.use_res_connect else out


def _no_shortcut(b, x):
    return b.block(x)


def _detached_shortcut(b, x):
    out = b.block(x)
    return out + x.clone().detach() if b.use_res_connect else out


def _shortcut_when_stride_1(b, x):
    out = b.block(x)
    return out + x if b.stride == 1 else out                 # channels ignored


def _expand_3x3(inp, oup, kernel_size, stride, expand_ratio):
    block = mbconv(inp, oup, kernel_size, stride, expand_ratio)
    if expand_ratio != 1:
        block.block[0] = ConvNormActivation(inp, inp * expand_ratio, 3, activation_layer=nn.SiLU)
    return block


def _always_3x3(inp, oup, kernel_size, stride, expand_ratio):
    return mbconv(inp, oup, 3, stride, expand_ratio)


def _always_expand(inp, oup, kernel_size, stride, expand_ratio):
    block = mbconv(inp, oup, kernel_size, stride, expand_ratio)
    if expand_ratio == 1:
        block.block.insert(0, ConvNormActivation(inp, inp, 1, activation_layer=nn.SiLU))
    return block


SHORTCUT = ("The input is added where stride is 1 and in_channels == out_channels (Table 1's "
            "MBConv is MobileNetV2's inverted residual; the official code: `id_skip` with "
            "strides 1 and equal depths).")


@exercise(
    "efficientnet.MBConv",
    paper="Tan & Le 2019 (arXiv:1905.11946), Table 1 and sec. 4 (MBConv with "
          "squeeze-and-excitation), sec. 5.2 (SiLU); the SE width: the official code",
    cases=[
        Case("inside a stage: 16 → 16, 3x3, stride 1, t = 6 (shortcut)", (16, 16, 3, 1, 6),
             (2, 16, 8, 8), scale=3.0),
        Case("first block of a stage: 16 → 24, 5x5, stride 2, t = 6", (16, 24, 5, 2, 6),
             (2, 16, 8, 8), tags=("stride", "channels", "shortcut")),
        Case("channels change at stride 1: 24 → 32, 5x5, t = 6 (as 80 → 112 in Table 1)",
             (24, 32, 5, 1, 6), (2, 24, 8, 8), tags=("channels", "shortcut")),
        Case("the first block: 32 → 16, 3x3, stride 1, t = 1 (MBConv1: nothing to expand)",
             (32, 16, 3, 1, 1), (2, 32, 8, 8), tags=("expansion", "channels", "shortcut")),
        Case("stride 2, channels kept: 16 → 16, 3x3, t = 6 (not in the paper's net)",
             (16, 16, 3, 2, 6), (2, 16, 8, 8), tags=("stride", "shortcut")),
    ],
    hints={"expansion": "Right when t = 6, wrong when t = 1: MBConv1 (Table 1's stage 2) has no "
                        "expansion layer at all: depthwise, SE, then the projection."},
    mutants=[
        Mutant("the SE reduced from the expanded width",
               "Your SE block's bottleneck is a quarter of the EXPANDED channels (t * "
               "in_channels / 4). EfficientNet's is a quarter of the block's INPUT channels "
               "(the official code: se_ratio 0.25 times input_filters; torchvision: "
               "in_channels // 4): 4 for a 16-channel input expanded to 96, not 24. SE-Net "
               "reduces the channels it rescales; EfficientNet does not.",
               build=_se_from_expanded),
        Mutant("the SE reduced from the output width",
               "Your SE block's bottleneck is a quarter of the OUTPUT channels. It is a quarter "
               "of the block's INPUT channels (the official code: se_ratio 0.25 times "
               "input_filters).",
               build=_se_from_output),
        Mutant("no squeeze-and-excitation",
               "Your block has no SE step (or never uses it): this is MobileNetV2's inverted "
               "residual with SiLU. Section 4: MBConv, \"to which we also add "
               "squeeze-and-excitation optimization\", between the depthwise convolution and "
               "the projection.",
               forward=_no_se),
        Mutant("ReLU instead of SiLU",
               "Your block uses ReLU; EfficientNet uses SiLU, x * sigmoid(x) (\"Swish-1\", sec. "
               "5.2), after the expansion, after the depthwise convolution and inside the SE "
               "block.",
               build=_relu),
        Mutant("ReLU inside the SE block",
               "Your SE block has a ReLU between its FCs, as SE-Net's does; EfficientNet's uses "
               "SiLU there too (the official code applies the block's activation, swish).",
               build=_relu_in_se),
        Mutant("SiLU after the projection",
               "Your projection (the last 1x1 convolution and its batch norm) is followed by an "
               "activation. It must be linear, as in MobileNetV2 (its paper, sec. 3.2; "
               "notebook 05).",
               forward=_silu_after_projection),
        Mutant("the SE block before the depthwise convolution",
               "Your SE block acts on the expanded tensor before the depthwise convolution. It "
               "comes after it (the official code: expand, depthwise, SE, project), rescaling "
               "the filtered channels.",
               forward=_se_before_depthwise),
        Mutant("no shortcut",
               "Your block never adds its input. " + SHORTCUT,
               forward=_no_shortcut),
        Mutant("the shortcut detached",
               "Your shortcut adds a detached copy of the input (`x.clone().detach()`, `x.data`): "
               "the outputs are right, but the gradient does not flow through your shortcut, "
               "only through the convolutions. `out + x` is safe: nothing modifies x.",
               forward=_detached_shortcut),
        Mutant("the shortcut when the channels change",
               "Your block adds its input whenever the stride is 1, also where the channels "
               "change (24 → 32 here; 80 → 112 in Table 1). " + SHORTCUT,
               forward=_shortcut_when_stride_1),
        Mutant("a 3x3 expansion",
               "Your expansion is a 3x3 convolution. Table 1's MBConv expands with a 1x1 "
               "convolution; the only spatial filter is the depthwise one "
               "(aladdinpersson/Machine-Learning-Collection's pytorch_efficientnet.py has this "
               "bug).",
               build=_expand_3x3),
        Mutant("a 3x3 depthwise kernel everywhere",
               "Your depthwise convolution is always 3x3. Table 1 gives each stage its kernel: "
               "\"MBConv6, k5x5\" is a 5x5 depthwise convolution (padding 2).",
               build=_always_3x3),
        Mutant("an expansion layer when t = 1",
               "Your block has a 1x1 expansion even when expand_ratio is 1. MBConv1 (Table 1's "
               "stage 2) has nothing to expand: depthwise, SE, projection.",
               build=_always_expand),
    ],
    accepted=[
        Accepted("TensorFlow's batch-norm epsilon 1e-3",
                 "Your batch norms have eps=1e-3, the official TensorFlow code's value (the "
                 "notebook's Easter-egg table); the course's block keeps PyTorch's default 1e-5, "
                 "as torchvision's B0-B4 do (the difference matters only for channels of tiny "
                 "variance).",
                 build=lambda inp, oup, k, s, t: E.MBConv(
                     inp, oup, k, s, t, norm_layer=functools.partial(nn.BatchNorm2d, eps=1e-3))),
        Accepted("TensorFlow's batch norm (eps 1e-3, momentum 0.01)",
                 "Your batch norms have eps=1e-3 (the official TensorFlow code's) and "
                 "momentum=0.01 (the paper's 0.99 in TensorFlow's convention, sec. 5.2; the "
                 "notebook's Easter-egg table); the course's block keeps PyTorch's defaults "
                 "(1e-5, 0.1), as torchvision's B0-B4 do.",
                 build=lambda inp, oup, k, s, t: E.MBConv(inp, oup, k, s, t,
                                                          norm_layer=E.TF_BATCH_NORM)),
    ],
)
def mbconv(in_channels, out_channels, kernel_size, stride, expand_ratio):
    """MBConv: 1x1 expansion to expand_ratio * in_channels (BN, SiLU; none when expand_ratio is
    1), kernel_size depthwise with the stride (BN, SiLU), squeeze-and-excitation through
    in_channels // 4 (SiLU, sigmoid), linear 1x1 projection (BN); plus the input where stride
    is 1 and in_channels == out_channels. No stochastic depth."""
    return E.MBConv(in_channels, out_channels, kernel_size, stride, expand_ratio)


# --------------------------------------------------------------------------- round_filters

def as_block(round_fn):
    """A block factory from a channel-rounding function ``round_fn(filters, width_coefficient)``:
    a 1x1 convolution from 8 channels to ``round_fn(filters, width_coefficient)`` channels, so
    that ``check`` can compare counts as output shapes."""
    @functools.wraps(round_fn)
    def build(filters, width_coefficient):
        channels = round_fn(filters, width_coefficient)
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise TypeError(f"{round_fn.__name__}({filters}, {width_coefficient}) returned "
                            f"{channels!r}: the number of channels must be a positive int "
                            "(int(...) it).")
        return nn.Conv2d(8, channels, 1, bias=False)
    return build


def _floor8(filters, width):
    return max(8, int(filters * width) // 8 * 8)


def _ceil8(filters, width):
    return max(8, math.ceil(filters * width / 8) * 8)


def _nearest8(filters, width):
    return max(8, int(filters * width + 4) // 8 * 8)


def _no_rounding(filters, width):
    return int(filters * width)


def _multiple_of_4(filters, width):
    return 4 * math.ceil(int(filters * width) / 4)


def _unscaled(filters, width):
    return E.round_filters(filters, 1.0)


def _ten_percent_of_unscaled(filters, width):
    """The 10% rule checked against the unscaled count (the official code reuses the variable
    name `filters` for the scaled count; a reader who copies it with two names can compare the
    wrong one)."""
    new = max(8, int(filters * width + 4) // 8 * 8)
    return new + 8 if new < 0.9 * filters else new


def _python_round(filters, width):
    """Python's round(): half to even (6.5 -> 6), where the official rule rounds half up."""
    new = max(8, round(filters * width / 8) * 8)
    return new + 8 if new < 0.9 * filters * width else new


@exercise(
    "efficientnet.round_filters",
    paper="not in the paper: the official code's round_filters (tensorflow/tpu, "
          "models/official/efficientnet/efficientnet_model.py), notebook 05's _make_divisible",
    cases=[
        Case("B0's stem: 32 filters x 1.0 (expect 32)", (32, 1.0), (1, 8, 1, 1)),
        Case("B2's stem: 32 x 1.1 = 35.2 (expect 32)", (32, 1.1), (1, 8, 1, 1)),
        Case("B2's stage 4: 40 x 1.1 = 44, a tie (expect 48)", (40, 1.1), (1, 8, 1, 1)),
        Case("B4's stage 3: 24 x 1.4 = 33.6 (expect 32)", (24, 1.4), (1, 8, 1, 1)),
        Case("B5's stage 6: 112 x 1.6 = 179.2 (expect 176)", (112, 1.6), (1, 8, 1, 1)),
        Case("a narrow net: 16 x 0.6 = 9.6 (expect 16: 8 would lose 17%)", (16, 0.6),
             (1, 8, 1, 1)),
        Case("a very narrow net: 8 x 0.25 = 2 (expect 8, the minimum)", (8, 0.25), (1, 8, 1, 1)),
        Case("B3's stage 2: 16 x 1.2 = 19.2 (expect 24: 16 would lose 17%)", (16, 1.2),
             (1, 8, 1, 1), tags=("ten_percent",)),
        Case("half width: 32 x 0.5 = 16 (expect 16)", (32, 0.5), (1, 8, 1, 1),
             tags=("ten_percent",)),
        Case("a tie with an even quotient: 26 x 2.0 = 52 = 6.5 x 8 (expect 56)", (26, 2.0),
             (1, 8, 1, 1), tags=("tie",)),
    ],
    hints={"ten_percent": "Right except where the 10% rule decides: compare the rounded count "
                          "with 0.9 times the SCALED count (filters * width_coefficient), not "
                          "with the filters you were given.",
           "tie": "Right except on a tie with an even quotient (52 / 8 = 6.5): the official "
                  "rule rounds a tie up, int(v + 4) // 8 * 8; Python's round() rounds it to "
                  "the even neighbour (6)."},
    not_a_module="Your function returns a number: wrap it, check(\"efficientnet.round_filters\", "
                 "as_block(my_round_filters)), with `from common.exercises.efficientnet import "
                 "as_block` (the checker compares blocks; as_block builds one with that many "
                 "channels).",
    mutants=[
        Mutant("rounded down",
               "Your counts are rounded DOWN to a multiple of 8 (44 became 40). The official "
               "rule rounds to the NEAREST multiple of 8 (int(v + 4) // 8 * 8, so a tie goes "
               "up), at least 8, then adds 8 if that lost more than 10% of v.",
               build=as_block(_floor8)),
        Mutant("rounded up",
               "Your counts are rounded UP to a multiple of 8 (35.2 became 40). The official "
               "rule rounds to the NEAREST multiple of 8 (35.2 becomes 32), at least 8, then "
               "adds 8 if that lost more than 10% of v.",
               build=as_block(_ceil8)),
        Mutant("no 10% rule",
               "Right, except where rounding to the nearest multiple of 8 loses more than 10%: "
               "16 x 0.6 = 9.6 must become 16, not 8. The official rule adds one step of 8 "
               "when the rounded count is below 0.9 times the target.",
               build=as_block(_nearest8)),
        Mutant("no rounding",
               "Your counts are not rounded to multiples of 8 (35.2 became 35). The official "
               "code rounds every width-scaled count to a multiple of 8 (at least 8): otherwise "
               "no released weight fits.",
               build=as_block(_no_rounding)),
        Mutant("multiples of 4",
               "Your counts are multiples of 4 (35.2 became 36), "
               "aladdinpersson/Machine-Learning-Collection's rule, 4 * ceil(int(c * w) / 4). "
               "The official code rounds to the nearest multiple of 8.",
               build=as_block(_multiple_of_4)),
        Mutant("the 10% rule against the unscaled filters",
               "Your 10% rule compares the rounded count with 0.9 times the UNSCALED filters: "
               "16 x 1.2 = 19.2 rounds to 16, which loses 17% of 19.2 and must become 24 (B3's "
               "16-filter stage), and 32 x 0.5 = 16 must stay 16. The official code reuses the "
               "name `filters` for the scaled count: the rule compares with filters * "
               "width_coefficient.",
               build=as_block(_ten_percent_of_unscaled)),
        Mutant("Python's round() on a tie",
               "Your rounding is Python's round(), which rounds a tie to the even neighbour: 52 "
               "= 6.5 x 8 became 48. The official rule rounds a tie up, int(v + 4) // 8 * 8, "
               "so 52 becomes 56.",
               build=as_block(_python_round)),
        Mutant("the width coefficient ignored",
               "Your counts do not change with the width coefficient: multiply the filters by "
               "it first, then round.",
               build=as_block(_unscaled)),
    ],
)
def round_filters(filters, width_coefficient):
    """A 1x1 convolution from 8 channels to round_filters(filters, width_coefficient) channels
    (the official rule: nearest multiple of 8, at least 8, one step up if more than 10% lost)."""
    return nn.Conv2d(8, E.round_filters(filters, width_coefficient), 1, bias=False)

