"""IDX: the MNIST file format (http://yann.lecun.com/exdb/mnist/, section "FILE FORMATS").

A 4-byte magic number (two zero bytes, the element type, the number of dimensions), one
big-endian uint32 per dimension, then the elements in C order. A page of code, so ours; tested on
valid, truncated and malformed files (tests/data/test_idx.py, tests/data/test_formats_hypothesis.py).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import readers
from ...errors import DataError
from .. import Dataset, Split
from ..transforms import PIXEL_SCALE, InputSpec
from . import read_maybe_gzip

IDX_DTYPES: dict[int, Any] = {  # type code -> a NumPy dtype (or scalar type)
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed) into an array of its declared type and shape.

    Raises :class:`DataError` naming the file for a wrong magic number, an unknown element type,
    or a payload shorter or longer than the header declares.
    """
    path = Path(path)
    data = read_maybe_gzip(path)
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes, expected a 4-byte magic number)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in IDX_DTYPES or not 1 <= ndim <= 4:
        raise DataError(
            f"{path}: not an IDX file (magic number {data[:4].hex()}, expected 0000 then a "
            f"type code 08-0e and 1-4 dimensions, e.g. 00000803 for images)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, expected {header})")
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    dtype = np.dtype(IDX_DTYPES[code])
    count = math.prod(shape)  # Python ints: four uint32 dimensions overflow numpy's int64
    expected = count * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise DataError(f"{path}: {what}: header declares shape {shape} ({expected} bytes of data), file holds {got}")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("=")) if dtype.byteorder == ">" else arr


_IDX_ROLES = {
    ("train", "x"): ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    ("train", "y"): ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    ("test", "x"): ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    ("test", "y"): ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def find_idx_files(directory: Path) -> dict[tuple[str, str], Path] | None:
    """The four IDX files of an MNIST-layout directory (raw or .gz), keyed by (split, x|y), or None
    if any is missing."""
    found = {}
    for role, stems in _IDX_ROLES.items():
        for stem in stems:
            for name in (stem, stem + ".gz"):
                if (directory / name).is_file():
                    found[role] = directory / name
                    break
            if role in found:
                break
        if role not in found:
            return None
    return found


def images_to_tensor(images: np.ndarray, path: Path | str = "") -> torch.Tensor:
    """Images ``(N, H, W)`` or ``(N, H, W, C)`` to float32 ``(N, C, H, W)``, scaled by their type:
    uint8 / 255 (Keras's x / 255, [0, 1]); other integer types by their type's largest value
    (int8 / 127, int16 / 32767, int32 / 2**31 - 1: negative values stay negative, in [-1, 1]);
    float images as they are, which must then be finite (``path`` names the file in that error)."""
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4:
        images = images.transpose(0, 3, 1, 2)
    if images.dtype.kind == "f":
        bad = ~np.isfinite(images.reshape(len(images), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{path}: image {int(np.argmax(bad))} holds a non-finite value (inf or NaN)")
    x, _ = readers.scale_pixels(np.ascontiguousarray(images), str(path))  # the one rule for pixels
    return torch.from_numpy(np.ascontiguousarray(x))


def labels_to_tensor(y: np.ndarray, path: Path) -> torch.Tensor:
    """Class labels ``(N,)`` as int64: they must be integers (an integer IDX type, or floats with
    no fractional part) and not negative."""
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{path}: label {i} is {y[i]!r}; class labels must be whole numbers")
    if y.size and y.min() < 0:
        i = int(np.argmin(y))
        raise DataError(f"{path}: label {i} is {y[i]:g}; class labels must be 0 or more")
    return torch.from_numpy(y.astype(np.int64))


def load_idx_dir(directory: Path, name: str, classes: list[str] | None = None) -> Dataset:
    """Train and test splits from a directory holding the four MNIST-layout IDX files: images
    ``(N, 1, H, W)`` scaled as :func:`images_to_tensor` says and int64 labels ``(N,)``. ``classes``
    names the labels (digits when not given); a label beyond the given names is an error."""
    files = find_idx_files(directory)
    if files is None:
        raise DataError(
            f"{directory}: expected the four IDX files train-images-idx3-ubyte, "
            f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (optionally .gz)"
        )
    splits = {}
    for part in ("train", "test"):
        x = read_idx(files[(part, "x")])
        y = read_idx(files[(part, "y")])
        if x.ndim != 3:
            raise DataError(f"{files[(part, 'x')]}: expected images of shape (N, H, W), got {x.shape}")
        if y.ndim != 1:
            raise DataError(f"{files[(part, 'y')]}: expected labels of shape (N,), got {y.shape}")
        if len(x) != len(y):
            raise DataError(f"{directory}: {part} images and labels disagree: {len(x)} images, {len(y)} labels")
        if len(x) == 0:
            raise DataError(f"{files[(part, 'x')]}: holds no images")
        splits[part] = Split(images_to_tensor(x, files[(part, "x")]), labels_to_tensor(y, files[(part, "y")]))
    if splits["train"].x.shape[1:] != splits["test"].x.shape[1:]:
        raise DataError(
            f"{directory}: training images are {tuple(splits['train'].x.shape[2:])}, test images "
            f"{tuple(splits['test'].x.shape[2:])}; both splits need one size"
        )
    n_classes = int(max(splits["train"].y.max(), splits["test"].y.max())) + 1
    if classes is None:
        classes = [str(i) for i in range(n_classes)]
    elif len(classes) < n_classes:
        part = "train" if int(splits["train"].y.max()) + 1 == n_classes else "test"
        raise DataError(
            f"{files[(part, 'y')]}: label {n_classes - 1} is beyond the {len(classes)} class names "
            f"of {name} (labels 0 to {len(classes) - 1})"
        )
    shape = tuple(splits["train"].x.shape[1:])
    return Dataset(
        name,
        splits["train"],
        splits["test"],
        "classification",
        list(classes),
        len(classes),
        source=str(directory),
        spec=InputSpec("image", shape, pixel_scale=PIXEL_SCALE, image_shape=shape),
    )
