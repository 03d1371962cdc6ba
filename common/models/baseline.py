# Generated from notebooks/00_toolkit.ipynb by `python -m common.save`: do not edit here.
# Edit the notebook's `#@save baseline` cells instead, then run `python -m common.save`.

"""00 · The shared toolkit

The `#@save baseline` cells of notebooks/00_toolkit.ipynb, in order; the comment above each item
names the section of the notebook that explains it.
"""
import torch
from torch import nn

from common.models.registry import check_image_batch, register_model

__all__ = [
    "conv_bn_relu", "BaselineCNN", "cifar_baseline",
]


# Defined in notebooks/00_toolkit.ipynb, section 2 · A model, block by block
def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (no bias: the batch norm that follows has one), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


# Defined in notebooks/00_toolkit.ipynb, section 2 · A model, block by block
class BaselineCNN(nn.Module):
    """Stages of ``convs_per_stage`` conv-BN-ReLU layers; each stage but the last ends in a 2x2
    max-pool; then global average pooling and a linear classifier."""

    def __init__(self, widths=(32, 64, 128), convs_per_stage: int = 2, num_classes: int = 10):
        super().__init__()
        layers, c = [], 3
        for i, w in enumerate(widths):
            for _ in range(convs_per_stage):
                layers.append(conv_bn_relu(c, w))
                c = w
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, 3)
        x = self.avgpool(self.features(x))
        return self.fc(torch.flatten(x, 1))


# Defined in notebooks/00_toolkit.ipynb, section 2 · A model, block by block
@register_model("cifar_baseline", head="fc")
def cifar_baseline(num_classes: int = 10, **kwargs) -> BaselineCNN:
    """The course's baseline CNN for 32x32 images (about 0.29M parameters)."""
    return BaselineCNN(num_classes=num_classes, **kwargs)
