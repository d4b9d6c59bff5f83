"""The torch side of the file formats: readers of whole datasets into a :class:`~layerlab.data.Dataset`.

- :mod:`.idx` -- IDX files (the MNIST layout);
- :mod:`.cifar` -- CIFAR-10 python batches;
- :mod:`.folder` -- image files and image folders (``root/<class>/*.png``);
- :mod:`.ts` -- UCR/UEA ``.ts`` time series;
- :mod:`.tabular` -- UCR-style CSV/TSV;
- :mod:`.text` -- character-level text.

Which file format a path is, and the torch-free readers of single inputs for predict, live in the
format registry :mod:`layerlab.fileformats` (one module per format; ``.npz`` is read whole there,
making its tensors with :func:`array_dataset`, :func:`with_targets` and
:func:`build_sequence_dataset` from here). Every reader raises :class:`~layerlab.errors.DataError`
with one sentence naming the file for anything it cannot read; directories (IDX, CIFAR-10, image
folders, ``.ts`` pairs) are routed in :mod:`..catalog`.

This module holds what the readers share: bytes that may be gzipped, trimming trailing missing
steps (:func:`layerlab.readers.trim_trailing_missing`, shared with predict --onnx), UCR's
``NAME_TRAIN``/``NAME_TEST`` pairing, and :func:`build_sequence_dataset`, where every sequence
format (``.ts``, CSV/TSV, ``.npz``) ends: features standardised with the training set's per-feature
mean and standard deviation (recorded in the input spec, so predict applies the same), one padded
length ``T_max`` for both splits, and the true lengths in ``Split.lengths`` where they differ; the
recurrent models pack or mask them, so a sequence's result does not depend on the padding. (Here
rather than in :mod:`.tabular` so that :mod:`.ts` and :mod:`.tabular`, which reads ``.ts`` files
for prediction, do not import each other.)
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ...readers import trim_trailing_missing as trim_trailing_missing  # the readers' (NumPy), shared
from .. import Dataset, Split
from ..transforms import InputSpec, feature_stats, pad_sequences, standardise


def read_maybe_gzip(path: Path) -> bytes:
    """The bytes of ``path``, decompressed when they start with the gzip magic number."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        # a damaged deflate stream raises zlib.error, which is not an OSError
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip data ({e})") from None
    return raw


# ----------------------------------------------------------------------------------------------
# Sequence datasets: every sequence format (.ts, CSV/TSV, .npz) ends in build_sequence_dataset
# ----------------------------------------------------------------------------------------------
def label_kind(labels: list[str]) -> str:
    """``int`` for integer class labels, ``float`` for numeric non-integers (regression), ``str``."""
    try:
        vals = [float(v) for v in labels]
    except ValueError:
        return "str"
    return "int" if all(v.is_integer() for v in vals) else "float"


def class_order(names: list[str]) -> list[str]:
    """The distinct labels in class-index order: numerically for numbers, else alphabetically."""
    kind = label_kind(names)
    return sorted(set(names), key=float) if kind in ("int", "float") else sorted(set(names))


def build_sequence_dataset(
    name: str,
    train: tuple[list[np.ndarray], list],
    test: tuple[list[np.ndarray], list],
    *,
    classes: list[str] | None = None,
    regression: bool = False,
    source: str = "",
    meta: dict | None = None,
    head: str = "last",
) -> Dataset:
    """A :class:`Dataset` from lists of ``(T_i, F)`` arrays and labels: features standardised with
    the training statistics, both splits padded to one length ``T_max`` (``x`` ``(N, T_max, F)``),
    ``lengths`` ``(N,)`` on both splits where any differs. Labels are class names (``classes``
    gives their order, else :func:`class_order`) or, with ``regression``, numbers. ``head`` goes
    into the input spec (``step`` for per-step targets, which the caller then sets).

    Checked here, before any training, each as one sentence naming ``source`` (else ``name``): both
    splits hold cases; no value is infinite (NaN is a missing value, filled with the training mean
    and counted in ``meta["missing_values_filled"]``); regression targets are finite; classes have
    at least two classes in training, and no test class is missing from training (its cases could
    never be right, and dropping them silently would overstate accuracy)."""
    (xtr, ytr), (xte, yte) = train, test
    where = source or name
    for part, xs, ys in (("training", xtr, ytr), ("test", xte, yte)):
        if len(xs) == 0:
            raise DataError(f"{where}: the {part} set holds no cases")
        for i, s in enumerate(xs):
            if np.isinf(s).any():
                raise DataError(f"{where}: {part} case {i + 1} holds an infinite value; only NaN means missing")
        if regression:
            bad = [i for i, v in enumerate(ys) if not math.isfinite(float(v))]
            if bad:
                raise DataError(
                    f"{where}: {part} case {bad[0] + 1} has the target {ys[bad[0]]}; targets must be finite"
                )
    if not regression:
        train_classes, test_classes = {str(v) for v in ytr}, {str(v) for v in yte}
        if len(train_classes) < 2:
            raise DataError(
                f"{where}: every training case has the class {next(iter(train_classes))}; "
                f"classification needs at least two classes"
            )
        unseen = class_order(sorted(test_classes - train_classes)) if test_classes - train_classes else []
        if unseen:
            raise DataError(
                f"{where}: the test set has class(es) {', '.join(unseen[:5])} that no training case has"
                f"{'' if len(unseen) <= 5 else f' (and {len(unseen) - 5} more)'}"
            )
    F_tr, F_te = xtr[0].shape[1], xte[0].shape[1]
    if F_tr != F_te:
        raise DataError(f"{name}: the training cases have {F_tr} dimensions, the test cases {F_te}")
    mean, std = feature_stats(xtr)
    # standardise fills NaN and refuses, naming the case, a value beyond float32's range once standardised
    xtr, miss_tr = standardise(xtr, mean, std, [f"{where}, training case {i + 1}" for i in range(len(xtr))])
    xte, miss_te = standardise(xte, mean, std, [f"{where}, test case {i + 1}" for i in range(len(xte))])
    T = max(max(len(s) for s in xtr), max(len(s) for s in xte))
    Xtr, Ltr = pad_sequences(xtr, T)
    Xte, Lte = pad_sequences(xte, T)
    if (Ltr is None) != (Lte is None):  # keep lengths on both or neither
        Ltr = Ltr if Ltr is not None else torch.full((len(xtr),), T, dtype=torch.int64)
        Lte = Lte if Lte is not None else torch.full((len(xte),), T, dtype=torch.int64)
    spec = InputSpec(
        "sequence",
        (T, F_tr),
        head=head,
        feature_mean=tuple(float(v) for v in mean),
        feature_std=tuple(float(v) for v in std),
        variable_length=Ltr is not None,
    )
    meta = dict(meta or {})
    if miss_tr or miss_te:
        meta["missing_values_filled"] = miss_tr + miss_te
    if regression:
        Ytr = torch.tensor([float(v) for v in ytr], dtype=torch.float32)
        Yte = torch.tensor([float(v) for v in yte], dtype=torch.float32)
        return Dataset(name, Split(Xtr, Ytr, Ltr), Split(Xte, Yte, Lte), "regression", None, 1, source, meta, spec)
    classes = list(classes) if classes else class_order(list(ytr) + list(yte))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(v) for v in list(ytr) + list(yte)} - set(index))
    if unknown:
        raise DataError(
            f"{name}: class label(s) {', '.join(unknown[:5])} are not among the classes {' '.join(classes)}"
        )
    Ytr = torch.tensor([index[str(v)] for v in ytr], dtype=torch.int64)
    Yte = torch.tensor([index[str(v)] for v in yte], dtype=torch.int64)
    return Dataset(
        name, Split(Xtr, Ytr, Ltr), Split(Xte, Yte, Lte), "classification", classes, len(classes), source, meta, spec
    )


def paired_test_file(train_path: Path) -> Path:
    """``NAME_TEST.<suffix>`` beside ``NAME_TRAIN.<suffix>`` (UCR's layout)."""
    stem = train_path.stem
    if not stem.upper().endswith("_TRAIN"):
        raise DataError(
            f"{train_path}: name the training file NAME_TRAIN{train_path.suffix}, with "
            f"NAME_TEST{train_path.suffix} beside it as the test set"
        )
    test = train_path.with_name(stem[:-6] + ("_TEST" if stem.endswith("_TRAIN") else "_test") + train_path.suffix)
    if not test.is_file():
        raise DataError(f"{train_path}: the test set {test.name} is not beside it")
    return test


# ----------------------------------------------------------------------------------------------
# Tensors from NumPy, for formats that read arrays (layerlab.fileformats, torch-free, call these)
# ----------------------------------------------------------------------------------------------
def array_dataset(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    task: str,
    classes: list[str] | None,
    num_outputs: int,
    spec: dict,
    source: str = "",
    meta: dict | None = None,
) -> Dataset:
    """A :class:`Dataset` of samples and targets already in their final NumPy form (float32 inputs;
    int64 classes or float32 values), with the input spec the dict ``spec`` gives."""
    (xtr, ytr), (xte, yte) = train, test
    return Dataset(
        name,
        Split(torch.from_numpy(xtr), torch.from_numpy(ytr)),
        Split(torch.from_numpy(xte), torch.from_numpy(yte)),
        task,
        classes,
        num_outputs,
        source=source,
        meta=dict(meta or {}),
        spec=InputSpec.from_dict(spec),
    )


def with_targets(ds: Dataset, ytr: np.ndarray, yte: np.ndarray, **fields) -> Dataset:
    """``ds`` with the targets ``ytr`` / ``yte`` (NumPy, one per sample or per step) and ``fields``
    (``task``, ``classes``, ``num_outputs``) set."""
    ds.train.y, ds.test.y = torch.from_numpy(ytr), torch.from_numpy(yte)
    for k, v in fields.items():
        setattr(ds, k, v)
    return ds
