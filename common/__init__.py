"""The ImageNet 5's shared toolkit: data, training, inspection and the models saved from notebooks.

    import common
    data = common.load_data("cifar10")
    model = common.get_model("cifar_resnet20")
    history = common.fit(model, data, common.Recipe(epochs=182, milestones=(91, 136)))

Environment variables (all optional):
    IMAGENET5_SMOKE=1     smoke mode: tiny data and at most a few epochs (the tests set it)
    IMAGENET5_QUICK=1     quick mode: a data subset and a few epochs, so that training cells learn
                          visibly in minutes on a CPU (smoke mode wins when both are set)
    IMAGENET5_OFFLINE=1   never try to download; use data already on disk or the offline set
    IMAGENET5_DATA=DIR    where datasets live (default: ./data under the course root)
    IMAGENET5_RUNS=DIR    where checkpoints and histories go (default: ./runs under the course root)

On Colab, the set-up cell's KEEP_ON_DRIVE switch (``common.colab.keep_on_drive``) sets the last two
to a folder on Google Drive, so that trainings survive a disconnect.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

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


def data_dir() -> Path:
    """Where datasets are stored: $IMAGENET5_DATA, else ``data/`` in the course root."""
    return Path(os.environ.get("IMAGENET5_DATA") or ROOT / "data")


def runs_dir(*parts: str) -> Path:
    """A folder for one run's checkpoint and history: $IMAGENET5_RUNS/parts..., else runs/parts..."""
    return Path(os.environ.get("IMAGENET5_RUNS") or ROOT / "runs", *parts)


def run_dir_for(group: str, name: str, recipe, data, **settings) -> Path:
    """A checkpoint folder named after everything that defines a run: ``runs/<group>/<name>-<key>``,
    where key hashes the recipe's numbers, the data and any model ``settings``. Editing a
    hyperparameter and re-running a cell then starts a new run, while re-running it unchanged
    resumes (or reuses) the finished one: ``fit(..., run_dir=run_dir_for(...), resume=True)``."""
    import hashlib
    import json

    from .train import ADDED_FIELDS

    # Fields added to Recipe later are left out while they hold their "as before" values, so the
    # folders of runs made before they existed keep their names.
    what = {"recipe": {k: v for k, v in recipe.to_dict().items()
                       if k != "sources" and not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])},
            "data": data.description, "settings": settings}
    key = hashlib.sha1(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return runs_dir(group, f"{name}-{key}")


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


from .data import DataBundle, load_data  # noqa: E402
from .display import Table, block_diagram, block_diagrams, table  # noqa: E402
from .inspection import (  # noqa: E402
    check_against_reference, count_macs, count_params, output_shapes, paper_vs_ours,
    random_reference, summary)
from .models import get_model, list_models  # noqa: E402
from .train import History, Recipe, evaluate, fit, plot_histories  # noqa: E402

__all__ = [
    "SMOKE", "QUICK", "OFFLINE", "ROOT", "data_dir", "runs_dir", "run_dir_for", "pick_device", "seed_everything",
    "DataBundle", "load_data", "Recipe", "fit", "evaluate", "History", "plot_histories",
    "count_params", "count_macs", "summary", "paper_vs_ours", "check_against_reference",
    "random_reference", "output_shapes", "table", "Table", "block_diagram", "block_diagrams",
    "get_model", "list_models",
]
