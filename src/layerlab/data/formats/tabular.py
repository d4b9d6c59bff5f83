"""Sequences from tables: UCR-style CSV/TSV pairs, and the single-file reader ``predict RUN_DIR``
uses (``.npy``, ``.csv``/``.tsv``, and ``.ts`` through :func:`ts_cases`). (``.npz`` archives are
read whole by :mod:`layerlab.fileformats.npz`.)

The datasets are built by :func:`~layerlab.data.formats.build_sequence_dataset`, as for ``.ts``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ... import readers
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
    ds = build_sequence_dataset(
        train_path.stem[:-6],
        (xtr, ytr),
        (xte, yte),
        regression=regression,
        source=str(train_path.parent),
        meta={"format": train_path.suffix[1:]},
    )
    ds.train.names = [f"{train_path.name} row {i + 1}" for i in range(len(ds.train))]  # one case per row
    ds.test.names = [f"{test_path.name} row {i + 1}" for i in range(len(ds.test))]
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
