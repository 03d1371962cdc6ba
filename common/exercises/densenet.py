"""Exercises of notebook 03 (DenseNet, Huang et al. 2017, arXiv:1608.06993): the dense layer with
its bottleneck (DenseNet-B), and the transition layer with compression (DenseNet-C).

The references are the course's saved blocks (``common.models.densenet``). The dense layer takes
the concatenated feature maps of its block (one tensor) and returns only its k new maps, as
torchvision's ``_DenseLayer`` does: the block, not the layer, concatenates. The known bugs rely
only on torchvision's module names (norm1, relu1, conv1, norm2, relu2, conv2; norm, relu, conv,
pool)."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from common.exercises import Case, Mutant, exercise
from common.models import densenet

# --------------------------------------------------------------------------- the dense layer

def _four_times_the_input(in_channels, growth_rate):
    """The 1x1 conv widens the input fourfold instead of reducing it to 4k maps."""
    layer = dense_layer(in_channels, growth_rate)
    layer.conv1 = nn.Conv2d(in_channels, 4 * in_channels, 1, bias=False)
    layer.norm2 = nn.BatchNorm2d(4 * in_channels)
    layer.conv2 = nn.Conv2d(4 * in_channels, growth_rate, 3, padding=1, bias=False)
    return layer


class _PostActivationLayer(densenet.DenseLayer):
    """Conv-BN-ReLU (ResNet's order) instead of BN-ReLU-Conv."""

    def __init__(self, in_channels, growth_rate):
        super().__init__(in_channels, growth_rate)
        self.norm1 = nn.BatchNorm2d(4 * growth_rate)
        self.norm2 = nn.BatchNorm2d(growth_rate)

    def forward(self, x):
        x = self.relu1(self.norm1(self.conv1(x)))
        return self.relu2(self.norm2(self.conv2(x)))


def _returns_the_concatenation(b, x):
    return torch.cat([x, b.conv2(b.relu2(b.norm2(b.conv1(b.relu1(b.norm1(x))))))], 1)


def _no_padding(in_channels, growth_rate):
    layer = dense_layer(in_channels, growth_rate)
    layer.conv2.padding = (0, 0)
    return layer


def _no_second_relu(b, x):
    return b.conv2(b.norm2(b.conv1(b.relu1(b.norm1(x)))))


def _no_second_bn(in_channels, growth_rate):
    layer = dense_layer(in_channels, growth_rate)
    layer.norm2 = nn.Identity()
    return layer


@exercise(
    "densenet.DenseLayer",
    paper="Huang et al. 2017 (arXiv:1608.06993), sec. 3: Eqn. (2), \"Composite function\", "
          "\"Bottleneck layers\" (DenseNet-B: each 1x1 convolution produces 4k feature-maps)",
    cases=[
        # label, (in_channels, growth_rate), input shape
        Case("the first layer of a CIFAR DenseNet-BC block: 24 -> 12 new maps", (24, 12),
             (2, 24, 8, 8)),
        Case("a later layer, wider input than 4k: 72 -> 12 new maps", (72, 12), (2, 72, 8, 8)),
        Case("a small growth rate: 20 -> 4 new maps", (20, 4), (2, 20, 8, 8)),
    ],
    hints={"input-modified": "An in-place operation changed the tensor your layer was given (an "
                             "in-place ReLU or batch norm on x, `x += ...`): the dense block "
                             "concatenates that same tensor with every later layer's maps, so "
                             "they would see it modified, and in training autograd fails where "
                             "the previous layer saved it for the backward pass. Compute new "
                             "tensors (`out = self.relu1(self.norm1(x))` with a ReLU that is "
                             "not in place on x)."},
    mutants=[
        Mutant("the 1x1 conv makes 4 x its input, not 4k",
               "Your 1x1 convolution outputs 4 times its input channels. In DenseNet-B \"each "
               "1x1 convolution produce[s] 4k feature-maps\" (sec. 3, \"Bottleneck layers\"): "
               "it *reduces* the k0 + k(l-1) input maps to 4k = 4 * growth_rate, and the 3x3 "
               "conv makes the k new ones. With 4 x the input, the parameters of a whole "
               "DenseNet explode (notebook 03, section 7, counts them for DenseNet-121).",
               build=_four_times_the_input),
        Mutant("post-activation: Conv-BN-ReLU",
               "Your layer puts each batch norm after its convolution (Conv-BN-ReLU, ResNet's "
               "order). DenseNet's H_l is pre-activation: BN, then ReLU, then the convolution "
               "(sec. 3, \"Composite function\"; BN-ReLU-Conv(1x1)-BN-ReLU-Conv(3x3) for "
               "DenseNet-B), so norm1 normalises the layer's input channels.",
               build=_PostActivationLayer),
        Mutant("the layer returns the concatenation",
               "Your layer returns [x, new maps]: its input with the k new maps appended. That "
               "is an interface choice, not a mistake against the paper (both readings compute "
               "Eqn. 2; much-copied CIFAR code returns torch.cat([out, x], 1)), but this exercise "
               "asks for torchvision's interface, as its statement says: the layer returns only "
               "its k new maps, and the dense block concatenates (`features.append(layer("
               "features))`, then `torch.cat` at the end), which is what the course's block "
               "expects.",
               forward=_returns_the_concatenation),
        Mutant("the 3x3 conv without padding",
               "Your 3x3 convolution shrinks the maps by 2 pixels: concatenation needs every "
               "layer of a block at the same size. \"For convolutional layers with kernel size "
               "3x3, each side of the inputs is zero-padded by one pixel to keep the "
               "feature-map size fixed\" (sec. 3, \"Implementation Details\"): padding=1.",
               build=_no_padding),
        Mutant("no ReLU before the 3x3 conv",
               "Your bottleneck goes BN-ReLU-Conv(1x1)-BN-Conv(3x3): the second ReLU is missing. "
               "DenseNet-B is BN-ReLU-Conv(1x1)-BN-ReLU-Conv(3x3) (sec. 3, \"Bottleneck "
               "layers\").",
               forward=_no_second_relu),
        Mutant("no batch norm before the 3x3 conv",
               "Your bottleneck has no batch norm between the 1x1 and the 3x3 convolution. "
               "DenseNet-B is BN-ReLU-Conv(1x1)-BN-ReLU-Conv(3x3) (sec. 3, \"Bottleneck "
               "layers\"): a second batch norm over the 4k maps.",
               build=_no_second_bn),
    ],
)
def dense_layer(in_channels, growth_rate):
    """H_l of DenseNet-B: BN-ReLU-Conv(1x1, 4k)-BN-ReLU-Conv(3x3, k), returning the k new maps."""
    return densenet.DenseLayer(in_channels, growth_rate)


# --------------------------------------------------------------------------- the transition layer

def _no_compression(in_channels, compression=0.5):
    return transition(in_channels, 1.0)


def _rounded_up(in_channels, compression=0.5):
    layer = transition(in_channels, compression)
    out = math.ceil(compression * in_channels)
    layer.conv = nn.Conv2d(in_channels, out, 1, bias=False)
    layer.out_channels = out
    return layer


def _max_pool(b, x):
    return F.max_pool2d(b.conv(b.relu(b.norm(x))), 2)


def _no_relu(b, x):
    return b.pool(b.conv(b.norm(x)))


def _strided_conv(b, x):
    return b.conv(b.relu(b.norm(x)))[:, :, ::2, ::2]


class _BNAfterConvTransition(densenet.Transition):
    """Conv-BN-ReLU-pool instead of BN-ReLU-Conv-pool."""

    def __init__(self, in_channels, compression=0.5):
        super().__init__(in_channels, compression)
        self.norm = nn.BatchNorm2d(self.out_channels)

    def forward(self, x):
        return self.pool(self.relu(self.norm(self.conv(x))))


@exercise(
    "densenet.Transition",
    paper="Huang et al. 2017 (arXiv:1608.06993), sec. 3: \"Pooling layers\" (BN, 1x1 conv, "
          "2x2 average pooling), \"Compression\" (floor(theta m) output maps); Table 1 "
          "(every conv is BN-ReLU-Conv)",
    cases=[
        Case("after a block of 64 maps, theta = 0.5", (64,), (2, 64, 8, 8)),
        Case("an odd number of maps: 75 -> floor(37.5)", (75,), (2, 75, 8, 8),
             tags=("rounding",)),
        Case("no compression (DenseNet, theta = 1)", (40,), (2, 40, 8, 8),
             kwargs={"compression": 1.0}, tags=("theta",)),
    ],
    hints={"rounding": "Right for an even number of maps, wrong for an odd one: the transition "
                       "outputs floor(theta * m) maps (sec. 3, \"Compression\"): int(), not "
                       "round() or math.ceil().",
           "theta": "Right at theta = 0.5, wrong at theta = 1: use the `compression` argument, "
                    "do not hard-code a half."},
    mutants=[
        Mutant("no compression",
               "Your transition keeps all m maps. With compression it outputs floor(theta * m) "
               "maps, theta = 0.5 in DenseNet-C and DenseNet-BC (sec. 3, \"Compression\").",
               build=_no_compression),
        Mutant("theta times m rounded up",
               "Your transition outputs ceil(theta * m) maps for an odd m. The paper writes "
               "floor(theta m) (sec. 3, \"Compression\"), as torchvision's `num_features // 2` "
               "and the authors' `math.floor(nChannels*reduction)`.",
               build=_rounded_up),
        Mutant("max pooling instead of average pooling",
               "Your transition takes the maximum of each 2x2 window. The paper's transition "
               "ends in a \"2x2 average pooling layer\" (sec. 3, \"Pooling layers\"; Table 1).",
               forward=_max_pool),
        Mutant("no ReLU before the 1x1 conv",
               "Your transition is BN, 1x1 conv, pool, without the ReLU. The text of sec. 3 "
               "names only BN, the 1x1 conv and the pooling, but Table 1's caption says every "
               "\"conv\" layer is BN-ReLU-Conv, and the authors' code and torchvision "
               "(norm, relu, conv, pool) have the ReLU.",
               forward=_no_relu),
        Mutant("a strided conv instead of pooling",
               "Your transition halves the size by keeping every other pixel (a 1x1 conv with "
               "stride 2), which throws away three quarters of the maps. The paper averages each "
               "2x2 window: a \"2x2 average pooling layer\" after the 1x1 conv (sec. 3).",
               forward=_strided_conv),
        Mutant("batch norm after the conv",
               "Your transition normalises after the 1x1 convolution (Conv-BN-ReLU). Like the "
               "dense layers it is pre-activation: BN and ReLU on the block's m maps, then the "
               "1x1 conv, then the pooling (sec. 3, \"Pooling layers\"; Table 1).",
               build=_BNAfterConvTransition),
    ],
)
def transition(in_channels, compression=0.5):
    """BN-ReLU-Conv(1x1, floor(compression * in_channels))-AvgPool(2x2, stride 2)."""
    return densenet.Transition(in_channels, compression)
