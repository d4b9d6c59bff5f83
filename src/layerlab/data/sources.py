"""Streamed batch sources: data read by index, a batch at a time, never held whole in memory.

Each implements the :class:`~layerlab.training.sources.BatchSource` protocol with the same global
order as the in-memory :class:`~layerlab.training.sources.TensorSource` of the same size (the
permutation of :func:`~layerlab.training.sources.epoch_generator`, cut in batches; a rank reads its
contiguous slice of each batch and nothing else), so a run trains on the same batches whether its
data is in memory, in packed shards or in image files, and a mid-epoch resume skips batches
without reading them.

- :class:`ArraySource`: a NumPy array (a memory map of an ``.npy`` file), rows read per batch;
- :class:`PackedSource`: the packed form ``layerlab data pack`` writes (:mod:`.pack`): uint8 (or
  float32) ``.npy`` shards, memory-mapped when read, with a JSON index holding shapes, labels and
  a sha256 per shard;
- :class:`FolderSource`: image files decoded when a batch asks for them.

Reading runs in ``workers`` processes (a torch ``DataLoader`` over a map-style dataset whose
"sampler" is the list of this epoch's index batches, ``batch_size=None``), so memory is bounded by
the batch times the workers and their prefetch, whatever the dataset's size. What crosses to a
worker is a path and an index array: no list of Python objects per sample, no open memory map (a
worker opens its own). uint8 pixels cross to a GPU as uint8 and are divided by 255 there (for
CPU training the reading process divides them: the same float32 bits as in memory either way).

The labels (one number per sample) are kept in memory, as ``y``: the label rule, stratified
validation splits and class counts read them without touching the inputs.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, LayerlabError
from . import Split


def default_workers() -> int:
    """Worker processes for a streamed source when none are asked for: up to 4, one core left to
    the training step (0, reading in the training process, on a machine of one or two cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(4, cores - 1)) if cores > 2 else 0


class _Reader(torch.utils.data.Dataset):
    """What a worker process is given: the source (paths and index arrays only) and, per item,
    one batch's sample indices, which it reads whole."""

    def __init__(self, source: IndexedSource):
        self.source = source

    def __len__(self) -> int:  # pragma: no cover - the sampler says how many batches there are
        return len(self.source)

    def __getitem__(self, index):
        try:
            return self.source.read_for_device(np.asarray(index, dtype=np.int64))
        except LayerlabError as e:  # handed back as a value: DataLoader would re-raise it with a traceback inside
            return (_FAILED, type(e).__name__, str(e))


_FAILED = "layerlab: a worker could not read a batch"


def _worker_init(_worker_id: int) -> None:
    """A worker holds no run lock: a killed training process's lock goes with it, not with its workers."""
    from ..lock import close_inherited

    close_inherited()


def _divided(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels divided by 255 in float32, as :func:`layerlab.readers.scale_pixels` divides
    (NumPy, one thread: in a worker, or beside workers, torch's thread pool would wait on busy cores)."""
    out = _float_batch(tuple(x.shape))
    np.divide(x.numpy(), np.float32(255), out=out.numpy(), dtype=np.float32)
    return out


def _float_batch(shape: tuple[int, ...]) -> torch.Tensor:
    """An empty float32 batch; in a worker process, in shared memory, where the batch crosses to
    the training process anyway: written there directly, it is not copied there when it is sent
    (as torch's ``default_collate`` stacks a worker's batch)."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=torch.float32)
    proto = torch.empty(0, dtype=torch.float32)
    storage = proto._typed_storage()._new_shared(int(np.prod(shape)), device=proto.device)
    return proto.new(storage).resize_(*shape)


class LazyInputs:
    """A streamed source's inputs seen as a tensor ``(N, *x_shape)`` that reads only what is
    indexed (``x[:16]``, ``x[i]``, ``x[index]``): what the inspection views and export checks take
    from a split, without the whole split in memory."""

    dtype = torch.float32

    def __init__(self, source: IndexedSource):
        self.source = source

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.source), *self.source.x_shape))

    def dim(self) -> int:
        return 1 + len(self.source.x_shape)

    ndim = property(dim)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key) -> torch.Tensor:
        n = len(self.source)
        if isinstance(key, int) or (isinstance(key, torch.Tensor) and key.dim() == 0):
            i = int(key)
            return self[torch.tensor([i + n if i < 0 else i])][0]
        if isinstance(key, slice):
            index = np.arange(n)[key]
        else:
            index = np.asarray(key.cpu().numpy() if isinstance(key, torch.Tensor) else key, dtype=np.int64)
            index = np.where(index < 0, index + n, index)
        x, _ = self.source.read(index.astype(np.int64))
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x


class IndexedSource:
    """A batch source over samples read by index: subclasses give :meth:`read` (raw inputs of
    sample indices, as a tensor: uint8 pixels or float32) and keep ``y``; the order, sharding,
    resume and the move to the device live here.

    Attributes:
        y: the targets of every sample (on the CPU).
        workers: processes reading batches (0: in the training process).
        device: where batches go (set by :meth:`on_device`, which the training loop calls).
    """

    lengths = None
    sizes = None
    min_batch = 1  # no training batch smaller (layerlab.training.sources.with_min_batch)

    def __init__(self, y: torch.Tensor, x_shape: tuple[int, ...], *, workers: int | None):
        self.y = y
        self.x_shape = tuple(int(s) for s in x_shape)
        self.workers = default_workers() if workers is None else int(workers)
        self.device = torch.device("cpu")
        self.rows: np.ndarray | None = None  # a subset: the underlying sample of each of ours

    # -- what subclasses give -------------------------------------------------------------
    def read_rows(self, rows: np.ndarray) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def content_hash(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the protocol ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.y)

    def read(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw inputs and targets of samples ``index`` (positions in this source), in that order."""
        rows = index if self.rows is None else self.rows[index]
        return self.read_rows(rows), self.y[torch.from_numpy(np.asarray(index, dtype=np.int64))]

    def read_for_device(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`read`, with pixels divided by 255 here when batches train on the CPU (they cross to
        a GPU as uint8, a quarter of the bytes, and are divided there)."""
        x, y = self.read(index)
        if x.dtype == torch.uint8 and self.device.type == "cpu":
            x = _divided(x)
        return x, y

    def on_device(self, device) -> IndexedSource:
        self.device = torch.device(device) if device is not None else self.device
        return self

    def subset(self, index: torch.Tensor) -> IndexedSource:
        """The samples ``index`` as a source of the same files (a validation split, ``--n-train``)."""
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        idx = np.asarray(index.cpu().numpy() if isinstance(index, torch.Tensor) else index, dtype=np.int64)
        out.rows = idx if self.rows is None else self.rows[idx]
        out.y = self.y[torch.from_numpy(idx)]
        return out

    def steps(self, batch_size: int) -> int:
        if self.min_batch <= 1:
            return -(-len(self) // batch_size)
        from ..training.sources import merge_small_batches

        return len(merge_small_batches(list(torch.split(torch.arange(len(self)), batch_size)), self.min_batch))

    def _batches(self, parts: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``parts`` (index batches) read in order, by the workers when there are any."""
        if self.workers <= 0 or len(parts) <= 1:
            for p in parts:
                yield self.read_for_device(p.numpy())
            return
        loader = torch.utils.data.DataLoader(
            _Reader(self),
            batch_size=None,
            sampler=[p.numpy() for p in parts],
            num_workers=min(self.workers, len(parts)),
            pin_memory=self.device.type == "cuda",
            prefetch_factor=2,
            worker_init_fn=_worker_init,
        )
        for item in loader:
            if isinstance(item, (tuple, list)) and len(item) == 3 and item[0] == _FAILED:
                raise DataError(item[2])  # the worker's one sentence, as reading in this process gives it
            yield item

    def _to_batch(self, x: torch.Tensor, y: torch.Tensor) -> Split:
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:  # pixels cross as uint8, a quarter of float32's bytes, and are divided
            x = x.float().div_(255.0)  # here as layerlab.readers.scale_pixels divides: the same float32 bits
        return Split(x, y.to(self.device, non_blocking=True))

    def epoch(self, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1, start: int = 0):
        from ..training.sources import Step, epoch_generator, merge_small_batches

        order = torch.randperm(len(self), generator=epoch_generator(seed, epoch))
        batches = list(torch.split(order, batch_size))  # as TensorSource: batch_indices of a Split
        batches = merge_small_batches(batches, self.min_batch)[start:]
        parts = [torch.tensor_split(b, world_size)[rank] if world_size > 1 else b for b in batches]
        for b, part, (x, y) in zip(batches, parts, self._batches(parts), strict=True):
            yield Step(self._to_batch(x, y), len(b), part)

    def ordered(self, batch_size: int, *, rank: int = 0, world_size: int = 1):
        from ..training.sources import Chunk

        mine = torch.tensor_split(torch.arange(len(self)), world_size)[rank] if world_size > 1 else None
        idx = mine if mine is not None else torch.arange(len(self))
        parts = list(torch.split(idx, batch_size))
        for part, (x, y) in zip(parts, self._batches(parts), strict=True):
            yield Chunk(self._to_batch(x, y), part if mine is not None else None)

    def fingerprint(self) -> dict:
        h = hashlib.sha256(self.content_hash().encode())
        h.update(self.y.contiguous().numpy().tobytes())
        if self.rows is not None:
            h.update(self.rows.tobytes())
        return {
            "n": len(self),
            "x_shape": list(self.x_shape),
            "y_shape": list(self.y.shape[1:]),
            "sha256": h.hexdigest(),
        }

    @property
    def x(self) -> LazyInputs:
        """The inputs as a tensor that reads what is indexed (:class:`LazyInputs`)."""
        return LazyInputs(self)

    def sample(self, i: int) -> torch.Tensor:
        return self.x[i]

    def take(self, index: torch.Tensor) -> Split:
        x, y = self.read(np.asarray(index.cpu().numpy() if isinstance(index, torch.Tensor) else index, dtype=np.int64))
        return Split(x.float().div_(255.0) if x.dtype == torch.uint8 else x, y)

    def head(self, k: int) -> Split:
        """The first ``k`` samples as a batch on the CPU (a model's probe, an export check)."""
        x, y = self.read(np.arange(min(k, len(self)), dtype=np.int64))
        return Split(x.float().div_(255.0) if x.dtype == torch.uint8 else x, y)


class ArraySource(IndexedSource):
    """Inputs in one ``.npy`` file (or any array memory-mapped from a file: :meth:`from_memmap`),
    memory-mapped: a batch reads its rows and nothing else. uint8 arrays are pixels (divided by 255
    on the device); float arrays are read as they are."""

    def __init__(self, path: str | Path, y: torch.Tensor, *, workers: int | None = 0, layout=None):
        self.path = str(path)
        self.layout = layout  # (dtype, offset, shape) of a raw memory map, or None for an .npy file
        arr = self._open()
        if len(arr) != len(y):
            raise DataError(f"{path}: {len(arr)} samples, but {len(y)} targets")
        super().__init__(y, arr.shape[1:], workers=workers)
        self._arr: np.ndarray | None = None

    @classmethod
    def from_memmap(cls, arr: np.memmap, y: torch.Tensor, *, workers: int | None = 0) -> ArraySource:
        """``arr`` (``np.load(..., mmap_mode="r")`` or ``np.memmap``, C-ordered) reopened by path
        and offset in each process that reads it."""
        return cls(str(arr.filename), y, workers=workers, layout=(arr.dtype.str, int(arr.offset), tuple(arr.shape)))

    def _open(self) -> np.ndarray:
        if self.layout is None:
            return _open_npy(self.path)
        dtype, offset, shape = self.layout
        return np.memmap(self.path, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)

    def __getstate__(self):  # a worker opens its own map
        return {**self.__dict__, "_arr": None}

    def read_rows(self, rows: np.ndarray) -> torch.Tensor:
        if self._arr is None:
            self._arr = self._open()
        out = np.ascontiguousarray(self._arr[rows])
        return torch.from_numpy(out if out.dtype == np.uint8 else out.astype(np.float32, copy=False))

    def content_hash(self) -> str:
        st = os.stat(self.path)  # the bytes are not read for this: the file's identity and size
        return f"{Path(self.path).name}:{st.st_size}:{self.x_shape}"


def _open_npy(path: str) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not an .npy array layerlab can map ({' '.join(str(e).split())})") from None
    if arr.dtype not in (np.uint8, np.float32, np.float64) or arr.ndim < 2:
        raise DataError(f"{path}: expected uint8 or float samples (N, ...), got {arr.dtype} of shape {arr.shape}")
    return arr


class PackedSource(IndexedSource):
    """One split of a packed dataset (:mod:`.pack`): shards ``(n_i, *x_shape)`` read through memory
    maps, a sample ``i`` in the shard whose range holds it. The fingerprint comes from the index's
    shard hashes (written once by ``data pack``), so resume checks it without reading every byte."""

    def __init__(self, root: Path, shards: list[dict], dtype: str, x_shape, y: torch.Tensor, *, workers: int | None):
        self.root = str(root)
        self.files = [s["file"] for s in shards]
        self.hashes = [s["sha256"] for s in shards]
        counts = np.array([int(s["n"]) for s in shards], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        if self.starts[-1] != len(y):
            raise DataError(f"{root}: its shards hold {int(self.starts[-1])} samples, its labels {len(y)}")
        super().__init__(y, x_shape, workers=workers)
        self.dtype = dtype
        self._maps: dict[int, np.ndarray] = {}
        self.sample_names: list[str] | None = None  # the files the samples were packed from, when known

    @property
    def names(self) -> list[str] | None:
        """Where each sample came from (``mistakes.csv`` names it), when the pack recorded it."""
        if self.sample_names is None:
            return None
        rows = self.rows if self.rows is not None else range(len(self.sample_names))
        return [self.sample_names[r] for r in rows]

    def __getstate__(self):
        return {**self.__dict__, "_maps": {}}

    def _shard(self, s: int) -> np.ndarray:
        m = self._maps.get(s)
        if m is None:
            path = os.path.join(self.root, self.files[s])
            m = _open_npy(path)
            want = (int(self.starts[s + 1] - self.starts[s]), *self.x_shape)
            if m.shape != want or m.dtype.name != self.dtype:
                raise DataError(f"{path}: {m.dtype} of shape {m.shape}, its index says {self.dtype} of shape {want}")
            self._maps[s] = m
        return m

    def read_rows(self, rows: np.ndarray) -> torch.Tensor:
        out = np.empty((len(rows), *self.x_shape), dtype=self.dtype)
        shard = np.searchsorted(self.starts, rows, side="right") - 1
        for s in np.unique(shard):
            where = shard == s
            m = self._shard(int(s))
            out[where] = m[rows[where] - self.starts[s]]
            # the pages just read leave this process's resident set (they stay in the page cache), so
            # an epoch over a shard larger than memory keeps the RSS at what a batch needs
            mm = getattr(m, "_mmap", None)
            if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
                mm.madvise(mmap.MADV_DONTNEED)
        return torch.from_numpy(out)

    def content_hash(self) -> str:
        return ",".join(self.hashes)


class FolderSource(IndexedSource):
    """Image files decoded when a batch asks for them (by :func:`layerlab.readers.read_image`, as
    the in-memory image folder reads them: the same numbers), at one ``channels`` and ``size``."""

    def __init__(self, files: list[str], y: torch.Tensor, channels: int, size: tuple[int, int], *, workers):
        self.files = np.array([str(f) for f in files])  # one array of strings, not a list of objects
        self.channels, self.size = int(channels), (int(size[0]), int(size[1]))
        super().__init__(y, (self.channels, *self.size), workers=workers)

    @property
    def names(self) -> list[str]:
        """The file of each sample (``mistakes.csv`` names them)."""
        rows = self.rows if self.rows is not None else range(len(self.files))
        return [str(self.files[r]) for r in rows]

    def read_rows(self, rows: np.ndarray) -> torch.Tensor:
        from ..readers import read_image

        xs = [read_image(self.files[r], self.channels, self.size, raw=True)[0] for r in rows]
        if not xs:
            return torch.zeros(0, *self.x_shape)
        if any(x.dtype != np.uint8 for x in xs):  # 16-bit files come as floats: the batch is float
            xs = [x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else x for x in xs]
        return torch.from_numpy(np.stack(xs))

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for f in self.files:  # class folder, name and size: the bytes are read by training, not for this
            p = Path(f)
            h.update(f"{p.parent.name}/{p.name}:{p.stat().st_size}\n".encode())
        return h.hexdigest()
