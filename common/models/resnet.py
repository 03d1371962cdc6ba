# Generated from notebooks/02_resnet.ipynb by `python -m common.save`: do not edit here.
# Edit the notebook's `#@save resnet` cells instead, then run `python -m common.save`.

"""02 · ResNet: Deep Residual Learning for Image Recognition

Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun. Deep Residual Learning for Image Recognition.
CVPR 2016. arXiv:1512.03385 (https://arxiv.org/abs/1512.03385)

The `#@save resnet` cells of notebooks/02_resnet.ipynb, in order; the comment above each item names
the section of the notebook that explains it.
"""
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from common.models.registry import check_image_batch, register_model

__all__ = [
    "conv3x3", "conv1x1", "ShortcutA", "make_shortcut", "BasicBlock", "Bottleneck", "make_stage",
    "IMAGENET_CONFIGS", "CIFAR_DEPTHS", "ResNet", "resnet18", "resnet34", "resnet50", "resnet101",
    "resnet152", "cifar_resnet20", "cifar_resnet32", "cifar_resnet44", "cifar_resnet56",
    "cifar_resnet110", "cifar_plain20", "cifar_plain32", "cifar_plain44", "cifar_plain56",
    "cifar_plain110",
]


# Defined in notebooks/02_resnet.ipynb, section 3 · Build it, block by block
def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1,
            dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1 (keeps the size at stride 1), no bias: BN follows (sec. 3.4)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                     groups=groups, dilation=dilation, bias=False)


# Defined in notebooks/02_resnet.ipynb, section 3 · Build it, block by block
def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


# Defined in notebooks/02_resnet.ipynb, section 3 › Shortcuts
class ShortcutA(nn.Module):
    """Shortcut option A (sec. 3.3): the identity, subsampled by taking every `stride`-th pixel,
    with zero channels appended to reach `out_channels`. No parameters, no buffers."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError("Option A can only add channels (it pads with zeros), "
                             f"not go from {in_channels} to {out_channels}.")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]        # "performed with a stride of 2"
        extra = self.out_channels - self.in_channels
        if extra:
            x = F.pad(x, (0, 0, 0, 0, 0, extra))              # "extra zero entries padded"
        return x

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


# Defined in notebooks/02_resnet.ipynb, section 3 › Shortcuts
def make_shortcut(kind: str, in_channels: int, out_channels: int, stride: int = 1,
                  norm_layer: Optional[Callable[..., nn.Module]] = None) -> Optional[nn.Module]:
    """The shortcut of one block: None for the identity, else a module for `block.downsample`.

    kind "A": zero-padding identity where the shape changes; "B": 1x1 projection + BN where the
    shape changes (Eqn. 2); "C": projection + BN on every block (sec. 3.3 and 4.1)."""
    if kind not in ("A", "B", "C"):
        raise ValueError(f"Unknown shortcut option {kind!r}: choose 'A', 'B' or 'C' (sec. 3.3).")
    norm_layer = norm_layer or nn.BatchNorm2d
    # The shape changes if the resolution OR the number of channels changes. Checking only the
    # stride misses the first bottleneck of ResNet-50 (64 -> 256 channels at stride 1).
    shape_changes = stride != 1 or in_channels != out_channels
    if kind == "C" or (kind == "B" and shape_changes):
        return nn.Sequential(conv1x1(in_channels, out_channels, stride), norm_layer(out_channels))
    if kind == "A" and shape_changes:
        return ShortcutA(in_channels, out_channels, stride)
    return None


# Defined in notebooks/02_resnet.ipynb, section 3 › The basic block (Figure 2; Figure 5, left)
class _ResidualBlock(nn.Module):
    """What the basic and bottleneck blocks share: y = ReLU(F(x) + shortcut(x)) (Eqn. 1 and 2)."""

    expansion: int = 1

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual function F(x)."""
        raise NotImplementedError

    def last_bn(self) -> nn.Module:
        """The last batch norm of the residual branch (the one zero-init sets to gamma = 0)."""
        raise NotImplementedError

    def zero_init_last(self) -> None:
        """gamma = 0 in the branch's last BN: F(x) = 0 and the block starts as the identity
        (Goyal et al. 2017, arXiv:1706.02677, sec. 5.1; not in the ResNet paper)."""
        nn.init.zeros_(self.last_bn().weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)                                   # F(x), computed from the input x
        if self.residual:
            identity = x if self.downsample is None else self.downsample(x)
            out = out + identity                               # F(x) + x (Eqn. 1) or + W_s x (Eqn. 2)
        return self.relu(out)                                  # the ReLU after the addition (sec. 3.2)


# Defined in notebooks/02_resnet.ipynb, section 3 › The basic block (Figure 2; Figure 5, left)
class BasicBlock(_ResidualBlock):
    """Two 3x3 convs (ResNet-18/34 and the CIFAR nets). torchvision's signature and names."""

    expansion: int = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, groups: int = 1, base_width: int = 64,
                 dilation: int = 1, norm_layer: Optional[Callable[..., nn.Module]] = None, *,
                 residual: bool = True) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        if downsample is not None and not residual:
            raise ValueError("A plain block (residual=False) has no shortcut, so no downsample.")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = conv3x3(inplanes, planes, stride)         # the stride sits in the first conv
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.residual = residual

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))                       # no ReLU before the addition

    def last_bn(self) -> nn.Module:
        return self.bn2


# Defined in notebooks/02_resnet.ipynb, section 3 › The bottleneck block (Figure 5, right)
class Bottleneck(_ResidualBlock):
    """1x1 (reduce), 3x3, 1x1 (restore, x4) (ResNet-50/101/152). torchvision's signature and
    names; `stride_in_1x1=True` puts the stride in the first 1x1 conv (the paper's v1) instead
    of the 3x3 conv (v1.5, torchvision's and NVIDIA's)."""

    expansion: int = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, groups: int = 1, base_width: int = 64,
                 dilation: int = 1, norm_layer: Optional[Callable[..., nn.Module]] = None, *,
                 residual: bool = True, stride_in_1x1: bool = False) -> None:
        super().__init__()
        if downsample is not None and not residual:
            raise ValueError("A plain block (residual=False) has no shortcut, so no downsample.")
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(inplanes, width, stride=s1)       # v1: the stride is here
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, s3, groups, dilation)   # v1.5: the stride is here
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)   # restore: 4x the bottleneck width
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.stride_in_1x1 = stride_in_1x1
        self.residual = residual

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def last_bn(self) -> nn.Module:
        return self.bn3


# Defined in notebooks/02_resnet.ipynb, section 3 › A stage
def make_stage(block: type, inplanes: int, planes: int, blocks: int, stride: int = 1,
               shortcut: str = "B", residual: bool = True,
               norm_layer: Optional[Callable[..., nn.Module]] = None, **block_kwargs) -> nn.Sequential:
    """`blocks` blocks; the first has stride `stride` and takes `inplanes` channels, all output
    `planes * block.expansion`. `shortcut` is the option A/B/C of sec. 3.3; `residual=False`
    builds the plain counterpart (no shortcuts at all)."""
    out_channels = planes * block.expansion
    layers = []
    for i in range(blocks):
        cin, s = (inplanes, stride) if i == 0 else (out_channels, 1)
        downsample = make_shortcut(shortcut, cin, out_channels, s, norm_layer) if residual else None
        layers.append(block(cin, planes, s, downsample, norm_layer=norm_layer, residual=residual,
                            **block_kwargs))
    return nn.Sequential(*layers)


# Defined in notebooks/02_resnet.ipynb, section 3 › The model, from a config list
#: Table 1: (block, blocks per stage conv2_x..conv5_x) for each ImageNet depth.
IMAGENET_CONFIGS: dict[int, tuple[type, list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}
# Defined in notebooks/02_resnet.ipynb, section 3 › The model, from a config list
#: Section 4.2: depth 6n + 2 -> n basic blocks per stage (2n layers per feature-map size).
CIFAR_DEPTHS: dict[int, int] = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18, 1202: 200}


# Defined in notebooks/02_resnet.ipynb, section 3 › The model, from a config list
class ResNet(nn.Module):
    """A ResNet built from a config: `block` (BasicBlock / Bottleneck or a subclass) and
    `layers` (blocks per stage). torchvision's arguments and module names, plus:

    widths: output width of each stage before expansion (ImageNet 64..512, CIFAR 16/32/64);
    stem: "imagenet" (7x7/2 conv + 3x3/2 max pool) or "cifar" (3x3/1 conv, no pool);
    shortcut: option "A", "B" or "C" (sec. 3.3); residual=False builds the plain net;
    block_kwargs: passed to every block (e.g. stride_in_1x1=True for the v1 bottleneck).
    """

    def __init__(self, block: type, layers: Sequence[int], num_classes: int = 1000,
                 zero_init_residual: bool = False, groups: int = 1, width_per_group: int = 64,
                 norm_layer: Optional[Callable[..., nn.Module]] = None, *,
                 widths: Sequence[int] = (64, 128, 256, 512), stem: str = "imagenet",
                 shortcut: str = "B", residual: bool = True, in_channels: int = 3,
                 block_kwargs: Optional[dict] = None) -> None:
        super().__init__()
        if len(widths) != len(layers):
            raise ValueError(f"One width per stage: got {len(widths)} widths for {len(layers)} stages.")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"Unknown stem {stem!r}: choose 'imagenet' or 'cifar'.")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.in_channels = in_channels
        width = widths[0]
        if stem == "imagenet":                                  # Table 1, conv1 and the pool
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:                                                   # sec. 4.2: "the first layer is 3x3 convolutions"
            self.conv1 = conv3x3(in_channels, width)
            self.maxpool = nn.Identity()
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        kwargs = dict(block_kwargs or {}, groups=groups, base_width=width_per_group)
        self.stage_names = []
        inplanes = width
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2                         # conv3_1, conv4_1, conv5_1 stride 2
            stage = make_stage(block, inplanes, planes, blocks, stride, shortcut, residual,
                               norm_layer, **kwargs)
            name = f"layer{i + 1}"
            self.add_module(name, stage)
            self.stage_names.append(name)
            inplanes = planes * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))             # any input size -> 1x1
        self.fc = nn.Linear(inplanes, num_classes)

        for m in self.modules():                                # He init (sec. 3.4), as torchvision
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:                                  # Goyal et al. 2017, not the paper
            for m in self.modules():
                if isinstance(m, _ResidualBlock) and m.residual:
                    m.zero_init_last()

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, name) for name in self.stage_names]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, channels=self.in_channels)
        x = self.avgpool(self.features(x))
        return self.fc(torch.flatten(x, 1))                     # logits: softmax is in the loss


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
def _resnet(depth: int, *, stride_in_1x1: bool = False, **kwargs) -> ResNet:
    block, layers = IMAGENET_CONFIGS[depth]
    if block is Bottleneck:
        kwargs["block_kwargs"] = dict(kwargs.get("block_kwargs") or {}, stride_in_1x1=stride_in_1x1)
    elif stride_in_1x1:
        raise ValueError("stride_in_1x1 (v1 vs v1.5) only concerns bottleneck nets: ResNet-50/101/152.")
    return ResNet(block, layers, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
def _cifar_resnet(depth: int, residual: bool = True, **kwargs) -> ResNet:
    kwargs.setdefault("num_classes", 10)
    kwargs.setdefault("shortcut", "A")                # sec. 4.2: "identity shortcuts in all cases"
    return ResNet(BasicBlock, [CIFAR_DEPTHS[depth]] * 3, widths=(16, 32, 64), stem="cifar",
                  residual=residual, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("resnet18")
def resnet18(**kwargs) -> ResNet:
    """ResNet-18 (Table 1)."""
    return _resnet(18, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("resnet34")
def resnet34(**kwargs) -> ResNet:
    """ResNet-34 (Table 1)."""
    return _resnet(34, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("resnet50")
def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (Table 1); v1.5 unless stride_in_1x1=True."""
    return _resnet(50, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("resnet101")
def resnet101(**kwargs) -> ResNet:
    """ResNet-101 (Table 1); v1.5 unless stride_in_1x1=True."""
    return _resnet(101, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("resnet152")
def resnet152(**kwargs) -> ResNet:
    """ResNet-152 (Table 1); v1.5 unless stride_in_1x1=True."""
    return _resnet(152, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("cifar_resnet20")
def cifar_resnet20(**kwargs) -> ResNet:
    """CIFAR-10 ResNet-20 (sec. 4.2, n = 3; Table 6: 0.27M parameters)."""
    return _cifar_resnet(20, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("cifar_resnet32")
def cifar_resnet32(**kwargs) -> ResNet:
    """CIFAR-10 ResNet-32 (sec. 4.2, n = 5; Table 6: 0.46M parameters)."""
    return _cifar_resnet(32, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("cifar_resnet44")
def cifar_resnet44(**kwargs) -> ResNet:
    """CIFAR-10 ResNet-44 (sec. 4.2, n = 7; Table 6: 0.66M parameters)."""
    return _cifar_resnet(44, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("cifar_resnet56")
def cifar_resnet56(**kwargs) -> ResNet:
    """CIFAR-10 ResNet-56 (sec. 4.2, n = 9; Table 6: 0.85M parameters)."""
    return _cifar_resnet(56, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("cifar_resnet110")
def cifar_resnet110(**kwargs) -> ResNet:
    """CIFAR-10 ResNet-110 (sec. 4.2, n = 18; Table 6: 1.7M parameters)."""
    return _cifar_resnet(110, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("cifar_plain20")
def cifar_plain20(**kwargs) -> ResNet:
    """CIFAR-10 plain-20: ResNet-20 without shortcuts (sec. 4.2, Fig. 6 left)."""
    return _cifar_resnet(20, residual=False, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("cifar_plain32")
def cifar_plain32(**kwargs) -> ResNet:
    """CIFAR-10 plain-32: ResNet-32 without shortcuts (sec. 4.2, Fig. 6 left)."""
    return _cifar_resnet(32, residual=False, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("cifar_plain44")
def cifar_plain44(**kwargs) -> ResNet:
    """CIFAR-10 plain-44: ResNet-44 without shortcuts (sec. 4.2, Fig. 6 left)."""
    return _cifar_resnet(44, residual=False, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("cifar_plain56")
def cifar_plain56(**kwargs) -> ResNet:
    """CIFAR-10 plain-56: ResNet-56 without shortcuts (sec. 4.2, Fig. 6 left)."""
    return _cifar_resnet(56, residual=False, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 3 › Thin public constructors
@register_model("cifar_plain110")
def cifar_plain110(**kwargs) -> ResNet:
    """CIFAR-10 plain-110: ResNet-110 without shortcuts (sec. 4.2; Fig. 6: error above 60%)."""
    return _cifar_resnet(110, residual=False, **kwargs)
