"""Data for the course: CIFAR-10 held on the device as uint8, augmented as tensor ops on whole
batches (airbench's way: no per-image Python in the training loop), and an offline stand-in.

    data = load_data("cifar10")        # 45k train / 5k val / 10k test, ResNet paper section 4.2
    for x, y in data.batches("train", 128, shuffle=True, augment=True): ...

When CIFAR-10 cannot be had (no internet, nothing on disk), ``load_data`` falls back to
``digits``: scikit-learn's 1,797 real handwritten digits, rendered to coloured 3x32x32 images.
It is learnable and real, but it is not CIFAR-10, and every run says so loudly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

import common
from common.distributed import shard_slice

DATASETS = ("cifar10", "digits")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
#: Per-channel statistics of the 50,000 CIFAR-10 training images, for reference. `load_data`
#: computes them itself from the training split it uses. The std 0.2023/0.1994/0.2010 often
#: copied from old repositories is wrong (it is the mean of per-image stds), as is 0.5/0.5/0.5.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
#: Validation share of the training set: 5k of CIFAR-10's 50k (He et al. 2015, section 4.2).
VAL_FRACTION = 0.1
#: Smoke mode keeps this many images per split.
SMOKE_SIZES = {"train": 512, "val": 256, "test": 256}
#: Quick mode keeps at most this many images per split (the offline digits set is smaller: it is
#: kept whole).
QUICK_SIZES = {"train": 5_000, "val": 1_000, "test": 2_000}
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_ARCHIVE = CIFAR_URL.rsplit("/", 1)[1]


class DataUnavailable(RuntimeError):
    """The dataset is not on disk and cannot be downloaded."""


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
        are given as ``draws``."""
        n, c, h, w = x.shape
        ox, oy, flip = crop_flip_draws(n, generator, pad) if draws is None else draws
        rows = oy[:, None] + torch.arange(h)                            # (n, h)
        cols = ox[:, None] + torch.arange(w)                            # (n, w)
        cols = torch.where(flip[:, None], cols.flip(1), cols)           # a flip is a reversed crop
        dev = x.device
        padded = F.pad(x, (pad, pad, pad, pad))
        return padded[torch.arange(n, device=dev)[:, None, None, None],
                      torch.arange(c, device=dev)[None, :, None, None],
                      rows.to(dev)[:, None, :, None],
                      cols.to(dev)[:, None, None, :]]

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


def _check_root(root: Path) -> Path:
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(
            f"The data directory {root} is a file, not a folder. Pass load_data(root=...) or set "
            "IMAGENET5_DATA to a folder you can write to.")
    if root.exists() and not os.access(root, os.R_OK | os.X_OK):
        raise PermissionError(
            f"The data directory {root} cannot be read. Fix its permissions, or pass "
            "load_data(root=...) / set IMAGENET5_DATA to a readable folder.")
    return root


def _load_cifar10(root: Path, download: bool):
    """(train_x, train_y, test_x, test_y) as uint8 NCHW / int64 tensors, via torchvision."""
    from torchvision.datasets import CIFAR10

    def read(train: bool, dl: bool):
        ds = CIFAR10(str(root), train=train, download=dl)
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        return x, torch.tensor(ds.targets, dtype=torch.int64)

    try:
        return (*read(True, False), *read(False, False))
    except RuntimeError as missing:  # torchvision: "Dataset not found or corrupted."
        if not download or common.OFFLINE:
            why = ("downloads are switched off (IMAGENET5_OFFLINE=1)" if common.OFFLINE
                   else "download=False was passed")
            raise DataUnavailable(
                f"CIFAR-10 is not in {root} and {why}. Put {CIFAR_ARCHIVE} "
                f"(from {CIFAR_URL}) in that folder, or load the offline set with "
                "load_data('digits').") from missing
    try:
        root.mkdir(parents=True, exist_ok=True)
        return (*read(True, True), *read(False, True))
    except Exception as err:  # no internet, a proxy, a full disk...
        raise DataUnavailable(
            f"CIFAR-10 could not be downloaded into {root} ({type(err).__name__}: {err}). "
            f"On a machine with internet it downloads by itself; otherwise copy "
            f"{CIFAR_ARCHIVE} from {CIFAR_URL} into {root}, or use the offline set "
            "with load_data('digits').") from err


def _load_digits():
    """scikit-learn's handwritten digits (1,797 real 8x8 scans) as coloured 3x32x32 uint8 images.
    Each digit is upsampled to 24x24 and centred on a 32x32 canvas (so the 4-pixel crop keeps it
    whole), then painted with its own foreground and background colours (seeded, so the same on
    every machine): colour carries no label information, shape does."""
    from sklearn.datasets import load_digits

    d = load_digits()
    g = torch.Generator().manual_seed(0)
    ink = torch.from_numpy(d.images).float().div(16).unsqueeze(1)            # (N, 1, 8, 8)
    ink = F.pad(F.interpolate(ink, size=24, mode="bilinear", align_corners=False), (4, 4, 4, 4))
    n = len(ink)
    bg = torch.rand(n, 3, 1, 1, generator=g) * 0.35                        # dark background
    fg = 0.65 + torch.rand(n, 3, 1, 1, generator=g) * 0.35                 # bright ink
    img = bg * (1 - ink) + fg * ink
    x = img.mul(255).round().clamp(0, 255).to(torch.uint8)
    y = torch.from_numpy(d.target).long()
    perm = torch.randperm(n, generator=g)
    x, y = x[perm], y[perm]
    n_test = n // 6                                  # CIFAR-10's share: 10k test of 60k
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def _banner(lines: list[str]) -> str:
    width = max(len(s) for s in lines) + 4
    bar = "!" * width
    return "\n".join([bar, *[f"! {s.ljust(width - 4)} !" for s in lines], bar])


def load_data(name: str = "cifar10", root: str | Path | None = None, download: bool = True,
              device: str | torch.device | None = None, fallback: bool = True,
              val_fraction: float = VAL_FRACTION, split_seed: int = 0,
              smoke: bool | None = None, quick: bool | None = None,
              verbose: bool = True) -> DataBundle:
    """Load a dataset onto ``device`` as uint8 tensors, split into train / val / test.

    name: "cifar10" or "digits" (the offline set). root: data folder ($IMAGENET5_DATA, else
    data/). The training set is split into train and validation (45k / 5k for CIFAR-10, as in
    He et al. 2015, section 4.2) with a fixed seed; the test set is kept for the final number.
    ``val_fraction=0`` keeps no validation split and trains on the whole training set (all 50k
    for CIFAR-10, the protocol of the ResNet paper's reported results); ``fit`` then runs without
    validation and says so. When CIFAR-10 is unavailable and ``fallback`` is true, the offline
    set is used instead, and said loudly; with ``fallback=False`` the reason is raised. In smoke
    mode (``smoke``, default ``common.SMOKE``) each split is cut to a few hundred images; in
    quick mode (``quick``, default ``common.QUICK``; smoke wins) to ``QUICK_SIZES``.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Choose one of: {', '.join(DATASETS)}.")
    if not (isinstance(val_fraction, (int, float)) and 0 <= val_fraction < 1):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}: 0.1 (the "
                         "default) holds out 5k of CIFAR-10's 50k, 0 trains on all of them.")
    smoke = common.SMOKE if smoke is None else smoke
    quick = (common.QUICK if quick is None else quick) and not smoke
    device = common.pick_device(device)
    note, offline = "", False
    if name == "cifar10":
        root = _check_root(Path(root) if root is not None else common.data_dir())
        try:
            tx, ty, sx, sy = _load_cifar10(root, download)
            classes = CIFAR10_CLASSES
        except DataUnavailable as err:
            if not fallback:
                raise
            name, offline = "digits", True
            note = str(err)
    if name == "digits":
        tx, ty, sx, sy = _load_digits()
        classes = tuple(str(i) for i in range(10))
        offline = True
    if offline and verbose and note:
        print(_banner([
            "OFFLINE STAND-IN: CIFAR-10 is not available, so this run uses 'digits':",
            "scikit-learn's 1,797 handwritten digits rendered to 3x32x32 colour images.",
            "Every number below is a digits number, NOT a CIFAR-10 number.",
            "To use CIFAR-10: run with internet (Colab does), or copy",
            f"{CIFAR_ARCHIVE} into {root} (or set IMAGENET5_DATA).",
        ]))
    # Train / validation split of the training set, with its own seed (same on every machine).
    perm = torch.randperm(len(ty), generator=torch.Generator().manual_seed(split_seed))
    n_val = int(round(len(ty) * val_fraction))
    vx, vy, tx, ty = tx[perm[:n_val]], ty[perm[:n_val]], tx[perm[n_val:]], ty[perm[n_val:]]
    if smoke or quick:
        sizes = SMOKE_SIZES if smoke else QUICK_SIZES
        tx, ty = tx[:sizes["train"]], ty[:sizes["train"]]
        vx, vy = vx[:sizes["val"]], vy[:sizes["val"]]
        sx, sy = sx[:sizes["test"]], sy[:sizes["test"]]
    mean, std = channel_stats(tx)   # from the training split only: nothing leaks from val/test
    bundle = DataBundle(
        name=name, classes=classes, mean=mean, std=std, offline=offline, smoke=smoke,
        quick=quick, val_fraction=val_fraction, split_seed=split_seed, note=note,
        train=Split(tx.to(device), ty.to(device)), val=Split(vx.to(device), vy.to(device)),
        test=Split(sx.to(device), sy.to(device)))
    if verbose:
        print(bundle)
    return bundle
