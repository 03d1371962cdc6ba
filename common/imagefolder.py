"""ImageNet-style data: a folder of JPEG/PNG images in torchvision's ImageFolder layout, too big
to hold on the device, decoded in DataLoader workers with the ImageNet pipeline behind the same
``batches`` interface as CIFAR-10's ``DataBundle``. ``common.data.load_data("imagefolder",
root=PATH)`` calls ``load_image_folder``. torchvision and PIL are imported by the workers that
decode, not by ``import common``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from common import runtime
from common.bundle import QUICK_SIZES, SMOKE_SIZES, DataBundle
from common.distributed import shard_slice

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
        import torchvision.transforms as T  # optional here: heavy, only the workers need it

        self.split, self.crop, self.resize = split, crop, resize
        self.train = T.Compose([T.RandomResizedCrop(crop), T.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, item):
        import torchvision.transforms.functional as TF  # optional here, as above
        from PIL import Image  # optional here, as above

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
            f"({root}/train/<class>/<image>.jpg), e.g. Imagenette unpacked (see "
            "docs/imagenet-style-data.md).")
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
