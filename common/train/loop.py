"""The shared trainer: one ``fit`` for every paper, driven by a ``Recipe`` (the paper's numbers),
and ``evaluate``.

    recipe = Recipe(epochs=182, lr=0.1, momentum=0.9, weight_decay=1e-4, milestones=(91, 136),
                    sources={"lr": "He et al. 2015, section 4.2"})
    history = fit(model, data, recipe, run_dir=runs_dir("resnet20"), resume=True)

Fast where it matters: data on the device as uint8 with batched augmentation (common.data),
bf16 autocast on CUDA (fp16 with a gradient scaler on GPUs without bf16) and on CPUs with native
bf16 (AVX512-BF16, AMX, Arm BF16: ``cpu_has_native_bf16``), channels_last on CUDA and CPU,
optional torch.compile. Plain fp32 on other CPUs and on Apple MPS.

Safe: a checkpoint every epoch, written atomically; ``resume=True`` continues the same run
exactly (weights, optimizer, step, gradient scaler, random state, history). The learning-rate
schedule is a pure function of the step, so the step is the scheduler's whole state.

Three sizes (``common.SMOKE``, ``common.QUICK``, full): smoke mode runs ``SMOKE_EPOCHS`` epochs
for the tests; quick mode runs about ``QUICK_IMAGES`` training images in all, so that a learner
sees a model learn in minutes on a CPU; both compress the recipe's whole schedule into them.
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch
from torch import nn

from common import distributed, plots, runtime
from common.train import precision
from common.train.checkpoint import (
    CHECKPOINT,
    HISTORY,
    History,
    restore_run,
    run_state,
    save_checkpoint,
)
from common.train.optim import make_optimizer
from common.train.recipe import Recipe

SMOKE_EPOCHS = 2
#: Quick mode trains on about this many images in all (epochs x training images), at least one
#: epoch and at most the recipe's: ~8 epochs of the 5k quick CIFAR-10 subset, ~30 of digits.
QUICK_IMAGES = 40_000
#: The live plot (in a notebook) is redrawn at most this often, in seconds; always after the
#: first epoch of a call and the last epoch of a run.
LIVE_PLOT_SECONDS = 5.0


def _forward_batches(model, data, split, batch_size, amp_dtype, channels_last, shard=None):
    """Yield (outputs, labels) of ``model`` in eval mode over a whole split (with ``shard``,
    over this process's share of it)."""
    device = next(model.parameters()).device
    for x, y in data.batches(split, batch_size, **({"shard": shard} if shard else {})):
        x, y = precision.to_device(x, y, device, channels_last)
        with precision.autocast(device, amp_dtype):
            yield model(x).float(), y


@torch.no_grad()
def evaluate(model: nn.Module, data, split: str = "test", batch_size: int = 1024,
             amp: bool = True, dist: distributed.Context | None = None) -> dict:
    """Mean cross-entropy loss and accuracy of ``model`` on a split (the test split is for the
    final number only: choose hyperparameters on "val"). In the precision ``fit`` uses on the
    model's device (``amp=False``: fp32). With a ``dist`` context of several processes (what
    ``fit`` passes under torchrun), each process evaluates its share of the split and the sums
    are added up: every process gets the whole split's numbers."""
    dist = distributed.Context() if dist is None else dist
    n = len(data[split])
    if n == 0:
        raise ValueError(
            f"The {split!r} split of {data.description} has no images"
            + (" (loaded with val_fraction=0)" if split == "val" else "")
            + ": evaluate on 'test' for the final number, or load the data with a validation "
            "split (the default) to choose hyperparameters on 'val'.")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    channels_last = precision.channels_last_for(device, model)
    amp_dtype = precision.amp_dtype(device, amp, model)
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    try:
        with precision.fp32_layers(model, device, amp_dtype):
            for out, y in _forward_batches(model, data, split, batch_size, amp_dtype,
                                           channels_last,
                                           dist.shard if dist.distributed else None):
                loss += nn.functional.cross_entropy(out, y, reduction="sum")
                correct += (out.argmax(1) == y).sum()
    finally:
        model.train(was_training)
    loss, correct = dist.sum_over_processes(loss, correct)     # DDP: the whole split's sums
    return {"loss": loss / n, "acc": correct / n}


def _model_name(model: nn.Module) -> str:
    return getattr(model, "name", None) or type(model).__name__


def _check_outputs(model: nn.Module, data, device, channels_last) -> None:
    """One forward pass of two training images in eval mode (no state changes): the model must
    return (N, data.num_classes) logits, else a clear error before any step or file."""
    x = next(iter(data.batches("train", 2)))[0].to(device)      # the first two, normalised
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        model.train(was_training)
    name = _model_name(model)
    if not (isinstance(out, torch.Tensor) and out.ndim == 2):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name} returns {shape} for a batch of 2 images; fit needs logits of "
                         f"shape (N, {data.num_classes}), one score per class.")
    if out.shape[1] != data.num_classes:
        raise ValueError(
            f"{name} outputs {out.shape[1]} class scores per image, but {data.description} has "
            f"{data.num_classes} classes. Build the model for this data: "
            f"common.get_model({name!r}, num_classes=data.num_classes) (or pass "
            "num_classes=data.num_classes to your own model's constructor).")


def _mode(smoke: bool, quick: bool) -> str:
    return "smoke" if smoke else "quick" if quick else "full"


def fit(model: nn.Module, data, recipe: Recipe, *, run_dir: str | Path | None = None,
        resume: bool = False, device=None, amp: bool = True, channels_last: bool | None = None,
        compile: bool = False, seed: int = 0, progress: bool | None = None,
        live_plot: bool | None = None, stop_after_epochs: int | None = None,
        smoke: bool | None = None, quick: bool | None = None, quick_images: int | None = None,
        verbose: bool = True, sync_bn: bool = False,
        dist: distributed.Context | None = None) -> History:
    """Train ``model`` on ``data`` (a ``common.load_data`` bundle) with ``recipe``.

    The recipe's optimizer (SGD by default, see ``Recipe``) and cross-entropy with optional label
    smoothing, the recipe's warm-up and schedule set every step; after each epoch the
    validation split is evaluated (unless the data has none: ``load_data(..., val_fraction=0)``
    trains on the whole training set, and the run says so), the history updated, and (with
    ``run_dir``) the checkpoint and history.json written atomically. A model whose output width
    is not ``data.num_classes`` is refused before anything runs or is written.

    Precision: bf16 autocast on CUDA (fp16 with loss scaling where a GPU lacks bf16) and on CPUs
    with native bf16 (``cpu_has_native_bf16``; there a model's depthwise convolutions larger than
    3x3 compute in fp32, which is faster on CPUs: ``precision.fp32_layers``, recorded as
    history["fp32_layers"]); fp32 elsewhere, or everywhere with ``amp=False``.
    Weights, optimizer state and checkpoints stay fp32. A run resumed in another precision than
    it started in (another machine, or amp changed) continues, says so, and records it under
    history["precision_changes"]; it is then not bit-identical to a straight run.

    run_dir: where the checkpoint goes (None: no checkpoint). resume: continue the checkpoint in
    run_dir if there is one (an error if it is from another run). With resume=False an existing
    checkpoint is never overwritten: an error says what to do. stop_after_epochs: train this
    many epochs in this call and stop (resume later).

    Modes (``smoke`` defaults to ``common.SMOKE``, ``quick`` to ``common.QUICK``; smoke wins): in
    smoke mode only the first ``SMOKE_EPOCHS`` epochs run; in quick mode enough epochs to see
    about ``quick_images`` training images (default ``QUICK_IMAGES``: a run that needs fewer, or
    more, to learn in quick mode says so here; the first line prints it, and the history and
    the checkpoint record it); in both the recipe's whole schedule is compressed into them.
    Smoke and full mode ignore ``quick_images``. progress (the progress bar) and live_plot (the
    curves, redrawn in a notebook at most every ``LIVE_PLOT_SECONDS``) default to on, except in
    smoke mode, where the tests need quiet output.

    Several processes (``torchrun``, see ``common.distributed``): ``dist`` defaults to the
    process group this process has joined (none: a single process, and nothing below changes).
    Then ``recipe.batch_size`` is the global batch, each process trains on its piece of every
    global batch through ``DistributedDataParallel``, the numbers are those of all processes
    together, and only rank 0 prints and writes. ``sync_bn``: batch norm over the global batch
    (``torch.nn.SyncBatchNorm``, CUDA only; it changes the model's batch-norm layers in place);
    with one process it has nothing to synchronise and changes nothing. The lines that DDP adds
    are marked ``# DDP:``.

    Reading the code: notebook 00, section 4 ("The loop, once") writes this function's heart by
    hand as ``train_loop``. Each of its lines has its twin here, in the same order, marked
    ``# 00:`` with the line it stands for; everything else is a named phase: ``_place_model``
    (device, layout, output check), ``_sync_batch_norm`` (DDP), ``_plan_epochs`` (the mode),
    ``_describe_run``, ``_restore_or_start``, ``_Report`` (the first lines, the bar, a line per
    epoch, the last line), ``_EpochMeter`` (the epoch's loss, accuracy and speed),
    ``_validate``, ``_checkpoint``.
    """
    dist = distributed.current() if dist is None else dist    # DDP: which process of how many
    smoke, quick = modes(smoke, quick)
    quick_images = check_quick_images(quick_images)
    model, device, channels_last = _place_model(model, data, device, channels_last)
    batch_per_process = dist.batch_per_process(recipe.batch_size)   # DDP: global batch / N
    model, sync_bn = _sync_batch_norm(model, device, sync_bn, dist)
    amp_dtype = precision.amp_dtype(device, amp, model)
    # Only fp16 needs loss scaling; the scaler is still built (disabled) so checkpoints are alike.
    scaler = torch.amp.GradScaler("cuda" if device.type == "cuda" else "cpu",
                                  enabled=amp_dtype == torch.float16)
    optimizer = make_optimizer(model, recipe)                     # 00: optimizer = SGD(...)
    # each group's own rate, recipe.lr x its parts' Recipe.lr_scales; the schedule scales it
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)   # 00: criterion = ...
    epochs = _plan_epochs(recipe, len(data.train), smoke, quick, quick_images)
    steps = max(1, len(data.train) // recipe.batch_size)   # 00: steps = (partial batch dropped)
    time_scale = recipe.epochs / epochs                  # > 1 only in smoke and quick mode
    run, history = _describe_run(model, data, recipe, device, amp_dtype, channels_last, epochs,
                                 smoke, quick, quick_images, seed, sync_bn, batch_per_process,
                                 dist)
    if quick and quick_images != QUICK_IMAGES and dist.is_main:   # for runtime.mode_changes
        runtime.note_mode_change(
            f"{history['model']} trained on {quick_images:,} images",
            f"[quick mode] {history['model']}: {epochs} of the recipe's {recipe.epochs} epochs, "
            f"{epochs * len(data.train):,} images (this run's quick budget, {quick_images:,}; "
            f"the default {QUICK_IMAGES:,})", show=False)
    ckpt = Path(run_dir) / CHECKPOINT if run_dir is not None else None
    start = _restore_or_start(ckpt, resume, seed, model, optimizer, scaler, recipe, run, history,
                              dist)
    train_model = dist.wrap(model)        # DDP: the wrapper averages gradients in backward()
    step_model = torch.compile(train_model) if compile else train_model
    report = _Report(history["mode"], verbose, progress, live_plot, dist)
    in_words = precision.precision_text(device, amp, amp_dtype, model)
    report.announce(history, recipe, steps, in_words, compile, start, ckpt, dist)
    end = epochs if stop_after_epochs is None else min(epochs, start + stop_after_epochs)
    bar = report.bar(start, end, steps)
    fp32_layers = contextlib.ExitStack()
    try:
        # CPU bf16: the layers slower in bf16 compute in fp32, in this call only (even on an error)
        fp32_layers.enter_context(precision.fp32_layers(model, device, amp_dtype))
        for epoch in range(start, end):                            # 00: for epoch in range(...)
            bar.set_description(f"{report.tag}epoch {epoch + 1}/{epochs}")
            model.train()                                          # 00: model.train()
            # This epoch's order and augmentation depend only on (seed, epoch): exact on resume.
            order = torch.Generator().manual_seed(seed * 1_000_003 + epoch)   # 00: order = ...
            meter = _EpochMeter(device, bar if report.progress else None, steps, dist)
            # DDP: every process draws the same order; each trains on its piece of each batch
            shard = {"shard": dist.shard} if dist.distributed else {}
            batches = data.batches("train", recipe.batch_size, shuffle=True, drop_last=True,
                                   augment=recipe.augment, generator=order, **shard)
            for i, (x, y) in enumerate(batches):                   # 00: for i, (x, y) in ...
                step = epoch * steps + i
                factor = recipe.lr_factor(step / steps * time_scale)
                lr = recipe.lr * factor                            # what history["lr"] shows
                for group, base in zip(optimizer.param_groups, base_lrs):   # 00: for group in ...
                    group["lr"] = base * factor                    # 00: group["lr"] = ...
                x, y = precision.to_device(x, y, device, channels_last)
                with precision.autocast(device, amp_dtype):
                    out = step_model(x)
                    loss = criterion(out, y)                       # 00: loss = criterion(...)
                optimizer.zero_grad(set_to_none=True)              # 00: optimizer.zero_grad(...)
                scaler.scale(loss).backward()                      # 00: loss.backward()
                scaler.step(optimizer)                             # 00: optimizer.step()
                scaler.update()
                meter.add(loss, out, y)
            train_loss = meter.record(history, epoch, lr, dist)   # DDP: all processes' sums
            dist.sync_buffers(model)      # DDP: every process holds rank 0's BN statistics
            if history["validation"]:
                _validate(model, data, history, amp, dist)
            if ckpt is not None:
                _checkpoint(ckpt, run_state(model, optimizer, scaler, recipe, run, history,
                                            epoch + 1, dist), history, dist)
            report.epoch(history, epochs)
            if not math.isfinite(train_loss):
                report.diverged(epoch, train_loss)
                history["diverged"] = True
                break
    finally:
        fp32_layers.close()
        bar.close()
    report.done(history, epochs)
    return history


def modes(smoke: bool | None = None, quick: bool | None = None) -> tuple[bool, bool]:
    """(smoke, quick) of a call: each given one, else ``common.SMOKE`` and ``common.QUICK``;
    smoke wins."""
    smoke = runtime.SMOKE if smoke is None else smoke
    return smoke, (runtime.QUICK if quick is None else quick) and not smoke


def check_quick_images(quick_images: int | None) -> int:
    """A run's quick-mode budget: ``quick_images``, or ``QUICK_IMAGES`` when None; a clear
    error for anything but a positive whole number."""
    if quick_images is None:
        return QUICK_IMAGES
    if isinstance(quick_images, bool) or not isinstance(quick_images, int) or quick_images < 1:
        raise ValueError(f"quick_images is the number of training images a run sees in quick "
                         f"mode, a positive whole number (default {QUICK_IMAGES:,}); got "
                         f"{quick_images!r}.")
    return quick_images


def _place_model(model, data, device, channels_last):
    """The model on its device (the data's unless ``device`` is given), in its memory layout
    (channels_last where it is faster, unless told), its output width checked against the data:
    (model, device, channels_last)."""
    device = runtime.pick_device(device) if device is not None else data.device
    model.to(device)
    if channels_last is None:      # the device's layout, unless the model's card says NCHW
        channels_last = precision.channels_last_for(device, model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    _check_outputs(model, data, device, channels_last)
    return model, device, channels_last


def _sync_batch_norm(model, device, sync_bn, dist):
    """DDP: (model, sync_bn) with batch norm over the global batch if asked and there are
    several processes (CUDA only: an error elsewhere)."""
    sync_bn = bool(sync_bn) and dist.distributed
    if sync_bn:               # DDP: batch statistics over the global batch, not each piece
        if device.type != "cuda":
            raise ValueError("SyncBatchNorm runs on CUDA GPUs only (PyTorch has no CPU kernels "
                             f"for it), and this run is on {device.type}: leave sync_bn out.")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model, sync_bn


def _plan_epochs(recipe: Recipe, n_train: int, smoke: bool, quick: bool,
                 quick_images: int | None = None) -> int:
    """How many epochs this mode runs: the first ``SMOKE_EPOCHS`` in smoke mode, about
    ``quick_images`` (default ``QUICK_IMAGES``) training images' worth in quick mode (at least
    one, at most the recipe's), the recipe's in full mode. ``fit`` compresses the whole schedule
    into them."""
    if smoke:
        return min(recipe.epochs, SMOKE_EPOCHS)
    if quick:
        budget = QUICK_IMAGES if quick_images is None else quick_images
        return min(recipe.epochs, max(1, round(budget / n_train)))
    return recipe.epochs


def _describe_run(model, data, recipe, device, amp_dtype, channels_last, epochs, smoke, quick,
                  quick_images, seed, sync_bn, batch_per_process,
                  dist) -> tuple[dict, History]:
    """What defines the run (``run``: a checkpoint resumes only a run that matches it) and the
    new, empty history that records it with how it runs (device, precision, layout...). A quick
    run's budget (``quick_images``) is part of what defines it; other modes ignore it."""
    run = {"model": _model_name(model), "dataset": data.description, "offline": data.offline,
           "train_size": len(data.train), "epochs_run": epochs, "smoke": smoke, "quick": quick,
           "seed": seed, "world_size": dist.world_size, "sync_bn": sync_bn}
    if quick:
        run["quick_images"] = quick_images
    history = History(run, mode=_mode(smoke, quick), device=str(device),
                      recipe=recipe.to_dict(), params=sum(p.numel() for p in model.parameters()),
                      precision=str(amp_dtype or torch.float32).replace("torch.", ""),
                      fp32_layers=precision.fp32_layer_count(model, device, amp_dtype),
                      channels_last=channels_last, validation=len(data.val) > 0,
                      batch_per_process=batch_per_process)
    return run, history


def _restore_or_start(ckpt, resume, seed, model, optimizer, scaler, recipe, run, history,
                      dist) -> int:
    """The epoch to start after: the checkpoint's, restored into model, optimizer, scaler,
    random state and history (``resume=True``; without it an existing checkpoint is an error),
    else 0, with torch's generator seeded for dropout and other random layers."""
    if ckpt is not None and ckpt.exists():
        if not resume:
            raise FileExistsError(
                f"{ckpt} holds an earlier run. Pass resume=True to continue it, or give another "
                "run_dir (or delete that folder) to start afresh.")
        return restore_run(ckpt, model, optimizer, scaler, recipe, run, history, dist)
    torch.manual_seed(seed + dist.rank)      # dropout and other random layers (DDP: r + seed)
    return 0


class _EpochMeter:
    """One epoch's training loss, correct predictions and images, summed on the device (no
    wait for it per step), and the progress bar's numbers every 25 steps (``bar``: None for
    none)."""

    def __init__(self, device, bar, steps: int, dist):
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = 0
        self.i = -1                                  # the step within the epoch
        self.bar, self.steps, self.world_size = bar, steps, dist.world_size
        self.t0 = time.perf_counter()

    def add(self, loss, out, y) -> None:
        self.loss_sum += loss.detach() * len(y)
        self.correct += (out.detach().argmax(1) == y).sum()
        self.seen += len(y)
        self.i += 1
        if self.bar is None:
            return
        self.bar.update()
        if self.i % 25 == 0 or self.i == self.steps - 1:
            every = self.seen * self.world_size     # DDP: all processes' images (rank 0's bar)
            self.bar.set_postfix(loss=f"{self.loss_sum.item() / self.seen:.3f}",
                                 acc=f"{self.correct.item() / self.seen:.3f}",
                                 img_s=f"{every / (time.perf_counter() - self.t0):.0f}",
                                 refresh=False)

    def record(self, history: History, epoch: int, lr: float, dist):
        """The epoch's numbers, over all processes (DDP), appended to ``history``; returns the
        training loss."""
        # DDP: the sums of every process (this waits for the device, like .item())
        loss_sum, correct, seen = dist.sum_over_processes(self.loss_sum, self.correct, self.seen)
        train_loss = loss_sum / seen
        seconds = time.perf_counter() - self.t0
        for k, v in zip(("epoch", "train_loss", "train_acc", "lr", "images_per_sec", "seconds"),
                        (epoch + 1, train_loss, correct / seen, lr, seen / seconds, seconds)):
            history[k].append(v)
        return train_loss


def _validate(model, data, history: History, amp: bool, dist) -> None:
    """Evaluate on the validation split (all processes' shares, DDP) into ``history``."""
    val = evaluate(model, data, "val", amp=amp, dist=dist)
    history["val_loss"].append(val["loss"])
    history["val_acc"].append(val["acc"])


def _checkpoint(ckpt: Path, state: dict, history: History, dist) -> None:
    """Write the checkpoint and history.json beside it, atomically."""
    if dist.is_main:          # DDP: rank 0 writes, the others wait until it has
        save_checkpoint(state, ckpt)
        history.save(ckpt.with_name(HISTORY))
    dist.barrier()


class _Report:
    """What ``fit`` shows: the first lines (what runs, on what, how), a progress bar, one line or
    the live plot per epoch, the last line. Modes other than full tag every line ("[smoke mode]
    ..."). Defaults: progress and live_plot (in a notebook) on, except in smoke mode; under DDP
    only rank 0 shows anything."""

    def __init__(self, mode: str, verbose: bool, progress, live_plot, dist):
        smoke = mode == "smoke"
        live_plot = (plots.in_notebook() and not smoke) if live_plot is None else live_plot
        progress = (not smoke) if progress is None else progress
        # DDP: only rank 0 prints and plots
        self.verbose, self.progress, self.live_plot = (v and dist.is_main
                                                       for v in (verbose, progress, live_plot))
        self.tag = "" if mode == "full" else f"[{mode} mode] "
        self.plot_handle, self.plotted_at, self.plotted_epoch = None, -math.inf, None

    def print(self, lines) -> None:
        print("\n".join(self.tag + line for line in lines))

    def announce(self, history: History, recipe: Recipe, steps: int, precision: str,
                 compile: bool, start: int, ckpt, dist) -> None:
        if not self.verbose:
            return
        h, epochs, n_train = history, history["epochs_run"], history["train_size"]
        per_process = h["batch_per_process"]
        lines = [f"fit {h['model']}: {h['params'] / 1e6:.2f}M parameters on {h['device']}, "
                 f"{precision}{', channels_last' if h['channels_last'] else ''}"
                 f"{', compiled' if compile else ''}; {h['dataset']}: {n_train} training "
                 f"images, {steps} steps of {recipe.batch_size} per epoch"]
        if dist.distributed:
            lines.append(
                f"DistributedDataParallel: {dist.world_size} processes ({dist.backend}); global "
                f"batch {recipe.batch_size} = {dist.world_size} x {per_process} per process; "
                f"lr {recipe.lr:g} is for the global batch; batch norm "
                + ("synchronised over the global batch (SyncBatchNorm)" if h["sync_bn"] else
                   f"per process, over {per_process} images (sync_bn=True: SyncBatchNorm)"))
        if not h["validation"]:
            lines.append("no validation set (load_data(..., val_fraction=0)): training on the "
                         "whole training set; the test split is the only held-out measure")
        if h["smoke"]:
            lines.append(f"{epochs} of the recipe's {recipe.epochs} epochs, with the "
                         "learning-rate schedule compressed into them")
        if h["quick"]:
            budget = h["quick_images"]
            lines.append(f"{epochs} of the recipe's {recipe.epochs} epochs "
                         f"({epochs * n_train:,} images seen"
                         + (f"; this run's quick budget is {budget:,} images, the default "
                            f"{QUICK_IMAGES:,}" if budget != QUICK_IMAGES else "")
                         + "), with the learning-rate schedule compressed into them: a model "
                         "learns visibly, but the numbers are not the paper's (unset "
                         "IMAGENET5_QUICK for the full run)")
        if start:
            lines.append(f"resuming from {ckpt} after epoch {start}")
            change = (h.get("precision_changes") or [{}])[-1]
            if change.get("epoch") == start:
                lines.append(f"precision changed: the run so far trained in {change['from']}, "
                             f"it continues in {change['to']} (so it is not bit-identical to a "
                             "straight run; recorded in history['precision_changes'])")
        self.print(lines)

    def bar(self, start: int, end: int, steps: int):
        """The progress bar over this call's steps; none for a run that is already finished (a
        re-run that only reloads it)."""
        from tqdm.auto import tqdm  # optional: a progress bar only where one is shown

        return tqdm(total=(end - start) * steps, disable=not self.progress or end <= start,
                    unit="step", dynamic_ncols=True)

    def plot(self, history: History) -> None:
        """The live plot drawn (first call) or redrawn in place, up to the history's last epoch."""
        self.plot_handle = plots.show_live(history, self.plot_handle)
        self.plotted_at, self.plotted_epoch = time.perf_counter(), history["epoch"][-1]

    def epoch(self, history: History, epochs: int) -> None:
        """The epoch's line, or, in a notebook, the live plot: drawn after this call's first
        epoch and the run's last, and in between redrawn at most every ``LIVE_PLOT_SECONDS``
        (a redraw costs a good share of a small model's epoch on a CPU)."""
        if self.live_plot:
            if (self.plot_handle is None or history["epoch"][-1] == epochs
                    or time.perf_counter() - self.plotted_at >= LIVE_PLOT_SECONDS):
                self.plot(history)
        elif self.verbose:
            h = history
            held_out = (f"val loss {h['val_loss'][-1]:.4f} acc {h['val_acc'][-1]:.4f}"
                        if h["validation"] else "(no validation set)")
            self.print([f"epoch {h['epoch'][-1]:>3}/{epochs}  "
                        f"train loss {h['train_loss'][-1]:.4f} acc {h['train_acc'][-1]:.4f}  "
                        f"{held_out}  lr {h['lr'][-1]:.4g}  {h['images_per_sec'][-1]:,.0f} img/s"])

    def diverged(self, epoch: int, train_loss: float) -> None:
        print(f"{self.tag}Training diverged at epoch {epoch + 1} (loss {train_loss}): "
              "stopping. Lower the learning rate, add warm-up, or check the initialisation.")

    def done(self, history: History, epochs: int) -> None:
        """The last line; the live plot brought up to the last epoch run (a run stopped early,
        by ``stop_after_epochs`` or a divergence, between two redraws)."""
        if self.live_plot and history["epoch"] and self.plotted_epoch is not None \
                and self.plotted_epoch != history["epoch"][-1]:
            self.plot(history)
        if not (self.verbose and history["epoch"]):
            return
        if history["validation"]:
            e, acc = history.best("val_acc")
            self.print([f"done: best val acc {acc:.4f} at epoch {e}; last val acc "
                        f"{history['val_acc'][-1]:.4f}"])
        else:
            self.print([f"done: last train loss {history['train_loss'][-1]:.4f}, train acc "
                        f"{history['train_acc'][-1]:.4f} (no validation set: evaluate on "
                        "'test' once, at the end)"])
