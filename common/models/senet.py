# Generated from notebooks/04_senet.ipynb by `python -m common.save`: do not edit here.
# Edit the notebook's `#@save senet` cells instead, then run `python -m common.save`.

"""04 · SE-Net: Squeeze-and-Excitation Networks

Jie Hu, Li Shen, Samuel Albanie, Gang Sun, Enhua Wu. Squeeze-and-Excitation Networks. CVPR 2018;
extended version IEEE TPAMI 2019. arXiv:1709.01507 (https://arxiv.org/abs/1709.01507)

The `#@save senet` cells of notebooks/04_senet.ipynb, in order; the comment above each item names
the section of the notebook that explains it.
"""
from typing import Callable, Optional

import torch
from torch import nn

from common.models.registry import register_model
from common.models.resnet import CIFAR_DEPTHS, IMAGENET_CONFIGS, BasicBlock, Bottleneck, ResNet

__all__ = [
    "SqueezeExcitation", "reduced_width", "SEBottleneck", "SEBasicBlock", "PAPER_NUMBERS",
    "ABLATIONS", "seresnet50", "seresnet101", "seresnet152", "seresnext50_32x4d",
    "resnext50_32x4d", "cifar_seresnet20", "cifar_seresnet56", "cifar_seresnet110",
]


# Defined in notebooks/04_senet.ipynb, section 2 › The squeeze-and-excitation block (Figure 1; Eqns. 2-4)
class SqueezeExcitation(nn.Module):
    """The squeeze-and-excitation block (Fig. 1): squeeze by global average pooling (Eqn. 2),
    excite with FC -> activation -> FC -> gate (Eqn. 3), scale the channels (Eqn. 4).
    timm's module names (``fc1``, ``fc2``: 1x1 convs on the pooled map), also torchvision's.

    Args:
        channels (int): C, the channels of the feature map U it recalibrates.
        reduced_channels (int): the bottleneck width of the excitation, C/r (Eqn. 3; SE-ResNet:
            ``reduced_width(C, 16)``; EfficientNet: a quarter of the block's input channels).
        activation (callable): builds the nonlinearity between the two FCs, delta (default
            nn.ReLU; Eqn. 3; EfficientNet: nn.SiLU).
        gate (callable): builds the gating function, sigma (default nn.Sigmoid; Eqn. 3,
            Table 12; MobileNetV3: nn.Hardsigmoid).
        bias (bool): biases in both FCs (default True: the official Caffe models and timm; the
            ablations of sec. 6 use none).

    Input (N, C, H, W) of any size; output the same shape.
    """

    def __init__(self, channels: int, reduced_channels: int, *,
                 activation: Callable[[], nn.Module] = nn.ReLU,
                 gate: Callable[[], nn.Module] = nn.Sigmoid, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced_channels, 1, bias=bias)   # W1: C -> C/r
        self.activation = activation()                                    # delta
        self.fc2 = nn.Conv2d(reduced_channels, channels, 1, bias=bias)   # W2: C/r -> C
        self.gate = gate()                                                # sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.mean((2, 3), keepdim=True)                       # squeeze: (N, C, 1, 1), Eqn. 2
        s = self.gate(self.fc2(self.activation(self.fc1(z))))  # excitation, Eqn. 3
        return x * s                                           # scale: s_c broadcast over H x W, Eqn. 4


# Defined in notebooks/04_senet.ipynb, section 2 › SE versions of the ResNet blocks (Figure 3)
def reduced_width(channels: int, reduction: float = 16, divisor: int = 8) -> int:
    """The excitation's bottleneck width C/r (Eqn. 3), rounded to the nearest multiple of
    ``divisor`` and at least ``divisor``: timm's ``make_divisible(C / r, divisor, round_limit=0)``.
    With divisor 8 (timm's) it equals C/r for every stage of the ImageNet ResNets (Table 1:
    16, 32, 64, 128 at r = 16); divisor 1 rounds C/r to the nearest integer, at least 1."""
    if channels < 1 or reduction <= 0 or divisor < 1:
        raise ValueError(f"reduced_width needs channels >= 1, reduction > 0 and divisor >= 1; got "
                         f"channels={channels}, reduction={reduction}, divisor={divisor}.")
    v = channels / reduction
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


# Defined in notebooks/04_senet.ipynb, section 2 › SE versions of the ResNet blocks (Figure 3)
class SEBottleneck(Bottleneck):
    """ResNet's bottleneck block (notebook 02) with a squeeze-and-excitation block on the
    residual branch, after bn3 and before the addition (Fig. 3; Table 1). Names: the
    bottleneck's and ``se.fc1``, ``se.fc2`` (timm's).

    Args:
        inplanes, planes, stride, downsample, groups, base_width, norm_layer, residual,
            stride_in_1x1: as ``Bottleneck`` (``stride_in_1x1=True``: v1, the paper's models).
        reduction (float): r (default 16; sec. 5.1): the SE block reduces the block's output
            channels, planes * 4, to planes * 4 / r (Table 1: fc, [16, 256] for planes = 64).
        divisor (int): rounding of the reduced width (default 8, timm's; see ``reduced_width``).
        se_bias (bool): biases in the excitation's FCs (default True; none in sec. 6).
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, *, reduction: float = 16,
                 divisor: int = 8, se_bias: bool = True, **kwargs) -> None:
        super().__init__(inplanes, planes, stride, downsample, **kwargs)
        width = planes * self.expansion                        # the OUTPUT channels, not `planes`
        self.se = SqueezeExcitation(width, reduced_width(width, reduction, divisor), bias=se_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = self.se(out)                                     # SE: after the last BN, before the addition
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out = out + identity
        return self.relu(out)


# Defined in notebooks/04_senet.ipynb, section 2 › SE versions of the ResNet blocks (Figure 3)
class SEBasicBlock(BasicBlock):
    """ResNet's basic block (notebook 02) with a squeeze-and-excitation block on the residual
    branch, after bn2 and before the addition (Fig. 3; sec. 3.3). Names: the basic block's and
    ``se.fc1``, ``se.fc2`` (timm's).

    Args:
        inplanes, planes, stride, downsample, norm_layer, residual: as ``BasicBlock``.
        reduction (float): r, the excitation's reduction ratio (default 16; sec. 5.1).
        divisor (int): the reduced width C/r is rounded to a multiple of this, at least it
            (default 8, timm's rounding; the CIFAR nets use 1: see ``reduced_width``).
        se_bias (bool): biases in the excitation's FCs (default True; the ablations of sec. 6
            use none).
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, *, reduction: float = 16,
                 divisor: int = 8, se_bias: bool = True, **kwargs) -> None:
        super().__init__(inplanes, planes, stride, downsample, **kwargs)
        width = planes * self.expansion
        self.se = SqueezeExcitation(width, reduced_width(width, reduction, divisor), bias=se_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.se(out)                                     # SE: after the last BN, before the addition
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out = out + identity
        return self.relu(out)


# Defined in notebooks/04_senet.ipynb, section 2 › The SE-ResNets, from notebook 02's ResNet
def _seresnet(depth: int, *, stride_in_1x1: bool = False, reduction: float = 16,
              divisor: int = 8, se_bias: bool = True, **kwargs) -> ResNet:
    kwargs["block_kwargs"] = dict(kwargs.get("block_kwargs") or {}, stride_in_1x1=stride_in_1x1,
                                  reduction=reduction, divisor=divisor, se_bias=se_bias)
    return ResNet(SEBottleneck, IMAGENET_CONFIGS[depth][1], **kwargs)


# Defined in notebooks/04_senet.ipynb, section 2 › The SE-ResNets, from notebook 02's ResNet
def _cifar_seresnet(depth: int, *, reduction: float = 16, divisor: int = 1, **kwargs) -> ResNet:
    kwargs.setdefault("num_classes", 10)
    kwargs.setdefault("shortcut", "A")                # notebook 02: option A, as He et al. sec. 4.2
    kwargs["block_kwargs"] = dict(kwargs.get("block_kwargs") or {}, reduction=reduction,
                                  divisor=divisor)
    return ResNet(SEBasicBlock, [CIFAR_DEPTHS[depth]] * 3, widths=(16, 32, 64), stem="cifar",
                  **kwargs)


# Defined in notebooks/04_senet.ipynb, section 2 › Plumbing (skip on a first read)
#: Hu et al.'s numbers, by model name (TPAMI version, arXiv:1709.01507v4; Table 2's are the same
#: in the CVPR 2018 text). source: the table; top1, top5: single-crop ImageNet validation error in
#: % (224x224 centre crop); gflops: Table 2's GFLOPs at 224x224, read as multiply-adds (our
#: reading); counted_as: the keywords that build the variant a count describes (our reading);
#: baseline: the network without SE as the paper re-trained it; error: Table 4's CIFAR-10 test
#: error in %.
PAPER_NUMBERS: dict[str, dict] = {
    "seresnet50": {"source": "Table 2", "top1": 23.29, "top5": 6.62, "gflops": 3.87,
                   "counted_as": {"stride_in_1x1": True},
                   "baseline": {"name": "resnet50", "top1": 24.80, "top5": 7.48, "gflops": 3.86}},
    "seresnet101": {"source": "Table 2", "top1": 22.38, "top5": 6.07, "gflops": 7.60,
                    "counted_as": {"stride_in_1x1": True},
                    "baseline": {"name": "resnet101", "top1": 23.17, "top5": 6.52, "gflops": 7.58}},
    "seresnet152": {"source": "Table 2", "top1": 21.57, "top5": 5.73, "gflops": 11.32,
                    "counted_as": {"stride_in_1x1": True},
                    "baseline": {"name": "resnet152", "top1": 22.42, "top5": 6.34, "gflops": 11.30}},
    "seresnext50_32x4d": {"source": "Table 2", "top1": 21.10, "top5": 5.49, "gflops": 4.25,
                          "counted_as": {},
                          "baseline": {"name": "resnext50_32x4d", "top1": 22.11, "top5": 5.90,
                                       "gflops": 4.24}},
    "cifar_seresnet110": {"source": "Table 4", "error": 5.21,
                          "baseline": {"name": "pre-activation ResNet-110 (the paper's [14])",
                                       "error": 6.37}},
}

# Defined in notebooks/04_senet.ipynb, section 2 › Plumbing (skip on a first read)
#: The ablations of sec. 6 (TPAMI only), all on SE-ResNet-50 with FCs without biases, top-1 and
#: top-5 ImageNet error in %. Table 10: reduction ratio r -> (top-1, top-5, parameters).
#: Table 11: squeeze operator; Table 12: the gate of the excitation; Table 14: where the SE block
#: sits (Fig. 5) -> (top-1, top-5). Table 13: SE blocks in one stage only -> (top-1, top-5,
#: GFLOPs, parameters); the paper's stages 2-4 (ResNet's conv2_x-conv4_x) are our layer1-layer3.
#: Table 15: the standard SE block, and SE after the 3x3 conv -> (top-1, top-5, GFLOPs, parameters).
ABLATIONS: dict[str, dict] = {
    "Table 10": {2: (22.29, 6.00, 45.7e6), 4: (22.25, 6.09, 35.7e6), 8: (22.26, 5.99, 30.7e6),
                 16: (22.28, 6.03, 28.1e6), 32: (22.72, 6.20, 26.9e6)},
    "Table 11": {"max": (22.57, 6.09), "avg": (22.28, 6.03)},
    "Table 12": {"ReLU": (23.47, 6.98), "tanh": (23.00, 6.38), "sigmoid": (22.28, 6.03)},
    "Table 13": {"none": (23.30, 6.55, 3.86, 25.6e6), "layer1": (23.03, 6.48, 3.86, 25.6e6),
                 "layer2": (23.04, 6.32, 3.86, 25.7e6), "layer3": (22.68, 6.22, 3.86, 26.4e6),
                 "all": (22.28, 6.03, 3.87, 28.1e6)},
    "Table 14": {"SE": (22.28, 6.03), "SE-PRE": (22.23, 6.00), "SE-POST": (22.78, 6.35),
                 "SE-Identity": (22.20, 6.15)},
    "Table 15": {"SE": (22.28, 6.03, 3.87, 28.1e6), "SE 3x3": (22.48, 6.02, 3.86, 25.8e6)},
}


# Defined in notebooks/04_senet.ipynb, section 2 › Plumbing (skip on a first read)
def _paper_numbers_in_docstring(constructor):
    """Append the model's PAPER_NUMBERS to its constructor's docstring."""
    p = PAPER_NUMBERS[constructor.__name__]
    base = p["baseline"]
    if "gflops" in p:
        said = (f"{p['top1']:.2f}% top-1, {p['top5']:.2f}% top-5 ImageNet error, "
                f"{p['gflops']:.2f} GFLOPs (the paper's {base['name']}: {base['top1']:.2f}%, "
                f"{base['top5']:.2f}%, {base['gflops']:.2f})")
    else:
        said = f"{p['error']:.2f}% CIFAR-10 test error ({base['name']}: {base['error']:.2f}%)"
    constructor.__doc__ += f"\n\n    Hu et al. (TPAMI), {p['source']}: {said}."
    return constructor


# Defined in notebooks/04_senet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("seresnet50", head="fc", weights="timm:seresnet50.a1_in1k")
@_paper_numbers_in_docstring
def seresnet50(**kwargs) -> ResNet:
    """SE-ResNet-50 (Table 1, middle): v1.5 and timm's seresnet50 unless stride_in_1x1=True (v1,
    the paper's). Input: images of at least 32x32 pixels."""
    return _seresnet(50, **kwargs)


# Defined in notebooks/04_senet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("seresnet101", head="fc")
@_paper_numbers_in_docstring
def seresnet101(**kwargs) -> ResNet:
    """SE-ResNet-101: v1.5 and timm's seresnet101 unless stride_in_1x1=True (v1, the paper's).
    Input: images of at least 32x32 pixels."""
    return _seresnet(101, **kwargs)


# Defined in notebooks/04_senet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("seresnet152", head="fc")
@_paper_numbers_in_docstring
def seresnet152(**kwargs) -> ResNet:
    """SE-ResNet-152: v1.5 and timm's seresnet152 unless stride_in_1x1=True (v1, the paper's).
    Input: images of at least 32x32 pixels."""
    return _seresnet(152, **kwargs)


# Defined in notebooks/04_senet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("seresnext50_32x4d", head="fc", weights="timm:seresnext50_32x4d.racm_in1k")
@_paper_numbers_in_docstring
def seresnext50_32x4d(**kwargs) -> ResNet:
    """SE-ResNeXt-50 (32x4d) (Table 1, right): timm's seresnext50_32x4d, the stride in the
    grouped 3x3 conv as in the official model. Input: images of at least 32x32 pixels."""
    return _seresnet(50, groups=32, width_per_group=4, **kwargs)


# Defined in notebooks/04_senet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("resnext50_32x4d", head="fc", weights="ResNeXt50_32X4D_Weights.IMAGENET1K_V2")
def resnext50_32x4d(**kwargs) -> ResNet:
    """ResNeXt-50 (32x4d) (Xie et al. 2017, arXiv:1611.05431), the baseline of SE-ResNeXt-50:
    torchvision's resnext50_32x4d. Input: images of at least 32x32 pixels."""
    return ResNet(Bottleneck, IMAGENET_CONFIGS[50][1], groups=32, width_per_group=4, **kwargs)


# Defined in notebooks/04_senet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_seresnet20", head="fc")
def cifar_seresnet20(**kwargs) -> ResNet:
    """CIFAR-10 SE-ResNet-20: notebook 02's ResNet-20 with SE blocks, r = 16, reduced widths
    1, 2, 4 (divisor 1). Input: images of at least 4x4 pixels."""
    return _cifar_seresnet(20, **kwargs)


# Defined in notebooks/04_senet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_seresnet56", head="fc")
def cifar_seresnet56(**kwargs) -> ResNet:
    """CIFAR-10 SE-ResNet-56: notebook 02's ResNet-56 with SE blocks, r = 16 (divisor 1).
    Input: images of at least 4x4 pixels."""
    return _cifar_seresnet(56, **kwargs)


# Defined in notebooks/04_senet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_seresnet110", head="fc")
@_paper_numbers_in_docstring
def cifar_seresnet110(**kwargs) -> ResNet:
    """CIFAR-10 SE-ResNet-110: notebook 02's ResNet-110 with SE blocks, r = 16 (divisor 1).
    Input: images of at least 4x4 pixels."""
    return _cifar_seresnet(110, **kwargs)
