"""The figure of paper_notes/densenet.md, counted from the course's saved DenseNet code:

- left: multiply-adds per output pixel of each dense layer of DenseNet-121's third block (Table 1:
  256 maps in, k = 32, 24 layers), as BN-ReLU-Conv(3x3) and with the bottleneck (DenseNet-B);
- right: the channels entering each dense layer of DenseNet-121, with compression theta = 1 and
  theta = 0.5 (DenseNet-BC).

    python paper_notes/figures/make_densenet.py      # writes paper_notes/figures/densenet_cost.png
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from common.models.densenet import TABLE1, DenseLayer, DenseNet  # noqa: E402


def macs_per_pixel(layer: nn.Module) -> int:
    """Multiply-adds per output pixel of a layer whose convs keep the size: one per weight."""
    return sum(m.weight.numel() for m in layer.modules() if isinstance(m, nn.Conv2d))


def layer_inputs(theta: float) -> list[int]:
    """The channels entering each dense layer of DenseNet-121 with compression theta."""
    k, blocks = TABLE1[121]
    with torch.device("meta"):
        net = DenseNet(k, blocks, compression=theta)
    return [m.in_channels for m in net.modules() if isinstance(m, DenseLayer)]


def main() -> Path:
    k0, k, n = 256, TABLE1[121][0], TABLE1[121][1][2]
    with torch.device("meta"):
        plain = [macs_per_pixel(DenseLayer(k0 + i * k, k, bottleneck=False)) for i in range(n)]
        bneck = [macs_per_pixel(DenseLayer(k0 + i * k, k)) for i in range(n)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    layers = range(1, n + 1)
    left.plot(layers, [m / 1e3 for m in plain], "o-", ms=3, label="BN-ReLU-Conv(3x3)")
    left.plot(layers, [m / 1e3 for m in bneck], "s-", ms=3, label="with bottleneck (DenseNet-B)")
    left.set_xlabel("dense layer of block 3")
    left.set_ylabel("thousand multiply-adds per pixel")
    left.set_title("DenseNet-121, block 3: the bottleneck's saving grows", fontsize=10)
    left.legend(fontsize=8)
    for theta, style in ((1.0, "--"), (0.5, "-")):
        channels = layer_inputs(theta)
        right.step(range(1, len(channels) + 1), channels, style, where="post",
                   label=f"theta = {theta:g}" + (" (DenseNet-BC)" if theta < 1 else ""))
    right.set_xlabel("dense layer, in order (blocks of 6, 12, 24, 16)")
    right.set_ylabel("channels read")
    right.set_title("DenseNet-121: channels each layer reads", fontsize=10)
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = HERE / "densenet_cost.png"
    fig.savefig(out, dpi=100)
    return out


if __name__ == "__main__":
    print(main())
