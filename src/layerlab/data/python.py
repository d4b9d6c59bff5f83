"""Data handed over in Python, as :func:`layerlab.fit` takes it beside arrays: a torch ``Dataset``
(map-style: ``len`` and ``ds[i] -> (x, y)``), a ``DataLoader`` (its dataset is read; its sampler
and batch size are not, since the run's own order is what makes resume exact), or an iterable of
``(x, y)`` batches (a generator, an ``IterableDataset``'s loader: read once into memory).

A map-style dataset becomes a :class:`TorchDatasetSource`: samples are read a batch at a time
(by ``workers`` processes when asked), never all at once; only the targets are read up front
(from a ``targets`` attribute when the dataset has one, as torchvision's do, else by reading every
sample once). Samples may also be dicts (``{"image": ..., "label": ...}``): the keys named by
``x_column``/``y_column``, else the first of :data:`X_KEYS` and :data:`Y_KEYS`, are read.

A Hugging Face ``datasets.Dataset`` becomes a :class:`HFDatasetSource`: its label column is read
once through Arrow (never the images), and a batch reads its rows of the input column in NumPy
format (``with_format("numpy")``: images decoded per batch, never the whole set as Python objects);
a ``ClassLabel`` column's names become the class names. ``datasets`` is imported by the user, never
here: a dataset object is recognised by its type when the module is loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
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


def _pair(sample, where: str, keys: tuple[str | None, str | None] = (None, None)):
    """``(x, y)`` of one sample: a pair, or a dict with the keys ``keys`` names (else one of
    :data:`X_KEYS` and :data:`Y_KEYS`)."""
    if isinstance(sample, dict):
        xk, yk = keys
        x = sample.get(xk) if xk is not None else next((sample[k] for k in X_KEYS if k in sample), None)
        y = sample.get(yk) if yk is not None else next((sample[k] for k in Y_KEYS if k in sample), None)
        if x is None or y is None:
            want = f"{xk or ' or '.join(X_KEYS)} and {yk or ' or '.join(Y_KEYS)}"
            raise DataError(f"{where} is a dict with keys {sorted(sample)}; expected an input and a label ({want})")
        return x, y
    if isinstance(sample, (tuple, list)) and len(sample) >= 2:
        return sample[0], sample[1]
    raise DataError(f"{where} is a {type(sample).__name__}; expected a pair (x, y)")


def _array(v) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def is_hf_dataset(x) -> bool:
    """Whether ``x`` is a Hugging Face ``datasets.Dataset`` (recognised without importing ``datasets``)."""
    mod = sys.modules.get("datasets")
    return mod is not None and isinstance(x, getattr(mod, "Dataset", ()))


def _is_hf_iterable(x) -> bool:
    mod = sys.modules.get("datasets")
    return mod is not None and isinstance(x, getattr(mod, "IterableDataset", ()))


def hf_columns(ds, x_column: str | None, y_column: str | None, *, need_y: bool = True) -> tuple[str, str | None]:
    """The input and label columns of a ``datasets.Dataset``: those named, else the first of
    :data:`X_KEYS` and :data:`Y_KEYS` it has; one sentence naming its columns when one is missing."""
    cols = list(ds.column_names)

    def pick(given, keys, what, arg):
        if given is not None:
            if given not in cols:
                raise DataError(f"the datasets.Dataset has no column {given!r} ({arg}); its columns are {cols}")
            return given
        found = next((k for k in keys if k in cols), None)
        if found is None:
            raise DataError(
                f"the datasets.Dataset has the columns {cols}, none of them an {what} ({', '.join(keys)}); "
                f"name it with {arg}="
            )
        return found

    x = pick(x_column, X_KEYS, "input", "x_column")
    if not need_y and y_column is None and not any(k in cols for k in Y_KEYS):
        return x, None
    return x, pick(y_column, Y_KEYS, "label", "y_column")


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
    if is_hf_dataset(x):
        return f"a datasets.Dataset of {len(x)} rows (columns {', '.join(x.column_names)})"
    kind = "a DataLoader" if isinstance(x, torch.utils.data.DataLoader) else "an iterable of batches"
    if not isinstance(x, torch.utils.data.DataLoader) and hasattr(x, "__getitem__") and hasattr(x, "__len__"):
        kind = "a map-style dataset"
    return f"{kind} ({type(x).__module__}.{type(x).__qualname__})"


class TorchDatasetSource(IndexedSource):
    """A map-style dataset as a batch source: batch ``index`` is ``[ds[i] for i in index]``,
    stacked and read as the model's inputs by ``spec`` (uint8 pixels scaled by 1/255)."""

    def __init__(self, ds, y: torch.Tensor, spec, *, workers: int | None, keys=(None, None)):
        self.ds, self.spec, self.keys = ds, spec, tuple(keys)
        super().__init__(y, tuple(spec.shape), workers=0 if workers is None else workers)

    def read_rows(self, rows: np.ndarray) -> torch.Tensor:
        from .arrays import inputs_from_arrays

        xs = [_array(_pair(self.ds[int(i)], f"sample {int(i)}", self.keys)[0]) for i in rows]
        if not xs:
            return torch.zeros(0, *self.x_shape)
        return inputs_from_arrays(np.stack(xs), self.spec, "the dataset's samples")

    def content_hash(self) -> str:  # the object's identity: a dataset in Python is not re-read by path
        return f"{type(self.ds).__module__}.{type(self.ds).__qualname__}:{len(self.ds)}"


class HFDatasetSource(IndexedSource):
    """A ``datasets.Dataset`` as a batch source: batch ``index`` is its rows ``index`` of the input
    column in NumPy format (Arrow rows, images decoded for this batch only), read as the model's
    inputs by ``spec``. What crosses to a worker is the dataset object (memory-mapped Arrow files
    are pickled by path) and the column's name."""

    def __init__(self, ds, column: str, y: torch.Tensor, spec, *, workers: int | None):
        self.ds = ds.select_columns([column]).with_format("numpy")
        self.column, self.spec, self.stored = column, spec, _stored_dtype(ds.features.get(column))
        self.fingerprint_text = f"datasets:{getattr(ds, '_fingerprint', '')}:{column}:{len(ds)}"
        super().__init__(y, tuple(spec.shape), workers=0 if workers is None else workers)

    def read_rows(self, rows: np.ndarray) -> torch.Tensor:
        from .arrays import inputs_from_arrays

        if len(rows) == 0:
            return torch.zeros(0, *self.x_shape)
        v = self.ds[rows.astype(np.int64)][self.column]
        ragged = not isinstance(v, np.ndarray) or v.dtype.kind == "O"
        if not ragged and self.stored is not None:
            v = v.astype(self.stored, copy=False)  # NumPy format widens stored integers to int64
        if ragged:
            shapes = sorted({tuple(np.shape(a)) for a in v})
            raise DataError(
                f"the datasets.Dataset's column {self.column!r} holds samples of different shapes ({shapes[0]} and "
                f"{shapes[-1]}); give them one shape first (Dataset.map or cast_column)"
            )
        return inputs_from_arrays(v, self.spec, f"the datasets.Dataset's column {self.column!r}")

    def content_hash(self) -> str:  # the dataset's own fingerprint (Hugging Face's hash of its history)
        return self.fingerprint_text


def _stored_dtype(feature) -> np.dtype | None:
    """The NumPy type an array feature stores (``Array2D(..., "uint8")``, ``List(Value("uint8"))``),
    None for others (an ``Image`` is decoded to its pixels' own type)."""
    while feature is not None and not hasattr(feature, "dtype"):
        feature = getattr(feature, "feature", None)
    name = getattr(feature, "dtype", None)
    try:
        return np.dtype(name) if isinstance(name, str) else None
    except TypeError:
        return None


def _hf_reader(ds, x_column, y_column, need_y: bool = True):
    """``(first input, targets or None, class names or None, make)`` of a ``datasets.Dataset``:
    the label column read through Arrow alone, ``make(y, spec, workers)`` its source."""
    xc, yc = hf_columns(ds, x_column, y_column, need_y=need_y)
    if len(ds) == 0:
        raise DataError("the datasets.Dataset holds no rows")
    x0 = np.asarray(ds.select_columns([xc]).with_format("numpy")[0][xc])
    stored = _stored_dtype(ds.features.get(xc))
    if stored is not None and x0.dtype.kind != "O":
        x0 = x0.astype(stored, copy=False)
    ya, names = None, None
    if yc is not None:
        ya = np.asarray(ds.select_columns([yc]).with_format("numpy")[:][yc])
        feature = ds.features.get(yc)
        names = list(feature.names) if type(feature).__name__ == "ClassLabel" else None

    def make(y, spec, workers):
        return HFDatasetSource(ds, xc, y, spec, workers=workers)

    return x0, ya, names, make


def _torch_reader(ds, x_column, y_column, need_y: bool = True):
    """As :func:`_hf_reader`, for a map-style torch dataset (``ds[i]`` a pair or a dict)."""
    keys = (x_column, y_column)
    x0 = _array(_pair(ds[0], "sample 0", keys)[0])
    ya = _targets(ds, len(ds), keys) if need_y else None

    def make(y, spec, workers):
        return TorchDatasetSource(ds, y, spec, workers=workers, keys=keys)

    return x0, ya, None, make


def _reader(
    base, x_column, y_column, need_y: bool = True
) -> tuple[np.ndarray, np.ndarray | None, list | None, Callable]:
    if is_hf_dataset(base):
        return _hf_reader(base, x_column, y_column, need_y)
    if len(base) == 0:
        raise DataError(f"{describe(base)} holds no samples")
    return _torch_reader(base, x_column, y_column, need_y)


def _targets(ds, n: int, keys=(None, None)) -> np.ndarray:
    """Every sample's target: the dataset's ``targets`` when it has one per sample, else read."""
    t = getattr(ds, "targets", None)
    if t is not None:
        try:
            a = _array(t)
            if a.ndim >= 1 and len(a) == n:
                return a
        except (TypeError, ValueError):
            pass
    return np.stack([_array(_pair(ds[i], f"sample {i}", keys)[1]) for i in range(n)])


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
    data,
    *,
    sequence: bool,
    validation_data=None,
    validation_split: float = 0.0,
    seed: int = 0,
    workers=None,
    x_column: str | None = None,
    y_column: str | None = None,
) -> tuple[Dataset, bool]:
    """A :class:`Dataset` from Python data (see the module docstring) and whether it is in memory
    (read from an iterable of batches: it can then be kept in the run as arrays). ``x_column`` and
    ``y_column`` name the input and label columns of a ``datasets.Dataset`` (or keys of dict samples)."""
    from .. import labels
    from . import arrays

    if isinstance(data, tuple) and len(data) == 2 and mapped_images(data[0]):
        return _from_memmap(data[0], data[1], validation_data, validation_split, seed, workers), False
    if _is_hf_iterable(data):
        raise DataError(
            "a streaming datasets.IterableDataset has no length or random access, which exact resume needs; "
            "load it without streaming=True (a datasets.Dataset, memory-mapped from disk) or give batches"
        )
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
    x0, ya, names, make = _reader(base, x_column, y_column)
    assert ya is not None
    _, spec, _ = arrays.model_inputs(x0[None], sequence=sequence, what="the dataset's samples")
    classes: list[str] | None = None
    cs = None
    if ya.dtype.kind in "iub":
        task = "classification"
        ids = labels.class_ids(ya.reshape(len(ya)), "the targets")
        cs = labels.class_set(ids, [], where="the dataset's targets", names=names)
        y = torch.from_numpy(cs.encode(ids))
        classes, k = cs.names, cs.k
    else:
        task = "regression"
        y = torch.from_numpy(np.ascontiguousarray(ya, dtype=np.float32))
        k = 1 if ya.ndim == 1 else int(ya.shape[1])
    train = cast(Split, make(y, spec, workers))  # a source stands where a Split does
    name = "datasets.Dataset" if is_hf_dataset(base) else type(base).__qualname__
    meta = {"format": "python", "object": describe(data)}
    if validation_data is not None:
        vbase: Any = (
            validation_data.dataset if isinstance(validation_data, torch.utils.data.DataLoader) else validation_data
        )
        _, va, _, vmake = _reader(vbase, x_column, y_column)
        assert va is not None
        if cs is not None:
            vy = torch.from_numpy(cs.encode(labels.class_ids(va.reshape(len(va)), "validation y")))
        else:
            vy = torch.from_numpy(np.ascontiguousarray(va, dtype=np.float32))
        held = cast(Split, vmake(vy, spec, workers))
        ds = Dataset(name, train, held, task, classes, k, "python", {**meta, "held_out": "validation_data"}, spec)
        ds.meta["validation_fraction"] = round(len(held) / (len(held) + len(train)), 6)
        return ds, False
    ds = Dataset(name, train, train, task, classes, k, "python", {**meta, "held_out": "training"}, spec)
    if validation_split:
        ds = split_validation(ds, float(validation_split), seed)
        ds.meta["held_out"] = "validation_split"
    return ds, False


def python_inputs(
    data, spec, *, sequence: bool, x_column: str | None = None, y_column: str | None = None, need_y: bool = True
):
    """The inputs of Python data to evaluate or predict on, read as ``spec`` says (None: as
    :func:`dataset_from_python` would read them), and their raw targets (None when ``need_y`` is
    False and the data has none): ``(source or Split, targets)``. A dataset is read a batch at a
    time, an iterable of batches once."""
    from . import arrays

    if _is_hf_iterable(data):
        raise DataError("a streaming datasets.IterableDataset cannot be read by index; load it without streaming=True")
    base: Any = data.dataset if isinstance(data, torch.utils.data.DataLoader) else data
    mapped = hasattr(base, "__getitem__") and hasattr(base, "__len__")
    if isinstance(base, torch.utils.data.IterableDataset) or not mapped:
        xb, yb = _from_batches(data)
        if spec is not None:
            x = arrays.inputs_from_arrays(xb, spec)
        else:
            x, _, _ = arrays.model_inputs(xb, sequence=sequence)
        return Split(x, torch.zeros(len(x))), yb
    x0, ya, _, make = _reader(base, x_column, y_column, need_y=need_y)
    if spec is None:
        _, spec, _ = arrays.model_inputs(x0[None], sequence=sequence, what="the dataset's samples")
    return make(torch.zeros(len(base)), spec, 0), ya


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
