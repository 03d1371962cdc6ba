"""Images per second of ``common.fit`` against a plain baseline loop, on the same model and data,
measured in one run and reported as a ratio.

    python -m common.bench                       # cifar_baseline, 10,240 training images
    python -m common.bench --model cifar_resnet20 --images 20480 --workers 2

The baseline is the loop of most tutorials: a torchvision-style Dataset of HWC uint8 arrays that
turns each image into a PIL image and applies RandomCrop(32, padding=4), RandomHorizontalFlip,
ToTensor and Normalize, a DataLoader, fp32 and NCHW. Ours: the data on the device as uint8,
augmentation as tensor ops on whole batches, bf16 autocast and channels_last on CUDA. Both train
the same model with the same SGD recipe; the second of two epochs is timed (the first warms up).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time

import torch
from torch import nn

import common
from common.data import Split


class PILDataset(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: HWC uint8 -> PIL image -> transforms."""

    def __init__(self, x_nchw: torch.Tensor, y: torch.Tensor, transform):
        self.data = x_nchw.permute(0, 2, 3, 1).cpu().numpy()
        self.targets = y.cpu().tolist()
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def baseline_images_per_sec(model, data, batch_size, workers, device, epochs=2) -> float:
    import torchvision.transforms as T

    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize(data.mean.tolist(), data.std.tolist())])
    loader = torch.utils.data.DataLoader(
        PILDataset(data.train.x, data.train.y, tf), batch_size=batch_size, shuffle=True,
        num_workers=workers, drop_last=True, pin_memory=device.type == "cuda",
        persistent_workers=workers > 0)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    rate = 0.0
    for _ in range(epochs):
        seen, t0 = 0, time.perf_counter()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = seen / (time.perf_counter() - t0)
    return rate


def ours_images_per_sec(model, data, batch_size, compile=False, epochs=2) -> float:
    recipe = common.Recipe(epochs=epochs, batch_size=batch_size, lr=0.05, schedule="constant")
    h = common.fit(model, data, recipe, smoke=False, progress=False, verbose=False,
                   compile=compile)
    return h["images_per_sec"][-1]


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads"


def run(model_name="cifar_baseline", images=10_240, batch_size=128, workers=2, device=None,
        compile=False, seed=0) -> dict:
    device = common.pick_device(device)
    data = common.load_data("cifar10", device=device, smoke=False, verbose=False)
    reps = -(-images // len(data.train))
    data = dataclasses.replace(data, train=Split(data.train.x.repeat(reps, 1, 1, 1)[:images],
                                                 data.train.y.repeat(reps)[:images]))
    torch.manual_seed(seed)
    base = baseline_images_per_sec(common.get_model(model_name, num_classes=data.num_classes),
                                   data, batch_size, workers, device)
    torch.manual_seed(seed)
    ours = ours_images_per_sec(common.get_model(model_name, num_classes=data.num_classes), data,
                               batch_size, compile=compile)
    return {"model": model_name, "device": str(device), "machine": machine(device),
            "torch": torch.__version__, "data": data.description, "images": images,
            "batch_size": batch_size, "baseline_workers": workers,
            "baseline_images_per_sec": round(base, 1), "ours_images_per_sec": round(ours, 1),
            "ratio": round(ours / base, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="cifar_baseline")
    ap.add_argument("--images", type=int, default=10_240, help="training images per epoch")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline")
    ap.add_argument("--device", default=None)
    ap.add_argument("--compile", action="store_true", help="torch.compile our model")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    a = ap.parse_args(argv)
    r = run(a.model, a.images, a.batch_size, a.workers, a.device, a.compile)
    if a.json:
        print(json.dumps(r))
    else:
        print(f"{r['model']} on {r['machine']} ({r['device']}, torch {r['torch']}), "
              f"{r['images']} images of {r['data']}, batch {r['batch_size']}:\n"
              f"  baseline (DataLoader, {r['baseline_workers']} workers, PIL transforms, fp32, "
              f"NCHW): {r['baseline_images_per_sec']:>9,.0f} images/s\n"
              f"  common.fit:{'':>46}{r['ours_images_per_sec']:>9,.0f} images/s\n"
              f"  ratio: {r['ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
