"""The shared trainer: one ``fit`` for every paper, driven by a ``Recipe`` (the paper's numbers).

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

import dataclasses
import io
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from common import distributed, runtime
from common.display import Table
from common.inspection import load_state_dict_strict

# ``python -m common.train`` runs this file as __main__ after ``import common`` has imported it
# as common.train, and Python warns about the second copy. Harmless here: __main__ only hands
# over to common.cli.main, which uses the package's own common.train.
warnings.filterwarnings("ignore", message=r"'common\.train' found in sys\.modules",
                        category=RuntimeWarning)

SMOKE_EPOCHS = 2
#: Quick mode trains on about this many images in all (epochs x training images), at least one
#: epoch and at most the recipe's: ~8 epochs of the 5k quick CIFAR-10 subset, ~30 of digits.
QUICK_IMAGES = 40_000
CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
FORMAT = "imagenet5-checkpoint-v1"
SCHEDULES = ("multistep", "cosine", "constant", "exponential")
WARMUPS = ("linear", "constant")
OPTIMIZERS = ("sgd", "rmsprop", "rmsprop_tf", "adamw")
#: Recipe fields added after checkpoints already existed, with the value that means "as before".
#: A checkpoint whose recipe lacks them resumes as if it had these values, and ``run_dir_for``
#: leaves them out of its key while they hold these values (so old run folders keep their names).
ADDED_FIELDS = {"optimizer": "sgd", "rmsprop_decay": 0.9, "rmsprop_eps": 1e-3,
                "decay_epochs": 1.0, "staircase": True, "no_weight_decay": (),
                "lr_scales": (),
                "adam_betas": [0.9, 0.999], "adam_eps": 1e-8}   # adam_betas as to_dict writes it
#: What ``Recipe.no_weight_decay`` may exempt from weight decay.
NO_WEIGHT_DECAY = ("norm", "bias", "depthwise", "layer_scale")
#: The same for the run description a checkpoint keeps (what must match to resume).
ADDED_RUN_KEYS = {"quick": False, "world_size": 1, "sync_bn": False}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, corrupt, or from another run."""


@dataclass(frozen=True)
class Recipe:
    """A paper's training hyperparameters. ``sources`` maps a field to where the paper states it
    (or why we chose it); ``table()`` shows them side by side.

    Epoch-based: ``milestones``, ``warmup_epochs`` and ``decay_epochs`` are in epochs and may be
    fractional, so a paper's iteration counts convert exactly (``Recipe.iterations_to_epochs``).
    The learning rate is set every step: lr * warm-up factor * schedule factor.

    optimizer: "sgd" (momentum, ``nesterov`` if asked; the default), "rmsprop"
    (``torch.optim.RMSprop``) or "rmsprop_tf" (TensorFlow 1's RMSProp, the optimizer of the
    MobileNetV2 and EfficientNet papers' code: see ``RMSpropTF`` for how it differs) or "adamw"
    (``torch.optim.AdamW``: Adam with *decoupled* weight decay, Loshchilov & Hutter 2019,
    arXiv:1711.05101; ConvNeXt's optimizer, with ``adam_betas`` (0.9, 0.999) and ``adam_eps``
    1e-8, the defaults of its official code, facebookresearch/ConvNeXt main.py). Both
    RMSProps use ``momentum``, ``rmsprop_decay`` (TF's ``decay``, torch's ``alpha``) and
    ``rmsprop_eps``; the defaults 0.9 and 1e-3 are those of EfficientNet's official code
    (tensorflow/tpu, models/official/efficientnet/utils.py, ``build_optimizer``). Weight decay
    is the L2 gradient term ``weight_decay * w`` for SGD and both RMSProps; AdamW instead shrinks
    the weights directly, ``w -= lr * weight_decay * w``, apart from the adaptive step (so
    ConvNeXt's 0.05 is not comparable with an L2 coefficient). It applies to every parameter
    except those ``no_weight_decay`` exempts: "norm" (normalisation layers' affine parameters),
    "bias" (every other bias), "depthwise" (weights of depthwise convolutions, groups ==
    in_channels > 1), "layer_scale" (parameters named ``layer_scale``, torchvision's, or
    ``gamma``, the official ConvNeXt code's). ConvNeXt's official code decays no parameter with
    one dimension and no bias (optim_factory.py, ``get_parameter_groups``: ``len(param.shape) ==
    1 or name.endswith(".bias")``): its norms, biases and layer scale (1-D there, (C, 1, 1) in
    torchvision's layout): ``("norm", "bias", "layer_scale")``.
    EfficientNet's official code decays every variable but batch norm's (tensorflow/tpu,
    models/official/efficientnet/main.py: "Add weight decay to the loss for
    non-batch-normalization variables"): ``("norm",)``. MobileNetV2's (tensorflow/models,
    research/slim/nets/mobilenet/mobilenet.py, ``training_scope``) regularises conv2d weights
    only, with ``weights_regularizer=None`` for the separable (depthwise) convs and none on
    biases or batch norm: ``("norm", "bias", "depthwise")``.

    lr_scales: discriminative learning rates (transfer learning, notebook 09): pairs
    ``(part, scale)`` (or a dict), where part is a module name of the model (``"layer1"``,
    ``"features.3"``: ``common.transfer.parts``) and its parameters learn at lr x scale; the
    longest part a parameter lies in wins; parameters under no part keep the recipe's lr.
    ``common.transfer.lr_scales_by_depth`` makes them. Frozen parameters (``requires_grad=False``,
    ``common.transfer.freeze``) never enter the optimizer, whatever the recipe.

    schedule: "multistep" (times ``gamma`` at each of ``milestones``), "cosine", "constant", or
    "exponential": times ``gamma`` every ``decay_epochs`` epochs, in steps (``staircase=True``,
    as ``tf.train.exponential_decay(..., staircase=True)`` in the TF code of both papers) or
    smoothly (``gamma ** (epoch / decay_epochs)``). MobileNetV2 (section 6.1): lr 0.045,
    gamma 0.98, decay_epochs 1; EfficientNet (section 5.2): lr 0.256, gamma 0.97,
    decay_epochs 2.4. Warm-up multiplies the schedule; TF's EfficientNet code instead replaces
    it during warm-up (lr * step / warmup_steps), which differs from ours by the decay reached by
    then (0.97 ** 2 after 5 epochs)."""
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
    optimizer: str = ADDED_FIELDS["optimizer"]
    rmsprop_decay: float = ADDED_FIELDS["rmsprop_decay"]
    rmsprop_eps: float = ADDED_FIELDS["rmsprop_eps"]
    decay_epochs: float = ADDED_FIELDS["decay_epochs"]
    staircase: bool = ADDED_FIELDS["staircase"]
    no_weight_decay: tuple = ADDED_FIELDS["no_weight_decay"]
    lr_scales: tuple = ADDED_FIELDS["lr_scales"]
    adam_betas: tuple = tuple(ADDED_FIELDS["adam_betas"])
    adam_eps: float = ADDED_FIELDS["adam_eps"]
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if isinstance(self.no_weight_decay, str):
            raise ValueError(f"no_weight_decay is a tuple of names, e.g. ({self.no_weight_decay!r},)"
                             f", not a string; choose from {NO_WEIGHT_DECAY}.")
        object.__setattr__(self, "no_weight_decay", tuple(self.no_weight_decay))
        object.__setattr__(self, "adam_betas", tuple(self.adam_betas))
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas) \
                or self.adam_eps <= 0:
            raise ValueError("adam_betas must be two numbers in [0, 1), e.g. (0.9, 0.999), and "
                             f"adam_eps positive; got {self.adam_betas} and {self.adam_eps}.")
        unknown_wd = [k for k in self.no_weight_decay if k not in NO_WEIGHT_DECAY]
        if unknown_wd:
            raise ValueError(f"no_weight_decay names {unknown_wd}: choose from {NO_WEIGHT_DECAY}.")
        scales = self.lr_scales.items() if isinstance(self.lr_scales, Mapping) else self.lr_scales
        try:
            scales = tuple(sorted((str(k), float(v)) for k, v in scales))
        except (TypeError, ValueError):
            raise ValueError(f"lr_scales is pairs (part, scale), e.g. (('layer1', 0.1),), or a "
                             f"dict; got {self.lr_scales!r}.") from None
        if any(not k or not v > 0 for k, v in scales) or len({k for k, _ in scales}) < len(scales):
            raise ValueError(f"lr_scales needs distinct part names and positive scales (to "
                             f"freeze a part, use common.transfer.freeze), got {scales}.")
        object.__setattr__(self, "lr_scales", scales)
        if not (isinstance(self.epochs, int) and self.epochs > 0):
            raise ValueError(f"epochs must be a positive whole number, got {self.epochs!r}.")
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError("batch_size must be at least 1 and lr positive.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown schedule {self.schedule!r}: choose one of {SCHEDULES}.")
        if self.warmup not in WARMUPS:
            raise ValueError(f"Unknown warmup {self.warmup!r}: choose one of {WARMUPS}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}: choose one of {OPTIMIZERS}.")
        if self.nesterov and self.optimizer != "sgd":
            raise ValueError(f"nesterov=True applies to optimizer='sgd' only, not "
                             f"{self.optimizer!r}: drop nesterov, or use SGD.")
        if self.momentum < 0 or self.weight_decay < 0 or self.gamma <= 0:
            raise ValueError("momentum and weight_decay must be at least 0, gamma positive "
                             f"(got {self.momentum}, {self.weight_decay}, {self.gamma}).")
        if not 0 <= self.rmsprop_decay < 1 or self.rmsprop_eps <= 0:
            raise ValueError("rmsprop_decay must be in [0, 1) (TF's 'decay', torch's 'alpha', "
                             "e.g. 0.9) and rmsprop_eps positive, got "
                             f"{self.rmsprop_decay} and {self.rmsprop_eps}.")
        if self.decay_epochs <= 0:
            raise ValueError(f"decay_epochs must be positive (e.g. 1 for a decay every epoch, "
                             f"2.4 for EfficientNet's), got {self.decay_epochs}.")
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
        elif self.schedule == "exponential":
            k = epoch / self.decay_epochs
            # staircase: whole decay periods only (the tiny slack absorbs float error in
            # step / steps_per_epoch at an exact boundary)
            f = self.gamma ** (math.floor(k + 1e-9) if self.staircase else k)
        else:
            f = 1.0
        if epoch < self.warmup_epochs:
            w = self.warmup_factor
            f *= w if self.warmup == "constant" else w + (1 - w) * epoch / self.warmup_epochs
        return f

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["adam_betas"] = list(self.adam_betas)
        d["sources"] = dict(self.sources)
        return d

    def _relevant(self, name: str) -> bool:
        """Whether a field of the newer optimizer and schedule options matters to this recipe."""
        if name in ("rmsprop_decay", "rmsprop_eps"):
            return self.optimizer in ("rmsprop", "rmsprop_tf")
        if name in ("adam_betas", "adam_eps"):
            return self.optimizer == "adamw"
        if name in ("momentum", "nesterov"):
            return self.optimizer != "adamw"
        if name in ("decay_epochs", "staircase"):
            return self.schedule == "exponential"
        if name in ("no_weight_decay", "lr_scales"):
            return bool(getattr(self, name))
        return True

    def table(self) -> Table:
        """Each hyperparameter, its value and where it comes from (options that do not apply to
        this recipe's optimizer or schedule are left out)."""
        rows = [(f.name, getattr(self, f.name), self.sources.get(f.name, ""))
                for f in dataclasses.fields(self)
                if f.name != "sources" and self._relevant(f.name)]
        return Table(rows, header=("hyperparameter", "value", "source"))


class RMSpropTF(torch.optim.Optimizer):
    """RMSProp as TensorFlow 1's ``tf.train.RMSPropOptimizer`` computes it: the optimizer the
    MobileNetV2 and EfficientNet papers trained with (their code is TensorFlow). Per parameter,
    with gradient ``g`` (plus ``weight_decay * w``, the gradient of TF's L2 loss term)::

        ms  = decay * ms + (1 - decay) * g**2          # ms starts at ONE
        mom = momentum * mom + lr * g / sqrt(ms + eps)
        w   = w - mom

    ``torch.optim.RMSprop`` (``Recipe(optimizer="rmsprop")``) differs in three ways:

    1. epsilon: torch divides by ``sqrt(ms) + eps``, TF by ``sqrt(ms + eps)``. The same number
       means different things: TF's eps=1e-3 caps the step where gradients are tiny at
       lr * g / 0.032, torch's at lr * g / 0.001.
    2. the mean square starts at 1 in TF, 0 in torch. Torch's first step is therefore
       lr * g / sqrt((1 - decay) g**2) = lr * 3.2 * sign(g) for decay 0.9, whatever the size of
       g; TF's first steps are about lr * g while ms warms up.
    3. momentum: TF's buffer accumulates lr-scaled updates, torch's accumulates unscaled ones
       and multiplies by the current lr. When the lr changes (every epoch with an exponential
       schedule) TF's buffer keeps the past steps at their old lr; torch rescales all of them.

    Equal to ``timm.optim.RMSpropTF`` with its defaults (``lr_in_momentum=True``), which is tested.
    Not implemented: TF's ``centered`` variant. EfficientNet's code leaves batch-norm
    parameters out of the weight decay; this optimizer decays every parameter it is given."""

    def __init__(self, params, lr: float, decay: float = 0.9, momentum: float = 0.9,
                 eps: float = 1e-3, weight_decay: float = 0.0):
        if not (lr > 0 and 0 <= decay < 1 and momentum >= 0 and eps > 0 and weight_decay >= 0):
            raise ValueError(f"RMSpropTF needs lr > 0, 0 <= decay < 1, momentum >= 0, eps > 0, "
                             f"weight_decay >= 0; got {lr}, {decay}, {momentum}, {eps}, "
                             f"{weight_decay}.")
        super().__init__(params, dict(lr=lr, decay=decay, momentum=momentum, eps=eps,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay, momentum = group["lr"], group["decay"], group["momentum"]
            eps, weight_decay = group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if weight_decay:
                    g = g.add(p, alpha=weight_decay)
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                    state["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
                ms, buf = state["square_avg"], state["momentum_buffer"]
                ms.mul_(decay).addcmul_(g, g, value=1 - decay)
                update = g / ms.add(eps).sqrt_()
                if momentum > 0:
                    buf.mul_(momentum).add_(update, alpha=lr)
                    p.sub_(buf)
                else:
                    p.sub_(update, alpha=lr)
        return loss


def weight_decay_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """``model``'s trainable parameters as optimizer parameter groups: those the recipe decays,
    and those its ``no_weight_decay`` exempts (``weight_decay=0``), each split by
    ``lr_scales`` (a group with ``"lr_scale"``, which ``make_optimizer``'s step hooks multiply
    the lr by); a group is left out when empty. Frozen parameters (``requires_grad=False``)
    are left out: in the optimizer, weight decay and momentum could still move them. One group
    of every parameter, as ``model.parameters()``, when nothing is exempt, scaled or frozen."""
    every = list(model.parameters())
    if not recipe.no_weight_decay and not recipe.lr_scales and all(p.requires_grad
                                                                   for p in every):
        return [{"params": every}]
    from .inspection import is_norm_layer
    from .transfer import check_lr_scales, lr_scale_of

    check_lr_scales(model, recipe.lr_scales)
    groups, seen = {}, set()
    for module_name, module in model.named_modules():
        depthwise = (isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1
                     and module.groups == module.in_channels)
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            kind = ("norm" if is_norm_layer(module) else "bias" if name == "bias"
                    else "depthwise" if depthwise and name == "weight"
                    else "layer_scale" if name in ("layer_scale", "gamma") else None)
            exempt = kind in recipe.no_weight_decay
            scale = lr_scale_of(f"{module_name}.{name}" if module_name else name,
                                recipe.lr_scales)
            group = groups.setdefault((exempt, scale), {"params": []})
            group["params"].append(p)
            if exempt:
                group["weight_decay"] = 0.0
            if recipe.lr_scales:
                group["lr_scale"] = scale
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameter (all are frozen): "
                         "common.transfer.freeze(model, trainable=...) names what trains.")
    # decayed before exempt, then by scale: the same order whatever the modules' order
    return [groups[k] for k in sorted(groups, key=lambda k: (k[0], -k[1]))]


def _scale_lrs(optimizer, args, kwargs) -> None:
    """Step pre-hook: each group's lr times its ``lr_scale`` (``Recipe.lr_scales``) for the step."""
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
        group["lr"] = group["lr"] * group.get("lr_scale", 1.0)


def _unscale_lrs(optimizer, args, kwargs) -> None:
    """Step post-hook: the lr as it was set (``fit`` sets it every step), the scale taken off."""
    for group in optimizer.param_groups:
        group["lr"] = group.pop("base_lr", group["lr"])


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``params``: a model (its trainable parameters, with the
    recipe's ``no_weight_decay`` exemptions and ``lr_scales``: ``weight_decay_groups``),
    parameters, or parameter groups. The learning rate is set again every step (``fit``); a
    group with an ``"lr_scale"`` steps at that lr times its scale (a step pre-hook multiplies,
    a post-hook restores, so ``group["lr"]`` reads as it was set)."""
    optimizer = _make_optimizer(params, recipe)
    if any("lr_scale" in g for g in optimizer.param_groups):
        optimizer.register_step_pre_hook(_scale_lrs)
        optimizer.register_step_post_hook(_unscale_lrs)
    return optimizer


def _make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    if isinstance(params, nn.Module):
        params = weight_decay_groups(params, recipe)
    elif recipe.no_weight_decay or recipe.lr_scales:
        raise ValueError("recipe.no_weight_decay and recipe.lr_scales need the model (to find "
                         "norm layers, biases, depthwise convolutions and named parts): pass "
                         "make_optimizer(model, recipe).")
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, betas=recipe.adam_betas,
                                 eps=recipe.adam_eps, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=recipe.lr, alpha=recipe.rmsprop_decay,
                                   eps=recipe.rmsprop_eps, momentum=recipe.momentum,
                                   weight_decay=recipe.weight_decay)
    return RMSpropTF(params, lr=recipe.lr, decay=recipe.rmsprop_decay, momentum=recipe.momentum,
                     eps=recipe.rmsprop_eps, weight_decay=recipe.weight_decay)


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


#: CPU features (``torch.cpu.get_capabilities()`` names) that compute bf16 natively: AVX512-BF16
#: (AMD Zen 4 and later, Intel Cooper Lake and later), AMX-BF16 (Intel Sapphire Rapids and later)
#: and the Arm BF16 extension (e.g. AWS Graviton3).
NATIVE_BF16_FEATURES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def cpu_has_native_bf16() -> bool:
    """Whether CPU autocast in bf16 runs on native bf16 instructions here.

    Two of PyTorch's own checks, both required: ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``
    (oneDNN, which runs CPU autocast's convolutions and matrix products, can use bf16 here:
    what PyTorch's own tests and torch._inductor ask) and ``torch.cpu.get_capabilities()``
    listing one of ``NATIVE_BF16_FEATURES``. The first alone is also true on AVX-512 CPUs without
    bf16 instructions (oneDNN then emulates bf16, slower than fp32), hence the second. Where the
    installed torch lacks either check, the answer is False: fp32, never a slow emulation."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        caps = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):
        return False
    return any(caps.get(name) is True for name in NATIVE_BF16_FEATURES)


def cuda_has_native_bf16(device: torch.device | str = "cuda") -> bool:
    """Whether this GPU computes bf16 in hardware: compute capability 8.0 on (Ampere: A100, L4,
    H100) or ROCm. Not ``torch.cuda.is_bf16_supported()``, which also says yes where bf16 is only
    emulated (its default ``including_emulation=True``), as on Colab's T4 (7.5): fp16 is the
    T4's fast type."""
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def slow_in_cpu_bf16(model: nn.Module | None) -> int:
    """How many of ``model``'s layers run slower in bf16 than in fp32 on a CPU: depthwise
    convolutions with kernels larger than 3x3 (EfficientNet's 5x5s). oneDNN's bf16 kernels for
    them are slower than its fp32 ones in channels_last: measured on a 2-core AMD EPYC (Zen 4,
    native bf16), torch 2.14.1, one thread, forward + backward at batch 64: 2.5-2.9x slower for
    a 5x5 depthwise conv, while 3x3 depthwise ones are about as fast (1.1-1.35x slower); a whole
    cifar_efficientnet_b0 step ran at 0.67x its fp32 speed, where ResNet-20, SE-ResNet-56,
    DenseNet-BC-100 and MobileNetV2 ran 1.15-1.34x faster in bf16."""
    if model is None:
        return 0
    return sum(isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
               and max(m.kernel_size) > 3 for m in model.modules())


def _amp_dtype(device: torch.device, amp: bool, model: nn.Module | None = None):
    """The autocast dtype fit and evaluate use on ``device`` (None: fp32): bf16 on CUDA GPUs with
    native bf16, fp16 on older ones; bf16 on CPUs with native bf16 unless ``model`` has layers
    that are slower in bf16 there (``slow_in_cpu_bf16``), fp32 on other CPUs."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16() and not slow_in_cpu_bf16(model):
        return torch.bfloat16
    return None


def _precision_text(device: torch.device, amp: bool, amp_dtype,
                    model: nn.Module | None = None) -> str:
    """The precision in words, for fit's first printed line."""
    if amp_dtype == torch.float16:
        return "float16 autocast on CUDA with gradient scaling (this GPU has no bf16)"
    if amp_dtype is not None:
        return f"bfloat16 autocast on {'CPU (native bf16)' if device.type == 'cpu' else 'CUDA'}"
    if not amp:
        return "float32 (amp=False)"
    slow = slow_in_cpu_bf16(model) if device.type == "cpu" and cpu_has_native_bf16() else 0
    if slow:
        return (f"float32 (this CPU has native bf16, but this model's {slow} "
                "depthwise convolutions larger than 3x3 run slower in bf16 on CPUs)")
    if device.type == "cpu":
        return "float32 (this CPU has no native bf16)"
    return f"float32 (no autocast on {device.type})"


def _to_device(x, y, device, channels_last):
    """A batch on the model's device, images in the model's memory layout."""
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y


def _autocast(device: torch.device, amp_dtype):
    """Mixed precision in ``amp_dtype`` on ``device``; plain fp32 when it is None."""
    return torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                          enabled=amp_dtype is not None)


def _forward_batches(model, data, split, batch_size, amp_dtype, channels_last, shard=None):
    """Yield (outputs, labels) of ``model`` in eval mode over a whole split (with ``shard``,
    over this process's share of it)."""
    device = next(model.parameters()).device
    for x, y in data.batches(split, batch_size, **({"shard": shard} if shard else {})):
        x, y = _to_device(x, y, device, channels_last)
        with _autocast(device, amp_dtype):
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
    channels_last = _channels_last(device)
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for out, y in _forward_batches(model, data, split, batch_size,
                                   _amp_dtype(device, amp, model), channels_last,
                                   dist.shard if dist.distributed else None):
        loss += nn.functional.cross_entropy(out, y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
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
        smoke: bool | None = None, quick: bool | None = None, verbose: bool = True,
        sync_bn: bool = False, dist: distributed.Context | None = None) -> History:
    """Train ``model`` on ``data`` (a ``common.load_data`` bundle) with ``recipe``.

    The recipe's optimizer (SGD by default, see ``Recipe``) and cross-entropy with optional label
    smoothing, the recipe's warm-up and schedule set every step; after each epoch the
    validation split is evaluated (unless the data has none: ``load_data(..., val_fraction=0)``
    trains on the whole training set, and the run says so), the history updated, and (with
    ``run_dir``) the checkpoint and history.json written atomically. A model whose output width
    is not ``data.num_classes`` is refused before anything runs or is written.

    Precision: bf16 autocast on CUDA (fp16 with loss scaling where a GPU lacks bf16) and on CPUs
    with native bf16 (``cpu_has_native_bf16``); fp32 elsewhere, or everywhere with ``amp=False``.
    Weights, optimizer state and checkpoints stay fp32. A run resumed in another precision than
    it started in (another machine, or amp changed) continues, says so, and records it under
    history["precision_changes"]; it is then not bit-identical to a straight run.

    run_dir: where the checkpoint goes (None: no checkpoint). resume: continue the checkpoint in
    run_dir if there is one (an error if it is from another run). With resume=False an existing
    checkpoint is never overwritten: an error says what to do. stop_after_epochs: train this
    many epochs in this call and stop (resume later).

    Modes (``smoke`` defaults to ``common.SMOKE``, ``quick`` to ``common.QUICK``; smoke wins): in
    smoke mode only the first ``SMOKE_EPOCHS`` epochs run; in quick mode enough epochs to see
    about ``QUICK_IMAGES`` training images; in both the recipe's whole schedule is compressed
    into them. progress (the progress bar) and live_plot (the curves redrawn each epoch, in a
    notebook) default to on, except in smoke mode, where the tests need quiet output.

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
    smoke = runtime.SMOKE if smoke is None else smoke
    quick = (runtime.QUICK if quick is None else quick) and not smoke
    model, device, channels_last = _place_model(model, data, device, channels_last)
    batch_per_process = dist.batch_per_process(recipe.batch_size)   # DDP: global batch / N
    model, sync_bn = _sync_batch_norm(model, device, sync_bn, dist)
    amp_dtype = _amp_dtype(device, amp, model)
    # Only fp16 needs loss scaling; the scaler is still built (disabled) so checkpoints are alike.
    scaler = torch.amp.GradScaler("cuda" if device.type == "cuda" else "cpu",
                                  enabled=amp_dtype == torch.float16)
    optimizer = make_optimizer(model, recipe)                     # 00: optimizer = SGD(...)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)   # 00: criterion = ...
    epochs = _plan_epochs(recipe, len(data.train), smoke, quick)
    steps = max(1, len(data.train) // recipe.batch_size)   # 00: steps = (partial batch dropped)
    time_scale = recipe.epochs / epochs                  # > 1 only in smoke and quick mode
    run, history = _describe_run(model, data, recipe, device, amp_dtype, channels_last, epochs,
                                 smoke, quick, seed, sync_bn, batch_per_process, dist)
    ckpt = Path(run_dir) / CHECKPOINT if run_dir is not None else None
    start = _restore_or_start(ckpt, resume, seed, model, optimizer, scaler, recipe, run, history,
                              dist)
    train_model = dist.wrap(model)        # DDP: the wrapper averages gradients in backward()
    step_model = torch.compile(train_model) if compile else train_model
    report = _Report(history["mode"], verbose, progress, live_plot, dist)
    report.announce(history, recipe, steps, _precision_text(device, amp, amp_dtype, model),
                    compile, start, ckpt, dist)
    end = epochs if stop_after_epochs is None else min(epochs, start + stop_after_epochs)
    bar = report.bar(start, end, steps)
    try:
        for epoch in range(start, end):                            # 00: for epoch in range(...)
            bar.set_description(f"{report.tag}epoch {epoch + 1}/{epochs}")
            model.train()                                          # 00: model.train()
            # This epoch's order and augmentation depend only on (seed, epoch): exact on resume.
            order = torch.Generator().manual_seed(seed * 1_000_003 + epoch)   # 00: order = ...
            meter = _EpochMeter(device, bar if report.progress else None, steps, dist)
            # DDP: every process draws the same order; each trains on its piece of each batch
            shard = {"shard": dist.shard} if dist.distributed else {}
            batches = data.batches("train", recipe.batch_size, shuffle=True,
                                   augment=recipe.augment, generator=order, drop_last=True, **shard)
            for i, (x, y) in enumerate(batches):                   # 00: for i, (x, y) in ...
                step = epoch * steps + i
                lr = recipe.lr * recipe.lr_factor(step / steps * time_scale)
                for group in optimizer.param_groups:               # 00: for group in ...
                    group["lr"] = lr                               # 00: group["lr"] = ...
                x, y = _to_device(x, y, device, channels_last)
                with _autocast(device, amp_dtype):
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
                _checkpoint(ckpt, _state(model, optimizer, scaler, recipe, run, history,
                                         epoch + 1, dist), history, dist)
            report.epoch(history, epochs)
            if not math.isfinite(train_loss):
                report.diverged(epoch, train_loss)
                history["diverged"] = True
                break
    finally:
        bar.close()
    report.done(history)
    return history


def _place_model(model, data, device, channels_last):
    """The model on its device (the data's unless ``device`` is given), in its memory layout
    (channels_last where it is faster, unless told), its output width checked against the data:
    (model, device, channels_last)."""
    device = runtime.pick_device(device) if device is not None else data.device
    model.to(device)
    channels_last = _channels_last(device) if channels_last is None else channels_last
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


def _plan_epochs(recipe: Recipe, n_train: int, smoke: bool, quick: bool) -> int:
    """How many epochs this mode runs: the first ``SMOKE_EPOCHS`` in smoke mode, about
    ``QUICK_IMAGES`` training images' worth in quick mode (at least one, at most the recipe's),
    the recipe's in full mode. ``fit`` compresses the whole schedule into them."""
    if smoke:
        return min(recipe.epochs, SMOKE_EPOCHS)
    if quick:
        return min(recipe.epochs, max(1, round(QUICK_IMAGES / n_train)))
    return recipe.epochs


def _describe_run(model, data, recipe, device, amp_dtype, channels_last, epochs, smoke, quick,
                  seed, sync_bn, batch_per_process, dist) -> tuple[dict, History]:
    """What defines the run (``run``: a checkpoint resumes only a run that matches it) and the
    new, empty history that records it with how it runs (device, precision, layout...)."""
    run = {"model": _model_name(model), "dataset": data.description, "offline": data.offline,
           "train_size": len(data.train), "epochs_run": epochs, "smoke": smoke, "quick": quick,
           "seed": seed, "world_size": dist.world_size, "sync_bn": sync_bn}
    history = History(run, mode=_mode(smoke, quick), device=str(device),
                      recipe=recipe.to_dict(), params=sum(p.numel() for p in model.parameters()),
                      precision=str(amp_dtype or torch.float32).replace("torch.", ""),
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
        return _restore(ckpt, model, optimizer, scaler, recipe, run, history, dist)
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
        live_plot = (_in_notebook() and not smoke) if live_plot is None else live_plot
        progress = (not smoke) if progress is None else progress
        # DDP: only rank 0 prints and plots
        self.verbose, self.progress, self.live_plot = (v and dist.is_main
                                                       for v in (verbose, progress, live_plot))
        self.tag = "" if mode == "full" else f"[{mode} mode] "
        self.plot_handle = None

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
            lines.append(f"{epochs} of the recipe's {recipe.epochs} epochs "
                         f"({epochs * n_train:,} images seen), with the learning-rate schedule "
                         "compressed into them: a model learns visibly, but the numbers are not "
                         "the paper's (unset IMAGENET5_QUICK for the full run)")
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
        from tqdm.auto import tqdm

        return tqdm(total=(end - start) * steps, disable=not self.progress or end <= start,
                    unit="step", dynamic_ncols=True)

    def epoch(self, history: History, epochs: int) -> None:
        """The epoch's line (or, in a notebook, the live plot redrawn)."""
        if self.live_plot:
            self.plot_handle = _show_live(history, self.plot_handle)
        elif self.verbose:
            h = history
            held_out = (f"val loss {h['val_loss'][-1]:.4f} acc {h['val_acc'][-1]:.4f}"
                        if h["validation"] else "(no validation set)")
            self.print([f"epoch {h['epoch'][-1]:>3}/{epochs}  train loss {h['train_loss'][-1]:.4f} "
                        f"acc {h['train_acc'][-1]:.4f}  {held_out}  lr {h['lr'][-1]:.4g}  "
                        f"{h['images_per_sec'][-1]:,.0f} img/s"])

    def diverged(self, epoch: int, train_loss: float) -> None:
        print(f"{self.tag}Training diverged at epoch {epoch + 1} (loss {train_loss}): "
              "stopping. Lower the learning rate, add warm-up, or check the initialisation.")

    def done(self, history: History) -> None:
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


def _state(model, optimizer, scaler, recipe, run, history, epoch, dist=None) -> dict:
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


def _restore(path, model, optimizer, scaler, recipe, run, history, dist=None) -> int:
    state = load_checkpoint(path)
    # A checkpoint written before a field or key existed means that field's old behaviour.
    theirs = {**ADDED_FIELDS, **state["recipe"]}
    ours = recipe.to_dict()
    theirs_run = {**ADDED_RUN_KEYS, **state["run"]}
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
    before = old.get("precision", history["precision"])
    if before != history["precision"]:
        changes.append({"epoch": int(state["epoch"]), "from": before,
                        "to": history["precision"]})
    if changes:
        history["precision_changes"] = changes
    return int(state["epoch"])


def _mode_text(histories: Mapping[str, Mapping]) -> str:
    """'quick mode: 8 of 182 epochs' (and the like) for the runs not trained in full."""
    parts = []
    for h in histories.values():
        mode = h.get("mode") or ("smoke" if h.get("smoke") else "full")
        if mode != "full":
            text = f"{mode} mode: {h.get('epochs_run', '?')} of " \
                   f"{h.get('recipe', {}).get('epochs', '?')} epochs"
            if text not in parts:
                parts.append(text)
    return "; ".join(parts)


def _figure(histories: Mapping[str, Mapping], metrics, figure=None):
    if figure is None:
        from matplotlib.figure import Figure
        figure = Figure
    fig = figure(figsize=(4.2 * len(metrics), 3.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for label, h in histories.items():
            if h.get(metric):
                ax.plot(h["epoch"], h[metric], label=label, marker="." if len(h[metric]) < 20
                        else None)
        if metric.startswith("val_") and not any(h.get(metric) for h in histories.values()):
            ax.text(0.5, 0.5, "no validation set\n(val_fraction=0)", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
        ax.set_xlabel("epoch")
        ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
        if "acc" in metric:
            ax.set_ylim(0, 1)
    if len(histories) > 1 or not all(h.get("offline") is False for h in histories.values()):
        if any(ax.get_lines() for ax in axes):
            axes[0].legend(fontsize="small")
    title = []
    sets = {h.get("dataset") for h in histories.values() if h.get("dataset")}
    if sets:
        title.append("data: " + ", ".join(sorted(sets)))
    if _mode_text(histories):
        title.append(_mode_text(histories))
    if title:
        fig.suptitle("\n".join(title), fontsize="small")
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _show_live(history, handle):
    from IPython.display import Image, display

    metrics = ("train_loss", "val_loss", "val_acc") if history.get("val_acc") or \
        history.get("validation", True) else ("train_loss", "train_acc")
    img = Image(data=_png(_figure({history.get("model", "run"): history}, metrics)))
    if handle is None:
        return display(img, display_id=True)
    handle.update(img)
    return handle


def _interactive_backend() -> bool:
    """Whether matplotlib's backend opens windows (not Agg, PDF, SVG... of a headless run)."""
    import matplotlib

    try:
        from matplotlib.backends import BackendFilter, backend_registry
        interactive = backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    except ImportError:                                     # matplotlib before 3.9
        interactive = matplotlib.rcsetup.interactive_bk
    return matplotlib.get_backend().lower() in {b.lower() for b in interactive}


def plot_histories(histories: Mapping[str, Mapping] | Mapping, metrics=("train_loss", "val_acc"),
                   show: bool = True, path: str | Path | None = None):
    """Curves of one or more runs side by side: ``{"label": history, ...}`` (or one history).

    show=False returns the matplotlib Figure and shows nothing. With show (the default) the
    figure is shown wherever the code runs, and None returned: inline in a notebook; in a
    window from a script with a window-opening matplotlib backend (``plt.show()``, which waits
    until the window is closed); and from a headless script (matplotlib's Agg backend) it is
    saved as a PNG, whose path is printed: ``path``, else runs/plots/<first label>.png.
    ``path`` also saves the figure in the other cases."""
    if "epoch" in histories:          # a single history
        histories = {histories.get("model", "run"): histories}
    if not show:
        fig = _figure(histories, metrics)
        if path is not None:
            _save_png(fig, path)
        return fig
    if _in_notebook():
        fig = _figure(histories, metrics)
        from IPython.display import Image, display
        display(Image(data=_png(fig)))
        if path is not None:
            _save_png(fig, path)
        return None
    if _interactive_backend():
        import matplotlib.pyplot as plt
        fig = _figure(histories, metrics, figure=plt.figure)
        if path is not None:
            _save_png(fig, path)
        plt.show()
        return None
    fig = _figure(histories, metrics)
    if path is None:
        label = "".join(c if c.isalnum() or c in "-_." else "_" for c in next(iter(histories)))
        path = runtime.runs_dir("plots", f"{label or 'run'}.png")
    _save_png(fig, path)
    print(f"plot saved to {path} (no display here: matplotlib's backend is "
          f"{__import__('matplotlib').get_backend()})")
    return None


def _save_png(fig, path: str | Path) -> None:
    """The figure as a PNG file at ``path``, written atomically."""
    _atomic_write(Path(path), _png(fig))


if __name__ == "__main__":           # python -m common.train ...: the command (common/cli.py)
    from common.cli import main

    raise SystemExit(main())
