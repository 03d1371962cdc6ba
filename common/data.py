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
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from common import runtime
from common.distributed import shard_slice

DATASETS = ("cifar10", "digits", "imagefolder")
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
    except Exception as err:  # no internet, a proxy, a full disk...
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
    import gzip
    import importlib.util

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    from sklearn.datasets import load_digits

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


# ImageNet-style data: a folder of image files ------------------------------------------------

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
#: ImageNet's per-channel mean and std, the normalisation torchvision's ImageNet models and
#: reference training scripts use (pytorch/vision, references/classification/presets.py).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Train on random-size crops resized to 224x224; evaluate the central 224x224 crop of the image
#: resized to 256 on its shorter side (torchvision's presets.py, as above; 224 is the papers'
#: input size, e.g. He et al. 2015, section 3.4).
CROP_SIZE = 224
RESIZE_SIZE = 256
#: A DataLoader worker decodes this many images at a time; a batch is put together from such
#: chunks on the device, so that shared memory holds a few chunks, not whole large batches.
LOADER_CHUNK = 64
#: Imagenette (10 easy ImageNet classes; fast.ai, github.com/fastai/imagenette), 320-pixel
#: version: train/ and val/ in ImageFolder layout. For the README; nothing here downloads it.
IMAGENETTE_URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz"


@dataclass
class FileSplit:
    """Image files and their labels (int64, on the CPU): decoded batch by batch, never held."""
    paths: tuple[str, ...]
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.paths)


class _ImageFiles(torch.utils.data.Dataset):
    """One image file, decoded with PIL and cropped, as uint8 (3, crop, crop). An item is
    (index, seed): seed None means the evaluation pipeline (Resize(resize) + CenterCrop(crop));
    a seed means the training pipeline (RandomResizedCrop(crop) and a horizontal flip with
    probability 1/2, torchvision's transforms with their default scale 0.08-1 and aspect ratio
    3/4-4/3), whose random draws come from a generator seeded with it: the crop of an image
    depends on its seed only, not on the worker, the process or what was decoded before."""

    def __init__(self, split: FileSplit, crop: int, resize: int):
        import torchvision.transforms as T

        self.split, self.crop, self.resize = split, crop, resize
        self.train = T.Compose([T.RandomResizedCrop(crop), T.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, item):
        import torchvision.transforms.functional as TF
        from PIL import Image

        i, seed = item
        try:
            with Image.open(self.split.paths[i]) as f:
                img = f.convert("RGB")
        except OSError as err:                # PIL's UnidentifiedImageError is an OSError
            raise ValueError(f"{self.split.paths[i]} cannot be read as an image ({err}): "
                             "replace the file or remove it from the folder.") from None
        if seed is None:
            img = TF.center_crop(TF.resize(img, self.resize), self.crop)
        else:
            with torch.random.fork_rng(devices=[]):      # the caller's random state stays put
                torch.manual_seed(seed)
                img = self.train(img)
        return TF.pil_to_tensor(img), int(self.split.y[i])


@dataclass(repr=False)
class ImageFolderBundle(DataBundle):
    """A ``DataBundle`` whose splits are image files (``FileSplit``), decoded in DataLoader
    workers on the CPU as uint8 crops and normalised on the device: the same ``batches``
    interface, so ``fit``, ``evaluate`` and the DDP path take it as they take CIFAR-10."""
    root: Path = None
    crop_size: int = CROP_SIZE
    resize_size: int = RESIZE_SIZE
    workers: int = 0
    target_device: torch.device = field(default=torch.device("cpu"))

    @property
    def device(self) -> torch.device:
        return self.target_device

    @property
    def description(self) -> str:
        mode = " [smoke subset]" if self.smoke else " [quick mode]" if self.quick else ""
        return f"imagefolder:{self.root.name} [{self.crop_size}px crops]{mode}"

    def __repr__(self) -> str:
        return (f"ImageFolderBundle({self.description}: train {len(self.train)}, val "
                f"{len(self.val)}, test {len(self.test)} image files in {self.root}, "
                f"{self.num_classes} classes, decoded by {self.workers} DataLoader workers, "
                f"batches on {self.device})")

    def augment(self, x, generator=None, pad=4, draws=None):
        raise NotImplementedError(
            "An image folder augments while it decodes: use batches(..., augment=True) "
            "(RandomResizedCrop and flip, see load_image_folder).")

    def batches(self, split: str = "train", batch_size: int = 128, shuffle: bool = False,
                augment: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False, shard: tuple[int, int] = (0, 1)):
        """Yield normalised float batches ``(x, y)`` on the bundle's device, as
        ``DataBundle.batches`` (``shard`` included: each process decodes only its piece). The
        epoch's order, then one seed per image of the whole order, come from ``generator``, so
        the images and their crops depend only on the generator's seed: not on the number of
        workers or processes."""
        rank, world_size = shard
        s = self[split]
        n = len(s)
        order = (torch.randperm(n, generator=generator) if shuffle else torch.arange(n)).tolist()
        seeds = (torch.randint(0, 2 ** 62, (n,), generator=generator).tolist() if augment
                 else [None] * n)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        pieces = []                                  # this process's piece of every batch
        for start in range(0, stop, batch_size):
            positions = range(start, min(start + batch_size, stop))
            mine = positions[shard_slice(len(positions), rank, world_size)]
            if len(mine):
                pieces.append([(order[p], seeds[p]) for p in mine])
        chunks = [piece[i:i + LOADER_CHUNK] for piece in pieces
                  for i in range(0, len(piece), LOADER_CHUNK)]
        if not chunks:
            return
        loader = torch.utils.data.DataLoader(
            _ImageFiles(s, self.crop_size, self.resize_size), batch_sampler=chunks,
            num_workers=min(self.workers, len(chunks)), pin_memory=self.device.type == "cuda",
            generator=torch.Generator())    # not the global one: the caller's state stays put
        decoded = iter(loader)
        for piece in pieces:
            parts = [next(decoded) for _ in range(0, len(piece), LOADER_CHUNK)]
            x = torch.cat([p[0] for p in parts]).to(self.device, non_blocking=True)
            y = torch.cat([p[1] for p in parts]).to(self.device, non_blocking=True)
            yield self.normalize(x), y


def _images_by_class(folder: Path) -> dict[str, list[str]]:
    """{class name: its image files, sorted} of one split folder: every sub-folder is a class,
    every .jpg/.jpeg/.png file under it (at any depth) one of its images."""
    found = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        found[d.name] = sorted(str(f) for f in d.rglob("*")
                               if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
    if not any(found.values()):
        raise ValueError(
            f"{folder} holds no images: put each class's {'/'.join(IMAGE_EXTENSIONS)} files in a "
            f"folder named after the class, {folder}/<class>/<image>.jpg (torchvision's "
            "ImageFolder layout).")
    empty = [c for c, files in found.items() if not files]
    if empty:
        raise ValueError(
            f"Class folders without images in {folder}: {', '.join(empty)} (images must end in "
            f"{', '.join(IMAGE_EXTENSIONS)}): add images to them or remove them.")
    return found


def _default_workers() -> int:
    """DataLoader workers per process: the CPUs this process may use, shared among the
    processes torchrun started on this machine, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:                         # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))


def load_image_folder(root: str | Path | None, device: str | torch.device | None = None,
                      crop_size: int = CROP_SIZE, resize_size: int | None = None,
                      workers: int | None = None, smoke: bool | None = None,
                      quick: bool | None = None, verbose: bool = True) -> ImageFolderBundle:
    """An ImageNet-style folder of JPEG/PNG images, in torchvision's ImageFolder layout::

        root/train/<class>/<image>.jpg    root/val/<class>/<image>.jpg    (root/test/...: optional)

    The folder gives the split: train/ trains, val/ validates (``fit``'s per-epoch numbers) and,
    when there is no test/ folder (as in ImageNet and Imagenette, whose papers report val),
    the test split is the val images, said in the bundle's note. Classes are the sorted folder
    names of train/; val/ (and test/) must hold the same ones.

    The ImageNet pipeline of torchvision's reference scripts, which the later papers of the
    course use for ImageNet: for training, RandomResizedCrop(``crop_size``) and a horizontal
    flip; for evaluation, Resize(``resize_size``, default crop_size * 256 / 224) then
    CenterCrop(``crop_size``); ImageNet's mean and std. (ResNet itself, He et al. 2015,
    section 3.4, trained on 224 crops of images resized to a random shorter side in [256, 480]
    instead.) Files are decoded with PIL in ``workers`` DataLoader worker processes (default:
    this process's share of the CPUs, at most 8), as uint8 crops, which go to ``device`` and are
    normalised there. Why not the uint8-on-the-device way of CIFAR-10: ImageNet's 1.28M images
    do not fit on a GPU, and decoding is the work to spread over CPU cores.

    Smoke and quick mode keep a seeded random subset of each split (``SMOKE_SIZES``,
    ``QUICK_SIZES``). Errors (one line each): a folder that does not exist, one without train/
    or val/, a split without images, class folders without images, train/ and val/ with
    different classes."""
    if root is None:
        raise ValueError("load_data('imagefolder') needs root=PATH, the folder that holds "
                         "train/ and val/ (for Imagenette: see docs/imagenet-style-data.md).")
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(
            f"There is no folder {root}: give the folder that holds train/ and val/ "
            f"({root}/train/<class>/<image>.jpg), e.g. Imagenette unpacked (see docs/imagenet-style-data.md).")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is a file: give the folder that holds train/ and val/.")
    if not (isinstance(crop_size, int) and crop_size > 0):
        raise ValueError(f"crop_size must be a positive number of pixels, got {crop_size!r}.")
    resize_size = resize_size or round(crop_size * RESIZE_SIZE / CROP_SIZE)
    if resize_size < crop_size:
        raise ValueError(f"resize_size ({resize_size}) must be at least crop_size "
                         f"({crop_size}): the centre crop is taken from the resized image.")
    found = {}
    for split in ("train", "val", "test"):
        folder = root / split
        if not folder.is_dir():
            if split == "test":
                continue
            raise FileNotFoundError(
                f"{root} has no {split}/ folder: the layout is {root}/train/<class>/<image>.jpg "
                f"and {root}/val/<class>/<image>.jpg (torchvision's ImageFolder, one folder per "
                "class).")
        found[split] = _images_by_class(folder)
    classes = tuple(found["train"])
    for split, by_class in found.items():
        if tuple(by_class) != classes:
            only_train = sorted(set(classes) - set(by_class))
            only_here = sorted(set(by_class) - set(classes))
            raise ValueError(
                f"{root}/train and {root}/{split} hold different classes (only in train/: "
                f"{', '.join(only_train) or 'none'}; only in {split}/: "
                f"{', '.join(only_here) or 'none'}): both need the same class folders.")
    smoke = runtime.SMOKE if smoke is None else smoke
    quick = (runtime.QUICK if quick is None else quick) and not smoke
    sizes = SMOKE_SIZES if smoke else QUICK_SIZES if quick else None
    splits = {}
    for split, by_class in found.items():
        paths = [f for files in by_class.values() for f in files]
        y = torch.tensor([k for k, files in enumerate(by_class.values()) for _ in files])
        if sizes is not None and len(paths) > sizes[split]:
            keep = torch.randperm(len(paths), generator=torch.Generator().manual_seed(0))
            keep = keep[:sizes[split]].sort().values
            paths, y = [paths[i] for i in keep], y[keep]
        splits[split] = FileSplit(tuple(paths), y)
    note = ""
    if "test" not in splits:
        splits["test"] = splits["val"]
        note = (f"{root} has no test/ folder: the test split is the val/ images (ImageNet's "
                "papers report their val numbers too); choose hyperparameters with that in mind.")
    bundle = ImageFolderBundle(
        name="imagefolder", classes=classes, train=splits["train"], val=splits["val"],
        test=splits["test"], mean=torch.tensor(IMAGENET_MEAN), std=torch.tensor(IMAGENET_STD),
        smoke=smoke, quick=quick, note=note, root=root, crop_size=crop_size,
        resize_size=resize_size, workers=_default_workers() if workers is None else workers,
        target_device=runtime.pick_device(device))
    if verbose:
        print(bundle)
        if note:
            print(note)
    return bundle
