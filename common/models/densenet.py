# Generated from notebooks/03_densenet.ipynb by `python -m common.save`: do not edit here.
# Edit the notebook's `#@save densenet` cells instead, then run `python -m common.save`.

"""03 · DenseNet: Densely Connected Convolutional Networks

Gao Huang, Zhuang Liu, Laurens van der Maaten, Kilian Q. Weinberger. Densely Connected
Convolutional Networks. CVPR 2017. arXiv:1608.06993 (https://arxiv.org/abs/1608.06993)

The `#@save densenet` cells of notebooks/03_densenet.ipynb, in order; the comment above each item
names the section of the notebook that explains it.
"""
import contextlib
import re
from collections import OrderedDict
from typing import NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from common.models.registry import check_image_batch, register_model

__all__ = [
    "DenseLayer", "Transition", "DenseBlock", "TABLE1", "DenseNet", "cifar_densenet",
    "bytes_saved_for_backward", "Table2Row", "TABLE2", "TABLE3", "TEXT_PARAMS",
    "TECH_REPORT_PARAMS", "densenet121", "densenet161", "densenet169", "densenet201",
    "densenet264", "cifar_densenet40_k12", "cifar_densenet100_k12", "cifar_densenet100_k24",
    "cifar_densenet_bc100_k12", "cifar_densenet_bc250_k24", "cifar_densenet_bc190_k40",
    "OLD_CHECKPOINT_KEY", "renamed_checkpoint_key",
]


# Defined in notebooks/03_densenet.ipynb, section 2 › The dense layer
class DenseLayer(nn.Module):
    """H_l of Eqn. (2): the concatenation of all earlier maps in, `growth_rate` new maps out.

    bottleneck=True (DenseNet-B): BN-ReLU-Conv(1x1, bn_size * k)-BN-ReLU-Conv(3x3, k);
    bottleneck=False: BN-ReLU-Conv(3x3, k). drop_rate: dropout after each conv (sec. 4.2).
    memory_efficient: recompute the concatenation, norm1, relu1 and conv1 in the backward pass
    (torch.utils.checkpoint) instead of storing them, as torchvision's memory_efficient=True."""

    def __init__(self, in_channels: int, growth_rate: int, bottleneck: bool = True,
                 bn_size: int = 4, drop_rate: float = 0.0, memory_efficient: bool = False) -> None:
        super().__init__()
        self.in_channels, self.growth_rate, self.bottleneck = in_channels, growth_rate, bottleneck
        self.drop_rate, self.memory_efficient = float(drop_rate), memory_efficient
        self.norm1 = nn.BatchNorm2d(in_channels)               # BN first: pre-activation (sec. 3)
        self.relu1 = nn.ReLU(inplace=True)
        if bottleneck:
            self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, kernel_size=1, bias=False)  # 4k maps
            self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1,
                                   bias=False)                 # k new maps; padding keeps the size
        else:
            self.conv1 = nn.Conv2d(in_channels, growth_rate, kernel_size=3, padding=1, bias=False)

    def concat_conv1(self, *features: torch.Tensor) -> torch.Tensor:
        x = torch.cat(features, 1)                             # [x_0, x_1, ..., x_{l-1}] (Eqn. 2)
        return self.conv1(self.relu1(self.norm1(x)))

    def dropout(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.drop_rate, self.training) if self.drop_rate > 0 else x

    def forward(self, features: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
        features = [features] if isinstance(features, torch.Tensor) else list(features)
        if self.memory_efficient and torch.is_grad_enabled() and any(f.requires_grad for f in features):
            out = checkpoint(self.concat_conv1, *features, use_reentrant=False,
                             context_fn=lambda: (contextlib.nullcontext(), _running_stats_kept(self.norm1)))
        else:
            out = self.concat_conv1(*features)
        out = self.dropout(out)                                # dropout after each conv (sec. 4.2)
        if self.bottleneck:
            out = self.dropout(self.conv2(self.relu2(self.norm2(out))))
        return out


# Defined in notebooks/03_densenet.ipynb, section 2 › The transition layer
class Transition(nn.Module):
    """BN-ReLU-Conv(1x1)-AvgPool(2x2, stride 2) between dense blocks (sec. 3, Table 1), with
    compression: floor(compression * in_channels) output maps."""

    def __init__(self, in_channels: int, compression: float = 0.5, drop_rate: float = 0.0) -> None:
        super().__init__()
        if not 0 < compression <= 1:
            raise ValueError(f"compression (theta) must be in (0, 1], got {compression} (sec. 3).")
        self.out_channels = int(compression * in_channels)     # floor(theta m)
        self.drop_rate = float(drop_rate)
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)                      # Table 1: every conv is BN-ReLU-Conv
        self.conv = nn.Conv2d(in_channels, self.out_channels, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.relu(self.norm(x)))
        x = F.dropout(x, self.drop_rate, self.training) if self.drop_rate > 0 else x
        return self.pool(x)


# Defined in notebooks/03_densenet.ipynb, section 2 › The dense block
class DenseBlock(nn.ModuleDict):
    """`num_layers` dense layers; layer l sees k0 + k (l - 1) channels (sec. 3, "Growth rate");
    the output is the concatenation of the input and every layer's k new maps."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, **layer_kwargs) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}",
                            DenseLayer(in_channels + i * growth_rate, growth_rate, **layer_kwargs))
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))                   # each layer reads all, adds k
        return torch.cat(features, 1)


# Defined in notebooks/03_densenet.ipynb, section 2 › The model, from its configuration
#: Table 1 (ImageNet, DenseNet-BC, k = 32 for all): layers in dense blocks (1)..(4); stem: 2k
#: channels (sec. 3). DenseNet-161 (k = 48) is NOT in v5's Table 1: the authors' repository
#: (README: "Models in the original paper") and torchvision.
TABLE1 = {
    #     k   layers in dense blocks (1), (2), (3), (4)
    121: (32, (6, 12, 24, 16)),
    169: (32, (6, 12, 32, 32)),
    201: (32, (6, 12, 48, 32)),
    264: (32, (6, 12, 64, 48)),
    161: (48, (6, 12, 36, 24)),     # not in v5's tables: authors' repository, torchvision
}


# Defined in notebooks/03_densenet.ipynb, section 2 › The model, from its configuration
class DenseNet(nn.Module):
    """A DenseNet from a configuration; torchvision's arguments and module names, plus:

    bottleneck: DenseNet-B layers (default True, as every net of Table 1);
    compression: theta of the transitions (default 0.5, DenseNet-C);
    stem: "imagenet" (7x7/2 conv, BN, ReLU, 3x3/2 max pool) or "cifar" (one 3x3 conv);
    num_init_features: stem width (default 2 * growth_rate).
    """

    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: Optional[int] = None, bn_size: int = 4, drop_rate: float = 0.0,
                 num_classes: int = 1000, memory_efficient: bool = False, *,
                 bottleneck: bool = True, compression: float = 0.5, stem: str = "imagenet",
                 in_channels: int = 3) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}.")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"Unknown stem {stem!r}: choose 'imagenet' or 'cifar'.")
        c = num_init_features or 2 * growth_rate
        self.in_channels, self.stem, self.min_input_size = in_channels, stem, 32
        if stem == "imagenet":
            layers = [("conv0", nn.Conv2d(in_channels, c, kernel_size=7, stride=2, padding=3, bias=False)),
                      ("norm0", nn.BatchNorm2d(c)), ("relu0", nn.ReLU(inplace=True)),
                      ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))]
        else:
            layers = [("conv0", nn.Conv2d(in_channels, c, kernel_size=3, padding=1, bias=False))]
        self.features = nn.Sequential(OrderedDict(layers))
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, c, growth_rate, bottleneck=bottleneck, bn_size=bn_size,
                               drop_rate=drop_rate, memory_efficient=memory_efficient)
            self.features.add_module(f"denseblock{i + 1}", block)
            c = block.out_channels
            if i < len(block_config) - 1:
                transition = Transition(c, compression, drop_rate)
                self.features.add_module(f"transition{i + 1}", transition)
                c = transition.out_channels
        self.features.add_module("norm5", nn.BatchNorm2d(c))   # the final BN, before the ReLU
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():                                # He et al. [10], as the authors' code
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def final_map_size(self, size: int) -> int:
        """The side of the last dense block's maps for an input side of `size` pixels."""
        if self.stem == "imagenet":
            size = (size + 1) // 2                              # conv0: 7x7, stride 2, padding 3
            size = (size + 1) // 2                              # pool0: 3x3, stride 2, padding 1
        return size // 2 ** sum(isinstance(m, Transition) for m in self.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, channels=self.in_channels, min_size=self.min_input_size,
                          training=self.training, final_map_size=self.final_map_size)
        x = F.relu(self.features(x))                            # BN (norm5), then ReLU, then pool
        x = F.adaptive_avg_pool2d(x, 1)                         # global average pool: any size
        return self.classifier(torch.flatten(x, 1))            # logits: softmax is in the loss


# Defined in notebooks/03_densenet.ipynb, section 2 › The model, from its configuration
def _imagenet_densenet(depth: int, **kwargs) -> DenseNet:
    growth_rate, blocks = TABLE1[depth]
    return DenseNet(growth_rate, blocks, **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › The model, from its configuration
def cifar_densenet(depth: int, growth_rate: int, bottleneck: bool = True, compression: float = 0.5,
                   **kwargs) -> DenseNet:
    """A three-block CIFAR DenseNet of depth L (sec. 3, "Implementation Details"): n layers per
    block with L = 3n + 4 (6n + 4 with bottlenecks); stem of 2k channels for DenseNet-BC, else 16."""
    convs = 2 if bottleneck else 1
    if depth < 4 + 3 * convs or (depth - 4) % (3 * convs):
        raise ValueError(f"Depth {depth} does not fit three equal dense blocks: use L = "
                         f"{3 * convs}n + 4 (e.g. {40 if convs == 1 else 100}).")
    kwargs.setdefault("num_classes", 10)
    kwargs.setdefault("num_init_features", 2 * growth_rate if bottleneck and compression < 1 else 16)
    return DenseNet(growth_rate, ((depth - 4) // (3 * convs),) * 3, bottleneck=bottleneck,
                    compression=compression, stem="cifar", **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › The memory-efficient dense layer
@contextlib.contextmanager
def _running_stats_kept(bn: nn.BatchNorm2d):
    """Undo what a recomputation in training mode does to a batch norm's buffers (running mean,
    variance, batch count): they were updated once already, in the forward pass."""
    saved = [b.detach().clone() for b in bn.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, s in zip(bn.buffers(), saved):
                b.copy_(s)


# Defined in notebooks/03_densenet.ipynb, section 2 › The memory-efficient dense layer
def bytes_saved_for_backward(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the activations one forward pass keeps for the backward pass: every tensor
    autograd saves (seen by a saved_tensors_hooks pack hook; each storage counted once,
    parameters and buffers left out), plus the inputs that checkpointed (memory-efficient) dense
    layers keep to recompute from. The model runs in its current mode, with gradients."""
    weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    kept = {}

    def keep(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    def keep_checkpoint_inputs(layer, args):
        if layer.memory_efficient:
            for f in [args[0]] if isinstance(args[0], torch.Tensor) else args[0]:
                keep(f)

    hooks = [m.register_forward_pre_hook(keep_checkpoint_inputs)
             for m in model.modules() if isinstance(m, DenseLayer)]
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return sum(kept.values())


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
class Table2Row(NamedTuple):
    """One DenseNet row of Table 2: the architecture, its parameters, its test errors (%)."""
    depth: int                      # L
    growth_rate: int                # k
    bottleneck: bool                # B: 1x1 conv to 4k maps before each 3x3 conv
    compression: float              # theta (C: 0.5; 1 = no compression)
    params: float                   # as printed: one decimal, in millions
    c10: Optional[float]            # CIFAR-10, no augmentation (with dropout 0.2)
    c10_plus: Optional[float]       # CIFAR-10+, standard augmentation (no dropout)
    c100: Optional[float]
    c100_plus: Optional[float]
    svhn: Optional[float]


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
#: Table 2 (CIFAR and SVHN), the DenseNet rows, under this course's registry names.
TABLE2 = {
    #                            L    k   B      theta params  C10   C10+  C100   C100+  SVHN
    "cifar_densenet40_k12":     Table2Row(40, 12, False, 1.0, 1.0e6, 7.00, 5.24, 27.55, 24.42, 1.79),
    "cifar_densenet100_k12":    Table2Row(100, 12, False, 1.0, 7.0e6, 5.77, 4.10, 23.79, 20.20, 1.67),
    "cifar_densenet100_k24":    Table2Row(100, 24, False, 1.0, 27.2e6, 5.83, 3.74, 23.42, 19.25, 1.59),
    "cifar_densenet_bc100_k12": Table2Row(100, 12, True, 0.5, 0.8e6, 5.92, 4.51, 24.15, 22.27, 1.76),
    "cifar_densenet_bc250_k24": Table2Row(250, 24, True, 0.5, 15.3e6, 5.19, 3.62, 19.64, 17.60, 1.74),
    "cifar_densenet_bc190_k40": Table2Row(190, 40, True, 0.5, 25.6e6, None, 3.46, None, 17.18, None),
}

# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
#: Table 3: ImageNet validation error (%), single-crop / 10-crop.
TABLE3 = {
    #     top-1 single, 10-crop   top-5 single, 10-crop
    121: ((25.02, 23.61), (7.71, 6.66)),
    169: ((23.80, 22.08), (6.85, 5.92)),
    201: ((22.58, 21.46), (6.34, 5.54)),
    264: ((22.15, 20.80), (6.12, 5.29)),
}

# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
#: The parameters the text states for an ImageNet DenseNet (sec. 4.4: "a DenseNet-201 with 20M
#: parameters"); Table 1 lists none.
TEXT_PARAMS = {201: 20e6}

# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
#: Pleiss et al. 2017 (arXiv:1707.06990), abstract: "a 264-layer DenseNet (73M parameters)",
#: trained with their memory-efficient implementation. Neither k nor the blocks are given: Table 1's
#: blocks with k = 48 fit (our inference).
TECH_REPORT_PARAMS = {264: 73e6}


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
def _table2_densenet(name: str, **kwargs) -> DenseNet:
    row = TABLE2[name]
    return cifar_densenet(row.depth, row.growth_rate, row.bottleneck, row.compression, **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
def _with_paper_numbers(constructor):
    """Append the paper's numbers for this model (TABLE2 or TABLE3) to its docstring."""
    name = constructor.__name__
    if name in TABLE2:
        row = TABLE2[name]
        errors = ", ".join(f"{col} {getattr(row, attr):g}%" for col, attr in (
            ("C10", "c10"), ("C10+", "c10_plus"), ("C100", "c100"), ("C100+", "c100_plus"),
            ("SVHN", "svhn")) if getattr(row, attr) is not None)
        constructor.__doc__ += (f"\n\n    Huang et al. 2017, Table 2: {row.params / 1e6:g}M "
                                f"parameters; test error {errors}.")
    elif int(name.removeprefix("densenet")) in TABLE3:
        (top1, top1_10), (top5, top5_10) = TABLE3[int(name.removeprefix("densenet"))]
        constructor.__doc__ += (f"\n\n    Huang et al. 2017, Table 3: ImageNet validation error "
                                f"top-1 {top1:g}% (10-crop {top1_10:g}%), top-5 {top5:g}% "
                                f"(10-crop {top5_10:g}%).")
    return constructor


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("densenet121", head="classifier", weights="DenseNet121_Weights.IMAGENET1K_V1",
                rename="renamed_checkpoint_key")
@_with_paper_numbers
def densenet121(**kwargs) -> DenseNet:
    """DenseNet-121 (Table 1, k = 32)."""
    return _imagenet_densenet(121, **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("densenet161", head="classifier", weights="DenseNet161_Weights.IMAGENET1K_V1",
                rename="renamed_checkpoint_key")
@_with_paper_numbers
def densenet161(**kwargs) -> DenseNet:
    """DenseNet-161 (k = 48): not in v5's tables; the authors' repository and torchvision."""
    return _imagenet_densenet(161, **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("densenet169", head="classifier", weights="DenseNet169_Weights.IMAGENET1K_V1",
                rename="renamed_checkpoint_key")
@_with_paper_numbers
def densenet169(**kwargs) -> DenseNet:
    """DenseNet-169 (Table 1, k = 32)."""
    return _imagenet_densenet(169, **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("densenet201", head="classifier", weights="DenseNet201_Weights.IMAGENET1K_V1",
                rename="renamed_checkpoint_key")
@_with_paper_numbers
def densenet201(**kwargs) -> DenseNet:
    """DenseNet-201 (Table 1, k = 32)."""
    return _imagenet_densenet(201, **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("densenet264", head="classifier")
@_with_paper_numbers
def densenet264(**kwargs) -> DenseNet:
    """DenseNet-264 (Table 1, k = 32); torchvision has none."""
    return _imagenet_densenet(264, **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_densenet40_k12", head="classifier")
@_with_paper_numbers
def cifar_densenet40_k12(**kwargs) -> DenseNet:
    """DenseNet (L = 40, k = 12) of Table 2: no bottleneck, no compression."""
    return _table2_densenet("cifar_densenet40_k12", **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_densenet100_k12", head="classifier")
@_with_paper_numbers
def cifar_densenet100_k12(**kwargs) -> DenseNet:
    """DenseNet (L = 100, k = 12) of Table 2: no bottleneck, no compression."""
    return _table2_densenet("cifar_densenet100_k12", **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_densenet100_k24", head="classifier")
@_with_paper_numbers
def cifar_densenet100_k24(**kwargs) -> DenseNet:
    """DenseNet (L = 100, k = 24) of Table 2: no bottleneck, no compression."""
    return _table2_densenet("cifar_densenet100_k24", **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_densenet_bc100_k12", head="classifier")
@_with_paper_numbers
def cifar_densenet_bc100_k12(**kwargs) -> DenseNet:
    """DenseNet-BC (L = 100, k = 12) of Table 2."""
    return _table2_densenet("cifar_densenet_bc100_k12", **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_densenet_bc250_k24", head="classifier")
@_with_paper_numbers
def cifar_densenet_bc250_k24(**kwargs) -> DenseNet:
    """DenseNet-BC (L = 250, k = 24) of Table 2."""
    return _table2_densenet("cifar_densenet_bc250_k24", **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
@register_model("cifar_densenet_bc190_k40", head="classifier")
@_with_paper_numbers
def cifar_densenet_bc190_k40(**kwargs) -> DenseNet:
    """DenseNet-BC (L = 190, k = 40) of Table 2."""
    return _table2_densenet("cifar_densenet_bc190_k40", **kwargs)


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
OLD_CHECKPOINT_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


# Defined in notebooks/03_densenet.ipynb, section 2 › Plumbing (skip on a first read)
def renamed_checkpoint_key(key: str) -> str:
    """torchvision's old checkpoint names (`norm.1`, `conv.1`, ...) as the layers are named now."""
    m = OLD_CHECKPOINT_KEY.match(key)
    return f"{m[1]}{m[2]}" if m else key
