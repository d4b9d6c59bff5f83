"""CIFAR-10, python version (``cifar-10-batches-py``): pickled dicts of uint8 rows.

Unpickled with an allow-list (numpy arrays, nothing else), so a hostile file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ... import readers
from ...errors import DataError
from .. import Dataset, Split
from ..transforms import PIXEL_SCALE, InputSpec
from . import read_maybe_gzip

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class SafeUnpickler(pickle.Unpickler):
    """Loads plain containers and numpy arrays only; any other global is refused."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def unpickle(data: bytes, path: Path) -> dict:
    """A CIFAR pickle's dict, with its byte keys decoded."""
    try:
        d = SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # a corrupt pickle raises many kinds of error
        why = " ".join(str(e).split())[:200]  # some messages span lines
        raise DataError(f"{path}: not a CIFAR-10 python batch ({type(e).__name__}: {why})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR-10 python batch (expected a dict)")
    return {k.decode("utf-8", "replace") if isinstance(k, bytes) else k: v for k, v in d.items()}


def _batch(d: dict, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 of one batch."""
    if "data" not in d or "labels" not in d:
        raise DataError(f"{path}: a CIFAR-10 batch needs 'data' and 'labels' entries")
    try:
        x = np.asarray(d["data"])
        y = np.asarray(d["labels"])
    except Exception:  # ragged or odd objects
        raise DataError(f"{path}: 'data' and 'labels' must be arrays of numbers") from None
    if x.dtype != np.uint8 and (x.dtype.kind not in "iu" or (x.size and (x.min() < 0 or x.max() > 255))):
        raise DataError(f"{path}: 'data' must hold 8-bit pixel values 0-255, got an array of {x.dtype}")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all()):
        raise DataError(f"{path}: 'labels' must be whole numbers, got an array of {y.dtype}")
    x, y = x.astype(np.uint8), y.astype(np.int64)
    if x.ndim != 2 or x.shape[1] != 3072 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{path}: expected data of shape (N, 3072) and N labels, got {x.shape} and {y.shape}")
    if y.size and y.min() < 0:
        raise DataError(f"{path}: label {int(np.argmin(y))} is {int(y.min())}; class labels must be 0 or more")
    return x.reshape(-1, 3, 32, 32), y


def load_cifar10_dir(directory: Path) -> Dataset:
    """Load ``cifar-10-batches-py`` (data_batch_1..5, test_batch, batches.meta): images
    ``(N, 3, 32, 32)`` in [0, 1], class names from ``batches.meta`` when it is there; a label with
    no class name is an error naming its batch."""
    parts = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    splits, largest = {}, {}
    for part, batches in parts.items():
        xs, ys = [], []
        for name in batches:
            p = directory / name
            x, y = _batch(unpickle(read_maybe_gzip(p), p), p)
            xs.append(x)
            ys.append(y)
            if y.size:
                largest[p] = int(y.max())
        x = np.concatenate(xs)
        x, _ = readers.scale_pixels(x.astype(np.uint8), str(directory))  # 0..255 checked: 8-bit pixels
        splits[part] = Split(torch.from_numpy(x), torch.from_numpy(np.concatenate(ys)))
    classes = list(CLASSES)
    meta = directory / "batches.meta"
    if meta.is_file():
        d = unpickle(read_maybe_gzip(meta), meta)
        names = d.get("label_names")
        if names is not None:
            if not isinstance(names, list | tuple) or not all(isinstance(n, bytes | str) for n in names):
                raise DataError(f"{meta}: 'label_names' must be a list of class names")
            if names:
                classes = [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]
    for p, top in largest.items():
        if top >= len(classes):
            raise DataError(
                f"{p}: label {top} is beyond the {len(classes)} class names (labels 0 to {len(classes) - 1})"
            )
    shape = (3, 32, 32)
    return Dataset(
        "cifar10",
        splits["train"],
        splits["test"],
        "classification",
        classes,
        len(classes),
        source=str(directory),
        spec=InputSpec("image", shape, pixel_scale=PIXEL_SCALE, image_shape=shape),
    )


def is_cifar10_dir(directory: Path) -> bool:
    return (directory / "data_batch_1").is_file() and (directory / "test_batch").is_file()
