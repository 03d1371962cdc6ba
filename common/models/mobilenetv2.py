# Generated from notebooks/05_mobilenetv2.ipynb by `python -m common.save`: do not edit here.
# Edit the notebook's `#@save mobilenetv2` cells instead, then run `python -m common.save`.

"""05 · MobileNetV2: Inverted Residuals and Linear Bottlenecks

Mark Sandler, Andrew Howard, Menglong Zhu, Andrey Zhmoginov, Liang-Chieh Chen. MobileNetV2:
Inverted Residuals and Linear Bottlenecks. CVPR 2018. arXiv:1801.04381
(https://arxiv.org/abs/1801.04381)

The `#@save mobilenetv2` cells of notebooks/05_mobilenetv2.ipynb, in order; the comment above each
item names the section of the notebook that explains it.
"""
import math
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from common.models.registry import check_image_batch, register_model

__all__ = [
    "ConvNormActivation", "InvertedResidual", "INVERTED_RESIDUAL_SETTING",
    "CIFAR_INVERTED_RESIDUAL_SETTING", "MobileNetV2", "mobilenet_v2", "cifar_mobilenet_v2",
    "PAPER_NUMBERS", "TF_SLIM_CHECKPOINTS",
]


# Defined in notebooks/05_mobilenetv2.ipynb, section 2 › Convolution, normalisation, activation
class ConvNormActivation(nn.Sequential):
    """conv (no bias when a norm follows), norm, activation: torchvision's Conv2dNormActivation,
    with the same module names (0, 1, 2). `norm_layer=None` or `activation_layer=None` leave them
    out; `activation_layer` is called with `inplace=True` (ReLU6 here, SiLU in EfficientNet)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, norm_layer: Optional[Callable[..., nn.Module]] = nn.BatchNorm2d,
                 activation_layer: Optional[Callable[..., nn.Module]] = nn.ReLU6) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2,
                      groups=groups, bias=norm_layer is None)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


# Defined in notebooks/05_mobilenetv2.ipynb, section 2 › The inverted residual block (Table 1, Figure 3b)
class InvertedResidual(nn.Module):
    """Expand (1x1, act) -> depthwise (k x k, stride, act) -> linear projection (1x1, BN only),
    plus the input when the shapes allow (Table 1, Figure 3b). torchvision's names and signature;
    `kernel_size`, `activation_layer` and `project_activation` make it reusable (EfficientNet's
    MBConv; the non-linear bottleneck of Figure 6a: `project_activation=nn.ReLU6`)."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: float,
                 norm_layer: Optional[Callable[..., nn.Module]] = None, *, kernel_size: int = 3,
                 activation_layer: Callable[..., nn.Module] = nn.ReLU6,
                 project_activation: Optional[Callable[..., nn.Module]] = None) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2 (Table 2), got {stride}.")
        norm_layer = norm_layer or nn.BatchNorm2d
        hidden_dim = int(round(inp * expand_ratio))            # t applied to the input (sec. 4)
        self.stride, self.expand_ratio, self.out_channels = stride, expand_ratio, oup
        self.use_res_connect = stride == 1 and inp == oup      # the shortcut needs equal shapes
        layers: list[nn.Module] = []
        if expand_ratio != 1:                                  # t = 1: no expansion (TF code, torchvision)
            layers.append(ConvNormActivation(inp, hidden_dim, 1, norm_layer=norm_layer,
                                             activation_layer=activation_layer))
        layers += [
            ConvNormActivation(hidden_dim, hidden_dim, kernel_size, stride, groups=hidden_dim,
                               norm_layer=norm_layer, activation_layer=activation_layer),
            nn.Conv2d(hidden_dim, oup, 1, bias=False),         # project: linear (sec. 3.2)
            norm_layer(oup),
        ]
        if project_activation is not None:                     # Figure 6a's non-linear variant
            layers.append(project_activation())
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.use_res_connect:
            out = out + x                                      # between the bottlenecks (sec. 3.3)
        return out


# Defined in notebooks/05_mobilenetv2.ipynb, section 2 › The network as data
#: Table 2: the 17 inverted residual blocks of MobileNetV2 as (t, c, n, s) rows.
INVERTED_RESIDUAL_SETTING: list[list[int]] = [
    # t, c, n, s
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]
# Defined in notebooks/05_mobilenetv2.ipynb, section 2 › The network as data
#: The CIFAR-10 adaptation (32x32 inputs; not in the paper): with the stem's stride also 1.
CIFAR_INVERTED_RESIDUAL_SETTING: list[list[int]] = [
    # t, c, n, s
    [1, 16, 1, 1],
    [6, 24, 2, 1],          # stride 2 -> 1 for 32x32 inputs (kuangliu/pytorch-cifar)
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]


# Defined in notebooks/05_mobilenetv2.ipynb, section 2 › The model
def _make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """`v` rounded to the nearest multiple of `divisor` (at least `min_value`, default `divisor`),
    never more than 10% below `v`. Not in the paper: the official TF code's rule
    (tensorflow/models, research/slim/nets/mobilenet/mobilenet.py), which torchvision copies."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)   # nearest multiple
    if new_v < 0.9 * v:               # rounding down lost more than 10%: one step up
        new_v += divisor
    return new_v


# Defined in notebooks/05_mobilenetv2.ipynb, section 2 › The model
class MobileNetV2(nn.Module):
    """MobileNetV2 from a table of (t, c, n, s) rows (Table 2; `INVERTED_RESIDUAL_SETTING`).
    torchvision's arguments and module names (its state_dict loads with strict=True), plus:
    stem_stride (2; the CIFAR adaptation uses 1), input_channel (32) and last_channel (1280),
    the channels of the first and last convolutions before the width multiplier. The paper's
    numbers for widths 1.0 and 1.4 are in PAPER_NUMBERS["table4"]."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0,
                 inverted_residual_setting: Optional[Sequence[Sequence[int]]] = None,
                 round_nearest: int = 8, block: Optional[Callable[..., nn.Module]] = None,
                 norm_layer: Optional[Callable[..., nn.Module]] = None, dropout: float = 0.2, *,
                 stem_stride: int = 2, input_channel: int = 32, last_channel: int = 1280) -> None:
        super().__init__()
        setting = INVERTED_RESIDUAL_SETTING if inverted_residual_setting is None else inverted_residual_setting
        if not setting or any(len(row) != 4 for row in setting):
            raise ValueError("inverted_residual_setting must be a non-empty list of [t, c, n, s] "
                             f"rows (Table 2), got {setting!r}.")
        if width_mult <= 0 or num_classes < 1:
            raise ValueError(f"width_mult must be positive and num_classes at least 1, got "
                             f"{width_mult} and {num_classes}.")
        block = block or InvertedResidual
        norm_layer = norm_layer or nn.BatchNorm2d
        cin = _make_divisible(input_channel * width_mult, round_nearest)
        # sec. 4: the width multiplier is not applied to the last conv when it is below 1
        self.last_channel = _make_divisible(last_channel * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [ConvNormActivation(3, cin, stride=stem_stride,
                                                        norm_layer=norm_layer)]
        for t, c, n, s in setting:
            cout = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(block(cin, cout, s if i == 0 else 1, expand_ratio=t,
                                      norm_layer=norm_layer))     # stride s on the first only
                cin = cout
        features.append(ConvNormActivation(cin, self.last_channel, 1, norm_layer=norm_layer))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)                    # any input size
        self.classifier = nn.Sequential(nn.Dropout(p=dropout),
                                        nn.Linear(self.last_channel, num_classes))
        self.min_input_size = stem_stride * math.prod(s for t, c, n, s in setting)
        for m in self.modules():                                  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, channels=3, min_size=self.min_input_size,
                          training=self.training)     # also: one image ending on a 1x1 map
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))               # logits: softmax is in the loss


# Defined in notebooks/05_mobilenetv2.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("mobilenet_v2", head="classifier.1", weights="MobileNet_V2_Weights.IMAGENET1K_V2")
def mobilenet_v2(*, width_mult: float = 1.0, **kwargs) -> MobileNetV2:
    """MobileNetV2 (Table 2) at any width multiplier (width_mult, float: 1.0)."""
    return MobileNetV2(width_mult=width_mult, **kwargs)


# Defined in notebooks/05_mobilenetv2.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_mobilenet_v2", head="classifier.1")
def cifar_mobilenet_v2(*, width_mult: float = 1.0, num_classes: int = 10, **kwargs) -> MobileNetV2:
    """MobileNetV2 for 32x32 inputs: stride 1 in the stem and in the 24-channel row
    (CIFAR_INVERTED_RESIDUAL_SETTING; the adaptation of kuangliu/pytorch-cifar), so the last
    feature map is 4x4. Not in the paper."""
    kwargs.setdefault("inverted_residual_setting", CIFAR_INVERTED_RESIDUAL_SETTING)
    kwargs.setdefault("stem_stride", 1)
    return MobileNetV2(num_classes=num_classes, width_mult=width_mult, **kwargs)


# Defined in notebooks/05_mobilenetv2.ipynb, section 3 › Plumbing (skip on a first read)
#: The paper's numbers: Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear
#: Bottlenecks", arXiv:1801.04381 (v4). Checks, docstrings and tests read them from here.
PAPER_NUMBERS = {
    # Table 4 (ImageNet, 224x224): top-1 accuracy (%), parameters, multiply-adds, per width.
    "table4": {1.0: {"top1": 72.0, "params": 3.4e6, "madds": 300e6},
               1.4: {"top1": 74.7, "params": 6.9e6, "madds": 585e6}},
    # Sec. 4, "Trade-off hyper parameters": the smallest and largest model of the family.
    "family_madds": (7e6, 585e6),
    "family_params": (1.7e6, 6.9e6),
    "widths": (0.35, 0.5, 0.75, 1.0, 1.4),     # Figure 5 caption (1.4 only at 224)
    "input_sizes": (96, 224),                   # sec. 4: "input resolutions from 96 to 224"
}

# Defined in notebooks/05_mobilenetv2.ipynb, section 3 › Plumbing (skip on a first read)
#: Another source: the official TF-Slim checkpoints, tensorflow/models,
#: research/slim/nets/mobilenet/README.md. (width, input size) -> (MACs in millions, parameters
#: in millions, top-1 %), for 1001 classes. How it counts is worked out in notebook 05, "Going
#: deeper · the official TensorFlow code".
TF_SLIM_CHECKPOINTS = {
    (1.4, 224): (582, 6.06, 75.0), (1.3, 224): (509, 5.34, 74.4),
    (1.0, 224): (300, 3.47, 71.8), (1.0, 192): (221, 3.47, 70.7), (1.0, 160): (154, 3.47, 68.8),
    (1.0, 128): (99, 3.47, 65.3), (1.0, 96): (56, 3.47, 60.3),
    (0.75, 224): (209, 2.61, 69.8), (0.75, 192): (153, 2.61, 68.7), (0.75, 160): (107, 2.61, 66.4),
    (0.75, 128): (69, 2.61, 63.2), (0.75, 96): (39, 2.61, 58.8),
    (0.5, 224): (97, 1.95, 65.4), (0.5, 192): (71, 1.95, 63.9), (0.5, 160): (50, 1.95, 61.0),
    (0.5, 128): (32, 1.95, 57.7), (0.5, 96): (18, 1.95, 51.2),
    (0.35, 224): (59, 1.66, 60.3), (0.35, 192): (43, 1.66, 58.2), (0.35, 160): (30, 1.66, 55.7),
    (0.35, 128): (20, 1.66, 50.8), (0.35, 96): (11, 1.66, 45.5),
}

# Defined in notebooks/05_mobilenetv2.ipynb, section 3 › Plumbing (skip on a first read)
mobilenet_v2.__doc__ += "\n\n    Sandler et al. 2018, Table 4 (224x224): " + "; ".join(
    f"width {w}: {p['top1']}% top-1, {p['params'] / 1e6:g}M parameters, {p['madds'] / 1e6:g}M "
    "multiply-adds" for w, p in PAPER_NUMBERS["table4"].items()) + "."
