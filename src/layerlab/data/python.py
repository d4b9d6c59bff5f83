"""Data handed over in Python, as :func:`layerlab.fit` takes it beside arrays: a torch ``Dataset``
(map-style: ``len`` and ``ds[i] -> (x, y)``), a ``DataLoader`` (its dataset is read; its sampler
and batch size are not, since the run's own order is what makes resume exact), or an iterable of
``(x, y)`` batches (a generator, an ``IterableDataset``'s loader: read once into memory).

A map-style dataset becomes a :class:`TorchDatasetSource`: samples are read a batch at a time
(by ``workers`` processes when asked), never all at once; only the targets are read up front
(from a ``targets`` attribute when the dataset has one, as torchvision's do, else by reading every
sample once). Samples may also be dicts (``{"image": ..., "label": ...}``, as Hugging Face
``datasets`` give them): the first of :data:`X_KEYS` and :data:`Y_KEYS` are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

import numpy as np
import torch

from ..errors import DataError
from . import Dataset, Split, split_validation
from .sources import IndexedSource

#: What the config of a run trained on a Dataset object names as its data (no command reads it).
PYTHON_PREFIX = "python:"

X_KEYS = ("x", "image", "img", "input", "inputs", "pixel_values")
Y_KEYS = ("y", "label", "labels", "target", "targets")


def _pair(sample, where: str):
    """``(x, y)`` of one sample: a pair, or a dict with one of :data:`X_KEYS` and :data:`Y_KEYS`."""
    if isinstance(sample, dict):
        x = next((sample[k] for k in X_KEYS if k in sample), None)
        y = next((sample[k] for k in Y_KEYS if k in sample), None)
        if x is None or y is None:
            raise DataError(f"{where} is a dict with keys {sorted(sample)}; expected an input ({X_KEYS}) and a label")
        return x, y
    if isinstance(sample, (tuple, list)) and len(sample) >= 2:
        return sample[0], sample[1]
    raise DataError(f"{where} is a {type(sample).__name__}; expected a pair (x, y)")


def _array(v) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def mapped_images(x) -> bool:
    """Whether ``x`` is a memory-mapped array that training can read a batch at a time, without
    loading it: ``(N, C, H, W)`` images (C of 1 or 3) of uint8 pixels or float32, C-ordered."""
    return (
        isinstance(x, np.memmap)
        and x.ndim == 4
        and x.shape[1] in (1, 3)
        and x.dtype in (np.uint8, np.float32)
        and x.flags.c_contiguous
        and getattr(x, "filename", None) is not None
    )


def is_python_data(x) -> bool:
    """Whether ``x`` is data of this module's kinds, not arrays: a DataLoader, a map-style dataset
    (``len`` and item access, not an array, tensor or list), or an iterator/generator."""
    if isinstance(x, (np.ndarray, torch.Tensor, list, tuple, str, bytes, dict)):
        return False
    if isinstance(x, (torch.utils.data.DataLoader, torch.utils.data.Dataset)):
        return True
    if isinstance(x, Iterator):
        return True
    return hasattr(x, "__getitem__") and hasattr(x, "__len__") and not hasattr(x, "__array__")


def describe(x) -> str:
    kind = "a DataLoader" if isinstance(x, torch.utils.data.DataLoader) else "an iterable of batches"
    if not isinstance(x, torch.utils.data.DataLoader) and hasattr(x, "__getitem__") and hasattr(x, "__len__"):
        kind = "a map-style dataset"
    return f"{kind} ({type(x).__module__}.{type(x).__qualname__})"


class TorchDatasetSource(IndexedSource):
    """A map-style dataset as a batch source: batch ``index`` is ``[ds[i] for i in index]``,
    stacked and read as the model's inputs by ``spec`` (uint8 pixels scaled by 1/255)."""

    def __init__(self, ds, y: torch.Tensor, spec, *, workers: int | None):
        self.ds, self.spec = ds, spec
        super().__init__(y, tuple(spec.shape), workers=0 if workers is None else workers)

    def read_rows(self, rows: np.ndarray) -> torch.Tensor:
        from .arrays import inputs_from_arrays

        xs = [_array(_pair(self.ds[int(i)], f"sample {int(i)}")[0]) for i in rows]
        if not xs:
            return torch.zeros(0, *self.x_shape)
        return inputs_from_arrays(np.stack(xs), self.spec, "the dataset's samples")

    def content_hash(self) -> str:  # the object's identity: a dataset in Python is not re-read by path
        return f"{type(self.ds).__module__}.{type(self.ds).__qualname__}:{len(self.ds)}"


def _targets(ds, n: int) -> np.ndarray:
    """Every sample's target: the dataset's ``targets`` when it has one per sample, else read."""
    t = getattr(ds, "targets", None)
    if t is not None:
        try:
            a = _array(t)
            if a.ndim >= 1 and len(a) == n:
                return a
        except (TypeError, ValueError):
            pass
    return np.stack([_array(_pair(ds[i], f"sample {i}")[1]) for i in range(n)])


def _from_batches(batches: Iterable) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for k, b in enumerate(batches):
        x, y = _pair(b, f"batch {k}")
        xs.append(_array(x))
        ys.append(_array(y))
    if not xs:
        raise DataError("the iterable of batches gave no batches")
    return np.concatenate(xs), np.concatenate(ys)


def dataset_from_python(
    data, *, sequence: bool, validation_data=None, validation_split: float = 0.0, seed: int = 0, workers=None
) -> tuple[Dataset, bool]:
    """A :class:`Dataset` from Python data (see the module docstring) and whether it is in memory
    (read from an iterable of batches: it can then be kept in the run as arrays)."""
    from .. import labels
    from . import arrays

    if isinstance(data, tuple) and len(data) == 2 and mapped_images(data[0]):
        return _from_memmap(data[0], data[1], validation_data, validation_split, seed, workers), False
    base: Any = data.dataset if isinstance(data, torch.utils.data.DataLoader) else data
    mapped = hasattr(base, "__getitem__") and hasattr(base, "__len__")
    if isinstance(base, torch.utils.data.IterableDataset) or not mapped:
        xb, yb = _from_batches(data)
        vd = validation_data
        if vd is not None and is_python_data(vd):
            vd = _from_batches(vd)
        ds = arrays.dataset_from_arrays(
            xb, yb, sequence=sequence, validation_data=vd, validation_split=validation_split, seed=seed
        )
        return ds, True
    if validation_data is not None and validation_split:
        raise DataError("give validation_data or validation_split, not both")
    n = len(base)
    if n == 0:
        raise DataError(f"{describe(data)} holds no samples")
    x0 = _array(_pair(base[0], "sample 0")[0])
    _, spec, _ = arrays.model_inputs(x0[None], sequence=sequence, what="the dataset's samples")
    ya = _targets(base, n)
    classes: list[str] | None = None
    cs = None
    if ya.dtype.kind in "iub":
        task = "classification"
        cs = labels.class_set(labels.class_ids(ya.reshape(len(ya)), "the targets"), [], where="the dataset's targets")
        y = torch.from_numpy(cs.encode(labels.class_ids(ya.reshape(len(ya)), "y")))
        classes, k = cs.names, cs.k
    else:
        task = "regression"
        y = torch.from_numpy(np.ascontiguousarray(ya, dtype=np.float32))
        k = 1 if ya.ndim == 1 else int(ya.shape[1])
    train = cast(Split, TorchDatasetSource(base, y, spec, workers=workers))  # a source stands where a Split does
    name = type(base).__qualname__
    meta = {"format": "python", "object": describe(data)}
    if validation_data is not None:
        vbase: Any = (
            validation_data.dataset if isinstance(validation_data, torch.utils.data.DataLoader) else validation_data
        )
        va = _targets(vbase, len(vbase))
        if cs is not None:
            vy = torch.from_numpy(cs.encode(labels.class_ids(va.reshape(len(va)), "validation y")))
        else:
            vy = torch.from_numpy(np.ascontiguousarray(va, dtype=np.float32))
        held = cast(Split, TorchDatasetSource(vbase, vy, spec, workers=workers))
        ds = Dataset(name, train, held, task, classes, k, "python", {**meta, "held_out": "validation_data"}, spec)
        ds.meta["validation_fraction"] = round(len(held) / (len(held) + len(train)), 6)
        return ds, False
    ds = Dataset(name, train, train, task, classes, k, "python", {**meta, "held_out": "training"}, spec)
    if validation_split:
        ds = split_validation(ds, float(validation_split), seed)
        ds.meta["held_out"] = "validation_split"
    return ds, False


def rereads(ds: Dataset) -> str:
    """The one sentence a run trained on a Dataset object records: what the command line can do with it."""
    return (
        f"trained on {ds.meta.get('object', 'data given in Python')}, of which the run keeps no copy: the command "
        f"line can predict, inspect, report and export from it, and evaluate it with --data naming such data on "
        f"disk, but cannot resume it"
    )


def _from_memmap(x: np.memmap, y, validation_data, validation_split: float, seed: int, workers) -> Dataset:
    """Memory-mapped images and their targets: an :class:`~.sources.ArraySource` (rows read per
    batch), classes by the one label rule; held out as :func:`~.arrays.dataset_from_arrays` does."""
    from .. import labels
    from .sources import ArraySource
    from .transforms import PIXEL_SCALE, InputSpec

    if validation_data is not None:
        raise DataError("memory-mapped x takes validation_split, not validation_data")
    ya = labels.class_ids(_array(y).reshape(-1), "y")
    if len(ya) != len(x):
        raise DataError(f"x holds {len(x)} samples and y {len(ya)} targets; give one per sample")
    cs = labels.class_set(ya, [], where="y")
    yt = torch.from_numpy(cs.encode(ya))
    train = cast(Split, ArraySource.from_memmap(x, yt, workers=workers))  # a source stands where a Split does
    shape = (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
    pixels = PIXEL_SCALE if x.dtype == np.uint8 else None
    spec = InputSpec("image", shape, pixel_scale=pixels, image_shape=shape)
    meta = {"format": "memmap", "object": f"a memory-mapped array ({x.filename})", "held_out": "training"}
    ds = Dataset("memmap", train, train, "classification", cs.names, cs.k, "memmap", meta, spec)
    if validation_split:
        ds = split_validation(ds, float(validation_split), seed)
        ds.meta["held_out"] = "validation_split"
    return ds
