"""Sequences from tables and arrays: UCR-style CSV/TSV pairs, ``.npz`` archives, and the
single-file reader prediction uses (``.npy``, ``.csv``/``.tsv``, ``.ts``).

The datasets are built by :func:`~layerlab.data.formats.build_sequence_dataset`, as for ``.ts``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ... import readers
from ...errors import DataError
from ...readers import read_csv_sequences
from .. import Dataset
from . import build_sequence_dataset, label_kind, paired_test_file


# ----------------------------------------------------------------------------------------------
# UCR-style CSV/TSV: one case per row, label first, then the values (NaN/empty pad unequal lengths);
# the rows are read by layerlab.readers.read_csv_sequences (in NumPy, shared with predict --onnx)
# ----------------------------------------------------------------------------------------------
def load_csv_pair(train_path: str | Path) -> Dataset:
    """``NAME_TRAIN.csv`` / ``.tsv`` (label, values...) and ``NAME_TEST`` beside it; numeric
    non-integer labels make a regression."""
    train_path = Path(train_path)
    test_path = paired_test_file(train_path)
    xtr, ytr = read_csv_sequences(train_path)
    xte, yte = read_csv_sequences(test_path)
    regression = label_kind(ytr + yte) == "float"
    return build_sequence_dataset(
        train_path.stem[:-6],
        (xtr, ytr),
        (xte, yte),
        regression=regression,
        source=str(train_path.parent),
        meta={"format": train_path.suffix[1:]},
    )


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


def load_npz(path: str | Path) -> Dataset:
    """An ``.npz`` with ``x_train, y_train, x_test, y_test`` (and optionally ``lengths_train``,
    ``lengths_test``). The rank of ``x`` says what it holds: sequences ``(N, T)`` or ``(N, T, F)``,
    images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)`` (see :func:`_npz_grids`); integer ``y`` classes, float ``y``
    regression; ``y`` ``(N, T)`` one target per step (a ``step`` head; -100 beyond a sequence's
    length, which the loss ignores). Arrays must hold numbers (never pickled objects), ``x`` and
    float ``y`` must be finite (an .npz has no notion of a missing value), class ids not negative
    (but -100, ignored, per step)."""
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
        return _npz_grids(z, path)
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
            return build_sequence_dataset(
                name, (seq_tr, list(ytr)), (seq_te, list(yte)), regression=True, source=str(path), meta=meta
            )
        ytr_s, yte_s = [str(int(v)) for v in ytr], [str(int(v)) for v in yte]
        return build_sequence_dataset(name, (seq_tr, ytr_s), (seq_te, yte_s), source=str(path), meta=meta)
    # one target per step: standardise x as usual, keep y as given (-100 ignored for classes)
    ds = build_sequence_dataset(
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
        return torch.from_numpy(out)

    ds.train.y, ds.test.y = targets(ytr, ltr), targets(yte, lte)
    if not regression:
        k = int(max(ds.train.y.max(), ds.test.y.max())) + 1
        ds.task, ds.classes, ds.num_outputs = "sequence-classification", [str(i) for i in range(k)], k
    return ds


# ----------------------------------------------------------------------------------------------
# One file of sequences to predict on
# ----------------------------------------------------------------------------------------------
def read_sequence_file(
    path: Path, features: int, length: int | None = None
) -> tuple[list[np.ndarray], list[str], list]:
    """Sequences ``(T_i, F)`` from one ``.npy``, ``.csv``, ``.tsv`` or ``.ts`` file, a name for each,
    and the labels the file carries (``.ts``, and UCR-layout CSV; else empty): see
    :func:`layerlab.readers.read_sequence_file`, which reads them, and ``.ts`` files with
    :func:`~layerlab.data.formats.ts.read_ts`.
    """
    return readers.read_sequence_file(path, features, length, read_ts=ts_cases)


def ts_cases(path: Path) -> tuple[list[np.ndarray], list]:
    """Every case of a ``.ts`` file and its label, as :mod:`layerlab.readers` takes them (``read_ts``)."""
    from .ts import read_ts

    ts = read_ts(path)
    return ts.series, list(ts.labels)


def _npz_grids(z, path: Path) -> Dataset:
    """Images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)`` of an ``.npz``, one target each: integer
    ``y`` classes (named by their values, sorted), float ``y`` regression. Inputs are scaled by
    :func:`layerlab.readers.scale_pixels`, the one rule for pixels (``uint8`` by 1/255, ``uint16``
    by 1/65535, floats as they are and finite, other integer types refused), as predict scales
    ``.npy`` arrays. Both splits need one sample shape."""
    from ..transforms import PIXEL_SCALE, InputSpec

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
        x, _ = readers.scale_pixels(x, f"{path}: x_{part}")  # the one rule for integer pixels
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise DataError(f"{path}: y_{part}[{int(np.argmax(~np.isfinite(y)))}] is not finite (inf or NaN)")
        parts[part] = (x, y)
    (xtr, ytr), (xte, yte) = parts["train"], parts["test"]
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(f"{path}: x_train samples are {xtr.shape[1:]}, x_test samples {xte.shape[1:]}; both need one")
    regression = ytr.dtype.kind == "f" or yte.dtype.kind == "f"
    if regression:
        classes, task, outputs = None, "regression", 1
        ytr_t, yte_t = torch.from_numpy(ytr.astype(np.float32)), torch.from_numpy(yte.astype(np.float32))
    else:
        values = np.unique(ytr)
        missing = np.setdiff1d(np.unique(yte), values)
        if missing.size:
            raise DataError(f"{path}: y_test holds class {missing[0]}, which y_train never does")
        classes, task, outputs = [str(int(v)) for v in values], "classification", len(values)
        ytr_t = torch.from_numpy(np.searchsorted(values, ytr).astype(np.int64))
        yte_t = torch.from_numpy(np.searchsorted(values, yte).astype(np.int64))
    from .. import Split

    shape = tuple(int(v) for v in xtr.shape[1:])
    kind = "image" if len(shape) == 3 else "volume"
    scaled = z["x_train"].dtype == np.uint8  # pixel_scale records 8-bit pixels (export and predict say so)
    spec = InputSpec(
        kind,
        shape,
        pixel_scale=PIXEL_SCALE if scaled else None,
        image_shape=shape if kind == "image" else None,
    )
    return Dataset(
        path.stem,
        Split(torch.from_numpy(xtr), ytr_t),
        Split(torch.from_numpy(xte), yte_t),
        task,
        classes,
        outputs,
        source=str(path),
        meta={"format": "npz"},
        spec=spec,
    )
