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
    IMAGENET5_RUNS=DIR    where checkpoints and histories go (default: ./runs under the course
                          root)

On Colab, the set-up cell's KEEP_ON_DRIVE switch (``common.colab.keep_on_drive``) sets the last two
to a folder on Google Drive, so that trainings survive a disconnect.

Where each name is defined (this file only re-exports them): the modes (and ``by_mode``, a value
per mode that says what it changed), folders, device and seeds in ``runtime``; data in ``data``;
``Recipe``, ``fit`` and ``evaluate`` in the ``train`` package; ``train_run``, ``caveats`` and
``run_dir_for`` in ``runs``; the curves in ``plots``; counting and summaries in ``inspection``; the
check against a reference in ``reference``; the official weights in ``weights``; tables and
diagrams in ``display``; the model registry and its model cards in ``models``. The layout, room by
room: CONTRIBUTING.md.
"""
from __future__ import annotations

import sys as _sys
import types as _types

from . import runtime
from .data import DataBundle, load_data
from .display import Table, block_diagram, block_diagrams, table
from .inspection import count_macs, count_params, output_shapes, paper_vs_ours, summary
from .models import get_model, list_models, model_card
from .plots import plot_histories
from .reference import check_against_reference, random_reference
from .runs import caveats, run_dir_for, train_run
from .runtime import (
    ROOT,
    by_mode,
    data_dir,
    mode_changes,
    mode_report,
    pick_device,
    runs_dir,
    seed_everything,
)
from .train import History, Recipe, evaluate, fit
from .weights import classify_photo, load_official_weights, sample_photo

__all__ = [
    "SMOKE", "QUICK", "OFFLINE", "ROOT", "data_dir", "runs_dir", "run_dir_for", "pick_device",
    "seed_everything", "DataBundle", "load_data", "Recipe", "fit", "evaluate", "History",
    "plot_histories", "train_run", "caveats", "count_params", "count_macs", "summary",
    "paper_vs_ours", "check_against_reference", "random_reference", "output_shapes",
    "classify_photo", "sample_photo", "load_official_weights", "table", "Table",
    "block_diagram", "block_diagrams", "get_model", "list_models", "model_card", "by_mode",
    "mode_changes", "mode_report",
]


class _Common(_types.ModuleType):
    """The package's mode flags are ``runtime``'s, not copies: reading ``common.SMOKE`` reads
    ``common.runtime.SMOKE``, and setting it (in a notebook, or a test's monkeypatch) sets it
    there, where every function that depends on the mode reads it."""
    SMOKE = property(lambda self: runtime.SMOKE, lambda self, on: setattr(runtime, "SMOKE", on))
    QUICK = property(lambda self: runtime.QUICK, lambda self, on: setattr(runtime, "QUICK", on))
    OFFLINE = property(lambda self: runtime.OFFLINE,
                       lambda self, on: setattr(runtime, "OFFLINE", on))

    def __dir__(self):
        return sorted({*super().__dir__(), *runtime.FLAGS})


_sys.modules[__name__].__class__ = _Common
