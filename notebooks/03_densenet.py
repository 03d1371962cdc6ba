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
# # 03 · DenseNet: Densely Connected Convolutional Networks
#
# Gao Huang, Zhuang Liu, Laurens van der Maaten, Kilian Q. Weinberger. *Densely Connected
# Convolutional Networks.* CVPR 2017. [arXiv:1608.06993](https://arxiv.org/abs/1608.06993)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/the-imagenet-5/course/blob/main/notebooks/03_densenet.ipynb)
#
# **What you will build**
# - the *dense layer*, which reads every map made before it in its block and adds a few;
# - the *dense block*, and the *transition layer* that shrinks the maps between blocks;
# - `DenseNet` from the paper's tables, checked against them and torchvision; its
#   memory-efficient variant, measured;
# - a CIFAR-10 training with the paper's recipe, and its growth-rate experiment, small.
#
# **Prerequisites:** notebook 02 (ResNet): blocks, batch norm, $x + F(x)$, `common.fit`.
#
# **Run time.** Smoke mode (the tests): well under a minute on a 2-core CPU (docs/speed.md).
# Quick mode: 493 s measured on the quiet 2-core AMD EPYC, two threads (`python
# tools/notebook_times.py`; docs/settings.md); section 5's training 249 s of it, section 6's
# growth study 214 s. Full mode: a GPU, not measured. **First path:** about 44
# minutes of reading (`tools/reading_path.py`, outputs not counted).
#
# <details><summary>Quick mode, measured</summary>
#
# From that run (offline digits set): section 5's DenseNet-BC-100 (k = 12), 10 epochs (a budget
# of 13,440 images): best validation accuracy 0.95, test error 5.02%. Section 6 at L = 40, 8
# epochs each (a budget of 10,752 images): test accuracy 49.8% (k = 6), 86.0% (k = 12), 94.0% (k = 24); parameters
# x 3.85 and x 3.92 per doubling of k. Before issue 32 quick mode ran the growth study at L = 100
# and was stopped after well over half an hour (shared machine); earlier in issue 32, with the
# growth study at 15 epochs: 711 s (quiet, two threads).
# Full mode: the paper's 300 epochs of DenseNet-BC-100 on CIFAR-10, plus two more such runs for
# the growth-rate experiment (`GROWTH_FRACTION` in section 6 shortens them). The modes:
# docs/settings.md.
# </details>

# %%
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

# %%
import time
import matplotlib.pyplot as plt
import torch
import torchvision
from torch import nn

print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"device {common.pick_device()}, smoke mode {common.SMOKE}, offline {common.OFFLINE}")
NOTEBOOK_START = time.perf_counter()

# %% [markdown]
# ## 1 · Reading the paper
#
# Read it in this order (`paper_notes/densenet.md` says what to look for at each step): the
# **abstract** and **conclusion** (sec. 6); **Figures 1-2** (a dense block; three blocks) and
# **Tables 1-3** (the networks, their sizes and errors), then Figures 3-5; **sections 1-2**
# (introduction, related work); **the body**: sections 3 (architecture), 4 (experiments; 4.2
# is our recipe) and 5.
#
# **The key idea.** A ResNet layer *adds* its output to its input,
# $x_\ell = H_\ell(x_{\ell-1}) + x_{\ell-1}$ (Eqn. 1). A DenseNet layer *concatenates*: it
# reads the feature maps of **all** earlier layers of its block, stacked along the channels,
# and adds only $k$ new maps (the *growth rate*), $x_\ell = H_\ell([x_0, \ldots, x_{\ell-1}])$
# (Eqn. 2).
#
# **Why.** In a plain network each layer reads the state from the layer before and writes a
# new one, so it must pass on what later layers still need besides what it adds (sec. 1).
# ResNets keep it by addition, which, the paper argues, "may impede the information flow"
# (sec. 3). In a DenseNet nothing is overwritten: a map computed once is *reused* by every later
# layer of its block (*feature reuse*), so each layer can be very narrow and the network small.
# And every layer gets the loss's gradient through short paths (*implicit deep supervision*,
# sec. 5).
#
# **Three misreadings.** "Every layer connects to every other": only *inside* a dense block, where
# all maps have one size (sec. 3, "Pooling layers"). "Dense means many parameters": the layers are
# narrow; the most compact DenseNets need about a third of a ResNet's parameters for the same
# accuracy (sec. 5, "Model compactness"; Figure 4, middle). "The channels explode": they grow by
# $k$ per layer, linearly; what grows quadratically is the memory of a naive implementation
# (measured below).

# %%
common.block_diagrams(
    dict(layers=["BN, ReLU, 3x3 conv", "BN, ReLU, 3x3 conv"], merge="+",
         output_label="same channels", title="pre-activation ResNet (Eqn. 1)"),
    dict(layers=["BN, ReLU, 1x1 conv, 4k", "BN, ReLU, 3x3 conv, k"], merge="concat",
         output_label="k0 + k channels", input_label="x (k0 channels)",
         title="dense layer with its 1x1 bottleneck (Eqn. 2)"),
    title="Sum vs concatenation: a dense layer appends k new maps to its input")

# %% [markdown]
# ## 2 · Build it, block by block
#
# ### Write it yourself: the dense layer (try it first)
#
# <a id="try-dense-layer"></a>Optional: write the layer of the diagram, then `check` it.
# `MyDenseLayer(in_channels, growth_rate)` gets its block's maps concatenated (one tensor) and
# returns **only its `growth_rate` new maps**: BN, ReLU, a 1×1 conv to "4k feature-maps", BN, ReLU,
# a 3×3 conv to $k$ maps that keeps the size (sec. 3, "Composite function", "Bottleneck layers").
# The block does the concatenating, as in the dense block below: torchvision's interface. Returning
# the concatenation is the other reading of Eqn. 2, but not the interface the course's block
# expects, so the checker reports it.
#
# <details><summary>What <code>check</code> compares (click to unfold)</summary>
#
# `common.exercises.check` builds your block and ours for several cases and compares them,
# stopping at the first difference: does it run; the output shape; the parameters, layer by
# layer; the outputs, with our weights copied into yours and random batch-norm statistics (a
# default batch norm is the identity in eval mode and would hide a misplaced one). Then one
# backward pass: the gradients must agree too (a detached shortcut gives the right outputs and
# cuts them); and a run in bfloat16 (a tensor made without the input's device and dtype fails on
# a GPU). When something differs it says what, in which case, and the likely cause; it names the
# bug when your block behaves exactly like a classic one. Your own attribute names are fine.
# Until you fill in the skeleton, its check cell only says "not done yet".
# </details>

# %%
from common.exercises import check


class MyDenseLayer(nn.Module):
    def __init__(self, in_channels, growth_rate):
        super().__init__()
        # H_l = BN-ReLU-Conv(1x1)-BN-ReLU-Conv(3x3) (DenseNet-B: the 1x1 bottleneck, sec. 3).
        # How many maps does the 1x1 convolution make? ("Bottleneck layers")
        # Biases? Every convolution's output meets a batch norm (here, or in the next layer).
        raise NotImplementedError("write __init__")

    def forward(self, x):
        # x: the concatenation [x_0, ..., x_{l-1}] (Eqn. 2); return the k new maps only
        raise NotImplementedError("write forward")


# %% [markdown]
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# - Pre-activation: each convolution comes *after* its batch norm and ReLU, so the first batch
#   norm has `in_channels` features.
# - The 1×1 convolution outputs `4 * growth_rate` channels, whatever `in_channels` is (not
#   `4 * in_channels`): late in a block it reduces a wide input; only the first layer or two of
#   the first block read fewer than 4k maps.
# - "Each side of the inputs is zero-padded by one pixel" for the 3×3 convolution (sec. 3,
#   "Implementation Details"), so that all the maps of a block can be concatenated.
# </details>

# %%
check("densenet.DenseLayer", MyDenseLayer)

# %% [markdown]
# ### The dense layer
#
# **What the paper says**: rows of the complete Easter-egg table at the end (each detail, its
# value, where it is stated; an **Egg** is a detail the text leaves out or sources disagree on).
#
# | Detail | Value | Where |
# |---|---|---|
# | Dense connectivity | $x_\ell = H_\ell([x_0, \ldots, x_{\ell-1}])$, concatenation along the channels, inside a block | Eqn. (2), sec. 3 "Dense connectivity", Fig. 1 |
# | Composite function $H_\ell$ | BN, then ReLU, then 3×3 conv (pre-activation order, after He et al.'s *Identity mappings* [12]) | sec. 3 "Composite function" |
# | Growth rate $k$ | each $H_\ell$ outputs $k$ maps; layer $\ell$ of a block sees $k_0 + k(\ell - 1)$ | sec. 3 "Growth rate" |
# | Conv bias | none | not stated: BN follows every conv; the authors' code removes the biases, torchvision has none |
#
# **Why: the growth rate.** Each layer reads everything its block has made so far, the
# network's "collective knowledge", and adds $k$ maps of its own: "The growth rate regulates how
# much new information each layer contributes to the global state" (sec. 3, "Growth rate"). So
# layer $\ell$ reads $k_0 + k(\ell - 1)$ maps ($k_0$ enter the block) and writes $k$.
# DenseNet-121's first block (Table 1), each bar coloured by who wrote the maps:

# %%
k0, k, n = 64, 32, 6                       # DenseNet-121's first block (Table 1)
reads = [k0 + k * (l - 1) for l in range(1, n + 1)]       # layer l reads k0 + k(l - 1) maps
print(f"maps each layer reads: {reads}; the block hands on {k0 + n * k} = k0 + {n}k")

# %% jupyter={"source_hidden": true}
fig, ax = plt.subplots(figsize=(8, 2.9))
colours = plt.cm.viridis([i / n for i in range(n + 1)])
for row in range(n + 1):                   # row l: what layer l + 1 reads; last: the block's output
    writers = [("block input", k0)] + [(f"layer {j}", k) for j in range(1, row + 1)]
    left = 0
    for j, (who, width) in enumerate(writers):
        ax.barh(row, width, left=left, color=colours[j], edgecolor="white",
                label=who if row == n else None)
        left += width
ax.set_yticks(range(n + 1), [f"layer {l} reads" for l in range(1, n + 1)] + ["block output"])
ax.invert_yaxis()
ax.set_xlabel("channels")
ax.set_title(f"Each layer reads all earlier maps and adds k = {k} (DenseNet-121, block 1)",
             fontsize=10)
ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
plt.tight_layout()
plt.show()

# %% [markdown]
# **The code** (torchvision's names, so that its weights load into ours). The layer gets the *list*
# of earlier maps; the block keeps it. `bottleneck=True` puts the 1×1 conv first (the paper's
# DenseNet-B); `drop_rate` (sec. 4.2) and `memory_efficient` (below) are off by default. `#@save
# densenet` cells are also written to `common/models/densenet.py` (its imports: folded).

# %% jupyter={"source_hidden": true}
#@save densenet
import contextlib
import re
from collections import OrderedDict
from typing import NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from common.models.registry import check_image_batch, register_model

# %%
#@save densenet
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


# %% [markdown]
# **The check**: $4k$ maps after the 1×1 conv, $k$ out at the same size, all inputs
# concatenated, BN before the conv; without bottleneck, one BN-ReLU-Conv(3×3).

# %%
k, k0 = 12, 24
xs = [torch.randn(2, k0, 16, 16), torch.randn(2, k, 16, 16), torch.randn(2, k, 16, 16)]
layer = DenseLayer(k0 + 2 * k, k).eval()
assert layer.conv1.out_channels == 4 * k and layer.conv1.kernel_size == (1, 1)   # "4k feature-maps"
assert layer.norm1.num_features == k0 + 2 * k          # BN over the input: pre-activation
assert layer.conv2.out_channels == k and layer.conv2.kernel_size == (3, 3)
with torch.no_grad():
    out = layer(xs)
    assert out.shape == (2, k, 16, 16)                  # k new maps, size kept by padding 1
    torch.testing.assert_close(out, layer(torch.cat(xs, 1)))   # the list is concatenated
plain_layer = DenseLayer(k0, k, bottleneck=False)
assert [n for n, _ in plain_layer.named_children()] == ["norm1", "relu1", "conv1"]
assert plain_layer.conv1.kernel_size == (3, 3) and plain_layer(xs[0]).shape == (2, k, 16, 16)
print(f"DenseLayer: {k0 + 2 * k} input maps -> {layer.conv1.out_channels} (1x1) -> {k} (3x3); "
      f"without bottleneck: BN-ReLU-Conv(3x3) only")

# %% [markdown]
# ### Bottleneck and compression: what they save
#
# | Detail | Value | Where |
# |---|---|---|
# | Bottleneck (DenseNet-B) | BN-ReLU-Conv(1×1)-BN-ReLU-Conv(3×3); "each 1×1 convolution produce[s] 4k feature-maps" | sec. 3 "Bottleneck layers" |
# | Compression (DenseNet-C) | a transition after $m$ maps outputs $\lfloor\theta m\rfloor$; $\theta = 0.5$; B and C together: DenseNet-BC | sec. 3 "Compression" |
#
# **Why the bottleneck.** A late layer reads many maps, $c$, but writes only $k$: a 3×3 conv
# costs $9ck$ multiply-adds per pixel (one per weight). The 1×1 conv brings $c$ down to $4k$
# for $4kc$, and the 3×3 conv works on a fixed $4k$: $4k$ per input map instead of $9k$. Counted
# on DenseNet-121's third block, built on the `meta` device (shapes, no data):

# %%
def macs_per_pixel(layer: nn.Module) -> int:
    """Multiply-adds per output pixel of a layer whose convs keep the size: one per weight."""
    return sum(m.weight.numel() for m in layer.modules() if isinstance(m, nn.Conv2d))


k0, k, n = 256, 32, 24                     # DenseNet-121's third block (Table 1)
with torch.device("meta"):
    plain = [macs_per_pixel(DenseLayer(k0 + i * k, k, bottleneck=False)) for i in range(n)]
    bneck = [macs_per_pixel(DenseLayer(k0 + i * k, k)) for i in range(n)]
c = k0 + (n - 1) * k                       # what the last layer reads
assert plain[-1] == 9 * c * k and bneck[-1] == 4 * k * c + 9 * 4 * k * k
common.table([(f"layer {i + 1}: {k0 + i * k} maps in", f"{plain[i]:,}", f"{bneck[i]:,}",
               f"{plain[i] / bneck[i]:.2f}x") for i in (0, n - 1)]
             + [("the whole block", f"{sum(plain):,}", f"{sum(bneck):,}",
                 f"{sum(plain) / sum(bneck):.2f}x")],
             header=("per pixel", "BN-ReLU-Conv(3x3)", "with bottleneck", "plain / bottleneck"))

# %% [markdown]
# **Why compression.** A block hands on all it made, so the channels entering the next pile
# up. The transition keeps $\lfloor\theta m\rfloor$ of a block's $m$ maps (*compression*
# $\theta$; DenseNet-C: $\theta = 0.5$; *DenseNet-BC*: both ideas). DenseNet-121 (code folded):

# %% jupyter={"source_hidden": true}
def channels_into_blocks(theta: float, k=32, c=64, blocks=(6, 12, 24, 16)):   # DenseNet-121
    into = []
    for n in blocks:
        into.append(c)
        c = int(theta * (c + n * k))           # each layer adds k; the transition keeps floor(theta m)
    return into


with torch.device("meta"):
    layer_params = {theta: sum(common.count_params(DenseLayer(c + i * 32, 32))
                               for c, n in zip(channels_into_blocks(theta), (6, 12, 24, 16))
                               for i in range(n)) for theta in (1.0, 0.5)}
assert channels_into_blocks(0.5) == [64, 128, 256, 512]
common.table([(f"theta = {t}", channels_into_blocks(t), f"{p / 1e6:.2f}M")
              for t, p in layer_params.items()],
             header=("DenseNet-121", "maps into blocks 1-4", "dense-layer parameters"))

# %% [markdown]
# ### Write it yourself: the transition layer (try it first)
#
# <a id="try-transition"></a>Optional: `MyTransition(in_channels, compression=0.5)`: BN, ReLU, a
# 1×1 conv to $\lfloor\theta m\rfloor$ maps ($m$ = `in_channels`, $\theta$ = `compression`), a 2×2
# average pool with stride 2 (sec. 3, "Pooling layers", "Compression"; Table 1). `check` says "not
# done yet" until you fill it in.

# %%
class MyTransition(nn.Module):
    def __init__(self, in_channels, compression=0.5):
        super().__init__()
        # How many output maps for an odd in_channels? ("Compression": floor(theta m))
        # Table 1's caption: every "conv" is BN-ReLU-Conv.
        raise NotImplementedError("write __init__")

    def forward(self, x):
        # BN, ReLU, 1x1 conv, then halve the size with a 2x2 average pool
        raise NotImplementedError("write forward")


# %% [markdown]
# <details><summary><b>Hint</b> (click to unfold)</summary>
#
# - `int(compression * in_channels)` is the floor for positive numbers; the checker tries an
#   odd `in_channels` and `compression=1.0`.
# - `nn.AvgPool2d(kernel_size=2, stride=2)` averages each 2×2 window.
# - A curiosity to check afterwards: a 1×1 convolution and an average pool are both linear and
#   act on different axes (channels, pixels), so pooling *before* the 1×1 convolution gives the
#   same outputs for a quarter of the multiply-adds. Try it: the checker accepts it.
# </details>

# %%
check("densenet.Transition", MyTransition)

# %% [markdown]
# ### The transition layer
#
# | Detail | Value | Where |
# |---|---|---|
# | Transition layer | "a batch normalization layer and an 1×1 convolutional layer followed by a 2×2 average pooling layer" | sec. 3 "Pooling layers" |
# | **Egg: the ReLU in the transition** | the text names BN, 1×1 conv, pool, with no ReLU; Table 1's caption says every "conv" is BN-ReLU-Conv, and the authors' code and torchvision have the ReLU: we keep it (a strict load, `load_state_dict(strict=True)`, checks only names and shapes, and would pass without it, but the outputs would differ) | Table 1 caption; `models/densenet.lua` of the authors' repository |
#
# **Why.** "The concatenation operation used in Eq. (2) is not viable when the size of
# feature-maps changes" (sec. 3, "Pooling layers"), yet a network must shrink its maps: so it is
# cut into dense blocks, each at one size, with the downsampling between them, in transition
# layers (their 1×1 conv also compresses). Names: torchvision's.

# %%
#@save densenet
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


# %%
x = torch.randn(2, 64, 32, 32)
t = Transition(64).eval()
assert t(x).shape == (2, 32, 16, 16)                    # theta = 0.5 halves maps and size
assert Transition(64, compression=1.0)(x).shape == (2, 64, 16, 16)   # theta = 1: no compression
assert Transition(75).out_channels == 37                # floor(0.5 * 75)
assert isinstance(t.relu, nn.ReLU) and isinstance(t.pool, nn.AvgPool2d)
assert [n for n, _ in t.named_children()] == ["norm", "relu", "conv", "pool"]
print(f"Transition: {tuple(x.shape)} -> {tuple(t(x).shape)}; floor(0.5 * 75) = {Transition(75).out_channels}")

# %% [markdown]
# ### The dense block
#
# Its rows are the dense layer's. It builds layer $\ell$ for $k_0 + k(\ell - 1)$ channels, hands
# each layer the list of all maps so far, and returns them concatenated, $k_0 + nk$ channels
# (the bars above). A `ModuleDict` of `denselayer1`..`denselayerN`, as torchvision's.

# %%
#@save densenet
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


# %%
block = DenseBlock(num_layers=4, in_channels=16, growth_rate=12).eval()
x = torch.randn(2, 16, 32, 32)
with torch.no_grad():
    y = block(x)
assert y.shape == (2, 16 + 4 * 12, 32, 32) and block.out_channels == 64
assert [l.norm1.num_features for l in block.values()] == [16 + 12 * i for i in range(4)]   # k0 + k(l-1)
assert torch.equal(y[:, :16], x)                        # the input is passed on unchanged
print(f"DenseBlock: {tuple(x.shape)} -> {tuple(y.shape)}; layer inputs "
      f"{[l.norm1.num_features for l in block.values()]} channels")

# %% [markdown]
# ### The model, from its configuration
#
# | Detail | Value | Where |
# |---|---|---|
# | ImageNet network | DenseNet-BC, four dense blocks, 224×224 input; stem: $2k$ 7×7 convs with stride 2, then 3×3 max pool with stride 2; $k = 32$ | sec. 3 "Implementation Details", Table 1 |
# | Head | global average pooling, then a softmax classifier | sec. 3 "Implementation Details", Table 1 |
# | **Egg: the final BN-ReLU** | the last dense block's output goes through BN and ReLU before the pooling: not in the text, and not implied by Table 1 either (its caption's BN-ReLU-Conv covers the "conv" rows; the classification row has no conv). Our reading: the pre-activation design leaves the last block's output un-normalised, so something must. Present in the authors' code (`addTransition(..., last)`) and torchvision (`norm5`, then `F.relu`) | authors' code; torchvision |
#
# More rows (Table 1's blocks, the CIFAR nets, depth $L$, init): the reference table. **Why a
# configuration.** Every DenseNet of the paper is the same blocks in other numbers: a row of
# Table 1 is $k$ and the layers of four dense blocks. So the table is data (`TABLE1`), and one
# class builds any row: a **stem** `conv0` (ImageNet: 7×7 conv with stride 2, BN, ReLU, 3×3 max
# pool; CIFAR: one 3×3 conv), **dense blocks** with **transitions** between them, and a **head**:
# `norm5`, ReLU, global average pooling (any input size), a linear `classifier` returning logits.

# %%
#@save densenet
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

# %%
#@save densenet
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


# %% [markdown]
# Two builders (folded): `_imagenet_densenet(depth)` reads Table 1; `cifar_densenet` turns a
# depth $L$ into three blocks of $n$ layers ($L = 3n + 4$, or $6n + 4$ with bottlenecks), with a
# stem of 16 channels, or $2k$ for DenseNet-BC (sec. 3), for any $L$ and $k$.

# %% jupyter={"source_hidden": true}
#@save densenet
def _imagenet_densenet(depth: int, **kwargs) -> DenseNet:
    growth_rate, blocks = TABLE1[depth]
    return DenseNet(growth_rate, blocks, **kwargs)


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


# %% [markdown]
# **The check**: DenseNet-121's sizes after every stage are Table 1's "Output Size", and the
# head takes any input size.

# %%
net = _imagenet_densenet(121).eval()                           # DenseNet-121 (Table 1)
stages = ["conv0", "pool0", "denseblock1", "transition1", "denseblock2", "transition2",
          "denseblock3", "transition3", "denseblock4"]
shapes = common.output_shapes(net, (1, 3, 224, 224), names=[f"features.{n}" for n in stages])
shapes = {n.removeprefix("features."): s for n, s in shapes.items()}
expected = {"conv0": (1, 64, 112, 112), "pool0": (1, 64, 56, 56),      # Table 1, "Output Size"
            "denseblock1": (1, 256, 56, 56), "transition1": (1, 128, 28, 28),
            "denseblock2": (1, 512, 28, 28), "transition2": (1, 256, 14, 14),
            "denseblock3": (1, 1024, 14, 14), "transition3": (1, 512, 7, 7),
            "denseblock4": (1, 1024, 7, 7)}
assert shapes == expected, shapes
with torch.no_grad():
    assert net(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
    for size in (32, 57, 257):                          # the head does not care about the size
        assert net(torch.randn(1, 3, size, size)).shape == (1, 1000)
for name, shape in shapes.items():
    print(f"{name:12} {shape}")

# %% [markdown]
# ### The memory-efficient dense layer
#
# | Detail | Value | Where |
# |---|---|---|
# | Memory | a naive implementation stores every concatenation: memory quadratic in depth; see the technical report | sec. 4.2 ("may contain memory inefficiencies"); "quadratic": Pleiss et al. 2017, [arXiv:1707.06990](https://arxiv.org/abs/1707.06990) |
#
# **Why.** For the backward pass autograd keeps the inputs of most operations. Layer $\ell$
# concatenates $k_0 + k(\ell - 1)$ channels into a **new** tensor and normalises it into
# another, and both are kept: $\sum_\ell (k_0 + k(\ell-1)) \approx n k_0 + k n^2 / 2$ maps,
# quadratic in the depth $n$ of a block, though each layer only *adds* $k$. Hence sec. 4.2's
# "a naive implementation of DenseNet may contain memory inefficiencies", and the technical
# report of Pleiss et al. 2017 ([arXiv:1707.06990](https://arxiv.org/abs/1707.06990)): keep
# those tensors in *shared* memory that every layer overwrites, and recompute them in the
# backward pass.
#
# **The code.** torchvision's `memory_efficient=True`, and ours, recompute with gradient
# checkpointing: the `checkpoint(self.concat_conv1, ...)` line of `DenseLayer` runs the
# concatenation, `norm1`, `relu1` and `conv1` without storing anything, and again in the
# backward pass. The folded cell keeps that second run from updating `norm1`'s running
# statistics twice (Going deeper: why, and the unchanged gradients).

# %% jupyter={"source_hidden": true}
#@save densenet
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


# %% [markdown]
# **The memory, measured.** `bytes_saved_for_backward` (folded; its docstring says how) adds up
# the bytes one forward pass keeps for the backward pass. (On a GPU: the peak of
# `torch.cuda.max_memory_allocated()`, in Going deeper.)

# %% jupyter={"source_hidden": true}
#@save densenet
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


# %% [markdown]
# **Memory against depth** (code folded): DenseNet-BC with $k = 12$ on 32×32 images, from
# $L = 40$ to 250, with and without the option (bytes kept per image, batches of 2). The naive
# count curves upwards (quadratic in depth); the memory-efficient one stays close to a straight
# line, and the saving grows with depth.

# %% jupyter={"source_hidden": true}
depths = (40, 100, 160, 250)
per_image = {me: [] for me in (False, True)}
for depth in depths:
    for me in (False, True):
        torch.manual_seed(0)
        model = cifar_densenet(depth, 12, memory_efficient=me).train()
        per_image[me].append(bytes_saved_for_backward(model, torch.randn(2, 3, 32, 32)) / 2)
ratios = [a / b for a, b in zip(per_image[False], per_image[True])]
assert all(r2 > r1 for r1, r2 in zip(ratios, ratios[1:]))          # the saving grows with depth
growth_naive = per_image[False][-1] / per_image[False][0]
growth_efficient = per_image[True][-1] / per_image[True][0]
assert growth_naive > growth_efficient

# %% jupyter={"source_hidden": true}
fig, ax = plt.subplots(figsize=(6, 3.4))
for me, label in ((False, "naive (stores every concatenation)"), (True, "memory_efficient=True")):
    ax.plot(depths, [b / 2**20 for b in per_image[me]], "o-", label=label)
ax.set_xlabel("depth L (DenseNet-BC, k = 12)")
ax.set_ylabel("MiB kept for backward, per image")
ax.legend()
ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()
common.table([(f"L = {d}", f"{a / 2**20:.2f}", f"{b / 2**20:.2f}", f"{r:.2f}x")
              for d, a, b, r in zip(depths, per_image[False], per_image[True], ratios)],
             header=("DenseNet-BC, k = 12", "naive (MiB/image)", "memory-efficient", "naive / efficient"))

# %% [markdown]
# ### Plumbing (skip on a first read): the paper's numbers, constructors, old checkpoints
#
# Bookkeeping that the rest of the notebook uses but that teaches little DenseNet: Tables 2 and
# 3 as data, one registered constructor per network, the renaming of torchvision's old
# checkpoint keys, and the input-size checks.
#
# **The paper's numbers, once, as data.** Tables 2 and 3 written row by row (Table 1 is
# `TABLE1`, above). The model builders, the checks against the paper, the docstrings and the
# tests read them. Table 2's "-" entries are `None`.

# %%
#@save densenet
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

#: Table 3: ImageNet validation error (%), single-crop / 10-crop.
TABLE3 = {
    #     top-1 single, 10-crop   top-5 single, 10-crop
    121: ((25.02, 23.61), (7.71, 6.66)),
    169: ((23.80, 22.08), (6.85, 5.92)),
    201: ((22.58, 21.46), (6.34, 5.54)),
    264: ((22.15, 20.80), (6.12, 5.29)),
}

#: The parameters the text states for an ImageNet DenseNet (sec. 4.4: "a DenseNet-201 with 20M
#: parameters"); Table 1 lists none.
TEXT_PARAMS = {201: 20e6}

#: Pleiss et al. 2017 (arXiv:1707.06990), abstract: "a 264-layer DenseNet (73M parameters)",
#: trained with their memory-efficient implementation. Neither k nor the blocks are given: Table 1's
#: blocks with k = 48 fit (our inference).
TECH_REPORT_PARAMS = {264: 73e6}

# %% [markdown]
# **Thin public constructors.** One registered function per network, as in torchvision, over
# the two builders of the model's subsection; a decorator appends the paper's numbers to each
# docstring. The CIFAR nets default to 10 classes; every model takes `num_classes`, `drop_rate`
# and `memory_efficient`.

# %%
#@save densenet
def _table2_densenet(name: str, **kwargs) -> DenseNet:
    row = TABLE2[name]
    return cifar_densenet(row.depth, row.growth_rate, row.bottleneck, row.compression, **kwargs)


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


@register_model("densenet121", head="classifier", weights="DenseNet121_Weights.IMAGENET1K_V1",
                rename="renamed_checkpoint_key")
@_with_paper_numbers
def densenet121(**kwargs) -> DenseNet:
    """DenseNet-121 (Table 1, k = 32)."""
    return _imagenet_densenet(121, **kwargs)


@register_model("densenet161", head="classifier", weights="DenseNet161_Weights.IMAGENET1K_V1",
                rename="renamed_checkpoint_key")
@_with_paper_numbers
def densenet161(**kwargs) -> DenseNet:
    """DenseNet-161 (k = 48): not in v5's tables; the authors' repository and torchvision."""
    return _imagenet_densenet(161, **kwargs)


@register_model("densenet169", head="classifier", weights="DenseNet169_Weights.IMAGENET1K_V1",
                rename="renamed_checkpoint_key")
@_with_paper_numbers
def densenet169(**kwargs) -> DenseNet:
    """DenseNet-169 (Table 1, k = 32)."""
    return _imagenet_densenet(169, **kwargs)


@register_model("densenet201", head="classifier", weights="DenseNet201_Weights.IMAGENET1K_V1",
                rename="renamed_checkpoint_key")
@_with_paper_numbers
def densenet201(**kwargs) -> DenseNet:
    """DenseNet-201 (Table 1, k = 32)."""
    return _imagenet_densenet(201, **kwargs)


@register_model("densenet264", head="classifier")
@_with_paper_numbers
def densenet264(**kwargs) -> DenseNet:
    """DenseNet-264 (Table 1, k = 32); torchvision has none."""
    return _imagenet_densenet(264, **kwargs)


@register_model("cifar_densenet40_k12", head="classifier")
@_with_paper_numbers
def cifar_densenet40_k12(**kwargs) -> DenseNet:
    """DenseNet (L = 40, k = 12) of Table 2: no bottleneck, no compression."""
    return _table2_densenet("cifar_densenet40_k12", **kwargs)


@register_model("cifar_densenet100_k12", head="classifier")
@_with_paper_numbers
def cifar_densenet100_k12(**kwargs) -> DenseNet:
    """DenseNet (L = 100, k = 12) of Table 2: no bottleneck, no compression."""
    return _table2_densenet("cifar_densenet100_k12", **kwargs)


@register_model("cifar_densenet100_k24", head="classifier")
@_with_paper_numbers
def cifar_densenet100_k24(**kwargs) -> DenseNet:
    """DenseNet (L = 100, k = 24) of Table 2: no bottleneck, no compression."""
    return _table2_densenet("cifar_densenet100_k24", **kwargs)


@register_model("cifar_densenet_bc100_k12", head="classifier")
@_with_paper_numbers
def cifar_densenet_bc100_k12(**kwargs) -> DenseNet:
    """DenseNet-BC (L = 100, k = 12) of Table 2."""
    return _table2_densenet("cifar_densenet_bc100_k12", **kwargs)


@register_model("cifar_densenet_bc250_k24", head="classifier")
@_with_paper_numbers
def cifar_densenet_bc250_k24(**kwargs) -> DenseNet:
    """DenseNet-BC (L = 250, k = 24) of Table 2."""
    return _table2_densenet("cifar_densenet_bc250_k24", **kwargs)


@register_model("cifar_densenet_bc190_k40", head="classifier")
@_with_paper_numbers
def cifar_densenet_bc190_k40(**kwargs) -> DenseNet:
    """DenseNet-BC (L = 190, k = 40) of Table 2."""
    return _table2_densenet("cifar_densenet_bc190_k40", **kwargs)


# %%
names = common.list_models("densenet*") + common.list_models("cifar_densenet*")
print(names)
assert set(names) == {f"densenet{d}" for d in TABLE1} | set(TABLE2)
for name, row in TABLE2.items():
    m = common.get_model(name)
    n = (row.depth - 4) // (6 if row.bottleneck else 3)
    assert [len(m.features.get_submodule(f"denseblock{i}")) for i in (1, 2, 3)] == [n] * 3
    assert m.features.conv0.out_channels == (2 * row.growth_rate if row.bottleneck else 16)   # sec. 3
    assert all(l.bottleneck == row.bottleneck for l in m.features.denseblock1.values())
    assert m.features.transition1.out_channels == int(row.compression * m.features.denseblock1.out_channels)
assert f"{TABLE2['cifar_densenet_bc100_k12'].c10_plus:g}%" in cifar_densenet_bc100_k12.__doc__
assert f"{TABLE3[121][0][0]:g}%" in densenet121.__doc__            # docstrings read the tables
m = common.get_model("cifar_densenet_bc100_k12", num_classes=7).eval()
with torch.no_grad():
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert m.features[:4](torch.randn(2, 3, 32, 32)).shape[-1] == 16   # blocks at 32, 16, 8 pixels
print("all eleven models registered; each CIFAR net has the blocks, stem and transitions of its row")

# %% [markdown]
# **Old checkpoints.** The oldest torchvision checkpoints name the layers `norm.1`, `conv.1`...
# (a dot that module names may no longer contain); torchvision renames them on load
# (`_load_state_dict`), and so do we: the registry's card of each ImageNet DenseNet names this
# function (`rename=`), and section 4's real-photo cell uses it.

# %%
#@save densenet
OLD_CHECKPOINT_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def renamed_checkpoint_key(key: str) -> str:
    """torchvision's old checkpoint names (`norm.1`, `conv.1`, ...) as the layers are named now."""
    m = OLD_CHECKPOINT_KEY.match(key)
    return f"{m[1]}{m[2]}" if m else key


# %%
assert (renamed_checkpoint_key("features.denseblock1.denselayer1.norm.1.weight")
        == "features.denseblock1.denselayer1.norm1.weight")

# %% [markdown]
# **Input sizes.** `DenseNet.forward` first checks the input: a batch of float images of at least
# 32×32 pixels (an ImageNet DenseNet halves the size five times: 32 pixels end at 1×1), and in
# train mode more than one value per channel for batch norm. `net` is the DenseNet-121 of the
# model's check.

# %%
try:
    net(torch.randn(1, 3, 31, 31))
    raise AssertionError("a 31-pixel image was accepted")
except ValueError as err:
    print("below 32 pixels:", str(err)[:90], "...")
assert [net.final_map_size(s) for s in (224, 32, 63)] == [7, 1, 2]     # five halvings, rounded
net.train()
assert net(torch.randn(2, 3, 32, 32)).shape == (2, 1000)    # two images: BN has 2 values per channel
try:
    net(torch.randn(1, 3, 32, 32))                          # one image: a 1x1 map, 1 value per channel
    raise AssertionError("one 32x32 image was accepted in train mode")
except ValueError as err:
    print("one image in train mode:", str(err)[:80], "...")

# %% [markdown]
# ## 3 · Inspect: channels, parameters and multiply-adds
#
# A summary of DenseNet-121 grouped by blocks: output shapes, parameters and multiply-adds of
# the stem, each dense block and transition, and the head.

# %%
common.summary(common.get_model("densenet121"), (1, 3, 224, 224), depth=2)

# %% [markdown]
# **The channels through DenseNet-121** (code folded), read from its layers and checked against
# a forward pass on the `meta` device: $+k = 32$ per layer, halved by each transition.

# %% jupyter={"source_hidden": true}
with torch.device("meta"):
    net121 = common.get_model("densenet121")
trace = [(name, m.in_channels if isinstance(m, DenseLayer) else m.out_channels)
         for name, m in net121.named_modules() if isinstance(m, (DenseLayer, Transition))]
trace.append(("features.denseblock4 (output)", net121.features.denseblock4.out_channels))
growth, _ = TABLE1[121]
inputs = [c for n, c in trace if "denselayer" in n]
assert inputs[:6] == [2 * growth + growth * i for i in range(6)]   # k0 + k(l - 1), k0 = 2k
transitions = [n for n, _ in trace if n.split(".")[-1].startswith("transition")]
measured = common.output_shapes(net121, torch.empty(1, 3, 224, 224, device="meta"),
                                names=transitions + ["features.denseblock4"])
assert [s[1] for s in measured.values()] == [c for n, c in trace if n in transitions] + [trace[-1][1]]

# %% jupyter={"source_hidden": true}
fig, ax = plt.subplots(figsize=(9, 3))
ax.step(range(len(trace)), [c for _, c in trace], where="post")
for i, (n, c) in enumerate(trace):
    if n in transitions:
        ax.annotate(f"{n.split('.')[-1]}: {c}", (i, c), (i + 1.5, c - 120), fontsize=8,
                    arrowprops=dict(arrowstyle="->", lw=0.6))
ax.set_xlabel("dense layers and transitions, in order")
ax.set_ylabel("channels")
ax.set_title("DenseNet-121: +k = 32 channels per dense layer, halved by each transition", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# **Table 2: parameters.** Table 2 prints one decimal in millions ("0.8M"), so ours, rounded the
# same way, must be the printed number: each row's tolerance is half a unit of the last printed
# digit (0.05M), as a ratio.

# %%
with torch.device("meta"):
    cifar_params = {name: common.count_params(common.get_model(name)) for name in TABLE2}
common.paper_vs_ours(
    [(f"{name} params", row.params, cifar_params[name], 0.05e6 / row.params)
     for name, row in TABLE2.items()], title="Table 2, parameters (CIFAR-10, 10 classes)")
assert all(round(cifar_params[n] / 1e6, 1) == round(row.params / 1e6, 1) for n, row in TABLE2.items())

# %% [markdown]
# ### ImageNet parameters and multiply-adds, against the text and torchvision (skip on a first read)
#
# Table 1 lists neither, and the paper's FLOPs are only plotted (Figure 3, right). The text gives
# one number, "a DenseNet-201 with 20M parameters" (sec. 4.4), which we check to its two digits.
# Then torchvision's documented counts (the `meta` dictionary of its weights, not the `meta`
# device: `num_params` and `_ops`, multiply-adds in billions) as a second source: the parameters
# must be equal, the multiply-adds within 1% (torchvision rounds to three decimals, and
# `common.count_macs` counts only convolutions and the linear layer, leaving out batch norm and
# pooling). DenseNet-264 has no torchvision twin: its counts stand alone.

# %%
from torchvision.models import (DenseNet121_Weights, DenseNet161_Weights, DenseNet169_Weights,
                                DenseNet201_Weights)

TV_WEIGHTS = {121: DenseNet121_Weights, 161: DenseNet161_Weights, 169: DenseNet169_Weights,
              201: DenseNet201_Weights}
imagenet = {}
with torch.device("meta"):
    for depth in TABLE1:
        net = common.get_model(f"densenet{depth}")
        imagenet[depth] = {"params": common.count_params(net), "macs": common.count_macs(net)}
common.paper_vs_ours(
    [("DenseNet-201 params (sec. 4.4)", TEXT_PARAMS[201], imagenet[201]["params"], 0.5e6 / TEXT_PARAMS[201])],
    title="Parameters the text states (to its last printed digit)")
print()
rows = []
for depth, meta in ((d, TV_WEIGHTS[d].IMAGENET1K_V1.meta) for d in TV_WEIGHTS):
    assert imagenet[depth]["params"] == meta["num_params"]
    rows.append((f"DenseNet-{depth} multiply-adds", round(meta["_ops"] * 1e9), imagenet[depth]["macs"]))
common.paper_vs_ours(rows, rtol=0.01, source="torchvision",
                     title="torchvision's documented _ops (not the paper) vs ours, 224x224")
print("parameters equal torchvision's num_params for 121, 161, 169, 201")
common.table([(f"DenseNet-{d}", f"{c['params']:,}", f"{c['macs'] / 1e9:.3f}G") for d, c in imagenet.items()],
             header=("224x224", "parameters", "multiply-adds"))

# %% [markdown]
# ## 4 · Check against torchvision
#
# For DenseNet-121, 161, 169 and 201: torchvision's model with random weights **and random
# batch-norm statistics** (`common.random_reference`: a default BN is the identity in eval mode,
# and a misplaced one would go unseen), its `state_dict()` loaded into ours with `strict=True`
# (a *strict load*: every name and shape must match), equal outputs asserted. Smoke mode: 64×64
# inputs instead of 224×224.

# %%
size = 64 if common.SMOKE else 224                    # smoke: a smaller input, same check
max_diff = {}
for depth in TV_WEIGHTS:
    reference = common.random_reference(getattr(torchvision.models, f"densenet{depth}"), seed=depth)
    ours = common.get_model(f"densenet{depth}")
    max_diff[depth] = common.check_against_reference(
        ours, reference, input_size=(2, 3, size, size), label=f"DenseNet-{depth} vs torchvision")
    del reference, ours
assert all(d <= 1e-4 for d in max_diff.values())

# %% [markdown]
# **Real weights, real photo.** Where the official weights can be downloaded (Colab), we load
# torchvision's DenseNet-121 weights into **our** model (old checkpoints' keys renamed: plumbing,
# above) and classify scikit-learn's flower photo. Offline (the tests), the cell says so.

# %%
weights = DenseNet121_Weights.IMAGENET1K_V1
common.classify_photo(common.get_model("densenet121"), weights, rename=renamed_checkpoint_key)   # strict load, top 5

# %% [markdown]
# ## 5 · Train on CIFAR-10 with the paper's recipe (section 4.2)
#
# DenseNet-BC (L=100, k=12), the smallest network of Table 2
# (`TABLE2["cifar_densenet_bc100_k12"]`).
#
# | Detail | Value | Where |
# |---|---|---|
# | CIFAR recipe | SGD, batch 64, 300 epochs (SVHN: 40), lr 0.1 ÷ 10 at 50% and 75% of the epochs, weight decay $10^{-4}$, Nesterov momentum 0.9 without dampening | sec. 4.2 |
#
# PyTorch's `SGD` has no dampening by default, as the recipe asks. The data, the dropout: their
# rows in the reference table. C10+ (augmented) means no dropout, and we keep the paper's 45k/5k
# validation split, so that the curves show a validation error (its final run trains on all 50k).
# Smoke mode (the tests) runs two epochs on a few hundred images; even that is too slow for
# DenseNet-BC-100 on a CPU (the folded cell prints its multiply-adds beside ResNet-20's), so it
# trains the same family at $L = 22$. Quick mode trains $L = 100$ on 13,440 images (10 epochs of
# the offline digits; `fit` prints it): DenseNet-BC learns fast.

# %% jupyter={"source_hidden": true}
with torch.device("meta"):
    macs = {n: common.count_macs(common.get_model(n), (1, 3, 32, 32))
            for n in ("cifar_densenet_bc100_k12", "cifar_resnet20")}
print(", ".join(f"{n}: {m / 1e6:.0f}M multiply-adds per 32x32 image" for n, m in macs.items()))

# %%
import dataclasses

data = common.load_data("cifar10")
EPOCHS = 300                                           # sec. 4.2 (SVHN: 40)
recipe = common.Recipe(
    epochs=EPOCHS, batch_size=64, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4,
    schedule="multistep", milestones=(0.5 * EPOCHS, 0.75 * EPOCHS), gamma=0.1, augment=True,
    sources={"epochs": "sec. 4.2: 300 epochs on CIFAR", "batch_size": "sec. 4.2: batch size 64",
             "lr": "sec. 4.2: initial learning rate 0.1",
             "milestones": "sec. 4.2: divided by 10 at 50% and 75% of the epochs",
             "gamma": "sec. 4.2: divided by 10", "schedule": "sec. 4.2: step drops",
             "momentum": "sec. 4.2: Nesterov momentum 0.9 without dampening",
             "nesterov": "sec. 4.2", "weight_decay": "sec. 4.2: 10^-4",
             "augment": "sec. 4.1: C10+ = mirroring and shifting (we pad 4 pixels, as ResNet)",
             "label_smoothing": "not used (2016)"})
assert recipe.milestones == (150, 225)
recipe.table()

# %% [markdown]
# `common.train_run` keeps one run folder per model, recipe and data: editing a hyperparameter
# starts a fresh run.
#
# **After a disconnect**, re-run the notebook from the top: this training resumes from its last
# finished epoch (on Colab, if `KEEP_ON_DRIVE` was on in the set-up cell).

# %%
MAIN_DEPTH = 22 if common.SMOKE else TABLE2["cifar_densenet_bc100_k12"].depth   # smoke: L = 22
densenet, history = common.train_run(
    "03_densenet", f"cifar_densenet_bc{MAIN_DEPTH}_k12", recipe, data,
    build=lambda: cifar_densenet(MAIN_DEPTH, 12, num_classes=data.num_classes),
    quick_images=13_440)            # quick mode: 10 epochs of the digits (DenseNet-BC learns fast)

# %% jupyter={"source_hidden": true}
fig = common.plot_histories({f"DenseNet-BC (L={MAIN_DEPTH}, k=12)": history},
                            metrics=("train_loss", "val_loss", "val_acc"), show=False)
if common.SMOKE:
    fig.suptitle(fig.get_suptitle() + "\nsmoke mode: these curves are noise", fontsize="small")
display(fig)

# %% [markdown]
# The test error beside Table 2 (C10+). Under the tests (offline digits, $L = 22$, two epochs)
# it says only that the pipeline works.

# %%
paper = TABLE2["cifar_densenet_bc100_k12"]
err = 100 * (1 - common.evaluate(densenet, data, "test")["acc"])
assert 0 <= err <= 100
print(f"DenseNet-BC (L=100, k=12): Table 2, C10+ error {paper.c10_plus:.2f}%")
print(f"ours, DenseNet-BC (L={MAIN_DEPTH}, k=12): test error {err:.2f}%  ({data.description}, "
      f"trained on {len(data.train)} images)")
why = (common.caveats(data, history)
       + ["a 45k/5k split, where the paper's final run trains on all 50k (sec. 4.1)"])
print("Differences from the paper's run: " + "; ".join(why) + ".")

# %% [markdown]
# ## 6 · An experiment, small: the growth rate
#
# How much should each layer add? Only Table 2 varies $k$ at a fixed depth, for the DenseNet
# without bottleneck at L = 100: $k = 12 \to 24$ lowers the error on C10+, C100, C100+ and SVHN,
# at about four times the parameters (they grow about as $k^2$), but *raises* it on C10, which
# the paper calls "potential overfitting" (sec. 4.3); both rows, from `TABLE2` (code folded).
# (Figure 4, left, does not vary $k$ either: it compares DenseNet, -B, -C and -BC of varying
# depths on C10+; sec. 5 gives the experiment's DenseNets $k = 12$.)

# %% jupyter={"source_hidden": true}
k12, k24 = TABLE2["cifar_densenet100_k12"], TABLE2["cifar_densenet100_k24"]
columns = ("c10", "c10_plus", "c100", "c100_plus", "svhn")
display(common.table([(col, f"{getattr(k12, col):.2f}", f"{getattr(k24, col):.2f}") for col in columns],
             header=("Table 2, DenseNet L = 100 (error %)", "k = 12", "k = 24")))
worse = [col for col in columns if getattr(k24, col) > getattr(k12, col)]
assert worse == ["c10"], worse                          # k = 24 is worse on C10 only (sec. 4.3)
print(f"k = 12 -> 24: parameters x {k24.params / k12.params:.1f}; error worse on {worse} only")

# %% [markdown]
# We re-run it with DenseNet-BC (L=100), $k$ = 6, 12 (section 5's run) and 24, the same recipe,
# beside the paper's points. `GROWTH_FRACTION = 0.25` runs a quarter of the schedule. Quick mode:
# all three at $L = 40$ (still $k$ at a fixed depth; the cell prints it), 8 epochs of the digits
# each. Smoke mode: depth 22, $k$ = 6 and 12 only.
#
# **After a disconnect**, re-run the notebook from the top: this training resumes from its last
# finished epoch (on Colab, if `KEEP_ON_DRIVE` was on in the set-up cell).

# %%
GROWTH_FRACTION = 1.0                                  # 0.25: a quarter of the schedule
growth_recipe = recipe if GROWTH_FRACTION == 1 else dataclasses.replace(
    recipe, epochs=round(recipe.epochs * GROWTH_FRACTION),
    milestones=tuple(m * GROWTH_FRACTION for m in recipe.milestones),
    sources={**recipe.sources, "epochs": f"sec. 4.2 schedule x {GROWTH_FRACTION}",
             "milestones": "sec. 4.2 drops, at the same fractions of training"})
GROWTH_DEPTH = common.by_mode(
    MAIN_DEPTH, quick=40, what="growth-study depth L (DenseNet-BC)",
    why="three L = 100 runs, k = 24 the costliest, do not fit quick mode's ten minutes on a "
        "2-core CPU; L = 40 keeps the paper's variable, k at a fixed depth")
growth_rates = (6, 12) if common.SMOKE else (6, 12, 24)          # smoke: the two light ones
growth = {}
for k in growth_rates:
    model, _ = common.train_run(
        "03_densenet", f"cifar_densenet_bc{GROWTH_DEPTH}_k{k}", growth_recipe, data,
        build=lambda: cifar_densenet(GROWTH_DEPTH, k, num_classes=data.num_classes),
        quick_images=10_752)        # quick mode: 8 epochs of the digits each
    growth[k] = (common.count_params(model), common.evaluate(model, data, "test")["acc"])

# %% jupyter={"source_hidden": true}
fig, (ax, ax_paper) = plt.subplots(1, 2, figsize=(10, 3.4))
params, accs = zip(*growth.values())
ax.plot([p / 1e6 for p in params], [100 * a for a in accs], "o-")
for k, (p, a) in growth.items():
    ax.annotate(f"k = {k}", (p / 1e6, 100 * a), textcoords="offset points", xytext=(5, -12))
ax.set_title(f"ours: DenseNet-BC (L={GROWTH_DEPTH})\n{data.description}"
             + ("\nsmoke mode: these points are noise" if common.SMOKE else ""), fontsize=9)
plain_rows = {n: r for n, r in TABLE2.items() if not r.bottleneck}
ax_paper.plot([r.params / 1e6 for r in plain_rows.values()],
              [100 - r.c10_plus for r in plain_rows.values()], "s-", color="C1")
for r in plain_rows.values():
    ax_paper.annotate(f"L={r.depth}, k={r.growth_rate}", (r.params / 1e6, 100 - r.c10_plus),
                      textcoords="offset points", xytext=(5, -12), fontsize=8)
ax_paper.set_title("the paper: Table 2, DenseNet without bottleneck, C10+", fontsize=9)
for a in (ax, ax_paper):
    a.set_xscale("log")
    a.margins(x=0.35, y=0.15)                          # room for the labels
    a.xaxis.set_minor_formatter(plt.NullFormatter())   # no colliding minor tick labels
    a.set_xlabel("parameters (millions)")
    a.set_ylabel("test accuracy (%)")
    a.grid(alpha=0.3)
plt.tight_layout()
plt.show()
assert list(params) == sorted(params)                   # more growth, more parameters
display(common.table([(f"k = {k}", f"{p:,}", f"{100 * a:.1f}%") for k, (p, a) in growth.items()],
                     header=(f"DenseNet-BC (L={GROWTH_DEPTH})", "parameters", "test accuracy")))
ks = list(growth)
for k0, k1 in zip(ks, ks[1:]):                          # k^2 would give (k1 / k0)^2
    print(f"k = {k0} -> {k1}: parameters x {growth[k1][0] / growth[k0][0]:.2f} "
          f"((k1/k0)^2 = {(k1 / k0) ** 2:.0f})")
n_test = len(data.test)
spread = max(accs) - min(accs)
noise = 2 * (2 * max(a * (1 - a) for a in accs) / n_test) ** 0.5   # 2 std. errors of a difference
print(f"test accuracies span {100 * spread:.1f} points = {round(spread * n_test)} of {n_test} "
      f"test images; the test set's sampling error of a difference of two accuracies: about "
      f"{100 * noise:.1f} points (two standard errors; seed-to-seed spread comes on top)")
print("accuracy rises with k, beyond that sampling error" if list(accs) == sorted(accs) and spread > noise
      else "accuracy does not rank the growth rates here (within the test set's sampling error, or not rising "
           "with k)")

# %% [markdown]
# What to look for (full mode, CIFAR-10): accuracy rises with $k$, with diminishing returns per
# parameter, as Table 2 shows on C10+, C100, C100+ and SVHN (right plot; printed below from
# `TABLE2`; on C10 without augmentation it goes the other way, above). Quick mode ($L = 40$, the
# offline digits) shows the cost side: each doubling of $k$ multiplies the parameters by about 4,
# as $k^2$ (printed above). Its accuracy side: the cell prints whether accuracy rises with $k$
# beyond the test set's sampling error (in the header's run it did, by far); after only 8
# epochs that measures partly how fast each net learns, not how well it ends, which is what
# Table 2 compares. Under the tests (two epochs, offline digits) the left plot only shows that
# the experiment runs.

# %% jupyter={"source_hidden": true}
common.table([(name, f"{row.growth_rate}", f"{row.params / 1e6:.1f}M", f"{row.c10_plus:.2f}%")
              for name, row in TABLE2.items() if not row.bottleneck],
             header=("Table 2", "k", "parameters", "C10+ error"))

# %% [markdown]
# ## 7 · Hurdles: the bugs people make, and which check catches them
#
# Each bug is written and run, and caught by a check above (unfold a folded cell to read how).
#
# **1. A bottleneck of 4× the *input* channels instead of $4k$.** "Each 1×1 convolution
# produce[s] $4k$ feature-maps" (sec. 3). With `4 * in_channels` the 1×1 conv *widens* the
# input fourfold. Everything runs and trains; the strict load fails on the shapes, and the
# parameter count against torchvision's (section 3) is off by more than a factor of ten:

# %%
class WideBottleneckLayer(DenseLayer):
    def __init__(self, in_channels, growth_rate, **kwargs):
        super().__init__(in_channels, growth_rate, **kwargs)
        self.conv1 = nn.Conv2d(in_channels, 4 * in_channels, 1, bias=False)       # the bug
        self.norm2 = nn.BatchNorm2d(4 * in_channels)
        self.conv2 = nn.Conv2d(4 * in_channels, growth_rate, 3, padding=1, bias=False)


# %% jupyter={"source_hidden": true}
from common.inspection import state_dict_differences


def with_layers(model: DenseNet, layer_class: type) -> DenseNet:
    """The same model with every dense layer replaced by `layer_class` (a buggy variant)."""
    for block in (m for m in model.modules() if isinstance(m, DenseBlock)):
        for name, layer in block.items():
            block[name] = layer_class(layer.in_channels, layer.growth_rate)
    return model


with torch.device("meta"):
    wide = with_layers(DenseNet(*TABLE1[121]), WideBottleneckLayer)
    good = common.get_model("densenet121")
n_wide, n_good = common.count_params(wide), common.count_params(good)
assert n_wide > 10 * n_good and n_good == TV_WEIGHTS[121].IMAGENET1K_V1.meta["num_params"]
print(f"DenseNet-121 with a 4 x input bottleneck: {n_wide / 1e6:.1f}M parameters, "
      f"against {n_good / 1e6:.2f}M")
print("strict load:", state_dict_differences(wide.state_dict(), good.state_dict())[0][:110], "...")

# %% [markdown]
# **2. No compression in the transition.** A "DenseNet-BC" whose transitions keep all maps
# ($\theta = 1$) is a DenseNet-B. The Table 2 check (paper / ours) catches it, and so does the
# strict load:

# %% jupyter={"source_hidden": true}
with torch.device("meta"):
    no_c = common.count_params(cifar_densenet(100, 12, compression=1.0, num_init_features=24))
    bc = common.count_params(common.get_model("cifar_densenet_bc100_k12"))
row = TABLE2["cifar_densenet_bc100_k12"]
try:
    common.paper_vs_ours([("BC-100 without compression", row.params, no_c, 0.05e6 / row.params)],
                         show=False)
    raise AssertionError("the missing compression went unnoticed")
except AssertionError as err:
    assert "beyond tolerance" in str(err)
    print(f"theta = 1: {no_c / 1e6:.2f}M parameters against Table 2's {row.params / 1e6:.1f}M "
          f"(ours with theta = 0.5: {bc / 1e6:.2f}M): the Table 2 check fails")

# %% [markdown]
# **3. The final BN-ReLU forgotten.** Without `norm5` the strict load reports the missing
# entries. Subtler: `norm5`, but no ReLU before the pooling. Names and shapes match; only the
# output comparison (random batch-norm statistics) catches it.

# %% jupyter={"source_hidden": true}
class NoFinalReLU(DenseNet):
    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1)           # the bug: no ReLU after norm5
        return self.classifier(torch.flatten(x, 1))


reference = common.random_reference(torchvision.models.densenet121, seed=3)
bad = NoFinalReLU(*TABLE1[121])
try:
    common.check_against_reference(bad, reference, input_size=(2, 3, 64, 64), verbose=False)
    raise RuntimeError("the missing ReLU went unnoticed")
except AssertionError:
    print("no ReLU after norm5: the strict load passes, the output comparison fails")

# %% [markdown]
# **4. Post-activation (Conv-BN-ReLU) instead of BN-ReLU-Conv**, the ResNet habit: `norm1`
# then normalises $4k$ channels instead of the layer's input, and the strict load reports the
# shapes.

# %% jupyter={"source_hidden": true}
class PostActivationLayer(DenseLayer):
    def __init__(self, in_channels, growth_rate, **kwargs):
        super().__init__(in_channels, growth_rate, **kwargs)
        self.norm1 = nn.BatchNorm2d(4 * growth_rate)              # the bug: BN after conv1
        self.norm2 = nn.BatchNorm2d(growth_rate)                  # and after conv2

    def forward(self, features):
        x = torch.cat(list(features), 1) if not isinstance(features, torch.Tensor) else features
        x = self.relu1(self.norm1(self.conv1(x)))
        return self.relu2(self.norm2(self.conv2(x)))


post = with_layers(DenseNet(*TABLE1[121]), PostActivationLayer)
with torch.no_grad():
    assert post(torch.randn(1, 3, 64, 64)).shape == (1, 1000)    # it runs...
diffs = state_dict_differences(post.state_dict(), reference.state_dict())
assert diffs and "shape" in diffs[-1]                              # ...but cannot load the weights
print("post-activation:", diffs[-1][:130], "...")

# %% [markdown]
# **5. A classifier tied to the input size.** Table 1's head is a "7×7 global average pool":
# `nn.AvgPool2d(7)` fits only 224×224 images. At 256 pixels the final map is 8×8 and the pool
# silently averages its top-left 7×7 corner; at 160 the map is 5×5 and it cannot run. The
# paper's pool is *global*: `F.adaptive_avg_pool2d(x, 1)` (ours: checked at 32, 57, 224 and
# 257 pixels, section 2).

# %% jupyter={"source_hidden": true}
tied_pool = nn.AvgPool2d(7)                                       # the bug
features121 = common.get_model("densenet121").eval().features
with torch.no_grad():
    feats = {s: F.relu(features121(torch.randn(1, 3, s, s))) for s in (224, 256, 160)}
    torch.testing.assert_close(tied_pool(feats[224]), F.adaptive_avg_pool2d(feats[224], 1))
    assert tied_pool(feats[256]).shape == (1, 1024, 1, 1)         # runs at 256...
    assert not torch.allclose(tied_pool(feats[256]), F.adaptive_avg_pool2d(feats[256], 1))
    try:
        tied_pool(feats[160])
        raise AssertionError("a 7x7 pool ran on a 5x5 map")
    except RuntimeError:
        pass
print("AvgPool2d(7): right at 224, silently wrong at 256 (an 8x8 map), an error at 160; "
      "ours pools globally")

# %% [markdown]
# <details><summary>More to watch for</summary>
#
# The CIFAR stem (16 channels, $2k$ for DenseNet-BC: sec. 3; the authors' code uses $2k$ for all:
# Going deeper); dropout only without augmentation (sec. 4.2); a recomputed batch norm counting a
# batch twice (Going deeper); old torchvision checkpoint keys (`denselayer1.norm.1.weight`:
# plumbing); DenseNet-264, whose layers count 265 (Going deeper).
# </details>
#
# ## 8 · Exercises
#
# 1. **Dropout on C10.** Train `cifar_densenet40_k12(drop_rate=0.2)` without augmentation
#    (`dataclasses.replace(recipe, augment=False)`), with it, and without dropout. Against
#    Table 2's C10 and C10+ (`TABLE2["cifar_densenet40_k12"]`): which matters more?
# 2. **B and C separately.** Count parameters and multiply-adds of DenseNet-B
#    (`cifar_densenet(100, 12, compression=1.0)`) and DenseNet-C (`cifar_densenet(40, 12,
#    bottleneck=False, compression=0.5)`) against DenseNet and DenseNet-BC of the same depth:
#    which idea saves more (Figure 4, left)?
# 3. **Where does the memory go?** Extend `bytes_saved_for_backward` to report the bytes per
#    module type (BatchNorm2d, ReLU, Conv2d, cat). Which stores most in the naive net, and what
#    does `memory_efficient=True` remove?
# 4. **The cost of recomputing.** Time a training step of DenseNet-121 (batch 32 on a GPU, 4 on
#    a CPU) with and without `memory_efficient=True`, in one run: what does the saving cost?
# 5. **Feature reuse (Figure 5).** After training DenseNet (L=40, k=12), compute for each
#    layer's first conv the mean absolute weight on each earlier layer's $k$ input channels, and
#    draw Figure 5's heat map. Are early features really used late?
# 6. **DenseNet vs ResNet per parameter.** Train `cifar_resnet56` (notebook 02) with its recipe:
#    its parameters and test error beside DenseNet-BC-100's. Which uses its parameters better?
#
# **Cost in quick mode**: 2-4 train nothing; 1, 5 and 6 train three, one and one runs, none
# larger than section 5's (header). For 1 and 6, run two seeds each (`seed=` of
# `common.train_run`): believe a gap only if it exceeds their spread.
#
# ### Write it yourself
#
# Checked by `common.exercises.check` (`docs/exercises.md`); each is offered before its
# solution, in section 2:
#
# - **The dense layer of DenseNet-B** (sec. 3, "Composite function", "Bottleneck layers"):
#   [Write it yourself: the dense layer](#try-dense-layer).
#   `MyDenseLayer` returns only its $k$ new maps, torchvision's interface (the block
#   concatenates).
# - **The transition layer with compression** (sec. 3, "Pooling layers", "Compression"):
#   [Write it yourself: the transition layer](#try-transition), with $\lfloor\theta m\rfloor$
#   output maps.

# %% [markdown]
# ## Going deeper · the paper's tables, counted: layer counts, the CIFAR stem, the 73M DenseNet-264
#
# **Depths and names.** The depths of Table 2 fit the three-block layout ($L = 3n + 4$, or
# $6n + 4$ with bottlenecks), and Table 1's names count their layers: the stem conv, two convs
# per dense layer, three transitions and the classifier. All but one: "DenseNet-264" counts 265.

# %%
for name, row in TABLE2.items():
    convs_per_layer = 2 if row.bottleneck else 1
    assert (row.depth - 4) % (3 * convs_per_layer) == 0, name
layers = {depth: 1 + 2 * sum(blocks) + 3 + 1 for depth, (k, blocks) in TABLE1.items()}
assert all(layers[d] == d for d in TABLE1 if d != 264) and layers[264] == 265
print({name: (row.depth - 4) // (6 if row.bottleneck else 3) for name, row in TABLE2.items()},
      "layers per block")
print(f"layers counted from Table 1: {layers}")

# %% [markdown]
# **The authors' CIFAR stem.** Section 3 gives the CIFAR stem 16 channels, "or twice the growth
# rate for DenseNet-BC", and the first version of the authors' code had `nChannels = 16`. Since
# their commit 0a8891a (2016-11-30, "add BC structure") the code sets
# `nChannels = 2 * growthRate` for every CIFAR net, BC or not. Which one did Table 2 count? Build
# the six nets both ways: with the code's $2k$ stem, the three nets without bottleneck no longer
# round to Table 2's parameters; with the paper's 16 all six do (the BC nets are the same both
# ways). We follow the paper.

# %%
with torch.device("meta"):
    stem_2k_params = {name: common.count_params(_table2_densenet(name, num_init_features=2 * row.growth_rate))
                      for name, row in TABLE2.items()}
matches = {name: (round(cifar_params[name] / 1e6, 1) == round(row.params / 1e6, 1),
                  round(stem_2k_params[name] / 1e6, 1) == round(row.params / 1e6, 1))
           for name, row in TABLE2.items()}
display(common.table([(name, f"{row.params / 1e6:.1f}M", f"{cifar_params[name] / 1e6:.3f}M",
               f"{stem_2k_params[name] / 1e6:.3f}M", "yes" if matches[name][1] else "no")
              for name, row in TABLE2.items()],
             header=("Table 2", "paper", "stem 16 (paper)", "stem 2k (authors' code)", "2k rounds to paper")))
assert all(paper for paper, _ in matches.values())
assert [n for n, (_, code) in matches.items() if not code] == [n for n, r in TABLE2.items() if not r.bottleneck]

# %% [markdown]
# **The technical report's 264-layer DenseNet.** The report of Pleiss et al. trains "a 264-layer
# DenseNet (73M parameters)". Table 1's DenseNet-264 ($k = 32$) has far fewer; the same depth
# with $k = 48$ fits (our inference: the report's abstract gives no $k$; the authors' README
# lists a "DenseNet-cosine-264 (k=48)").

# %%
with torch.device("meta"):
    k48 = DenseNet(48, TABLE1[264][1])                  # the technical report's 264-layer net
    imagenet["264 (k=48)"] = {"params": common.count_params(k48), "macs": common.count_macs(k48)}
common.paper_vs_ours(
    [("264 layers (Pleiss et al.); ours: k = 48", TECH_REPORT_PARAMS[264], imagenet["264 (k=48)"]["params"],
      0.5e6 / TECH_REPORT_PARAMS[264])],
    title="Parameters the technical report states (to its last printed digit)")
common.table([(f"DenseNet-{d}", f"{c['params']:,}", f"{c['macs'] / 1e9:.3f}G")
              for d, c in imagenet.items() if d in (264, "264 (k=48)")],
             header=("224x224", "parameters", "multiply-adds"))

# %% [markdown]
# **DenseNet-161** ($k = 48$, stem 96, blocks 6, 12, 36, 24) is not in v5's tables, but in the
# authors' code, their README ("Models in the original paper") and torchvision: the notebook
# builds it from `TABLE1` and checks it against torchvision (section 4).
#
# ## Going deeper · memory_efficient in detail: gradients, batch-norm statistics, GPU peak
#
# **Same outputs and same gradients.** One training step (train mode: batch statistics) of a
# plain and a memory-efficient DenseNet with the same weights: equal outputs, equal gradients
# of every parameter and of the input, and equal running statistics afterwards.

# %%
def one_step(model: nn.Module, x: torch.Tensor):
    """Output, input gradient and parameter gradients of one forward/backward pass."""
    x = x.clone().requires_grad_(True)
    out = model(x)
    (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
    return out.detach(), x.grad, {n: p.grad for n, p in model.named_parameters()}


torch.manual_seed(0)
plain = cifar_densenet(40, 12).train()
efficient = cifar_densenet(40, 12, memory_efficient=True).train()
efficient.load_state_dict(plain.state_dict())
x = torch.randn(4, 3, 32, 32)
(out_p, gx_p, g_p), (out_e, gx_e, g_e) = one_step(plain, x), one_step(efficient, x)
torch.testing.assert_close(out_e, out_p)
torch.testing.assert_close(gx_e, gx_p)
for name in g_p:
    torch.testing.assert_close(g_e[name], g_p[name], msg=name)
for (name, a), b in zip(plain.state_dict().items(), efficient.state_dict().values()):
    torch.testing.assert_close(b, a, msg=name)                 # running statistics too
print(f"memory_efficient=True: same outputs, same gradients of the input and of all "
      f"{len(g_p)} parameters, same running statistics after the step")

# %% [markdown]
# **torchvision's batch-norm statistics.** torchvision's own `memory_efficient=True` gives the
# same outputs and gradients too, but its recomputation runs `norm1` a second time in training
# mode: each step updates those running statistics twice (and counts two batches). Ours
# restores them (`_running_stats_kept`), as the authors' own memory-efficient Lua layer already
# did. A check on the buffers after one step shows it:

# %%
tv_plain, tv_efficient = (common.random_reference(
    lambda me=me: torchvision.models.densenet121(memory_efficient=me), seed=1) for me in (False, True))
x = torch.randn(2, 3, 64, 64)
for m in (tv_plain, tv_efficient):
    m.train()(x).sum().backward()
counted = [m.features.denseblock1.denselayer1.norm1.num_batches_tracked.item() for m in (tv_plain, tv_efficient)]
assert counted == [1, 2]
differs = [k for k, v in tv_plain.state_dict().items() if not torch.equal(v, tv_efficient.state_dict()[k])]
assert differs and all(".norm1." in k for k in differs)
print(f"torchvision: norm1 counted {counted[0]} batch without and {counted[1]} with memory_efficient; "
      f"{len(differs)} buffers differ after one step, all in norm1 (e.g. {differs[0]})")

# %% [markdown]
# **DenseNet-121, one ImageNet image**: the bytes kept for the backward pass, without and with
# the option.

# %%
x = torch.randn(1, 3, 224, 224)                        # one ImageNet image, fp32
saved = {}
for me in (False, True):
    torch.manual_seed(0)
    saved[me] = bytes_saved_for_backward(common.get_model("densenet121", memory_efficient=me).train(), x)
assert saved[True] < 0.6 * saved[False]
print(f"DenseNet-121, one 224x224 image, training mode: {saved[False] / 2**20:.1f} MiB kept for "
      f"backward without, {saved[True] / 2**20:.1f} MiB with memory_efficient=True "
      f"({saved[False] / saved[True]:.2f}x less, {1 - saved[True] / saved[False]:.0%} saved)")
MEMORY_SAVED_121 = saved

# %% [markdown]
# **The peak on a GPU.** Where CUDA is available, the peak allocation of a training step of
# DenseNet-121 (batch 32), without and with the option.

# %%
if torch.cuda.is_available():                          # the peak allocation of a training step
    peak = {}
    for me in (False, True):
        net = common.get_model("densenet121", memory_efficient=me).cuda().train()
        xb = torch.randn(32, 3, 224, 224, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        net(xb).sum().backward()
        torch.cuda.synchronize()
        peak[me] = torch.cuda.max_memory_allocated() - base
        del net, xb
    print(f"CUDA, DenseNet-121, batch 32: peak {peak[False] / 2**30:.2f} GiB without, "
          f"{peak[True] / 2**30:.2f} GiB with memory_efficient=True")
else:
    print("No CUDA device: the peak GPU allocation is not measured here.")

# %% [markdown]
# ## Reference · the complete Easter-egg table
#
# Every detail the implementation depends on, its value, and where it comes from. "Not stated"
# means the paper leaves it open and we say what we chose and why. Section, table and figure
# numbers are those of arXiv:1608.06993v5 (28 January 2018). v5 is not the CVPR text: it cites the
# memory report of July 2017 (sec. 4.2, [26]), and the authors' README files its DenseNet-264 under
# "Models in the tech report" and DenseNet-161 under "Models in the original paper". We did not
# read the CVPR text; where an earlier version may differ, the row says so.
#
# | Detail | Value | Where |
# |---|---|---|
# | Dense connectivity | $x_\ell = H_\ell([x_0, \ldots, x_{\ell-1}])$, concatenation along the channels, inside a block | Eqn. (2), sec. 3 "Dense connectivity", Fig. 1 |
# | Composite function $H_\ell$ | BN, then ReLU, then 3×3 conv (pre-activation order, after He et al.'s *Identity mappings* [12]) | sec. 3 "Composite function" |
# | Growth rate $k$ | each $H_\ell$ outputs $k$ maps; layer $\ell$ of a block sees $k_0 + k(\ell - 1)$ | sec. 3 "Growth rate" |
# | Bottleneck (DenseNet-B) | BN-ReLU-Conv(1×1)-BN-ReLU-Conv(3×3); "each 1×1 convolution produce[s] 4k feature-maps" | sec. 3 "Bottleneck layers" |
# | Transition layer | "a batch normalization layer and an 1×1 convolutional layer followed by a 2×2 average pooling layer" | sec. 3 "Pooling layers" |
# | **Egg: the ReLU in the transition** | the text names BN, 1×1 conv, pool, with no ReLU; Table 1's caption says every "conv" is BN-ReLU-Conv, and the authors' code and torchvision have the ReLU: we keep it (a strict load, `load_state_dict(strict=True)`, checks only names and shapes, and would pass without it, but the outputs would differ) | Table 1 caption; `models/densenet.lua` of the authors' repository |
# | Compression (DenseNet-C) | a transition after $m$ maps outputs $\lfloor\theta m\rfloor$; $\theta = 0.5$; B and C together: DenseNet-BC | sec. 3 "Compression" |
# | CIFAR/SVHN network | three dense blocks with equal numbers of layers, at 32×32, 16×16, 8×8; 3×3 convs zero-padded by one pixel | sec. 3 "Implementation Details" |
# | CIFAR stem | one conv with 16 output channels, "or twice the growth rate for DenseNet-BC"; no pooling. The text gives no kernel size: the 3×3 is the authors' code (`SpatialConvolution(3, nChannels, 3,3, 1,1, 1,1)`) | sec. 3 "Implementation Details"; kernel: `models/densenet.lua` |
# | **Egg: the authors' CIFAR stem is $2k$ for every net** | the paper's 16 channels (2k only for BC) was the first code's (`nChannels = 16`, 2016-08-25); since commit 0a8891a ("add BC structure", 2016-11-30) the code sets `nChannels = 2 * growthRate` for every CIFAR net, BC or not. Table 2's parameters fit the paper's 16, not the code's $2k$ (counted in Going deeper · the paper's tables, counted). We follow the paper. | sec. 3; authors' repository history |
# | Depth $L$ (CIFAR) | not stated as a formula: $L$ counts the stem conv, every conv of the blocks, the two transitions and the classifier, so $L = 3n + 4$ (or $6n + 4$ with bottlenecks) for $n$ layers per block: $L = 40 \to n = 12$, BC $L = 100 \to n = 16$ | derived; the authors' code computes `N = (depth - 4) / 3`, halved with bottlenecks |
# | Head | global average pooling, then a softmax classifier | sec. 3 "Implementation Details", Table 1 |
# | **Egg: the final BN-ReLU** | the last dense block's output goes through BN and ReLU before the pooling: not in the text, and not implied by Table 1 either (its caption's BN-ReLU-Conv covers the "conv" rows; the classification row has no conv). Our reading: the pre-activation design leaves the last block's output un-normalised, so something must. Present in the authors' code (`addTransition(..., last)`) and torchvision (`norm5`, then `F.relu`) | authors' code; torchvision |
# | ImageNet network | DenseNet-BC, four dense blocks, 224×224 input; stem: $2k$ 7×7 convs with stride 2, then 3×3 max pool with stride 2; $k = 32$ | sec. 3 "Implementation Details", Table 1 |
# | Table 1 blocks | layers per dense block of DenseNet-121, 169, 201, 264: written once as `TABLE1` (section 2, the model) | Table 1 |
# | **Egg: DenseNet-161** | $k = 48$, stem 96, blocks (6, 12, 36, 24): not in v5's tables (v5's Table 1 says $k = 32$ for all), but in the authors' code, in their README's list "Models in the original paper" (22.2% top-1), and in torchvision. Whether the CVPR text's tables have it we did not check | authors' repository README (26b3d7a); torchvision |
# | Conv bias | none | not stated: BN follows every conv; the authors' code removes the biases, torchvision has none |
# | Weight init | He et al. [10] | sec. 4.2; the authors' code draws $\mathcal{N}(0, 2/(k_h k_w c_\text{out}))$ (fan-out): we do the same (torchvision's `kaiming_normal_` uses fan-in) |
# | CIFAR recipe | SGD, batch 64, 300 epochs (SVHN: 40), lr 0.1 ÷ 10 at 50% and 75% of the epochs, weight decay $10^{-4}$, Nesterov momentum 0.9 without dampening | sec. 4.2 |
# | Dropout | 0.2 after each conv except the first, only on the data sets without augmentation (C10, C100, SVHN); none on C10+ | sec. 4.2 |
# | **Egg: where the dropout goes** | the paper: after each conv except the first (the authors' code: after both convs of a dense layer and the transition's conv); torchvision: only after the 3×3 conv of a dense layer. We follow the paper. | sec. 4.2; authors' code; torchvision |
# | CIFAR data | "we hold out 5,000 training images as a validation set" (what for, the text does not say; choosing settings is our reading); "for the final run we use all 50,000 training images"; per-channel mean/std normalisation; augmentation "+" = "mirroring/shifting". The 4-pixel zero-padding and random crop is the authors' code (`t.RandomCrop(32, 4)` in `datasets/cifar10.lua`) and README, not the paper | sec. 4.1; authors' code |
# | ImageNet recipe | batch 256, 90 epochs, lr 0.1 ÷ 10 at epochs 30 and 60; the augmentation and every other setting of the fb.resnet.torch ResNet code | sec. 4.2, sec. 4.4 |
# | Table 2 | depth, growth rate, B, C, parameters and errors (C10, C10+, C100, C100+, SVHN) of the six DenseNets: written once as `TABLE2` (section 2, plumbing) | Table 2 |
# | Table 3 | ImageNet top-1 and top-5 error, single-crop and 10-crop: `TABLE3` (section 2, plumbing) | Table 3 |
# | Memory | a naive implementation stores every concatenation: memory quadratic in depth; see the technical report | sec. 4.2 ("may contain memory inefficiencies"); "quadratic": Pleiss et al. 2017, [arXiv:1707.06990](https://arxiv.org/abs/1707.06990) |
# | **Egg: the 73M-parameter DenseNet-264** | the technical report trains "a 264-layer DenseNet (73M parameters)". Its abstract gives neither $k$ nor the blocks; our inference: Table 1's blocks with $k = 48$ (72.7M, counted in Going deeper · the paper's tables, counted; the authors' README lists a "DenseNet-cosine-264 (k=48)"), not Table 1's $k = 32$ (33.3M) | Pleiss et al. 2017, abstract; our count |
# | **Egg: `memory_efficient` and batch norm** | torchvision recomputes `norm1` in the backward pass in training mode, so its running statistics are updated twice per step; ours restores them (section 2, the memory-efficient dense layer), as the authors' own memory-efficient Lua layer already did (`DenseConnectLayer.lua` saves `running_mean`/`running_var` before its re-forward and copies them back) | measured in Going deeper · memory_efficient in detail; authors' repository |

# %%
print(f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s "
      f"(smoke mode {common.SMOKE}, device {common.pick_device()})")
print(common.mode_report())
