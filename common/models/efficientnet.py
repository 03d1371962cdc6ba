# Generated from notebooks/06_efficientnet.ipynb by `python -m common.save`: do not edit here.
# Edit the notebook's `#@save efficientnet` cells instead, then run `python -m common.save`.

"""06 · EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks

Mingxing Tan, Quoc V. Le. EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks.
ICML 2019. arXiv:1905.11946 (https://arxiv.org/abs/1905.11946)

The `#@save efficientnet` cells of notebooks/06_efficientnet.ipynb, in order; the comment above
each item names the section of the notebook that explains it.
"""
import math
import re
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn

from common.models.mobilenetv2 import ConvNormActivation, _make_divisible
from common.models.registry import check_image_batch, register_model
from common.models.senet import SqueezeExcitation

__all__ = [
    "MBConv", "StochasticDepth", "TABLE1", "Stage", "EfficientNetConfig", "config_from_table",
    "B0_CONFIG", "EfficientNet", "round_filters", "round_repeats", "PAPER_NUMBERS",
    "OFFICIAL_COEFFICIENTS", "compound_scale", "TF_BATCH_NORM", "efficientnet_b0",
    "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5",
    "efficientnet_b6", "efficientnet_b7", "cifar_efficientnet_b0", "CIFAR_TABLE1",
    "CIFAR_B0_CONFIG",
]


# Defined in notebooks/06_efficientnet.ipynb, section 2 › MBConv
class MBConv(nn.Module):
    """EfficientNet's block (Table 1's "MBConv"): 1x1 expansion to expand_ratio * inp channels
    (BN, SiLU; none when expand_ratio is 1), k x k depthwise conv with the stride (BN, SiLU),
    squeeze-and-excitation through a quarter of the INPUT channels (se_ratio * inp), linear 1x1
    projection (BN); the input added where stride is 1 and inp == oup, the branch then dropped
    per sample with `stochastic_depth_prob` in training. torchvision's module names."""

    def __init__(self, inp: int, oup: int, kernel_size: int, stride: int, expand_ratio: int, *,
                 se_ratio: float = 0.25, stochastic_depth_prob: float = 0.0,
                 norm_layer: Optional[Callable[..., nn.Module]] = None,
                 activation_layer: Callable[..., nn.Module] = nn.SiLU) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2 (Table 1), got {stride}.")
        norm_layer = norm_layer or nn.BatchNorm2d
        hidden = int(inp * expand_ratio)                       # t applied to the input
        self.stride, self.expand_ratio, self.out_channels = stride, expand_ratio, oup
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:                                  # MBConv1: nothing to expand
            layers.append(ConvNormActivation(inp, hidden, 1, norm_layer=norm_layer,
                                             activation_layer=activation_layer))
        layers += [
            ConvNormActivation(hidden, hidden, kernel_size, stride, groups=hidden,
                               norm_layer=norm_layer, activation_layer=activation_layer),
            SqueezeExcitation(hidden, max(1, int(inp * se_ratio)),   # a quarter of the INPUT
                              activation=activation_layer),
            ConvNormActivation(hidden, oup, 1, norm_layer=norm_layer,
                               activation_layer=None),         # project: linear
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:                               # only where there is a shortcut
            out = self.stochastic_depth(out) + x
        return out


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Stochastic depth
class StochasticDepth(nn.Module):
    """Stochastic depth on a residual branch as EfficientNet's official code applies it
    (utils.drop_connect; Huang et al. 2016 drop per mini-batch and rescale at test time instead):
    in train mode, each sample's branch is zeroed with probability p and otherwise divided by
    1 - p; in eval mode the identity.
    mode "row": one draw per sample (EfficientNet's); "batch": one draw for the whole batch.
    torchvision.ops.StochasticDepth computes the same with the same random draws."""

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"The drop probability p must be in [0, 1), got {p}.")
        if mode not in ("row", "batch"):
            raise ValueError(f"mode must be 'row' (one draw per sample) or 'batch', got {mode!r}.")
        self.p, self.mode = p, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x                                           # test time: always kept
        survival = 1 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1) if self.mode == "row" else (1,) * x.ndim
        keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(survival)
        return x * keep.div_(survival)                         # E[output] = x

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}"


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Table 1 as data
#: Table 1: EfficientNet-B0, one row per stage; the resolution is the stage's input.
TABLE1 = [
    # stage, operator,                 resolution, channels, layers
    (1, "Conv3x3",                     224, 32, 1),
    (2, "MBConv1, k3x3",               112, 16, 1),
    (3, "MBConv6, k3x3",               112, 24, 2),
    (4, "MBConv6, k5x5",               56, 40, 2),
    (5, "MBConv6, k3x3",               28, 80, 3),
    (6, "MBConv6, k5x5",               14, 112, 3),
    (7, "MBConv6, k5x5",               14, 192, 4),
    (8, "MBConv6, k3x3",               7, 320, 1),
    (9, "Conv1x1 & Pooling & FC",      7, 1280, 1),
]


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Table 1 as data
@dataclass(frozen=True)
class Stage:
    """One row of MBConv blocks: the first with `stride` and input_channels -> out_channels, the
    other num_layers - 1 with stride 1 and out_channels -> out_channels (torchvision's
    MBConvConfig fields)."""
    expand_ratio: int
    kernel: int
    stride: int
    input_channels: int
    out_channels: int
    num_layers: int


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Table 1 as data
@dataclass(frozen=True)
class EfficientNetConfig:
    """A whole network: its stages, the stem's and the head's channels, the stem's stride, the
    input resolution it is meant for, the dropout before the classifier, and the width and depth
    coefficients it was scaled with (1.0 for a table read as printed)."""
    stages: tuple
    stem_channels: int
    head_channels: int
    stem_stride: int = 2
    resolution: int = 224
    dropout: float = 0.2
    width: float = 1.0
    depth: float = 1.0


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Table 1 as data
def config_from_table(table: Sequence[tuple], dropout: float = 0.2) -> EfficientNetConfig:
    """An EfficientNetConfig from a table laid out as Table 1 (stage, operator, input resolution,
    output channels, layers): a stem row, "MBConv<t>, k<k>x<k>" rows, a head row. Each stride is
    a row's resolution divided by the next row's."""
    if len(table) < 3:
        raise ValueError("A table needs a stem row, at least one MBConv row and a head row.")
    resolutions = [row[2] for row in table]
    stages, cin = [], table[0][3]
    for i, (_, operator, resolution, channels, layers) in enumerate(table[1:-1], start=1):
        m = re.fullmatch(r"MBConv(\d+), k(\d)x\2", operator)
        if m is None:
            raise ValueError(f"Row {i + 1}: expected an operator like 'MBConv6, k5x5', got {operator!r}.")
        stride = resolution // resolutions[i + 1]              # the next row's input resolution
        stages.append(Stage(int(m[1]), int(m[2]), stride, cin, channels, layers))
        cin = channels
    return EfficientNetConfig(tuple(stages), stem_channels=table[0][3], head_channels=table[-1][3],
                              stem_stride=resolutions[0] // resolutions[1],
                              resolution=resolutions[0], dropout=dropout)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Table 1 as data
#: EfficientNet-B0 (Table 1), as a configuration.
B0_CONFIG = config_from_table(TABLE1)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › The model
class EfficientNet(nn.Module):
    """EfficientNet from an EfficientNetConfig (default B0: Table 1), torchvision's layout and
    module names (its state_dict loads with strict=True).

    Args:
        config (EfficientNetConfig): the network (B0_CONFIG; compound_scale(...) for others).
        num_classes (int): outputs of the classifier (default 1000).
        stochastic_depth_prob (float): p of the last block; block i of N drops its branch with
            p * i / N in training (default 0.2: the official code's and torchvision's; the
            paper's v5 says "survival probability 0.8", the earlier text "drop connect ratio 0.3").
        dropout (float): before the classifier (default: the config's, 0.2 for B0 ... 0.5 for B7).
        norm_layer (callable): builds each batch norm (default nn.BatchNorm2d; TF_BATCH_NORM is
            partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01): the paper's momentum 0.99 in
            PyTorch's convention, sec. 5.2, and the official code's epsilon).
        block (callable): builds each block, MBConv's signature (default MBConv).
    """

    def __init__(self, config: Optional[EfficientNetConfig] = None, num_classes: int = 1000, *,
                 stochastic_depth_prob: float = 0.2, dropout: Optional[float] = None,
                 norm_layer: Optional[Callable[..., nn.Module]] = None,
                 block: Optional[Callable[..., nn.Module]] = None) -> None:
        super().__init__()
        config = config or B0_CONFIG
        if not config.stages or num_classes < 1:
            raise ValueError(f"An EfficientNet needs at least one stage and one class; got "
                             f"{len(config.stages)} stages and num_classes={num_classes}.")
        if not 0 <= stochastic_depth_prob < 1:
            raise ValueError(f"stochastic_depth_prob is the last block's drop probability, in "
                             f"[0, 1) (0.2 by default); got {stochastic_depth_prob}.")
        norm_layer = norm_layer or nn.BatchNorm2d
        block = block or MBConv
        features: list[nn.Module] = [ConvNormActivation(3, config.stem_channels, 3, config.stem_stride,
                                                        norm_layer=norm_layer, activation_layer=nn.SiLU)]
        total, index = sum(s.num_layers for s in config.stages), 0
        for s in config.stages:
            blocks = []
            for i in range(s.num_layers):                      # the stride in the first block only
                blocks.append(block(s.input_channels if i == 0 else s.out_channels, s.out_channels,
                                    s.kernel, s.stride if i == 0 else 1, s.expand_ratio,
                                    stochastic_depth_prob=stochastic_depth_prob * index / total,
                                    norm_layer=norm_layer))    # linear in the block index
                index += 1
            features.append(nn.Sequential(*blocks))
        features.append(ConvNormActivation(config.stages[-1].out_channels, config.head_channels, 1,
                                           norm_layer=norm_layer, activation_layer=nn.SiLU))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)                 # any input size
        self.classifier = nn.Sequential(
            nn.Dropout(p=config.dropout if dropout is None else dropout, inplace=True),
            nn.Linear(config.head_channels, num_classes))
        self.config = config
        self.min_input_size = config.stem_stride * math.prod(s.stride for s in config.stages)
        for m in self.modules():                   # torchvision's init (official but for depthwise fan-out)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, channels=3, min_size=self.min_input_size,
                          training=self.training)     # also: one image ending on a 1x1 map
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))            # logits: softmax is in the loss


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Compound scaling
def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by the width coefficient, rounded as the official code's `round_filters`:
    the nearest multiple of `divisor`, at least `divisor`, never more than 10% below the target
    (notebook 05's `_make_divisible`). Not in the paper."""
    return _make_divisible(filters * width, divisor)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Compound scaling
def round_repeats(repeats: int, depth: float) -> int:
    """Layers of a stage scaled by the depth coefficient, rounded up (the official code's
    `round_repeats`). Not in the paper."""
    return int(math.ceil(depth * repeats))


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Compound scaling
#: The paper's numbers: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
#: Networks", ICML 2019, arXiv:1905.11946 (v5). Checks, docstrings and tests read them from here.
PAPER_NUMBERS = {
    # Table 2 (ImageNet): top-1 accuracy (%), parameters, "FLOPS" (multiply-adds: section 3).
    "table2": {
        "b0": {"top1": 77.1, "params": 5.3e6, "flops": 0.39e9},
        "b1": {"top1": 79.1, "params": 7.8e6, "flops": 0.70e9},
        "b2": {"top1": 80.1, "params": 9.2e6, "flops": 1.0e9},
        "b3": {"top1": 81.6, "params": 12e6, "flops": 1.8e9},
        "b4": {"top1": 82.9, "params": 19e6, "flops": 4.2e9},
        "b5": {"top1": 83.6, "params": 30e6, "flops": 9.9e9},
        "b6": {"top1": 84.0, "params": 43e6, "flops": 19e9},
        "b7": {"top1": 84.3, "params": 66e6, "flops": 37e9},
    },
    # Table 2's top-1 in an earlier arXiv text (same parameters and FLOPS).
    "table2_top1_earlier": {"b0": 76.3, "b1": 78.8, "b2": 79.8, "b3": 81.1, "b4": 82.6,
                            "b5": 83.3, "b6": 84.0, "b7": 84.4},
    # Sec. 4, step 1: the grid search at phi = 1, "under constraint of alpha * beta^2 * gamma^2 ~ 2".
    "alpha": 1.2, "beta": 1.1, "gamma": 1.15,
    "flops_target": 400e6,                     # sec. 4: "our FLOPS target is 400M"
    "search_w": -0.07,                         # sec. 4: ACC(m) x [FLOPS(m) / T]^w
    # Sec. 5.2: the ImageNet recipe.
    "recipe": {"rmsprop_decay": 0.9, "momentum": 0.9, "bn_momentum": 0.99, "weight_decay": 1e-5,
               "lr": 0.256, "lr_decay": 0.97, "lr_decay_epochs": 2.4, "survival_prob": 0.8,
               "dropout": (0.2, 0.5), "minival_images": 25_000},   # the minival: v5 only
    "drop_connect_earlier": 0.3,               # the earlier text: "drop connect ratio 0.3"
}

# Defined in notebooks/06_efficientnet.ipynb, section 2 › Compound scaling
#: Another source: the released models' coefficients, which the paper does not state. The
#: official code, tensorflow/tpu, models/official/efficientnet/efficientnet_builder.py,
#: `efficientnet_params` (unchanged since its first commit, 474e9d4, 2019-05-23):
#: name -> (width, depth, resolution, dropout).
OFFICIAL_COEFFICIENTS = {
    "b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5),
}


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Compound scaling
def compound_scale(scale: Union[float, Sequence[float]],
                   base: Optional[EfficientNetConfig] = None) -> EfficientNetConfig:
    """Scale `base` (default: B0, Table 1) by Equation 3.

    scale: either phi (a number): depth alpha**phi, width beta**phi, resolution
        base.resolution * gamma**phi (rounded to a whole pixel), with the paper's alpha = 1.2,
        beta = 1.1, gamma = 1.15 (sec. 4) and the base's dropout; or the coefficients
        (width, depth, resolution[, dropout]) themselves, as the released models give them
        (OFFICIAL_COEFFICIENTS; the resolution in pixels).
    Channels are rounded with round_filters, layers with round_repeats (the official code's
    rules). The base must be a table as printed (width and depth 1), not a scaled network."""
    base = base or B0_CONFIG
    if base.width != 1 or base.depth != 1:
        raise ValueError("compound_scale scales a base network read from its table (width and "
                         "depth 1); scaling a scaled network would round twice. Pass the base's "
                         "table config and the total coefficients.")
    if isinstance(scale, (int, float)):
        phi = scale
        width, depth = PAPER_NUMBERS["beta"] ** phi, PAPER_NUMBERS["alpha"] ** phi
        resolution, dropout = base.resolution * PAPER_NUMBERS["gamma"] ** phi, base.dropout
    else:
        width, depth, resolution, *rest = scale
        dropout = rest[0] if rest else base.dropout
    stages = tuple(replace(s, input_channels=round_filters(s.input_channels, width),
                           out_channels=round_filters(s.out_channels, width),
                           num_layers=round_repeats(s.num_layers, depth)) for s in base.stages)
    return replace(base, stages=stages, stem_channels=round_filters(base.stem_channels, width),
                   head_channels=round_filters(base.head_channels, width),
                   resolution=round(resolution), dropout=dropout, width=width, depth=depth)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
def _efficientnet(variant: str, **kwargs) -> EfficientNet:
    return EfficientNet(compound_scale(OFFICIAL_COEFFICIENTS[variant]), **kwargs)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
#: TensorFlow's batch norm: momentum 0.99 in TF's convention (the paper's, sec. 5.2, and the
#: official code's), epsilon 1e-3 (the official code's; the paper states none); torchvision's for
#: B5-B7, whose weights were ported from TensorFlow.
TF_BATCH_NORM = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("efficientnet_b0", head="classifier.1",
                weights="EfficientNet_B0_Weights.IMAGENET1K_V1")
def efficientnet_b0(**kwargs) -> EfficientNet:
    return _efficientnet("b0", **kwargs)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("efficientnet_b1", head="classifier.1",
                weights="EfficientNet_B1_Weights.IMAGENET1K_V2")
def efficientnet_b1(**kwargs) -> EfficientNet:
    return _efficientnet("b1", **kwargs)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("efficientnet_b2", head="classifier.1",
                weights="EfficientNet_B2_Weights.IMAGENET1K_V1")
def efficientnet_b2(**kwargs) -> EfficientNet:
    return _efficientnet("b2", **kwargs)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("efficientnet_b3", head="classifier.1",
                weights="EfficientNet_B3_Weights.IMAGENET1K_V1")
def efficientnet_b3(**kwargs) -> EfficientNet:
    return _efficientnet("b3", **kwargs)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("efficientnet_b4", head="classifier.1",
                weights="EfficientNet_B4_Weights.IMAGENET1K_V1")
def efficientnet_b4(**kwargs) -> EfficientNet:
    return _efficientnet("b4", **kwargs)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("efficientnet_b5", head="classifier.1",
                weights="EfficientNet_B5_Weights.IMAGENET1K_V1")
def efficientnet_b5(*, norm_layer: Callable[..., nn.Module] = TF_BATCH_NORM, **kwargs) -> EfficientNet:
    return _efficientnet("b5", norm_layer=norm_layer, **kwargs)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("efficientnet_b6", head="classifier.1",
                weights="EfficientNet_B6_Weights.IMAGENET1K_V1")
def efficientnet_b6(*, norm_layer: Callable[..., nn.Module] = TF_BATCH_NORM, **kwargs) -> EfficientNet:
    return _efficientnet("b6", norm_layer=norm_layer, **kwargs)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("efficientnet_b7", head="classifier.1",
                weights="EfficientNet_B7_Weights.IMAGENET1K_V1")
def efficientnet_b7(*, norm_layer: Callable[..., nn.Module] = TF_BATCH_NORM, **kwargs) -> EfficientNet:
    return _efficientnet("b7", norm_layer=norm_layer, **kwargs)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
def _document(*constructors: Callable) -> None:
    for fn in constructors:
        variant = fn.__name__.rsplit("_", 1)[1]
        (w, d, r, p), t = OFFICIAL_COEFFICIENTS[variant], PAPER_NUMBERS["table2"][variant]
        fn.__doc__ = (f"EfficientNet-{variant.upper()}: B0 (Table 1) scaled by width {w}, depth {d}, "
                      f"for {r}x{r} inputs, dropout {p} (the official code's coefficients). Tan & "
                      f"Le, Table 2: {t['top1']}% top-1, {t['params'] / 1e6:g}M parameters, "
                      f"{t['flops'] / 1e9:g}B FLOPS.")


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
_document(efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3, efficientnet_b4,
          efficientnet_b5, efficientnet_b6, efficientnet_b7)


# Defined in notebooks/06_efficientnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_efficientnet_b0", head="classifier.1")
def cifar_efficientnet_b0(*, num_classes: int = 10, width_mult: float = 1.0, depth_mult: float = 1.0,
                          **kwargs) -> EfficientNet:
    """EfficientNet-B0 for 32x32 inputs (CIFAR_TABLE1: stride 1 in the stem and in stage 3, as
    notebook 05's MobileNetV2), last feature map 4x4; width_mult and depth_mult scale it as
    compound_scale does; the classifier initialised as nn.Linear's default. Not in the paper."""
    model = EfficientNet(compound_scale((width_mult, depth_mult, 32), base=CIFAR_B0_CONFIG),
                         num_classes=num_classes, **kwargs)
    # The classifier as nn.Linear's default (uniform in +-1/sqrt(in_features), +-0.028 here), as
    # kuangliu/pytorch-cifar's EfficientNet (models/efficientnet.py at 12420c5), whose recipe
    # section 5 uses: the official range +-1/sqrt(classes) was set for 1,000 classes (+-0.032);
    # with 10 it is +-0.316, and this model then did not learn at lr 0.1 (measured in issue 32's
    # study, one batch of 128 digits at initialisation: gradient norm 155 against 10 with this
    # init, one tensor's gradient 42x its weights' norm; 17% test accuracy after quick mode's 30
    # epochs against 97% with this init). The ImageNet constructors keep the official range.
    model.classifier[1].reset_parameters()
    return model


# Defined in notebooks/06_efficientnet.ipynb, section 5 · Train
#: The CIFAR-10 adaptation (32x32 inputs; not in the paper): Table 1 with stride 1 in the stem
#: and in stage 3, as notebook 05 adapts MobileNetV2; the last feature map is 4x4.
CIFAR_TABLE1 = [
    # stage, operator,                 resolution, channels, layers
    (1, "Conv3x3",                     32, 32, 1),     # stride 1 (ImageNet: 2)
    (2, "MBConv1, k3x3",               32, 16, 1),
    (3, "MBConv6, k3x3",               32, 24, 2),     # stride 1 (ImageNet: 2)
    (4, "MBConv6, k5x5",               32, 40, 2),
    (5, "MBConv6, k3x3",               16, 80, 3),
    (6, "MBConv6, k5x5",               8, 112, 3),
    (7, "MBConv6, k5x5",               8, 192, 4),
    (8, "MBConv6, k3x3",               4, 320, 1),
    (9, "Conv1x1 & Pooling & FC",      4, 1280, 1),
]
# Defined in notebooks/06_efficientnet.ipynb, section 5 · Train
#: EfficientNet-B0's CIFAR-10 adaptation, as a configuration (`cifar_efficientnet_b0`).
CIFAR_B0_CONFIG = config_from_table(CIFAR_TABLE1)
