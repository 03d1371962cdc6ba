"""Exercises of notebook 01 (VGG, Simonyan & Zisserman 2014, arXiv:1409.1556): a stage from a
row of Table 1, and the whole convolutional part (``features``) from a column.

The references are the course's saved builders (``common.models.vgg``: ``stage``,
``make_features``, ``scale_config``); each known bug is the reference's list of layers with one
change."""
from torch import nn

from common.exercises import Accepted, Case, Mutant, exercise
from common.models import vgg


def _edited(edit):
    """A factory with the stage exercise's signature: the reference's layers, passed through
    ``edit(layers, in_channels)``."""
    def build(in_channels, row, batch_norm=False):
        layers, _ = vgg.stage(in_channels, row, batch_norm)
        return nn.Sequential(*edit(layers, in_channels))
    return build


def _convs(layers):
    return [m for m in layers if isinstance(m, nn.Conv2d)]


def _with_padding(padding):
    def edit(layers, _):
        for conv in _convs(layers):
            conv.padding = (padding, padding)
        return layers
    return edit


def _bn_after_relu(layers, _):
    out, i = [], 0
    while i < len(layers):
        if isinstance(layers[i], nn.BatchNorm2d):        # conv, BN, ReLU -> conv, ReLU, BN
            out += [layers[i + 1], layers[i]]
            i += 2
        else:
            out.append(layers[i])
            i += 1
    return out


def _no_last_relu(layers, _):
    last = max(i for i, m in enumerate(layers) if isinstance(m, nn.ReLU))
    return layers[:last] + layers[last + 1:]


def _last_pool(pool):
    def edit(layers, _):
        return layers[:-1] + [pool]
    return edit


def _pool_after_every_conv(layers, _):
    out = []
    for i, m in enumerate(layers[:-1]):
        out.append(m)
        if isinstance(m, nn.ReLU) and i < len(layers) - 2:
            out.append(nn.MaxPool2d(2, 2))
    return out + layers[-1:]


def _no_bias(layers, _):
    return [nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, padding=m.padding, bias=False)
            if isinstance(m, nn.Conv2d) else m for m in layers]


def _no_bias_before_bn(layers, _):
    return [nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, padding=m.padding,
                      bias=not any(isinstance(n, nn.BatchNorm2d) for n in layers))
            if isinstance(m, nn.Conv2d) else m for m in layers]


def _in_channels_never_updated(layers, in_channels):
    return [nn.Conv2d(in_channels, m.out_channels, m.kernel_size, padding=m.padding)
            if isinstance(m, nn.Conv2d) else m for m in layers]


@exercise(
    "vgg.stage",
    paper="Simonyan & Zisserman 2014 (arXiv:1409.1556), sec. 2.1 and Table 1; batch norm after "
          "each conv as in torchvision's vgg*_bn",
    cases=[
        Case("configuration A, stage 1: conv3-64 on the RGB input", (3, ["conv3-64"]),
             (2, 3, 16, 16)),
        Case("configuration B, stage 2, with batch norm: conv3-128, conv3-128",
             (64, ["conv3-128", "conv3-128"], True), (2, 64, 8, 8), tags=("batch_norm",)),
        Case("configuration C, stage 3: conv3-256, conv3-256, conv1-256",
             (128, ["conv3-256", "conv3-256", "conv1-256"]), (2, 128, 8, 8), tags=("conv1",)),
        Case("configuration C, stage 3, with batch norm",
             (128, ["conv3-256", "conv3-256", "conv1-256"], True), (2, 128, 8, 8),
             tags=("conv1", "batch_norm")),
    ],
    hints={"conv1": "Right for the rows of 3x3 convs, wrong for the row with a 1x1 conv "
                    "(configuration C): look at how you read 'conv1-256' (kernel size 1, and "
                    "padding 0 to keep the size)."},
    mutants=[
        Mutant("no padding",
               "Your convs have no padding, so every 3x3 conv shrinks the map by 2 pixels. VGG "
               "pads so that the \"spatial resolution is preserved\" (sec. 2.1): padding 1 for a "
               "3x3 conv, 0 for a 1x1 (kernel_size // 2).",
               build=_edited(_with_padding(0))),
        Mutant("padding 1 on the 1x1 conv",
               "Every conv has padding 1, the 1x1 conv of configuration C too, which then grows "
               "the map by 2 pixels. Padding kernel_size // 2 keeps the size: 1 for 3x3, 0 for "
               "1x1.",
               build=_edited(_with_padding(1))),
        Mutant("batch norm after the ReLU",
               "Your batch norm comes after the ReLU. The course's _bn stages, like "
               "torchvision's vgg*_bn, normalise each conv's output before the ReLU: conv, "
               "BatchNorm2d, ReLU (the paper itself has no batch norm).",
               build=_edited(_bn_after_relu)),
        Mutant("no ReLU after the last conv",
               "The last conv of your stage has no ReLU before the pool. In VGG every hidden "
               "layer is followed by a ReLU (sec. 2.1), the last conv of a stage too.",
               build=_edited(_no_last_relu)),
        Mutant("AlexNet's overlapping 3x3 pooling",
               "Your stage pools over 3x3 windows with stride 2 (AlexNet's overlapping "
               "pooling). VGG: \"Max-pooling is performed over a 2×2 pixel window, with stride "
               "2\" (sec. 2.1).",
               build=_edited(_last_pool(nn.MaxPool2d(3, 2)))),
        Mutant("average pooling",
               "Your stage ends in average pooling; VGG's pooling is max-pooling over 2x2 "
               "windows with stride 2 (sec. 2.1).",
               build=_edited(_last_pool(nn.AvgPool2d(2, 2)))),
        Mutant("a pool after every conv",
               "Your stage pools after every conv. A stage of Table 1 is a group of convs at one "
               "resolution followed by ONE max-pool (the \"maxpool\" rows of Table 1).",
               build=_edited(_pool_after_every_conv)),
        Mutant("convs without bias",
               "Your convs have no bias. Without batch norm, VGG's convs have biases (initialised "
               "to zero, sec. 3.1); torchvision's vgg*_bn keep them in front of the batch norm "
               "too (redundant there, but part of its weights, so a strict load needs them).",
               build=_edited(_no_bias)),
        Mutant("every conv built for the stage's input channels",
               "Every conv of your stage takes the stage's input channels. Only the first does: "
               "each following conv takes the output channels of the conv before it (64 → 128, "
               "then 128 → 128).",
               build=_edited(_in_channels_never_updated)),
    ],
    accepted=[
        Accepted("no bias before batch norm",
                 "Your convs have no bias where a batch norm follows: it would be redundant there "
                 "(the batch norm's shift replaces it). The course keeps it, as torchvision's "
                 "vgg*_bn do, because their weights include it and exercise 9 loads them "
                 "(strict=True): there you need bias=True.",
                 build=_edited(_no_bias_before_bn)),
    ],
)
def stage(in_channels, row, batch_norm=False):
    """One stage of Table 1 (a list such as ["conv3-256", "conv3-256", "conv1-256"]): each conv
    with padding kernel // 2, (batch norm,) ReLU; then a 2x2 max-pool with stride 2."""
    layers, _ = vgg.stage(in_channels, row, batch_norm)
    return nn.Sequential(*layers)


def _lrn_replaced(new_lrn):
    def build(config, batch_norm=False):
        f = vgg.make_features(config, batch_norm)
        return nn.Sequential(*[new_lrn() if isinstance(m, nn.LocalResponseNorm) else m for m in f])
    return build


def _lrn_before_relu(config, batch_norm=False):
    layers = list(vgg.make_features(config, batch_norm))
    for i, m in enumerate(layers):
        if isinstance(m, nn.LocalResponseNorm):
            layers[i - 1], layers[i] = m, layers[i - 1]
    return nn.Sequential(*layers)


_SMALL = 1 / 8      # every width divided by 8: the same layers, 64x fewer weights


@exercise(
    "vgg.features",
    paper="Simonyan & Zisserman 2014 (arXiv:1409.1556), Table 1 and sec. 2.1 (LRN: Krizhevsky et "
          "al. 2012, sec. 3.3); module indices as torchvision's VGG.features",
    cases=[
        Case("configuration C at 1/8 width", (vgg.scale_config("C", _SMALL),), (2, 3, 32, 32)),
        # LRN divides by k + alpha * (a sum of squares): it matters only for large activations,
        # such as those of the paper's inputs, mean-subtracted 0-255 pixels.
        Case("configuration A-LRN at 1/8 width, inputs at pixel scale (std 50)",
             (vgg.scale_config("A-LRN", _SMALL),), (2, 3, 32, 32), scale=50.0, tags=("lrn",)),
        Case("configuration D at 1/8 width, with batch norm",
             (vgg.scale_config("D", _SMALL), True), (2, 3, 32, 32), tags=("batch_norm",)),
    ],
    hints={"lrn": "Right everywhere except in configuration A-LRN: look at your LRN layer (its "
                  "place, after the first ReLU, and its constants k=2, n=5, alpha=1e-4, "
                  "beta=0.75 of AlexNet, sec. 3.3 there)."},
    same_names=True,
    mutants=[
        Mutant("LRN's alpha not multiplied by n",
               "Your LRN passes AlexNet's alpha = 1e-4 to nn.LocalResponseNorm as it is. AlexNet "
               "(sec. 3.3) divides by k + alpha * (the SUM of the squares over n = 5 channels); "
               "PyTorch's layer uses alpha / n * that sum (a mean). To get AlexNet's layer, pass "
               "alpha = 5 * 1e-4.",
               build=_lrn_replaced(lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))),
        Mutant("LRN with PyTorch's default constants",
               "Your LRN keeps nn.LocalResponseNorm's defaults (k=1). The paper takes AlexNet's "
               "constants (sec. 2.1): k=2, n=5, alpha=1e-4, beta=0.75, with alpha multiplied by "
               "n for PyTorch's layer (it averages the squares where AlexNet sums them).",
               build=_lrn_replaced(lambda: nn.LocalResponseNorm(5))),
        Mutant("no bias before batch norm",
               "Your convs have no bias where a batch norm follows. A bias is redundant there "
               "(the batch norm's shift replaces it), but torchvision's vgg*_bn keep "
               "bias=True: their weights include it, and this exercise must load them "
               "(strict=True). Keep nn.Conv2d's default bias=True.",
               build=lambda config, batch_norm=False: nn.Sequential(*_no_bias_before_bn(
                   list(vgg.make_features(config, batch_norm)), None))),
        Mutant("LRN before the ReLU",
               "Your LRN comes before the ReLU. AlexNet, whose layer the paper reuses, applies "
               "it \"after applying the ReLU nonlinearity\" (Krizhevsky et al. 2012, sec. 3.3).",
               build=_lrn_before_relu),
    ],
)
def features(config, batch_norm=False):
    """The convolutional part of a VGG from a column of Table 1 (a list of stages, each a list
    such as ["conv3-64", "LRN"]), as ONE nn.Sequential so that the indices are torchvision's
    (features.0 is the first conv)."""
    return vgg.make_features(config, batch_norm)
