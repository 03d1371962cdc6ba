"""A notebook's runs: one call that trains (or reloads, or resumes) a run in its own folder, the
folder's name, and why a result is not comparable with the paper's.

    model, history = common.train_run("02_resnet", "cifar_resnet20", recipe, data)
    why = common.caveats(data, history)       # [] for a full run on CIFAR-10

Every run goes into a folder named after what defines it (``run_dir_for``:
runs/<group>/<name>-<key>), where ``fit`` writes its checkpoint and history after every epoch:
re-running a cell unchanged resumes (or reloads) its run, editing a hyperparameter starts a new
one, and a notebook re-run after a disconnect continues where it stopped.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Mapping

from torch import nn

from common import runtime
from common.models.registry import get_model
from common.train import loop
from common.train.checkpoint import History
from common.train.loop import check_quick_images, fit, modes
from common.train.recipe import CHECKPOINT_DEFAULTS, Recipe


def run_dir_for(group: str, name: str, recipe: Recipe, data, **settings) -> Path:
    """A checkpoint folder named after everything that defines a run:
    ``runs/<group>/<name>-<key>``, where key hashes the recipe's numbers, the data and any model
    ``settings``. Editing a hyperparameter and re-running a cell then starts a new run, while
    re-running it unchanged resumes (or reuses) the finished one:
    ``fit(..., run_dir=run_dir_for(...), resume=True)``."""
    # Fields added to Recipe later are left out while they hold their "as before" values, so the
    # folders of runs made before they existed keep their names.
    what = {"recipe": {k: v for k, v in recipe.to_dict().items()
                       if k != "sources" and not (k in CHECKPOINT_DEFAULTS
                                                  and v == CHECKPOINT_DEFAULTS[k])},
            "data": data.description, "settings": settings}
    key = hashlib.sha1(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return runtime.runs_dir(group, f"{name}-{key}")


def train_run(group: str, name: str, recipe: Recipe, data, *, seed: int = 0,
              build: Callable[[], nn.Module] | None = None, key: Mapping | None = None,
              quick_images: int | None = None, fit_kwargs: Mapping | None = None,
              **model_kwargs) -> tuple[nn.Module, History]:
    """Train (or reload, or resume) one run of notebook ``group``; returns (model, history).

    The four steps every training cell of the course takes: seed everything with ``seed``;
    build the registered model ``name`` for the data's classes
    (``get_model(name, num_classes=data.num_classes, **model_kwargs)``); name its folder
    ``run_dir_for(group, name, recipe, data, **model_kwargs, **key)``; ``fit`` it there with
    ``recipe`` and ``resume=True``, so that a finished run reloads and a stopped one continues.

    build: builds the model instead of ``get_model``, for one the registry does not name (it is
        given ``name`` as its ``name``; model_kwargs are then not taken).
    key (dict): more settings that tell runs apart in the folder name without being model
        keywords, e.g. a data subset. A ``seed`` other than 0 joins the key by itself, so that
        runs of seed 0 keep the folder names they always had.
    quick_images (int): this run's budget in quick mode, ``fit``'s (default: ``QUICK_IMAGES``,
        40,000 images). In quick mode a budget other than the default joins the folder's key,
        so that changing it starts a new run; smoke and full mode ignore it.
    fit_kwargs (dict): more keywords for ``fit`` (``stop_after_epochs``, ``live_plot``...)."""
    settings = {**model_kwargs, **(key or {}), **quick_key(quick_images, fit_kwargs)}
    if seed and settings.setdefault("seed", seed) != seed:
        raise ValueError(f"key names seed {settings['seed']!r} but seed={seed!r}: give one.")
    if build is not None and model_kwargs:
        raise TypeError(f"train_run takes build or model keywords, not both: put "
                        f"{sorted(model_kwargs)} into build (and into key, to name the folder).")
    runtime.seed_everything(seed)
    if build is None:
        model = get_model(name, num_classes=data.num_classes, **model_kwargs)
    else:
        model = build()
        model.name = name                 # how fit labels the run, as get_model does
    run_dir = run_dir_for(group, name, recipe, data, **settings)
    history = fit(model, data, recipe, run_dir=run_dir, resume=True, seed=seed,
                  quick_images=quick_images, **(fit_kwargs or {}))
    return model, history


def quick_key(quick_images: int | None, fit_kwargs: Mapping | None = None) -> dict:
    """What a run's quick budget adds to its folder's key (``run_dir_for``): {"quick_images": N}
    when the run is in quick mode (``common.QUICK``, or ``fit_kwargs``'s smoke and quick) and N
    is not the default; else {} (so that folders named before budgets existed keep their names,
    and a full run's folder never depends on it). A cell that names a run's folder itself, as
    ``train_run`` does, adds this to its key."""
    quick_images = check_quick_images(quick_images)
    _, quick = modes((fit_kwargs or {}).get("smoke"), (fit_kwargs or {}).get("quick"))
    return {"quick_images": quick_images} if quick and quick_images != loop.QUICK_IMAGES else {}


def caveats(data, history: Mapping | None = None) -> list[str]:
    """Why a number measured on ``data`` is not comparable with a paper's CIFAR-10 number, one
    reason per item; empty when it is (a full run on CIFAR-10). ``history`` (the run's, from
    ``fit``) says how many of the recipe's epochs ran; without it the data's mode is named.
    A notebook adds its own reasons (another protocol, a smaller model) to the list."""
    why = []
    mode = history.get("mode") if history else (
        "smoke" if data.smoke else "quick" if data.quick else "full")
    if mode != "full" and history:
        why.append(f"{mode} mode ({history['epochs_run']} of the recipe's "
                   f"{history['recipe']['epochs']} epochs, on {history['train_size']:,} "
                   "training images)")
    elif mode == "smoke":
        why.append("smoke mode (a few hundred images, a couple of epochs)")
    elif mode == "quick":
        why.append("quick mode (a subset, a few epochs)")
    if data.offline:
        why.append("the offline digits stand-in, not CIFAR-10")
    elif data.name != "cifar10":
        why.append(f"{data.description}, not CIFAR-10")
    return why
