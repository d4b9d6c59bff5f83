"""Where training, evaluation and DDP read batches from: the :class:`BatchSource` protocol.

The loop never knows where batches come from. It asks a source for an epoch's batches for a
(seed, epoch, rank, world size), optionally from a position inside the epoch (a mid-epoch resume
skips the batches already trained), and for the held-out samples in order, each exactly once. A
source also says how many samples and steps it has (when it knows) and gives a fingerprint of its
content that a resumed run compares with the one it recorded.

:class:`TensorSource` is the in-memory implementation and the fast path for data that fits in
memory: the split's tensors on the training device, a batch an index slice of them (no
DataLoader, no copy per sample). Streamed sources (files decoded by worker processes, packed
shards) implement the same protocol.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol, runtime_checkable

import torch

from ..data import Split, batch_indices, num_batches


class Step(tuple):
    """One training step's data on this rank: ``batch``, this rank's samples of the step, and
    ``size``, the step's samples over all ranks (the global batch; DDP weighs an uneven last
    batch's gradients by it). It unpacks as ``(batch, size)``; ``index`` (or None) holds the
    batch's sample indices in the source, by which augmentation draws its numbers."""

    def __new__(cls, batch: Split, size: int, index: torch.Tensor | None = None):
        self = super().__new__(cls, (batch, size))
        self.index = index  # type: ignore[method-assign,assignment]  # (shadows tuple.index)
        return self

    batch = property(lambda self: self[0])
    size = property(lambda self: self[1])


class Chunk(NamedTuple):
    """A batch of held-out samples and where they are in the source: ``index``, their positions,
    or None for the samples right after the previous chunk's (in order)."""

    batch: Split
    index: torch.Tensor | None  # type: ignore[assignment]  # (shadows tuple.index)


@runtime_checkable
class BatchSource(Protocol):
    """What the training loop, evaluation and DDP read batches from."""

    def __len__(self) -> int:
        """Samples in the source (a source that cannot know may raise ``TypeError``)."""
        ...

    def steps(self, batch_size: int) -> int:
        """Steps of one epoch in batches of ``batch_size`` (the schedule is laid over them)."""
        ...

    def epoch(
        self, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1, start: int = 0
    ) -> Iterator[Step]:
        """Epoch ``epoch`` (0-based) of training, in the order (``seed``, ``epoch``) gives, whatever
        ``world_size``: this rank's share of each global batch of ``batch_size``, from step ``start``
        (the first ``start`` batches are skipped, not read)."""
        ...

    def ordered(self, batch_size: int, *, rank: int = 0, world_size: int = 1) -> Iterator[Chunk]:
        """The samples for evaluation, unshuffled: this rank's share, so that over all ranks every
        sample comes exactly once."""
        ...

    def fingerprint(self) -> dict:
        """``n``, ``x_shape``, ``y_shape`` and ``sha256``: what a resumed run checks it reads the
        same data; a source may hash less than every byte if it keeps the hash beside the data."""
        ...


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffle order of an epoch depends only on (seed, epoch): resuming reproduces it exactly."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def tensor_fingerprint(split: Split) -> dict:
    """Size, shapes and a sha256 of one split's tensors (x, y, lengths and sizes): what resume checks."""
    h = hashlib.sha256()
    for t in (split.x, split.y, split.lengths, split.sizes):
        if t is not None:
            h.update(str((tuple(t.shape), str(t.dtype))).encode())
            h.update(t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return {
        "n": len(split),
        "x_shape": list(split.x.shape[1:]),
        "y_shape": list(split.y.shape[1:]),
        "sha256": h.hexdigest(),
    }


def tail_floor(batch_size: int) -> int:
    """The smallest batch a model with batch norm trains on: 2, or an eighth of ``batch_size`` when
    that is more, never more than ``batch_size`` (``--batch-size 1`` is the user's to choose)."""
    return min(batch_size, max(2, batch_size // 8))


def merge_small_batches(
    batches: list[torch.Tensor], min_batch: int, group: Callable[[torch.Tensor], object] | None = None
) -> list[torch.Tensor]:
    """``batches`` (index tensors of an epoch, in its order) with each batch of fewer than
    ``min_batch`` samples merged into the nearest batch of the same group before it (after it when
    none is before), or dropped when its group has no other batch. ``group(batch)`` keys batches
    that may be joined (one sample size, for size-bucketed batches); None: all may. The result is a
    function of ``batches`` alone, so an epoch's order stays what (seed, epoch) makes it, and a
    resumed run skips the same steps.

    Why: batch norm normalises a training batch by its own statistics, and a batch of one sample
    (a dataset's remainder, the last image of an odd size) raises in torch (``BatchNorm1d`` on
    ``(1, C)``) or trains on statistics of one sample, a step that pulls the running averages away."""
    if min_batch <= 1 or not any(len(b) < min_batch for b in batches):
        return batches
    keys = [group(b) if group is not None else None for b in batches]
    out: list[torch.Tensor | None] = list(batches)
    for i in reversed(range(len(out))):
        b = out[i]
        if b is None or len(b) >= min_batch:
            continue
        out[i] = None
        before = (j for j in range(i - 1, -1, -1) if out[j] is not None and keys[j] == keys[i])
        after = (j for j in range(i + 1, len(out)) if out[j] is not None and keys[j] == keys[i])
        j = next(before, None)
        j = next(after, None) if j is None else j
        joined = out[j] if j is not None else None
        if j is not None and joined is not None:
            out[j] = torch.cat([joined, b])
    return [b for b in out if b is not None]


def with_min_batch(source: BatchSource, min_batch: int) -> BatchSource:
    """A copy of ``source`` whose training epochs have no batch of fewer than ``min_batch`` samples
    (:func:`merge_small_batches`); a source that does not take it (one of the user's) as it is."""
    if min_batch <= 1 or not hasattr(type(source), "min_batch"):
        return source
    out = copy.copy(source)
    setattr(out, "min_batch", min_batch)  # noqa: B010 (an attribute of the sources that declare it, not of the protocol)
    return out


class TensorSource:
    """A :class:`Split` in memory as a batch source: batches are index slices of its tensors (kept
    on the device they are on: :func:`as_source` moves them to the training device once).

    Each epoch is :func:`~layerlab.data.batch_indices` shuffled by :func:`epoch_generator`; a rank
    takes its contiguous slice of each batch (``torch.tensor_split``), so the union of the ranks'
    slices of a step is the single-process batch of that step."""

    #: no training batch smaller than this (:func:`with_min_batch`: set for a model with batch norm)
    min_batch = 1

    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def steps(self, batch_size: int) -> int:
        if self.min_batch > 1:  # merging depends on how many samples each size has, not on their order
            return len(self._batches(batch_indices(self.split, batch_size)))
        return num_batches(self.split, batch_size)

    def _batches(self, batches: list[torch.Tensor]) -> list[torch.Tensor]:
        sizes = self.split.sizes
        group = None if sizes is None else (lambda b: tuple(sizes[b[0]].tolist()))
        return merge_small_batches(batches, self.min_batch, group)

    def epoch(
        self, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1, start: int = 0
    ) -> Iterator[Step]:
        split = self.split
        batches = self._batches(batch_indices(split, batch_size, shuffle=True, generator=epoch_generator(seed, epoch)))
        # the epoch's order crosses to the GPU once, not per step (mixed-size data reads each batch's
        # size from the CPU by its first index, so its indices stay there)
        device = split.x.device
        if device.type == "cuda" and batches and split.sizes is None:
            batches = list(torch.cat(batches).to(device, non_blocking=True).split([len(b) for b in batches]))
        for index in batches[start:]:
            part = torch.tensor_split(index, world_size)[rank] if world_size > 1 else index
            yield Step(split.take(part), len(index), part)

    def ordered(self, batch_size: int, *, rank: int = 0, world_size: int = 1) -> Iterator[Chunk]:
        split = self.split
        if world_size > 1:  # a contiguous share of the samples per rank, each sample on one rank only
            mine = torch.tensor_split(torch.arange(len(split)), world_size)[rank]
            done = 0
            for chunk in TensorSource(split.subset(mine)).ordered(batch_size):
                local = chunk.index if chunk.index is not None else torch.arange(done, done + len(chunk.batch))
                done += len(chunk.batch)
                yield Chunk(chunk.batch, mine[local])
            return
        if split.sizes is not None:  # batched by size: the chunks say where their samples go
            for index in batch_indices(split, batch_size):
                yield Chunk(split.take(index), index)
            return
        for start in range(0, len(split), batch_size):
            sl = slice(start, start + batch_size)
            yield Chunk(Split(split.x[sl], split.y[sl], None if split.lengths is None else split.lengths[sl]), None)

    def fingerprint(self) -> dict:
        return tensor_fingerprint(self.split)


def as_source(data: Split | BatchSource, device: torch.device | None = None) -> BatchSource:
    """``data`` as a batch source: a :class:`Split` becomes a :class:`TensorSource` (moved to
    ``device`` when given); a source is used as it is."""
    if isinstance(data, Split):
        return TensorSource(data.to(device) if device is not None else data)
    if isinstance(data, BatchSource):
        return data.on_device(device) if device is not None and hasattr(data, "on_device") else data
    raise TypeError(f"expected a Split or a BatchSource, got {type(data).__name__}")
