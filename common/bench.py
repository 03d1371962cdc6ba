"""Images per second of ``common.fit`` against a plain baseline loop and against the compute-only
bound, on the same model and data, measured in one run and reported as ratios.

    python -m common.bench                       # cifar_baseline, 10,240 training images
    python -m common.bench --model cifar_resnet20 --images 20480 --workers 2

Three measurements, all in one run (on a shared machine only their ratios mean much):

- the plain loop of most tutorials: a torchvision-style Dataset of HWC uint8 arrays that turns
  each image into a PIL image and applies RandomCrop(32, padding=4), RandomHorizontalFlip,
  ToTensor and Normalize, a DataLoader, fp32 and NCHW;
- ``common.fit`` in fp32 (``amp=False``), and in the mixed precision it uses by default where the
  device has one (bf16 on CUDA and on CPUs with native bf16, fp16 on older GPUs): the data on
  the device as uint8, augmentation as tensor ops on whole batches, channels_last;
- the compute-only bound for each precision: the same model's forward, backward and optimizer
  step on one fixed batch already on the device, no data pipeline at all. ``fit``'s images/s as a
  fraction of it says how close the trainer comes to the hardware's limit for this model.

Interleaved, so that a machine shared with other work disturbs them alike: one warm-up round,
then ``rounds`` rounds (3 by default), each timing one epoch of the plain loop, then for each
precision one epoch of ``fit`` and a window of ``bound_steps`` steps of the bound. The report
gives each rate's median over the rounds, and each ratio's median over the rounds' ratios.
Every loop trains the same model with the same SGD recipe.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time

import torch
from torch import nn

from common.data import Split, load_data
from common.models import get_model
from common.runtime import pick_device
from common.train import precision
from common.train.loop import fit
from common.train.recipe import Recipe


class PILDataset(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: HWC uint8 -> PIL image -> transforms."""

    def __init__(self, x_nchw: torch.Tensor, y: torch.Tensor, transform):
        self.data = x_nchw.permute(0, 2, 3, 1).cpu().numpy()
        self.targets = y.cpu().tolist()
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        from PIL import Image  # optional here: torchvision's dependency, only per item
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def _median(values):
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


class PlainLoop:
    """The tutorial loop: DataLoader with per-image PIL transforms, fp32, NCHW, SGD."""

    def __init__(self, model, data, batch_size, workers, device):
        import torchvision.transforms as T  # optional here: heavy, only the plain loop uses it

        tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                        T.Normalize(data.mean.tolist(), data.std.tolist())])
        self.loader = torch.utils.data.DataLoader(
            PILDataset(data.train.x, data.train.y, tf), batch_size=batch_size, shuffle=True,
            num_workers=workers, drop_last=True, pin_memory=device.type == "cuda",
            persistent_workers=workers > 0)
        self.model, self.device = model.to(device).train(), device
        self.opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        self.loss_fn = nn.CrossEntropyLoss()

    def epoch(self) -> float:
        """Images/s of one epoch."""
        seen, t0 = 0, time.perf_counter()
        for x, y in self.loader:
            x, y = x.to(self.device), y.to(self.device)
            loss = self.loss_fn(self.model(x), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            seen += len(y)
        precision.synchronize(self.device)
        return seen / (time.perf_counter() - t0)


def fit_epoch(model, data, batch_size, amp=True, compile=False) -> float:
    """Images/s of one epoch of ``common.fit`` (training only: fit times its epochs without the
    validation pass). Called again, it goes on training the same model."""
    recipe = Recipe(epochs=1, batch_size=batch_size, lr=0.05, schedule="constant")
    h = fit(model, data, recipe, smoke=False, quick=False, progress=False, verbose=False,
            compile=compile, amp=amp)
    return h["images_per_sec"][0]


class ComputeBound:
    """Forward, backward and SGD step of a model on one fixed batch already on the device, in
    fit's precision (``amp``) and memory layout: no data pipeline at all."""

    def __init__(self, model, data, batch_size, device, amp=True):
        self.device = device
        channels_last = precision.channels_last_for(device, model)
        self.model = model.to(device).train()
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.amp_dtype = precision.amp_dtype(device, amp, self.model)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        x, y = next(data.batches("train", batch_size, augment=True,
                                 generator=torch.Generator().manual_seed(0)))
        self.x, self.y = precision.to_device(x, y, device, channels_last)
        # lr 0: the same arithmetic as a real step, but the weights stay put, so the one batch
        # is never memorised (a memorised batch drives gradients towards the slow denormals).
        self.opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=5e-4)
        self.loss_fn = nn.CrossEntropyLoss()

    def window(self, steps: int) -> float:
        """Images/s over ``steps`` steps."""
        precision.synchronize(self.device)
        t0 = time.perf_counter()
        with precision.fp32_layers(self.model, self.device, self.amp_dtype):   # as fit's
            for _ in range(steps):
                with precision.autocast(self.device, self.amp_dtype):
                    loss = self.loss_fn(self.model(self.x), self.y)
                self.opt.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.opt)
                self.scaler.update()
        precision.synchronize(self.device)
        return steps * len(self.y) / (time.perf_counter() - t0)


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads"


def run(model_name="cifar_baseline", images=10_240, batch_size=128, workers=2, device=None,
        compile=False, seed=0, bound_steps=20, rounds=3) -> dict:
    """All measurements, one dict. ``fit`` holds one entry per precision measured: fp32 always,
    then the device's mixed precision where fit uses one (``amp_speedup``: its images/s over
    fp32's). ``ratio``: fit at its default precision over the plain loop. Rates are medians over
    the rounds; ratios are medians of the rounds' ratios."""
    device = pick_device(device)
    data = load_data("cifar10", device=device, smoke=False, quick=False, verbose=False)
    reps = -(-images // len(data.train))
    data = dataclasses.replace(data, train=Split(data.train.x.repeat(reps, 1, 1, 1)[:images],
                                                 data.train.y.repeat(reps)[:images]))

    def model():
        torch.manual_seed(seed)
        return get_model(model_name, num_classes=data.num_classes)

    plain = PlainLoop(model(), data, batch_size, workers, device)
    precisions = ((False, True) if precision.amp_dtype(device, True, plain.model) is not None
                  else (False,))
    fits = {amp: model() for amp in precisions}
    bounds = {amp: ComputeBound(model(), data, batch_size, device, amp) for amp in precisions}
    rows = []                                     # one dict of rates per round
    for r in range(rounds + 1):                   # round 0 warms everything up
        row = {"plain": plain.epoch()}
        for amp in precisions:
            row[("fit", amp)] = fit_epoch(fits[amp], data, batch_size, amp, compile)
            row[("bound", amp)] = bounds[amp].window(bound_steps)
        if r:
            rows.append(row)

    def med(key):
        return round(_median([row[key] for row in rows]), 1)

    def ratio(num, den):
        return round(_median([row[num] / row[den] for row in rows]), 2)

    fit_rows = [{"amp": amp,
                 "precision": precision.precision_text(
                     device, amp, precision.amp_dtype(device, amp, fits[amp]), fits[amp]),
                 "images_per_sec": med(("fit", amp)),
                 "bound_images_per_sec": med(("bound", amp)),
                 "of_bound": ratio(("fit", amp), ("bound", amp)),
                 "over_plain": ratio(("fit", amp), "plain")} for amp in precisions]
    return {"model": model_name, "device": str(device), "machine": machine(device),
            "torch": torch.__version__, "data": data.description, "images": images,
            "batch_size": batch_size, "baseline_workers": workers, "compile": compile,
            "rounds": rounds, "baseline_images_per_sec": med("plain"), "fit": fit_rows,
            "ours_images_per_sec": fit_rows[-1]["images_per_sec"],
            "ratio": fit_rows[-1]["over_plain"],
            "amp_speedup": ratio(("fit", True), ("fit", False)) if len(precisions) > 1
            else None}


def report(r: dict) -> str:
    """The result of ``run`` as the lines ``python -m common.bench`` prints."""
    lines = [f"{r['model']} on {r['machine']} ({r['device']}, torch {r['torch']}), "
             f"{r['images']} images of {r['data']}, batch {r['batch_size']}, medians of "
             f"{r['rounds']} interleaved rounds:",
             f"  plain loop (DataLoader, {r['baseline_workers']} workers, PIL transforms, fp32, "
             f"NCHW): {r['baseline_images_per_sec']:>8,.0f} images/s"]
    for f in r["fit"]:
        lines.append(
            f"  common.fit, {f['precision']}{', compiled' if r['compile'] else ''}: "
            f"{f['images_per_sec']:>8,.0f} images/s = {f['over_plain']:.2f}x the plain loop, "
            f"{f['of_bound']:.2f} of the compute-only bound "
            f"({f['bound_images_per_sec']:,.0f} images/s: one fixed batch on the device, "
            "no data pipeline)")
    if r["amp_speedup"] is not None:
        lines.append(f"  mixed precision over fp32 in fit: {r['amp_speedup']:.2f}x")
    elif r["device"] == "cpu":
        lines.append("  bf16: not measured (this CPU has no native bf16; fit trains in fp32)")
    lines.append(f"  fit (default precision) over the plain loop: {r['ratio']:.2f}x")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="cifar_baseline")
    ap.add_argument("--images", type=int, default=10_240, help="training images per epoch")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline")
    ap.add_argument("--device", default=None)
    ap.add_argument("--compile", action="store_true", help="torch.compile our model")
    ap.add_argument("--rounds", type=int, default=3,
                    help="timed rounds (after one warm-up round); medians are reported")
    ap.add_argument("--bound-steps", type=int, default=20,
                    help="steps per timed window of the compute-only bound")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    a = ap.parse_args(argv)
    if a.images < a.batch_size:
        ap.error(f"--images ({a.images}) must be at least --batch-size ({a.batch_size})")
    r = run(a.model, a.images, a.batch_size, a.workers, a.device, a.compile,
            bound_steps=a.bound_steps, rounds=a.rounds)
    print(json.dumps(r) if a.json else report(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
