"""A paper's training hyperparameters as one value, ``Recipe``, with where each comes from.

    recipe = Recipe(epochs=182, lr=0.1, momentum=0.9, weight_decay=1e-4, milestones=(91, 136),
                    sources={"lr": "He et al. 2015, section 4.2"})
    recipe.table()                     # each hyperparameter, its value and its source

The learning rate is a pure function of the (fractional) epoch, ``Recipe.lr_factor``, so the
step is the scheduler's whole state (``fit`` sets the lr every step; a resume needs nothing
else). What the optimizer options mean, and which codebase chose what: docs/recipe.md.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Mapping

from common.display import Table

SCHEDULES = ("multistep", "cosine", "constant", "exponential")
WARMUPS = ("linear", "constant")
OPTIMIZERS = ("sgd", "rmsprop", "rmsprop_tf", "adamw")
#: What ``Recipe.no_weight_decay`` may exempt from weight decay.
NO_WEIGHT_DECAY = ("norm", "bias", "depthwise", "layer_scale")
#: Recipe fields added after checkpoints already existed, with the value that means "as before".
#: A checkpoint whose recipe lacks them resumes as if it had these values, and ``run_dir_for``
#: leaves them out of its key while they hold these values (so old run folders keep their names).
CHECKPOINT_DEFAULTS = {"optimizer": "sgd", "rmsprop_decay": 0.9, "rmsprop_eps": 1e-3,
                       "decay_epochs": 1.0, "staircase": True, "no_weight_decay": (),
                       "lr_scales": (),
                       "adam_betas": [0.9, 0.999],   # as to_dict writes it
                       "adam_eps": 1e-8}


@dataclass(frozen=True)
class Recipe:
    """A paper's training hyperparameters; ``sources`` maps a field to where the paper states it
    (or why we chose it), and ``table()`` shows them side by side. Epochs may be fractional, so
    a paper's iteration counts convert exactly (``Recipe.iterations_to_epochs``). The learning
    rate is set every step: lr x warm-up factor x schedule factor (``lr_factor``).

    Each field, ``name (type): effect (default; source)``. A default without a source is the
    course's; every notebook passes its paper's values and cites them in ``sources``. More on
    the optimizers, weight decay and schedules, and other codebases' choices: docs/recipe.md.

    epochs (int): epochs to train; smoke and quick mode run fewer (required; the paper's)
    batch_size (int): the global mini-batch, all processes together (default 128; He 2015, 4.2)
    lr (float): the learning rate for that global batch (default 0.1; He et al. 2015, sec. 4.2)
    momentum (float): momentum of SGD and both RMSProps (default 0.9; He et al. 2015, sec. 4.2)
    nesterov (bool): Nesterov momentum, SGD only (default False)
    weight_decay (float): L2 term for SGD and RMSProp, decoupled for AdamW (default 5e-4)
    schedule (str): "multistep", "cosine", "constant" or "exponential" (default "multistep")
    milestones (tuple): epochs at which "multistep" multiplies the lr by gamma (default ())
    gamma (float): lr factor per milestone, or per decay period if "exponential" (default 0.1)
    warmup_epochs (float): epochs of warm-up, which multiplies the schedule (default 0: none)
    warmup (str): "linear" from warmup_factor to 1, or "constant" warmup_factor (default linear)
    warmup_factor (float): the lr factor at the start of warm-up (default 0.1)
    label_smoothing (float): label smoothing of the cross-entropy loss (default 0)
    augment (bool): the data's training augmentation, crops and flips (default True)
    optimizer (str): "sgd", "rmsprop" (torch's), "rmsprop_tf" (RMSpropTF), "adamw" (default sgd)
    rmsprop_decay (float): RMSProp's decay, torch's alpha (default 0.9; EfficientNet's code)
    rmsprop_eps (float): both RMSProps' epsilon (default 1e-3; EfficientNet's official code)
    decay_epochs (float): "exponential": epochs per factor gamma (default 1)
    staircase (bool): "exponential": whole periods only, TF's staircase=True (default True)
    no_weight_decay (tuple): kinds exempt from weight decay, of NO_WEIGHT_DECAY (default ())
    lr_scales (tuple): (part, scale) pairs: the part learns at lr x scale (default (): none)
    adam_betas (tuple): AdamW's betas (default (0.9, 0.999): torch's, kept by ConvNeXt's main.py)
    adam_eps (float): AdamW's epsilon (default 1e-8; ConvNeXt's official main.py)
    sources (dict): where each value comes from, by field name; shown by table() (default {})
    """
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
    optimizer: str = CHECKPOINT_DEFAULTS["optimizer"]
    rmsprop_decay: float = CHECKPOINT_DEFAULTS["rmsprop_decay"]
    rmsprop_eps: float = CHECKPOINT_DEFAULTS["rmsprop_eps"]
    decay_epochs: float = CHECKPOINT_DEFAULTS["decay_epochs"]
    staircase: bool = CHECKPOINT_DEFAULTS["staircase"]
    no_weight_decay: tuple = CHECKPOINT_DEFAULTS["no_weight_decay"]
    lr_scales: tuple = CHECKPOINT_DEFAULTS["lr_scales"]
    adam_betas: tuple = tuple(CHECKPOINT_DEFAULTS["adam_betas"])
    adam_eps: float = CHECKPOINT_DEFAULTS["adam_eps"]
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if isinstance(self.no_weight_decay, str):
            raise ValueError(f"no_weight_decay is a tuple of names, e.g. "
                             f"({self.no_weight_decay!r},), not a string; choose from "
                             f"{NO_WEIGHT_DECAY}.")
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
        if any(not k or not 0 < v < math.inf for k, v in scales) \
                or len({k for k, _ in scales}) < len(scales):
            raise ValueError(f"lr_scales needs distinct part names and positive, finite scales "
                             f"(to freeze a part, use common.transfer.freeze), got {scales}.")
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
