"""Data for the course: CIFAR-10 held on the device as uint8, augmented as tensor ops on whole
batches (airbench's way: no per-image Python in the training loop), and an offline stand-in.

    data = load_data("cifar10")        # 45k train / 5k val / 10k test, ResNet paper section 4.2
    for x, y in data.batches("train", 128, shuffle=True, augment=True): ...

When CIFAR-10 cannot be had (no internet, nothing on disk), ``load_data`` falls back to
``digits``: scikit-learn's 1,797 real handwritten digits, rendered to coloured 3x32x32 images.
It is learnable and real, but it is not CIFAR-10, and every run says so loudly.

ImageNet-style data (a folder of JPEG/PNG images, too big to hold on the device):
``load_data("imagefolder", root=PATH)``, decoded in DataLoader workers with the ImageNet
pipeline, behind the same ``batches`` interface (see ``load_image_folder``).

For transfer learning (notebook 09): ``class_subset`` (some classes, few images per class) and
``with_statistics`` / ``check_statistics`` (the normalisation pretrained weights expect).

Where each piece lives: the bundle and its batches in ``common.bundle``, the image folder in
``common.imagefolder``; this module loads and re-exports them (``common.data.DataBundle``...).
"""
from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from common import runtime
from common.bundle import (
    QUICK_SIZES,
    SMOKE_SIZES,
    VAL_FRACTION,
    DataBundle,
    Split,
    channel_stats,
    crop_flip_draws,
)
from common.imagefolder import (
    CROP_SIZE,
    IMAGE_EXTENSIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    IMAGENETTE_URL,
    LOADER_CHUNK,
    RESIZE_SIZE,
    FileSplit,
    ImageFolderBundle,
    load_image_folder,
)

__all__ = ["load_data", "DataBundle", "Split", "DataUnavailable", "channel_stats",
           "crop_flip_draws", "class_subset", "with_statistics", "check_statistics", "DATASETS",
           "CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "CIFAR_URL", "CIFAR_ARCHIVE",
           "VAL_FRACTION", "SMOKE_SIZES", "QUICK_SIZES",
           # the image folder (common.imagefolder)
           "load_image_folder", "ImageFolderBundle", "FileSplit", "IMAGE_EXTENSIONS",
           "IMAGENET_MEAN", "IMAGENET_STD", "CROP_SIZE", "RESIZE_SIZE", "LOADER_CHUNK",
           "IMAGENETTE_URL"]

DATASETS = ("cifar10", "digits", "imagefolder")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
#: Per-channel statistics of the 50,000 CIFAR-10 training images, for reference. `load_data`
#: computes them itself from the training split it uses. The std 0.2023/0.1994/0.2010 often
#: copied from old repositories is wrong (it is the mean of per-image stds), as is 0.5/0.5/0.5.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_ARCHIVE = CIFAR_URL.rsplit("/", 1)[1]


class DataUnavailable(RuntimeError):
    """The dataset is not on disk and cannot be downloaded."""


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
    from torchvision.datasets import CIFAR10  # optional here: heavy, only CIFAR-10 needs it

    def read(train: bool, dl: bool):
        ds = CIFAR10(str(root), train=train, download=dl)
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        return x, torch.tensor(ds.targets, dtype=torch.int64)

    try:
        return (*read(True, False), *read(False, False))
    except RuntimeError as missing:  # torchvision: "Dataset not found or corrupted."
        if not download or runtime.OFFLINE:
            why = ("downloads are switched off (IMAGENET5_OFFLINE=1)" if runtime.OFFLINE
                   else "download=False was passed")
            raise DataUnavailable(
                f"CIFAR-10 is not in {root} and {why}. Put {CIFAR_ARCHIVE} "
                f"(from {CIFAR_URL}) in that folder, or load the offline set with "
                "load_data('digits').") from missing
    try:
        root.mkdir(parents=True, exist_ok=True)
        return (*read(True, True), *read(False, True))
    except Exception as err:  # no internet, a proxy, a full disk... (re-raised, said)
        raise DataUnavailable(
            f"CIFAR-10 could not be downloaded into {root} ({type(err).__name__}: {err}). "
            f"On a machine with internet it downloads by itself; otherwise copy "
            f"{CIFAR_ARCHIVE} from {CIFAR_URL} into {root}, or use the offline set "
            "with load_data('digits').") from err


def _digits_arrays():
    """scikit-learn's digits as (images (N, 8, 8) of 0..16, labels (N,)): ``load_digits()``'s
    arrays, read from the file scikit-learn ships (datasets/data/digits.csv.gz) without importing
    scikit-learn, whose import costs each new process (a notebook kernel, a torchrun worker)
    about a second and a half; where that file is not found, ``load_digits()`` itself."""
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    from sklearn.datasets import load_digits  # optional here: only where the file is not found

    d = load_digits()
    return d.images, d.target


def _load_digits():
    """scikit-learn's handwritten digits (1,797 real 8x8 scans) as coloured 3x32x32 uint8 images.
    Each digit is upsampled to 24x24 and centred on a 32x32 canvas (so the 4-pixel crop keeps it
    whole), then painted with its own foreground and background colours (seeded, so the same on
    every machine): colour carries no label information, shape does."""
    images, target = _digits_arrays()
    g = torch.Generator().manual_seed(0)
    ink = torch.from_numpy(images).float().div(16).unsqueeze(1)              # (N, 1, 8, 8)
    ink = F.pad(F.interpolate(ink, size=24, mode="bilinear", align_corners=False), (4, 4, 4, 4))
    n = len(ink)
    bg = torch.rand(n, 3, 1, 1, generator=g) * 0.35                        # dark background
    fg = 0.65 + torch.rand(n, 3, 1, 1, generator=g) * 0.35                 # bright ink
    img = bg * (1 - ink) + fg * ink
    x = img.mul(255).round().clamp(0, 255).to(torch.uint8)
    y = torch.from_numpy(target).long()
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
              verbose: bool = True, **folder_options) -> DataBundle:
    """Load a dataset onto ``device`` as uint8 tensors, split into train / val / test.

    name: "cifar10", "digits" (the offline set) or "imagefolder" (ImageNet-style JPEG/PNG files
    in ``root``: see ``load_image_folder``, which takes ``folder_options``; the folder gives the
    split). root: data folder ($IMAGENET5_DATA, else data/). The training set is split into
    train and validation (45k / 5k for CIFAR-10, as in He et al. 2015, section 4.2) with a fixed
    seed; the test set is kept for the final number. ``val_fraction=0`` keeps no validation
    split and trains on the whole training set (all 50k for CIFAR-10, the protocol of the ResNet
    paper's reported results); ``fit`` then runs without validation and says so. When CIFAR-10
    is unavailable and ``fallback`` is true, the offline set is used instead, and said loudly;
    with ``fallback=False`` the reason is raised. In smoke mode (``smoke``, default
    ``common.SMOKE``) each split is cut to a few hundred images; in quick mode (``quick``,
    default ``common.QUICK``; smoke wins) to ``QUICK_SIZES``.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Choose one of: {', '.join(DATASETS)}.")
    if name == "imagefolder":
        if val_fraction != VAL_FRACTION or split_seed != 0:
            raise ValueError("An image folder gives its own split (its train/ and val/ folders): "
                             "val_fraction and split_seed do not apply to it.")
        return load_image_folder(root, device=device, smoke=smoke, quick=quick,
                                 verbose=verbose, **folder_options)
    if folder_options:
        raise TypeError(f"load_data({name!r}) does not take {', '.join(sorted(folder_options))}: "
                        "those are options of load_data('imagefolder', root=...).")
    if not (isinstance(val_fraction, (int, float)) and 0 <= val_fraction < 1):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}: 0.1 (the "
                         "default) holds out 5k of CIFAR-10's 50k, 0 trains on all of them.")
    smoke = runtime.SMOKE if smoke is None else smoke
    quick = (runtime.QUICK if quick is None else quick) and not smoke
    device = runtime.pick_device(device)
    note, offline = "", False
    if name == "cifar10":
        root = _check_root(Path(root) if root is not None else runtime.data_dir())
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


# Transfer learning (notebook 09) ---------------------------------------------------------------

def class_subset(data, classes: Sequence[int], per_class: int | None = None):
    """A ``DataBundle`` of the images of ``classes`` only (indices into ``data.classes``),
    relabelled 0..len(classes)-1 in the order given; ``per_class`` keeps only the first that
    many training images of each class (a small labelled set: where transfer helps most;
    validation and test are kept whole). The normalisation statistics stay those of ``data``,
    so a model trained on one subset sees another normalised the same way. The subset is named
    in ``description`` (and so in every run's identity)."""
    if not isinstance(data, DataBundle) or not hasattr(data.train, "x"):
        raise ValueError("class_subset takes an in-memory DataBundle (cifar10, digits); for an "
                         "image folder, make a folder with only those classes.")
    classes = list(classes)
    bad = [c for c in classes if not (isinstance(c, int) and 0 <= c < data.num_classes)]
    if bad or len(set(classes)) != len(classes) or not classes:
        raise ValueError(f"classes must be distinct indices in 0..{data.num_classes - 1}, got "
                         f"{classes}.")
    lookup = torch.full((data.num_classes,), -1, dtype=torch.long)
    lookup[classes] = torch.arange(len(classes))

    def keep(split: Split, cap: int | None) -> Split:
        y = lookup.to(split.y.device)[split.y]
        mask = y >= 0
        if cap is not None:
            rank = torch.zeros_like(y)
            for c in range(len(classes)):
                hit = y == c
                rank[hit] = torch.arange(int(hit.sum()), device=y.device)
            mask &= rank < cap
        return Split(split.x[mask], y[mask])

    label = ",".join(data.classes[c] for c in classes)
    name = f"{data.name}[classes {label}" + (f"; {per_class} per class" if per_class else "") + "]"
    return dataclasses.replace(
        data, name=name, classes=tuple(data.classes[c] for c in classes), _norm=None,
        train=keep(data.train, per_class), val=keep(data.val, None), test=keep(data.test, None))


def with_statistics(data, mean: Sequence[float], std: Sequence[float]):
    """``data`` normalised with another ``mean`` and ``std`` (per channel, in [0, 1] units): the
    statistics pretrained weights were trained with (``weights.transforms().mean``), not the
    new data's own."""
    return dataclasses.replace(data, mean=torch.tensor(mean, dtype=torch.float32),
                               std=torch.tensor(std, dtype=torch.float32), _norm=None)


def check_statistics(data, mean: Sequence[float], std: Sequence[float], atol: float = 1e-3,
                     source: str = "the weights") -> None:
    """AssertionError unless ``data`` is normalised with ``mean`` and ``std``: pretrained
    weights expect inputs normalised as in their own training (ImageNet's for torchvision's:
    ``weights.transforms().mean`` and ``.std``), not with the new data's statistics."""
    ours = (data.mean.tolist(), data.std.tolist())
    same = all(abs(a - b) <= atol for a, b in zip(ours[0] + ours[1], list(mean) + list(std)))
    if not same:
        fmt = lambda v: "(" + ", ".join(f"{x:.3f}" for x in v) + ")"      # noqa: E731
        raise AssertionError(
            f"{data.description} is normalised with mean {fmt(ours[0])}, std {fmt(ours[1])}, "
            f"but {source} expect mean {fmt(mean)}, std {fmt(std)}: the first layer sees inputs "
            "shifted and scaled from what it learnt. Use with_statistics(data, mean, std).")
