"""A dataset held as uint8 images on the device, split into train / val / test, and the
batches drawn from it: ``DataBundle`` normalises on the device and augments whole batches as
tensor ops (airbench's way: no per-image Python in the training loop), and cuts every batch into
the pieces of several processes for data-parallel training. ``common.data.load_data`` makes one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from common.distributed import shard_slice

#: Validation share of the training set: 5k of CIFAR-10's 50k (He et al. 2015, section 4.2).
VAL_FRACTION = 0.1
#: Smoke mode keeps this many images per split.
SMOKE_SIZES = {"train": 512, "val": 256, "test": 256}
#: Quick mode keeps at most this many images per split (the offline digits set is smaller: it is
#: kept whole).
QUICK_SIZES = {"train": 5_000, "val": 1_000, "test": 2_000}


@dataclass
class Split:
    """Images as uint8 (N, 3, H, W) and labels as int64 (N,), on the bundle's device."""
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataBundle:
    name: str
    classes: tuple[str, ...]
    train: Split
    val: Split
    test: Split
    mean: torch.Tensor
    std: torch.Tensor
    offline: bool = False
    smoke: bool = False
    quick: bool = False
    val_fraction: float = VAL_FRACTION
    split_seed: int = 0
    note: str = ""
    _norm: tuple = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.train.x.device

    @property
    def description(self) -> str:
        """What the data is, in words; part of every run's identity (history, checkpoint,
        ``run_dir_for``), so a split other than the default one is named in it."""
        what = f"{self.name} (offline stand-in for CIFAR-10)" if self.offline else self.name
        if self.val_fraction == 0:
            what += " [all training images, no validation split]"
        elif self.val_fraction != VAL_FRACTION:
            what += f" [val_fraction={self.val_fraction:g}]"
        if self.split_seed != 0:
            what += f" [split_seed={self.split_seed}]"
        return what + (" [smoke subset]" if self.smoke else " [quick mode]" if self.quick
                       else "")

    def __getitem__(self, split: str) -> Split:
        if split not in ("train", "val", "test"):
            raise ValueError(f"Unknown split {split!r}: choose 'train', 'val' or 'test'.")
        return getattr(self, split)

    def __repr__(self) -> str:
        return (f"DataBundle({self.description}: train {len(self.train)}, val {len(self.val)}, "
                f"test {len(self.test)} images of {tuple(self.train.x.shape[1:])}, "
                f"{self.num_classes} classes, on {self.device})")

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32, per channel ``(x / 255 - mean) / std``."""
        if self._norm is None or self._norm[0].device != x.device:
            scale = (1.0 / (255.0 * self.std)).to(x.device).view(1, -1, 1, 1)
            shift = (self.mean / self.std).to(x.device).view(1, -1, 1, 1)
            self._norm = (scale, shift)
        scale, shift = self._norm
        return x.float() * scale - shift

    def augment(self, x: torch.Tensor, generator: torch.Generator | None = None,
                pad: int = 4, draws: tuple | None = None) -> torch.Tensor:
        """The standard CIFAR augmentation on a whole uint8 batch at once: zero-pad ``pad`` pixels,
        take a random crop of the original size, flip horizontally with probability 1/2
        (He et al. 2015, section 4.2, after Lee et al. 2015). Random draws come from ``generator``
        on the CPU, in the order: column offsets, row offsets, flips (``crop_flip_draws``), or
        are given as ``draws``. On a CPU each image's crop is a slice (``_crop_flip_slices``),
        several times faster there than one indexed gather of the whole batch, which is what
        runs on other devices (``_crop_flip_gather``); the two give the same images, bit for
        bit."""
        ox, oy, flip = crop_flip_draws(len(x), generator, pad) if draws is None else draws
        if x.device.type == "cpu":
            return _crop_flip_slices(x, ox, oy, flip, pad)
        return _crop_flip_gather(x, ox, oy, flip, pad)

    def batches(self, split: str = "train", batch_size: int = 128, shuffle: bool = False,
                augment: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False, shard: tuple[int, int] = (0, 1)):
        """Yield normalised float batches ``(x, y)`` on the bundle's device.

        shard=(rank, world_size): one process's piece of every batch, for data-parallel training
        (``common.distributed``). ``batch_size`` is then the global batch: every process draws
        the same order and the same augmentation for the whole global batch, and keeps the
        images at ``shard_slice(len(batch), rank, world_size)``; the pieces of all processes are
        exactly the batches of ``shard=(0, 1)``, the default (the whole batch)."""
        rank, world_size = shard
        s = self[split]
        n = len(s)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        order = order.to(s.x.device)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            mine = shard_slice(len(idx), rank, world_size)
            draws = crop_flip_draws(len(idx), generator) if augment else None
            idx = idx[mine]
            if len(idx) == 0:
                continue
            x = s.x[idx]
            if augment:
                x = self.augment(x, draws=tuple(d[mine] for d in draws))
            yield self.normalize(x), s.y[idx]


def _crop_flip_gather(x, ox, oy, flip, pad: int) -> torch.Tensor:
    """Zero-pad, crop at (oy, ox) and flip where ``flip``, as one 4-D indexed gather of the whole
    batch: one kernel, the fast way on a GPU."""
    n, c, h, w = x.shape
    rows = oy[:, None] + torch.arange(h)                            # (n, h)
    cols = ox[:, None] + torch.arange(w)                            # (n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)           # a flip is a reversed crop
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    return padded[torch.arange(n, device=dev)[:, None, None, None],
                  torch.arange(c, device=dev)[None, :, None, None],
                  rows.to(dev)[:, None, :, None],
                  cols.to(dev)[:, None, None, :]]


def _crop_flip_slices(x, ox, oy, flip, pad: int) -> torch.Tensor:
    """The same images as ``_crop_flip_gather``, each cropped as a slice of the padded batch (a
    memory copy per image), then the flipped ones reversed together: the fast way on a CPU,
    where the gather computes an address per pixel."""
    h, w = x.shape[2:]
    padded = F.pad(x, (pad, pad, pad, pad))
    out = torch.empty_like(x)
    for i, (c0, r0) in enumerate(zip(ox.tolist(), oy.tolist())):
        out[i] = padded[i, :, r0:r0 + h, c0:c0 + w]
    if flip.any():
        out[flip] = out[flip].flip(3)
    return out


def crop_flip_draws(n: int, generator: torch.Generator | None = None, pad: int = 4):
    """The random numbers of ``DataBundle.augment`` for ``n`` images, drawn from ``generator`` on
    the CPU in this order: column offsets, row offsets (each in 0..2*pad), flips (bool)."""
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    return ox, oy, flip


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std of uint8 images in [0, 1] units, over every pixel."""
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for chunk in x.split(4096):
        v = chunk.to("cpu", torch.float64).div_(255).transpose(0, 1).reshape(c, -1)
        total += v.sum(1)
        total_sq += (v * v).sum(1)
    count = x.numel() / c
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
    return mean.float(), std.float()
