"""Sequences from tables and arrays: UCR-style CSV/TSV pairs, ``.npz`` archives, and the
single-file reader prediction uses (``.npy``, ``.csv``/``.tsv``, ``.ts``).

The datasets are built by :func:`~layerlab.data.formats.build_sequence_dataset`, as for ``.ts``.
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from .. import Dataset
from . import build_sequence_dataset, label_kind, paired_test_file, trim_trailing_missing


# ----------------------------------------------------------------------------------------------
# UCR-style CSV/TSV: one case per row, label first, then the values (NaN/empty pad unequal lengths)
# ----------------------------------------------------------------------------------------------
def read_csv_sequences(path: str | Path, labelled: bool = True) -> tuple[list[np.ndarray], list[str]]:
    """Univariate sequences ``(T_i, 1)`` from a CSV (``,``) or TSV (tab) file: each row
    ``label, v1, v2, ...`` (or only values with ``labelled=False``), and the labels as written.
    Empty cells and ``?`` are missing (NaN); trailing missing values shorten the row's sequence.
    A first row whose values are not numbers is a header and skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delim = "\t" if path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first) else ","
    try:
        rows = [r for r in csv.reader(text.splitlines(), delimiter=delim) if any(c.strip() for c in r)]
    except csv.Error as e:  # e.g. a field longer than the csv module's limit
        kind = "TSV" if delim == "\t" else "CSV"
        raise DataError(f"{path}: not a readable {kind} file ({e})") from None
    return _parse_rows(rows, path, labelled)


def _parse_rows(rows: list[list[str]], path: Path, labelled: bool):
    seqs, labels = [], []
    start = 1 if labelled else 0
    for i, row in enumerate(rows, 1):
        cells = [c.strip() for c in row[start:]]
        try:
            v = np.array([float(c) if c not in ("", "?") else math.nan for c in cells], dtype=np.float64)
        except ValueError:
            if i == 1:
                continue  # a header row
            raise DataError(
                f"{path}, row {i}: a value that is not a number ({next(c for c in cells if not _is_number(c))[:30]!r})"
            ) from None
        if np.isinf(v).any():
            raise DataError(
                f"{path}, row {i}: an infinite value ({cells[int(np.argmax(np.isinf(v)))][:30]!r}); "
                f"leave a cell empty or write '?' for a missing one"
            )
        if labelled and not row[0].strip():
            raise DataError(f"{path}, row {i}: empty label in the first column")
        s = trim_trailing_missing(v[:, None])
        if len(s) == 0:
            raise DataError(f"{path}, row {i}: no values")
        seqs.append(s)
        if labelled:
            labels.append(row[0].strip())
    if not seqs:
        raise DataError(f"{path}: no rows of numbers")
    return seqs, labels


def _is_number(c: str) -> bool:
    try:
        float(c)
        return True
    except ValueError:
        return c in ("", "?")


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
    """Sequences ``(T_i, F)`` from one file, a name for each, and the labels the file carries
    (``.ts``, and UCR-layout CSV as below; else empty).

    ``.npy``: ``(N, T, F)``; ``(N, T)`` N univariate sequences when ``F == 1``, else one ``(T, F)``
    sequence; ``(T,)`` one univariate sequence. ``.csv``/``.tsv``: with ``F == 1`` one sequence per
    row, else one sequence with a row per step and a column per feature. ``.ts``: every case.

    A CSV/TSV in UCR's training layout (the label first, then the values) is recognised when the
    run is fixed-length (``length`` is its ``T``) and every row holds exactly ``T + 1`` values: the
    first column is then the label, returned as the case's label (predict's ``true_label``), not
    read as a value. A file of sequences one step longer than the run's would be misread, but the
    model could not take those anyway. Give ``length=None`` for variable-length runs.
    """
    from .ts import read_ts

    suffix = path.suffix.lower()
    labels: list = []
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except Exception as e:  # a damaged header raises ValueError, OSError, SyntaxError, EOFError...
            raise DataError(f"{path}: not a NumPy .npy file ({type(e).__name__})") from None
        if not isinstance(a, np.ndarray):
            raise DataError(f"{path}: an .npz archive; predict reads one array of sequences from an .npy file")
        if a.dtype.kind not in "biuf":
            raise DataError(f"{path}: expected numbers, got an array of {a.dtype}")
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            where = np.argwhere(~np.isfinite(a))[0]
            raise DataError(f"{path}: the value at index {tuple(int(i) for i in where)} is not finite (inf or NaN)")
        if a.ndim == 1:
            if features != 1:
                raise DataError(f"{path}: a 1-D array is one univariate sequence, the model takes {features} features")
            seqs = [a[:, None]]
        elif a.ndim == 2:
            seqs = [row[:, None] for row in a] if features == 1 else [a]
        elif a.ndim == 3:
            seqs = list(a)
        else:
            raise DataError(f"{path}: expected (N, T, F), (N, T) or (T, F) sequences, got shape {a.shape}")
    elif suffix in (".csv", ".tsv"):
        if features == 1:
            seqs, _ = read_csv_sequences(path, labelled=False)
            if length is not None and all(len(s) == length + 1 for s in seqs):
                seqs, labels = read_csv_sequences(path, labelled=True)  # UCR's layout: label, then T values
        else:
            delim = "\t" if suffix == ".tsv" else ","
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # an empty file warns
                    a = np.genfromtxt(path, delimiter=delim, dtype=np.float64, encoding="utf-8")
            except FileNotFoundError:
                raise DataError(f"{path}: no such file") from None
            except Exception as e:  # ragged rows (ValueError), undecodable bytes, ...
                raise DataError(f"{path}: not a table of numbers ({type(e).__name__})") from None
            if a.ndim == 2 and len(a) and np.isnan(a[0]).all():
                a = a[1:]  # a header row
            if a.size == 0:
                raise DataError(f"{path}: no rows of numbers")
            if np.isinf(a).any():
                raise DataError(
                    f"{path}, row {int(np.argwhere(np.isinf(np.atleast_2d(a)))[0][0]) + 1}: an infinite value"
                )
            seqs = [np.atleast_2d(a)]
    elif suffix == ".ts":
        ts = read_ts(path)
        seqs, labels = ts.series, list(ts.labels)
    else:
        raise DataError(
            f"{path}: cannot predict on a {suffix or 'suffix-less'} file; give .npy, .csv, .tsv or .ts sequences"
        )
    for s in seqs:
        if s.shape[1] != features:
            raise DataError(f"{path}: sequences of {s.shape[1]} features, the model takes {features}")
        if len(s) == 0:
            raise DataError(f"{path}: an empty sequence")
    names = [str(path)] if len(seqs) == 1 else [f"{path}[{i}]" for i in range(len(seqs))]
    return seqs, names, labels


def _npz_grids(z, path: Path) -> Dataset:
    """Images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)`` of an ``.npz``, one target each: integer
    ``y`` classes (named by their values, sorted), float ``y`` regression. ``uint8`` inputs are
    pixels, scaled by 1/255 (as predict scales ``uint8`` arrays); other numbers
    are taken as they are and must be finite. Both splits need one sample shape."""
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
        if x.dtype == np.uint8:
            x = x.astype(np.float32) * np.float32(PIXEL_SCALE)
        else:
            x = x.astype(np.float32)
            bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
            if bad.any():
                raise DataError(f"{path}: x_{part}[{int(np.argmax(bad))}] holds a non-finite value (inf or NaN)")
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
    scaled = z["x_train"].dtype == np.uint8
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
