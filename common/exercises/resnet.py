"""Exercises of notebook 02 (ResNet, He et al. 2015, arXiv:1512.03385): the basic block with an
option-A shortcut, and the v1.5 bottleneck with a projection shortcut.

The references are the course's saved blocks (``common.models.resnet``), called positionally as
``(inplanes, planes, stride, downsample)``; the known bugs rely only on torchvision's module
names (conv1, bn1, conv2, bn2, conv3, bn3, relu, downsample)."""
import torch.nn.functional as F
from torch import nn

from common.exercises import Accepted, Case, Mutant, exercise
from common.models import resnet

# --------------------------------------------------------------------------- shared pieces

def _basic_branch(b, x):
    return b.bn2(b.conv2(b.relu(b.bn1(b.conv1(x)))))


def _bottleneck_branch(b, x):
    out = b.relu(b.bn1(b.conv1(x)))
    out = b.relu(b.bn2(b.conv2(out)))
    return b.bn3(b.conv3(out))


def _shortcut(b, x):
    return x if b.downsample is None else b.downsample(x)


def _relu_before_addition(branch):
    def forward(b, x):
        return b.relu(b.relu(branch(b, x)) + _shortcut(b, x))
    return forward


def _no_relu_after_addition(branch):
    def forward(b, x):
        return branch(b, x) + _shortcut(b, x)
    return forward


RELU_BEFORE = ("ReLU before the addition",
               "The residual branch ends in a ReLU before the addition, so F(x) can never be "
               "negative. In the paper F(x) ends with the last conv and its batch norm, and the "
               "block adopts \"the second nonlinearity after the addition\" (sec. 3.2, Fig. 2): "
               "y = ReLU(F(x) + x).")
NO_RELU_AFTER = ("no ReLU after the addition",
                 "The block returns F(x) + x without the ReLU that follows the addition "
                 "(\"the second nonlinearity after the addition\", sec. 3.2; Fig. 2).")


def _detached_shortcut(branch):
    def forward(b, x):
        identity = x.clone().detach()              # "to be safe": the same values, no gradient
        if b.downsample is not None:
            identity = b.downsample(identity)
        return b.relu(branch(b, x) + identity)
    return forward


DETACHED = ("the shortcut detached",
            "Your shortcut adds a detached copy of the input (`x.clone().detach()`, `x.data` or "
            "a shortcut under torch.no_grad()): the outputs are right, but the gradient does not "
            "flow through your shortcut, only through the residual branch. That removes the "
            "gradient highway, the point of the block: the identity carries the gradient to "
            "the earlier layers unchanged. `identity = x` is safe: nothing modifies x.")


def _strides(block, first: int, second_name: str, stride: int):
    """Move the stride of a reference block: ``first`` into conv1, the rest into conv2."""
    block.conv1.stride = (first, first)
    getattr(block, second_name).stride = (stride // first, stride // first)
    return block


# --------------------------------------------------------------------------- basic block, option A

def _stale_skip(b, x):
    x = b.relu(b.bn1(b.conv1(x)))                  # x overwritten...
    out = b.bn2(b.conv2(x))
    return b.relu(out + x)                         # ...so the skip adds conv1's output


def _option_a_variant(subsample, pad_both_sides=False):
    def forward(b, x):
        out = _basic_branch(b, x)
        s = b.conv1.stride[0]
        identity = subsample(x, s) if s != 1 else x
        extra = out.shape[1] - identity.shape[1]
        if extra:
            before = extra // 2 if pad_both_sides else 0
            identity = F.pad(identity, (0, 0, 0, 0, before, extra - before))
        return b.relu(out + identity)
    return forward


def _every_other_pixel(x, s):
    return x[:, :, ::s, ::s]


def _average_pool(x, s):
    return F.avg_pool2d(x, s)


@exercise(
    "resnet.BasicBlock",
    paper="He et al. 2015 (arXiv:1512.03385), Fig. 2 and Fig. 5 (left); option A: sec. 3.3",
    cases=[
        Case("inside a stage: 16 → 16, stride 1 (identity shortcut)", (16, 16, 1), (2, 16, 8, 8)),
        Case("first block of a stage: 16 → 32, stride 2", (16, 32, 2), (2, 16, 8, 8),
             tags=("stride", "channels", "shortcut")),
        Case("stride 2, channels kept: 32 → 32 (not in the paper's nets)", (32, 32, 2),
             (2, 32, 8, 8), tags=("stride", "shortcut")),
        Case("channels change at stride 1: 16 → 32 (not in the paper's nets)", (16, 32, 1),
             (2, 16, 8, 8), tags=("channels", "shortcut")),
    ],
    mutants=[
        Mutant("the skip adds an intermediate tensor",
               "The skip connection adds the first conv's output instead of the block's input: "
               "`x` was overwritten inside forward. Keep the input in its own variable "
               "(`identity = x`) and add that: y = F(x) + x (Eqn. 1).",
               forward=_stale_skip),
        Mutant(*RELU_BEFORE, forward=_relu_before_addition(_basic_branch)),
        Mutant(*NO_RELU_AFTER, forward=_no_relu_after_addition(_basic_branch)),
        Mutant("the stride in the second conv",
               "The stride sits in the second 3x3 conv. Table 1's caption puts the "
               "down-sampling in the first layer of a stage (conv3_1, conv4_1, conv5_1), and "
               "torchvision's basic block in its conv1: the first conv has the stride, the "
               "second always stride 1.",
               build=lambda cin, cout, stride=1: _strides(basic_block(cin, cout, stride), 1,
                                                          "conv2", stride)),
        Mutant(*DETACHED, forward=_detached_shortcut(_basic_branch)),
        Mutant("the shortcut averages instead of subsampling",
               "Your shortcut averages each 2x2 window. Option A is the identity \"performed "
               "with a stride of 2\" (sec. 3.3), like a 1x1 conv with stride 2: it keeps every "
               "second pixel, x[:, :, ::2, ::2].",
               forward=_option_a_variant(_average_pool)),
        Mutant("a projection shortcut (option B), not option A",
               "Your shortcut has parameters: a 1x1 projection with batch norm is option B. "
               "Option A is parameter-free: the identity, subsampled, with zero channels "
               "appended (sec. 3.3). The CIFAR nets use it (\"identity shortcuts in all "
               "cases\", sec. 4.2), which is why plain and residual nets have the same "
               "parameter count.",
               build=lambda cin, cout, stride=1: resnet.BasicBlock(
                   cin, cout, stride, resnet.make_shortcut("B", cin, cout, stride))),
        Mutant("a shortcut that only looks at the stride",
               "Your shortcut changes the shape only when the stride is not 1 (`if stride != "
               "1:`), but the shape also changes when only the channels do. Adjust the "
               "shortcut when the stride OR the number of channels changes.",
               build=lambda cin, cout, stride=1: resnet.BasicBlock(
                   cin, cout, stride,
                   resnet.make_shortcut("A", cin, cout, stride) if stride != 1 else None)),
    ],
    accepted=[
        Accepted("zero channels padded on both sides",
                 "The paper says only \"extra zero entries padded for increasing dimensions\" "
                 "(sec. 3.3); you pad half of them before the input's channels and half after "
                 "(as akamaster/pytorch_resnet_cifar10 does), which permutes the channels and "
                 "trains alike. The course appends them after the input's: F.pad(x, (0, 0, 0, 0, "
                 "0, extra)).",
                 forward=_option_a_variant(_every_other_pixel, pad_both_sides=True)),
    ],
)
def basic_block(in_channels, out_channels, stride=1):
    """The basic block (two 3x3 convs, each with batch norm) with an option-A shortcut."""
    return resnet.BasicBlock(in_channels, out_channels, stride,
                             resnet.make_shortcut("A", in_channels, out_channels, stride))


# --------------------------------------------------------------------------- bottleneck v1.5

def _too_wide(in_channels, planes, stride=1):
    """The 1x1 reduction and the 3x3 conv at 4x the bottleneck width."""
    block, wide = bottleneck(in_channels, planes, stride), planes * 4
    block.conv1, block.bn1 = nn.Conv2d(in_channels, wide, 1, bias=False), nn.BatchNorm2d(wide)
    block.conv2 = nn.Conv2d(wide, wide, 3, stride, 1, bias=False)
    block.bn2 = nn.BatchNorm2d(wide)
    block.conv3 = nn.Conv2d(wide, wide, 1, bias=False)
    return block


def _stride_in_conv3(in_channels, planes, stride=1):
    block = bottleneck(in_channels, planes, stride)
    block.conv2.stride, block.conv3.stride = (1, 1), (stride, stride)
    return block


def _projection_without_bn(in_channels, planes, stride=1):
    block = bottleneck(in_channels, planes, stride)
    if block.downsample is not None:
        block.downsample = nn.Sequential(block.downsample[0])
    return block


def _projection_without_stride(in_channels, planes, stride=1):
    block = bottleneck(in_channels, planes, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)
    return block


@exercise(
    "resnet.Bottleneck",
    paper="He et al. 2015 (arXiv:1512.03385), Fig. 5 (right), Table 1; projection shortcut "
          "(option B): sec. 3.3; v1.5 (the stride in the 3x3 conv): torchvision",
    cases=[
        Case("first block of conv2_x (ResNet-50): 64 → 256, stride 1, projection", (64, 64, 1),
             (2, 64, 8, 8), tags=("shortcut",)),
        Case("inside a stage: 256 → 256, stride 1, identity", (256, 64, 1), (2, 256, 8, 8)),
        Case("first block of conv3_x: 256 → 512, stride 2, projection", (256, 128, 2),
             (2, 256, 8, 8), tags=("stride", "shortcut")),
    ],
    mutants=[
        Mutant("the stride in the first 1x1 conv (v1)",
               "The stride sits in the first 1x1 conv: that is the original bottleneck (v1). "
               "The exercise asks for v1.5, torchvision's: the stride in the 3x3 conv. A 1x1 "
               "conv with stride 2 ignores three of every four input pixels; the 3x3 conv with "
               "stride 2 still sees them all.",
               build=lambda cin, planes, stride=1: _strides(bottleneck(cin, planes, stride),
                                                            stride, "conv2", stride)),
        Mutant("the stride in the last 1x1 conv",
               "The stride sits in the last 1x1 conv (conv3), after the 3x3. In eval mode that "
               "gives the same outputs as the stride in the 3x3 conv (batch norm with running "
               "statistics and ReLU act pixel by pixel, so subsampling after them equals "
               "subsampling before), but the 3x3 conv then works on the full-size map (4x the "
               "multiply-adds) and its batch norm sees other pixels, so the batch statistics in "
               "training differ. v1.5 puts the stride in the 3x3 conv (conv2).",
               build=_stride_in_conv3),
        Mutant(*DETACHED, forward=_detached_shortcut(_bottleneck_branch)),
        Mutant("the bottleneck 4x too wide",
               "The first 1x1 conv and the 3x3 conv work at planes * 4 channels. `planes` is the "
               "narrow width (Table 1, conv2_x of ResNet-50: 1x1, 64; 3x3, 64; 1x1, 256): only "
               "the last 1x1 conv expands to planes * 4.",
               build=_too_wide),
        Mutant("a projection in every block (option C)",
               "Your block projects the shortcut even where the shape does not change: that is "
               "option C. Option B, asked here, projects only where the shape changes (Eqn. 2) "
               "and keeps the identity elsewhere (sec. 3.3).",
               build=lambda cin, planes, stride=1: resnet.Bottleneck(
                   cin, planes, stride, resnet.make_shortcut("C", cin, planes * 4, stride))),
        Mutant("no projection where only the channels change",
               "No projection in the first block of conv2_x: the shape changes there too (64 → "
               "256 channels at stride 1). Project when the stride OR the number of channels "
               "changes, not only when the stride does.",
               build=lambda cin, planes, stride=1: resnet.Bottleneck(
                   cin, planes, stride,
                   resnet.make_shortcut("B", cin, planes * 4, stride) if stride != 1 else None)),
        Mutant("no batch norm in the projection",
               "Your projection shortcut is a 1x1 conv without batch norm. The paper puts batch "
               "norm right after each convolution (sec. 3.4), and torchvision's projection is "
               "conv then batch norm (downsample.0, downsample.1).",
               build=_projection_without_bn),
        Mutant("the projection without the stride",
               "The projection shortcut keeps the resolution while the branch halves it: at "
               "stride 2 the 1x1 conv of the shortcut needs stride 2 too (\"performed with a "
               "stride of 2\", sec. 3.3).",
               build=_projection_without_stride),
        Mutant(*RELU_BEFORE, forward=_relu_before_addition(_bottleneck_branch)),
        Mutant(*NO_RELU_AFTER, forward=_no_relu_after_addition(_bottleneck_branch)),
    ],
)
def bottleneck(in_channels, planes, stride=1):
    """The v1.5 bottleneck (1x1, 3x3 with the stride, 1x1 to planes * 4), with a projection
    shortcut (1x1 conv + batch norm) where the shape changes."""
    out_channels = planes * resnet.Bottleneck.expansion
    return resnet.Bottleneck(in_channels, planes, stride,
                             resnet.make_shortcut("B", in_channels, out_channels, stride))
