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
# # 07 · The ImageNet 5 side by side, under exactly the same circumstances
#
# Every paper of this course reports its own numbers with its own recipe: its own schedule,
# epochs, batch size, weight decay, data split, and often its own tricks. So the papers cannot
# answer the question a reader ends with: *which of these ideas actually helps, at what cost,
# when everything else is equal?* This notebook trains one CIFAR-10 adaptation per paper with
# **one** recipe and measures all of them on **one** machine.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/the-imagenet-5/course/blob/main/notebooks/07_comparison.ipynb)
#
# **What you will build**
# - six training runs per seed, one per paper (VGG-16-BN, ResNet-56, DenseNet-BC-100,
#   SE-ResNet-56, MobileNetV2, EfficientNet-B0), with the same data, split, augmentation,
#   schedule, epochs, batch size and seeds;
# - a table per model: test accuracy (mean and spread over three seeds), parameters,
#   multiply-adds, training images per second, latency at batch 1, throughput at a large batch,
#   and the peak memory of a training step, all measured here, on the machine named in the table;
# - plots of accuracy against multiply-adds, parameters and training time, and every model's
#   curves overlaid;
# - beside each model, its result under its *own* paper's recipe when notebooks 01-06 saved that
#   run, so you can see what the recipe is worth apart from the architecture.
#
# Every run is saved (`common.fit`'s history and checkpoint); re-running the notebook reuses
# finished runs and resumes interrupted ones, so on Colab (with `KEEP_ON_DRIVE` on in the set-up
# cell, so that the runs live on your Google Drive) the table fills up over several sittings. The table and plots are rebuilt from the saved runs alone
# (`common.comparison`).
#
# **Prerequisites:** notebooks 01-06 (each model is built there, block by block, and checked
# against its paper). Background: what a training run, a validation split and a seed are.
#
# **Run time.** Smoke mode (the tests, `IMAGENET5_SMOKE=1`): under a minute on a 2-core CPU:
# each model trains on 16 images for two epochs, and the speed and memory measurements use tiny
# batches, so every number it prints says only that the cells run. Quick mode
# (`IMAGENET5_QUICK=1`, the offline digits set): one seed, four of the six models trained
# (DenseNet-BC-100 and EfficientNet-B0, 9-21 times ResNet-20's cost per image on a CPU, are
# measured in section 4 but trained in full mode only), smaller speed measurements; each cell
# prints what quick mode changed; every run warms up over its first third, on a budget of
# 20,000 images. 485 s measured on the quiet 2-core machine, two threads (`python
# tools/notebook_times.py`; docs/settings.md), the four trainings 445 s of it, each learning
# (best validation accuracy 0.95-0.99 on the digits); without the warm-up, at 40,000 images,
# 899 s, and VGG-16-BN stayed near chance; before issue 32 it was still running after 15
# minutes. Full mode: 6 models × 3 seeds
# × 200 epochs of CIFAR-10, 18 full trainings (no GPU time has been measured for them yet; the
# table's training images/s, times 45,000 × 200 images, gives each run's length on the machine
# that trained it): a GPU, and several sittings on Colab. `SEEDS` and `STOP_AFTER_EPOCHS` below
# split the work.

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
import dataclasses
import statistics
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from torch import nn

from common import comparison
from common.bench import machine
from common.data import Split

MODE = "smoke" if common.SMOKE else "quick" if common.QUICK else "full"
print(f"torch {torch.__version__}, device {common.pick_device()}, {MODE} mode, "
      f"offline {common.OFFLINE}")
NOTEBOOK_START = time.perf_counter()

# %% [markdown]
# ## 1 · The six models, and why these
#
# One CIFAR-10 adaptation per paper, each built in its own notebook (the registry name is what
# `common.get_model` takes). CIFAR-10's images are 32×32, so every ImageNet model needs an
# adaptation; where the paper itself has a CIFAR network, we take it.
#
# | paper | model | built in | why this one |
# |---|---|---|---|
# | VGG (Simonyan & Zisserman 2014) | `cifar_vgg16_bn` | 01 | the paper has no CIFAR net; configuration D with batch norm and one linear classifier is the usual CIFAR VGG (notebook 01 trains it) |
# | ResNet (He et al. 2015) | `cifar_resnet56` | 02 | the paper's own CIFAR family (section 4.2, Table 6); 56 layers is one of Figure 6's depths and the base of SE-ResNet-56 |
# | DenseNet (Huang et al. 2016) | `cifar_densenet_bc100_k12` | 03 | the paper's own CIFAR net, the smallest DenseNet-BC of its Table 2, with about as many parameters as ResNet-56 |
# | SE-Net (Hu et al. 2017) | `cifar_seresnet56` | 04 | ResNet-56 with an SE block in every residual block: the pair isolates the SE idea |
# | MobileNetV2 (Sandler et al. 2018) | `cifar_mobilenet_v2` | 05 | the paper has no CIFAR net; notebook 05's adaptation keeps Table 2 with stride 1 in the stem and the first stride-2 row |
# | EfficientNet (Tan & Le 2019) | `cifar_efficientnet_b0` | 06 | B0, the base of the family, in notebook 06's 32×32 layout |
#
# A model that is not in the registry yet (a notebook not merged) is left out, and the cell
# says so. ConvNeXt (notebook 08, `cifar_convnext`) is not a seventh row: its paper designed every
# step of its architecture under AdamW with a warm-up (section 2.1), which this one SGD recipe
# leaves out, and the recipe's source trains the other six but has no ConvNeXt, so no source pairs
# the two.

# %%
COMPARED = {   # label -> registry name, and the notebook whose run folders hold its own recipe's runs
    "VGG-16-BN": ("cifar_vgg16_bn", "01_vgg"),
    "ResNet-56": ("cifar_resnet56", "02_resnet"),
    "DenseNet-BC-100": ("cifar_densenet_bc100_k12", "03_densenet"),
    "SE-ResNet-56": ("cifar_seresnet56", "04_senet"),
    "MobileNetV2": ("cifar_mobilenet_v2", "05_mobilenetv2"),
    "EfficientNet-B0": ("cifar_efficientnet_b0", "06_efficientnet"),
}
available = {label: spec for label, spec in COMPARED.items() if spec[0] in common.list_models()}
for label in COMPARED.keys() - available.keys():
    print(f"{label} ({COMPARED[label][0]}) is not in common.list_models() yet: left out.")
print(f"compared: {', '.join(available)}")

# %% [markdown]
# What each model carries inside it that acts as a regulariser (dropout, stochastic depth) is
# part of the architecture as its notebook built it, not of the recipe; counted here from the
# modules, so that it is visible:

# %%
def regularisers(model: nn.Module) -> str:
    """Dropout and stochastic-depth modules with a non-zero rate, in words: how many of each
    kind, and their rates."""
    rates = {}
    for m in model.modules():
        p, kind = getattr(m, "p", None), type(m).__name__
        if isinstance(p, float) and p > 0 and ("Drop" in kind or "Stochastic" in kind):
            rates.setdefault(kind, []).append(p)
    return ", ".join(f"{len(ps)} x {kind} (rate {min(ps):g}" + (f" to {max(ps):g})" if max(ps) > min(ps) else ")")
                     for kind, ps in rates.items()) or "none"


for label, (name, _) in available.items():
    print(f"{label:16} {regularisers(common.get_model(name))}")

# %% [markdown]
# ## 2 · One recipe for all six
#
# **The recipe** is the one of `kuangliu/pytorch-cifar`'s `main.py`, which trains that
# repository's CIFAR-10 versions of all of these architectures (VGG, ResNet, DenseNet, SENet,
# MobileNetV2, EfficientNet-B0) with one script. Read at commit `ba72695` (2020-11-20, "Add
# lr_scheduler"; `main.py` unchanged up to the current head, `49b7aa9`): SGD with momentum 0.9
# and weight decay 5e-4, batch 128, learning rate 0.1 with `CosineAnnealingLR(T_max=200)` over
# 200 epochs, random crops of the 4-pixel-padded image and horizontal flips. (The accuracies in
# that repository's README were added from 2017 to 2021 under changing versions of the script:
# notebook 05 traces its MobileNetV2 number to January 2018, before this schedule. So we pair
# none of them with this recipe.)
#
# **What we chose, and why it is fair.** It is none of the six papers' own recipe, so no model
# plays at home: no warm-up (ResNet-110's; quick mode alone adds one, the same for all six, and
# the cell says why), no Nesterov momentum (DenseNet's), no RMSProp or
# exponential decay (MobileNetV2's and EfficientNet's ImageNet recipes), no AutoAugment
# (EfficientNet's), no weight-decay exceptions: one weight decay on every parameter. Everything else is fixed too: the same 45k/5k train/validation split
# (`common.load_data`'s, fixed seed), the same augmentation, the same seeds (0, 1, 2: weights
# initialised and batches drawn the same way for every model at a given seed), the test set used
# once per run, at the end. Our one change: the cosine is evaluated every step, where
# `CosineAnnealingLR` stepped once per epoch (the two differ by less than one epoch's worth of
# decay). A fixed recipe still favours whichever model it happens to suit: section 6 sets each
# model's own recipe beside it, to show by how much.

# %%
EPOCHS = 200                              # kuangliu main.py: range(start_epoch, start_epoch + 200)
recipe = common.Recipe(
    epochs=EPOCHS, batch_size=128, lr=0.1, momentum=0.9, nesterov=False, weight_decay=5e-4,
    schedule="cosine", augment=True, label_smoothing=0.0,
    sources={"epochs": "kuangliu/pytorch-cifar main.py (ba72695): 200 epochs",
             "batch_size": "main.py: batch_size=128",
             "lr": "main.py: --lr default 0.1",
             "momentum": "main.py: SGD(momentum=0.9)",
             "weight_decay": "main.py: SGD(weight_decay=5e-4)",
             "schedule": "main.py: CosineAnnealingLR(T_max=200), per epoch (ours: per step)",
             "augment": "main.py: RandomCrop(32, padding=4), RandomHorizontalFlip",
             "nesterov": "main.py: plain momentum",
             "label_smoothing": "main.py: plain CrossEntropyLoss",
             "no_weight_decay": "main.py: SGD(net.parameters(), ...): every parameter decays"})
# Quick mode only (our choice): its runs are too short to recover from a blow-up in the first
# steps at lr 0.1 (issue 32, this recipe without it: VGG-16-BN stayed near chance, ResNet-56
# far below the other two residual nets); every model gets the same warm-up, so the recipe stays
# one, and sees 20,000 training images instead of quick mode's default 40,000 (time).
QUICK_WARMUP = common.by_mode(
    0.0, quick=EPOCHS / 3, smoke=0.0, what="warm-up (epochs of the recipe, linear from 0.01)",
    why="every model alike: a short run cannot recover from an early blow-up at lr 0.1")
if QUICK_WARMUP:
    recipe = dataclasses.replace(
        recipe, warmup_epochs=QUICK_WARMUP, warmup="linear", warmup_factor=0.1,
        sources={**recipe.sources, **{f: "quick mode only (ours): linear warm-up over the first "
                                         "third, from 0.01" for f in ("warmup_epochs", "warmup",
                                                                      "warmup_factor")}})
QUICK_IMAGES = 20_000      # training images per run in quick mode (fit prints it; others ignore it)
SEEDS = common.by_mode((0, 1, 2), quick=(0,), what="seeds",
                       why="each seed is six whole training runs (said in the table)")
STOP_AFTER_EPOCHS = None   # e.g. 20: train at most 20 epochs per run in this sitting, then re-run
recipe.table()

# %% [markdown]
# The data: CIFAR-10 with the course's 45k/5k split (offline, the digits stand-in, said loudly).
# In smoke mode, six models must train within the tests' time budget on a CPU, so each split is
# cut further to 16 images: the runs then show that everything is wired together, nothing more.

# %%
data = common.load_data("cifar10")
SMOKE_IMAGES = 16
subset = {}
if common.SMOKE:                                    # smoke mode only: 16 images per split
    data = dataclasses.replace(data, **{s: Split(data[s].x[:SMOKE_IMAGES], data[s].y[:SMOKE_IMAGES])
                                        for s in ("train", "val", "test")})
    subset = {"smoke_images": SMOKE_IMAGES}         # part of the run's key (common.run_dir_for)
print(data)

# %% [markdown]
# ## 3 · Train: every run saved, reused and resumed
#
# One run folder per model, recipe, data and seed (`common.run_dir_for`); `common.fit` writes
# its checkpoint and history there after every epoch. Re-running the cell reloads a finished run
# in a second and continues an interrupted one where it stopped, so a Colab session that ends
# loses at most one epoch. After training, the test accuracy of the final weights is measured
# once and saved beside the history (`results.json`), with the machine the epochs ran on. On
# Colab, the runs outlive the session only on Google Drive: turn `KEEP_ON_DRIVE` on in the
# set-up cell before the first sitting.
#
# **After a disconnect**, re-run the notebook from the top: this training resumes from its last
# finished epoch (on Colab, if `KEEP_ON_DRIVE` was on in the set-up cell).

# %%
DEVICE = common.pick_device()
MACHINE = machine(DEVICE)


def train_and_record(label: str, seed: int) -> comparison.Run:
    """Train (or reload, or resume) one model at one seed under the shared recipe, and record
    which machine trained which epochs, and the test accuracy once the run is finished."""
    name, _ = available[label]
    key = {"seed": seed, **subset,                    # the seed names every run's folder here
           **common.runs.quick_key(QUICK_IMAGES)}     # and quick mode's budget, as train_run's
    run_dir = common.run_dir_for("07_comparison", name, recipe, data, **key)   # train_run's
    before = comparison.read_run(run_dir).epochs_done if (run_dir / "history.json").exists() else 0
    model, _ = common.train_run("07_comparison", name, recipe, data, seed=seed, key=key,
                                quick_images=QUICK_IMAGES,
                                fit_kwargs={"live_plot": False,
                                            "stop_after_epochs": STOP_AFTER_EPOCHS})
    run = comparison.read_run(run_dir)
    if run.epochs_done > before:                    # which machine trained which epochs
        sittings = run.results.get("sittings", []) + [
            {"machine": MACHINE, "device": str(DEVICE), "epochs": [before + 1, run.epochs_done]}]
        comparison.save_results(run_dir, sittings=sittings, macs=common.count_macs(model, (1, 3, 32, 32)))
    if run.finished:
        comparison.test_result(run_dir, model, data)   # measured once, then read back
    return comparison.read_run(run_dir)


#: The models trained in this mode; quick mode leaves out the two costliest per image on a CPU
#: (issue 32's measurement: DenseNet-BC-100 at batch 128 about 21x ResNet-20's cost per image,
#: EfficientNet-B0 about 9x), whose quick runs alone would take a quarter of an hour: section 4
#: still measures their size, cost, speed and memory.
TRAINED = common.by_mode(
    tuple(available), quick=tuple(label for label in available
                                  if label not in ("DenseNet-BC-100", "EfficientNet-B0")),
    smoke=tuple(available), what="models trained",
    why="DenseNet-BC-100 and EfficientNet-B0 cost 9-21x ResNet-20 per image on a CPU; they are "
        "measured in section 4 and trained in full mode")
trained = {(label, seed): train_and_record(label, seed) for label in TRAINED for seed in SEEDS}

# %% [markdown]
# ## 4 · Measure: size, cost, speed and memory, on this machine
#
# - **Parameters** and **multiply-adds** per 32×32 image (`common.count_params`,
#   `common.count_macs`: convolutions and matrix products, as the papers count).
# - **Training images per second**: what `common.fit` measured while training (the median over
#   epochs, the first left out), on the machine that trained the run (saved with it).
# - **Latency** at batch 1 and **throughput** at a large batch: forward passes in eval mode,
#   fp32, channels_last, after a warm-up round; the six models timed in turn, round after round,
#   and the median kept (`comparison.inference_speed`), so that the machine's other work and the
#   process's own warm-up disturb them alike.
# - **Peak memory of one training step** at the recipe's batch size
#   (`comparison.training_step_memory`): on a GPU the allocator's peak; on a CPU the peak of
#   live tensors counted by PyTorch's `MemTracker` (weights, gradients, optimizer state,
#   activations; the allocator's own overhead is not included). The function says which.
#
# In smoke mode the batches are tiny (inference at 1 and 8 images, one round of two passes;
# memory at 8 images) to keep the tests fast: those numbers only show that the cells run. Quick
# mode measures throughput at batch 64, one round of two passes (the cell says so).

# %%
LARGE_BATCH, REPS, ROUNDS, MEMORY_BATCH = common.by_mode(
    (256, 5, 3, recipe.batch_size), quick=(64, 2, 1, recipe.batch_size), smoke=(8, 2, 1, 8),
    what="speed and memory: large batch, passes, rounds, memory batch",
    why="six models at batch 256, 5 passes, 3 rounds cost minutes on a CPU")
torch.manual_seed(0)
models = {label: common.get_model(name, num_classes=data.num_classes).to(DEVICE)
          for label, (name, _) in available.items()}
seconds = comparison.inference_speed(models, (1, LARGE_BATCH), reps=REPS, rounds=ROUNDS)
measured = {}
for label, model in models.items():
    memory = comparison.training_step_memory(model, data, MEMORY_BATCH, recipe)   # changes model
    measured[label] = {"params": common.count_params(model),
                       "macs": common.count_macs(model, (1, 3, 32, 32)),
                       "latency_ms": 1e3 * seconds[label][1],
                       "throughput": LARGE_BATCH / seconds[label][LARGE_BATCH],
                       "memory_mib": None if memory["bytes"] is None else memory["bytes"] / 2**20}
del models, model
MEMORY_METHOD = f"{memory['method']}; in fit's precision, {memory['precision']}"
assert all(m["latency_ms"] > 0 and m["throughput"] > 0 for m in measured.values())
print(f"measured on {MACHINE} ({DEVICE}); memory: {MEMORY_METHOD}")

# %% [markdown]
# ## 5 · The table
#
# Collected from the saved runs alone (`comparison.load_runs` finds every run of this recipe and
# data under `runs/07_comparison/`, `comparison.summarize` pools the seeds): the same cell
# rebuilds it after any sitting, on any machine. Accuracy is the mean over the finished seeds
# with their sample standard deviation; a run still training is counted in "epochs" but not in
# the accuracy. Empty cells say "not measured yet".

# %%
runs = comparison.load_runs(group="07_comparison", dataset=data.description, mode=MODE,
                            train_size=len(data.train), recipe=recipe)
assert {r.path for r in trained.values()} <= {r.path for r in runs}   # every run of this sitting found
summary = {row["model"]: row for row in comparison.summarize(runs, data.description)}
label_of = {name: label for label, (name, _) in available.items()}


def fmt(value, spec: str, missing: str = "not measured yet") -> str:
    return missing if value is None else format(value, spec)


def trained_on(row) -> str:
    machines = {s["machine"] for r in row["runs"] for s in r.results.get("sittings", [])}
    return ", ".join(sorted(machines)) or "not recorded"


rows = []
for label, (name, _) in available.items():
    row, m = summary.get(name), measured[label]
    rows.append((
        label,
        comparison.format_mean_sd(row["test_acc"], row["test_acc_sd"], len(row["test_seeds"]))
        if row else "not measured yet" if label in TRAINED else f"not trained in {MODE} mode",
        f"{m['params'] / 1e6:.2f}M", f"{m['macs'] / 1e6:.0f}M",
        fmt(row and row["train_images_per_sec"], ",.0f"),
        f"{m['latency_ms']:.2f}", f"{m['throughput']:,.0f}", fmt(m["memory_mib"], ",.0f"),
        f"{'/'.join(map(str, row['epochs']))} of {row['runs'][0].epochs_planned}" if row else "0"))
header = ("model", "test accuracy %", "params", "multiply-adds", "train img/s",
          "latency ms (batch 1)", f"img/s (batch {LARGE_BATCH})",
          f"train-step peak MiB (batch {MEMORY_BATCH})", "epochs per seed")
trained_machines = sorted({trained_on(r) for r in summary.values()})
caption = (f"**{data.description}**, {MODE} mode{' (smoke mode: one seed, 16 images, two epochs: not results)' if common.SMOKE else ''}. "
           f"Recipe: kuangliu/pytorch-cifar's (section 2), seeds {', '.join(map(str, SEEDS))}. "
           f"Latency, throughput and memory measured on **{MACHINE}** ({DEVICE}; latency and "
           f"throughput in fp32; memory: {MEMORY_METHOD}); training images/s on the machine that trained each run: "
           f"{'; '.join(trained_machines) or 'none yet'}. A shared machine disturbs timings: "
           f"compare rows, not machines.")
RESULTS_MARKDOWN = caption + "\n\n" + common.table(rows, header)._repr_markdown_()
display(Markdown(RESULTS_MARKDOWN))

# %% [markdown]
# ## 6 · Each model under its own paper's recipe
#
# Notebooks 01-06 train each model with its own paper's CIFAR recipe (or, where the paper has
# none, the cited recipe of the adaptation) and save the run under their own folder group
# (`common.run_dir_for("02_resnet", ...)` and so on). `comparison.load_runs` looks there for a
# run of the same model (same registry name and parameter count, so a narrower smoke-mode
# variant never counts), on the same data and in the same mode; `comparison.pick_run` prefers a
# finished run, then the longest. Its test accuracy is measured from its checkpoint once and
# saved beside it. Where no such run exists yet, the cell says so: run that notebook in full mode
# first.

# %%
own_rows = []
own = {}
for label, (name, notebook) in available.items():
    shared = summary.get(name)
    found = comparison.pick_run(comparison.load_runs(
        group=notebook, model=name, dataset=data.description, mode=MODE,
        train_size=len(data.train), params=measured[label]["params"]))
    if found is None:
        own_rows.append((label, notebook, "no run saved yet", "", ""))
        continue
    test = comparison.test_result(found, common.get_model(name, num_classes=data.num_classes), data)
    r = found.history["recipe"]
    own[label] = test["acc"]
    own_rows.append((
        label, notebook,
        f"{100 * test['acc']:.2f} (seed {found.seed}, epoch {found.epochs_done} of {found.epochs_planned}"
        f"{'' if found.finished else ', unfinished'})",
        f"{r.get('optimizer', 'sgd')}, {r['epochs']} epochs, batch {r['batch_size']}, lr {r['lr']:g}, "
        f"{r['schedule']}, wd {r['weight_decay']:g}",
        comparison.format_mean_sd(shared["test_acc"], shared["test_acc_sd"], len(shared["test_seeds"]))
        if shared else "not measured yet"))
common.table(own_rows, header=("model", "notebook", "own recipe: test accuracy %",
                               "own recipe", "shared recipe: test accuracy %"))

# %% [markdown]
# ## 7 · Plots
#
# Accuracy (mean over seeds, with the spread as an error bar) against multiply-adds, parameters
# and training time (the mean wall time of a run, summed from `fit`'s epoch times on the
# machine that trained it). A model up and to the left gives more accuracy per unit of cost.
# All of it comes from the saved runs and the counts above.

# %%
points = [(label, summary[name], measured[label]) for label, (name, _) in available.items()
          if name in summary and summary[name]["test_acc"] is not None]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
for ax, (xlabel, x_of) in zip(axes, (
        ("multiply-adds per image (millions)", lambda row, m: m["macs"] / 1e6),
        ("parameters (millions)", lambda row, m: m["params"] / 1e6),
        ("training time per run (minutes)", lambda row, m: row["train_seconds"] / 60))):
    for label, row, m in points:
        ax.errorbar(x_of(row, m), 100 * row["test_acc"], yerr=100 * (row["test_acc_sd"] or 0),
                    fmt="o", capsize=3)
        ax.annotate(label, (x_of(row, m), 100 * row["test_acc"]), fontsize=8,
                    xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, which="both")
axes[0].set_ylabel("test accuracy (%)")
fig.suptitle(f"{data.description}, {MODE} mode; error bars: standard deviation over seeds",
             fontsize=9)
plt.tight_layout()
plt.show()

# %%
curves = {label: comparison.mean_history(summary[name]["runs"])
          for label, (name, _) in available.items() if name in summary}
common.plot_histories(curves, metrics=("train_loss", "val_loss", "train_acc", "val_acc"))

# %% [markdown]
# ## 8 · What to look for
#
# Each finding below says what to look at, and the cell under it computes it from the table.
# The numbers printed are this run's: in smoke mode (the tests) they are noise from 16 images
# and two epochs; on CIFAR-10 in full mode they answer the question for this recipe and this
# machine.
#
# **Does more arithmetic buy more accuracy?** If multiply-adds were all that mattered, the
# accuracy ranking would follow the multiply-add ranking. The rank correlation says how far it
# does (1: same order, -1: reversed).

# %%
def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    for rank, i in enumerate(order):
        out[i] = float(rank)
    return out


def rank_correlation(a: list[float], b: list[float]) -> float | None:
    """Spearman's rank correlation (no ties expected), None for fewer than three points."""
    if len(a) < 3:
        return None
    ra, rb = ranks(a), ranks(b)
    return statistics.correlation(ra, rb)


accs = [row["test_acc"] for _, row, _ in points]
for what in ("macs", "params"):
    rho = rank_correlation([m[what] for _, _, m in points], accs)
    print(f"accuracy vs {what}: rank correlation "
          f"{'not computable (fewer than 3 models measured)' if rho is None else f'{rho:+.2f}'}")
if points:
    best = max(points, key=lambda p: p[1]["test_acc"])
    cheapest = min(points, key=lambda p: p[2]["macs"])
    print(f"most accurate: {best[0]} ({100 * best[1]['test_acc']:.2f}%, {best[2]['macs'] / 1e6:.0f}M "
          f"multiply-adds); cheapest: {cheapest[0]} ({100 * cheapest[1]['test_acc']:.2f}%, "
          f"{cheapest[2]['macs'] / 1e6:.0f}M)")

# %% [markdown]
# **Is a difference bigger than the seeds' spread?** Two models whose accuracies differ by less
# than the seed-to-seed spread are not told apart by this run. SE-ResNet-56 against ResNet-56 is
# the cleanest pair (the same network, plus the SE blocks): the difference, and the larger of the
# two spreads, side by side.

# %%
def compare_pair(a: str, b: str) -> None:
    ra, rb = (summary.get(available[x][0]) if x in available else None for x in (a, b))
    if not (ra and rb and ra["test_acc"] is not None and rb["test_acc"] is not None):
        print(f"{a} vs {b}: not measured yet")
        return
    diff = 100 * (ra["test_acc"] - rb["test_acc"])
    spreads = [s for s in (ra["test_acc_sd"], rb["test_acc_sd"]) if s is not None]
    if not spreads:
        print(f"{a} - {b}: {diff:+.2f} points, from one seed each: no spread to compare with")
        return
    spread = 100 * max(spreads)
    print(f"{a} - {b}: {diff:+.2f} points; larger seed spread {spread:.2f}: the difference is "
          f"{'more' if abs(diff) > 2 * spread else 'not more'} than twice the spread")


compare_pair("SE-ResNet-56", "ResNet-56")
compare_pair("DenseNet-BC-100", "ResNet-56")

# %% [markdown]
# **Are multiply-adds latency?** MobileNetV2 and EfficientNet were designed to need few
# multiply-adds (notebook 05, section 6.2, shows the same on ImageNet models). Depthwise
# convolutions do little arithmetic per byte they move, so on many machines they are slower
# than their count suggests. Models sorted by multiply-adds, with their latency and throughput:
# where the order of the time columns differs from the first, arithmetic is not what limits them.

# %%
by_macs = sorted(measured.items(), key=lambda kv: kv[1]["macs"])
common.table([(label, f"{m['macs'] / 1e6:.0f}M", f"{m['latency_ms']:.2f}",
               f"{m['throughput']:,.0f}", f"{m['throughput'] * m['macs'] / 1e9:.1f}")
              for label, m in by_macs],
             header=("model (by multiply-adds)", "multiply-adds", "latency ms (batch 1)",
                     f"img/s (batch {LARGE_BATCH})", "G multiply-adds/s achieved"))

# %% [markdown]
# **What does a training step hold in memory?** Parameters, gradients and momentum take three
# times the weights; the rest is activations kept for the backward pass, which grow with the
# feature maps' size and with how many of them a block keeps (DenseNet's concatenations,
# notebook 03, section 2, "The memory-efficient dense layer"). The share of activations, per model:

# %%
for label, m in measured.items():
    if m["memory_mib"] is None:
        print(f"{label:16} peak memory not measured ({MEMORY_METHOD})")
        continue
    weights_mib = 3 * 4 * m["params"] / 2**20         # fp32 weights, gradients, momentum
    print(f"{label:16} peak {m['memory_mib']:8,.1f} MiB at batch {MEMORY_BATCH}: "
          f"{weights_mib:6,.1f} MiB weights + gradients + momentum, the rest "
          f"({max(0.0, 1 - weights_mib / m['memory_mib']):.0%}) activations and temporaries")

# %% [markdown]
# **What is the recipe worth?** Where section 6 found a model's run under its own paper's
# recipe, the difference from the shared recipe: a large gap says the paper's number owes much to
# its recipe, not only to its architecture.

# %%
for label, acc in own.items():
    shared = summary.get(available[label][0])
    if shared and shared["test_acc"] is not None:
        print(f"{label:16} own recipe - shared recipe: {100 * (acc - shared['test_acc']):+.2f} points")
if not own:
    print("No run under a paper's own recipe is saved yet for this data and mode: run notebooks "
          "01-06 in the same mode, then re-run section 6.")

# %% [markdown]
# ## 9 · Exercises
#
# 1. **Another recipe.** Change `EPOCHS` to 30 (or the schedule to `"multistep"` with
#    `milestones=(15, 25)`) and re-run: new run folders, a new table. Which models lose most
#    from a short schedule?
# 2. **More seeds.** Add seeds 3 and 4 to `SEEDS`. Do the spreads shrink? Does the SE-Net
#    comparison change its verdict?
# 3. **Batch size and latency.** Re-measure section 4 with `LARGE_BATCH = 32` and 1024. Where
#    does each model's throughput stop growing? Do the mobile nets catch up at large batches?
# 4. **bf16.** On a GPU (or a CPU with native bf16), run `python -m common.bench --model
#    cifar_resnet56` and `--model cifar_mobilenet_v2`: it prints fit's training speed in fp32
#    and in mixed precision. Which architecture gains more from the lower precision?
# 5. **A seventh model.** Add `"ResNet-20": ("cifar_resnet20", "02_resnet")` to `COMPARED` and
#    re-run: where does it fall on the accuracy-against-cost plots?

# %%
print(f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s "
      f"(smoke mode {common.SMOKE}, device {common.pick_device()})")
print(common.mode_report())
