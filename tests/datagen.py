"""Tiny datasets written as real files, for tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode an array as an IDX file (uint8 only, which is what image sets use)."""
    arr = np.asarray(arr, dtype=np.uint8)
    return struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def bar_images(n: int, rng: np.random.Generator, size: int = 28, classes: int = 10, cover: bool = False):
    """Class k is a bright horizontal bar at row 2k+3 over faint noise: learnable in a few steps.
    ``cover``: the first ``classes`` samples are one of each class (a training split then holds every
    class a test split can, as the data checks require)."""
    y = rng.integers(0, classes, n)
    if cover:
        y[: min(n, classes)] = np.arange(min(n, classes))
    x = (rng.random((n, size, size)) * 60).astype(np.uint8)
    for i, k in enumerate(y):
        r = 2 * int(k) + 3
        x[i, r : r + 2, 4 : size - 4] = 255
    return x, y.astype(np.uint8)


def make_idx_dir(root: Path, n_train: int = 300, n_test: int = 100, gz: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    xtr, ytr = bar_images(n_train, rng, cover=True)
    xte, yte = bar_images(n_test, rng)
    sfx = ".gz" if gz else ""
    write_idx(root / f"train-images-idx3-ubyte{sfx}", xtr, gz)
    write_idx(root / f"train-labels-idx1-ubyte{sfx}", ytr, gz)
    write_idx(root / f"t10k-images-idx3-ubyte{sfx}", xte, gz)
    write_idx(root / f"t10k-labels-idx1-ubyte{sfx}", yte, gz)
    return root


def save_png(path: Path, arr: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path)
    return path


def ts_text(
    series: list[np.ndarray],
    labels: list,
    *,
    class_names: list[str] | None = None,
    regression: bool = False,
    problem: str = "Gen",
) -> str:
    """A UCR/UEA ``.ts`` file holding ``series`` (each ``(T_i, F)``, NaN written ``?``) with their
    labels: class names (declared ``class_names``, else the sorted distinct labels) or, with
    ``regression``, numbers. Floats are written with ``repr``, so they read back exactly."""
    F = series[0].shape[1]
    equal = len({len(s) for s in series}) == 1
    missing = any(np.isnan(s).any() for s in series)
    head = [
        f"@problemName {problem}",
        "@timeStamps false",
        f"@missing {str(missing).lower()}",
        f"@univariate {str(F == 1).lower()}",
        f"@dimensions {F}",
        f"@equalLength {str(equal).lower()}",
    ]
    if regression:
        head += ["@classLabel false", "@targetLabel true"]
    else:
        head.append("@classLabel true " + " ".join(class_names or sorted(set(labels))))
    lines = head + ["@data"]
    for s, y in zip(series, labels, strict=True):
        dims = [",".join("?" if np.isnan(v) else repr(float(v)) for v in s[:, d]) for d in range(F)]
        lines.append(":".join(dims) + ":" + (repr(float(y)) if regression else str(y)))
    return "\n".join(lines) + "\n"
