"""NumPy ``.npz`` archives as datasets: ``x_train, y_train, x_test, y_test`` (and optionally
``lengths_train``, ``lengths_test``), read with ``allow_pickle=False``. The rank of ``x`` says what it
holds: sequences ``(N, T)`` / ``(N, T, F)``, images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)``
(pixels scaled by :func:`layerlab.readers.scale_pixels`); integer ``y`` classes, float ``y``
regression, ``y`` ``(N, T)`` one target per step. Predict reads single arrays from ``.npy`` files,
so an ``.npz`` has no reader here.

The whole format is this file: its suffix, its loader and its checks. The loader makes tensors
through :mod:`layerlab.data.formats` (imported inside :func:`load`, called by the catalogue only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..inputspec import PIXEL_SCALE
from ..readers import scale_pixels
from . import Format, register


def _npz_array(z, key: str, path: Path) -> np.ndarray:
    """One array of an open ``.npz``: numbers (bool, integer or float) only."""
    try:
        a = np.asarray(z[key])
    except ValueError:  # object arrays need pickle, which we never allow
        raise DataError(f"{path}: {key} holds Python objects; an .npz dataset holds arrays of numbers") from None
    except Exception as e:  # a damaged member raises zipfile, zlib or format errors
        raise DataError(f"{path}: {key} cannot be read ({type(e).__name__})") from None
    if a.dtype.kind not in "biuf":
        raise DataError(f"{path}: {key} holds {a.dtype} values; an .npz dataset holds arrays of numbers")
    return a


def load(path: str | Path, **_options):
    """An ``.npz`` with ``x_train, y_train, x_test, y_test`` (and optionally ``lengths_train``,
    ``lengths_test``). The rank of ``x`` says what it holds: sequences ``(N, T)`` or ``(N, T, F)``,
    images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)`` (see :func:`_npz_grids`); integer ``y`` classes, float ``y``
    regression; ``y`` ``(N, T)`` one target per step (a ``step`` head; -100 beyond a sequence's
    length, which the loss ignores). Arrays must hold numbers (never pickled objects), ``x`` and
    float ``y`` must be finite (an .npz has no notion of a missing value), class ids not negative
    (but -100, ignored, per step)."""
    from ..data import formats as F  # the data side: tensors from these arrays

    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Exception as e:  # not a zip, or a damaged one: zipfile, OSError, ValueError, EOFError...
        raise DataError(f"{path}: not a NumPy .npz archive ({type(e).__name__})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single NumPy array, not an .npz archive of x_train, y_train, x_test, y_test")
    need = {"x_train", "y_train", "x_test", "y_test"}
    if not need <= set(z.files):
        raise DataError(
            f"{path}: an .npz dataset needs arrays {', '.join(sorted(need))}; it holds {', '.join(z.files) or 'none'}"
        )
    if _npz_array(z, "x_train", path).ndim in (4, 5):
        return _npz_grids(z, path, F)
    splits, per_step, regression = {}, False, False
    for part in ("train", "test"):
        x, y = _npz_array(z, f"x_{part}", path), _npz_array(z, f"y_{part}", path)
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3:
            raise DataError(
                f"{path}: x_{part} must be sequences (N, T) or (N, T, F), images (N, C, H, W) or volumes "
                f"(N, C, D, H, W), got {x.shape}"
            )
        if len(x) == 0:
            raise DataError(f"{path}: x_{part} holds no sequences")
        if y.ndim not in (1, 2):
            raise DataError(f"{path}: y_{part} must be (N,) or (N, T), got {y.shape}")
        if len(y) != len(x):
            raise DataError(f"{path}: x_{part} has {len(x)} sequences, y_{part} {len(y)} targets")
        if y.ndim == 2 and y.shape[1] != x.shape[1]:
            raise DataError(f"{path}: per-step y_{part} {y.shape} must have the T={x.shape[1]} of x_{part}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            i = int(np.argmax(~np.isfinite(y).reshape(len(y), -1).all(axis=1)))
            raise DataError(f"{path}: y_{part}[{i}] holds a non-finite target (inf or NaN)")
        if y.dtype.kind in "iu" and y.size and ((y < 0) & ((y != -100) | (y.ndim == 1))).any():
            i = int(np.argmax(((y < 0) & ((y != -100) | (y.ndim == 1))).reshape(len(y), -1).any(axis=1)))
            raise DataError(f"{path}: y_{part}[{i}] holds a negative class id (only -100, ignored, per step)")
        per_step |= y.ndim == 2
        regression |= y.dtype.kind == "f"
        if f"lengths_{part}" in z.files:
            lengths = _npz_array(z, f"lengths_{part}", path)
        else:
            lengths = np.full(len(x), x.shape[1])
        if (
            lengths.shape != (len(x),)
            or lengths.dtype.kind not in "iu"
            or lengths.min() < 1
            or lengths.max() > x.shape[1]
        ):
            raise DataError(
                f"{path}: lengths_{part} must hold {len(x)} whole-number lengths between 1 and {x.shape[1]}"
            )
        x, lengths = x.astype(np.float64), lengths.astype(np.int64)
        for i, n in enumerate(lengths):  # steps beyond a sequence's length are padding, never read
            if not np.isfinite(x[i, :n]).all():
                raise DataError(f"{path}: x_{part}[{i}] holds a non-finite value (inf or NaN)")
        splits[part] = (x, y, lengths)
    name = path.stem
    (xtr, ytr, ltr), (xte, yte, lte) = splits["train"], splits["test"]
    if ytr.ndim != yte.ndim:
        raise DataError(
            f"{path}: y_train is {ytr.shape} and y_test {yte.shape}; both need one target per sequence or per step"
        )
    seq_tr = [x[:n] for x, n in zip(xtr, ltr, strict=True)]
    seq_te = [x[:n] for x, n in zip(xte, lte, strict=True)]
    meta = {"format": "npz"}
    if not per_step:
        if regression:
            return F.build_sequence_dataset(
                name, (seq_tr, list(ytr)), (seq_te, list(yte)), regression=True, source=str(path), meta=meta
            )
        ytr_s, yte_s = [str(int(v)) for v in ytr], [str(int(v)) for v in yte]
        return F.build_sequence_dataset(name, (seq_tr, ytr_s), (seq_te, yte_s), source=str(path), meta=meta)
    # one target per step: standardise x as usual, keep y as given (-100 ignored for classes)
    ds = F.build_sequence_dataset(
        name,
        (seq_tr, [0.0] * len(seq_tr)),
        (seq_te, [0.0] * len(seq_te)),
        regression=True,
        source=str(path),
        meta=meta,
        head="step",
    )
    T = ds.train.x.shape[1]

    def targets(y, lengths):
        if regression:
            out = np.zeros((len(y), T), dtype=np.float32)
        else:
            out = np.full((len(y), T), -100, dtype=np.int64)
        out[:, : y.shape[1]] = y
        for i, n in enumerate(lengths):
            out[i, n:] = 0 if regression else -100
        return out

    ytr_n, yte_n = targets(ytr, ltr), targets(yte, lte)
    if regression:
        return F.with_targets(ds, ytr_n, yte_n)
    k = int(max(ytr_n.max(), yte_n.max())) + 1
    return F.with_targets(
        ds, ytr_n, yte_n, task="sequence-classification", classes=[str(i) for i in range(k)], num_outputs=k
    )


def _npz_grids(z, path: Path, F):
    """Images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)`` of an ``.npz``, one target each: integer
    ``y`` classes (named by their values, sorted), float ``y`` regression. Inputs are scaled by
    :func:`layerlab.readers.scale_pixels`, the one rule for pixels (``uint8`` by 1/255, ``uint16``
    by 1/65535, floats as they are and finite, other integer types refused), as predict scales
    ``.npy`` arrays. Both splits need one sample shape."""
    parts = {}
    for part in ("train", "test"):
        x, y = _npz_array(z, f"x_{part}", path), _npz_array(z, f"y_{part}", path)
        if x.ndim not in (4, 5):
            raise DataError(f"{path}: x_train is {x.ndim - 1}-D samples, x_{part} {x.shape}; both need one rank")
        if len(x) == 0:
            raise DataError(f"{path}: x_{part} holds no samples")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{path}: y_{part} must hold one target per sample, ({len(x)},), got {y.shape}")
        if x.dtype.kind == "f":
            bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
            if bad.any():
                raise DataError(f"{path}: x_{part}[{int(np.argmax(bad))}] holds a non-finite value (inf or NaN)")
        x, _ = scale_pixels(x, f"{path}: x_{part}")  # the one rule for integer pixels
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise DataError(f"{path}: y_{part}[{int(np.argmax(~np.isfinite(y)))}] is not finite (inf or NaN)")
        parts[part] = (x, y)
    (xtr, ytr), (xte, yte) = parts["train"], parts["test"]
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(f"{path}: x_train samples are {xtr.shape[1:]}, x_test samples {xte.shape[1:]}; both need one")
    regression = ytr.dtype.kind == "f" or yte.dtype.kind == "f"
    if regression:
        classes, task, outputs = None, "regression", 1
        ytr_n, yte_n = ytr.astype(np.float32), yte.astype(np.float32)
    else:
        values = np.unique(ytr)
        missing = np.setdiff1d(np.unique(yte), values)
        if missing.size:
            raise DataError(f"{path}: y_test holds class {missing[0]}, which y_train never does")
        classes, task, outputs = [str(int(v)) for v in values], "classification", len(values)
        ytr_n = np.searchsorted(values, ytr).astype(np.int64)
        yte_n = np.searchsorted(values, yte).astype(np.int64)
    shape = [int(v) for v in xtr.shape[1:]]
    kind = "image" if len(shape) == 3 else "volume"
    spec: dict[str, Any] = {"kind": kind, "shape": shape}
    if z["x_train"].dtype == np.uint8:  # pixel_scale records 8-bit pixels (export and predict say so)
        spec["pixel_scale"] = PIXEL_SCALE
    if kind == "image":
        spec["image_shape"] = shape
    return F.array_dataset(
        path.stem,
        (xtr, ytr_n),
        (xte, yte_n),
        task=task,
        classes=classes,
        num_outputs=outputs,
        spec=spec,
        source=str(path),
        meta={"format": "npz"},
    )


register(Format("npz", (".npz",), describe=".npz", load=load))
