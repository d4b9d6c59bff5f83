"""One CSV (or TSV) with a header row and a label column, as users keep tables: the label column
named by ``--label-column``, every other column a numeric feature (empty cells are missing values),
and a test set held out of it by ``--test-split`` (stratified by class, drawn from ``--seed``).

Each row is read as a univariate sequence of its feature values (``(F, 1)``, as a UCR row), so an
MLP, a 1-D CNN or a recurrent model takes it; labels that are whole numbers or names are classes
(named by their text), numbers that are not whole make a regression.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ...errors import DataError
from .. import Dataset
from . import build_sequence_dataset, label_kind


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read as UTF-8 text ({type(e).__name__})") from None
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header row and at least one row of data")
    return [c.strip() for c in rows[0]], rows[1:]


def split_indices(labels: list[str], fraction: float, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices: ``fraction`` of each class held out (at least one of a class with
    two or more rows; by a random order from ``seed``), or of all rows for a regression."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    groups = [np.arange(n)]
    if stratify:
        arr = np.array(labels)
        groups = [np.flatnonzero(arr == c) for c in sorted(set(labels))]
    test = []
    for idx in groups:
        idx = rng.permutation(idx)
        k = round(fraction * len(idx))
        if stratify and k == 0 and len(idx) >= 2:
            k = 1
        test.append(idx[:k])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(n), test_idx)
    return train_idx, test_idx


def load_labeled_csv(path: str | Path, label_column: str, test_split: float, seed: int = 0) -> Dataset:
    """The dataset of one labelled table; see the module docstring."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".tsv"):
        raise DataError(f"--label-column reads one .csv or .tsv file with a header row; {path} is neither")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if not 0.0 < test_split < 1.0:
        raise DataError(
            f"--label-column {label_column}: give --test-split F (0 < F < 1), the fraction held out as the test set"
        )
    header, rows = _rows(path)
    if label_column not in header:
        raise DataError(f"{path}: no column {label_column!r}; its columns are {', '.join(header[:12])}")
    li = header.index(label_column)
    features = [i for i in range(len(header)) if i != li]
    if not features:
        raise DataError(f"{path}: the label column is its only column; no features to learn from")
    xs, ys = [], []
    for r, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: line {r} has {len(row)} cells, the header {len(header)}")
        values = []
        for i in features:
            cell = row[i].strip()
            try:
                values.append(float(cell) if cell else np.nan)
            except ValueError:
                raise DataError(
                    f"{path}: line {r}, column {header[i]!r} holds {cell[:20]!r}, not a number; every column "
                    f"but the label is a numeric feature"
                ) from None
        label = row[li].strip()
        if not label:
            raise DataError(f"{path}: line {r} has no label in column {label_column!r}")
        xs.append(np.array(values, dtype=np.float32)[:, None])
        ys.append(label)
    regression = label_kind(ys) == "float"
    train_idx, test_idx = split_indices(ys, test_split, seed, stratify=not regression)
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise DataError(f"{path}: --test-split {test_split} of {len(ys)} rows leaves a split empty")
    targets: list = ys
    if regression:
        targets = [float(v) for v in ys]
    elif label_kind(ys) == "int":  # numeric class labels: the same names whatever their spelling (1, 1.0)
        targets = [str(int(float(v))) for v in ys]
    pick = lambda idx: ([xs[i] for i in idx], [targets[i] for i in idx])  # noqa: E731
    ds = build_sequence_dataset(
        path.stem,
        pick(train_idx),
        pick(test_idx),
        regression=regression,
        source=str(path),
        meta={
            "format": path.suffix[1:].lower(),
            "label_column": label_column,
            "test_split": test_split,
            "columns": [header[i] for i in features],
        },
    )
    # where each sample came from: its row of the file (1 = the first row under the header)
    ds.train.names = [f"{path.name} row {i + 1}" for i in train_idx]
    ds.test.names = [f"{path.name} row {i + 1}" for i in test_idx]
    return ds
