# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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
# 4. **Training**: a `Recipe` (the paper's numbers, each with its source) and `fit`, with its
#    curves; then a checkpoint, and a resume that ends exactly where an uninterrupted run ends.
#
# **Prerequisites**: you can write a PyTorch training loop. **Run time**: a few seconds per cell on a
# CPU in smoke mode (the tests); the full baseline training is about 30 epochs: a couple of
# minutes on a GPU, far longer on a CPU.

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
import shutil

import matplotlib.pyplot as plt
import torch
from torch import nn

print(f"torch {torch.__version__}; device: {common.pick_device()}; smoke mode: {common.SMOKE}; "
      f"offline: {common.OFFLINE}")

# %% [markdown]
# ## How the course is organised
#
# One notebook per paper, in the order of the curriculum map (background first):
#
# ```
# 00 toolkit ─► 01 VGG ─► 02 ResNet ─► DenseNet
#                             └──────► SE-Net ─┐
#                         MobileNetV2 ─────────┴─► EfficientNet
# ```
#
# Beside each notebook, `paper_notes/<paper>.md` holds the reading notes: the citation and link,
# the order to read the paper in, the key idea in plain words, and the *Easter-egg table*: every
# hyperparameter and architectural detail with the place the paper states it (section, table,
# figure), or "not stated: we chose X because Y". The notebooks quote these tables; the notes are
# for reading away from the code.

# %%
notes = sorted(p.name for p in (common.ROOT / "paper_notes").glob("*.md"))
print("paper notes:", ", ".join(notes) or "none yet")

# %% [markdown]
# ## 1 · Data
#
# `common.load_data("cifar10")` downloads CIFAR-10 once (into `data/`, or `$IMAGENET5_DATA`), splits
# the 50,000 training images into **45,000 for training and 5,000 for validation**, as ResNet's
# section 4.2 does, and keeps the 10,000 test images for the final number only. Everything lives
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


@register_model("cifar_baseline")
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

# %% [markdown]
# The registry works like torchvision's: `common.list_models()` and
# `common.get_model(name, num_classes=...)`; an unknown name lists what exists.

# %%
print(common.list_models("cifar_*"))
try:
    common.get_model("cifar_basline")
except ValueError as err:
    print("ValueError:", str(err)[:160], "...")

# %% [markdown]
# ## 3 · Inspection
#
# Papers give sizes in parameters and compute in "FLOPs", which in these papers are
# **multiply-adds** (ResNet's Table 1: 3.6 billion for ResNet-34). `common.count_macs` counts the
# multiply-adds of convolutions and linear layers with `torch.utils.flop_counter` (which counts two
# FLOPs per multiply-add) and, like the papers, leaves out batch norm, activations and pooling.

# %%
params = common.count_params(model)
macs = common.count_macs(model, (1, 3, 32, 32))
# By hand: each 3x3 conv has 9*c_in*c_out weights (no bias), applied at every output pixel;
# each batch norm has a scale and a shift per channel; the classifier 128*10 weights + 10 biases.
convs = [(3, 32, 32), (32, 32, 32), (32, 64, 16), (64, 64, 16), (64, 128, 8), (128, 128, 8)]
params_by_hand = sum(9 * ci * co + 2 * co for ci, co, _ in convs) + 128 * 10 + 10
by_hand = sum(9 * ci * co * size * size for ci, co, size in convs) + 128 * 10
print(f"{params:,} parameters (by hand: {params_by_hand:,}), {macs:,} multiply-adds per 32x32 "
      f"image (by hand: {by_hand:,})")
assert macs == by_hand and params == params_by_hand

# %%
common.summary(model, (1, 3, 32, 32), depth=2)

# %% [markdown]
# `common.paper_vs_ours` puts a paper's numbers beside ours as *paper / ours / ratio* and fails
# when a ratio leaves the stated tolerance. Our "paper" here is the count by hand above:

# %%
common.paper_vs_ours([("parameters", params_by_hand, params), ("multiply-adds", by_hand, macs)],
                     rtol=0.0, title="baseline: by hand vs counted");

# %% [markdown]
# **Checking against a reference implementation.** The paper notebooks build torchvision's model
# with random weights, load its `state_dict()` into ours with `strict=True` (every name and shape
# must match) and assert equal outputs. Here the reference is the same architecture written
# independently as one flat `nn.Sequential`; its weights are renamed to our module names first.

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


reference = Renamed(flat_reference())
for m in reference.modules():                 # non-trivial batch-norm statistics
    if isinstance(m, nn.BatchNorm2d):
        m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
common.check_against_reference(common.get_model("cifar_baseline"), reference, (4, 3, 32, 32));

# %% [markdown]
# A reference whose names or shapes differ is refused, with the differences listed:

# %%
try:
    common.check_against_reference(common.get_model("cifar_baseline", widths=(32, 64, 256)),
                                   reference, (4, 3, 32, 32))
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## 4 · Training
#
# A `Recipe` holds a paper's training hyperparameters, each with the place it comes from, and
# `common.fit` runs it: SGD with momentum and weight decay, the learning-rate schedule set every
# step, bf16 autocast and channels_last on a CUDA GPU, a progress bar with images/second, a live
# plot, and the run's history (returned, and saved as JSON beside the checkpoint).
#
# Our baseline is not from a paper, so its recipe says "our choice" and why. In smoke mode
# (`IMAGENET5_SMOKE=1`, set by the tests) `fit` runs only the first epochs on a small subset and
# squeezes the schedule into them; the recipe you see stays the real one.

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

# %%
short = common.Recipe(epochs=2, batch_size=128, lr=0.05, schedule="cosine")
run_dir = common.runs_dir("00_toolkit", "resume-demo")
shutil.rmtree(run_dir, ignore_errors=True)            # start the demonstration afresh

common.seed_everything(0)
straight = common.get_model("cifar_baseline", num_classes=data.num_classes)
common.fit(straight, data, short, progress=False, verbose=False)

common.seed_everything(0)
stopped = common.get_model("cifar_baseline", num_classes=data.num_classes)
common.fit(stopped, data, short, run_dir=run_dir, stop_after_epochs=1, progress=False)
print("files:", sorted(p.name for p in run_dir.iterdir()))

resumed = common.get_model("cifar_baseline", num_classes=data.num_classes)   # fresh weights
h = common.fit(resumed, data, short, run_dir=run_dir, resume=True, progress=False)

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
                   attempt.pop("recipe", short), run_dir=run_dir, progress=False, **attempt)
    except (FileExistsError, RuntimeError) as err:
        print(f"{type(err).__name__}: {err}\n")

# %% [markdown]
# ## Exercises
#
# 1. Set `label_smoothing=0.1` in the recipe and re-run training. What happens to the training
#    loss (and why can it no longer reach 0)? To validation accuracy?
# 2. Replace the cosine schedule with `schedule="multistep", milestones=(15, 25)`. Plot both runs
#    with `common.plot_histories({"cosine": h1, "steps": h2})`.
# 3. Change `widths` of the baseline to `(64, 128, 256)`: how do parameters and multiply-adds
#    scale, and why by about 4x?
# 4. Train with `recipe = dataclasses.replace(recipe, augment=False)`. Compare the gap between
#    training and validation accuracy.
# 5. Normalise with the wrong std (0.2023, 0.1994, 0.2010): set `data.std` to it and re-run the
#    normalisation cell. How far from 1 is the resulting per-channel std?
