"""Training on several GPUs (or several CPU processes) with PyTorch's own engine:
``torchrun`` starts the processes, ``torch.distributed`` connects them, ``DistributedDataParallel``
(DDP) keeps their models identical.

    torchrun --standalone --nproc_per_node=4 -m common.train cifar_resnet20 --data cifar10

What data parallelism adds to ``common.fit`` (each line of ``common/train/`` that does it
is marked ``# DDP:``), and nothing else changes:

1. One process per GPU. ``torchrun`` starts them and gives each its ``RANK`` (0..N-1), its
   ``LOCAL_RANK`` (its GPU on this machine) and the ``WORLD_SIZE`` N; ``setup()`` joins them into
   one process group: NCCL between GPUs, gloo between CPU processes.
2. Each process holds the whole data set on its own device (as a single process does) and draws
   the same shuffled order and the same augmentation for the epoch: both depend only on
   (seed, epoch). Every global batch is cut into N equal pieces and process r trains on piece r
   (``shard_slice``). The N pieces together are exactly the batch one process would train on.
3. ``DistributedDataParallel`` wraps the model. It copies rank 0's weights to every process at
   the start and, during ``backward()``, averages the gradients of all processes (an all-reduce,
   overlapped with the backward pass). Every process then takes the same optimizer step from the
   same gradient, so the weights stay identical without ever being sent again.
4. The epoch's sums (loss, correct answers, images) are added up over the processes, so the
   numbers printed and kept are those of the whole global batch and the whole validation split.
5. Only rank 0 prints, and writes the checkpoint and history (atomically, as always).

Conventions, chosen so that a recipe means the same on 1, 2 or 8 GPUs:

- ``Recipe.batch_size`` is the GLOBAL batch, the mini-batch the paper states (He et al. 2015,
  section 4.2: "a minibatch size of 128 on two GPUs", i.e. 64 per GPU). Each of N processes
  trains on batch_size / N images per step (it must divide evenly).
- ``Recipe.lr`` is the learning rate for that global batch: the number of GPUs never changes it.
  Only a different global batch does, and only when you say so (``python -m common.train``
  scales its default lr linearly with ``--batch-size``: Goyal et al. 2017's linear scaling rule).
- Batch norm normalises each process's piece with the piece's own statistics (the usual
  data-parallel practice), so N processes are close to, not equal to, one process with the same
  global batch; ``sync_bn=True`` (SyncBatchNorm, GPUs only) uses the global batch's statistics.
  DDP copies rank 0's running statistics to every process before each forward pass; ``fit`` also
  copies them at the end of each epoch, so that every process holds the model the checkpoint
  saves.
- Dropout: process r seeds its random generator with seed + r, so the processes draw different
  masks; the checkpoint keeps every process's generator, so a resumed run continues exactly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist
from torch import nn

from common.runtime import pick_device

#: What ``torchrun`` puts in each process's environment.
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def shard_slice(n: int, rank: int, world_size: int) -> slice:
    """The positions of process ``rank``'s piece of a batch of ``n``: ``world_size`` contiguous
    pieces in rank order, as equal as they can be (the first ``n % world_size`` one longer), which
    together are the whole batch. A global batch divisible by the world size gives equal pieces."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


class ProcessFailed(RuntimeError):
    """Raised in the other processes when rank 0 failed at a step they wait for."""


@dataclass(frozen=True)
class Context:
    """Which process this is among how many. ``Context()`` is a single process: every method is
    then a no-op, so ``fit`` runs the same code with or without DDP."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints and writes files."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, world_size): what ``DataBundle.batches(..., shard=...)`` takes."""
        return self.rank, self.world_size

    @property
    def device(self) -> torch.device:
        """Where this process's tensors for collective operations live (NCCL needs CUDA)."""
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def batch_per_process(self, batch_size: int) -> int:
        """The per-GPU batch of a global ``batch_size``; it must divide evenly."""
        if batch_size % self.world_size:
            raise ValueError(
                f"The global batch {batch_size} does not split evenly over {self.world_size} "
                f"processes: choose a batch size divisible by {self.world_size} (e.g. "
                f"{max(1, round(batch_size / self.world_size)) * self.world_size}), or another "
                "number of processes.")
        return batch_size // self.world_size

    def sum_over_processes(self, *values) -> list[float]:
        """Each value (a number or a one-element tensor) added up over all processes, as Python
        floats (exact for counts below 2**53). One process: the values themselves."""
        numbers = [float(v) for v in values]
        if not self.distributed:
            return numbers
        t = torch.tensor(numbers, dtype=torch.float64, device=self.device)
        tdist.all_reduce(t)
        return t.tolist()

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model to train: wrapped in ``DistributedDataParallel`` when there are several
        processes (it broadcasts rank 0's weights now and averages gradients in backward), the
        model itself otherwise. The wrapper shares the model's parameters: train through it,
        save and evaluate the model itself."""
        if not self.distributed:
            return model
        ids = [self.local_rank] if self.backend == "nccl" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def sync_buffers(self, model: nn.Module) -> None:
        """Copy rank 0's buffers (batch-norm running statistics) to every process."""
        if self.distributed:
            for b in model.buffers():
                tdist.broadcast(b, src=0)

    def gather(self, obj) -> list:
        """Every process's ``obj`` (any picklable object), in rank order, on every process."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def main_first(self, fn):
        """``fn()`` in rank 0, then in the other processes (e.g. a download into a folder they
        share). If it fails in rank 0, it raises there, and ``ProcessFailed`` in the others."""
        if not self.distributed:
            return fn()
        error = None
        if self.is_main:
            try:
                result = fn()
            except Exception as err:                       # noqa: BLE001 (re-raised below)
                error = err
        failed = self.gather(error is not None)[0]
        if error is not None:
            raise error
        if failed:
            raise ProcessFailed("rank 0 failed; it says why")
        return result if self.is_main else fn()

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.distributed:
            tdist.barrier()


def launched_by_torchrun(env=os.environ) -> bool:
    """Whether this process was started by ``torchrun`` (or another launcher that sets its
    variables), as one of a group to join."""
    return all(k in env for k in TORCHRUN_VARIABLES)


def current() -> Context:
    """The context of the process group this process has joined; a single process if none."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return Context()
    rank = tdist.get_rank()
    return Context(rank=rank, world_size=tdist.get_world_size(),
                   local_rank=int(os.environ.get("LOCAL_RANK", rank)),
                   backend=str(tdist.get_backend()))


def setup(device: str | torch.device | None = None, env=os.environ) -> Context:
    """Join the process group ``torchrun`` started this process in, on ``device``'s backend
    (default: CUDA when there is a GPU, so NCCL; else gloo), and pin this process to GPU
    ``LOCAL_RANK``. Not started by torchrun: a single-process ``Context()``. Already joined
    (the caller made the group): that group's context."""
    if tdist.is_available() and tdist.is_initialized():
        return current()
    if not launched_by_torchrun(env):
        return Context()
    local_rank = int(env["LOCAL_RANK"])
    kind = torch.device(device).type if device is not None else (
        "cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda":
        gpus = torch.cuda.device_count()
        if gpus == 0:
            raise ValueError("--device cuda, but this machine has no CUDA GPU that PyTorch can "
                             "use: leave --device out to train on the CPUs (gloo).")
        if local_rank >= gpus:
            raise ValueError(
                f"torchrun started more processes on this machine than it has GPUs ({gpus}): "
                f"use --nproc_per_node={gpus} (one process per GPU).")
        torch.cuda.set_device(local_rank)
        tdist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    elif kind == "cpu":
        tdist.init_process_group("gloo")
    else:
        raise ValueError(f"DistributedDataParallel here runs on CUDA GPUs (NCCL) or CPUs (gloo), "
                         f"not on {kind!r}: pass --device cuda or --device cpu.")
    return current()


def process_device(ctx: Context, device: str | torch.device | None = None) -> torch.device:
    """The device this process trains on: its own GPU (``cuda:LOCAL_RANK``) under NCCL, the CPU
    under gloo, else (one process) ``device`` or the best one available (``pick_device``)."""
    if ctx.backend == "nccl":
        return torch.device("cuda", ctx.local_rank)
    if ctx.backend == "gloo":
        return torch.device("cpu")
    return pick_device(device)


def teardown() -> None:
    """Leave the process group, if this process is in one."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()
