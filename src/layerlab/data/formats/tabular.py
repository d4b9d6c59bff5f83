"""Sequences from tables and arrays: UCR-style CSV/TSV pairs, ``.npz`` archives, and the
single-file reader prediction uses (``.npy``, ``.csv``/``.tsv``, ``.ts``).

The datasets are built by :func:`~layerlab.data.formats.build_sequence_dataset`, as for ``.ts``.
"""

from __future__ import annotations

import csv
import math
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


def load_npz(path: str | Path) -> Dataset:
    """An ``.npz`` with ``x_train, y_train, x_test, y_test`` (and optionally ``lengths_train``,
    ``lengths_test``). ``x`` is ``(N, T)`` or ``(N, T, F)``; integer ``y`` classes, float ``y``
    regression; ``y`` ``(N, T)`` one target per step (a ``step`` head; -100 beyond a sequence's
    length, which the loss ignores)."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a NumPy .npz archive ({e})") from None
    need = {"x_train", "y_train", "x_test", "y_test"}
    if not need <= set(z.files):
        raise DataError(
            f"{path}: an .npz dataset needs arrays {', '.join(sorted(need))}; it holds {', '.join(z.files) or 'none'}"
        )
    splits, per_step, regression = {}, False, False
    for part in ("train", "test"):
        x, y = np.asarray(z[f"x_{part}"]), np.asarray(z[f"y_{part}"])
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3:
            raise DataError(f"{path}: x_{part} must be (N, T) or (N, T, F), got {x.shape}")
        if len(y) != len(x):
            raise DataError(f"{path}: x_{part} has {len(x)} sequences, y_{part} {len(y)} targets")
        if y.ndim == 2 and y.shape[1] != x.shape[1]:
            raise DataError(f"{path}: per-step y_{part} {y.shape} must have the T={x.shape[1]} of x_{part}")
        if y.ndim not in (1, 2):
            raise DataError(f"{path}: y_{part} must be (N,) or (N, T), got {y.shape}")
        per_step |= y.ndim == 2
        regression |= y.dtype.kind == "f"
        lengths = z[f"lengths_{part}"] if f"lengths_{part}" in z.files else np.full(len(x), x.shape[1])
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.shape != (len(x),) or lengths.min() < 1 or lengths.max() > x.shape[1]:
            raise DataError(f"{path}: lengths_{part} must hold {len(x)} lengths between 1 and {x.shape[1]}")
        splits[part] = (x.astype(np.float64), y, lengths)
    name = path.stem
    (xtr, ytr, ltr), (xte, yte, lte) = splits["train"], splits["test"]
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
def read_sequence_file(path: Path, features: int) -> tuple[list[np.ndarray], list[str], list]:
    """Sequences ``(T_i, F)`` from one file, a name for each, and the labels the file carries (``.ts``).

    ``.npy``: ``(N, T, F)``; ``(N, T)`` N univariate sequences when ``F == 1``, else one ``(T, F)``
    sequence; ``(T,)`` one univariate sequence. ``.csv``/``.tsv``: with ``F == 1`` one sequence per
    row, else one sequence with a row per step and a column per feature. ``.ts``: every case.
    """
    from .ts import read_ts

    suffix = path.suffix.lower()
    labels: list = []
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a NumPy .npy file ({e})") from None
        if a.dtype.kind not in "iuf":
            raise DataError(f"{path}: expected numbers, got an array of {a.dtype}")
        a = a.astype(np.float64)
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
        else:
            delim = "\t" if suffix == ".tsv" else ","
            try:
                a = np.genfromtxt(path, delimiter=delim, dtype=np.float64)
            except (OSError, ValueError) as e:
                raise DataError(f"{path}: not a table of numbers ({e})") from None
            if a.ndim == 2 and np.isnan(a[0]).all():
                a = a[1:]  # a header row
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
