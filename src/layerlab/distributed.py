"""Training on several processes or machines: DistributedDataParallel under ``torchrun``.

``torchrun`` starts one process per device and tells each who it is through the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); :func:`context` reads
it. Everything here is a no-op outside torchrun, so the single-process path is untouched.

The rules the rest of layerlab follows (see README, "Training on several processes or machines"):

- ``--batch-size`` is the global batch: each step every rank takes its contiguous slice of the same
  (seed, epoch) batch, so the union of the shards of a step is the single-process batch (the batch
  source gives each rank its share: :meth:`layerlab.training.sources.BatchSource.epoch`);
- rank 0 alone writes the run directory; the others never open it, and get what rank 0 read from it
  (config, training state; weights come with DDP's first broadcast) through :func:`from_main`;
- every rank evaluates the whole held-out split itself, so every rank takes the same decisions
  (best weights, NaN stop, early stopping) with no further communication.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .errors import ConfigError, DataError, LayerlabError


@dataclass(frozen=True)
class DistContext:
    """Who this process is in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context() -> DistContext | None:
    """This process's place in a torchrun job with more than one process, or None (a plain run:
    torchrun with one process is a plain run too, so it writes its run directory as any other)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1 or "RANK" not in os.environ:
        return None
    return DistContext(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0") or 0))


def is_main_process() -> bool:
    """True outside torchrun and on rank 0: the one process that writes and prints."""
    ctx = context()
    return ctx is None or ctx.is_main


def start(ctx: DistContext) -> None:
    """Join the process group: gloo, and NCCL beside it for CUDA tensors where there is a GPU.
    Both at once because a resumed run's device is known only once rank 0 has read its config,
    and the reading is shared through the group (gloo carries those objects, on the CPU)."""
    if not dist.is_initialized():
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")


def rank_device(ctx: DistContext, device: torch.device) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` on a GPU node (one process per GPU), else ``device``."""
    if device.type != "cuda":
        return device
    if ctx.local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"torchrun started local rank {ctx.local_rank} but this machine has {torch.cuda.device_count()} "
            f"GPU(s); use --nproc_per_node {torch.cuda.device_count()} or fewer"
        )
    device = torch.device("cuda", ctx.local_rank)
    torch.cuda.set_device(device)
    return device


def stop(finished: bool = False) -> None:
    """Leave the process group (at the end of train or resume, however it ended).

    ``finished``: every rank got here through the same, successful end, so they meet at a barrier
    first. Without it the first rank to leave tears its gloo connections down while a slower rank may
    still be sending on them (its last collective or DDP's pending work), and gloo's worker threads
    then abort that rank's process at exit ("terminate called without an active exception") after a
    run that completed. After a failure there is no barrier: the other ranks may never reach it."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if finished:
        dist.barrier()
    dist.destroy_process_group()


def backend_for(device: torch.device) -> str:
    """The backend that carries this run's gradients."""
    return "nccl" if device.type == "cuda" else "gloo"


def from_main(ctx: DistContext, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 only and give its result to every rank; when it raises a LayerlabError
    every rank raises the same sentence, so a bad run directory stops the whole job cleanly instead
    of leaving the other ranks waiting in a collective."""
    box: list[Any] = [None]
    result = None
    if ctx.is_main:
        try:
            result = fn()
            box[0] = ("ok", result)
        except LayerlabError as e:
            box[0] = ("error", (type(e), str(e)))
            dist.broadcast_object_list(box, src=0)
            raise
        except BaseException as e:  # a bug or an interrupt: the others must not wait forever
            box[0] = ("error", (LayerlabError, f"rank 0 failed: {e}"))
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        error_type, message = value
        raise error_type(message)
    return result if ctx.is_main else value


def gather(obj) -> list:
    """``obj`` of every rank, in rank order."""
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def record(ctx: DistContext, device: torch.device, fingerprint: dict) -> dict:
    """What run.json records of the job (``world_size``, ``backend``, ``devices``: ``host/device`` of
    each rank in rank order); an error on every rank when a rank reads other data than rank 0
    (each node loads its own copy, and a stale one would train silently on something else)."""
    ranks = gather((f"{platform.node()}/{device}", {k: v["sha256"] for k, v in fingerprint.items()}))
    for r, (where, fp) in enumerate(ranks):
        if fp != ranks[0][1]:
            raise DataError(
                f"rank {r} ({where}) reads other data than rank 0 ({ranks[0][0]}); give every node the same data"
            )
    return {"world_size": ctx.world_size, "backend": backend_for(device), "devices": [w for w, _ in ranks]}


def check_batch(batch_size: int, n_train: int, world_size: int) -> None:
    """The global batch must split evenly over the ranks; the epoch's last (smaller) batch may not,
    but each rank needs one sample of it at least."""
    if batch_size % world_size:
        raise ConfigError(
            f"--batch-size {batch_size} is the global batch and must be divisible by the {world_size} processes; "
            f"use a multiple of {world_size}"
        )
    rest = n_train % batch_size
    if rest and rest < world_size:
        raise ConfigError(
            f"the last batch of an epoch holds {rest} of the {n_train} training samples, fewer than the "
            f"{world_size} processes; choose a --batch-size that leaves none or at least {world_size}"
        )


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` under DistributedDataParallel (its construction broadcasts rank 0's weights)."""
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over all ranks, as a new tensor (``t`` itself stays this rank's)."""
    out = t.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out
