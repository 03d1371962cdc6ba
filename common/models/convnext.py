# Generated from notebooks/08_convnext.ipynb by `python -m common.save`: do not edit here.
# Edit the notebook's `#@save convnext` cells instead, then run `python -m common.save`.

"""08 · ConvNeXt: A ConvNet for the 2020s

Zhuang Liu, Hanzi Mao, Chao-Yuan Wu, Christoph Feichtenhofer, Trevor Darrell, Saining Xie. A
ConvNet for the 2020s. CVPR 2022. arXiv:2201.03545 (https://arxiv.org/abs/2201.03545)

The `#@save convnext` cells of notebooks/08_convnext.ipynb, in order; the comment above each item
names the section of the notebook that explains it.
"""
from functools import partial
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from common.models.efficientnet import StochasticDepth
from common.models.registry import check_image_batch, register_model
from common.models.resnet import Bottleneck, ResNet, resnet50

__all__ = [
    "RoadmapBlock", "RoadmapNet", "ROADMAP", "roadmap_config", "convnext_roadmap", "Permute",
    "CNBlock", "LayerNorm2d", "CONVNEXT_CONFIGS", "ConvNeXt", "cifar_convnext", "PAPER_NUMBERS",
    "convnext_tiny", "convnext_small", "convnext_base", "convnext_large", "FIGURE_2_GFLOPS",
    "TABLE_10_KERNEL_SIZES", "TABLE_10_SWIN_T", "ROADMAP_200", "TABLE_11_KERNEL_SIZES",
    "TABLE_11_SWIN_B",
]


# Defined in notebooks/08_convnext.ipynb, section 2 › The roadmap
class RoadmapBlock(nn.Module):
    """One residual block of the roadmap's intermediate steps (Figure 3): three convolutions, a
    norm after each (or only after the first), an activation after the first two and after the
    addition (or only after the second), and a projection shortcut where the shape changes.

    Args:
        inplanes (int), planes (int): input and output channels.
        stride (int): 2 in the first block of stages 2-4 (ResNet's downsampling blocks).
        layout (str): "bottleneck" (1x1 to planes/4, 3x3-style kxk, 1x1 to planes: ResNet;
            sec. 2.3), "inverted" (1x1 to 4 x planes, depthwise kxk, 1x1 to planes: Figure 3b),
            "depthwise_first" (depthwise kxk on the input, 1x1 to 4 x planes, 1x1 to planes:
            Figure 3c).
        kernel_size (int): the spatial kernel (3 until sec. 2.5).
        depthwise (bool): groups = channels in the spatial conv (sec. 2.3; always in the
            inverted layouts).
        activation (callable): nn.ReLU or nn.GELU (sec. 2.6).
        one_activation (bool): only the activation between the two 1x1 convs (sec. 2.6;
            "depthwise_first" only).
        one_norm (bool): only the norm after the depthwise conv (sec. 2.6; "depthwise_first").
        norm (callable): nn.BatchNorm2d or LayerNorm2d (sec. 2.6).
    """

    def __init__(self, inplanes: int, planes: int, stride: int, *, layout: str, kernel_size: int,
                 depthwise: bool, activation: Callable[[], nn.Module], one_activation: bool,
                 one_norm: bool, norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        if (one_activation or one_norm) and layout != "depthwise_first":
            raise ValueError("one_activation and one_norm follow the depthwise conv moved up "
                             "(layout='depthwise_first'), as in section 2.6.")
        k, pad = kernel_size, kernel_size // 2
        if layout == "bottleneck":                             # ResNet's, 3x3 grouped or dense
            w = planes // 4
            convs = [nn.Conv2d(inplanes, w, 1, bias=False),
                     nn.Conv2d(w, w, k, stride, pad, groups=w if depthwise else 1, bias=False),
                     nn.Conv2d(w, planes, 1, bias=False)]
        elif layout == "inverted":                             # Figure 3 (b): 4x wider inside
            h = 4 * planes
            convs = [nn.Conv2d(inplanes, h, 1, bias=False),
                     nn.Conv2d(h, h, k, stride, pad, groups=h, bias=False),
                     nn.Conv2d(h, planes, 1, bias=False)]
        elif layout == "depthwise_first":                      # Figure 3 (c): depthwise moved up
            h = 4 * planes
            convs = [nn.Conv2d(inplanes, inplanes, k, stride, pad, groups=inplanes, bias=False),
                     nn.Conv2d(inplanes, h, 1, bias=False),
                     nn.Conv2d(h, planes, 1, bias=False)]
        else:
            raise ValueError(f"Unknown layout {layout!r}: 'bottleneck', 'inverted' or 'depthwise_first'.")
        self.conv1, self.conv2, self.conv3 = convs
        self.norm1 = norm(convs[0].out_channels)
        self.norm2 = nn.Identity() if one_norm else norm(convs[1].out_channels)
        self.norm3 = nn.Identity() if one_norm else norm(planes)
        self.act1 = nn.Identity() if one_activation else activation()
        self.act2 = activation()                               # between the two 1x1 (sec. 2.6)
        self.act3 = nn.Identity() if one_activation else activation()     # after the addition
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), norm(planes))
                           if stride != 1 or inplanes != planes else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.act2(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.act3(out + identity)


# Defined in notebooks/08_convnext.ipynb, section 2 › The roadmap
class RoadmapNet(nn.Module):
    """Steps 2-11 of the roadmap (sec. 2.2-2.6): a patchify stem (4x4 conv, stride 4, then a
    norm and an activation), four stages of ``RoadmapBlock`` with ResNet's downsampling (stride
    2 in the first block of stages 2-4 and a 1x1 projection shortcut with a norm), average
    pooling and a linear classifier. Module names: ``stem``, ``layer1``..``layer4``, ``fc``.

    Args:
        width (int): channels of stage 1's output in the inverted layouts, ResNet's bottleneck
            width in the "bottleneck" layout (64, then 96 from sec. 2.3); stages double it.
        depths (list of int): blocks per stage (default (3, 3, 9, 3); sec. 2.2).
        layout, kernel_size, depthwise, activation, one_activation, one_norm, norm: as
            ``RoadmapBlock`` (``norm`` also in the stem and the shortcuts).
        num_classes (int): outputs (default 1000).

    Our readings where section 2 is silent, and what tests them (the notebook counts each):

    - the inverted layouts' hidden width is 4x the block's OUTPUT channels (sec. 2.4's "four
      times wider than the input dimension" is a Transformer MLP's, whose input and output
      widths are equal): 4x the input misses Table 10's step 5;
    - the downsampling block's depthwise conv takes the stride: a stride on the first 1x1
      instead misses Table 10's kernel-size rows;
    - the stem keeps ResNet's norm and activation, and the shortcut projections keep their norm
      when the blocks lose two of theirs: no multiply-add count can test these (norms and
      activations add none). Sec. 2.6 suggests the intermediate steps had no norm after the
      stem: its last step adds LNs "wherever spatial resolution is changed", "one after the
      stem" among them.

    With these readings every step's multiply-adds round to the GFLOPs Table 10 and Table 11
    print (0.01 G), except at the bottom of Table 10, whose column the notebook reads as shifted
    up by one row.
    """

    def __init__(self, width: int = 64, depths: Sequence[int] = (3, 3, 9, 3), *,
                 layout: str = "bottleneck", kernel_size: int = 3, depthwise: bool = False,
                 activation: Callable[[], nn.Module] = nn.ReLU, one_activation: bool = False,
                 one_norm: bool = False, norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 4, stride=4, bias=False), norm(width),
                                  activation())
        expansion = 4 if layout == "bottleneck" else 1
        inplanes = width
        for i, depth in enumerate(depths):
            planes = width * 2 ** i * expansion
            blocks = []
            for j in range(depth):
                blocks.append(RoadmapBlock(inplanes, planes, 2 if (j == 0 and i > 0) else 1,
                                           layout=layout, kernel_size=kernel_size, depthwise=depthwise,
                                           activation=activation, one_activation=one_activation,
                                           one_norm=one_norm, norm=norm))
                inplanes = planes
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.stage_names = [f"layer{i + 1}" for i in range(len(depths))]
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        self.min_input_size = 4 * 2 ** (len(depths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, min_size=self.min_input_size, training=self.training)
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


# Defined in notebooks/08_convnext.ipynb, section 2 › The roadmap
#: Figure 2 / Table 10, one change per step: (step name, the change as keywords, Table 10's
#: GFLOPs and top-1 (%, mean of 3 seeds), the course notebook where the idea comes from).
#: Steps 0-1 build notebook 02's ResNet, 2-11 RoadmapNet with every change so far, 12 ConvNeXt-T.
ROADMAP: list[tuple[str, dict, float, float, str]] = [
    # step name,                   change,                                  GFLOPs, top-1, idea from
    ("ResNet-50, modern recipe",   {},                                        4.09, 78.82,
     "02 ResNet (the network); the recipe: 06 EfficientNet's has stochastic depth, warm-up, label smoothing"),
    ("stage ratio (3, 3, 9, 3)",   {"depths": (3, 3, 9, 3)},                  4.53, 79.36,
     "02 ResNet: stage depths as a table (Table 1's 3-4-6-3)"),
    ("patchify stem",              {"stem": "patchify"},                      4.42, 79.51,
     "new here: ViT's patch embedding, a 4x4 stride-4 conv"),
    ("depthwise conv",             {"depthwise": True},                       2.35, 78.28,
     "05 MobileNetV2: depthwise convolutions (ResNeXt's grouping at its extreme)"),
    ("width 64 -> 96",             {"width": 96},                             5.27, 80.50,
     "05/06: the width multiplier (ResNeXt's 'use more groups, expand width')"),
    ("inverted bottleneck",        {"layout": "inverted"},                    4.64, 80.64,
     "05 MobileNetV2: the inverted residual (expansion 4 of the block's output; MobileNetV2: 6 of its input)"),
    ("move up depthwise conv",     {"layout": "depthwise_first"},             4.07, 79.92,
     "new here: a Transformer's attention before its MLP"),
    ("kernel size 3 -> 7",         {"kernel_size": 7},                        4.15, 80.57,
     "06 EfficientNet: 5x5 depthwise kernels (01 VGG argued for stacked 3x3s)"),
    ("ReLU -> GELU",               {"activation": "gelu"},                    4.15, 80.62,
     "new here (GELU, Hendrycks & Gimpel 2016); 06's SiLU is a close cousin"),
    ("fewer activations",          {"one_activation": True},                  4.15, 81.27,
     "05 MobileNetV2: the linear bottleneck, no activation after the projection"),
    ("fewer norms",                {"one_norm": True},                        4.15, 81.41,
     "new here: a Transformer block's few norms"),
    ("BN -> LN",                   {"norm": "layer"},                         4.46, 81.47,
     "new here: a Transformer's LayerNorm (02-06 all use batch norm)"),
    ("separate downsampling (ConvNeXt-T)", {"downsampling": "separate"},      4.49, 81.97,
     "03 DenseNet: transition layers (norm, then conv) between blocks"),
]


# Defined in notebooks/08_convnext.ipynb, section 2 › The roadmap
def roadmap_config(step: int) -> dict:
    """The keywords of every change up to ``step`` (0 = ResNet-50, 12 = ConvNeXt-T), merged."""
    if not 0 <= step < len(ROADMAP):
        raise ValueError(f"step must be 0 ... {len(ROADMAP) - 1} (Figure 2's steps), got {step}.")
    cfg: dict = {}
    for _, change, *_ in ROADMAP[:step + 1]:
        cfg.update(change)
    return cfg


# Defined in notebooks/08_convnext.ipynb, section 2 › The roadmap
@register_model("convnext_roadmap")
def convnext_roadmap(step: int = len(ROADMAP) - 1, num_classes: int = 1000) -> nn.Module:
    """The network after ``step`` changes of Figure 2 (ROADMAP): 0 is notebook 02's resnet50,
    1 its ResNet with (3, 3, 9, 3) blocks, 2-11 RoadmapNet, 12 convnext_tiny (without stochastic
    depth: our choice for counting; the paper trained each step with it)."""
    cfg = roadmap_config(step)
    if step == 0:
        return resnet50(num_classes=num_classes)
    if "stem" not in cfg:                                      # steps 0-1: ResNet itself
        return ResNet(Bottleneck, cfg["depths"], num_classes=num_classes)
    if "downsampling" in cfg:                                  # the last step: ConvNeXt-T
        return convnext_tiny(num_classes=num_classes, stochastic_depth_prob=0.0)
    kwargs = {k: v for k, v in cfg.items() if k not in ("stem",)}
    kwargs["activation"] = nn.GELU if kwargs.pop("activation", "relu") == "gelu" else nn.ReLU
    kwargs["norm"] = (partial(LayerNorm2d, eps=1e-6) if kwargs.pop("norm", "batch") == "layer"
                      else nn.BatchNorm2d)
    if "layout" not in kwargs:
        kwargs["layout"] = "bottleneck"
    else:
        kwargs.pop("depthwise", None)                          # the inverted layouts are depthwise
    return RoadmapNet(num_classes=num_classes, **kwargs)


# Defined in notebooks/08_convnext.ipynb, section 2 › The ConvNeXt block (Figure 4, right)
class Permute(nn.Module):
    """``x.permute(*dims)`` as a module, to sit inside an ``nn.Sequential``."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


# Defined in notebooks/08_convnext.ipynb, section 2 › The ConvNeXt block (Figure 4, right)
class CNBlock(nn.Module):
    """The ConvNeXt block (Figure 4; sec. 2.3-2.6): 7x7 depthwise conv, LayerNorm, 1x1 to
    ``expansion`` x dim channels, GELU, 1x1 back to dim; times layer scale; stochastic depth;
    plus the input. torchvision's module names (``block``, ``layer_scale``).

    Args:
        dim (int): channels in and out.
        layer_scale (float): the initial value of every entry of the per-channel scale gamma
            (default 1e-6; sec. 3.1, Table 5; official ``layer_scale_init_value``).
        stochastic_depth_prob (float): probability of dropping the branch, train mode only
            (default 0; the model sets it per block, growing linearly: ``ConvNeXt``).
        kernel_size (int): the depthwise kernel (default 7; sec. 2.5 tries 3, 5, 7, 9, 11).
        expansion (int): hidden width of the inverted bottleneck, times dim (default 4; sec. 2.4).
        activation (callable): the one activation (default nn.GELU; sec. 2.6).
    """

    def __init__(self, dim: int, layer_scale: float = 1e-6, stochastic_depth_prob: float = 0.0, *,
                 kernel_size: int = 7, expansion: int = 4,
                 activation: Callable[[], nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim),  # depthwise, first (sec. 2.5)
            Permute([0, 2, 3, 1]),                  # (N, C, H, W) -> (N, H, W, C): LN and Linear act on C
            nn.LayerNorm(dim, eps=1e-6),            # the block's one norm, before the 1x1 layers (sec. 2.6)
            nn.Linear(dim, expansion * dim),        # 1x1 conv: the inverted bottleneck, 4x wider (sec. 2.4)
            activation(),                           # the one activation, GELU (sec. 2.6)
            nn.Linear(expansion * dim, dim),        # 1x1 conv back to dim, no norm, no activation
            Permute([0, 3, 1, 2]),                  # back to (N, C, H, W)
        )
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), layer_scale))   # 1e-6 (sec. 3.1)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.layer_scale * self.block(x)      # gamma * branch(x), per channel
        out = self.stochastic_depth(out)            # train mode only: drop the branch per sample
        return out + identity


# Defined in notebooks/08_convnext.ipynb, section 2 › The downsampling layer, and LayerNorm on a channels-first map (sec. 2.6)
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each pixel of an (N, C, H, W) map ("channels_first" in the
    official code; torchvision's ``LayerNorm2d``): ``nn.LayerNorm(C)`` normalises the LAST
    dimension, so the map is permuted to (N, H, W, C) and back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)                              # (N, C, H, W) -> (N, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)                           # back to (N, C, H, W)


# Defined in notebooks/08_convnext.ipynb, section 2 › The model, from section 3's configurations
#: Section 3: channels C and blocks B of each stage, per variant; Table 5's stochastic depth
#: (ImageNet-1K training of T/S/B/L; XL was pre-trained on ImageNet-22K only, with 0.2: counted
#: in section 3, not registered: torchvision has no XL to check it against).
CONVNEXT_CONFIGS: dict[str, dict] = {
    #        C: stage 1-4 channels,         B: stage 1-4 blocks,  Table 5 stochastic depth
    "tiny":   dict(dims=(96, 192, 384, 768),    depths=(3, 3, 9, 3),  stochastic_depth_prob=0.1),
    "small":  dict(dims=(96, 192, 384, 768),    depths=(3, 3, 27, 3), stochastic_depth_prob=0.4),
    "base":   dict(dims=(128, 256, 512, 1024),  depths=(3, 3, 27, 3), stochastic_depth_prob=0.5),
    "large":  dict(dims=(192, 384, 768, 1536),  depths=(3, 3, 27, 3), stochastic_depth_prob=0.5),
    "xlarge": dict(dims=(256, 512, 1024, 2048), depths=(3, 3, 27, 3), stochastic_depth_prob=0.2),
}


# Defined in notebooks/08_convnext.ipynb, section 2 › The model, from section 3's configurations
class ConvNeXt(nn.Module):
    """ConvNeXt (sec. 2 and 3) built from one configuration. torchvision's module names
    (``features``, ``avgpool``, ``classifier``), so that its weights load with strict=True.

    Args:
        dims (list of int): channels of the four stages (sec. 3: C).
        depths (list of int): blocks of the four stages (sec. 3: B).
        num_classes (int): outputs of the head (default 1000).
        stochastic_depth_prob (float): drop probability of the LAST block; block i of n gets
            ``p * i / (n - 1)`` (default 0; Table 5: 0.1/0.4/0.5/0.5 for T/S/B/L, set by the
            constructors).
        layer_scale (float): initial layer-scale value (default 1e-6; sec. 3.1).
        kernel_size (int): the blocks' depthwise kernel (default 7; sec. 2.5).
        stem_patch (int): kernel and stride of the patchify stem (default 4; sec. 2.2; the CIFAR
            adaptation uses 2, our choice).
        in_channels (int): channels of the input images (default 3).
        block (callable): ``block(dim, layer_scale, p, kernel_size=...)`` (default CNBlock).

    Input: float images (N, in_channels, H, W) of at least ``stem_patch * 8`` pixels a side
    (the total stride: the last stage's map is then 1x1).
    """

    def __init__(self, dims: Sequence[int], depths: Sequence[int], num_classes: int = 1000,
                 stochastic_depth_prob: float = 0.0, layer_scale: float = 1e-6, *,
                 kernel_size: int = 7, stem_patch: int = 4, in_channels: int = 3,
                 block: Callable[..., nn.Module] = CNBlock) -> None:
        super().__init__()
        if len(dims) != len(depths):
            raise ValueError(f"One width per stage: got {len(dims)} dims for {len(depths)} depths.")
        norm = partial(LayerNorm2d, eps=1e-6)
        layers: list[nn.Module] = [nn.Sequential(            # patchify stem + LN (sec. 2.2, 2.6)
            nn.Conv2d(in_channels, dims[0], kernel_size=stem_patch, stride=stem_patch), norm(dims[0]))]
        total, index = sum(depths), 0
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            stage = []
            for _ in range(depth):
                p = stochastic_depth_prob * index / max(total - 1, 1)   # 0 ... p, linearly
                stage.append(block(dim, layer_scale, p, kernel_size=kernel_size))
                index += 1
            layers.append(nn.Sequential(*stage))
            if i + 1 < len(dims):                            # separate downsampling (sec. 2.6):
                layers.append(nn.Sequential(norm(dim),       # LN BEFORE the 2x2 conv
                                            nn.Conv2d(dim, dims[i + 1], kernel_size=2, stride=2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(norm(dims[-1]), nn.Flatten(1),   # head: LN, then Linear
                                        nn.Linear(dims[-1], num_classes))
        self.in_channels = in_channels
        self.min_input_size = stem_patch * 2 ** (len(dims) - 1)
        for m in self.modules():                             # official _init_weights: std 0.02
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, channels=self.in_channels, min_size=self.min_input_size)
        x = self.avgpool(self.features(x))
        return self.classifier(x)                            # logits: softmax is in the loss


# Defined in notebooks/08_convnext.ipynb, section 2 › The CIFAR-10 adaptation (our choices)
@register_model("cifar_convnext", head="classifier.2")
def cifar_convnext(num_classes: int = 10, dims: tuple = (32, 64, 128, 256),
                   depths: tuple = (3, 3, 9, 3), stochastic_depth_prob: float = 0.1,
                   stem_patch: int = 2, **kwargs) -> ConvNeXt:
    """ConvNeXt for 32x32 images (our adaptation, not in the paper): ConvNeXt-T's depths
    (3, 3, 9, 3), a third of its widths (32, 64, 128, 256), a 2x2 stride-2 patchify stem (maps of
    16, 8, 4 and 2 pixels), stochastic depth 0.1 and layer scale 1e-6 as ConvNeXt-T."""
    return ConvNeXt(num_classes=num_classes, dims=dims, depths=depths,
                    stochastic_depth_prob=stochastic_depth_prob, stem_patch=stem_patch, **kwargs)


# Defined in notebooks/08_convnext.ipynb, section 2 › Plumbing (skip on a first read)
#: The paper's numbers: Table 1 (ImageNet-1K trained, 224x224): parameters (millions, rounded),
#: FLOPs (GFLOPs: multiply-adds, as Table 10's ResNet-50 row shows) and top-1 (%); XL from Table 1's
#: ImageNet-22K part. torchvision's exact parameter counts (its weights' meta) under "torchvision".
PAPER_NUMBERS: dict[str, dict] = {
    "tiny":   dict(params=29e6, flops=4.5e9, top1=82.1, torchvision_params=28_589_128),
    "small":  dict(params=50e6, flops=8.7e9, top1=83.1, torchvision_params=50_223_688),
    "base":   dict(params=89e6, flops=15.4e9, top1=83.8, torchvision_params=88_591_464),
    "large":  dict(params=198e6, flops=34.4e9, top1=84.3, torchvision_params=197_767_336),
    "xlarge": dict(params=350e6, flops=60.9e9, top1=None, torchvision_params=None),
}


# Defined in notebooks/08_convnext.ipynb, section 2 › Plumbing (skip on a first read)
def _convnext(variant: str, stochastic_depth_prob: float | None = None, **kwargs) -> ConvNeXt:
    """ConvNeXt with section 3's configuration ``variant``. stochastic_depth_prob (float): the
    last block's drop rate (default: Table 5's for the variant; torchvision takes it too)."""
    cfg = CONVNEXT_CONFIGS[variant]
    if stochastic_depth_prob is None:
        stochastic_depth_prob = cfg["stochastic_depth_prob"]
    return ConvNeXt(dims=cfg["dims"], depths=cfg["depths"],
                    stochastic_depth_prob=stochastic_depth_prob, **kwargs)


# Defined in notebooks/08_convnext.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("convnext_tiny", head="classifier.2",
                weights="ConvNeXt_Tiny_Weights.IMAGENET1K_V1")
def convnext_tiny(**kwargs) -> ConvNeXt:
    """ConvNeXt-T (sec. 3): C = (96, 192, 384, 768), B = (3, 3, 9, 3); stochastic depth 0.1
    (Table 5). Table 1: 29M parameters, 4.5 GFLOPs, 82.1% top-1."""
    return _convnext("tiny", **kwargs)


# Defined in notebooks/08_convnext.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("convnext_small", head="classifier.2",
                weights="ConvNeXt_Small_Weights.IMAGENET1K_V1")
def convnext_small(**kwargs) -> ConvNeXt:
    """ConvNeXt-S (sec. 3): C = (96, 192, 384, 768), B = (3, 3, 27, 3); stochastic depth 0.4
    (Table 5). Table 1: 50M parameters, 8.7 GFLOPs, 83.1% top-1."""
    return _convnext("small", **kwargs)


# Defined in notebooks/08_convnext.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("convnext_base", head="classifier.2",
                weights="ConvNeXt_Base_Weights.IMAGENET1K_V1")
def convnext_base(**kwargs) -> ConvNeXt:
    """ConvNeXt-B (sec. 3): C = (128, 256, 512, 1024), B = (3, 3, 27, 3); stochastic depth 0.5
    (Table 5). Table 1: 89M parameters, 15.4 GFLOPs, 83.8% top-1."""
    return _convnext("base", **kwargs)


# Defined in notebooks/08_convnext.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("convnext_large", head="classifier.2",
                weights="ConvNeXt_Large_Weights.IMAGENET1K_V1")
def convnext_large(**kwargs) -> ConvNeXt:
    """ConvNeXt-L (sec. 3): C = (192, 384, 768, 1536), B = (3, 3, 27, 3); stochastic depth 0.5
    (Table 5). Table 1: 198M parameters, 34.4 GFLOPs, 84.3% top-1."""
    return _convnext("large", **kwargs)


# Defined in notebooks/08_convnext.ipynb, section Going deeper · Table 10's BN → LN row, read as a slip of one row
#: Figure 2's GFLOPs label of each ROADMAP step (the ResNet-50 regime's bars; one decimal).
FIGURE_2_GFLOPS: tuple[float, ...] = (4.1, 4.5, 4.4, 2.4, 5.3, 4.6, 4.1, 4.2, 4.2, 4.2, 4.2, 4.2, 4.5)
# Defined in notebooks/08_convnext.ipynb, section Going deeper · Table 10's BN → LN row, read as a slip of one row
#: Table 10's rows that are not steps of ROADMAP, as (GFLOPs, top-1 %): the depthwise kernel sizes
#: tried after "move up depthwise conv" (sec. 2.5; 7 is step 7) and the Swin-T reference row.
TABLE_10_KERNEL_SIZES: dict[int, tuple[float, float]] = {
    5: (4.10, 80.35), 7: (4.15, 80.57), 9: (4.21, 80.57), 11: (4.29, 80.47)}
# Defined in notebooks/08_convnext.ipynb, section Going deeper · Table 10's BN → LN row, read as a slip of one row
TABLE_10_SWIN_T: tuple[float, float] = (4.50, 81.30)

# Defined in notebooks/08_convnext.ipynb, section Going deeper · Table 10's BN → LN row, read as a slip of one row
#: Table 11 (appendix C): the roadmap in the ResNet-200 / Swin-B regime, one change per step, as
#: (step name, the change as ROADMAP's keywords, GFLOPs, top-1 %). Appendix C: the blocks go from
#: ResNet-200's (3, 24, 36, 3) to (3, 3, 27, 3), appendix C's "Swin-B's", "at the step of changing
#: stage ratio" (Swin-B's own depths are (2, 2, 18, 2), ratio 1:1:9:1; (3, 3, 27, 3) is ConvNeXt-B's),
#: with the width from 64 to 84 at the same time "to keep the FLOPs at a similar level", and to 128
#: after the depthwise step; the last step is ConvNeXt-B. Step 0 is Table 11's "ResNet-200
#: (enhanced recipe)" row (its "ResNet-200" row, 78.20, is the same network).
ROADMAP_200: list[tuple[str, dict, float, float]] = [
    # step name,                              change,                                 GFLOPs, top-1
    ("ResNet-200, modern recipe",             {"depths": (3, 24, 36, 3), "width": 64},  15.01, 81.14),
    ("stage ratio (3, 3, 27, 3), width 84",   {"depths": (3, 3, 27, 3), "width": 84},   14.52, 81.33),
    ("patchify stem",                         {"stem": "patchify"},                     14.38, 81.59),
    ("depthwise conv",                        {"depthwise": True},                       7.23, 80.54),
    ("width 84 -> 128",                       {"width": 128},                           16.76, 81.85),
    ("inverted bottleneck",                   {"layout": "inverted"},                   15.68, 82.64),
    ("move up depthwise conv",                {"layout": "depthwise_first"},            14.63, 82.04),
    ("kernel size 3 -> 7",                    {"kernel_size": 7},                       14.81, 82.30),
    ("ReLU -> GELU",                          {"activation": "gelu"},                   14.81, 82.19),
    ("fewer activations",                     {"one_activation": True},                 14.81, 82.71),
    ("fewer norms",                           {"one_norm": True},                       14.81, 83.17),
    ("BN -> LN",                              {"norm": "layer"},                        14.81, 83.35),
    ("separate downsampling (ConvNeXt-B)",    {"downsampling": "separate"},             15.35, 83.60),
]
# Defined in notebooks/08_convnext.ipynb, section Going deeper · Table 10's BN → LN row, read as a slip of one row
TABLE_11_KERNEL_SIZES: dict[int, tuple[float, float]] = {
    5: (14.70, 82.32), 7: (14.81, 82.30), 9: (14.95, 82.27), 11: (15.13, 82.18)}
# Defined in notebooks/08_convnext.ipynb, section Going deeper · Table 10's BN → LN row, read as a slip of one row
TABLE_11_SWIN_B: tuple[float, float] = (15.43, 83.50)
