"""``python -m common.train``: train any registered model from the command line, in one process
or, under ``torchrun``, in several (one per GPU) with DistributedDataParallel.

    python -m common.train cifar_resnet20            # CIFAR-10 with the ResNet paper's recipe
    python -m common.train resnet18 --data imagefolder:imagenette2-320 --epochs 40 --batch-size 256
    torchrun --standalone --nproc_per_node=4 -m common.train resnet18 --data imagefolder:...
    python -m common.train resnet50 --pretrained --freeze --data imagefolder:imagenette2-320

Transfer learning (notebook 09): ``--pretrained`` loads torchvision's ImageNet weights strictly
into our model, gives it a new head for the data's classes and normalises the data with the
weights' statistics; ``--freeze [PARTS]`` trains only the named parts (default: the new head);
``--lr-scales PART=S,...`` gives parts their own learning rates.

The same ``common.fit`` as in the notebooks: the same progress output, history.json and atomic
checkpoint.pt in the run folder, and ``--resume`` continues a run exactly. The run folder also
keeps command.json, the settings the run was started with, so that a resume with other
settings is refused by name. Bad input (an unknown model or data set, a folder without images
or with a file that is not one, a run folder that is a file, an existing run without --resume,
a resume with other settings, a part or scale of the transfer flags that cannot be) is one line
on stderr and exit status 2, with nothing written. A folder that holds only command.json (a
run stopped before its first epoch ended: no checkpoint) holds nothing to lose: a new command
starts afresh there, and says so.

The recipe defaults to the course's CIFAR-10 recipe, notebook 02's: He et al. 2015, section 4.2.
``--batch-size`` is the GLOBAL batch (all GPUs together), as ``Recipe.batch_size`` is;
``--lr`` is the learning rate for it. Without ``--lr``, the paper's 0.1 for a batch of 128 is
scaled linearly to the batch you give (Goyal et al. 2017, "Accurate, Large Minibatch SGD",
the linear scaling rule). The number of GPUs changes neither: only the per-GPU batch.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from common import data as cdata
from common import distributed, runtime, transfer, weights
from common.inspection import count_params
from common.models import get_model, list_models
from common.train.checkpoint import CHECKPOINT, HISTORY, CheckpointError
from common.train.loop import fit
from common.train.optim import check_lr_scales, frozen_lr_scales
from common.train.recipe import CHECKPOINT_DEFAULTS, OPTIMIZERS, SCHEDULES, WARMUPS, Recipe

PROG = "python -m common.train"
SETTINGS = "command.json"
#: The course's CIFAR-10 recipe (notebook 02): He et al. 2015, section 4.2, in epochs of the
#: 45k training images at batch 128 (64k iterations = 182 epochs; the lr drops at 32k and 48k
#: iterations, that is at 1/2 and 3/4 of training).
PAPER_BATCH = 128
PAPER_LR = 0.1
DEFAULTS = dict(epochs=182, batch_size=PAPER_BATCH, momentum=0.9, nesterov=False,
                weight_decay=1e-4, schedule="multistep", gamma=0.1, augment=True)
MILESTONE_FRACTIONS = (0.5, 0.75)
SOURCES = {
    "epochs": "He et al. 2015, sec. 4.2: 64k iterations x 128 / 45k images = 182 epochs",
    "batch_size": "He et al. 2015, sec. 4.2: a mini-batch of 128 (on two GPUs); global",
    "lr": "He et al. 2015, sec. 4.2: 0.1",
    "momentum": "He et al. 2015, sec. 4.2", "weight_decay": "He et al. 2015, sec. 4.2: 0.0001",
    "schedule": "He et al. 2015, sec. 4.2: divide by 10 at 32k and 48k iterations",
    "milestones": "He et al. 2015, sec. 4.2: 32k and 48k of 64k iterations = 1/2 and 3/4 "
                  "of the epochs",
    "gamma": "He et al. 2015, sec. 4.2: divide by 10",
    "augment": "He et al. 2015, sec. 4.2 (CIFAR); RandomResizedCrop + flip for image folders",
    "nesterov": "not stated in sec. 4.2: plain momentum",
}
#: One flag per Recipe field (a test checks that none is missing): (flag, help).
RECIPE_FLAGS = {
    "epochs": ("--epochs", "epochs to train (default 182, He et al. 2015 sec. 4.2)"),
    "batch_size": ("--batch-size", "GLOBAL batch: all processes together; each of N processes "
                   "trains on batch/N images per step (default 128, sec. 4.2)"),
    "lr": ("--lr", "learning rate for the global batch (default 0.1 x batch/128: the paper's "
           "0.1 at 128, scaled linearly, Goyal et al. 2017)"),
    "momentum": ("--momentum", "momentum (default 0.9)"),
    "nesterov": ("--nesterov", "Nesterov momentum (SGD only; default off)"),
    "weight_decay": ("--weight-decay", "L2 weight decay (default 1e-4)"),
    "schedule": ("--schedule", "learning-rate schedule (default multistep)"),
    "milestones": ("--milestones", "comma-separated epochs (may be fractional) at which "
                   "multistep multiplies the lr by --gamma (default: 1/2 and 3/4 of --epochs)"),
    "gamma": ("--gamma", "lr factor at each milestone, or per decay period (default 0.1)"),
    "warmup_epochs": ("--warmup-epochs", "epochs of warm-up, e.g. 5 for large batches "
                      "(Goyal et al. 2017; default 0)"),
    "warmup": ("--warmup", "warm-up shape (default linear)"),
    "warmup_factor": ("--warmup-factor", "lr factor at the start of warm-up (default 0.1)"),
    "label_smoothing": ("--label-smoothing", "label smoothing of the loss (default 0)"),
    "augment": ("--no-augment", "train without data augmentation"),
    "optimizer": ("--optimizer", "optimizer (default sgd; rmsprop_tf: TensorFlow's RMSProp; "
                  "adamw: decoupled weight decay, ConvNeXt's)"),
    "rmsprop_decay": ("--rmsprop-decay", "RMSProp's decay (TF) / alpha (torch) (default 0.9)"),
    "rmsprop_eps": ("--rmsprop-eps", "RMSProp's epsilon (default 1e-3)"),
    "decay_epochs": ("--decay-epochs", "exponential schedule: epochs per decay (default 1)"),
    "staircase": ("--no-staircase", "exponential schedule: decay smoothly, not in steps"),
    "no_weight_decay": ("--no-weight-decay", "comma-separated kinds of parameters exempt from "
                        "weight decay: norm, bias, depthwise, layer_scale (default: none "
                        "exempt)"),
    "lr_scales": ("--lr-scales", "comma-separated PART=SCALE: the parts' learning rate is "
                  "--lr x SCALE (discriminative fine-tuning, notebook 09), e.g. "
                  "layer1=0.1,layer4=0.5 (default: the same lr everywhere)"),
    "adam_betas": ("--adam-betas", "AdamW's beta1,beta2 (default 0.9,0.999)"),
    "adam_eps": ("--adam-eps", "AdamW's epsilon (default 1e-8)"),
}


#: The Recipe fields given as comma-separated lists: their metavar.
LIST_FLAGS = {"milestones": "E1,E2", "no_weight_decay": "KIND,KIND",
              "lr_scales": "PART=S,PART=S", "adam_betas": "B1,B2"}


def setting_name(field: str) -> str:
    """The name of a Recipe field in command.json: its flag, a switch by what it switches
    (--augment, not --no-augment)."""
    flag = RECIPE_FLAGS[field][0]
    return flag.replace("--no-", "--") if field in ("augment", "staircase") else flag


class CommandError(Exception):
    """Bad input: printed as one line (by rank 0 only), exit status 2, nothing written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):                 # one line, not argparse's usage block
        raise CommandError(f"{message} ({PROG} --help lists every flag)")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
        epilog="Several GPUs: torchrun --standalone --nproc_per_node=N -m common.train MODEL "
               "... (the same flags). Modes: --mode smoke|quick, or IMAGENET5_SMOKE=1 / "
               "IMAGENET5_QUICK=1. See docs/command-line.md.")
    ap.add_argument("model", nargs="?", metavar="MODEL",
                    help="a registered model name, e.g. cifar_resnet20, resnet18 (--list-models)")
    ap.add_argument("--list-models", action="store_true", help="print the model names and exit")
    ap.add_argument("--model-kwargs", default="{}", metavar="JSON",
                    help='keywords for the model\'s constructor, e.g. \'{"zero_init_residual": '
                         'true}\' (num_classes comes from the data)')
    ap.add_argument("--data", default="cifar10", metavar="cifar10|digits|imagefolder:PATH",
                    help="cifar10 (default; downloaded into $IMAGENET5_DATA or data/), digits "
                         "(the offline set) or imagefolder:PATH (PATH/train/<class>/*.jpg and "
                         "PATH/val/<class>/*.jpg, e.g. Imagenette)")
    ap.add_argument("--val-fraction", type=float, default=None,
                    help="cifar10/digits: share of the training set held out for validation "
                         "(default 0.1: 45k/5k, sec. 4.2; 0: train on all of it)")
    ap.add_argument("--image-size", type=int, default=None,
                    help="imagefolder: training crop and evaluation centre crop in pixels "
                         "(default 224; the evaluation resize is size x 256/224)")
    ap.add_argument("--workers", type=int, default=None,
                    help="imagefolder: DataLoader workers per process that decode images "
                         "(default: this process's share of the CPUs, at most 8)")
    for field in dataclasses.fields(Recipe):
        if field.name == "sources":
            continue
        flag, text = RECIPE_FLAGS[field.name]
        if field.type in ("bool", bool):
            ap.add_argument(flag, dest=field.name, action="store_const", default=None,
                            const=not field.default, help=text)
        elif field.name in LIST_FLAGS:
            ap.add_argument(flag, dest=field.name, default=None, metavar=LIST_FLAGS[field.name],
                            help=text)
        else:
            kind = {"epochs": int, "batch_size": int}.get(field.name, float)
            choices = {"schedule": SCHEDULES, "warmup": WARMUPS,
                       "optimizer": OPTIMIZERS}.get(field.name)
            ap.add_argument(flag, dest=field.name, default=None, choices=choices,
                            type=str if choices else kind, help=text)
    ap.add_argument("--pretrained", action="store_true",
                    help="start from torchvision's ImageNet weights, loaded strictly into our "
                         "MODEL (a download), with a new head for the data's classes; the data "
                         "is normalised with the weights' mean and std (notebook 09)")
    ap.add_argument("--freeze", nargs="?", const="", default=None, metavar="PARTS",
                    help="train only these comma-separated parts (module names, e.g. "
                         "layer4,fc); without PARTS: only the head (a linear probe). Frozen "
                         "parts run as in eval mode: batch norms keep their statistics, "
                         "dropout and stochastic depth are off (common.transfer.freeze)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the weights' initialisation and of every epoch's order and "
                         "augmentation (default 0)")
    ap.add_argument("--mode", choices=("full", "quick", "smoke"), default=None,
                    help="smoke: a few hundred images, 2 epochs; quick: a subset, minutes on a "
                         "CPU (default: full, or what IMAGENET5_SMOKE / IMAGENET5_QUICK say)")
    ap.add_argument("--device", default=None,
                    help="cuda, cpu or mps (default: the best available; under torchrun with "
                         "GPUs each process takes cuda:LOCAL_RANK)")
    ap.add_argument("--no-amp", dest="amp", action="store_false",
                    help="train in fp32 (default: bf16 autocast where the device has it)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--sync-bn", action="store_true",
                    help="several GPUs: batch norm over the global batch (SyncBatchNorm, CUDA "
                         "only); default: each GPU normalises its own piece")
    ap.add_argument("--run-dir", default=None,
                    help="folder for checkpoint.pt, history.json and command.json (default: "
                         "$IMAGENET5_RUNS or runs/, then MODEL-DATA)")
    ap.add_argument("--resume", action="store_true",
                    help="continue the run in --run-dir exactly where it stopped (the same "
                         "settings are required); starts it if there is none")
    ap.add_argument("--stop-after-epochs", type=int, default=None, metavar="N",
                    help="train N epochs in this call, then stop (--resume continues)")
    return ap


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def parse_data(spec: str) -> tuple[str, Path | None]:
    """'cifar10' | 'digits' | 'imagefolder:PATH' -> (name, path or None)."""
    name, _, path = spec.partition(":")
    if name == "imagefolder":
        if not path:
            raise CommandError("--data imagefolder needs a folder: --data imagefolder:PATH, with "
                               "PATH/train/<class>/*.jpg and PATH/val/<class>/*.jpg")
        return name, Path(path).expanduser().resolve()
    if name in ("cifar10", "digits") and not path:
        return name, None
    raise CommandError(f"unknown --data {spec!r}: choose cifar10, digits or imagefolder:PATH")


def build_recipe(args) -> Recipe:
    """The recipe of the flags: notebook 02's CIFAR-10 recipe where a flag is not given, the
    milestones scaled to --epochs, the lr to --batch-size. ``sources`` says which is which."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)
             if f.name != "sources" and getattr(args, f.name) is not None}
    values = {**DEFAULTS, **given}
    sources = {k: v for k, v in SOURCES.items() if k not in given}
    for k in given:
        sources[k] = f"command line ({RECIPE_FLAGS[k][0]})"
    if "milestones" in given:
        try:
            values["milestones"] = tuple(float(m) for m in given["milestones"].split(",") if m)
        except ValueError:
            raise CommandError(f"--milestones {given['milestones']!r}: give epochs separated by "
                               "commas, e.g. --milestones 91,136.5") from None
    elif values["schedule"] == "multistep":
        values["milestones"] = tuple(f * values["epochs"] for f in MILESTONE_FRACTIONS)
        if values["epochs"] != DEFAULTS["epochs"]:
            sources["milestones"] += f", of --epochs {values['epochs']}"
    else:
        sources.pop("milestones")
    if "lr_scales" in given:
        try:
            values["lr_scales"] = tuple((k.strip(), float(v)) for k, _, v in (
                item.partition("=") for item in given["lr_scales"].split(",") if item.strip()))
        except ValueError:
            raise CommandError(f"--lr-scales {given['lr_scales']!r}: give PART=SCALE pairs "
                               "separated by commas, e.g. --lr-scales layer1=0.1,layer4=0.5"
                               ) from None
    if "no_weight_decay" in given:
        values["no_weight_decay"] = tuple(k for k in given["no_weight_decay"].split(",") if k)
    if "adam_betas" in given:
        try:
            values["adam_betas"] = tuple(float(b) for b in given["adam_betas"].split(",") if b)
        except ValueError:
            raise CommandError(f"--adam-betas {given['adam_betas']!r}: give two numbers separated "
                               "by a comma, e.g. --adam-betas 0.9,0.999") from None
    if "lr" not in given:
        values["lr"] = PAPER_LR * values["batch_size"] / PAPER_BATCH
        if values["batch_size"] != PAPER_BATCH:
            sources["lr"] = (f"0.1 x {values['batch_size']}/128: sec. 4.2's 0.1 at batch 128, "
                             "scaled linearly (Goyal et al. 2017)")
    if values.get("schedule") != "multistep" and "gamma" not in given:
        sources.pop("gamma", None)
    try:
        return Recipe(**values, sources=sources)
    except (TypeError, ValueError) as err:
        raise CommandError(_one_line(err)) from None


def _model_kwargs(text: str) -> dict:
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as err:
        raise CommandError(f"--model-kwargs is not JSON ({err.msg}): e.g. "
                           '--model-kwargs \'{"zero_init_residual": true}\'') from None
    if not isinstance(kwargs, dict) or "num_classes" in kwargs:
        raise CommandError("--model-kwargs must be a JSON object of keywords, without "
                           "num_classes (it comes from the data)")
    return kwargs


def settings_of(args, recipe, data_name, data_path, mode, world_size) -> dict:
    """What defines the run, by flag: what a resume must repeat."""
    out = {"MODEL": args.model, "--model-kwargs": _model_kwargs(args.model_kwargs),
           "--data": data_name if data_path is None else f"imagefolder:{data_path}",
           "--val-fraction": args.val_fraction, "--image-size": args.image_size,
           "--seed": args.seed, "--mode": mode, "--sync-bn": args.sync_bn,
           **({"--pretrained": True} if args.pretrained else {}),
           **({"--freeze": args.freeze} if args.freeze is not None else {}),
           "processes (torchrun --nproc_per_node)": world_size}
    for k, v in recipe.to_dict().items():
        if k != "sources":
            out[setting_name(k)] = v
    return out


def _check_run_dir(run_dir: Path, resume: bool, settings: dict) -> bool:
    """Refuse a run folder that is a file, lies under one or cannot be written; an existing run
    without --resume; a resume with other settings. Returns whether there is a run to resume: a
    checkpoint. A folder with command.json but no checkpoint holds a run that never finished an
    epoch: nothing to lose, so it is started afresh (the settings are compared only when there
    is a checkpoint to continue)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise CommandError(f"--run-dir {run_dir} is a file: give a folder (created if missing)")
    above = next(p for p in (run_dir, *run_dir.absolute().parents) if p.exists())
    if not above.is_dir():
        raise CommandError(f"--run-dir {run_dir} lies under the file {above}: give a folder "
                           "path (created if missing)")
    if not os.access(above, os.W_OK | os.X_OK):
        raise CommandError(f"--run-dir {run_dir}: {above} cannot be written to here: give "
                           "another --run-dir")
    if not (run_dir / CHECKPOINT).exists():
        return False
    if not resume:
        existing = [p for p in (CHECKPOINT, SETTINGS) if (run_dir / p).exists()]
        raise CommandError(f"{run_dir} holds an earlier run ({', '.join(existing)}): add --resume "
                           "to continue it, or give another --run-dir to start afresh")
    if not (run_dir / SETTINGS).exists():
        return True
    try:
        before = json.loads((run_dir / SETTINGS).read_text())
    except (OSError, ValueError) as err:
        raise CommandError(f"{run_dir / SETTINGS} cannot be read ({_one_line(err)}): give "
                           "another --run-dir") from None
    # a run started before a Recipe field existed had that field's old value
    before = {**{setting_name(k): json.loads(json.dumps(v))
                 for k, v in CHECKPOINT_DEFAULTS.items()}, **before}
    now = json.loads(json.dumps(settings))               # as command.json would hold them
    diff = [f"{k} {before.get(k)!r} then, {v!r} now" for k, v in now.items()
            if v != before.get(k)]
    if diff:
        raise CommandError(f"{run_dir} was started with other settings, so --resume cannot "
                           f"continue it: {'; '.join(diff)}. Resume with the same flags, or "
                           "give another --run-dir for the new settings")
    return True


def _environment_world() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment, before joining the group."""
    if distributed.launched_by_torchrun():
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def train(argv=None):
    """Parse ``argv``, check everything, train; returns (model, history). Bad input raises
    ``CommandError`` before anything is written. Under torchrun, joins (and at the end leaves)
    the process group, unless the caller has joined one already (then it uses that one)."""
    args = build_parser().parse_args(argv)
    if args.list_models:
        print("\n".join(list_models()))
        return None, None
    if args.model is None and args.freeze in list_models():
        args.model, args.freeze = args.freeze, ""     # "--freeze MODEL": the flag took the name
    if args.freeze is not None:                       # "fc, layer4" is "fc,layer4"
        args.freeze = ",".join(n.strip() for n in args.freeze.split(",") if n.strip())
    if args.model is None:
        raise CommandError(f"give a MODEL, e.g. {PROG} cifar_resnet20 ({PROG} --list-models)")
    if args.model not in list_models():
        close = difflib.get_close_matches(args.model, list_models(), n=3)
        raise CommandError(f"unknown model {args.model!r}"
                           + (f" (did you mean {', '.join(close)}?)" if close else "")
                           + f": {PROG} --list-models prints the {len(list_models())} "
                           "registered models")
    data_name, data_path = parse_data(args.data)
    if data_name == "imagefolder" and args.val_fraction is not None:
        raise CommandError("--val-fraction does not apply to an image folder: its train/ and "
                           "val/ folders give the split")
    if data_name != "imagefolder" and (args.image_size is not None or args.workers is not None):
        raise CommandError("--image-size and --workers apply to --data imagefolder:PATH only")
    model_kwargs = _model_kwargs(args.model_kwargs)
    official = None
    if args.pretrained:
        try:
            official = weights.pretrained_weights(args.model)
        except ValueError as err:
            raise CommandError(_one_line(err)) from None
        if runtime.OFFLINE:
            raise CommandError("--pretrained downloads torchvision's weights, and this run is "
                               "offline (IMAGENET5_OFFLINE=1)")
    mode = args.mode or ("smoke" if runtime.SMOKE else "quick" if runtime.QUICK else "full")
    recipe = build_recipe(args)
    already_joined = distributed.current().distributed
    world_size = (distributed.current() if already_joined else distributed.Context(
        world_size=_environment_world()[1])).world_size
    try:
        distributed.Context(world_size=world_size).batch_per_process(recipe.batch_size)
    except ValueError as err:
        raise CommandError(_one_line(err)) from None
    wants_cuda = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith(
        "cuda")
    if args.sync_bn and world_size > 1 and not wants_cuda:
        raise CommandError("--sync-bn needs CUDA GPUs (PyTorch's SyncBatchNorm has no CPU "
                           "kernels): leave it out on CPUs")
    suffix = "" if mode == "full" else f"-{mode}"
    run_dir = Path(args.run_dir).expanduser() if args.run_dir else runtime.runs_dir(
        f"{args.model}-{data_path.name if data_path else data_name}{suffix}")
    settings = settings_of(args, recipe, data_name, data_path, mode, world_size)
    resuming = _check_run_dir(run_dir, args.resume, settings)
    smoke, quick = mode == "smoke", mode == "quick"
    folder = None
    if data_path is not None:     # read the folder's file list (and its errors) once, here
        try:
            folder = cdata.load_data("imagefolder", root=data_path, smoke=smoke, quick=quick,
                                     crop_size=args.image_size or cdata.CROP_SIZE,
                                     workers=args.workers, device="cpu", verbose=False)
            _check_images(folder)
        except (ValueError, OSError) as err:
            raise CommandError(_one_line(err)) from None

    try:
        dist = distributed.setup(args.device)           # DDP: join torchrun's group, if any
    except ValueError as err:                           # refused before joining: no GPU, ...
        raise CommandError(_one_line(err)) from None
    try:
        dist.barrier()            # every process has checked the run folder: now rank 0 writes
        device = distributed.process_device(dist, args.device)
        if folder is not None:
            data = dataclasses.replace(folder, target_device=device)
            if dist.is_main:
                print(data)
                if data.note:
                    print(data.note)
        else:
            try:                      # rank 0 first: it may download into the shared folder
                data = dist.main_first(lambda: _load(data_name, args, device, smoke, quick,
                                                     dist.is_main))
            except (cdata.DataUnavailable, ValueError, OSError, distributed.ProcessFailed) as err:
                raise CommandError(_one_line(err) + (" (offline: --data digits)" if isinstance(
                    err, cdata.DataUnavailable) else "")) from None
        torch.manual_seed(args.seed)              # the same initial weights in every process
        try:
            model = _build_model(args, data, model_kwargs, official, dist.is_main)
            _check_transfer(args, recipe, model)
        except (TypeError, ValueError) as err:
            raise CommandError(_one_line(err)) from None
        if official is not None:
            data = _with_weights_statistics(data, official, dist.is_main)
        wrote = dist.is_main and not resuming
        if args.freeze is not None and not args.pretrained and dist.is_main:   # all checked
            print(f"{PROG}: warning: --freeze without --pretrained: the frozen parts keep their "
                  "random initial weights, so what trains learns on random features (add "
                  "--pretrained for ImageNet's weights)", file=sys.stderr)
        if dist.is_main:
            print(f"{PROG} {args.model} on {data.description}: run folder {run_dir}"
                  + (" (resuming)" if resuming else ""))
            if wrote and (run_dir / SETTINGS).exists():
                print(f"{run_dir} held only the settings of a run that never finished an epoch "
                      f"({SETTINGS}, no {CHECKPOINT}): starting afresh there with these")
            print(recipe.table())
            if wrote:
                runtime.atomic_write(run_dir / SETTINGS, json.dumps(settings, indent=1).encode())
        try:
            history = fit(model, data, recipe, run_dir=run_dir, resume=args.resume,
                          device=device, amp=args.amp, compile=args.compile, seed=args.seed,
                          stop_after_epochs=args.stop_after_epochs, smoke=smoke, quick=quick,
                          sync_bn=args.sync_bn, dist=dist)
        except BaseException as err:
            if wrote and not (run_dir / CHECKPOINT).exists():   # no epoch ended: leave nothing
                (run_dir / SETTINGS).unlink(missing_ok=True)
            if isinstance(err, (CheckpointError, FileExistsError)):
                raise CommandError(_one_line(err)) from None
            if _unreadable_image(err):
                raise CommandError(_unreadable_image(err)) from None
            raise
        if dist.is_main:
            print(f"history: {run_dir / HISTORY}; checkpoint: {run_dir / CHECKPOINT}")
        return model, history
    finally:
        if not already_joined:
            distributed.teardown()


def _build_model(args, data, model_kwargs, official, verbose):
    """The registered model; with --pretrained, ImageNet's weights (``official``) loaded strictly
    and a new head for the data's classes; with --freeze, only the named parts trainable."""
    if official is None:
        model = get_model(args.model, num_classes=data.num_classes, **model_kwargs)
    else:
        model = get_model(args.model, **model_kwargs)
        try:
            weights.load_official_weights(model, official, missing_ok=False)
        except weights.WeightsUnavailable as err:
            raise ValueError(f"--pretrained: {err}") from None
        transfer.replace_head(model, data.num_classes)
    if args.freeze is not None:
        names = [n for n in args.freeze.split(",") if n] or None
        try:
            left = transfer.freeze(model, trainable=names)
        except ValueError as err:                   # "freeze: ..." -> "--freeze: ..."
            raise ValueError(f"--{err}" if str(err).startswith("freeze: ") else
                             f"--freeze: {err}") from None
        if verbose:
            print(f"--freeze: {count_params(model, trainable_only=True):,} of "
                  f"{count_params(model):,} parameters trainable ({len(left)} tensors)")
    return model


def _check_transfer(args, recipe, model) -> None:
    """--lr-scales against the model and --freeze, before anything is written: every part must
    exist and hold parameters, none may be frozen (its scale would change nothing), and
    something must be left to train."""
    try:
        check_lr_scales(model, recipe.lr_scales)
    except ValueError as err:
        raise ValueError(f"--lr-scales: {err}") from None
    frozen = frozen_lr_scales(model, recipe.lr_scales)
    if frozen:
        raise ValueError(f"--lr-scales names {', '.join(frozen)}, which --freeze leaves frozen: "
                         "a frozen part never enters the optimizer, so its scale would change "
                         "nothing. Drop it from --lr-scales, or add it to --freeze")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("--freeze leaves no parameter to train: name a part that holds "
                         f"parameters ({', '.join(transfer.parts(model))})")


#: The first bytes of the image files PIL decodes for the folder pipeline: JPEG, PNG.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def _not_an_image(path: str) -> bool:
    """Whether the file at ``path`` is not an image: its first bytes are neither JPEG's nor
    PNG's, and PIL cannot identify it either (it reads the header only, decodes nothing)."""
    with open(path, "rb") as f:
        if f.read(8).startswith(_SIGNATURES):
            return False
    from PIL import Image  # optional here: only a file of another format needs it

    try:
        with Image.open(path):
            return False
    except OSError:                       # PIL's UnidentifiedImageError is an OSError
        return True


def _check_images(folder) -> None:
    """Every image file of the splits in use must be one (a text file named x.jpg is not):
    its first bytes are read, in a few threads, before anything is written or trained."""
    paths = sorted({p for split in (folder.train, folder.val, folder.test) for p in split.paths})
    chunks = [paths[i::8] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        bad = [p for found in pool.map(lambda c: next(filter(_not_an_image, c), None), chunks)
               for p in [found] if p is not None]
    if bad:
        raise ValueError(f"{min(bad)} is not an image (neither JPEG nor PNG, and PIL cannot "
                         "identify it): replace the file or remove it from the folder")


def _unreadable_image(err: BaseException) -> str | None:
    """The one line of an image file that could not be decoded while training (raised by the
    folder pipeline, through a DataLoader worker or not); None for any other error."""
    if not isinstance(err, ValueError):
        return None
    return next((line.removeprefix("ValueError: ").strip()
                 for line in reversed(str(err).splitlines())
                 if "cannot be read as an image" in line), None)


def _speaks() -> bool:
    """Whether this process prints (rank 0 under torchrun, before or after joining)."""
    return distributed.current().is_main and _environment_world()[0] == 0


def _with_weights_statistics(data, official, verbose):
    """The data normalised with the statistics the weights were trained with."""
    t = official.transforms()
    if verbose and data.mean.tolist() != list(t.mean):
        print(f"--pretrained: inputs normalised with the weights' mean {t.mean} and std {t.std}, "
              "not the data's own")
    return cdata.with_statistics(data, t.mean, t.std)


def _load(name, args, device, smoke, quick, verbose):
    val_fraction = cdata.VAL_FRACTION if args.val_fraction is None else args.val_fraction
    return cdata.load_data(name, device=device, fallback=False, val_fraction=val_fraction,
                           smoke=smoke, quick=quick, verbose=verbose)


def main(argv=None) -> int:
    """The command: 0 when the run finished (or stopped as asked), 2 for bad input, which is one
    line on stderr (from rank 0 only, under torchrun)."""
    try:
        train(argv)
    except CommandError as err:
        if _speaks():
            print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":           # python -m common.train ...
    raise SystemExit(main())
