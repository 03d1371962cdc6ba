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
    "conv3x3", "conv1x1", "BasicBlock", "ShortcutA", "make_shortcut", "Bottleneck", "make_stage",
    "IMAGENET_CONFIGS", "CIFAR_DEPTHS", "ResNet", "PAPER_NUMBERS", "resnet18", "resnet34",
    "resnet50", "resnet101", "resnet152", "cifar_resnet20", "cifar_resnet32", "cifar_resnet44",
    "cifar_resnet56", "cifar_resnet110", "cifar_resnet1202", "cifar_plain20", "cifar_plain32",
    "cifar_plain44", "cifar_plain56", "cifar_plain110",
]


# Defined in notebooks/02_resnet.ipynb, section 2 › The basic block (Figure 2; Figure 5, left)
def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1 (keeps the size at stride 1), no bias: BN follows (sec. 3.4).
    ``groups`` > 1 only in ResNeXt's bottleneck (not this paper)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1,
                     groups=groups, bias=False)


# Defined in notebooks/02_resnet.ipynb, section 2 › The basic block (Figure 2; Figure 5, left)
def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


# Defined in notebooks/02_resnet.ipynb, section 2 › The basic block (Figure 2; Figure 5, left)
class BasicBlock(nn.Module):
    """The basic block: two 3x3 convs, each followed by BN, the shortcut added before the last
    ReLU (Fig. 2; Fig. 5 left). ResNet-18/34 and every CIFAR-10 net. torchvision's module names.

    Args:
        inplanes (int): input channels.
        planes (int): output channels of both convs (``expansion`` is 1).
        stride (int): stride of the first conv; 2 in the first block of conv3_x, conv4_x,
            conv5_x (default 1; Table 1 caption).
        downsample (nn.Module or None): the shortcut where the shape changes, from
            ``make_shortcut``: ``ShortcutA`` (option A) or 1x1 conv + BN (options B, C); None
            for the identity (default None; sec. 3.3).
        norm_layer (callable): the normalisation after each conv (default nn.BatchNorm2d;
            sec. 3.4).
        residual (bool): False leaves out the shortcut and the addition: the block of the plain
            nets (default True; sec. 4.1 and 4.2).
    """

    expansion: int = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, *,
                 norm_layer: Optional[Callable[..., nn.Module]] = None,
                 residual: bool = True) -> None:
        super().__init__()
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))                        # F(x): no ReLU before the addition
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)                  # option A, or W_s x (Eqn. 2)
            out = out + identity                               # F(x) + x (Eqn. 1)
        return self.relu(out)                                  # "the second nonlinearity after the addition"


# Defined in notebooks/02_resnet.ipynb, section 2 › Shortcuts
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


# Defined in notebooks/02_resnet.ipynb, section 2 › Shortcuts
def make_shortcut(kind: str, in_channels: int, out_channels: int, stride: int = 1,
                  norm_layer: Optional[Callable[..., nn.Module]] = None) -> Optional[nn.Module]:
    """The shortcut of one block: None for the identity, else a module for `block.downsample`.

    Args:
        kind (str): "A": zero-padding identity where the shape changes (sec. 3.3); "B": 1x1
            projection + BN where the shape changes (Eqn. 2, sec. 3.3); "C": projection + BN on
            every block (sec. 4.1).
        in_channels (int), out_channels (int): the block's input and output channels.
        stride (int): the block's stride; the shortcut subsamples with it (default 1; sec. 3.3).
        norm_layer (callable): the normalisation after the projection (default nn.BatchNorm2d;
            sec. 3.4; torchvision's downsample.1).
    """
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


# Defined in notebooks/02_resnet.ipynb, section 2 › The bottleneck block (Figure 5, right)
class Bottleneck(nn.Module):
    """The bottleneck block: 1x1 (reduce to the width), 3x3, 1x1 (restore to planes * 4), each
    followed by BN, the shortcut added before the last ReLU (Fig. 5 right). ResNet-50/101/152.
    torchvision's module names.

    Args:
        inplanes (int): input channels.
        planes (int): the bottleneck width d; the block outputs ``planes * expansion`` = 4d
            channels (Table 1: [1x1, 64; 3x3, 64; 1x1, 256] is planes = 64).
        stride (int): 2 in the first block of conv3_x, conv4_x, conv5_x (default 1; Table 1
            caption); which conv takes it is ``stride_in_1x1``.
        downsample (nn.Module or None): the shortcut where the shape changes, from
            ``make_shortcut`` (default None, the identity; sec. 3.3).
        groups (int): groups of the 3x3 conv, ResNeXt's cardinality (default 1: ResNet;
            ResNeXt, not this paper).
        base_width (int): width per group: the 1x1 and 3x3 convs have
            ``int(planes * base_width / 64) * groups`` channels (default 64: ResNet; ResNeXt's
            "32x4d" is groups 32, base_width 4).
        norm_layer (callable): the normalisation after each conv (default nn.BatchNorm2d;
            sec. 3.4).
        residual (bool): False leaves out the shortcut and the addition (default True).
        stride_in_1x1 (bool): True puts the stride in the first 1x1 conv, as the original
            models do (v1); False in the 3x3 conv, as torchvision does (v1.5) (default False;
            not in the paper: see the notebook's Easter-egg table).
    """

    expansion: int = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, *, groups: int = 1,
                 base_width: int = 64, norm_layer: Optional[Callable[..., nn.Module]] = None,
                 residual: bool = True, stride_in_1x1: bool = False) -> None:
        super().__init__()
        if downsample is not None and not residual:
            raise ValueError("A plain block (residual=False) has no shortcut, so no downsample.")
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(inplanes, width, stride=s1)       # v1: the stride is here
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, s3, groups)         # v1.5: the stride is here
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)   # restore: 4x the bottleneck width
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.stride_in_1x1 = stride_in_1x1
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))                        # F(x): no ReLU before the addition
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)                  # option A, or W_s x (Eqn. 2)
            out = out + identity                               # F(x) + x (Eqn. 1)
        return self.relu(out)                                  # "the second nonlinearity after the addition"


# Defined in notebooks/02_resnet.ipynb, section 2 › The whole net
def make_stage(block: type, inplanes: int, planes: int, blocks: int, stride: int = 1,
               shortcut: str = "B", residual: bool = True,
               norm_layer: Optional[Callable[..., nn.Module]] = None, **block_kwargs) -> nn.Sequential:
    """One stage (conv2_x ... conv5_x of Table 1): `blocks` blocks, all outputting
    ``planes * block.expansion`` channels; only the first may change the shape.

    Args:
        block (type): the block class (the interface is documented on ``ResNet``).
        inplanes (int): input channels of the first block.
        planes (int): each block's ``planes`` (Table 1: 64, 128, 256, 512; sec. 4.2: 16, 32, 64).
        blocks (int): blocks in the stage (Table 1; n on CIFAR-10, sec. 4.2).
        stride (int): the first block's stride (default 1; 2 from conv3_1 on, Table 1 caption).
        shortcut (str): option "A", "B" or "C" (default "B"; sec. 3.3 and 4.1).
        residual (bool): False builds the plain counterpart, no shortcuts at all (default True).
        norm_layer (callable): passed to each block and the projections when given (default
            None: the blocks' own default, nn.BatchNorm2d).
        **block_kwargs: more keywords for every block (``stride_in_1x1``, ``groups``, ...).
    """
    out_channels = planes * block.expansion
    if norm_layer is not None:
        block_kwargs["norm_layer"] = norm_layer
    if not residual:
        block_kwargs["residual"] = False
    layers = []
    for i in range(blocks):
        cin, s = (inplanes, stride) if i == 0 else (out_channels, 1)
        downsample = make_shortcut(shortcut, cin, out_channels, s, norm_layer) if residual else None
        layers.append(block(cin, planes, s, downsample, **block_kwargs))
    return nn.Sequential(*layers)


# Defined in notebooks/02_resnet.ipynb, section 2 › The whole net
#: Table 1: (block, blocks per stage conv2_x..conv5_x) for each ImageNet depth.
IMAGENET_CONFIGS: dict[int, tuple[type, list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}
# Defined in notebooks/02_resnet.ipynb, section 2 › The whole net
#: Section 4.2: depth 6n + 2 -> n basic blocks per stage (2n layers per feature-map size).
CIFAR_DEPTHS: dict[int, int] = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18, 1202: 200}


# Defined in notebooks/02_resnet.ipynb, section 2 › The whole net
class ResNet(nn.Module):
    """A ResNet built from a config. torchvision's arguments (the first seven) and module names
    (conv1, bn1, layer1..layerN, avgpool, fc), so that its weights load with strict=True.

    Args:
        block (type): the block class: BasicBlock, Bottleneck, a subclass, or your own (below).
        layers (list of int): blocks per stage (Table 1; CIFAR-10: [n, n, n], sec. 4.2).
        num_classes (int): outputs of the fc layer (default 1000: ImageNet, Table 1).
        zero_init_residual (bool): gamma = 0 in the last BN of every residual BasicBlock (bn2)
            and Bottleneck (bn3), subclasses included, so each block starts as the identity
            (default False; not in the paper: Goyal et al. 2017, arXiv:1706.02677, sec. 5.1).
        groups (int): the bottleneck's groups, given to the block when not 1 (default 1;
            ResNeXt, not this paper).
        width_per_group (int): the bottleneck's base_width, given when not 64 (default 64).
        norm_layer (callable): the normalisation after each conv (default nn.BatchNorm2d;
            sec. 3.4).
        widths (list of int): each stage's ``planes`` (default (64, 128, 256, 512): Table 1;
            the CIFAR nets use (16, 32, 64): sec. 4.2).
        stem (str): "imagenet": 7x7 conv, stride 2, and 3x3 max pool, stride 2 (Table 1);
            "cifar": one 3x3 conv, stride 1, no pool (sec. 4.2) (default "imagenet").
        shortcut (str): option "A", "B" or "C" (default "B", as torchvision; sec. 3.3, 4.1).
        residual (bool): False builds the plain net: no shortcuts at all (default True;
            sec. 4.1 and 4.2).
        in_channels (int): channels of the input images (default 3).
        block_kwargs (dict): more keywords for every block, e.g. {"stride_in_1x1": True} for
            the v1 bottleneck (default None).

    The block interface: ``block.expansion`` (int, class attribute): the block outputs
    ``planes * expansion`` channels; ``block(inplanes, planes, stride, downsample)``
    (positional): ``downsample`` is None (the identity) or the module from ``make_shortcut``
    to apply to the block's input before the addition. The block also receives
    ``norm_layer=...``, ``residual=False``, ``groups``/``base_width`` and ``block_kwargs`` as
    keywords, but only when they are given to ResNet.

    Input: float images (N, in_channels, H, W) with H and W at least ``min_input_size``, the
    total stride (32 with the ImageNet stem, 4 with the CIFAR stem; our choice), where the last
    stage's map is 1x1. A single image of that size cannot train (batch norm needs more than
    one value per channel): train on batches of two or more.
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
        self.in_channels = in_channels
        width = widths[0]
        if stem == "imagenet":                                  # Table 1, conv1 and the pool
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:                                                   # sec. 4.2: "the first layer is 3x3 convolutions"
            self.conv1 = conv3x3(in_channels, width)
            self.maxpool = nn.Identity()
        self.bn1 = (norm_layer or nn.BatchNorm2d)(width)
        self.relu = nn.ReLU(inplace=True)
        kwargs = dict(block_kwargs or {})
        if groups != 1 or width_per_group != 64:               # ResNeXt: bottleneck blocks only
            kwargs.update(groups=groups, base_width=width_per_group)
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
        self.min_input_size = (4 if stem == "imagenet" else 1) * 2 ** (len(layers) - 1)

        for m in self.modules():                                # He init (sec. 3.4), as torchvision
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:                                  # Goyal et al. 2017, not the paper
            for m in self.modules():
                if isinstance(m, Bottleneck) and m.residual:
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock) and m.residual:
                    nn.init.zeros_(m.bn2.weight)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, name) for name in self.stage_names]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, channels=self.in_channels, min_size=self.min_input_size,
                          training=self.training)     # also: one image ending on a 1x1 map
        x = self.avgpool(self.features(x))
        return self.fc(torch.flatten(x, 1))                     # logits: softmax is in the loss


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
#: He et al. 2015's own numbers, by model name: "macs", Table 1's "FLOPs" at 224x224, which are
#: multiply-adds (sec. 3.3), to one decimal place, and "counted_as", the keywords that build
#: the variant we read that count as describing (our reading: the paper does not say);
#: "top1_error", Table 3's ImageNet validation top-1 error (%, 10-crop; ResNet-34 with each
#: shortcut option in "top1_error_by_shortcut"); "params" and "error", Table 6's CIFAR-10
#: parameters (rounded as printed there) and test error (%; for ResNet-110 the best of 5 runs,
#: "error_mean_std" their mean and std).
PAPER_NUMBERS: dict[str, dict] = {
    "resnet18": {"macs": 1.8e9, "counted_as": {"shortcut": "A"}},
    "resnet34": {"macs": 3.6e9, "counted_as": {"shortcut": "A"},
                 "top1_error_by_shortcut": {"A": 25.03, "B": 24.52, "C": 24.19}},
    "resnet50": {"macs": 3.8e9, "counted_as": {"stride_in_1x1": True}, "top1_error": 22.85},
    "resnet101": {"macs": 7.6e9, "counted_as": {"stride_in_1x1": True}, "top1_error": 21.75},
    "resnet152": {"macs": 11.3e9, "counted_as": {"stride_in_1x1": True}, "top1_error": 21.43},
    "cifar_resnet20": {"params": 0.27e6, "error": 8.75},
    "cifar_resnet32": {"params": 0.46e6, "error": 7.51},
    "cifar_resnet44": {"params": 0.66e6, "error": 7.17},
    "cifar_resnet56": {"params": 0.85e6, "error": 6.97},
    "cifar_resnet110": {"params": 1.7e6, "error": 6.43, "error_mean_std": (6.61, 0.16)},
    "cifar_resnet1202": {"params": 19.4e6, "error": 7.93},
}


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
def _with_paper_numbers(constructor):
    """Append the model's PAPER_NUMBERS to its constructor's docstring."""
    p = PAPER_NUMBERS[constructor.__name__]
    facts = []
    if "macs" in p:
        how = ", ".join(f"{k}={v!r}" for k, v in p["counted_as"].items())
        facts.append(f"Table 1: {p['macs'] / 1e9:g} x 10^9 multiply-adds at 224x224 (counted "
                     f"as {how}: our reading)")
    if "top1_error" in p:
        facts.append(f"Table 3: {p['top1_error']:g}% top-1 error (ImageNet val, 10-crop)")
    if "top1_error_by_shortcut" in p:
        facts.append("Table 3: top-1 error (ImageNet val, 10-crop) " + ", ".join(
            f"{e:g}% with option {k}" for k, e in p["top1_error_by_shortcut"].items()))
    if "params" in p:
        spread = (" (best of 5 runs; mean {:g} +/- {:g})".format(*p["error_mean_std"])
                  if "error_mean_std" in p else "")
        facts.append(f"Table 6: {p['params'] / 1e6:g}M parameters, {p['error']:g}% CIFAR-10 "
                     f"test error{spread}")
    constructor.__doc__ += f"\n\n    He et al. 2015, {'; '.join(facts)}."
    return constructor


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
def _resnet(depth: int, *, stride_in_1x1: bool = False, **kwargs) -> ResNet:
    block, layers = IMAGENET_CONFIGS[depth]
    if block is Bottleneck:
        kwargs["block_kwargs"] = dict(kwargs.get("block_kwargs") or {}, stride_in_1x1=stride_in_1x1)
    elif stride_in_1x1:
        raise ValueError("stride_in_1x1 (v1 vs v1.5) only concerns bottleneck nets: ResNet-50/101/152.")
    return ResNet(block, layers, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
def _cifar_resnet(depth: int, residual: bool = True, **kwargs) -> ResNet:
    kwargs.setdefault("num_classes", 10)
    kwargs.setdefault("shortcut", "A")                # sec. 4.2: "identity shortcuts in all cases"
    return ResNet(BasicBlock, [CIFAR_DEPTHS[depth]] * 3, widths=(16, 32, 64), stem="cifar",
                  residual=residual, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("resnet18", head="fc", weights="ResNet18_Weights.IMAGENET1K_V1")
@_with_paper_numbers
def resnet18(**kwargs) -> ResNet:
    """ResNet-18 (Table 1)."""
    return _resnet(18, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("resnet34", head="fc", weights="ResNet34_Weights.IMAGENET1K_V1")
@_with_paper_numbers
def resnet34(**kwargs) -> ResNet:
    """ResNet-34 (Table 1)."""
    return _resnet(34, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("resnet50", head="fc", weights="ResNet50_Weights.IMAGENET1K_V2")
@_with_paper_numbers
def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (Table 1); v1.5 unless stride_in_1x1=True."""
    return _resnet(50, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("resnet101", head="fc", weights="ResNet101_Weights.IMAGENET1K_V2")
@_with_paper_numbers
def resnet101(**kwargs) -> ResNet:
    """ResNet-101 (Table 1); v1.5 unless stride_in_1x1=True."""
    return _resnet(101, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("resnet152", head="fc", weights="ResNet152_Weights.IMAGENET1K_V2")
@_with_paper_numbers
def resnet152(**kwargs) -> ResNet:
    """ResNet-152 (Table 1); v1.5 unless stride_in_1x1=True."""
    return _resnet(152, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_resnet20", head="fc")
@_with_paper_numbers
def cifar_resnet20(**kwargs) -> ResNet:
    """CIFAR-10 ResNet-20 (sec. 4.2, n = 3)."""
    return _cifar_resnet(20, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_resnet32", head="fc")
@_with_paper_numbers
def cifar_resnet32(**kwargs) -> ResNet:
    """CIFAR-10 ResNet-32 (sec. 4.2, n = 5)."""
    return _cifar_resnet(32, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_resnet44", head="fc")
@_with_paper_numbers
def cifar_resnet44(**kwargs) -> ResNet:
    """CIFAR-10 ResNet-44 (sec. 4.2, n = 7)."""
    return _cifar_resnet(44, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_resnet56", head="fc")
@_with_paper_numbers
def cifar_resnet56(**kwargs) -> ResNet:
    """CIFAR-10 ResNet-56 (sec. 4.2, n = 9)."""
    return _cifar_resnet(56, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_resnet110", head="fc")
@_with_paper_numbers
def cifar_resnet110(**kwargs) -> ResNet:
    """CIFAR-10 ResNet-110 (sec. 4.2, n = 18)."""
    return _cifar_resnet(110, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_resnet1202", head="fc")
@_with_paper_numbers
def cifar_resnet1202(**kwargs) -> ResNet:
    """CIFAR-10 ResNet-1202 (sec. 4.2, n = 200; "Exploring over 1000 layers")."""
    return _cifar_resnet(1202, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_plain20", head="fc")
def cifar_plain20(**kwargs) -> ResNet:
    """CIFAR-10 plain-20: ResNet-20 without shortcuts (sec. 4.2, Fig. 6 left)."""
    return _cifar_resnet(20, residual=False, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_plain32", head="fc")
def cifar_plain32(**kwargs) -> ResNet:
    """CIFAR-10 plain-32: ResNet-32 without shortcuts (sec. 4.2, Fig. 6 left)."""
    return _cifar_resnet(32, residual=False, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_plain44", head="fc")
def cifar_plain44(**kwargs) -> ResNet:
    """CIFAR-10 plain-44: ResNet-44 without shortcuts (sec. 4.2, Fig. 6 left)."""
    return _cifar_resnet(44, residual=False, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_plain56", head="fc")
def cifar_plain56(**kwargs) -> ResNet:
    """CIFAR-10 plain-56: ResNet-56 without shortcuts (sec. 4.2, Fig. 6 left)."""
    return _cifar_resnet(56, residual=False, **kwargs)


# Defined in notebooks/02_resnet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_plain110", head="fc")
def cifar_plain110(**kwargs) -> ResNet:
    """CIFAR-10 plain-110: ResNet-110 without shortcuts (sec. 4.2; Fig. 6: error above 60%)."""
    return _cifar_resnet(110, residual=False, **kwargs)
