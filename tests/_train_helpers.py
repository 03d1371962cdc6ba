"""Helpers of tests/test_cli.py, test_distributed.py and test_imagefolder.py (not a test file).

Run by ``torchrun``, it is the worker of test_distributed.py: several runs of the command under
DistributedDataParallel in one launch, since starting processes is the slow part.

    torchrun --standalone --nproc_per_node=2 tests/_train_helpers.py OUT [IMAGE_FOLDER]

It joins the process group itself, so ``common.cli.train`` uses that group (and leaves it
open) for every run. Writes under OUT: straight/ (2 epochs) and each rank's final weights,
stopped/ (the same run stopped after epoch 1: the test resumes it with a fresh torchrun),
nobn/ (a model without batch norm, 1 epoch), folder/ (an image folder, 1 epoch) and each
rank's weights of those.
"""
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as tdist
from torch import nn

from common import cli
from common.models import registry
from common.models.baseline import BaselineCNN

#: The command's flags shared by the tests: the tiny model on the offline digits, fp32.
TINY = '{"widths": [16, 32, 64], "convs_per_stage": 1}'
RUN = ["cifar_baseline", "--model-kwargs", TINY, "--data", "digits", "--mode", "full",
       "--epochs", "2", "--batch-size", "64", "--lr", "0.2", "--schedule", "cosine", "--no-amp"]
NOBN = ["tiny_nobn", "--data", "digits", "--mode", "full", "--epochs", "2", "--batch-size", "64",
        "--lr", "0.05", "--schedule", "constant", "--no-amp", "--stop-after-epochs", "1"]


@pytest.fixture(autouse=True)
def one_thread_per_test():
    """Every test of a module that imports this fixture runs with one thread, as each process of
    the torchrun launches does. (Two threads on a busy 2-core machine can make these tiny runs
    thirty times slower: the threads wait for each other.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_folder(root: Path, classes=("a", "b"), per_class=(6, 3), ext=".png") -> Path:
    """A tiny ImageFolder: root/{train,val}/<class>/<i><ext>, random pixels of several sizes,
    one colour channel at 255 marking the class (so a model can learn it)."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, n in zip(("train", "val"), per_class):
        for k, c in enumerate(classes):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                h, w = 24 + 4 * i, 40 - 2 * i
                pixels = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
                pixels[..., k % 3] = 255
                Image.fromarray(pixels.numpy()).save(root / split / c / f"{i}{ext}")
    return root


def tiny_nobn(num_classes: int = 10) -> nn.Module:
    """The tiny baseline CNN without its batch norms: nothing in it depends on how a batch is
    split among processes, so N processes must follow one process up to float rounding."""
    model = BaselineCNN(widths=(16, 32, 64), convs_per_stage=1, num_classes=num_classes)
    for block in model.features:
        if isinstance(block, nn.Sequential):
            block[1] = nn.Identity()
    return model


def main(out: Path, folder: str | None) -> None:
    torch.set_num_threads(1)
    tdist.init_process_group("gloo")
    rank = tdist.get_rank()
    registry.register_model("tiny_nobn")(tiny_nobn)
    runs = {"straight": RUN,
            "stopped": RUN + ["--stop-after-epochs", "1"],
            "nobn": NOBN}
    if folder:
        runs["folder"] = ["cifar_baseline", "--model-kwargs", TINY, "--data",
                          f"imagefolder:{folder}", "--image-size", "32", "--workers", "1",
                          "--epochs", "1", "--batch-size", "8", "--lr", "0.05", "--no-amp"]
    for name, argv in runs.items():
        model, _ = cli.train(argv + ["--run-dir", str(out / name)])
        torch.save(model.state_dict(), out / f"{name}-rank{rank}.pt")
    tdist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
