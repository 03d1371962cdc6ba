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
# # 00 · The shared toolkit
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/the-imagenet-5/course/blob/main/notebooks/00_toolkit.ipynb)
#
# Every paper notebook of *The ImageNet 5* stands on a small package, `common`. This notebook is
# its tour, so that later notebooks can spend their words on the papers:
#
# 1. **Data**: CIFAR-10 held on the device as one uint8 tensor, split 45k / 5k / 10k, normalised
#    with the right statistics, augmented as tensor operations on whole batches.
# 2. **A model, block by block**: a small baseline CNN, each block followed by a shape check,
#    saved into `common/models/` from this notebook (`#@save`).
# 3. **Inspection**: parameters, multiply-adds, a summary by blocks, the paper-vs-ours table, and
#    the equivalence check against a reference implementation.
# 4. **Training**: a `Recipe` (the paper's numbers, each with its source), the ten lines at the
#    core of `fit` written out once, then `fit` itself with its curves; then a checkpoint, and a
#    resume that ends exactly where an uninterrupted run ends; and the same training as a
#    command, for longer runs, several GPUs and ImageNet-style folders such as Imagenette.
#
# **Prerequisites**: you can write a PyTorch training loop.
#
# **Run time**, measured on a 2-core AMD EPYC (Zen 4) CPU shared with other jobs, with one CPU
# thread and bf16 autocast, on the offline digits set: smoke mode (`IMAGENET5_SMOKE=1`, what the
# tests run) about 20 s for the whole notebook; quick mode (`IMAGENET5_QUICK=1`): 64 s measured
# on the quiet 2-core machine, two threads (`python tools/notebook_times.py`; docs/settings.md;
# 134 s before issue 32), in which the baseline learns to well above chance. With CIFAR-10 on
# disk, quick mode trains on a 5,000-image subset and sees the same 40,000 training images per
# run: not measured. Full mode trains the baseline for 30 epochs of 45,000 CIFAR-10 images,
# 1.35 million images: divide by the images/second that `fit`'s progress bar shows. The last
# cell prints the time of your own run. On a GPU: not measured yet.

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
import ast
import dataclasses
import inspect
import io
import shutil
import time
import tokenize

import matplotlib.pyplot as plt
import torch
from torch import nn

print(f"torch {torch.__version__}; device: {common.pick_device()}; smoke mode: {common.SMOKE}; "
      f"offline: {common.OFFLINE}")
NOTEBOOK_START = time.perf_counter()

# %% [markdown]
# ## How the course is organised
#
# One notebook per paper, in the order of the curriculum map (background first):
#
# ```
# 00 toolkit ─► 01 VGG ─► 02 ResNet ─┬─► 03 DenseNet ─────────────────────────────┐
#                                    ├─► 04 SE-Net ─────────┐                     │
#                                    └─► 05 MobileNetV2 ────┴─► 06 EfficientNet ──┴─► 07 side by side
#
# 02 ResNet + 05 MobileNetV2 + 06 EfficientNet ─► 08 ConvNeXt, the capstone (before or after 07)
# 02 ResNet + 06 EfficientNet ─► 09 transfer learning
# ```
#
# Each paper notebook holds the *Easter-egg table*: every hyperparameter and architectural detail
# with the place the paper states it (section, table, figure), or "not stated: we chose X because
# Y". That table is the one place for each value and its source. Beside each notebook,
# `paper_notes/<paper>.md` holds the reading notes, for reading away from the code: the order to
# read the paper in and what to look for, the key ideas in plain words, the longer explanations,
# and what other sources say; they point to the notebook's table for the values.

# %%
notes = sorted(p.name for p in (common.ROOT / "paper_notes").glob("*.md"))
print("paper notes:", ", ".join(notes) or "none yet")

# %% [markdown]
# ## 1 · Data
#
# `common.load_data("cifar10")` downloads CIFAR-10 once (into `data/`, or `$IMAGENET5_DATA`), splits
# the 50,000 training images into **45,000 for training and 5,000 for validation**, the split
# ResNet's section 4.2 chose its training length on, and keeps the 10,000 test images for the
# final number only. (`load_data("cifar10", val_fraction=0)` trains on all 50,000 instead, as the
# ResNet paper's reported results do; notebook 02 explains when to use which.) Everything lives
# on the device as uint8: CIFAR-10's training set is 150 MB that way, so there is no data loader
# and no per-image Python in the training loop.
#
# Without internet (and in the tests) CIFAR-10 cannot be had. Then the loader says so loudly and
# uses `digits`: scikit-learn's 1,797 real handwritten digits, rendered to 3x32x32 colour images.
# It is real and learnable, but it is **not CIFAR-10**, and every run records which data it used.

# %%
data = common.load_data("cifar10")
data

# %%
fig, axes = plt.subplots(2, 8, figsize=(12, 3.4))
for ax, i in zip(axes.flat, range(16)):
    ax.imshow(data.train.x[i].permute(1, 2, 0).cpu())
    ax.set_title(data.classes[int(data.train.y[i])], fontsize=9)
    ax.axis("off")
fig.suptitle(f"the first training images of {data.description}")
plt.show()

# %% [markdown]
# **Class balance.** CIFAR-10 has exactly 5,000 training images per class; a random 5k validation
# split leaves about 4,500 each. A skewed split would make accuracy mean something else.

# %%
counts = {s: torch.bincount(data[s].y.cpu(), minlength=data.num_classes) for s in ("train", "val", "test")}
fig, ax = plt.subplots(figsize=(8, 2.6))
for k, (s, c) in enumerate(counts.items()):
    ax.bar(torch.arange(data.num_classes) + 0.27 * (k - 1), c, width=0.27, label=f"{s} ({int(c.sum())})")
ax.set_xticks(range(data.num_classes), data.classes, rotation=30)
ax.legend()
plt.show()
assert sum(int(c.sum()) for c in counts.values()) == len(data.train) + len(data.val) + len(data.test)
assert all((c > 0).all() for c in counts.values()), "every class appears in every split"

# %% [markdown]
# **Normalisation.** Each channel is shifted by its mean and divided by its standard deviation,
# both computed over every pixel of the training split (so nothing leaks from validation or
# test). For CIFAR-10 this gives std ≈ (0.247, 0.243, 0.261). A value copied through many
# repositories, (0.2023, 0.1994, 0.2010), is wrong: it is the mean of the per-image stds, which
# leaves out the variation *between* images. We recompute and compare:

# %%
from common.data import CIFAR10_MEAN, CIFAR10_STD, channel_stats

mean, std = channel_stats(data.train.x)
print("mean", [round(v, 4) for v in mean.tolist()], " std", [round(v, 4) for v in std.tolist()])
if data.name == "cifar10" and not data.smoke:
    torch.testing.assert_close(std, torch.tensor(CIFAR10_STD), atol=2e-3, rtol=0)
x = data.normalize(data.train.x[:2048])
print("after normalising: per-channel mean", [round(v, 3) for v in x.mean((0, 2, 3)).tolist()],
      "std", [round(v, 3) for v in x.std((0, 2, 3)).tolist()])

# %% [markdown]
# **Augmentation** (ResNet section 4.2, after Lee et al. 2015): pad 4 pixels on each side, take a
# random 32x32 crop, flip horizontally with probability 1/2. `data.augment` does it to a whole
# uint8 batch at once: one gather with per-image row and column offsets, where a flip is just the
# column indices reversed. Below: one image and eight of its augmentations; then a check, image
# by image, against torchvision's own crop and flip with the same random draws.

# %%
g = torch.Generator().manual_seed(0)
one = data.train.x[:1].expand(8, -1, -1, -1)
aug = data.augment(one, generator=g)
fig, axes = plt.subplots(1, 9, figsize=(13, 1.8))
for ax, img, title in zip(axes, [one[0], *aug], ["original"] + [f"aug {i}" for i in range(1, 9)]):
    ax.imshow(img.permute(1, 2, 0).cpu())
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %%
import torchvision.transforms.v2.functional as TF

batch = data.train.x[:64]
g = torch.Generator().manual_seed(1)
ours = data.augment(batch, generator=g)
g = torch.Generator().manual_seed(1)                     # the same draws, in the same order
ox, oy = torch.randint(0, 9, (64,), generator=g), torch.randint(0, 9, (64,), generator=g)
flip = torch.rand(64, generator=g) < 0.5
for i in range(64):
    ref = TF.crop(TF.pad(batch[i], [4]), int(oy[i]), int(ox[i]), 32, 32)
    ref = TF.horizontal_flip(ref) if flip[i] else ref
    assert torch.equal(ours[i], ref), i
print("batched augmentation == torchvision crop + flip, image by image, for 64 images")

# %% [markdown]
# ## 2 · A model, block by block
#
# The paper notebooks build each architecture from its blocks, check every block's output shape,
# and save the code into `common/models/` so later notebooks can import it. A cell whose first
# line is `#@save <name>` goes into `common/models/<name>.py` (run `python -m common.save`; a test
# fails when the file and the notebook differ). Here, a small baseline: three stages of two
# conv-BN-ReLU layers, max-pooling between stages, global average pooling and one linear layer.
# Global pooling makes the classifier independent of the input size.

# %%
#@save baseline
import torch
from torch import nn

from common.models.registry import check_image_batch, register_model

# %%
#@save baseline
def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (no bias: the batch norm that follows has one), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


# %%
block = conv_bn_relu(3, 32)
out = block(torch.randn(4, 3, 32, 32))
assert out.shape == (4, 32, 32, 32), out.shape      # padding=1 keeps 32x32
assert (out >= 0).all()                              # after the ReLU
out.shape

# %%
#@save baseline
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


@register_model("cifar_baseline", head="fc")
def cifar_baseline(num_classes: int = 10, **kwargs) -> BaselineCNN:
    """The course's baseline CNN for 32x32 images (about 0.29M parameters)."""
    return BaselineCNN(num_classes=num_classes, **kwargs)


# %%
model = common.get_model("cifar_baseline", num_classes=data.num_classes)
x = torch.randn(2, 3, 32, 32)
for i, layer in enumerate(model.features):
    x = layer(x)
    print(f"features[{i}] {type(layer).__name__:<10} -> {tuple(x.shape)}")
assert x.shape == (2, 128, 8, 8)
assert model(torch.randn(2, 3, 32, 32)).shape == (2, data.num_classes)
assert model(torch.randn(2, 3, 64, 48)).shape == (2, data.num_classes)  # not tied to 32x32

# %% [markdown]
# Bad input gets an error that says what to do:

# %%
try:
    model(torch.randn(3, 32, 32))
except ValueError as err:
    print("ValueError:", err)
else:
    raise AssertionError("an image without a batch dimension was accepted")

# %% [markdown]
# The registry works like torchvision's: `common.list_models()` and
# `common.get_model(name, num_classes=...)`; an unknown name lists what exists.

# %%
print(common.list_models("cifar_*"))
try:
    common.get_model("cifar_basline")
except ValueError as err:
    print("ValueError:", str(err)[:160], "...")
else:
    raise AssertionError("a misspelt model name was accepted")

# %% [markdown]
# ## 3 · Inspection
#
# Papers give sizes in parameters and compute in "FLOPs", which in these papers are
# **multiply-adds** (ResNet's Table 1: 3.6 billion for ResNet-34). `common.count_macs` counts the
# multiply-adds of convolutions and linear layers with `torch.utils.flop_counter` (which counts two
# FLOPs per multiply-add) and, like the papers, leaves out batch norm, activations and pooling.

# %%
widths = (32, 64, 128)                      # BaselineCNN's default; exercise 3 changes it
model = common.get_model("cifar_baseline", num_classes=data.num_classes, widths=widths)
params = common.count_params(model)
macs = common.count_macs(model, (1, 3, 32, 32))
# By hand: each 3x3 conv has 9*c_in*c_out weights (no bias), applied at every output pixel; each
# batch norm a scale and a shift per channel; the classifier widths[-1]*classes weights + biases.
convs, c_in, size = [], 3, 32                # (c_in, c_out, output size) of each conv
for i, w in enumerate(widths):
    convs += [(c_in, w, size), (w, w, size)]
    c_in, size = w, size // 2                # a 2x2 max pool after each stage but the last
params_by_hand = (sum(9 * ci * co + 2 * co for ci, co, _ in convs)
                  + widths[-1] * data.num_classes + data.num_classes)
by_hand = sum(9 * ci * co * s * s for ci, co, s in convs) + widths[-1] * data.num_classes
print(f"{params:,} parameters (by hand: {params_by_hand:,}), {macs:,} multiply-adds per 32x32 "
      f"image (by hand: {by_hand:,})")
assert macs == by_hand and params == params_by_hand

# %%
common.summary(model, (1, 3, 32, 32), depth=2)

# %% [markdown]
# `common.paper_vs_ours` puts a paper's numbers beside ours as *paper / ours / ratio* and fails
# when a ratio leaves the stated tolerance. When the numbers come from elsewhere, `source=`
# names them (a library's documented counts, or here the count by hand above), so that a table
# never calls another source "paper":

# %%
common.paper_vs_ours([("parameters", params_by_hand, params), ("multiply-adds", by_hand, macs)],
                     rtol=0.0, title="baseline: by hand vs counted", source="by hand");

# %% [markdown]
# **Checking against a reference implementation.** The paper notebooks build torchvision's model
# with random weights, load its `state_dict()` into ours with `strict=True` (every name and shape
# must match) and assert equal outputs: `common.check_against_reference(ours, reference, size)`.
# Here the reference is the same architecture written independently as one flat
# `nn.Sequential`; its weights are renamed to our module names first.
#
# A freshly built reference has default batch norms (weight 1, bias 0, running mean 0, running
# variance 1), and in eval mode such a batch norm is (almost) the identity: a batch norm placed
# after the ReLU, two swapped or one skipped would give the same outputs. So
# `check_against_reference` first gives the reference's normalisation layers random affine
# parameters and running statistics (on a copy: the reference you pass is not changed), and its
# printed line says how many. The cell after it shows a misplaced batch norm caught.

# %%
def flat_reference(num_classes=10):
    layers, c = [], 3
    for i, w in enumerate((32, 64, 128)):
        for _ in range(2):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        if i < 2:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


class Renamed(nn.Module):
    """Wraps the flat reference and names its weights as BaselineCNN does."""
    def __init__(self, flat):
        super().__init__()
        self.flat = flat

    def state_dict(self, *args, **kwargs):
        ours = common.get_model("cifar_baseline").state_dict().keys()
        return dict(zip(ours, self.flat.state_dict().values()))

    def forward(self, x):
        return self.flat(x)


reference = Renamed(flat_reference())       # default initialisation, batch norms included
common.check_against_reference(common.get_model("cifar_baseline"), reference, (4, 3, 32, 32));

# %% [markdown]
# The same check on a model with one bug: the first batch norm applied after its ReLU. Every
# name and shape matches, so the strict load passes; against the default-initialised reference
# a plain load-and-compare passes too (its batch norms are the identity), but
# `check_against_reference` catches it:

# %%
class BNAfterReLU(nn.Sequential):
    """conv, bn, relu under the same names (0, 1, 2), applied in the wrong order."""
    def forward(self, x):
        conv, bn, relu = self
        return bn(relu(conv(x)))                  # the bug: BN after the ReLU


buggy = common.get_model("cifar_baseline").eval()
buggy.features[0] = BNAfterReLU(*buggy.features[0])
buggy.load_state_dict(reference.state_dict(), strict=True)
x = torch.randn(4, 3, 32, 32)
with torch.no_grad():
    plain_diff = (buggy(x) - reference.eval()(x)).abs().max().item()
print(f"plain load-and-compare: max difference {plain_diff:.2e} (the bug passes)")
assert plain_diff < 1e-5
try:
    common.check_against_reference(buggy, reference, (4, 3, 32, 32))
except AssertionError as err:
    print("check_against_reference:", str(err).splitlines()[0])
else:
    raise AssertionError("the misplaced batch norm went unnoticed")

# %% [markdown]
# A reference whose names or shapes differ is refused, with the differences listed:

# %%
try:
    common.check_against_reference(common.get_model("cifar_baseline", widths=(32, 64, 256)),
                                   reference, (4, 3, 32, 32))
except ValueError as err:
    print("ValueError:", err)
else:
    raise AssertionError("a reference with other shapes was accepted")

# %% [markdown]
# ## 4 · Training
#
# A `Recipe` holds a paper's training hyperparameters, each with the place it comes from, and
# `common.fit` runs it. Our baseline is not from a paper, so its recipe says "our choice" and why.
# In smoke mode (`IMAGENET5_SMOKE=1`, set by the tests) `fit` runs only the first epochs on a
# small subset and squeezes the schedule into them; in quick mode (`IMAGENET5_QUICK=1`) a few
# epochs on a subset, enough to learn visibly; the recipe you see stays the real one.

# %%
recipe = common.Recipe(
    epochs=30, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
    schedule="cosine", warmup_epochs=1, label_smoothing=0.0,
    sources={
        "epochs": "our choice: long enough for a small CNN to settle",
        "batch_size": "ResNet paper, section 4.2 (mini-batch 128)",
        "lr": "ResNet paper, section 4.2 (0.1)",
        "momentum": "ResNet paper, section 4.2 (0.9)",
        "nesterov": "our choice: a free, small gain for SGD",
        "weight_decay": "our choice: 5e-4, the usual value for small CIFAR nets",
        "schedule": "our choice: cosine (Loshchilov & Hutter 2017) needs no milestones",
        "warmup_epochs": "our choice: one epoch of linear warm-up keeps lr 0.1 stable",
        "augment": "ResNet paper, section 4.2 (pad 4, crop 32, flip)",
    })
recipe.table()

# %% [markdown]
# **The loop, once.** Nothing `fit` does is hidden. Its core is the loop every PyTorch
# training script has: for each batch, set the learning rate from the schedule, forward, loss,
# backward, step. Here it is, written out, with the same batches (shuffled and augmented by a
# generator seeded from the seed and the epoch) and the same optimizer as `fit`:

# %%
def train_loop(model, data, recipe, seed=0):
    """The core of common.fit, without what fit adds around it (mixed precision, channels_last,
    checkpoints, the progress bar and plot, the history, smoke and quick mode)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    steps = len(data.train) // recipe.batch_size              # the last partial batch is dropped
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        for i, (x, y) in enumerate(data.batches("train", recipe.batch_size, shuffle=True,
                                                augment=recipe.augment, generator=order,
                                                drop_last=True)):
            for group in optimizer.param_groups:              # the schedule, set every step
                group["lr"] = recipe.lr * recipe.lr_factor(epoch + i / steps)
            loss = criterion(model(x), y)                     # forward, loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()                                   # backward
            optimizer.step()                                  # step
    return model


# %% [markdown]
# The check that this *is* `fit`'s loop: one epoch of it and one epoch of `fit` (in fp32 and the
# default memory layout, the two things `fit` adds that change the arithmetic), from the same
# initial weights, end with the same weights.

# %%
one_epoch = dataclasses.replace(recipe, epochs=1, warmup_epochs=0)
common.seed_everything(0)
looped = train_loop(common.get_model("cifar_baseline", num_classes=data.num_classes), data,
                    one_epoch)
common.seed_everything(0)
by_fit = common.get_model("cifar_baseline", num_classes=data.num_classes)
common.fit(by_fit, data, one_epoch, amp=False, channels_last=False, verbose=False)
diff = max((a - b).abs().max().item() for a, b in
           zip(looped.state_dict().values(), by_fit.state_dict().values()) if a.is_floating_point())
print(f"largest weight difference, the loop above vs fit: {diff:.3g}")
if data.device.type == "cpu":
    assert diff == 0.0

# %% [markdown]
# **Where this loop is in `fit`.** `fit` (in `common/train/loop.py`) is this loop with what a real run
# needs put around it. Each line of `train_loop` has its twin in `fit`'s body, in the same order,
# marked with a comment `# 00:`; the optimizer comes from `make_optimizer` (SGD here, the
# recipe's choice in general), and the loss and backward pass go through autocast and the
# gradient scaler (mixed precision, below). The rest of `fit` is named steps around the loop
# (placing the model, planning the epochs, restoring a checkpoint, validating, writing the
# checkpoint, printing), listed in its docstring. The cell shows those lines of `fit` beside their
# twins and checks that there is one for each line of `train_loop` above.

# %%
source = inspect.getsource(common.fit)
marked = {token.start[0] for token in tokenize.generate_tokens(io.StringIO(source).readline)
          if token.type == tokenize.COMMENT and token.string.startswith("# 00:")}
heart = [source.splitlines()[n - 1].split("# 00:") for n in sorted(marked)]
loop_lines = [node for node in ast.walk(ast.parse(inspect.getsource(train_loop)).body[0])
              if isinstance(node, ast.stmt) and not isinstance(node, (ast.FunctionDef, ast.Return))
              and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
assert len(heart) == len(loop_lines), (len(heart), len(loop_lines))
common.table([(f"`{line.strip()}`", f"`{twin.strip()}`") for line, twin in heart],
             header=("common.fit", "train_loop above"))

# %% [markdown]
# `fit` wraps that loop with what a real run needs: mixed precision where the hardware has it
# (bf16 autocast on a CUDA GPU, fp16 with loss scaling on GPUs without bf16; bf16 autocast on a
# CPU with native bf16, such as AMD Zen 4 or Intel Cooper Lake and later; fp32 on other CPUs;
# its first printed line says which), channels_last, a progress bar with images/second, a live
# plot, validation after every epoch, and the run's history (returned, and saved as JSON beside
# the checkpoint). Weights and checkpoints stay fp32 in every case.

# %%
common.seed_everything(0)
model = common.get_model("cifar_baseline", num_classes=data.num_classes)
history = common.fit(model, data, recipe)

# %%
common.plot_histories({"baseline": history}, metrics=("train_loss", "val_loss", "val_acc"))
test = common.evaluate(model, data, "test")
print(f"test accuracy {test['acc']:.4f} on {data.description} after {history['epoch'][-1]} epochs "
      f"(chance: {1 / data.num_classes:.2f})")

# %% [markdown]
# ### Checkpoints and resume
#
# With a `run_dir`, `fit` writes `checkpoint.pt` after every epoch (to a temporary file first, then
# renamed over the old one, so a crash mid-write never destroys the last good checkpoint) and
# `history.json` beside it. `resume=True` continues the run exactly: weights, optimizer
# momentum, step (and so the learning rate), gradient scaler and random state. Below, one run
# stops after an epoch and is resumed; on a CPU its weights end up *bit for bit* equal to a run
# that never stopped. (On a GPU some kernels are not deterministic, so there they agree closely.)
#
# The demonstration's recipe is short but learns: two epochs with a small batch (32), so that
# even the small training split of the offline set gives dozens of steps per epoch. (In smoke
# mode, the tests, the data is cut to a few hundred images: there it shows the mechanics only.)

# %%
short = common.Recipe(epochs=2, batch_size=32, lr=0.05, schedule="cosine",
                      sources={"batch_size": "our choice: enough steps to learn in 2 epochs "
                                             "even on the offline set"})
run_dir = common.runs_dir("00_toolkit", "resume-demo")
shutil.rmtree(run_dir, ignore_errors=True)            # start the demonstration afresh

common.seed_everything(0)
straight = common.get_model("cifar_baseline", num_classes=data.num_classes)
common.fit(straight, data, short, verbose=False)

common.seed_everything(0)
stopped = common.get_model("cifar_baseline", num_classes=data.num_classes)
common.fit(stopped, data, short, run_dir=run_dir, stop_after_epochs=1)
print("files:", sorted(p.name for p in run_dir.iterdir()))

resumed = common.get_model("cifar_baseline", num_classes=data.num_classes)   # fresh weights
h = common.fit(resumed, data, short, run_dir=run_dir, resume=True)

diff = max((a - b).abs().max().item() for a, b in
           zip(straight.state_dict().values(), resumed.state_dict().values()) if a.is_floating_point())
print(f"largest weight difference, straight vs stopped-and-resumed: {diff:.3g}")
if data.device.type == "cpu":
    assert diff == 0.0

# %% [markdown]
# A checkpoint from another run is never silently ignored or overwritten:

# %%
for attempt in ({"resume": False}, {"resume": True, "recipe": common.Recipe(epochs=3, lr=0.05)}):
    try:
        common.fit(common.get_model("cifar_baseline", num_classes=data.num_classes), data,
                   attempt.pop("recipe", short), run_dir=run_dir, **attempt)
    except (FileExistsError, RuntimeError) as err:
        print(f"{type(err).__name__}: {err}\n")
    else:
        raise AssertionError(f"fit accepted the checkpoint of another run ({attempt})")

# %% [markdown]
# ### The same training as a command: longer runs, several GPUs, ImageNet-style data
#
# For runs longer than a notebook session, `fit` is also a command, `python -m common.train
# MODEL`: the same progress lines, checkpoint and history (in `--run-dir`, beside
# `command.json`, the settings the run started with), a recipe built from flags (every `Recipe`
# field has one; those you leave out take notebook 02's CIFAR-10 recipe, and the printed table
# says which is which), and `--resume` to continue exactly where it stopped. Bad input (an
# unknown model, a folder without images, a resume with other settings) is one line and exit
# status 2, with nothing overwritten; `python -m common.train --help` lists every flag. The cell
# below runs the command in this process on the offline digits (`common.cli.main` is what the
# command calls); in a terminal it reads
# `python -m common.train cifar_baseline --data digits --epochs 2 --batch-size 32`.

# %%
from common import cli

command_dir = common.runs_dir("00_toolkit", "command-demo")
shutil.rmtree(command_dir, ignore_errors=True)            # start the demonstration afresh
status = cli.main(["cifar_baseline", "--data", "digits", "--epochs", "2", "--batch-size", "32",
                   "--run-dir", str(command_dir)])
assert status == 0 and (command_dir / "checkpoint.pt").exists()
print("files:", sorted(p.name for p in command_dir.iterdir()))

# %% [markdown]
# **Several GPUs.** The same command under `torchrun --standalone --nproc_per_node=N -m
# common.train MODEL ...` trains with PyTorch's DistributedDataParallel, one process per GPU:
# `--batch-size` is then the global batch, cut into N pieces at every step, and `--lr` the
# learning rate for that global batch, whatever N is. `common/distributed.py` explains what DDP
# adds, and [docs/several-gpus.md](../docs/several-gpus.md) what is tested (on CPUs, with two gloo
# processes) and what is not.
#
# **ImageNet-style data: Imagenette on Colab.** `--data imagefolder:PATH` reads any folder in
# torchvision's ImageFolder layout (`PATH/train/<class>/*.jpg`, `PATH/val/<class>/*.jpg`) with
# the ImageNet pipeline (random-size crops resized to 224 and flips for training; resize to 256
# and the central 224 for evaluation), the files decoded in DataLoader workers. Imagenette,
# fast.ai's ten easy ImageNet classes
# ([github.com/fastai/imagenette](https://github.com/fastai/imagenette)), is small enough for a
# Colab GPU. In a Colab cell (GPU runtime), after the set-up cell above has cloned the course
# into `imagenet5/`:
#
# ```
# %cd /content/imagenet5
# !mkdir -p data && wget -qO- https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz | tar -xz -C data
# !python -m common.train resnet18 --data imagefolder:data/imagenette2-320 --epochs 40 --batch-size 256 --lr 0.1 --resume
# ```
#
# Write `efficientnet_b0` in place of `resnet18` to train EfficientNet-B0 (notebook 06) the same
# way; [docs/imagenet-style-data.md](../docs/imagenet-style-data.md) says where each value of
# this recipe comes from, and which flags give EfficientNet's own. Colab erases its disk with the
# machine: with `KEEP_ON_DRIVE = True` in the set-up cell the command's default run folder is on
# your Google Drive, and the same cell, with its `--resume`, continues the run in the next
# session.

# %% [markdown]
# ## Exercises
#
# Exercises 1, 2 and 4 compare two trainings. Two runs that differ only in their seed
# (`common.seed_everything(s)` and `fit(..., seed=s)`) already end some tenths of a point apart
# in accuracy, more in quick mode and on the small offline set, so a difference of that size
# between two single runs says nothing. Each exercise says what one seed can show; for a small
# difference, run each variant with 3 seeds or more and compare it with the spread of the seeds.
#
# 1. Set `label_smoothing=0.1` in the recipe and re-run training. What happens to the training
#    loss (and why can it no longer reach 0)? One run shows that: the floor is arithmetic, not
#    noise. A change of validation accuracy by a few tenths of a point needs 3 seeds each or more.
# 2. Replace the cosine schedule with `schedule="multistep", milestones=(15, 25)`. Plot both runs
#    with `common.plot_histories({"cosine": h1, "steps": h2})`. The shape of the curves (a jump at
#    each drop of the learning rate) shows in one run each; which schedule ends better needs
#    several seeds each, as in exercise 1.
# 3. Set `widths = (64, 128, 256)` in the inspection cell (section 3) and re-run it: how do
#    parameters and multiply-adds scale, and why by about 4x?
# 4. Train with `recipe = dataclasses.replace(recipe, augment=False)`. Compare the gap between
#    training and validation accuracy. A gap that grows by several points, far beyond the seed
#    spread, shows in one run of each; a few tenths need seeds, as above.
# 5. Normalise with the wrong std (0.2023, 0.1994, 0.2010): set `data.std` to it and re-run the
#    normalisation cell. How far from 1 is the resulting per-channel std?

# %%
mode = "smoke" if common.SMOKE else "quick" if common.QUICK else "full"
print(f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s "
      f"({mode} mode, device {common.pick_device()}, {torch.get_num_threads()} CPU threads)")
print(common.mode_report())
