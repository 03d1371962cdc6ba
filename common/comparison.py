"""Models side by side: the runs ``common.fit`` saved, collected into a table and redrawn from
their histories alone, and the measurements a comparison needs, taken on the machine at hand.

    runs = load_runs(group="07_comparison", mode="full")      # every saved run of notebook 07
    rows = summarize(runs)                                     # one row per model, seeds pooled
    common.plot_histories({r["model"]: mean_history(r["runs"]) for r in rows})

Every run folder ``common.fit`` writes (``common.run_dir_for``: runs/<group>/<name>-<key>) holds
``history.json`` and ``checkpoint.pt``; this module adds ``results.json`` beside them for what
the history lacks: the test accuracy of the run's final weights (measured once, then read back)
and anything else worth keeping with the run (``save_results``). Nothing here trains: a table
and its plots can be rebuilt from the folders alone, on any machine, after any number of
sittings.

Measurements (``inference_speed``, ``training_step_memory``) time or count models on the
machine at hand; ``common.bench.machine`` names that machine. On a machine shared with other
work, compare models measured in one run, never numbers from different machines.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from common.reference import load_state_dict_strict
from common.runtime import atomic_write, runs_dir
from common.train import precision
from common.train.checkpoint import CHECKPOINT, HISTORY, History, load_checkpoint
from common.train.loop import evaluate
from common.train.optim import make_optimizer
from common.train.recipe import CHECKPOINT_DEFAULTS, Recipe

RESULTS = "results.json"


@dataclass
class Run:
    """One saved run: its folder, its history (``history.json``) and its extra results
    (``results.json``, empty when there is none)."""
    path: Path
    history: History
    results: dict

    @property
    def group(self) -> str:
        return self.path.parent.name

    @property
    def model(self) -> str:
        return self.history.get("model", "?")

    @property
    def seed(self) -> int:
        return int(self.history.get("seed", 0))

    @property
    def epochs_done(self) -> int:
        return len(self.history["epoch"])

    @property
    def epochs_planned(self) -> int:
        """The epochs this run trains in its mode (``fit``'s ``epochs_run``: fewer than the
        recipe's in smoke and quick mode)."""
        return int(self.history.get("epochs_run")
                   or self.history.get("recipe", {}).get("epochs", 0))

    @property
    def finished(self) -> bool:
        return self.epochs_done >= self.epochs_planned > 0 or bool(self.history.get("diverged"))

    def test(self, dataset: str | None = None) -> dict | None:
        """The saved test result ({"acc", "loss", "epoch"}) of the run's weights as they are now,
        on ``dataset`` (default: the data it trained on); None when not measured yet."""
        saved = self.results.get("test", {}).get(dataset or self.history.get("dataset"))
        return saved if saved and saved.get("epoch") == self.epochs_done else None


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{path} cannot be read as JSON ({type(err).__name__}: {err}). It was not written "
            f"by common.fit (which writes atomically): move it away, or delete its run folder "
            f"{path.parent} to train that run again.") from err
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds {type(value).__name__}, not a run's JSON object: move "
                         "it away, or delete its run folder to train that run again.")
    return value


def read_run(run_dir: str | Path) -> Run:
    """The run saved in ``run_dir`` (a folder ``common.fit`` wrote, with ``history.json``)."""
    path = Path(run_dir)
    if not (path / HISTORY).is_file():
        raise FileNotFoundError(f"{path} holds no {HISTORY}: it is not a run folder of "
                                "common.fit, or its first epoch has not finished yet.")
    results = _read_json(path / RESULTS) if (path / RESULTS).exists() else {}
    return Run(path, History(_read_json(path / HISTORY)), results)


def load_runs(root: str | Path | None = None, *, group: str | None = None,
              model: str | None = None, dataset: str | None = None, mode: str | None = None,
              train_size: int | None = None, params: int | None = None,
              recipe=None) -> list[Run]:
    """Every saved run under ``root`` (default ``common.runs_dir()``) in the layout of
    ``common.run_dir_for``: ``<root>/<group>/<name>-<key>/history.json``. Filters, all optional:
    the ``group`` (the notebook, e.g. "02_resnet"), the ``model`` name ``fit`` recorded, the
    ``dataset`` (``data.description``), the ``mode`` ("full", "quick", "smoke"), the number of
    training images, the number of parameters (which tells apart runs of the same name built
    with other widths or depths), the ``recipe`` (a ``common.Recipe``: its numbers, not its
    ``sources``). Sorted by group, model, seed and folder."""
    wanted = _numbers(recipe.to_dict()) if recipe is not None else None
    root = Path(root) if root is not None else runs_dir()
    runs = []
    for path in sorted(root.glob(f"{group or '*'}/*/{HISTORY}")):
        run = read_run(path.parent)
        h = run.history
        if ((model is None or run.model == model)
                and (dataset is None or h.get("dataset") == dataset)
                and (mode is None or h.get("mode", "full") == mode)
                and (train_size is None or h.get("train_size") == train_size)
                and (params is None or h.get("params") == params)
                and (wanted is None or _numbers(h.get("recipe", {})) == wanted)):
            runs.append(run)
    return sorted(runs, key=lambda r: (r.group, r.model, r.seed, str(r.path)))


def _numbers(recipe: dict) -> dict:
    """A recipe's numbers as saved in a history (JSON: tuples become lists), without its
    sources; fields added to Recipe later get their "as before" values."""
    out = {**CHECKPOINT_DEFAULTS, **recipe}
    out.pop("sources", None)
    return json.loads(json.dumps(out))


def pick_run(runs: list[Run]) -> Run | None:
    """The run to show when several match: a finished one before an unfinished one, then the one
    with most epochs, then the most recently written. None when there is none."""
    if not runs:
        return None
    return max(runs, key=lambda r: (r.finished, r.epochs_done,
                                    (r.path / HISTORY).stat().st_mtime))


def save_results(run_dir: str | Path, **values) -> dict:
    """Merge ``values`` into the run's ``results.json`` (written atomically); return all of it."""
    path = Path(run_dir) / RESULTS
    results = _read_json(path) if path.exists() else {}
    results.update(values)
    atomic_write(path, json.dumps(results, indent=1, sort_keys=True).encode())
    return results


def test_result(run: Run | str | Path, model: nn.Module, data) -> dict:
    """The test loss and accuracy of the run's saved weights on ``data``'s test split:
    read from ``results.json`` when measured before on the same data and the same epoch, else
    measured (the checkpoint's weights loaded into ``model``, which must be the run's
    architecture) and saved there. So a run trained on a GPU in one sitting is evaluated once, and
    a table rebuilt later reads the number back."""
    run = run if isinstance(run, Run) else read_run(run)
    saved = run.test(data.description)
    if saved is not None:
        return saved
    ckpt = run.path / CHECKPOINT
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt} is missing, so the run's weights cannot be evaluated: "
                                "train the run again (delete its folder) or restore the file.")
    state = load_checkpoint(ckpt)
    if int(state["epoch"]) != run.epochs_done:
        raise ValueError(f"{ckpt} is from epoch {state['epoch']} but {run.path / HISTORY} "
                         f"has {run.epochs_done} epochs: the folder was edited by hand; delete "
                         "it to train that run again.")
    load_state_dict_strict(model, state["model"], f"checkpoint {ckpt}")
    result = {**evaluate(model.to(data.device), data, "test"), "epoch": run.epochs_done}
    tests = {**run.results.get("test", {}), data.description: result}
    results = save_results(run.path, test=tests)
    run.results = results
    return result


def train_images_per_sec(history) -> float | None:
    """``fit``'s training speed of a run: the median images/s over its epochs, the first left
    out when there are others (it also pays for warm-up). None before the first epoch."""
    rates = list(history.get("images_per_sec", []))
    rates = rates[1:] if len(rates) > 1 else rates
    return statistics.median(rates) if rates else None


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def summarize(runs: list[Run], dataset: str | None = None) -> list[dict]:
    """One row per model, its seeds pooled: "model", "runs" (the Run objects), "seeds",
    "finished" (all runs trained to their end), "epochs" (done, per seed), "params", the mean and
    sample standard deviation over seeds (None with one seed) of the test accuracy
    ("test_acc", "test_acc_sd", over the finished runs already evaluated: "test_seeds" says
    which), of the last validation accuracy of the finished runs ("val_acc", "val_acc_sd"), of
    the training time in
    seconds ("train_seconds", the sum of fit's epoch times) and of fit's training images/s
    ("train_images_per_sec"), and "macs" when a run's results.json holds it. An unfinished run
    is listed (in "seeds" and "epochs") but its accuracy is not averaged in. Models in the order
    they first appear in ``runs``."""
    by_model: dict[str, list[Run]] = {}
    for run in runs:
        by_model.setdefault(run.model, []).append(run)
    rows = []
    for name, group in by_model.items():
        group = sorted(group, key=lambda r: r.seed)
        done = [r for r in group if r.finished]
        tested = [(r.seed, r.test(dataset)) for r in done]
        tested = [(s, t) for s, t in tested if t is not None]
        val = [r.history["val_acc"][-1] for r in done if r.history.get("val_acc")]
        speed = [s for s in map(train_images_per_sec, (r.history for r in group)) if s]
        row = {"model": name, "runs": group, "seeds": [r.seed for r in group],
               "finished": all(r.finished for r in group),
               "epochs": [r.epochs_done for r in group],
               "params": group[0].history.get("params"),
               "macs": next((r.results["macs"] for r in group if "macs" in r.results), None),
               "test_seeds": [s for s, _ in tested]}
        for key, values in (("test_acc", [t["acc"] for _, t in tested]), ("val_acc", val),
                            ("train_seconds", [sum(r.history["seconds"]) for r in group]),
                            ("train_images_per_sec", speed)):
            row[key], row[key + "_sd"] = _mean_sd(values)
        rows.append(row)
    return rows


def mean_history(runs: list[Run]) -> History:
    """The seeds' curves averaged epoch by epoch, over the epochs every run has reached, as one
    History (so ``common.plot_histories`` draws it); its other keys are the first run's, with
    "seeds" added."""
    if not runs:
        raise ValueError("mean_history needs at least one run.")
    n = min(r.epochs_done for r in runs)
    mean = History({k: v for k, v in runs[0].history.items() if k not in History.SERIES})
    mean["seeds"] = [r.seed for r in runs]
    for key in History.SERIES:
        series = [r.history.get(key, [])[:n] for r in runs]
        if all(len(s) == n for s in series):
            mean[key] = [statistics.fmean(v) for v in zip(*series)]
    return mean


def format_mean_sd(mean: float | None, sd: float | None, n: int, scale: float = 100.0,
                   digits: int = 2, missing: str = "not measured yet") -> str:
    """"93.10 ± 0.21 (3 seeds)", "93.10 (1 seed)", or ``missing``."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return missing
    text = f"{mean * scale:.{digits}f}"
    if sd is not None:
        text += f" ± {sd * scale:.{digits}f}"
    return f"{text} ({n} seed{'s' if n != 1 else ''})"


# --- measurements on the machine at hand ---------------------------------------------------------

@torch.no_grad()
def inference_speed(models: dict[str, nn.Module], batch_sizes=(1, 256), reps: int = 10,
                    rounds: int = 3, size: int = 32,
                    warmup: int = 2) -> dict[str, dict[int, float]]:
    """Seconds of one forward pass in eval mode, per model and batch size: random ``size`` x
    ``size`` inputs on each model's device, fp32, in the layout ``fit`` and ``evaluate`` use
    (channels_last on CPU and CUDA, unless the model's card says NCHW). Interleaved, as
    ``common.bench`` is, so that other work on a shared machine and the process's own warm-up
    disturb every model alike: a warm-up round (``warmup`` passes of every model at every batch
    size), then ``rounds`` rounds, each timing ``reps`` passes of every model in turn; a round's
    value is the median of its passes, the result the median over rounds. Latency per image at
    batch 1 is the value at 1; throughput at a large batch b is b / value. Returns {name: {batch
    size: seconds}}."""
    if reps < 1 or rounds < 1 or warmup < 0 or not batch_sizes or min(batch_sizes) < 1:
        raise ValueError("inference_speed needs reps >= 1, rounds >= 1, warmup >= 0 and batch "
                         "sizes >= 1.")
    if isinstance(models, nn.Module):
        raise TypeError("inference_speed takes a dict of models, {name: model}, so that they are "
                        "timed in interleaved rounds: inference_speed({'mine': model}).")
    modes = {name: m.training for name, m in models.items()}
    inputs = {}
    for name, m in models.items():
        m.eval()
        device = next(m.parameters()).device
        for b in batch_sizes:
            x = torch.randn(b, 3, size, size, device=device)
            inputs[name, b] = x.contiguous(memory_format=torch.channels_last) \
                if precision.channels_last_for(device, m) else x

    def timed(name, b, n) -> float:
        device, times = inputs[name, b].device, []
        for _ in range(n):
            precision.synchronize(device)
            t0 = time.perf_counter()
            models[name](inputs[name, b])
            precision.synchronize(device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    per_round = {key: [] for key in inputs}
    try:
        for r in range(rounds + 1):
            for name, b in inputs:
                if r == 0:
                    for _ in range(warmup):
                        models[name](inputs[name, b])
                else:
                    per_round[name, b].append(timed(name, b, reps))
    finally:
        for name, m in models.items():
            m.train(modes[name])
    return {name: {b: statistics.median(per_round[name, b]) for b in batch_sizes}
            for name in models}


def training_step_memory(model: nn.Module, data, batch_size: int, recipe=None) -> dict:
    """Peak memory of one training step (forward, backward, optimizer step, in ``fit``'s
    precision and memory layout) of ``model`` on a batch of ``batch_size`` augmented training
    images of ``data``, after one warm-up step (so the optimizer state exists). Returns
    {"bytes", "method", "precision"}: what was counted, in words, and the precision the step ran
    in (fit's: ``common.train.precision.precision_text``).

    CUDA: ``torch.cuda.max_memory_allocated`` over the step (the caching allocator's peak of live
    tensors; its reserved-but-free memory and the CUDA context are not included). CPU and other
    devices: the peak total of live tensor storages (parameters, buffers, gradients, optimizer
    state, activations, temporaries) counted by PyTorch's ``MemTracker``
    (``torch.distributed._tools.mem_tracker``, a private tool that follows every tensor the step
    creates); the allocator's own overhead and library scratch space (e.g. oneDNN's) are not
    included, so it is a lower bound of the process's extra resident memory. Where that tool is
    missing, {"bytes": None, "method": "not measured (...)"}. The model's weights are changed by
    the two steps (lr 1e-3): measure a fresh copy, not a trained model you want to keep."""
    recipe = recipe or Recipe(epochs=1, batch_size=batch_size, lr=1e-3)
    device = next(model.parameters()).device
    channels_last = precision.channels_last_for(device, model)
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    amp_dtype = precision.amp_dtype(device, True, model)
    in_words = precision.precision_text(device, True, amp_dtype, model)
    optimizer = make_optimizer(model, recipe)
    x, y = next(data.batches("train", batch_size, shuffle=True, augment=True,
                             generator=torch.Generator().manual_seed(0)))
    x, y = precision.to_device(x, y, device, channels_last)
    if len(y) < batch_size:
        x, y = x.repeat((-(-batch_size // len(y)),) + (1,) * (x.ndim - 1))[:batch_size], \
            y.repeat(-(-batch_size // len(y)))[:batch_size]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

    def step():
        # fit's precision: autocast, with the layers slower in CPU bf16 in fp32 (fp32_layers)
        with precision.fp32_layers(model, device, amp_dtype), \
                precision.autocast(device, amp_dtype):
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()                                             # warm-up: optimizer state, kernels
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return {"bytes": int(torch.cuda.max_memory_allocated(device)), "precision": in_words,
                "method": "torch.cuda.max_memory_allocated over one step (live tensors)"}
    try:      # a private tool of torch's, missing from some versions: imported where it is used
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError as err:
        return {"bytes": None, "precision": in_words,
                "method": f"not measured (no MemTracker in this torch: {err})"}
    tracker = MemTracker()
    tracker.track_external(model, optimizer)
    with tracker:
        step()
    peak = tracker.get_tracker_snapshot("peak").get(device, {}).get("Total")
    return {"bytes": int(peak) if peak is not None else None, "precision": in_words,
            "method": "peak of live tensors (weights, gradients, optimizer state, activations) "
                      "counted by torch's MemTracker; allocator overhead not included"}
