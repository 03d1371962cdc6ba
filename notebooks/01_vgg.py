# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · VGG: Very Deep Convolutional Networks for Large-Scale Image Recognition
#
# Karen Simonyan, Andrew Zisserman. *Very Deep Convolutional Networks for Large-Scale Image
# Recognition.* ICLR 2015. [arXiv:1409.1556](https://arxiv.org/abs/1409.1556) (we read v6).
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/the-imagenet-5/course/blob/main/notebooks/01_vgg.ipynb)
#
# **What you will build:** a VGG stage (3×3 convs, ReLU, max-pool) from a row of Table 1, and
# all six configurations from its columns; checks against Table 2 and torchvision's eight VGGs;
# the CIFAR-10 adaptation, trained; and the experiment behind the paper's training procedure:
# without batch norm a deep VGG from small random weights stays at chance, and why.
#
# **Prerequisites:** notebook 00 (`common.load_data`, `common.fit`); convolutions, max-pooling, a
# training loop. Introduced here for later notebooks: batch norm, initialisation (fan-in,
# fan-out), `signal_at_init`.
#
# **Run time** (the last cell prints yours), one thread of a 2-core CPU: smoke mode
# (`IMAGENET5_SMOKE=1`, the tests) 30 s of cells (docs/speed.md), quick mode
# (`IMAGENET5_QUICK=1`) 210 s measured on the quiet 2-core machine, two threads (`python
# tools/notebook_times.py`; docs/settings.md; 9 min before issue 32); full mode needs a GPU, not
# measured yet.
#
# **Reading:** sections 1-8, about 44 minutes of text and code (`tools/reading_path.py`, outputs
# not counted); then "Going deeper" and the reference table.
# Folded cells hold code to run, not to read first (set-up, helpers, plots): click to unfold.

# %% jupyter={"source_hidden": true}
# Set-up. On Colab: fetch the course and install what Colab lacks from its requirements.txt
# (the lines above "# Not on Colab"). Anywhere: put the course root (with common/) on the path.
# KEEP_ON_DRIVE = True (Colab only) keeps runs/ and data/ on your Google Drive, so that every
# training resumes from its last epoch after a disconnect: re-run the notebook from the top.
KEEP_ON_DRIVE = False
import sys, pathlib, subprocess
if "google.colab" in sys.modules and not pathlib.Path("imagenet5").exists():
    subprocess.run("git clone -q -b main https://github.com/the-imagenet-5/course imagenet5 && sed '/^# Not on Colab/,$d' imagenet5/requirements.txt | pip install -q -r /dev/stdin", shell=True, check=True)
sys.path.insert(0, str(next(p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents, pathlib.Path("imagenet5").resolve()] if (p / "common").is_dir())))
import common.colab
common.colab.keep_on_drive(KEEP_ON_DRIVE)

# %% jupyter={"source_hidden": true}
import io
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
import torchvision
from IPython.display import Image, display
from torch import nn

print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"device {common.pick_device()}, smoke mode {common.SMOKE}, offline {common.OFFLINE}")
NOTEBOOK_START = time.perf_counter()


def show_curves(fig) -> None:
    """Show training curves (a figure of common.plot_histories(..., show=False)); in smoke mode
    its title says that they are noise: two epochs of a few hundred images."""
    if common.SMOKE:
        fig.suptitle(f"{fig.get_suptitle()}\nsmoke mode: these curves are noise", fontsize="small")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90, bbox_inches="tight")
    display(Image(data=png.getvalue()))

# %% [markdown]
# ## 1 · Reading the paper
#
# <details><summary><b>The order to read it in</b> (click to unfold; the notes,
# <code>paper_notes/vgg.md</code>, say what to look for at each step)</summary>
#
# 1. **Abstract** and **conclusion** (section 5): one claim, "the representation depth is
#    beneficial for the classification accuracy", reached by stacking small 3×3 convolutions up
#    to 16-19 weight layers.
# 2. **The tables.** Table 1 (the six configurations, one per column: the real specification)
#    and Table 2 (their parameters); then Tables 3-5 (error against depth, LRN (local response
#    normalisation, AlexNet's layer, in net A-LRN), 1×1 against 3×3
#    convs, test scales, dense against multi-crop evaluation) and Tables 6-7 (ensembles, the
#    state of the art).
# 3. **Section 1** (introduction), then **section 2**: 2.1 the generic layout, 2.2 the
#    configurations, 2.3 *why* 3×3 (the key idea below).
# 4. **Section 3**: 3.1 training (the recipe, the initialisation from net A, scale
#    jittering), 3.2 testing (dense evaluation: the FC layers become convolutions), 3.3
#    implementation.
# 5. **Section 4**: the experiments (single-scale, multi-scale, multi-crop, fusion). The
#    appendices (localisation, transfer) are optional.
# </details>
#
# In short: the abstract and conclusion, the tables, then sections 1 to 3; section 4 for the
# experiments.
#
# **The key idea, in plain words.** Go deep, with small filters. The ImageNet nets before VGG
# opened with large filters (AlexNet's 11×11, ZFNet's 7×7). VGG uses 3×3 convolutions with
# stride 1 throughout and stacks them: five *stages* of one to four convs, a 2×2 max-pool after
# each, the width doubling from 64 to 512; then three fully connected (FC) layers. Table 1's six
# configurations differ only in depth, 11 to 19 weight layers, and the error falls with depth
# (Table 3): "the representation depth is beneficial for the classification accuracy" (sec. 5).
#
# **Why small filters.** Two stacked 3×3 convs see a 5×5 window of the input, three see 7×7
# (the paper's section 2.3): as far as one large filter, with a ReLU after every layer instead of one
# ("makes the decision function more discriminative") and fewer weights (the first block counts
# them).
#
# **Misreadings to avoid.**
# - *The stack computes what the large filter computes.* No: it has ReLUs in between, and its
#   weights are a constrained version of the large filter, the 7×7 filters forced "to have a
#   decomposition through the 3 × 3 filters" (sec. 2.3).
# - *VGG-16 has batch norm.* The paper has none (batch norm came later); torchvision's
#   `vgg16_bn` is a variant. The paper started its deep nets with care instead (sec. 3.1: "bad
#   initialisation can stall learning"), and section 6 shows what batch norm changes.
# - *The weights are in the convolutions.* Most are in the first FC layer (section 3 counts).

# %% jupyter={"source_hidden": true}
common.block_diagrams(
    dict(layers=["3×3 conv, C", "3×3 conv, C", "3×3 conv, C"], notes=["ReLU", "ReLU"],
         after=["ReLU"], shortcut=None, title="VGG: three 3×3 (27C², 3 ReLUs)"),
    dict(layers=["7×7 conv, C"], after=["ReLU"], shortcut=None,
         title="one 7×7 (49C², 1 ReLU)"),
    title="The same 7×7 receptive field (sec. 2.3)")

# %% [markdown]
# ## 2 · Build it, block by block
#
# Each block: what the paper says (its rows of the Easter-egg table: every detail an
# implementation depends on, the easily missed ones marked "Egg"; complete at the end), why, the
# code, a check. Cells starting `#@save vgg` also go to `common/models/vgg.py`, for later
# notebooks. Module names follow torchvision's, so that its weights load into ours with a
# *strict load* (every parameter's name and shape must match, section 4).

# %% [markdown]
# <a id="try-stage"></a>
#
# ### Write it yourself: a stage (try it first)
#
# Optional: write the block before reading ours; `check` compares them (it says "not done yet"
# until you do). **A stage from a row of Table 1** (sec. 2.1). Write
# `my_vgg_stage(in_channels, row, batch_norm=False)`, returning an `nn.Module` for one stage
# such as `["conv3-256", "conv3-256", "conv1-256"]`: each `conv<k>-<c>` a k×k convolution to c
# channels, stride 1, with the padding that keeps the resolution, followed by a ReLU (with
# `batch_norm=True`: conv, batch norm, ReLU, as torchvision's `vgg*_bn`, whose convs keep their
# bias: the next exercise loads its weights; a conv without bias before batch norm passes here,
# with a note); then the stage's max-pool.
#
# <details><summary><b>What <code>check</code> compares</b> (click to unfold)</summary>
#
# It builds yours and ours for several rows and columns of Table 1 (with and without batch norm,
# a 1×1 conv, LRN) and compares, stopping at the first difference: does it run; the output
# shape; the parameters, layer by layer; the outputs, with our weights copied into yours and
# random batch-norm statistics (a default batch norm is the identity in eval mode and would hide
# a misplaced one). Then one backward pass: the gradients must agree too (a detached shortcut
# gives the right outputs and cuts them); and a run in bfloat16 (a tensor made without the
# input's device and dtype fails on a GPU). When something differs it says what, in which case,
# and the likely cause; it names the bug when yours behaves exactly like a classic one.
# </details>

# %%
from common.exercises import check


def my_vgg_stage(in_channels, row, batch_norm=False):
    # Sec. 2.1: the padding is such that the "spatial resolution is preserved" (which padding
    # for a 3x3 conv, which for a 1x1?); every hidden layer has a ReLU; max-pooling "over a
    # 2×2 pixel window, with stride 2". Each conv takes the channels of the one before it.
    raise NotImplementedError("write my_vgg_stage")


# %% [markdown]
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# - `"conv3-256".removeprefix("conv").split("-")` gives the kernel size and the channels.
# - Padding `k // 2` keeps the size of a k×k convolution at stride 1: 1 for 3×3, 0 for 1×1.
# - One pool per stage, at its end; `nn.Sequential(*layers)` turns the list into a module.
# </details>

# %%
check("vgg.stage", my_vgg_stage)

# %% [markdown]
# ### A stage: 3×3 convs, ReLU, max-pool
#
# | Detail | Value | Where |
# |---|---|---|
# | Convolutions | 3×3 (1×1 in configuration C), stride 1, padding 1 for 3×3 ("spatial resolution is preserved") | sec. 2.1 |
# | Padding of the 1×1 convs | 0 (a 1×1 conv keeps the resolution without padding) | follows from sec. 2.1's rule |
# | Pooling | five max-pools, 2×2 window, stride 2, after some of the convs | sec. 2.1, Table 1 |
# | Non-linearity | ReLU after every hidden layer | sec. 2.1 |
#
# **Why 3×3, counted.** Each stride-1 k×k conv widens what an output pixel sees by k − 1. With
# C channels in and out, two 3×3 layers see 5×5 with $2 \cdot 3^2 C^2 = 18C^2$ weights where
# one 5×5 layer has $25C^2$, and one ReLU more; three see 7×7 with $27C^2$ against $49C^2$, "81%
# more" (sec. 2.3, which counts this case only). The (folded) cell counts the weights of real
# layers:

# %% jupyter={"source_hidden": true}
def receptive_field(kernels) -> int:
    """Receptive field of a stack of stride-1 convolutions with these kernel sizes."""
    return 1 + sum(k - 1 for k in kernels)


def weights(kernels, C: int) -> int:
    """Weights (no biases) of a stack of C -> C convolutions with these kernel sizes."""
    with torch.device("meta"):                      # shapes only: no memory, no arithmetic
        return sum(nn.Conv2d(C, C, k, bias=False).weight.numel() for k in kernels)


C = 512
assert receptive_field([3, 3, 1]) == 5                                      # a 1x1 adds none
assert weights([3, 3, 3], C) == 27 * C * C and weights([7], C) == 49 * C * C   # sec. 2.3
rows = []
for stack, big in (([3, 3], 5), ([3, 3, 3], 7)):
    assert receptive_field(stack) == receptive_field([big]) == big          # sec. 2.3: 5x5, 7x7
    w_stack, w_big = weights(stack, C), weights([big], C)
    rows.append((" + ".join(["3×3"] * len(stack)), f"{big}×{big}",
                 f"{w_stack // C**2}C² = {w_stack:,}", len(stack),
                 f"{w_big // C**2}C² = {w_big:,}", f"{w_big / w_stack - 1:.0%}"))
common.table(rows, header=("stack", "sees", f"weights at C = {C}", "ReLUs",
                           "one conv that sees as far", "more weights in it"))

# %% [markdown]
# **The code.** `stage` chains the convs of one row and ends with the max-pool: "Max-pooling is
# performed over a 2×2 pixel window, with stride 2" (sec. 2.1). It returns a *list*: the builder
# splices the five stages into one flat `nn.Sequential`, which gives torchvision's names
# (`features.0.weight`...); nested stages would rename every weight (hurdle 1).

# %% jupyter={"source_hidden": true}
#@save vgg
from typing import Optional, Sequence, Union

import torch
from torch import nn

from common.models.registry import check_image_batch, register_model

# %%
#@save vgg
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


# %% [markdown]
# `conv_layer` turns one entry of a row (parsed by `parse_conv`, folded) into a conv and its ReLU,
# with padding `k // 2` (1 for 3×3, 0 for 1×1): "the spatial padding of conv. layer input is such
# that the spatial resolution is preserved" (sec. 2.1).

# %% jupyter={"source_hidden": true}
#@save vgg
def parse_conv(spec: str) -> tuple:
    """'conv3-64' -> (3, 64): Table 1's "conv<receptive field size>-<number of channels>"."""
    try:
        kernel, channels = spec.removeprefix("conv").split("-")
        return int(kernel), int(channels)
    except ValueError:
        raise ValueError(f"Not a layer of Table 1: {spec!r}. Expected e.g. 'conv3-64', "
                         "'conv1-256' or 'LRN'.") from None


# %%
#@save vgg
def conv_layer(in_channels: int, spec: str, batch_norm: bool = False) -> tuple:
    """Layers for one "convK-C" entry of Table 1: [conv, (BN,) ReLU], and the new channel count."""
    kernel, out_channels = parse_conv(spec)
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel, stride=1,  # stride 1 (sec. 2.1)
                     padding=kernel // 2)                   # resolution preserved (sec. 2.1)
    if batch_norm:                                          # torchvision's order: conv, BN, ReLU
        return [conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)], out_channels
    return [conv, nn.ReLU(inplace=True)], out_channels      # "all hidden layers ... ReLU" (sec. 2.1)


# %%
x = torch.randn(2, 3, 32, 32)
layers, c = conv_layer(3, "conv3-64")
assert c == 64 and [type(m) for m in layers] == [nn.Conv2d, nn.ReLU]
assert nn.Sequential(*layers)(x).shape == (2, 64, 32, 32)            # padding 1 keeps 32x32
layers, c = conv_layer(64, "conv1-256", batch_norm=True)
assert [type(m) for m in layers] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
assert nn.Sequential(*layers)(torch.randn(2, 64, 14, 14)).shape == (2, 256, 14, 14)   # 1x1: pad 0
y = nn.Sequential(*conv_layer(3, "conv3-8")[0])(x)
assert (y >= 0).all()                                                # ends in a ReLU
x = torch.randn(2, 64, 56, 56)
layers, c = stage(64, ["conv3-256", "conv3-256", "conv1-256"])          # stage 3 of C
assert c == 256 and nn.Sequential(*layers)(x).shape == (2, 256, 28, 28)   # half the resolution
print("conv3 and conv1 keep the resolution; BN sits between conv and ReLU; the max-pool halves")

# %% [markdown]
# **Batch norm**, the one layer here that the paper does not have:
#
# | Detail | Value | Where |
# |---|---|---|
# | Batch norm | none (BN was published in 2015, after this paper); the `_bn` models put BN after each conv, before the ReLU, as torchvision does | not in the paper: torchvision's `vgg*_bn` |
#
# `nn.BatchNorm2d` (Ioffe & Szegedy 2015) brings each channel to mean 0 and standard deviation 1
# over the batch (images and pixels), then scales and shifts it by two learned numbers per
# channel, `weight` (γ, from 1) and `bias` (β, from 0). It keeps running averages of the mean and
# variance, which eval mode uses instead of the batch's. Every layer's output then starts at the
# same scale, whatever the weights (section 6 shows what that does for a deep VGG). For section
# 4: a fresh batch norm (running mean 0, variance 1, γ = 1, β = 0) is the identity in eval mode.

# %%
bn = nn.BatchNorm2d(4)
x = 3 * torch.randn(8, 4, 5, 5) + 2                    # a batch far from mean 0, std 1
y = bn(x)                                              # training mode: the batch's statistics
print(f"training mode: per-channel means up to {y.mean((0, 2, 3)).abs().max():.1e}, "
      f"standard deviations {', '.join(f'{s:.2f}' for s in y.std((0, 2, 3)))}")
fresh = nn.BatchNorm2d(4).eval()                       # eval mode: running mean 0, variance 1
assert torch.allclose(fresh(x), x, rtol=1e-5, atol=0)  # x / sqrt(1 + eps): the identity
print("a fresh batch norm in eval mode returns its input")

# %% [markdown]
# ### The LRN layer of A-LRN (skip on a first read)
#
# | Detail | Value | Where |
# |---|---|---|
# | LRN | only in A-LRN, after the first conv; "the parameters for the LRN layer are those of (Krizhevsky et al., 2012)": $k=2, n=5, \alpha=10^{-4}, \beta=0.75$ | sec. 2.1; constants: AlexNet paper, sec. 3.3 |
# | LRN after or before the ReLU | after (AlexNet applies it "after applying the ReLU nonlinearity") | not stated in VGG: we follow AlexNet sec. 3.3 |
#
# A-LRN is net A with Local Response Normalisation after the first conv, with "the parameters
# ... of (Krizhevsky et al., 2012)" (sec. 2.1). The paper found that it "does not improve on the
# model A" (sec. 4.1) and left it out of the deeper nets; we build it because Table 1 lists it.
# AlexNet's $k = 2$, $n = 5$, $\alpha = 10^{-4}$, $\beta = 0.75$ go into
#
# $$b^i = a^i \Big/ \Big(k + \alpha \sum_{j=\max(0,\, i-n/2)}^{\min(N-1,\, i+n/2)} (a^j)^2\Big)^{\beta}.$$
#
# PyTorch's `nn.LocalResponseNorm` divides $\alpha$ by $n$ (it averages the squares instead
# of summing them), so AlexNet's $\alpha$ becomes `alpha = n * 1e-4` in PyTorch. We check it
# against the formula written out by hand.

# %%
#@save vgg
LRN_K, LRN_N, LRN_ALPHA, LRN_BETA = 2.0, 5, 1e-4, 0.75     # AlexNet sec. 3.3, via VGG sec. 2.1


def lrn_layer() -> nn.LocalResponseNorm:
    """AlexNet's LRN. nn.LocalResponseNorm uses alpha / n (a mean of squares, not a sum), so
    AlexNet's alpha is passed as n * alpha."""
    return nn.LocalResponseNorm(size=LRN_N, alpha=LRN_N * LRN_ALPHA, beta=LRN_BETA, k=LRN_K)


# %%
def lrn_by_hand(a, k=LRN_K, n=LRN_N, alpha=LRN_ALPHA, beta=LRN_BETA):
    """AlexNet's Eqn. (section 3.3), literally: sum over the n neighbouring channels."""
    N = a.shape[1]
    out = torch.empty_like(a)
    for i in range(N):
        lo, hi = max(0, i - n // 2), min(N - 1, i + n // 2)
        out[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(1)) ** beta
    return out


a = torch.randn(2, 16, 5, 5).relu() * 30                   # large activations, so LRN matters
torch.testing.assert_close(lrn_layer()(a), lrn_by_hand(a))
naive = nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)(a)   # AlexNet's alpha as is
print(f"lrn_layer() == AlexNet's formula; passing alpha=1e-4 directly is off by up to "
      f"{(naive - lrn_by_hand(a)).abs().max():.3f}")
layers, c = stage(3, ["conv3-64", "LRN"])                                 # stage 1 of A-LRN
assert [type(m) for m in layers] == [nn.Conv2d, nn.ReLU, nn.LocalResponseNorm, nn.MaxPool2d]
print("stage: LRN after the first ReLU in A-LRN")

# %% [markdown]
# <a id="try-features"></a>
#
# ### Write it yourself: the features (try it first)
#
# **The convolutional part from a column of Table 1** (Table 1; sec. 2.1). Write
# `my_vgg_features(config, batch_norm=False)` for a column given as a list of stages, such as
# `TABLE_1["A-LRN"]`: the stages one after the other, starting from 3 (RGB) channels, as ONE
# flat `nn.Sequential`, so that its indices are torchvision's (`features.0` is the first conv)
# and torchvision's weights load into it. An `"LRN"` entry is AlexNet's local response
# normalisation: "the parameters for the LRN layer are those of (Krizhevsky et al., 2012)"
# (sec. 2.1), k = 2, n = 5, α = 10⁻⁴, β = 0.75 (AlexNet, sec. 3.3), after the ReLU of the conv
# before it. (`TABLE_1` is the next block's data; the LRN block above has the formula.)

# %%
def my_vgg_features(config, batch_norm=False):
    # Reuse your stage: every stage starts from the channels the previous one ended with.
    # One flat list of layers, not a Sequential of Sequentials (torchvision's indices).
    # LRN: compare AlexNet's formula (a SUM over n channels) with nn.LocalResponseNorm's docs.
    raise NotImplementedError("write my_vgg_features")


# %% [markdown]
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# - PyTorch's `nn.LocalResponseNorm` divides α by n (it averages the squares), while AlexNet
#   sums them: pass `alpha=n * 1e-4` to get AlexNet's layer; `k` defaults to 1, not 2.
# - LRN only matters for large activations: the checker feeds the A-LRN column inputs as large
#   as the paper's mean-subtracted pixel values.
# </details>

# %%
check("vgg.features", my_vgg_features)

# %% [markdown]
# ### Table 1 as data, and the builder: a column → `features`
#
# | Detail | Value | Where |
# |---|---|---|
# | Widths | 64, doubled after each max-pool, up to 512 | sec. 2.2, Table 1 |
# | Configurations | A (11 weight layers: 8 conv + 3 FC), A-LRN (11), B (13), C (16), D (16), E (19 = 16 conv + 3 FC) | sec. 2.2, Table 1 |
#
# **Why data.** Table 1 *is* the specification. Written as data (`TABLE_1`, folded: one list
# per column, one inner list per stage, the paper's notation), one builder makes all six nets,
# and a slip in copying a column shows up as a wrong depth: the table's header gives each
# column's depth in weight layers (convs plus the three FC layers), which the check compares.
# Its output is Table 1 again (ReLUs not written, as in the paper).

# %% jupyter={"source_hidden": true}
#@save vgg
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
#: Table 1's header: the depth of each configuration in weight layers (convs + 3 FC layers).
WEIGHT_LAYERS = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
Config = Union[str, Sequence[Sequence[str]]]


def _stages(config: Config) -> list:
    if isinstance(config, str):
        if config not in TABLE_1:
            raise ValueError(f"Unknown configuration {config!r}: Table 1 has "
                             f"{', '.join(TABLE_1)}.")
        return TABLE_1[config]
    return [list(s) for s in config]


# %%
for name, stages in TABLE_1.items():
    convs = [s for stage_specs in stages for s in stage_specs if s != "LRN"]
    assert len(convs) + 3 == WEIGHT_LAYERS[name], name
    assert len(stages) == 5                                    # five max-pools (sec. 2.1)
    widths = [parse_conv(s[0])[1] for s in stages]
    assert widths == [64, 128, 256, 512, 512]                  # 64, doubling, up to 512 (sec. 2.2)
assert TABLE_1.keys() == WEIGHT_LAYERS.keys()

# %% jupyter={"source_hidden": true}
common.table([(name, WEIGHT_LAYERS[name],
               *(" ".join(f"{s}×{row.count(s)}" if row.count(s) > 1 else s
                          for s in dict.fromkeys(row)) for row in TABLE_1[name]))
              for name in TABLE_1],
             header=("configuration", "weight layers", *(f"stage {i}" for i in range(1, 6))))

# %% [markdown]
# **The builder.** Five stages spliced into one flat `nn.Sequential`, like torchvision's
# `make_layers`: `features.0` is the first conv, `features.2` the first max-pool of A. The check
# builds every configuration on PyTorch's `meta` device (tensors with shapes but no memory and
# no values) and records the output of each max-pool at 224×224: five halvings take 224 to 7.
# A-LRN and C, which torchvision lacks, also run for real at 32×32.

# %%
#@save vgg
def make_features(config: Config, batch_norm: bool = False, in_channels: int = 3) -> nn.Sequential:
    """The convolutional part of a VGG: the stages of a Table 1 column (a name such as "D", or a
    list of stages), flattened into one nn.Sequential with torchvision's indices."""
    layers = []
    for specs in _stages(config):
        new, in_channels = stage(in_channels, specs, batch_norm)
        layers += new
    return nn.Sequential(*layers)


# %%
for name in TABLE_1:
    for bn in (False, True):
        with torch.device("meta"):
            f = make_features(name, batch_norm=bn)
        pools = [str(i) for i, m in enumerate(f) if isinstance(m, nn.MaxPool2d)]
        shapes = common.output_shapes(f, (2, 3, 224, 224), names=pools)    # one per max-pool
        assert [s[1:] for s in shapes.values()] == [(64, 112, 112), (128, 56, 56), (256, 28, 28),
                                                    (512, 14, 14), (512, 7, 7)], (name, shapes)
    if name in ("A-LRN", "C"):                     # the two torchvision lacks: run them for real
        with torch.no_grad():
            assert make_features(name)(torch.randn(1, 3, 32, 32)).shape == (1, 512, 1, 1)
print(f"configuration {name} with batch norm, output of each max-pool at 224x224: {shapes}")
print("make_features: every configuration maps 224x224 -> 512x7x7 (A-LRN and C: 32x32 -> 1x1 too)")

# %% [markdown]
# ### Initialisation: fan-in, fan-out, and the scale of the signal
#
# | Detail | Value | Where |
# |---|---|---|
# | **Egg: torchvision's init** | He (Kaiming) normal, fan-out, for the convs; N(0, 0.01²) for the FC layers; biases 0 (`torchvision.models.VGG.__init__`). Neither the paper's N(0, "10⁻² variance") nor its Glorot note; section 6 trains D without BN with it | not in the paper: torchvision |
#
# The paper's rows: "Random init", "Which std: 0.1 or 0.01", "Glorot init", "Initialisation"
# (reference table).
#
# **Why the scale matters.** A conv output sums over its *fan-in* $n$: $k^2$ × input channels.
# (The *fan-out*, $k^2$ × output channels, counts from the input's side.) With weights of
# standard deviation $\sigma$, a conv and its ReLU multiply the signal's standard deviation by
# about $\sigma\sqrt{n/2}$ (He et al. 2015, *Delving deep into rectifiers*, arXiv:1502.01852,
# sec. 2.2). Below 1, every layer shrinks the signal,
# and on the way back the gradient. `init_weights_` (folded) offers `"normal"`,
# $\mathcal{N}(0, \sigma^2)$ as in the paper ($\sigma$ = `std`, default 0.01, AlexNet's);
# `"glorot"` (Glorot & Bengio 2010), the paper's note added after submission: with it "it is
# possible to initialise the weights without pre-training" (sec. 3.1); `"kaiming"` (default), torchvision's: $\sigma =
# \sqrt{2/\text{fan-out}}$ for the convs (PyTorch's `mode="fan_out"` "preserves the magnitudes
# in the backwards pass") and $\mathcal{N}(0, 0.01^2)$ for the FC layers. The factor of each:

# %% jupyter={"source_hidden": true}
#@save vgg
INITS = ("kaiming", "glorot", "normal")


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


# %%
C = 64
rows = []
for scheme in INITS:
    conv = init_weights_(nn.Conv2d(C, C, 3), scheme)          # std 0.01 for "normal"
    fan_in = conv.in_channels * 3 * 3                         # the inputs each output sums over
    factor = conv.weight.std().item() * math.sqrt(fan_in / 2)     # per conv + ReLU
    rows.append((scheme, f"{conv.weight.std():.4f}", fan_in, f"{factor:.2f}",
                 f"{factor ** 13:.1e}"))
    if scheme == "kaiming":
        assert abs(factor - 1) < 0.05          # in == out channels: fan-in = fan-out, factor 1
    if scheme == "normal":
        assert factor < 0.2                                   # N(0, 0.01²) shrinks the signal
common.table(rows, header=("init", f"std of a {C}→{C} 3×3 conv", "fan-in n", "σ·√(n/2)",
                           "after 13 such layers (D)"))

# %% [markdown]
# ### The whole net: `features`, `avgpool`, `classifier`
#
# | Detail | Value | Where |
# |---|---|---|
# | Input | fixed-size 224×224 RGB crop; only pre-processing: subtract the mean RGB value of the training set | sec. 2.1 |
# | FC layers | 4096, 4096, 1000, then soft-max; the same in all nets | sec. 2.1 |
# | Dropout | 0.5, on the first two FC layers | sec. 3.1 |
# | **Egg: torchvision's avgpool** | `AdaptiveAvgPool2d((7, 7))` before the classifier: the identity at 224×224, but at other sizes it *resamples* the feature map to 7×7 so the FC layers fit. The paper instead slides the FC layers over the map (dense evaluation) | not in the paper: torchvision |
#
# After the stages, "three Fully-Connected (FC) layers: the first two have 4096 channels each,
# the third performs 1000-way ILSVRC classification" (sec. 2.1). The soft-max is *not* in the
# model: `nn.CrossEntropyLoss` applies it. torchvision's `AdaptiveAvgPool2d((7, 7))` is the
# identity at 224×224; we keep it so that outputs match torchvision's at any size. `forward`
# first checks the input: a wrong shape gets a clear message, not a cryptic matmul error.

# %% jupyter={"source_hidden": true}
#@save vgg
def out_channels(features: nn.Sequential) -> int:
    """The channels ``features`` ends with: those of its last conv (512 in every column)."""
    return [m for m in features if isinstance(m, nn.Conv2d)][-1].out_channels


# %%
#@save vgg
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

# %%
with torch.device("meta"):
    assert VGG("D")(torch.empty(2, 3, 224, 224)).shape == (2, 1000)
small = VGG("A", num_classes=10, init="normal", name="vgg11").eval()   # N(0, 0.01): quick to build
with torch.no_grad():
    for size in (32, 64, 97):                     # the adaptive pool makes the FC layers fit
        assert small(torch.randn(1, 3, size, size)).shape == (1, 10)

# %% jupyter={"source_hidden": true}
for bad in (torch.randn(3, 224, 224), torch.randn(1, 1, 224, 224), torch.randn(1, 3, 16, 16)):
    try:
        small(bad)
        raise AssertionError(f"accepted a batch shaped {tuple(bad.shape)}")
    except ValueError as err:
        print(f"{str(tuple(bad.shape)):18} -> {str(err).splitlines()[0][:100]}")
del small

# %% [markdown]
# ### The CIFAR-10 adaptation
#
# The paper has none (reference table, "Egg: the CIFAR-10 head"). On 32×32 images the five
# max-pools leave a 1×1×512 map, so the 7×7 pool and the 102M-weight `Linear(25088, 4096)` make
# no sense there. `CifarVGG` (folded; our choice) is `VGG` with the classifier replaced by
# **global average pooling and one `Linear(512, 10)`**, which works at any input size of 32
# pixels or more. `width` narrows every conv (`scale_config`), `batch_norm=False` gives the
# paper's BN-free stages. The (folded) check runs it at two sizes and counts what it saves:

# %% jupyter={"source_hidden": true}
#@save vgg
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


# %% jupyter={"source_hidden": true}
with torch.no_grad():
    m = CifarVGG("D", name="cifar_vgg16_bn").eval()
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert m(torch.randn(1, 3, 48, 40)).shape == (1, 10)              # global pooling: any size
narrow = CifarVGG("D", batch_norm=False, width=0.25)
assert narrow.features[0].out_channels == 16 and narrow.classifier.in_features == 128
assert not any(isinstance(mod, nn.BatchNorm2d) for mod in narrow.modules())
assert scale_config("D", 0.25)[0] == ["conv3-16", "conv3-16"]
with torch.device("meta"):
    imagenet_d = VGG("D", batch_norm=True)
print(f"CifarVGG('D'): {common.count_params(m) / 1e6:.2f}M parameters, "
      f"{common.count_params(m) / common.count_params(imagenet_d):.1%} of the ImageNet vgg16_bn's")
del m, narrow, imagenet_d

# %% [markdown]
# ### Pre-initialisation from net A (skip on a first read)
#
# | Detail | Value | Where |
# |---|---|---|
# | Initialisation | train A from random init; deeper nets get "the first four convolutional layers and the last three fully-connected layers" from A, "the intermediate layers were initialised randomly" (all of them: 9 of D's 13 convs, including the stage-4 and stage-5 convs that A also has); no lower lr for the copied layers | sec. 3.1 |
# | Where A's four convs go in a deeper net | to the deeper net's convs of the same shape, in order. The shapes fix three of them (3→64, 64→128 and 128→256 occur once in every column); the fourth (256→256) fits two convs of D, three of E: we take the same row of Table 1 (stage 3's second conv). Section 2 computes the candidates | not stated: our reading |
#
# "To circumvent this problem, we began with training the configuration A (Table 1), shallow
# enough to be trained with random initialisation. Then, when training deeper architectures,
# we initialised the first four convolutional layers and the last three fully-connected layers
# with the layers of net A (the intermediate layers were initialised randomly)." (sec. 3.1. The
# problem, in the same paragraph: "the instability of gradient in deep nets"; this notebook's
# section 6 shows it.)
#
# Which layers of the deeper net receive A's four? The paper does not say. A's first four convs
# are 3→64, 64→128, 128→256 and 256→256; the deeper net's *first four* convs cannot receive
# them (D's second conv is 64→64, a shape A does not have). The cell below lists, for each of
# A's four, the convs of D and E with the same shape: the first three have one candidate each,
# the fourth (256→256) two in D and three in E. Our reading, not the paper's words: A's convs
# go to the *same rows of Table 1* (stage 1's first conv, stage 2's first, stage 3's first
# two). Every other conv stays random, "the intermediate layers were initialised randomly":
# 9 of D's 13 convs, including those of stages 4 and 5, which A also has. The same code serves
# the CIFAR nets, whose "FC layers" are the single classifier.

# %%
def conv_shapes(config: str) -> list:
    """(in, out, k) of each conv of a column of Table 1, in order."""
    return [(m.in_channels, m.out_channels, m.kernel_size[0])
            for m in make_features(config, batch_norm=False) if isinstance(m, nn.Conv2d)]


with torch.device("meta"):
    shapes_a = conv_shapes("A")[:4]
    candidates = {cfg: [[i for i, sh in enumerate(conv_shapes(cfg)) if sh == a] for a in shapes_a]
                  for cfg in ("B", "C", "D", "E")}
assert [len(c) for c in candidates["D"]] == [1, 1, 1, 2]          # shapes fix three of four
assert [len(c) for c in candidates["E"]] == [1, 1, 1, 3]
common.table([(f"A's conv {i}: {a[0]}→{a[1]}", *(candidates[cfg][i] for cfg in "BCDE"))
              for i, a in enumerate(shapes_a)],         # conv indices count from 0, as features
             header=("A's conv", "its shape in B: conv", "in C", "in D", "in E"))

# %%
#@save vgg
def _convs_by_stage(features: nn.Sequential) -> list:
    stages, current = [], []
    for m in features:
        if isinstance(m, nn.Conv2d):
            current.append(m)
        elif isinstance(m, nn.MaxPool2d):
            stages.append(current)
            current = []
    return stages


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


# %%
a_net = CifarVGG("A", batch_norm=False, width=0.25, init="kaiming")
d_random = CifarVGG("D", batch_norm=False, width=0.25, init="normal")
before = [m.weight.clone() for m in d_random.features if isinstance(m, nn.Conv2d)]
d_net = init_from_net_a(d_random, a_net)
after = [m.weight for m in d_net.features if isinstance(m, nn.Conv2d)]
copied = [i for i, (w0, w1) in enumerate(zip(before, after)) if not torch.equal(w0, w1)]
assert copied == [0, 2, 4, 5] == [c[0] for c in candidates["D"]]     # D's rows of A's four convs
assert len(after) - len(copied) == 9                                  # the other nine: random
assert torch.equal(d_net.classifier.weight, a_net.classifier.weight)  # the FC layer(s)
print(f"init_from_net_a: D's convs {copied} (0-based) now hold A's first four; the other "
      f"{len(after) - len(copied)} of its {len(after)} convs keep their random init; classifier copied")
del a_net, d_random, d_net, before, after

# %% [markdown]
# ### Plumbing (skip on a first read): the paper's numbers, the constructors, the registry
#
# | Detail | Value | Where |
# |---|---|---|
# | Parameters | Table 2, in whole millions: `TABLE_2` (section 2, plumbing) holds it as data, section 3 checks it | Table 2 |
#
# Bookkeeping that the rest of the course relies on. Table 2's parameter counts live once, as
# data (`TABLE_2`), read by the constructors' docstrings (`_with_paper_numbers`), section 3's
# check and `tests/test_vgg.py`. Each configuration gets a thin constructor named as
# torchvision's (`vgg11` ... `vgg19_bn`; ours add `vgg11_lrn` for A-LRN and `vgg16_c` for C),
# registered with `register_model`, so that `common.get_model("vgg16")` builds it by name; the
# registration's *card* says which layer is the classifier (`head`, for transfer learning in
# notebook 09) and which official ImageNet weights exist (`weights`).

# %% jupyter={"source_hidden": true}
#@save vgg
#: Table 2: "number of parameters (in millions)", rounded to whole millions; A and A-LRN share
#: one column of the table.
TABLE_2 = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}


def _vgg(name: str, config: str, batch_norm: bool, **kwargs) -> VGG:
    return VGG(config, batch_norm=batch_norm, name=name, **kwargs)


def _with_paper_numbers(config: str):
    """Append the paper's numbers for a column of Table 1 (read from ``WEIGHT_LAYERS`` and
    ``TABLE_2``) to a constructor's docstring."""
    def append(constructor):
        constructor.__doc__ += (f"\n\n    Simonyan & Zisserman 2014: column {config} of Table 1, "
                                f"{WEIGHT_LAYERS[config]} weight layers; Table 2: "
                                f"{TABLE_2[config]}M parameters (without batch norm).")
        return constructor
    return append


@register_model("vgg11", head="classifier.6", weights="VGG11_Weights.IMAGENET1K_V1")
@_with_paper_numbers("A")
def vgg11(**kwargs) -> VGG:
    """VGG-11: configuration A. Keywords: see ``VGG``."""
    return _vgg("vgg11", "A", False, **kwargs)


@register_model("vgg11_bn", head="classifier.6", weights="VGG11_BN_Weights.IMAGENET1K_V1")
@_with_paper_numbers("A")
def vgg11_bn(**kwargs) -> VGG:
    """``vgg11`` with a batch norm after each conv (not in the paper; torchvision's order)."""
    return _vgg("vgg11_bn", "A", True, **kwargs)


@register_model("vgg11_lrn", head="classifier.6")
@_with_paper_numbers("A-LRN")
def vgg11_lrn(**kwargs) -> VGG:
    """VGG-11 with AlexNet's LRN after the first conv: configuration A-LRN. Keywords: ``VGG``."""
    return _vgg("vgg11_lrn", "A-LRN", False, **kwargs)


@register_model("vgg11_lrn_bn", head="classifier.6")
@_with_paper_numbers("A-LRN")
def vgg11_lrn_bn(**kwargs) -> VGG:
    """``vgg11_lrn`` with a batch norm after each conv (not in the paper; torchvision's order)."""
    return _vgg("vgg11_lrn_bn", "A-LRN", True, **kwargs)


@register_model("vgg13", head="classifier.6", weights="VGG13_Weights.IMAGENET1K_V1")
@_with_paper_numbers("B")
def vgg13(**kwargs) -> VGG:
    """VGG-13: configuration B. Keywords: see ``VGG``."""
    return _vgg("vgg13", "B", False, **kwargs)


@register_model("vgg13_bn", head="classifier.6", weights="VGG13_BN_Weights.IMAGENET1K_V1")
@_with_paper_numbers("B")
def vgg13_bn(**kwargs) -> VGG:
    """``vgg13`` with a batch norm after each conv (not in the paper; torchvision's order)."""
    return _vgg("vgg13_bn", "B", True, **kwargs)


@register_model("vgg16_c", head="classifier.6")
@_with_paper_numbers("C")
def vgg16_c(**kwargs) -> VGG:
    """VGG-16 with three 1x1 convs: configuration C. Keywords: see ``VGG``."""
    return _vgg("vgg16_c", "C", False, **kwargs)


@register_model("vgg16_c_bn", head="classifier.6")
@_with_paper_numbers("C")
def vgg16_c_bn(**kwargs) -> VGG:
    """``vgg16_c`` with a batch norm after each conv (not in the paper; torchvision's order)."""
    return _vgg("vgg16_c_bn", "C", True, **kwargs)


@register_model("vgg16", head="classifier.6", weights="VGG16_Weights.IMAGENET1K_V1")
@_with_paper_numbers("D")
def vgg16(**kwargs) -> VGG:
    """VGG-16: configuration D. Keywords: see ``VGG``."""
    return _vgg("vgg16", "D", False, **kwargs)


@register_model("vgg16_bn", head="classifier.6", weights="VGG16_BN_Weights.IMAGENET1K_V1")
@_with_paper_numbers("D")
def vgg16_bn(**kwargs) -> VGG:
    """``vgg16`` with a batch norm after each conv (not in the paper; torchvision's order)."""
    return _vgg("vgg16_bn", "D", True, **kwargs)


@register_model("vgg19", head="classifier.6", weights="VGG19_Weights.IMAGENET1K_V1")
@_with_paper_numbers("E")
def vgg19(**kwargs) -> VGG:
    """VGG-19: configuration E. Keywords: see ``VGG``."""
    return _vgg("vgg19", "E", False, **kwargs)


@register_model("vgg19_bn", head="classifier.6", weights="VGG19_BN_Weights.IMAGENET1K_V1")
@_with_paper_numbers("E")
def vgg19_bn(**kwargs) -> VGG:
    """``vgg19`` with a batch norm after each conv (not in the paper; torchvision's order)."""
    return _vgg("vgg19_bn", "E", True, **kwargs)


# %% [markdown]
# Every registered ImageNet VGG gives 1000 scores at 224×224 (on `meta`; code folded):

# %% jupyter={"source_hidden": true}
IMAGENET_NAMES = ["vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16", "vgg19"]
assert sorted(common.list_models("vgg*")) == sorted(IMAGENET_NAMES + [n + "_bn" for n in IMAGENET_NAMES])
assert TABLE_1.keys() == WEIGHT_LAYERS.keys() == TABLE_2.keys()
with torch.device("meta"):
    for name in common.list_models("vgg*"):
        assert common.get_model(name)(torch.empty(2, 3, 224, 224)).shape == (2, 1000), name
print("all 12 ImageNet VGGs: (2, 3, 224, 224) -> (2, 1000)")
common.table([(name, WEIGHT_LAYERS[name], f"{TABLE_2[name]}M") for name in TABLE_1],
             header=("configuration", "weight layers (Table 1)", "parameters (Table 2)"))

# %% [markdown]
# The CIFAR-10 nets, registered the same way, and their size against the ImageNet `_bn` nets
# (code folded):

# %% jupyter={"source_hidden": true}
#@save vgg
@register_model("cifar_vgg11_bn", head="classifier")
def cifar_vgg11_bn(**kwargs) -> CifarVGG:
    """Column A of ``TABLE_1`` with batch norm, for CIFAR-10. Keywords: ``CifarVGG``."""
    return CifarVGG("A", name="cifar_vgg11_bn", **kwargs)


@register_model("cifar_vgg13_bn", head="classifier")
def cifar_vgg13_bn(**kwargs) -> CifarVGG:
    """Column B of ``TABLE_1`` with batch norm, for CIFAR-10. Keywords: ``CifarVGG``."""
    return CifarVGG("B", name="cifar_vgg13_bn", **kwargs)


@register_model("cifar_vgg16_bn", head="classifier")
def cifar_vgg16_bn(**kwargs) -> CifarVGG:
    """Column D of ``TABLE_1`` with batch norm, for CIFAR-10. Keywords: ``CifarVGG``."""
    return CifarVGG("D", name="cifar_vgg16_bn", **kwargs)


@register_model("cifar_vgg19_bn", head="classifier")
def cifar_vgg19_bn(**kwargs) -> CifarVGG:
    """Column E of ``TABLE_1`` with batch norm, for CIFAR-10. Keywords: ``CifarVGG``."""
    return CifarVGG("E", name="cifar_vgg19_bn", **kwargs)

# %% jupyter={"source_hidden": true}
rows = []
with torch.device("meta"):
    imagenet = {"A": "vgg11_bn", "B": "vgg13_bn", "D": "vgg16_bn", "E": "vgg19_bn"}
    for name in common.list_models("cifar_vgg*"):
        m = common.get_model(name)
        assert m(torch.empty(2, 3, 32, 32)).shape == (2, 10), name
        big = common.count_params(common.get_model(imagenet[m.config]))
        rows.append((name, m.config, f"{common.count_params(m) / 1e6:.2f}M",
                     f"{common.count_params(m) / big:.1%}"))
common.table(rows, header=("model", "column", "parameters", "of the ImageNet _bn net's"))

# %% [markdown]
# ## 3 · Inspect: parameters and multiply-adds against the paper
#
# From section 2's plumbing (skipped on a first read): `common.get_model(name)` builds a model
# by name; `TABLE_2` holds Table 2's parameter counts as data.
#
# A summary of VGG-16 (configuration D) grouped by block: almost all of its parameters sit in the
# classifier, most in the first FC layer, `Linear(25088, 4096)`: 512·7·7·4096 weights (the
# folded cell after the summary counts them). Smoke mode runs it at 64×64 (the parameters do
# not depend on the input size; the shapes end in 2×2 instead of 7×7).

# %%
size = 64 if common.SMOKE else 224                   # smoke: a smaller forward pass, same weights
vgg16_model = common.get_model("vgg16", init="normal")     # N(0, 0.01) is the fastest to build
common.summary(vgg16_model, (1, 3, size, size), depth=1)

# %% jupyter={"source_hidden": true}
fc6 = vgg16_model.classifier[0]
conv_params = sum(p.numel() for p in vgg16_model.features.parameters())
assert fc6.weight.numel() == 4096 * 512 * 7 * 7
print(f"first FC layer: {common.count_params(fc6) / 1e6:.1f}M parameters, "
      f"all {WEIGHT_LAYERS['D'] - 3} conv layers: {conv_params / 1e6:.1f}M, "
      f"share of the classifier: {common.count_params(vgg16_model.classifier) / common.count_params(vgg16_model):.0%}")
del vgg16_model, fc6

# %% [markdown]
# Table 2 against our counts, and our multiply-adds against torchvision's documented ones.
#
# <details><summary>The tolerances, and where torchvision's numbers come from (click to
# unfold)</summary>
#
# **Table 2** rounds to whole millions (`TABLE_2`, section 2's plumbing), so we allow half a
# million either way: a relative tolerance of 0.5/133 to 0.5/144 per row. A-LRN shares A's count
# (LRN has no parameters; Table 2 lists "A, A-LRN" together). The batch-norm twins add 4 numbers
# per channel (2 of them learnable). The paper states no FLOPs: we count multiply-adds at
# 224×224 (`common.count_macs`), and the folded cell checks them against torchvision's
# documented `_ops` (in G, to 3-4 digits) and our parameter counts against its `num_params`,
# exactly; both sit in the `meta` dictionary torchvision attaches to its weights (another use of
# the word "meta").
# </details>

# %%
NAME_OF = {"A": "vgg11", "A-LRN": "vgg11_lrn", "B": "vgg13", "C": "vgg16_c", "D": "vgg16",
           "E": "vgg19"}
params, params_bn, macs = {}, {}, {}
with torch.device("meta"):
    for cfg, name in NAME_OF.items():
        net = common.get_model(name)
        params[cfg] = common.count_params(net)
        params_bn[cfg] = common.count_params(common.get_model(name + "_bn"))
        macs[cfg] = common.count_macs(net, (1, 3, 224, 224))
common.paper_vs_ours(
    [(f"{cfg:5} ({NAME_OF[cfg]})", TABLE_2[cfg] * 1e6, params[cfg], 0.5 / TABLE_2[cfg])
     for cfg in NAME_OF],
    title="Table 2: number of parameters (paper in whole millions, so +/- 0.5M)")
assert params["A-LRN"] == params["A"]

# %% jupyter={"source_hidden": true}
from torchvision.models import get_model_weights

rows = []
for cfg, name in NAME_OF.items():
    documented = None
    if name in ("vgg11", "vgg13", "vgg16", "vgg19"):
        meta = get_model_weights(name).IMAGENET1K_V1.meta
        documented = meta["_ops"] * 1e9
        assert params[cfg] == meta["num_params"]                        # exact
        assert params_bn[cfg] == get_model_weights(name + "_bn").IMAGENET1K_V1.meta["num_params"]
        assert math.isclose(macs[cfg], documented, rel_tol=1e-3)        # 3-4 digits
    rows.append((cfg, name, f"{params[cfg]:,}", f"{params_bn[cfg]:,}", f"{macs[cfg] / 1e9:.2f}G",
                 "(none)" if documented is None else f"{documented / 1e9:.3f}G"))
common.table(rows, header=("column", "ours", "parameters", "with BN", "multiply-adds @224",
                           "torchvision's _ops"))

# %% [markdown]
# Depth costs computation far more than parameters: the added convs run on the large early
# feature maps, while the parameters are dominated by the classifier, the same in every column.
# The 1×1 convs of C are cheap: C costs a little more than B, much less than D.

# %% jupyter={"source_hidden": true}
print(f"from A to E: parameters x{params['E'] / params['A']:.3f}, "
      f"multiply-adds x{macs['E'] / macs['A']:.2f}; C costs x{macs['C'] / macs['B']:.3f} of B, "
      f"x{macs['C'] / macs['D']:.2f} of D")
assert macs["E"] / macs["A"] > 2.5 and params["E"] / params["A"] < 1.1
assert macs["B"] < macs["C"] < macs["D"]

# %% [markdown]
# ## 4 · Check against torchvision
#
# For each of torchvision's eight VGGs: build it with random weights, load its `state_dict()`
# into ours with `strict=True`, and assert equal outputs in eval mode
# (`common.check_against_reference`). That check first gives the reference's batch norms random
# affine parameters and running statistics, on a copy: a default batch norm is the identity in
# eval mode (section 2 showed it), so without that step a BN after the ReLU, or one never
# applied, would pass.
#
# <details><summary><b>How the cell stays fast on a CPU</b> (click to unfold)</summary>
#
# Two things keep this to seconds on a CPU. Building a 138M-parameter model normally spends
# most of its time in the random initialisation; here both models are built on `meta`,
# torchvision's then gets uniform random weights (and random BN statistics) from
# `common.random_reference` (the 124M-parameter classifier, identical in all eight, is drawn
# once and shared), and ours gets memory with `to_empty` and receives the weights through the
# strict load. And in smoke mode the input is 64×64 instead of 224×224: torchvision's
# `AdaptiveAvgPool2d((7, 7))` (and ours) turns the 2×2 feature map into 7×7, so the classifier
# and every weight are still exercised.
# </details>

# %% jupyter={"source_hidden": true}
shared = {}            # tensors of the same name and shape (the classifier above all): drawn once


def random_reference(name: str, seed: int) -> nn.Module:
    """torchvision's model with uniform random weights and random BN statistics, built fast."""
    return common.random_reference(getattr(torchvision.models, name), seed=seed, reuse=shared)


def empty_ours(name: str) -> nn.Module:
    with torch.device("meta"):
        ours = common.get_model(name)
    return ours.to_empty(device="cpu")                            # the strict load fills it


# %%
size = 64 if common.SMOKE else 224                    # smoke: a smaller input, same check
max_diff = {}
for i, name in enumerate(["vgg11", "vgg11_bn", "vgg13", "vgg13_bn",
                          "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]):
    reference = random_reference(name, seed=i)
    ours = empty_ours(name)
    max_diff[name] = common.check_against_reference(ours, reference, input_size=(2, 3, size, size),
                                                    verbose=False)
    print(f"{name:9} strict load OK, outputs equal at {size}x{size}, "
          f"max |ours - torchvision| = {max_diff[name]:.1e}")
    del reference, ours
assert len(max_diff) == 8 and all(d <= 1e-4 for d in max_diff.values())
print(f"8 models, strict load and equal outputs; largest difference {max(max_diff.values()):.1e}")

# %% [markdown]
# **Real weights, real photo.** Where the official weights can be downloaded (Colab), we load
# torchvision's VGG-16 ImageNet weights into **our** model and classify a photo that ships with scikit-learn. Offline (the tests),
# the cell says so and moves on.

# %% jupyter={"source_hidden": true}
from sklearn.datasets import load_sample_image
from torchvision.models import VGG16_Weights

weights = VGG16_Weights.IMAGENET1K_V1
photo = torch.tensor(load_sample_image("flower.jpg")).permute(2, 0, 1)      # uint8 (3, H, W)
batch = weights.transforms()(photo).unsqueeze(0)     # resize 256, centre crop 224, normalise
assert batch.shape == (1, 3, 224, 224)
pretrained = None
if common.OFFLINE:
    print("Offline (IMAGENET5_OFFLINE=1): the ImageNet weights cannot be downloaded, so this "
          "cell stops here. On Colab it loads them into our VGG-16 and classifies the photo.")
else:
    try:
        state = weights.get_state_dict(progress=True)
    except Exception as err:                          # no internet, a proxy, ...
        print(f"Could not download {weights.url} ({type(err).__name__}: {err}); moving on.")
    else:
        pretrained = empty_ours("vgg16")
        pretrained.load_state_dict(state, strict=True)
        with torch.no_grad():
            probs = pretrained.eval()(batch).softmax(1)[0]
        plt.figure(figsize=(4, 3))
        plt.imshow(photo.permute(1, 2, 0))
        plt.axis("off")
        plt.show()
        for p, i in zip(*probs.topk(5)):
            print(f"{p:6.1%}  {weights.meta['categories'][i]}")

# %% [markdown]
# ## 5 · Train on CIFAR-10
#
# The paper trains on ImageNet only (its recipe: the reference table, and "Going deeper · The
# recipes"). Our CIFAR-10 recipe, each value's source in `CIFAR_RECIPE.table()`: the paper's
# momentum and weight decay (sec. 3.1); lr 0.1 (not 10⁻²: our nets have batch norm) divided by
# 10 after epochs 150 and 250 of 350, batch 128, padded crops and flips, from
# kuangliu/pytorch-cifar. Beside the result: **92.64%** for "VGG16" from the README of
# [kuangliu/pytorch-cifar](https://github.com/kuangliu/pytorch-cifar) (a GitHub repository, not a
# peer-reviewed paper), which does not say which recipe produced it: a rough reference point.
#
# **The trainer.** `common.fit(model, data, recipe)` is the course's training loop (notebook 00
# writes its heart by hand): the recipe's optimizer and schedule, cross-entropy, bfloat16 where
# the hardware computes it natively, and after every epoch the validation numbers (on 5k images
# held out of the 50k; `val_fraction=0` trains on all), the history and a checkpoint.
# `common.train_run` seeds, builds the registered model, names its run folder after the model,
# recipe and data, and calls `fit(..., resume=True)`: re-running the cell resumes or reloads the
# run; editing a hyperparameter starts a new one. Smoke mode (the tests) trains a quarter-width
# `cifar_vgg11_bn` for two epochs on the offline stand-in (handwritten digits); quick mode, a
# quarter-width `cifar_vgg16_bn` on a subset.
#
# **After a disconnect**, re-run the notebook from the top: this training resumes from its last
# finished epoch (on Colab, if `KEEP_ON_DRIVE` was on in the set-up cell).

# %%
data = common.load_data("cifar10")        # 45k train / 5k val / 10k test; val_fraction=0: all 50k

CIFAR_RECIPE = common.Recipe(
    epochs=350, batch_size=128, lr=0.1, momentum=0.9, nesterov=False, weight_decay=5e-4,
    schedule="multistep", milestones=(150, 250), gamma=0.1, augment=True,
    sources={"epochs": "ours: kuangliu/pytorch-cifar README, Apr 2017 - Nov 2020: epochs [0, 350)",
             "lr": "ours: that README's 0.1 for [0, 150); the paper's 10^-2 had no BN",
             "milestones": "ours: that README's 0.01 from 150, 0.001 from 250",
             "gamma": "paper sec. 3.1: a factor of 10 (the README's steps too)",
             "momentum": "paper sec. 3.1: 0.9 (kuangliu main.py since Apr 2017)",
             "weight_decay": "paper sec. 3.1: 5*10^-4 (kuangliu main.py since Apr 2017)",
             "augment": "kuangliu main.py: RandomCrop(32, padding=4), RandomHorizontalFlip",
             "batch_size": "kuangliu main.py: 128 in every version (paper: 256, ImageNet)",
             "nesterov": "kuangliu main.py: plain momentum"})
MODEL = common.by_mode("cifar_vgg16_bn", smoke="cifar_vgg11_bn", what="model trained",
                       why="the tests: a shallower net, seconds on a CPU")
WIDTH = common.by_mode(1.0, quick=0.25, what="width (fraction of the paper's channels)",
                       why="a quarter of the channels: minutes on a CPU instead of an hour")
# kuangliu/pytorch-cifar README, "VGG16", since 24 Jan 2017: recipe not stated (Going deeper)
REFERENCE_ACC = {"cifar_vgg16_bn": 0.9264}
CIFAR_RECIPE.table()


# %%
cifar_model, history = common.train_run("01_vgg", MODEL, CIFAR_RECIPE, data, width=WIDTH)
show_curves(common.plot_histories({MODEL: history}, metrics=("train_loss", "val_loss", "val_acc"),
                                  show=False))

# %% [markdown]
# The final number, on the test split (used once, at the end), beside the reference. Under
# the tests it is a digits number after two epochs of a narrow net: it says the pipeline runs,
# nothing about CIFAR-10.

# %% jupyter={"source_hidden": true}
test = common.evaluate(cifar_model, data, "test")
reference = REFERENCE_ACC.get(MODEL) if WIDTH == 1.0 else None
print(f"{MODEL}: test accuracy {test['acc']:.2%} on {data.description}")
print(f"reference: {'not available for ' + MODEL if reference is None else f'{reference:.2%}'}"
      " (kuangliu/pytorch-cifar README, VGG16, CIFAR-10 test set; its recipe is not stated)")
why = common.caveats(data, history) + ([f"a narrow net (width {WIDTH})"] if WIDTH != 1 else [])
if why:
    print("Not comparable: " + "; ".join(why) + ".")
assert 0 <= test["acc"] <= 1 and math.isfinite(test["loss"])

# %% [markdown]
# ## 6 · A small experiment: depth without batch norm, and why the paper started from net A
#
# Section 3.1: "bad initialisation can stall learning due to the instability of gradient in
# deep nets. To circumvent this problem, we began with training the configuration A ...,
# shallow enough to be trained with random initialisation." The failure is the one people still
# hit when they write VGG-16 without BN: the loss sits at $\ln 10 \approx 2.303$ and the
# accuracy at 10%, chance on 10 classes.
#
# **Why.** Each conv + ReLU multiplies the signal's standard deviation by about
# $\sigma\sqrt{n/2}$, far below 1 for $\sigma = 0.01$ (section 2, "Initialisation"): eight convs
# (A) shrink it a lot, thirteen (D) far more, until the output no longer depends on the input and
# no gradient reaches the first layers. The nets here are narrow (a quarter of the channels, 16
# to 128, seconds to run), so their fan-in is smaller and $\sigma = 0.01$ shrinks the signal even
# faster than at the paper's width. `NAIVE_STD` is the naive $\sigma$ (exercise 4 changes it).
#
# **Part 1**, no training: `signal_at_init` (later notebooks reuse it) pushes one batch through
# each net at initialisation and records the standard deviation after every conv + ReLU, the
# std of the logits and the gradient that reaches the first conv. The check tests the
# explanation itself: between two convs of one stage, the measured factor is $\sigma\sqrt{n/2}$
# computed from the layer's own weights, within a factor of 2.
#
# <details><summary><b>Why this section runs on one thread</b> (click to unfold)</summary>
#
# A CPU detail: the naive nets' activations get so small that they fall into the slow
# "denormal" floating-point range, which can make a run 20× slower. `torch.set_flush_denormal`
# rounds them to zero, but only on the thread that calls it, so this section runs on one thread,
# which is plenty for nets this small. Both settings are restored at the end.
# </details>

# %%
WIDTH = 0.25                                        # 16, 32, 64, 128, 128 channels
NAIVE_STD = 0.01                                    # AlexNet's; sec. 3.1 read literally: 0.1
NAIVE_A, NAIVE_D = f"A (11), N(0, {NAIVE_STD}²)", f"D (16), N(0, {NAIVE_STD}²)"
VARIANTS = {                                        # label: (config, batch norm, init)
    NAIVE_A: ("A", False, "normal"),
    NAIVE_D: ("D", False, "normal"),
    "A (11), He (torchvision)": ("A", False, "kaiming"),
    "D (16), He (torchvision)": ("D", False, "kaiming"),
    "D (16), batch norm": ("D", True, "kaiming"),
}

# %% jupyter={"source_hidden": true}
THREADS = torch.get_num_threads()
torch.set_num_threads(1)
torch.set_flush_denormal(True)


def make_variant(label: str) -> CifarVGG:
    config, bn, init = VARIANTS[label]
    torch.manual_seed(0)
    return CifarVGG(config, batch_norm=bn, num_classes=data.num_classes, width=WIDTH, init=init,
                    init_std=NAIVE_STD, name=label)


# %%
def signal_at_init(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """One forward/backward at initialisation: std after every ReLU, std of the logits, the norm
    of the gradient that reaches the first conv, and for each conv that directly follows another
    (same stage) the measured factor between their outputs and the predicted sigma * sqrt(n/2)."""
    model.to(x.device)
    stds = []
    # The ReLUs work in place: the statistic is taken inside the hook, before anything else
    # can overwrite the tensor (storing `out` and reading it later would be fragile).
    hooks = [m.register_forward_hook(lambda mod, inp, out: stds.append(out.detach().std().item()))
             for m in model.features if isinstance(m, nn.ReLU)]
    model.train()
    logits = model(x)
    F.cross_entropy(logits, y).backward()
    for h in hooks:
        h.remove()
    layers = list(model.features)
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    factors = []                                    # (measured, predicted) per conv pair
    for k in range(len(convs) - 1):
        if not any(isinstance(m, (nn.MaxPool2d, nn.BatchNorm2d))
                   for m in layers[convs[k]:convs[k + 1]]):
            w = layers[convs[k + 1]].weight
            factors.append((stds[k + 1] / stds[k], w.std().item() * math.sqrt(w[0].numel() / 2)))
    return {"stds": stds, "logits": logits.detach().std().item(),
            "grad": layers[convs[0]].weight.grad.norm().item(), "factors": factors}


# %%
xb, yb = next(data.batches("train", 64, shuffle=True, generator=torch.Generator().manual_seed(0)))
signal = {label: signal_at_init(make_variant(label), xb, yb) for label in VARIANTS}
for label, s in signal.items():                     # the explanation, checked for every BN-free net
    for measured, predicted in s["factors"]:
        assert 0.5 < measured / predicted < 2, (label, measured, predicted)

# %% jupyter={"source_hidden": true}
fig, ax = plt.subplots(figsize=(7, 3.4))
for label, s in signal.items():
    ax.semilogy(range(1, len(s["stds"]) + 1), s["stds"], marker=".", label=label)
ax.set(xlabel="conv layer (after its ReLU)", ylabel="std of the activations")
ax.set_title("signal at initialisation, one batch", fontsize=10)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()
common.table([(label, f"{s['logits']:.2e}", f"{s['grad']:.2e}",
               ", ".join(f"{p:.2f}" for _, p in s["factors"]) or "(BN)")
              for label, s in signal.items()],
             header=("net", "std of logits", "|grad| at first conv",
                     "sigma·sqrt(n/2), conv to conv within a stage"))

# %% [markdown]
# **Part 2**, training: the five nets, and the paper's own procedure: A trained first (with He
# init, in case the naive init stalls even A at this width), then D with its first four convs
# (our reading of which four: section 2) and its classifier copied from it (`init_from_net_a`),
# its other nine convs random $\mathcal{N}(0, \sigma^2)$. The paper's learning rate, momentum
# and weight decay; our batch size (32) and length (20 epochs, two drops), for a small data set.
# Under the tests: two epochs of 512 images, enough to see a net that ignores its input sit at
# $\ln 10$. Quick mode (`IMAGENET5_QUICK=1`) trains each long enough to see which ones learn.
#
# **After a disconnect**, re-run the notebook from the top: this training resumes from its last
# finished epoch (on Colab, if `KEEP_ON_DRIVE` was on in the set-up cell).

# %%
EXPERIMENT_RECIPE = common.Recipe(
    epochs=20, batch_size=32, lr=1e-2, momentum=0.9, weight_decay=5e-4, schedule="multistep",
    milestones=(10, 15), gamma=0.1, augment=True,
    sources={"lr": "sec. 3.1: initially 10^-2", "momentum": "sec. 3.1",
             "weight_decay": "sec. 3.1", "gamma": "sec. 3.1: a factor of 10",
             "epochs": "ours: a small experiment", "batch_size": "ours: more steps on small data",
             "milestones": "ours: two drops, at 1/2 and 3/4 of training"})

# %% jupyter={"source_hidden": true}
def train_variant(label: str, model: nn.Module):
    common.seed_everything(0)
    h = common.fit(model, data, EXPERIMENT_RECIPE,
                   run_dir=common.run_dir_for("01_vgg", "depth-" + label.replace(" ", ""),
                                              EXPERIMENT_RECIPE, data, width=WIDTH),
                   resume=True, verbose=False)
    return model, h

# %%
runs, nets = {}, {}
for label in VARIANTS:
    nets[label], runs[label] = train_variant(label, make_variant(label))
FROM_A = f"D (16), from trained A, rest N(0, {NAIVE_STD}²)"
from_a = init_from_net_a(make_variant(NAIVE_D), nets["A (11), He (torchvision)"])
_, runs[FROM_A] = train_variant(FROM_A, from_a)
torch.set_flush_denormal(False)
torch.set_num_threads(THREADS)

# %% jupyter={"source_hidden": true}
show_curves(common.plot_histories(runs, metrics=("train_loss", "val_acc"), show=False))
LN10 = math.log(10)
common.table([(label, f"{h['train_loss'][0]:.4f}", f"{h['train_loss'][-1]:.4f}",
               "yes" if all(abs(v - LN10) < 0.01 for v in h["train_loss"]) else "no",
               f"{h['val_acc'][-1]:.1%}") for label, h in runs.items()],
             header=("net", "train loss, first epoch", "last epoch",
                     "stayed at ln 10 (±0.01)?", "val acc, last epoch"))

# %% [markdown]
# **What to look for.** Part 1 predicts Part 2: a net whose logits barely depend on its input,
# and whose first layer gets no gradient, has nothing to learn from; its loss stays at $\ln 10$
# (the table's "stayed at ln 10" column). He init and batch norm both give D a gradient to learn
# from. Whether the naive A trains depends on the width (a quarter of the paper's fan-in here).
# The from-A run is the instructive one: four trained layers from A do not help if the nine
# random layers between them still shrink the signal to nothing. The paper's procedure worked at
# full width with its own random init, whose scale the text leaves ambiguous (exercise 4 tries
# the other reading; exercise 5 the paper's later Glorot note). One seed per net: the table
# separates "learns" from "stuck", not close accuracies ("Going deeper · How many seeds").

# %% [markdown]
# ## 7 · Hurdles: the bugs people make in VGG, and which check catches them
#
# **1. Stages as sub-modules.** Building `features` as a `Sequential` of per-stage
# `Sequential`s reads nicely, but renames every weight (`features.0.0.weight` instead of
# `features.0.weight`). The strict load of section 4 refuses it, and says which names differ.

# %%
nested = nn.Sequential(*[nn.Sequential(*stage(c_in, specs)[0]) for c_in, specs in
                         zip([3, 64, 128, 256, 512], TABLE_1["A"])])
try:
    common.inspection.load_state_dict_strict(
        nested, make_features("A").state_dict(), "torchvision-style features")
except ValueError as err:
    print("strict load catches it:", str(err)[:150], "...")
else:
    raise AssertionError("nested stages loaded")

# %% [markdown]
# **2. Batch norm after the ReLU.** `conv, ReLU, BN` instead of `conv, BN, ReLU` shifts every
# index (`features.2` becomes the BN): the strict load fails again. Had the names matched, only
# the output comparison would have seen it, and it does, because `check_against_reference`
# gives the reference's batch norms random statistics first (with default ones, a BN in eval
# mode is the identity wherever it sits).
#
# **3. A soft-max inside the model.** Appending `nn.Softmax` adds no parameter, so the strict
# load passes, and the net still trains, badly (`nn.CrossEntropyLoss` applies log-soft-max
# itself). The output comparison with torchvision catches it.

# %%
class SoftmaxVGG(VGG):
    def forward(self, x):
        return super().forward(x).softmax(1)           # the bug


reference = random_reference("vgg11", seed=0)
with torch.device("meta"):
    bad = SoftmaxVGG("A")
try:
    common.check_against_reference(bad.to_empty(device="cpu"), reference, input_size=(1, 3, 32, 32),
                                    verbose=False)
except AssertionError:
    print("strict load passes; the output comparison catches the soft-max")
else:
    raise AssertionError("the soft-max went unnoticed")
del reference, bad

# %% [markdown]
# **4. LRN with AlexNet's α passed as is.** PyTorch's `LocalResponseNorm` averages the squares
# where AlexNet sums them: `alpha=1e-4` is five times too weak. Caught by the check against the
# written-out formula (section 2, the LRN block).
#
# **5. A classifier tied to one input size.** `Flatten` straight into `Linear(25088, 4096)`
# (no adaptive pool) only accepts 224×224. Our ImageNet VGG keeps torchvision's adaptive pool,
# the CIFAR net pools globally: section 2's checks run them at 32, 48×40, 64 and 97 pixels.
# (A sixth, for dense evaluation, is in "Going deeper · Dense evaluation".)
#
# <details><summary><b>More to watch for</b> (click to unfold)</summary>
#
# - **Comparing in train mode.** Dropout (and BN's batch statistics) make two identical nets
#   disagree: `check_against_reference` puts both in `eval()`.
# - **Net A's first four conv layers copied into the deeper net's first four.** The shapes do
#   not even fit (A's second conv is 64→128, D's is 64→64); the fourth is a choice (section 2
#   lists the candidates). And "the intermediate layers were initialised randomly" means all of
#   them, not only Table 1's bold layers. `init_from_net_a` raises on a shape mismatch.
# - **The "10⁻² variance" read as std 0.01, or the reverse.** The two differ by 10× per layer
#   (by $10^{13}$ over D's 13 convs); `init_weights_(..., "normal", std=...)` makes the choice
#   explicit.
# - **Normalisation of the input.** The paper subtracts the mean RGB only; torchvision's
#   weights expect its mean *and* std normalisation (`weights.transforms()`).
# - **Counting parameters of the `_bn` nets as the paper's.** Table 2 has no BN.
# </details>
#
# ## 8 · Exercises
#
# ### Write it yourself
#
# Checked by `common.exercises.check`, in section 2 before the block each builds:
# [Write it yourself: a stage](#try-stage) and
# [Write it yourself: the features](#try-features).
#
# ### Change, re-run, look
#
# Exercises 1-3 compare close variants: Table 3's ImageNet gaps are small (top-1: A-LRN vs A 0.1
# points, B to C 0.6, C to D 1.1), so read "Going deeper · How many seeds" first.
#
# 1. **Depth on CIFAR-10.** Train `cifar_vgg11_bn` to `cifar_vgg19_bn` with `CIFAR_RECIPE`. Does
#    the error fall with depth, and saturate at 19, as in Table 3 on ImageNet?
# 2. **LRN.** Train `CifarVGG("A-LRN")` beside `CifarVGG("A")` (both with and without BN). The
#    paper found that LRN "does not improve" net A (Table 3: 29.7% vs 29.6% top-1). One seed
#    per variant resolves a 0.1-point gap only if your measured $\sigma$ is below 0.035 points
#    ($d \ge \sqrt{8}\,\sigma$): to show "no effect", report the difference with its standard
#    error over several seeds.
# 3. **1×1 vs 3×3.** Train `CifarVGG("C")` beside `CifarVGG("D")`: same depth, C's three extra
#    layers are 1×1. Table 3 has C between B and D. And C's multiply-adds?
# 4. **The variance.** Re-run the experiment of section 6 with `NAIVE_STD = 0.1` (the paper's
#    text, "10⁻² variance", read literally) instead of 0.01. What do the signal plot and the
#    table of factors look like now? Which nets learn?
# 5. **Glorot.** Add `"D (16), Glorot": ("D", False, "glorot")` to `VARIANTS`. The paper's note
#    says Glorot's initialisation makes pre-training unnecessary. At this scale?
# 6. **Where the parameters are.** Replace the ImageNet classifier by global average pooling and
#    one `Linear(512, 1000)` (as the CIFAR net does). How many parameters are left of VGG-16's
#    138M, and how many multiply-adds?
# 7. **Multi-scale dense evaluation (Table 4)**, after "Going deeper · Dense evaluation": on
#    Colab, with the downloaded weights, average the soft-max of `dense.scores` over Q = 256,
#    384, 512 for a few photos, against the single 224 centre crop.

# %% [markdown]
# ## Going deeper · Dense evaluation: the FC layers as convolutions (the paper's section 3.2)
#
# | Detail | Value | Where |
# |---|---|---|
# | Dense evaluation | rescale to test scale Q; first FC → 7×7 conv, last two FC → 1×1 convs; apply to the whole image; class score map spatially averaged; average soft-max of image and its flip | sec. 3.2 |
# | Multi-crop | 50 crops per scale (5×5 grid, 2 flips), 150 crops over 3 scales | sec. 3.2 |
#
# At test time the paper does not crop. "The fully-connected layers are first converted to
# convolutional layers (the first FC layer to a 7 × 7 conv. layer, the last two FC layers to
# 1 × 1 conv. layers). The resulting fully-convolutional net is then applied to the whole
# (uncropped) image. The result is a class score map ... Finally, to obtain a fixed-size vector
# of class scores for the image, the class score map is spatially averaged (sum-pooled)."
#
# The conversion is a reshape: `Linear(25088, 4096)` reads the 512×7×7 map flattened in
# (channel, row, column) order, so its weight viewed as `(4096, 512, 7, 7)` *is* a 7×7
# convolution. `Linear(4096, 4096)` is a 1×1 convolution with weight `(4096, 4096, 1, 1)`.
# Dropout disappears (it is the identity at test time).

# %%
#@save vgg
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


# %% [markdown]
# Check: at 224×224 the score map is 1×1 and equals the classifier's output; on a 384×384
# image it is 6×6 (384/32 = 12 positions of the feature map, minus the 7×7 window plus one).
# We use the downloaded VGG-16 where there is one (Colab), else VGG-11 with random weights:
# the identity holds for any weights. In smoke mode the larger image is 256×320 instead.

# %%
trained = pretrained if pretrained is not None else common.get_model("vgg11")   # He init
trained.eval()
dense = FullyConvolutionalVGG(trained).eval()
g = torch.Generator().manual_seed(0)
x224 = torch.randn(2, 3, 224, 224, generator=g)
with torch.no_grad():
    score_map = dense(x224)
    assert score_map.shape == (2, 1000, 1, 1)
    torch.testing.assert_close(score_map.flatten(1), trained(x224), atol=1e-4, rtol=1e-4)
    diff224 = (score_map.flatten(1) - trained(x224)).abs().max().item()
    h, w = (256, 320) if common.SMOKE else (384, 384)
    big = torch.randn(1, 3, h, w, generator=g)
    big_map = dense(big)
    assert big_map.shape == (1, 1000, h // 32 - 6, w // 32 - 6)
print(f"224x224: dense == classifier (max difference {diff224:.1e}, "
      f"scores up to {score_map.abs().max():.2f}); "
      f"{h}x{w}: a {tuple(big_map.shape[2:])} class score map")

# %% [markdown]
# On a real image the map shows *where* the net sees each class. With the downloaded weights
# (Colab), the photo is rescaled isotropically to a smallest side Q = 384 (one of the paper's
# test scales) and the map of the top class is drawn; the score is the map's average, and, as
# in the paper, the soft-max of the image and its horizontal flip are averaged. Offline, the
# random net's map is drawn only to show the shapes.

# %%
import torch.nn.functional as F

Q = 256 if common.SMOKE or pretrained is None else 384          # test scale (sec. 3.2)
img = photo.float().unsqueeze(0) / 255
img = F.interpolate(img, scale_factor=Q / min(img.shape[-2:]), mode="bilinear",
                    antialias=True, align_corners=False)        # isotropic: smallest side = Q
mean = torch.tensor(weights.transforms().mean).view(1, 3, 1, 1)
std = torch.tensor(weights.transforms().std).view(1, 3, 1, 1)
img = (img - mean) / std
with torch.no_grad():
    smap = dense(img)                                            # the class score map
    probs = (smap.mean((2, 3)).softmax(1) + dense.scores(img.flip(-1)).softmax(1)) / 2  # + flip
top = probs[0].argmax().item()
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].imshow(photo.permute(1, 2, 0))
axes[0].set_title(f"input, rescaled to Q = {Q}: {tuple(img.shape[-2:])}", fontsize=9)
im = axes[1].imshow(smap[0, top], cmap="viridis")
axes[1].set_title(f"score map of class {top} "
                  f"({weights.meta['categories'][top]}), {tuple(smap.shape[-2:])}", fontsize=9)
plt.colorbar(im, ax=axes[1])
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()
assert smap.shape[-2:] == (img.shape[-2] // 32 - 6, img.shape[-1] // 32 - 6)
print(("pretrained VGG-16" if pretrained is not None else "random VGG-11 (offline: shapes only)")
      + f": top class {weights.meta['categories'][top]!r} with p = {probs[0, top]:.3f}")

# %% [markdown]
# Note the difference from simply feeding a large image to torchvision's model: there,
# `AdaptiveAvgPool2d((7, 7))` *resamples* the 12×12 feature map to 7×7 so the FC layers fit,
# which is not what the paper does. Dense evaluation slides the classifier over every 7×7
# window of the map and averages the scores.

# %%
with torch.no_grad():
    resampled = trained(big)
    slid = big_map.mean((2, 3))                        # dense.scores(big), computed above
print(f"at {h}x{w}: adaptive-pool scores vs dense scores differ by up to "
      f"{(resampled - slid).abs().max():.2e} (same at 224: {diff224:.1e})")
del trained, dense, pretrained

# %% [markdown]
# **A hurdle of dense evaluation: FC layers reshaped in the wrong order.** Weights that came
# from a channels-last framework (TensorFlow, Keras) flatten the 7×7×512 map as (row, column,
# channel): reshaping them as `(4096, 512, 7, 7)` gives a net that runs, at any size, and is
# wrong. The check "dense at 224 equals the classifier" catches the wrong order.

# %%
small = VGG("A", num_classes=10).eval()           # torchvision's init: outputs of a sane size
fc6 = small.classifier[0]
dense_ok = FullyConvolutionalVGG(small).eval()
dense_bad = FullyConvolutionalVGG(small).eval()
with torch.no_grad():                              # read the weight as (out, 7, 7, 512): the bug
    dense_bad.fc6.weight.copy_(fc6.weight.reshape(-1, 7, 7, 512).permute(0, 3, 1, 2))
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(dense_ok.scores(x), small(x), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(dense_bad.scores(x), small(x), atol=1e-4, rtol=1e-4)
print("wrong reshape order: runs fine, caught by 'dense == classifier at 224'")
del small, fc6, dense_ok, dense_bad

# %% [markdown]
# ## Going deeper · The recipes: the paper's ImageNet recipe, and kuangliu/pytorch-cifar's
#
# | Detail | Value | Where |
# |---|---|---|
# | Objective | multinomial logistic regression (soft-max cross-entropy), mini-batch SGD with momentum | sec. 3.1 |
# | Batch size / momentum | 256 / 0.9 | sec. 3.1 |
# | Weight decay | L2 multiplier 5·10⁻⁴ | sec. 3.1 |
# | Learning rate | 10⁻², divided by 10 when the validation accuracy stopped improving; 3 drops in total | sec. 3.1 |
# | Length | 370K iterations (74 epochs) | sec. 3.1 |
# | Augmentation | random 224 crop (one per image per iteration), horizontal flip, random RGB colour shift (AlexNet's) | sec. 3.1 |
# | Training scale S | fixed S = 256 or 384 (384 initialised from 256, lr 10⁻³), or multi-scale S ∈ [256, 512] ("scale jittering"), fine-tuned from S = 384 | sec. 3.1 |
# | Hardware | Caffe (C++), 4 NVIDIA Titan Black GPUs, 2-3 weeks per net | sec. 3.3 |
#
# **The paper's own recipe** (section 3.1) is for ImageNet, and we keep it here for reference:
# it is not what we train. Its learning-rate drops follow the validation accuracy ("decreased by
# a factor of 10 when the validation set accuracy stopped improving", 3 times), so the paper
# gives no fixed milestones.

# %%
IMAGENET_RECIPE = common.Recipe(
    epochs=74, batch_size=256, lr=1e-2, momentum=0.9, weight_decay=5e-4, schedule="multistep",
    milestones=(), gamma=0.1, augment=True,
    sources={"epochs": "sec. 3.1: 370K iterations (74 epochs)",
             "batch_size": "sec. 3.1", "lr": "sec. 3.1: initially 10^-2", "momentum": "sec. 3.1",
             "weight_decay": "sec. 3.1: L2 penalty multiplier 5*10^-4",
             "milestones": "sec. 3.1: /10 when val. accuracy stopped improving, 3 times (not fixed)",
             "gamma": "sec. 3.1: a factor of 10",
             "augment": "sec. 3.1: random 224 crops of rescaled images, flips, RGB colour shift"})
# 370K iterations x 256 images / 74 epochs = the ImageNet training set, 1.28M images (sec. 4: "1.3M")
assert round(370_000 * 256 / 74 / 1e6, 2) == 1.28
IMAGENET_RECIPE.table()

# %% [markdown]
# **Where our CIFAR-10 recipe comes from, and what 92.64% is.** SGD with momentum 0.9 and weight
# decay 5·10⁻⁴ are the paper's own values (sec. 3.1), and those of kuangliu/pytorch-cifar's
# `main.py` since April 2017; the learning rate 0.1, divided by 10 after epochs 150 and 250, 350
# epochs, is the schedule kuangliu's README stated from April 2017 to November 2020 (applied
# there by hand); batch 128 is kuangliu's in every version of `main.py` (the paper's 256 was for
# ImageNet).
#
# The README lists **92.64%** CIFAR-10 test accuracy for "VGG16" (its head differs from ours
# only away from 32×32, below). It does **not** say which recipe produced it, and it is not known
# to come from the recipe above: the number entered the README on 24 January 2017, when
# `main.py` trained with Adam (lr 10⁻³, weight decay 10⁻⁴; two days earlier, with SGD at lr
# 10⁻³); lr 0.1 with SGD, momentum 0.9 and weight decay 5·10⁻⁴, and the step schedule, came in
# April 2017. The `main.py` of January 2017 also reported the best test accuracy over all
# epochs, on test images with the training augmentation. The notes (`paper_notes/vgg.md`) give
# the history commit by commit.
#
# **kuangliu/pytorch-cifar's head, beside ours.** Its `models/vgg.py` (its head unchanged since
# 22 January 2017) builds the conv stages of A, B, D or E with batch norm, appends
# `nn.AvgPool2d(kernel_size=1, stride=1)` and flattens into `nn.Linear(512, 10)`. A 1×1 average
# pool with stride 1 returns its input: the head is a plain flatten, which equals our global
# pooling only where the map is 1×1, that is at 32×32. The cell rebuilds that head around our
# (narrow) stages and checks all three statements.

# %%
features = make_features(scale_config("D", 0.25), batch_norm=True).eval()   # 128 channels at the end
kuangliu_head = nn.AvgPool2d(kernel_size=1, stride=1)
ours_net = CifarVGG("D", width=0.25).eval()
ours_net.features.load_state_dict(features.state_dict())
with torch.no_grad():
    x = torch.randn(2, 3, 32, 32)
    y = torch.randn(2, 128, 4, 4)
    assert torch.equal(kuangliu_head(y), y)                             # the pool is a no-op
    flat = torch.flatten(kuangliu_head(features(x)), 1)
    pooled = torch.flatten(ours_net.avgpool(ours_net.features(x)), 1)
    assert flat.shape == (2, 128) and torch.equal(flat, pooled)         # same at 32x32
    flat64 = torch.flatten(kuangliu_head(features(torch.randn(2, 3, 64, 64))), 1)
    assert flat64.shape == (2, 128 * 2 * 2)         # 4x the inputs its Linear(128, 10) takes
    assert ours_net(torch.randn(2, 3, 64, 64)).shape == (2, 10)
print(f"AvgPool2d(1, 1) is the identity; at 32x32 flatten == global pooling; at 64x64 the "
      f"flatten gives {flat64.shape[1]} features where the linear layer takes 128")
del features, ours_net

# %% [markdown]
# ## Going deeper · How many seeds
#
# Two runs of the same recipe with different seeds differ; a difference between two variants
# means something only when it is larger than that spread. Measure it: train one variant with
# three seeds and take the standard deviation $\sigma$ of the final accuracy. With $n$ seeds per
# variant, the difference of the two means has a standard error of $\sigma\sqrt{2/n}$; a gap $d$
# is resolved (two standard errors) when $n \ge 8\sigma^2/d^2$. So a gap as large as $\sigma$
# needs 8 seeds per variant, a gap of $2\sigma$ two, and one seed per variant resolves nothing
# smaller than about $3\sigma$. Table 3's ImageNet gaps (top-1: A-LRN vs A 0.1 points, B to C
# 0.6, C to D 1.1) say which exercises need many seeds.

# %% [markdown]
# ## Reference · the complete Easter-egg table
#
# Every detail the implementation depends on, its value, and where the paper states it (v6 of
# the arXiv paper). "Not stated" means the paper leaves it open; we say what we chose and why.
# The blocks of section 2 repeat their rows.
#
# | Detail | Value | Where |
# |---|---|---|
# | Input | fixed-size 224×224 RGB crop; only pre-processing: subtract the mean RGB value of the training set | sec. 2.1 |
# | Convolutions | 3×3 (1×1 in configuration C), stride 1, padding 1 for 3×3 ("spatial resolution is preserved") | sec. 2.1 |
# | Padding of the 1×1 convs | 0 (a 1×1 conv keeps the resolution without padding) | follows from sec. 2.1's rule |
# | Pooling | five max-pools, 2×2 window, stride 2, after some of the convs | sec. 2.1, Table 1 |
# | Widths | 64, doubled after each max-pool, up to 512 | sec. 2.2, Table 1 |
# | Configurations | A (11 weight layers: 8 conv + 3 FC), A-LRN (11), B (13), C (16), D (16), E (19 = 16 conv + 3 FC) | sec. 2.2, Table 1 |
# | FC layers | 4096, 4096, 1000, then soft-max; the same in all nets | sec. 2.1 |
# | Non-linearity | ReLU after every hidden layer | sec. 2.1 |
# | LRN | only in A-LRN, after the first conv; "the parameters for the LRN layer are those of (Krizhevsky et al., 2012)": $k=2, n=5, \alpha=10^{-4}, \beta=0.75$ | sec. 2.1; constants: AlexNet paper, sec. 3.3 |
# | LRN after or before the ReLU | after (AlexNet applies it "after applying the ReLU nonlinearity") | not stated in VGG: we follow AlexNet sec. 3.3 |
# | Batch norm | none (BN was published in 2015, after this paper); the `_bn` models put BN after each conv, before the ReLU, as torchvision does | not in the paper: torchvision's `vgg*_bn` |
# | Parameters | Table 2, in whole millions: `TABLE_2` (section 2, plumbing) holds it as data, section 3 checks it | Table 2 |
# | FLOPs | not stated | we count multiply-adds ourselves (section 3) |
# | Objective | multinomial logistic regression (soft-max cross-entropy), mini-batch SGD with momentum | sec. 3.1 |
# | Batch size / momentum | 256 / 0.9 | sec. 3.1 |
# | Weight decay | L2 multiplier 5·10⁻⁴ | sec. 3.1 |
# | Dropout | 0.5, on the first two FC layers | sec. 3.1 |
# | Learning rate | 10⁻², divided by 10 when the validation accuracy stopped improving; 3 drops in total | sec. 3.1 |
# | Length | 370K iterations (74 epochs) | sec. 3.1 |
# | Initialisation | train A from random init; deeper nets get "the first four convolutional layers and the last three fully-connected layers" from A, "the intermediate layers were initialised randomly" (all of them: 9 of D's 13 convs, including the stage-4 and stage-5 convs that A also has); no lower lr for the copied layers | sec. 3.1 |
# | Random init | normal, zero mean, "10⁻² variance" (a std of 0.1 if read literally); biases 0 | sec. 3.1 |
# | Which std: 0.1 or 0.01 | ambiguous. Std 0.01 is AlexNet's ("a zero-mean Gaussian distribution with standard deviation 0.01", Krizhevsky et al. 2012, sec. 5); BVLC Caffe's AlexNet/CaffeNet `train_val.prototxt` use 0.01 for the convs and fc8, 0.005 for fc6 and fc7 (Caffe's Gaussian filler itself defaults to std 1). We expose both (`init_std`) | not stated: we default to 0.01 where a naive init is wanted (section 6) |
# | Glorot init | "after the paper submission we found that it is possible to initialise the weights without pre-training by using the random initialisation procedure of Glorot & Bengio (2010)" | sec. 3.1 |
# | Where A's four convs go in a deeper net | to the deeper net's convs of the same shape, in order. The shapes fix three of them (3→64, 64→128 and 128→256 occur once in every column); the fourth (256→256) fits two convs of D, three of E: we take the same row of Table 1 (stage 3's second conv). Section 2 computes the candidates | not stated: our reading |
# | Augmentation | random 224 crop (one per image per iteration), horizontal flip, random RGB colour shift (AlexNet's) | sec. 3.1 |
# | Training scale S | fixed S = 256 or 384 (384 initialised from 256, lr 10⁻³), or multi-scale S ∈ [256, 512] ("scale jittering"), fine-tuned from S = 384 | sec. 3.1 |
# | Dense evaluation | rescale to test scale Q; first FC → 7×7 conv, last two FC → 1×1 convs; apply to the whole image; class score map spatially averaged; average soft-max of image and its flip | sec. 3.2 |
# | Multi-crop | 50 crops per scale (5×5 grid, 2 flips), 150 crops over 3 scales | sec. 3.2 |
# | Hardware | Caffe (C++), 4 NVIDIA Titan Black GPUs, 2-3 weeks per net | sec. 3.3 |
# | **Egg: torchvision's avgpool** | `AdaptiveAvgPool2d((7, 7))` before the classifier: the identity at 224×224, but at other sizes it *resamples* the feature map to 7×7 so the FC layers fit. The paper instead slides the FC layers over the map (dense evaluation) | not in the paper: torchvision |
# | **Egg: torchvision's init** | He (Kaiming) normal, fan-out, for the convs; N(0, 0.01²) for the FC layers; biases 0 (`torchvision.models.VGG.__init__`). Neither the paper's N(0, "10⁻² variance") nor its Glorot note; section 6 trains D without BN with it | not in the paper: torchvision |
# | **Egg: the CIFAR-10 head** | the paper has no CIFAR-10 experiment. Ours (`cifar_vgg*_bn`): the conv stages of a column of Table 1 with BN, global average pooling, one `Linear(512, 10)`: our choice, it works at any input size. kuangliu/pytorch-cifar's `VGG` (whose README number section 5 cites) has the same stages with BN, then `AvgPool2d(kernel_size=1, stride=1)`, a no-op, and a flatten into `Linear(512, 10)`: the same as ours at 32×32 only ("Going deeper · The recipes" checks both) | not in the paper: ours; kuangliu's `models/vgg.py` |

# %%
print(f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s "
      f"(smoke mode {common.SMOKE}, device {common.pick_device()})")
print(common.mode_report())
