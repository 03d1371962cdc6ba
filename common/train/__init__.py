"""Training: one ``fit`` for every paper, driven by a ``Recipe`` (the paper's numbers).

    recipe = Recipe(epochs=182, lr=0.1, momentum=0.9, weight_decay=1e-4, milestones=(91, 136),
                    sources={"lr": "He et al. 2015, section 4.2"})
    history = fit(model, data, recipe, run_dir=runs_dir("resnet20"), resume=True)

One room per job; this file only re-exports them, so ``common.train.X`` works for each name:

    recipe.py      ``Recipe``: the hyperparameters, their sources, the schedule
    optim.py       the optimizer: parameter groups, ``RMSpropTF``, learning rates per part
    precision.py   autocast dtype, memory layout, batches to the device (CPU bf16, CUDA bf16/fp16)
    checkpoint.py  ``History``, the checkpoint written atomically, exact resume
    loop.py        ``fit`` and ``evaluate``
    __main__.py    ``python -m common.train``: the same ``fit`` as a command (``common.cli``)

The curves (``plot_histories``) live in ``common.plots``.
"""
from common.plots import plot_histories
from common.train.checkpoint import (
                                     CHECKPOINT,
                                     FORMAT,
                                     HISTORY,
                                     RUN_KEY_DEFAULTS,
                                     CheckpointError,
                                     History,
                                     load_checkpoint,
                                     restore_run,
                                     run_state,
                                     save_checkpoint,
)
from common.train.loop import LIVE_PLOT_SECONDS, QUICK_IMAGES, SMOKE_EPOCHS, evaluate, fit
from common.train.optim import (
                                     RMSpropTF,
                                     check_lr_scales,
                                     lr_scale_of,
                                     make_optimizer,
                                     weight_decay_groups,
)
from common.train.precision import (
                                     NATIVE_BF16_FEATURES,
                                     amp_dtype,
                                     autocast,
                                     channels_last_for,
                                     cpu_has_native_bf16,
                                     cuda_has_native_bf16,
                                     fp32_layer_count,
                                     fp32_layers,
                                     precision_label,
                                     precision_text,
                                     slow_in_cpu_bf16,
                                     synchronize,
                                     to_device,
)
from common.train.recipe import (
                                     CHECKPOINT_DEFAULTS,
                                     NO_WEIGHT_DECAY,
                                     OPTIMIZERS,
                                     SCHEDULES,
                                     WARMUPS,
                                     Recipe,
)

#: The names these tables had before they moved (checkpoints and tests still speak of them).
ADDED_FIELDS = CHECKPOINT_DEFAULTS
ADDED_RUN_KEYS = RUN_KEY_DEFAULTS

__all__ = [
    "Recipe", "fit", "evaluate", "History", "plot_histories", "make_optimizer",
    "weight_decay_groups", "RMSpropTF", "check_lr_scales", "lr_scale_of", "CheckpointError",
    "save_checkpoint", "load_checkpoint", "run_state", "restore_run", "CHECKPOINT", "HISTORY",
    "FORMAT", "SMOKE_EPOCHS", "QUICK_IMAGES", "SCHEDULES", "WARMUPS", "OPTIMIZERS",
    "NO_WEIGHT_DECAY", "CHECKPOINT_DEFAULTS", "RUN_KEY_DEFAULTS", "ADDED_FIELDS",
    "ADDED_RUN_KEYS", "NATIVE_BF16_FEATURES", "cpu_has_native_bf16", "cuda_has_native_bf16",
    "slow_in_cpu_bf16", "amp_dtype", "precision_text", "channels_last_for", "autocast",
    "to_device", "synchronize", "fp32_layers", "fp32_layer_count", "precision_label",
    "LIVE_PLOT_SECONDS",
]
