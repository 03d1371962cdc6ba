"""DistributedDataParallel on CPUs: 2 processes with gloo under torchrun, the tiny model on the
offline digits, one thread per process (as CI runs them: network cut, loopback up).

Two torchrun launches in all (starting processes is the slow part): the first runs
tests/_train_helpers.py (a straight run, the same run stopped after one epoch, a model without
batch norm, an image folder), the second resumes the stopped run with the command itself,
``torchrun -m common.train ... --resume``, in fresh processes. The one-process runs they are
compared with run here, in the test process.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import common
from common import cli, distributed
from common import train as ctrain
from common.models import registry

sys.path.insert(0, str(Path(__file__).parent))
import _train_helpers as worker  # noqa: E402
from _train_helpers import one_thread_per_test, write_folder  # noqa: E402,F401

ROOT = Path(__file__).resolve().parent.parent


def torchrun(*args, timeout=300):
    """``torchrun --standalone --nproc_per_node=2 ARGS`` with one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           *map(str, args)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    errors = "".join(line for line in done.stderr.splitlines(keepends=True)
                     if "socket.cpp" not in line and "step/s" not in line)  # not noise, bars
    assert done.returncode == 0, done.stdout[-2000:] + errors[-8000:]
    return done


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The two launches; returns OUT, with OUT/epoch1.pt a copy of the stopped run's
    checkpoint after its first epoch (before the second launch resumes it)."""
    out = tmp_path_factory.mktemp("ddp")
    folder = write_folder(out / "images")
    first = torchrun("tests/_train_helpers.py", out, folder)
    shutil.copy(out / "stopped" / ctrain.CHECKPOINT, out / "epoch1.pt")
    second = torchrun("-m", "common.train", *worker.RUN, "--run-dir", out / "stopped",
                      "--resume")
    (out / "first.txt").write_text(first.stdout)
    (out / "second.txt").write_text(second.stdout)
    return out


def weights(path):
    state = torch.load(path, weights_only=True)
    return state["model"] if "model" in state else state


def one_process(tmp_path, argv):
    """The same command in this process, without DDP: (model, history)."""
    return cli.train(argv + ["--run-dir", str(tmp_path)])


def distance(a, b, keys):
    return sum((a[k].double() - b[k].double()).pow(2).sum() for k in keys).sqrt().item()


def test_both_processes_end_with_identical_weights_and_rank0_wrote_the_run(runs):
    for name in ("straight", "nobn", "folder"):
        r0, r1 = weights(runs / f"{name}-rank0.pt"), weights(runs / f"{name}-rank1.pt")
        for k in r0:                  # parameters and batch-norm statistics, bit for bit
            assert torch.equal(r0[k], r1[k]), (name, k)
    saved = weights(runs / "straight" / ctrain.CHECKPOINT)
    for k, v in weights(runs / "straight-rank0.pt").items():
        assert torch.equal(saved[k], v), k
    h = json.loads((runs / "straight" / ctrain.HISTORY).read_text())
    assert h["world_size"] == 2 and h["batch_per_process"] == 32 and h["epoch"] == [1, 2]
    assert not list(runs.glob("straight/*.tmp"))
    text = (runs / "first.txt").read_text()
    assert "global batch 64 = 2 x 32 per process; lr 0.2 is for the global batch" in text
    assert text.count("DistributedDataParallel: 2 processes (gloo)") == 4   # rank 0 only


def test_the_loss_falls_under_ddp(runs):
    h = json.loads((runs / "straight" / ctrain.HISTORY).read_text())
    assert h["train_loss"][-1] < 0.95 * h["train_loss"][0], h["train_loss"]
    assert h["val_loss"][-1] < h["val_loss"][0], h["val_loss"]


def test_the_numbers_kept_are_the_whole_splits_not_one_process_share(runs):
    """Under DDP each process evaluates its half of the validation split and the sums are added
    up: the history's last val numbers are those of the whole split, as one process computes
    them from the saved weights."""
    model = common.get_model("cifar_baseline", num_classes=10, **json.loads(worker.TINY))
    model.load_state_dict(weights(runs / "straight" / ctrain.CHECKPOINT))
    data = common.load_data("digits", smoke=False, device="cpu", verbose=False)
    whole = common.evaluate(model, data, "val", amp=False)
    h = json.loads((runs / "straight" / ctrain.HISTORY).read_text())
    assert h["val_acc"][-1] == whole["acc"]
    assert h["val_loss"][-1] == pytest.approx(whole["loss"], rel=1e-5)


def test_stopped_and_resumed_under_torchrun_equals_the_straight_run(runs):
    straight, resumed = weights(runs / "straight" / ctrain.CHECKPOINT), weights(
        runs / "stopped" / ctrain.CHECKPOINT)
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k
    a = json.loads((runs / "straight" / ctrain.HISTORY).read_text())
    b = json.loads((runs / "stopped" / ctrain.HISTORY).read_text())
    for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert a[k] == b[k], k
    assert "resuming from" in (runs / "second.txt").read_text()
    ranks = ctrain.load_checkpoint(runs / "stopped" / ctrain.CHECKPOINT)["rng"]["ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])


def test_two_processes_are_close_to_one_with_the_same_global_batch(runs, tmp_path):
    """After one epoch, 2 processes x 32 against 1 process x 64 (the same images, order and
    augmentation), measured against what another order of the same data does to one process.
    Not equal: each process normalises its 32 images with their own batch statistics, one
    process the 64 together (SyncBatchNorm would use the 64's: GPUs only, not run here), and
    the running statistics come from rank 0's pieces. Without batch norm only float rounding
    is left (the next test)."""
    model, _ = one_process(tmp_path / "one", worker.RUN + ["--stop-after-epochs", "1"])
    one, two = model.state_dict(), weights(runs / "epoch1.pt")
    args = cli.build_parser().parse_args(worker.RUN)
    torch.manual_seed(0)
    other = common.get_model("cifar_baseline", num_classes=10, **json.loads(worker.TINY))
    common.fit(other, common.load_data("digits", smoke=False, device="cpu", verbose=False),
                   cli.build_recipe(args), seed=1, amp=False, stop_after_epochs=1, smoke=False,
                   quick=False, verbose=False, progress=False)
    params = [k for k, _ in model.named_parameters()]
    apart = distance(one, two, params)
    another_order = distance(one, other.state_dict(), params)
    print(f"2 processes vs 1: {apart:.3f}; another order vs 1: {another_order:.3f}")
    assert 0 < apart < 0.5 * another_order, (apart, another_order)


def test_without_batch_norm_two_processes_follow_one_up_to_rounding(runs, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setitem(registry._CARDS, "tiny_nobn",
                        registry.ModelCard("tiny_nobn", worker.tiny_nobn))
    model, _ = one_process(tmp_path / "one", worker.NOBN)
    one, two = model.state_dict(), weights(runs / "nobn-rank0.pt")
    torch.manual_seed(0)
    start = worker.tiny_nobn().state_dict()
    moved = distance(one, start, list(one))
    apart = distance(one, two, list(one))
    print(f"without batch norm, 2 processes vs 1: {apart:.2e}; one epoch moved {moved:.3f}")
    assert moved > 0.1 and apart < 1e-4 * moved, (apart, moved)


def test_an_image_folder_trains_under_ddp(runs):
    h = json.loads((runs / "folder" / ctrain.HISTORY).read_text())
    assert h["world_size"] == 2 and h["batch_per_process"] == 4
    assert h["dataset"].startswith("imagefolder:images [32px crops]")
    assert all(v == v for v in h["train_loss"] + h["val_loss"])      # finite, not NaN


def test_shard_slice_cuts_every_batch_into_pieces_that_make_it_whole():
    for n in (0, 1, 5, 64, 65):
        for world in (1, 2, 3, 8):
            pieces = [range(n)[distributed.shard_slice(n, r, world)] for r in range(world)]
            assert [i for p in pieces for i in p] == list(range(n))
            assert max(map(len, pieces)) - min(map(len, pieces)) <= 1


def test_shards_of_a_bundle_are_the_whole_batches_with_the_same_augmentation():
    data = common.load_data("digits", smoke=True, device="cpu", verbose=False)

    def epoch(shard):
        g = torch.Generator().manual_seed(7)
        return list(data.batches("train", 64, shuffle=True, augment=True, generator=g,
                                 drop_last=True, shard=shard))

    whole, r0, r1 = epoch((0, 1)), epoch((0, 2)), epoch((1, 2))
    assert len(whole) == len(r0) == len(r1) == 8
    for (x, y), (x0, y0), (x1, y1) in zip(whole, r0, r1):
        assert len(y0) == len(y1) == 32
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)


def test_a_global_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(ValueError, match="does not split evenly over 3 processes"):
        distributed.Context(rank=0, world_size=3).batch_per_process(64)
    assert distributed.Context(world_size=4).batch_per_process(256) == 64


def test_sync_bn_on_cpu_processes_is_refused_before_any_step(tmp_path):
    """SyncBatchNorm has no CPU kernels: fit says so before it trains or writes anything (the
    conversion itself, on GPUs, is not run here)."""
    data = common.load_data("digits", smoke=True, device="cpu", verbose=False)
    model = common.get_model("cifar_baseline", num_classes=10, **json.loads(worker.TINY))
    gloo = distributed.Context(rank=0, world_size=2, backend="gloo")
    with pytest.raises(ValueError, match="SyncBatchNorm runs on CUDA GPUs only"):
        common.fit(model, data, common.Recipe(epochs=1, batch_size=64), run_dir=tmp_path,
                   device="cpu", sync_bn=True, dist=gloo, verbose=False)
    assert not any(tmp_path.iterdir())
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
