# Generated from notebooks/01_vgg.ipynb by `python -m common.save`: do not edit here.
# Edit the notebook's `#@save vgg` cells instead, then run `python -m common.save`.

"""01 · VGG: Very Deep Convolutional Networks for Large-Scale Image Recognition

Karen Simonyan, Andrew Zisserman. Very Deep Convolutional Networks for Large-Scale Image
Recognition. ICLR 2015. arXiv:1409.1556 (https://arxiv.org/abs/1409.1556) (we read v6).

The `#@save vgg` cells of notebooks/01_vgg.ipynb, in order; the comment above each item names the
section of the notebook that explains it.
"""
from typing import Optional, Sequence, Union

import torch
from torch import nn

from common.models.registry import check_image_batch, register_model

__all__ = [
    "stage", "parse_conv", "conv_layer", "LRN_K", "LRN_N", "LRN_ALPHA", "LRN_BETA", "lrn_layer",
    "TABLE_1", "WEIGHT_LAYERS", "Config", "make_features", "INITS", "init_weights_",
    "out_channels", "VGG", "scale_config", "CifarVGG", "init_from_net_a", "TABLE_2", "vgg11",
    "vgg11_bn", "vgg11_lrn", "vgg11_lrn_bn", "vgg13", "vgg13_bn", "vgg16_c", "vgg16_c_bn", "vgg16",
    "vgg16_bn", "vgg19", "vgg19_bn", "cifar_vgg11_bn", "cifar_vgg13_bn", "cifar_vgg16_bn",
    "cifar_vgg19_bn", "FullyConvolutionalVGG",
]


# Defined in notebooks/01_vgg.ipynb, section 2 › A stage
def stage(in_channels: int, specs: Sequence[str], batch_norm: bool = False) -> tuple:
    """Layers of one stage of Table 1 (convs, an LRN where listed, then max-pool 2x2 / 2), and
    the channel count at its end. A list, so that ``make_features`` can splice the five stages
    into one flat nn.Sequential (torchvision's indices); nn.Sequential(*layers) runs one alone."""
    layers = []
    for spec in specs:
        if spec == "LRN":
            layers.append(lrn_layer())      # after the ReLU, as in AlexNet (sec. 3.3 there)
        else:
            new, in_channels = conv_layer(in_channels, spec, batch_norm)
            layers += new
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))     # sec. 2.1
    return layers, in_channels


# Defined in notebooks/01_vgg.ipynb, section 2 › A stage
def parse_conv(spec: str) -> tuple:
    """'conv3-64' -> (3, 64): Table 1's "conv<receptive field size>-<number of channels>"."""
    try:
        kernel, channels = spec.removeprefix("conv").split("-")
        return int(kernel), int(channels)
    except ValueError:
        raise ValueError(f"Not a layer of Table 1: {spec!r}. Expected e.g. 'conv3-64', "
                         "'conv1-256' or 'LRN'.") from None


# Defined in notebooks/01_vgg.ipynb, section 2 › A stage
def conv_layer(in_channels: int, spec: str, batch_norm: bool = False) -> tuple:
    """Layers for one "convK-C" entry of Table 1: [conv, (BN,) ReLU], and the new channel count."""
    kernel, out_channels = parse_conv(spec)
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel, stride=1,  # stride 1 (sec. 2.1)
                     padding=kernel // 2)                   # resolution preserved (sec. 2.1)
    if batch_norm:                                          # torchvision's order: conv, BN, ReLU
        return [conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)], out_channels
    return [conv, nn.ReLU(inplace=True)], out_channels      # "all hidden layers ... ReLU" (sec. 2.1)


# Defined in notebooks/01_vgg.ipynb, section 2 › The LRN layer of A-LRN (skip on a first read)
LRN_K, LRN_N, LRN_ALPHA, LRN_BETA = 2.0, 5, 1e-4, 0.75     # AlexNet sec. 3.3, via VGG sec. 2.1


# Defined in notebooks/01_vgg.ipynb, section 2 › The LRN layer of A-LRN (skip on a first read)
def lrn_layer() -> nn.LocalResponseNorm:
    """AlexNet's LRN. nn.LocalResponseNorm uses alpha / n (a mean of squares, not a sum), so
    AlexNet's alpha is passed as n * alpha."""
    return nn.LocalResponseNorm(size=LRN_N, alpha=LRN_N * LRN_ALPHA, beta=LRN_BETA, k=LRN_K)


# Defined in notebooks/01_vgg.ipynb, section 2 › Table 1 as data, and the builder
#: Table 1: one column per configuration, one inner list per stage; every stage ends in max-pool.
TABLE_1 = {
    "A":     [["conv3-64"],
              ["conv3-128"],
              ["conv3-256", "conv3-256"],
              ["conv3-512", "conv3-512"],
              ["conv3-512", "conv3-512"]],
    "A-LRN": [["conv3-64", "LRN"],
              ["conv3-128"],
              ["conv3-256", "conv3-256"],
              ["conv3-512", "conv3-512"],
              ["conv3-512", "conv3-512"]],
    "B":     [["conv3-64", "conv3-64"],
              ["conv3-128", "conv3-128"],
              ["conv3-256", "conv3-256"],
              ["conv3-512", "conv3-512"],
              ["conv3-512", "conv3-512"]],
    "C":     [["conv3-64", "conv3-64"],
              ["conv3-128", "conv3-128"],
              ["conv3-256", "conv3-256", "conv1-256"],
              ["conv3-512", "conv3-512", "conv1-512"],
              ["conv3-512", "conv3-512", "conv1-512"]],
    "D":     [["conv3-64", "conv3-64"],
              ["conv3-128", "conv3-128"],
              ["conv3-256", "conv3-256", "conv3-256"],
              ["conv3-512", "conv3-512", "conv3-512"],
              ["conv3-512", "conv3-512", "conv3-512"]],
    "E":     [["conv3-64", "conv3-64"],
              ["conv3-128", "conv3-128"],
              ["conv3-256", "conv3-256", "conv3-256", "conv3-256"],
              ["conv3-512", "conv3-512", "conv3-512", "conv3-512"],
              ["conv3-512", "conv3-512", "conv3-512", "conv3-512"]],
}
# Defined in notebooks/01_vgg.ipynb, section 2 › Table 1 as data, and the builder
#: Table 1's header: the depth of each configuration in weight layers (convs + 3 FC layers).
WEIGHT_LAYERS = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
# Defined in notebooks/01_vgg.ipynb, section 2 › Table 1 as data, and the builder
Config = Union[str, Sequence[Sequence[str]]]


# Defined in notebooks/01_vgg.ipynb, section 2 › Table 1 as data, and the builder
def _stages(config: Config) -> list:
    if isinstance(config, str):
        if config not in TABLE_1:
            raise ValueError(f"Unknown configuration {config!r}: Table 1 has "
                             f"{', '.join(TABLE_1)}.")
        return TABLE_1[config]
    return [list(s) for s in config]


# Defined in notebooks/01_vgg.ipynb, section 2 › Table 1 as data, and the builder
def make_features(config: Config, batch_norm: bool = False, in_channels: int = 3) -> nn.Sequential:
    """The convolutional part of a VGG: the stages of a Table 1 column (a name such as "D", or a
    list of stages), flattened into one nn.Sequential with torchvision's indices."""
    layers = []
    for specs in _stages(config):
        new, in_channels = stage(in_channels, specs, batch_norm)
        layers += new
    return nn.Sequential(*layers)


# Defined in notebooks/01_vgg.ipynb, section 2 › Initialisation
INITS = ("kaiming", "glorot", "normal")


# Defined in notebooks/01_vgg.ipynb, section 2 › Initialisation
def init_weights_(model: nn.Module, scheme: str = "kaiming", std: float = 0.01) -> nn.Module:
    """Initialise a VGG in place and return it. Biases 0 ("The biases were initialised with
    zero", sec. 3.1); batch norms weight 1, bias 0.

    Args:
        scheme (str): "kaiming": torchvision's (He normal, fan-out, for the convs; N(0, 0.01^2)
            for the linear layers); "glorot": Glorot & Bengio 2010, uniform (the note after
            submission, sec. 3.1); "normal": N(0, std^2) for every weight (sec. 3.1)
            (default "kaiming"; torchvision).
        std (float): the standard deviation of "normal"; sec. 3.1's "10^-2 variance" read
            literally is 0.1, AlexNet's value is 0.01 (default 0.01; ambiguous in sec. 3.1).
    """
    if scheme not in INITS:
        raise ValueError(f"Unknown init {scheme!r}: choose one of {INITS}.")
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "kaiming" and isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif scheme == "kaiming":
                nn.init.normal_(m.weight, 0.0, 0.01)
            elif scheme == "glorot":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)                 # "The biases were initialised with zero"
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


# Defined in notebooks/01_vgg.ipynb, section 2 › The whole net
def out_channels(features: nn.Sequential) -> int:
    """The channels ``features`` ends with: those of its last conv (512 in every column)."""
    return [m for m in features if isinstance(m, nn.Conv2d)][-1].out_channels


# Defined in notebooks/01_vgg.ipynb, section 2 › The whole net
class VGG(nn.Module):
    """A VGG of Table 1: ``features`` (the conv stages), ``avgpool`` (torchvision's adaptive 7x7
    pool: the identity at 224x224) and ``classifier`` (FC-4096, FC-4096, FC-num_classes with ReLU
    and dropout), named and indexed as in torchvision.models.VGG, so its weights load strictly.
    Input: float images (N, 3, H, W), H and W at least ``min_input_size`` (32).

    Args:
        config (str | list of lists of str): a column of ``TABLE_1`` ("A", "A-LRN", "B", "C",
            "D", "E") or your own list of stages in its notation (default "D"; Table 1).
        batch_norm (bool): a BN between each conv and its ReLU, as torchvision's ``vgg*_bn``
            (default False; the paper has none).
        num_classes (int): outputs of the last FC layer (default 1000; sec. 2.1).
        dropout (float): dropout probability after the first two FC layers (default 0.5;
            sec. 3.1).
        init (str): ``init_weights_``'s scheme (default "kaiming", torchvision's; sec. 3.1 for
            the others).
        init_std (float): the std of ``init="normal"`` (default 0.01; sec. 3.1 is ambiguous).
        name (str | None): the registry name, recorded in training histories (default None).
    """

    def __init__(self, config: Config = "D", batch_norm: bool = False, num_classes: int = 1000,
                 dropout: float = 0.5, init: str = "kaiming", init_std: float = 0.01,
                 name: Optional[str] = None) -> None:
        super().__init__()
        self.config, self.name = config, name
        self.features = make_features(config, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(out_channels(self.features) * 7 * 7, 4096),   # FC-4096 (sec. 2.1)
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),                 # dropout 0.5 on the first two FC (sec. 3.1)
            nn.Linear(4096, 4096),                 # FC-4096
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),          # FC-1000; soft-max is in the loss
        )
        self.min_input_size = 2 ** 5               # five 2x2 max-pools need >= 32 pixels
        init_weights_(self, init, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, channels=3, min_size=self.min_input_size)
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


# Defined in notebooks/01_vgg.ipynb, section 2 › The CIFAR-10 adaptation
def scale_config(config: Config, width: float = 1.0) -> list:
    """A configuration with every conv's channels multiplied by ``width`` (at least 1 channel):
    a narrower VGG of the same depth, for quick experiments."""
    out = []
    for specs in _stages(config):
        new = []
        for spec in specs:
            if spec == "LRN":
                new.append(spec)
            else:
                k, c = parse_conv(spec)
                new.append(f"conv{k}-{max(1, round(c * width))}")
        out.append(new)
    return out


# Defined in notebooks/01_vgg.ipynb, section 2 › The CIFAR-10 adaptation
class CifarVGG(nn.Module):
    """VGG for 32x32 images: ``features`` (the conv stages of a Table 1 column), ``avgpool``
    (global average pooling) and ``classifier`` (one linear layer). Not in the paper. Input:
    float images (N, 3, H, W), H and W at least ``min_input_size`` (32); any batch size, in
    training mode too (the last batch norms see 2x2 maps at 32x32).

    Args:
        config (str | list of lists of str): a column of ``TABLE_1`` or a list of stages
            (default "D"; Table 1).
        batch_norm (bool): a BN between each conv and its ReLU (default True; not in the paper).
        num_classes (int): outputs (default 10, CIFAR-10).
        width (float): multiplies every conv's channels, for quick narrow experiments
            (default 1.0; ours).
        init (str): ``init_weights_``'s scheme (default "kaiming", torchvision's).
        init_std (float): the std of ``init="normal"`` (default 0.01; sec. 3.1 is ambiguous).
        name (str | None): the registry name, recorded in training histories (default None).
    """

    def __init__(self, config: Config = "D", batch_norm: bool = True, num_classes: int = 10,
                 width: float = 1.0, init: str = "kaiming", init_std: float = 0.01,
                 name: Optional[str] = None) -> None:
        super().__init__()
        self.config, self.name = config, name
        self.features = make_features(scale_config(config, width), batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d(1)         # global pooling: any input >= 32 pixels
        self.classifier = nn.Linear(out_channels(self.features), num_classes)
        self.min_input_size = 2 ** 5               # five 2x2 max-pools need >= 32 pixels
        init_weights_(self, init, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, channels=3, min_size=self.min_input_size)
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


# Defined in notebooks/01_vgg.ipynb, section 2 › Pre-initialisation from net A (skip on a first read)
def _convs_by_stage(features: nn.Sequential) -> list:
    stages, current = [], []
    for m in features:
        if isinstance(m, nn.Conv2d):
            current.append(m)
        elif isinstance(m, nn.MaxPool2d):
            stages.append(current)
            current = []
    return stages


# Defined in notebooks/01_vgg.ipynb, section 2 › Pre-initialisation from net A (skip on a first read)
@torch.no_grad()
def init_from_net_a(deep: nn.Module, net_a: nn.Module, n_convs: int = 4) -> nn.Module:
    """Section 3.1: copy the first ``n_convs`` conv layers of a (trained) net A into the same rows
    of Table 1 in ``deep`` (our reading: the paper does not say where they go), and all of A's
    fully connected layers; every other layer of ``deep`` keeps its random initialisation ("the
    intermediate layers were initialised randomly"). Both nets must be without batch norm, as
    in the paper. Returns ``deep``."""
    for m in (deep, net_a):
        if any(isinstance(mod, nn.BatchNorm2d) for mod in m.modules()):
            raise ValueError("init_from_net_a is the paper's recipe for nets without batch norm.")
    copied = 0
    for convs_a, convs_deep in zip(_convs_by_stage(net_a.features), _convs_by_stage(deep.features)):
        for ca, cd in zip(convs_a, convs_deep):
            if copied == n_convs:
                break
            if ca.weight.shape != cd.weight.shape:
                raise ValueError(f"Row {copied} of Table 1 differs: {tuple(ca.weight.shape)} "
                                 f"vs {tuple(cd.weight.shape)}.")
            cd.weight.copy_(ca.weight)
            cd.bias.copy_(ca.bias)
            copied += 1
    fcs_a = [m for m in net_a.classifier.modules() if isinstance(m, nn.Linear)]
    fcs_deep = [m for m in deep.classifier.modules() if isinstance(m, nn.Linear)]
    for la, ld in zip(fcs_a, fcs_deep):
        ld.weight.copy_(la.weight)
        ld.bias.copy_(la.bias)
    return deep


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
#: Table 2: "number of parameters (in millions)", rounded to whole millions; A and A-LRN share
#: one column of the table.
TABLE_2 = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
def _vgg(name: str, config: str, batch_norm: bool, **kwargs) -> VGG:
    return VGG(config, batch_norm=batch_norm, name=name, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
def _with_paper_numbers(config: str):
    """Append the paper's numbers for a column of Table 1 (read from ``WEIGHT_LAYERS`` and
    ``TABLE_2``) to a constructor's docstring."""
    def append(constructor):
        constructor.__doc__ += (f"\n\n    Simonyan & Zisserman 2014: column {config} of Table 1, "
                                f"{WEIGHT_LAYERS[config]} weight layers; Table 2: "
                                f"{TABLE_2[config]}M parameters (without batch norm).")
        return constructor
    return append


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("vgg11", head="classifier.6", weights="VGG11_Weights.IMAGENET1K_V1")
@_with_paper_numbers("A")
def vgg11(**kwargs) -> VGG:
    """VGG-11: configuration A. Keywords: see ``VGG``."""
    return _vgg("vgg11", "A", False, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("vgg11_bn", head="classifier.6", weights="VGG11_BN_Weights.IMAGENET1K_V1")
@_with_paper_numbers("A")
def vgg11_bn(**kwargs) -> VGG:
    """``vgg11`` with a batch norm after each conv (not in the paper; torchvision's order)."""
    return _vgg("vgg11_bn", "A", True, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("vgg11_lrn", head="classifier.6")
@_with_paper_numbers("A-LRN")
def vgg11_lrn(**kwargs) -> VGG:
    """VGG-11 with AlexNet's LRN after the first conv: configuration A-LRN. Keywords: ``VGG``."""
    return _vgg("vgg11_lrn", "A-LRN", False, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("vgg11_lrn_bn", head="classifier.6")
@_with_paper_numbers("A-LRN")
def vgg11_lrn_bn(**kwargs) -> VGG:
    """``vgg11_lrn`` with a batch norm after each conv (not in the paper; torchvision's order)."""
    return _vgg("vgg11_lrn_bn", "A-LRN", True, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("vgg13", head="classifier.6", weights="VGG13_Weights.IMAGENET1K_V1")
@_with_paper_numbers("B")
def vgg13(**kwargs) -> VGG:
    """VGG-13: configuration B. Keywords: see ``VGG``."""
    return _vgg("vgg13", "B", False, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("vgg13_bn", head="classifier.6", weights="VGG13_BN_Weights.IMAGENET1K_V1")
@_with_paper_numbers("B")
def vgg13_bn(**kwargs) -> VGG:
    """``vgg13`` with a batch norm after each conv (not in the paper; torchvision's order)."""
    return _vgg("vgg13_bn", "B", True, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("vgg16_c", head="classifier.6")
@_with_paper_numbers("C")
def vgg16_c(**kwargs) -> VGG:
    """VGG-16 with three 1x1 convs: configuration C. Keywords: see ``VGG``."""
    return _vgg("vgg16_c", "C", False, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("vgg16_c_bn", head="classifier.6")
@_with_paper_numbers("C")
def vgg16_c_bn(**kwargs) -> VGG:
    """``vgg16_c`` with a batch norm after each conv (not in the paper; torchvision's order)."""
    return _vgg("vgg16_c_bn", "C", True, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("vgg16", head="classifier.6", weights="VGG16_Weights.IMAGENET1K_V1")
@_with_paper_numbers("D")
def vgg16(**kwargs) -> VGG:
    """VGG-16: configuration D. Keywords: see ``VGG``."""
    return _vgg("vgg16", "D", False, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("vgg16_bn", head="classifier.6", weights="VGG16_BN_Weights.IMAGENET1K_V1")
@_with_paper_numbers("D")
def vgg16_bn(**kwargs) -> VGG:
    """``vgg16`` with a batch norm after each conv (not in the paper; torchvision's order)."""
    return _vgg("vgg16_bn", "D", True, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("vgg19", head="classifier.6", weights="VGG19_Weights.IMAGENET1K_V1")
@_with_paper_numbers("E")
def vgg19(**kwargs) -> VGG:
    """VGG-19: configuration E. Keywords: see ``VGG``."""
    return _vgg("vgg19", "E", False, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("vgg19_bn", head="classifier.6", weights="VGG19_BN_Weights.IMAGENET1K_V1")
@_with_paper_numbers("E")
def vgg19_bn(**kwargs) -> VGG:
    """``vgg19`` with a batch norm after each conv (not in the paper; torchvision's order)."""
    return _vgg("vgg19_bn", "E", True, **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_vgg11_bn", head="classifier")
def cifar_vgg11_bn(**kwargs) -> CifarVGG:
    """Column A of ``TABLE_1`` with batch norm, for CIFAR-10. Keywords: ``CifarVGG``."""
    return CifarVGG("A", name="cifar_vgg11_bn", **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_vgg13_bn", head="classifier")
def cifar_vgg13_bn(**kwargs) -> CifarVGG:
    """Column B of ``TABLE_1`` with batch norm, for CIFAR-10. Keywords: ``CifarVGG``."""
    return CifarVGG("B", name="cifar_vgg13_bn", **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_vgg16_bn", head="classifier")
def cifar_vgg16_bn(**kwargs) -> CifarVGG:
    """Column D of ``TABLE_1`` with batch norm, for CIFAR-10. Keywords: ``CifarVGG``."""
    return CifarVGG("D", name="cifar_vgg16_bn", **kwargs)


# Defined in notebooks/01_vgg.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_vgg19_bn", head="classifier")
def cifar_vgg19_bn(**kwargs) -> CifarVGG:
    """Column E of ``TABLE_1`` with batch norm, for CIFAR-10. Keywords: ``CifarVGG``."""
    return CifarVGG("E", name="cifar_vgg19_bn", **kwargs)


# Defined in notebooks/01_vgg.ipynb, section Going deeper · Dense evaluation
class FullyConvolutionalVGG(nn.Module):
    """A trained ``VGG`` for dense evaluation (sec. 3.2): the same ``features``, then the three FC
    layers as convolutions (fc6: 7x7, fc7 and fc8: 1x1). ``forward`` returns the class score map
    (N, classes, H', W'), H' = H/32 - 6; ``scores`` averages it over space."""

    def __init__(self, vgg: nn.Module) -> None:
        super().__init__()
        fcs = [m for m in vgg.classifier if isinstance(m, nn.Linear)]
        if len(fcs) != 3 or fcs[0].in_features % 49:
            raise ValueError("Expected a VGG with three FC layers reading a C x 7 x 7 map.")
        self.features = vgg.features
        channels = fcs[0].in_features // 49
        convs = []
        for fc, k, c_in in zip(fcs, (7, 1, 1), (channels, fcs[0].out_features, fcs[1].out_features)):
            with torch.device("meta"):                  # no memory spent on a throw-away init
                conv = nn.Conv2d(c_in, fc.out_features, kernel_size=k)
            conv.weight = nn.Parameter(fc.weight.detach().reshape(fc.out_features, c_in, k, k).clone())
            conv.bias = nn.Parameter(fc.bias.detach().clone())
            convs.append(conv)
        self.fc6, self.fc7, self.fc8 = convs
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, channels=3, min_size=224)   # the 7x7 "fc6" needs a 7x7 map
        x = self.features(x)
        x = self.relu(self.fc6(x))
        x = self.relu(self.fc7(x))
        return self.fc8(x)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of whole images: the score map averaged over space (sec. 3.2)."""
        return self.forward(x).mean(dim=(2, 3))
