"""What a run keeps in its folder, and how it comes back: the checkpoint (weights, optimizer,
gradient scaler, every random generator, the recipe and what defines the run), written
atomically after every epoch, and the ``History`` beside it as JSON. A checkpoint resumes only
the run it was written by: another recipe or setting is refused field by field.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from common.plots import plot_histories
from common.reference import load_state_dict_strict
from common.runtime import atomic_write
from common.train.precision import precision_label
from common.train.recipe import CHECKPOINT_DEFAULTS

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
FORMAT = "imagenet5-checkpoint-v1"
#: Keys of the run description a checkpoint keeps (what must match to resume) that were added
#: after checkpoints existed, with the value that means "as before" (``CHECKPOINT_DEFAULTS`` is
#: the same for the recipe's fields). ``quick_images`` (a quick run's budget, only in quick runs'
#: descriptions) was 40,000 for every quick run before a run could choose it.
RUN_KEY_DEFAULTS = {"quick": False, "world_size": 1, "sync_bn": False, "quick_images": 40_000}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, corrupt, or from another run."""



class History(dict):
    """What a run did, epoch by epoch (lists under "epoch", "train_loss", "train_acc",
    "val_loss", "val_acc", "lr", "images_per_sec", "seconds"), and how (the other keys:
    "dataset", "offline", "mode" ("full", "quick" or "smoke"), "device", "precision", "recipe",
    ...). A run without a validation set (``load_data(..., val_fraction=0)``) has
    "validation": False and empty "val_loss" and "val_acc". Saved as JSON beside the checkpoint."""
    SERIES = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
              "images_per_sec", "seconds")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for k in self.SERIES:
            self.setdefault(k, [])

    def best(self, metric: str = "val_acc") -> tuple[int, float]:
        """(epoch, value) of the best ``metric`` (highest accuracy, lowest loss)."""
        vals = self[metric]
        if not vals and self["epoch"] and metric.startswith("val_"):
            raise ValueError(
                f"This run had no validation set (load_data(..., val_fraction=0)), so it has no "
                f"{metric}: use history.best('train_loss'), or evaluate the final model on the "
                "test split once.")
        if not vals:
            raise ValueError("The history has no epochs yet.")
        pick = max if "acc" in metric else min
        i = pick(range(len(vals)), key=vals.__getitem__)
        return self["epoch"][i], vals[i]

    def save(self, path: str | Path) -> None:
        atomic_write(Path(path), json.dumps(self, indent=1).encode())

    @classmethod
    def load(cls, path: str | Path) -> "History":
        return cls(json.loads(Path(path).read_text()))

    def plot(self, metrics=("train_loss", "val_loss", "train_acc", "val_acc"), show: bool = True,
             title: str | None = None):
        return plot_histories({self.get("model", "run"): self}, metrics=metrics, show=show,
                              title=title)



def save_checkpoint(state: dict, path: str | Path) -> None:
    """``torch.save`` made atomic: a failed write never replaces a good checkpoint."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(Path(path), buf.getvalue())


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


def run_state(model, optimizer, scaler, recipe, run, history, epoch, dist=None) -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    if dist is not None and dist.distributed:   # DDP: every process's generators, by rank
        own = {"torch": rng["torch"]}
        if dist.backend == "nccl":
            own["cuda"] = torch.cuda.get_rng_state(dist.device)
        rng["ranks"] = dist.gather(own)
    return {"format": FORMAT, "epoch": epoch, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "rng": rng, "recipe": recipe.to_dict(), "run": run, "history": dict(history)}


def restore_run(path, model, optimizer, scaler, recipe, run, history, dist=None) -> int:
    state = load_checkpoint(path)
    # A checkpoint written before a field or key existed means that field's old behaviour.
    theirs = {**CHECKPOINT_DEFAULTS, **state["recipe"]}
    ours = recipe.to_dict()
    theirs_run = {**RUN_KEY_DEFAULTS, **state["run"]}
    theirs.pop("sources", None), ours.pop("sources")
    diff = [f"{k}: checkpoint {theirs.get(k)!r}, now {v!r}" for k, v in ours.items()
            if theirs.get(k) != v]
    diff += [f"{k}: checkpoint {theirs_run.get(k)!r}, now {v!r}" for k, v in run.items()
             if theirs_run.get(k) != v]
    if diff:
        raise CheckpointError(
            f"{path} is from a different run, so it cannot be resumed: " + "; ".join(diff)
            + ". Give fit() another run_dir to train with the new settings, or restore them.")
    try:
        load_state_dict_strict(model, state["model"], f"checkpoint {path}")
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} does not fit this model: {err}") from err
    if scaler.is_enabled() and state["scaler"]:
        scaler.load_state_dict(state["scaler"])     # fp16 before and now: the same loss scale
    if dist is not None and dist.distributed:   # DDP: this process's own generators
        own = state["rng"]["ranks"][dist.rank]
        torch.set_rng_state(own["torch"])
        if "cuda" in own:
            torch.cuda.set_rng_state(own["cuda"], dist.device)
    else:
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    old = state["history"]
    for k in History.SERIES:
        history[k] = list(old.get(k, []))
    changes = list(old.get("precision_changes", []))
    # the precision with the layers kept in fp32 (a history without "fp32_layers" had none)
    before = precision_label(old.get("precision", history["precision"]),
                             old.get("fp32_layers", 0))
    now = precision_label(history["precision"], history.get("fp32_layers", 0))
    if before != now:
        changes.append({"epoch": int(state["epoch"]), "from": before, "to": now})
    if changes:
        history["precision_changes"] = changes
    return int(state["epoch"])
