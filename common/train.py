"""The shared trainer: one ``fit`` for every paper, driven by a ``Recipe`` (the paper's numbers).

    recipe = Recipe(epochs=182, lr=0.1, momentum=0.9, weight_decay=1e-4, milestones=(91, 136),
                    sources={"lr": "He et al. 2015, section 4.2"})
    history = fit(model, data, recipe, run_dir=runs_dir("resnet20"), resume=True)

Fast where it matters: data on the device as uint8 with batched augmentation (common.data),
bf16 autocast on CUDA (fp16 with a gradient scaler on GPUs without bf16), channels_last on CUDA
and CPU, optional torch.compile. Plain fp32 on CPU and Apple MPS.

Safe: a checkpoint every epoch, written atomically; ``resume=True`` continues the same run
exactly (weights, optimizer, step, gradient scaler, random state, history). The learning-rate
schedule is a pure function of the step, so the step is the scheduler's whole state.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

import common
from common.display import Table

SMOKE_EPOCHS = 2
CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
FORMAT = "imagenet5-checkpoint-v1"
SCHEDULES = ("multistep", "cosine", "constant")
WARMUPS = ("linear", "constant")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, corrupt, or from another run."""


@dataclass(frozen=True)
class Recipe:
    """A paper's training hyperparameters. ``sources`` maps a field to where the paper states it
    (or why we chose it); ``table()`` shows them side by side.

    Epoch-based: ``milestones`` and ``warmup_epochs`` are in epochs and may be fractional, so a
    paper's iteration counts convert exactly (``Recipe.iterations_to_epochs``). The learning rate
    is set every step: lr * warm-up factor * schedule factor."""
    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "multistep"
    milestones: tuple = ()
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    warmup: str = "linear"
    warmup_factor: float = 0.1
    label_smoothing: float = 0.0
    augment: bool = True
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if not (isinstance(self.epochs, int) and self.epochs > 0):
            raise ValueError(f"epochs must be a positive whole number, got {self.epochs!r}.")
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError("batch_size must be at least 1 and lr positive.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown schedule {self.schedule!r}: choose one of {SCHEDULES}.")
        if self.warmup not in WARMUPS:
            raise ValueError(f"Unknown warmup {self.warmup!r}: choose one of {WARMUPS}.")
        if list(self.milestones) != sorted(self.milestones) or any(
                not 0 < m <= self.epochs for m in self.milestones):
            raise ValueError(f"milestones {self.milestones} must be increasing epochs within "
                             f"(0, {self.epochs}].")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError("warmup_epochs must be at least 0 and less than epochs.")
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(self.sources) - names
        if unknown:
            raise ValueError(f"sources names unknown fields {sorted(unknown)}; fields: "
                             f"{sorted(names - {'sources'})}.")

    @staticmethod
    def iterations_to_epochs(iterations: float, batch_size: int, train_size: int) -> float:
        """A paper's iteration count in epochs: iterations * batch_size / train_size."""
        return iterations * batch_size / train_size

    def lr_factor(self, epoch: float) -> float:
        """The learning rate at (fractional) ``epoch``, as a multiple of ``lr``."""
        if self.schedule == "multistep":
            f = self.gamma ** sum(epoch >= m for m in self.milestones)
        elif self.schedule == "cosine":
            t = (epoch - self.warmup_epochs) / (self.epochs - self.warmup_epochs)
            f = 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))
        else:
            f = 1.0
        if epoch < self.warmup_epochs:
            w = self.warmup_factor
            f *= w if self.warmup == "constant" else w + (1 - w) * epoch / self.warmup_epochs
        return f

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["sources"] = dict(self.sources)
        return d

    def table(self) -> Table:
        """Each hyperparameter, its value and where it comes from."""
        rows = [(f.name, getattr(self, f.name), self.sources.get(f.name, ""))
                for f in dataclasses.fields(self) if f.name != "sources"]
        return Table(rows, header=("hyperparameter", "value", "source"))


class History(dict):
    """What a run did, epoch by epoch (lists under "epoch", "train_loss", "train_acc",
    "val_loss", "val_acc", "lr", "images_per_sec", "seconds"), and how (the other keys:
    "dataset", "offline", "smoke", "device", "recipe", ...). Saved as JSON beside the checkpoint."""
    SERIES = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
              "images_per_sec", "seconds")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for k in self.SERIES:
            self.setdefault(k, [])

    def best(self, metric: str = "val_acc") -> tuple[int, float]:
        """(epoch, value) of the best ``metric`` (highest accuracy, lowest loss)."""
        vals = self[metric]
        if not vals:
            raise ValueError("The history has no epochs yet.")
        pick = max if "acc" in metric else min
        i = pick(range(len(vals)), key=vals.__getitem__)
        return self["epoch"][i], vals[i]

    def save(self, path: str | Path) -> None:
        _atomic_write(Path(path), json.dumps(self, indent=1).encode())

    @classmethod
    def load(cls, path: str | Path) -> "History":
        return cls(json.loads(Path(path).read_text()))

    def plot(self, metrics=("train_loss", "val_loss", "train_acc", "val_acc"), show: bool = True):
        return plot_histories({self.get("model", "run"): self}, metrics=metrics, show=show)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is never half-written: write a temporary file
    in the same folder, flush it to disk, then rename it over ``path`` (atomic on POSIX and
    Windows). If anything fails, ``path`` keeps its old content and the temporary file goes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(state: dict, path: str | Path) -> None:
    """``torch.save`` made atomic: a failed write never replaces a good checkpoint."""
    buf = io.BytesIO()
    torch.save(state, buf)
    _atomic_write(Path(path), buf.getvalue())


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by ``fit`` (with ``weights_only=True``: no code runs from it)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} cannot be read as a checkpoint ({type(err).__name__}: {err}). It may be "
            "truncated or corrupt: move it away (or delete it) to start this run afresh, or give "
            "fit() another run_dir.") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint written by common.fit "
                              f"(format {FORMAT!r}); give fit() another run_dir.")
    return state


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _channels_last(device: torch.device) -> bool:
    """channels_last (NHWC) is the faster layout for convolutions with cuDNN and with oneDNN on
    x86 CPUs; the numbers are the same up to summation order."""
    return device.type in ("cuda", "cpu")


def _amp_dtype(device: torch.device, amp: bool):
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _to_device(x, y, device, channels_last):
    """A batch on the model's device, images in the model's memory layout."""
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y


def _autocast(device: torch.device, amp_dtype):
    """Mixed precision in ``amp_dtype`` on ``device``; plain fp32 when it is None."""
    return torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                          enabled=amp_dtype is not None)


def _forward_batches(model, data, split, batch_size, amp_dtype, channels_last):
    """Yield (outputs, labels) of ``model`` in eval mode over a whole split."""
    device = next(model.parameters()).device
    for x, y in data.batches(split, batch_size):
        x, y = _to_device(x, y, device, channels_last)
        with _autocast(device, amp_dtype):
            yield model(x).float(), y


@torch.no_grad()
def evaluate(model: nn.Module, data, split: str = "test", batch_size: int = 1024,
             amp: bool = True) -> dict:
    """Mean cross-entropy loss and accuracy of ``model`` on a split (the test split is for the
    final number only: choose hyperparameters on "val")."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    channels_last = _channels_last(device)
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for out, y in _forward_batches(model, data, split, batch_size, _amp_dtype(device, amp),
                                   channels_last):
        loss += nn.functional.cross_entropy(out, y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
    model.train(was_training)
    n = len(data[split])
    return {"loss": loss.item() / n, "acc": correct.item() / n}


def _model_name(model: nn.Module) -> str:
    return getattr(model, "name", None) or type(model).__name__


def fit(model: nn.Module, data, recipe: Recipe, *, run_dir: str | Path | None = None,
        resume: bool = False, device=None, amp: bool = True, channels_last: bool | None = None,
        compile: bool = False, seed: int = 0, progress: bool = True,
        live_plot: bool | None = None, stop_after_epochs: int | None = None,
        smoke: bool | None = None, verbose: bool = True) -> History:
    """Train ``model`` on ``data`` (a ``common.load_data`` bundle) with ``recipe``.

    SGD with momentum (Nesterov if asked) and weight decay, cross-entropy with optional label
    smoothing, the recipe's warm-up and schedule set every step; after each epoch the
    validation split is evaluated, the history updated, and (with ``run_dir``) the checkpoint
    and history.json written atomically.

    run_dir: where the checkpoint goes (None: no checkpoint). resume: continue the checkpoint in
    run_dir if there is one (an error if it is from another run). With resume=False an existing
    checkpoint is never overwritten: an error says what to do. stop_after_epochs: train this
    many epochs in this call and stop (resume later). In smoke mode (default ``common.SMOKE``)
    only the first ``SMOKE_EPOCHS`` epochs run, and the whole schedule is compressed into them.
    """
    smoke = common.SMOKE if smoke is None else smoke
    device = common.pick_device(device) if device is not None else data.device
    model.to(device)
    channels_last = _channels_last(device) if channels_last is None else channels_last
    if channels_last:
        model.to(memory_format=torch.channels_last)
    amp_dtype = _amp_dtype(device, amp)
    # Only fp16 needs loss scaling; the scaler is still built (disabled) so checkpoints are alike.
    scaler = torch.amp.GradScaler("cuda" if device.type == "cuda" else "cpu",
                                  enabled=amp_dtype == torch.float16)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    epochs = min(recipe.epochs, SMOKE_EPOCHS) if smoke else recipe.epochs
    n_train = len(data.train)
    steps = max(1, n_train // recipe.batch_size)       # the last partial batch is dropped
    time_scale = recipe.epochs / epochs                  # > 1 only in smoke mode
    run = {"model": _model_name(model), "dataset": data.description, "offline": data.offline,
           "train_size": n_train, "epochs_run": epochs, "smoke": smoke, "seed": seed}
    history = History(run, device=str(device), recipe=recipe.to_dict(),
                      params=sum(p.numel() for p in model.parameters()),
                      precision=str(amp_dtype or torch.float32).replace("torch.", ""),
                      channels_last=channels_last)
    ckpt = Path(run_dir) / CHECKPOINT if run_dir is not None else None
    start = 0
    if ckpt is not None and ckpt.exists():
        if not resume:
            raise FileExistsError(
                f"{ckpt} holds an earlier run. Pass resume=True to continue it, or give another "
                "run_dir (or delete that folder) to start afresh.")
        start = _restore(ckpt, model, optimizer, scaler, recipe, run, history)
    else:
        torch.manual_seed(seed)          # dropout and other random layers
    step_model = torch.compile(model) if compile else model
    live_plot = _in_notebook() if live_plot is None else live_plot
    plot_handle = None
    if verbose:
        line = (f"fit {run['model']}: {history['params'] / 1e6:.2f}M parameters on {device} "
                f"({history['precision']}{', channels_last' if channels_last else ''}"
                f"{', compiled' if compile else ''}); {data.description}: {n_train} training "
                f"images, {steps} steps of {recipe.batch_size} per epoch")
        if smoke:
            line += (f"\nSMOKE MODE: {epochs} of the recipe's {recipe.epochs} epochs, with the "
                     "learning-rate schedule compressed into them")
        if start:
            line += f"\nresuming from {ckpt} after epoch {start}"
        print(line)
    from tqdm.auto import tqdm
    end = epochs if stop_after_epochs is None else min(epochs, start + stop_after_epochs)
    bar = tqdm(total=(end - start) * steps, disable=not progress, unit="step",
               dynamic_ncols=True)
    try:
        for epoch in range(start, end):
            bar.set_description(f"epoch {epoch + 1}/{epochs}")
            # This epoch's order and augmentation depend only on (seed, epoch): exact on resume.
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            model.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            t0 = time.perf_counter()
            batches = data.batches("train", recipe.batch_size, shuffle=True,
                                   augment=recipe.augment, generator=gen, drop_last=True)
            for i, (x, y) in enumerate(batches):
                step = epoch * steps + i
                lr = recipe.lr * recipe.lr_factor(step / steps * time_scale)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x, y = _to_device(x, y, device, channels_last)
                with _autocast(device, amp_dtype):
                    out = step_model(x)
                    loss = criterion(out, y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                loss_sum += loss.detach() * len(y)
                correct += (out.detach().argmax(1) == y).sum()
                seen += len(y)
                bar.update()
                if progress and (i % 25 == 0 or i == steps - 1):
                    bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}",
                                    acc=f"{correct.item() / seen:.3f}",
                                    img_s=f"{seen / (time.perf_counter() - t0):.0f}",
                                    refresh=False)
            train_loss = loss_sum.item() / seen          # .item() waits for the device
            seconds = time.perf_counter() - t0
            val = evaluate(model, data, "val", amp=amp)
            for k, v in zip(History.SERIES, (epoch + 1, train_loss, correct.item() / seen,
                                             val["loss"], val["acc"], lr, seen / seconds,
                                             seconds)):
                history[k].append(v)
            if ckpt is not None:
                save_checkpoint(_state(model, optimizer, scaler, recipe, run, history,
                                       epoch + 1), ckpt)
                history.save(ckpt.with_name(HISTORY))
            if verbose and not live_plot:
                print(f"epoch {epoch + 1:>3}/{epochs}  train loss {train_loss:.4f} "
                      f"acc {history['train_acc'][-1]:.4f}  val loss {val['loss']:.4f} "
                      f"acc {val['acc']:.4f}  lr {lr:.4g}  {seen / seconds:,.0f} img/s")
            if live_plot:
                plot_handle = _show_live(history, plot_handle)
            if not math.isfinite(train_loss):
                print(f"Training diverged at epoch {epoch + 1} (loss {train_loss}): stopping. "
                      "Lower the learning rate, add warm-up, or check the initialisation.")
                history["diverged"] = True
                break
    finally:
        bar.close()
    if verbose and history["epoch"]:
        e, acc = history.best("val_acc")
        print(f"done: best val acc {acc:.4f} at epoch {e}; last val acc "
              f"{history['val_acc'][-1]:.4f}")
    return history


def _state(model, optimizer, scaler, recipe, run, history, epoch) -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {"format": FORMAT, "epoch": epoch, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "rng": rng, "recipe": recipe.to_dict(), "run": run, "history": dict(history)}


def _restore(path, model, optimizer, scaler, recipe, run, history) -> int:
    state = load_checkpoint(path)
    theirs, ours = dict(state["recipe"]), recipe.to_dict()
    theirs.pop("sources", None), ours.pop("sources")
    diff = [f"{k}: checkpoint {theirs.get(k)!r}, now {v!r}" for k, v in ours.items()
            if theirs.get(k) != v]
    diff += [f"{k}: checkpoint {state['run'].get(k)!r}, now {v!r}" for k, v in run.items()
             if state["run"].get(k) != v]
    if diff:
        raise CheckpointError(
            f"{path} is from a different run, so it cannot be resumed: " + "; ".join(diff)
            + ". Give fit() another run_dir to train with the new settings, or restore them.")
    try:
        common.inspection.load_state_dict_strict(model, state["model"], f"checkpoint {path}")
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} does not fit this model: {err}") from err
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    for k in History.SERIES:
        history[k] = list(state["history"].get(k, []))
    return int(state["epoch"])


def _figure(histories: Mapping[str, Mapping], metrics):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(metrics), 3.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for label, h in histories.items():
            if h.get(metric):
                ax.plot(h["epoch"], h[metric], label=label, marker="." if len(h[metric]) < 20
                        else None)
        ax.set_xlabel("epoch")
        ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
        if "acc" in metric:
            ax.set_ylim(0, 1)
    if len(histories) > 1 or not all(h.get("offline") is False for h in histories.values()):
        axes[0].legend(fontsize="small")
    sets = {h.get("dataset") for h in histories.values() if h.get("dataset")}
    if sets:
        fig.suptitle("data: " + ", ".join(sorted(sets)), fontsize="small")
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _show_live(history, handle):
    from IPython.display import Image, display

    img = Image(data=_png(_figure({history.get("model", "run"): history},
                                  ("train_loss", "val_loss", "val_acc"))))
    if handle is None:
        return display(img, display_id=True)
    handle.update(img)
    return handle


def plot_histories(histories: Mapping[str, Mapping] | Mapping, metrics=("train_loss", "val_acc"),
                   show: bool = True):
    """Curves of one or more runs side by side: ``{"label": history, ...}``. With ``show`` the
    figure is displayed (in a notebook) and None returned; ``show=False`` returns the Figure."""
    if "epoch" in histories:          # a single history
        histories = {histories.get("model", "run"): histories}
    fig = _figure(histories, metrics)
    if not show:
        return fig
    if _in_notebook():
        from IPython.display import Image, display
        display(Image(data=_png(fig)))
    return None
