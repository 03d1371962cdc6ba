"""Where things live and how a run behaves: the course's folders (and files written there
atomically), the device, seeds and the three modes. The lowest room of ``common``: it imports
nothing of the course, and every other module reads these from here; ``common`` re-exports them.

    IMAGENET5_SMOKE=1     smoke mode: tiny data and at most a few epochs (the tests set it)
    IMAGENET5_QUICK=1     quick mode: a data subset and a few epochs (smoke mode wins)
    IMAGENET5_OFFLINE=1   never try to download; use data already on disk or the offline set
    IMAGENET5_DATA=DIR    where datasets live (default: ./data under the course root)
    IMAGENET5_RUNS=DIR    where checkpoints and histories go (default: ./runs under the course
                          root)

The mode flags are read when a function runs, as ``runtime.SMOKE`` (never copied with
``from common.runtime import SMOKE``, which would freeze the value at import): so setting
``common.SMOKE`` (which ``common`` passes on to this module) or ``common.runtime.SMOKE``, in a
notebook or with a test's ``monkeypatch``, reaches every function that reads it.
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

#: The course's root folder (the one holding ``common/``, ``notebooks/``, ``README.md``).
ROOT = Path(__file__).resolve().parent.parent


def _flag(name: str, env=os.environ) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _modes(env=os.environ) -> tuple[bool, bool]:
    """(smoke, quick) from the environment: smoke mode wins when both are set."""
    smoke = _flag("IMAGENET5_SMOKE", env)
    return smoke, _flag("IMAGENET5_QUICK", env) and not smoke


#: Smoke mode: `common` shrinks data and epochs so that every notebook runs in seconds on a CPU.
#: Quick mode, between smoke and full: `common` trains on a subset (``data.QUICK_SIZES``) for
#: about ``train.QUICK_IMAGES`` images in all, the schedule compressed, so that every training
#: cell learns clearly in a few minutes on a CPU.
SMOKE, QUICK = _modes()
#: Offline mode: no download is ever attempted.
OFFLINE: bool = _flag("IMAGENET5_OFFLINE")
#: The names above that ``common`` passes on to this module when they are set on it.
FLAGS = ("SMOKE", "QUICK", "OFFLINE")


def mode() -> str:
    """The current mode in a word: "smoke", "quick" or "full"."""
    return "smoke" if SMOKE else "quick" if QUICK else "full"


#: What this process's smoke or quick mode changed, in the order it happened: {what: line}.
#: ``by_mode`` and ``fit`` (a run with its own quick budget) add to it; ``mode_changes`` reads it.
_CHANGES: dict[str, str] = {}


def _show(value) -> str:
    """A value in a ``by_mode`` line: sequences as "a, b, c", dicts by their keys."""
    if isinstance(value, dict):
        value = list(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(_show(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def note_mode_change(what: str, line: str, show: bool = True) -> None:
    """Record (and, with ``show``, print) one thing this mode does differently from full mode,
    under ``what`` (a later note with the same ``what``, from a re-run cell, replaces it)."""
    _CHANGES.pop(what, None)
    _CHANGES[what] = line
    if show:
        print(line)


def by_mode(full, *, quick=None, smoke=None, what: str, why: str):
    """The value for the current mode: ``full`` in full mode, ``quick`` in quick mode (None:
    ``full``), ``smoke`` in smoke mode (None: quick mode's). Where it differs from ``full`` it
    prints one line, recorded for ``mode_changes`` (the notebook's last cell lists them)::

        SEEDS = common.by_mode((0, 1, 2), quick=(0,), what="seeds",
                               why="each seed is a whole training run")
        [quick mode] seeds: 0 (full mode: 0, 1, 2): each seed is a whole training run

    For the arms, seeds, sizes and heavy extra work a mode leaves out; a run's training length
    in quick mode is ``fit``'s (``quick_images``). ``what`` names the value, ``why`` says why
    this mode changes it (both are printed)."""
    if not (isinstance(what, str) and what.strip() and isinstance(why, str) and why.strip()):
        raise ValueError("by_mode needs what= (the value's name, e.g. 'seeds') and why= (why "
                         "this mode changes it), both as words: they are printed.")
    now = mode()
    value = full
    if now != "full":
        value = quick if quick is not None else full
        if now == "smoke" and smoke is not None:
            value = smoke
    if now != "full" and not _same(value, full):
        note_mode_change(what, f"[{now} mode] {what}: {_show(value)} (full mode: "
                               f"{_show(full)}): {why}")
    return value


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):   # tensors, arrays: compare them by identity
        return a is b


def mode_changes() -> list[str]:
    """The lines ``by_mode`` and ``fit`` printed in this process for what smoke or quick mode
    changed (fewer seeds, arms, smaller sizes, shorter runs), in order; [] in full mode."""
    return list(_CHANGES.values())


def mode_report() -> str:
    """What this mode left out, for a notebook's last cell: every ``mode_changes`` line, or a
    sentence saying there was nothing."""
    now = mode()
    if now == "full":
        return "full mode: nothing was left out."
    if not _CHANGES:
        return (f"{now} mode left out nothing beyond its usual shrinking (a data subset, fewer "
                "epochs with the schedule compressed).")
    lines = [f"- {line.split('] ', 1)[-1]}" for line in _CHANGES.values()]
    return (f"What {now} mode changed in this run (full mode runs it all), beyond its usual "
            "shrinking:\n" + "\n".join(lines))


def data_dir() -> Path:
    """Where datasets are stored: $IMAGENET5_DATA, else ``data/`` in the course root."""
    return Path(os.environ.get("IMAGENET5_DATA") or ROOT / "data")


def runs_dir(*parts: str) -> Path:
    """A folder for one run's checkpoint and history: $IMAGENET5_RUNS/parts..., else
    runs/parts..."""
    return Path(os.environ.get("IMAGENET5_RUNS") or ROOT / "runs", *parts)


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is never half-written: write a temporary file
    in the same folder, flush it to disk, then rename it over ``path`` (atomic on POSIX and
    Windows). If anything fails, ``path`` keeps its old content and the temporary file goes.
    Checkpoints, histories, results and the command's settings are all written this way."""
    path = Path(path)
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


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else the best available one: CUDA, then Apple MPS, then CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices). ``deterministic=True`` also asks torch for
    deterministic kernels (slower on GPU; same results run after run on the same machine)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
