"""One rule for class labels, wherever they enter (``fit``'s arrays, an ``.npz``, IDX files,
``--n-train`` subsets, every dataset the command line loads). NumPy only: no torch.

The rule:

- **Class ids are integers** (an integer or bool array, or floats that are whole numbers where
  classes are expected). A label that is not a whole number is refused, and so is one beyond
  :data:`MAX_CLASS_ID` in size (``10**9`` is a value, not the id of one of a billion classes): it is
  refused before anything is allocated for it.
- **One-hot rows** (a 2-D array of 0s and 1s, one 1 per row, as Keras's ``categorical_crossentropy``
  takes them) are class ids ``0..K-1`` for ``K`` columns, with a notice; never regression.
- **The class set** is the classes a dataset names (image folders, a dataset's class names; ``K``
  names are ``K`` outputs), else the distinct labels of the training split. At least two classes
  must occur in training, and a test (or validation) label that no training sample has is refused:
  its samples could never be right.
- **Labels that are not ``0..K-1``** (``1..10``, ``{0, 5}``, ``{-1, 1}``) are mapped, in increasing
  order, to classes ``0..K-1``, with a notice naming the mapping. The classes keep the original labels
  as their names (``run.json``'s ``classes``), so predictions name the original labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import DataError

#: The largest class id taken (in size): an id beyond it is a value or a corrupt byte, not a class.
MAX_CLASS_ID = 1_000_000


@dataclass(frozen=True)
class ClassSet:
    """The classes of a dataset: ``values`` are the original labels in class order (class ``i`` is
    label ``values[i]``), ``names`` what predictions call them, ``notice`` the sentence that says
    how labels were mapped (None: labels are class ids as they are)."""

    values: tuple[int, ...]
    names: list[str]
    notice: str | None = None

    @property
    def k(self) -> int:
        return len(self.values)

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Original labels (checked members of the set) as class ids ``0..K-1`` (int64)."""
        y = np.asarray(y, dtype=np.int64)
        values = np.asarray(self.values, dtype=np.int64)
        if len(values) and np.array_equal(values, np.arange(len(values))):
            return y
        return np.searchsorted(values, y).astype(np.int64)


def one_hot(a: np.ndarray) -> np.ndarray | None:
    """The class ids of one-hot rows ``(N, K)`` (0s and 1s, one 1 per row, ``K >= 2``), else None."""
    if a.ndim != 2 or a.shape[1] < 2 or a.shape[0] == 0 or a.dtype.kind not in "biuf":
        return None
    if not np.isin(a, (0, 1)).all() or not (a.sum(axis=1) == 1).all():
        return None
    return a.argmax(axis=1).astype(np.int64)


def class_ids(a: np.ndarray, what: str = "y") -> np.ndarray:
    """Labels ``(N,)`` as int64 class ids, refused in one sentence when a label is not a whole
    number or is beyond :data:`MAX_CLASS_ID` in size (checked before anything is allocated)."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise DataError(f"{what} holds {a.dtype} values; class labels are integers")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{what}[{i}] is {a[i]}, not a whole class id; class labels are integers")
    if a.size:
        lo, hi = a.min(), a.max()
        big = hi if abs(float(hi)) >= abs(float(lo)) else lo
        if abs(float(big)) > MAX_CLASS_ID:
            raise DataError(
                f"{what} holds the label {int(big)}, which cannot be a class id (class labels are integers of at "
                f"most {MAX_CLASS_ID:,}); give class ids such as 0..K-1, or float targets for regression"
            )
    return a.astype(np.int64)


def _span(values: np.ndarray) -> str:
    if len(values) > 2 and np.array_equal(values, np.arange(values[0], values[0] + len(values))):
        return f"{values[0]}..{values[-1]}"
    shown = ", ".join(str(int(v)) for v in values[:6])
    return f"{{{shown}{', ...' if len(values) > 6 else ''}}}"


def class_set(
    y_train: np.ndarray,
    held_out: Sequence[tuple[str, np.ndarray]] = (),
    *,
    where: str = "y",
    names: list[str] | None = None,
) -> ClassSet:
    """The class set of training labels ``y_train`` (int64 ids, see :func:`class_ids`), by the rule
    in the module docstring; ``held_out``: ``(what, labels)`` of the other splits, whose labels must
    all occur in training; ``names``: the classes the dataset names (labels index them). Raises
    DataError naming ``where`` for the first thing wrong."""
    y_train = np.asarray(y_train, dtype=np.int64)
    present = np.unique(y_train)
    if len(present) < 2:
        raise DataError(
            f"{where}: every training label is {present[0] if len(present) else 'absent'}; classification "
            f"needs at least two classes"
        )
    for what, y in held_out:
        missing = np.setdiff1d(np.unique(np.asarray(y, dtype=np.int64)), present)
        if missing.size:
            label = names[int(missing[0])] if names and 0 <= missing[0] < len(names) else int(missing[0])
            raise DataError(f"{where}: {what} holds the class {label}, which no training sample has")
    if names is not None:
        if present[0] < 0 or present[-1] >= len(names):
            raise DataError(f"{where}: a label is {present[-1]}, beyond the {len(names)} class names")
        return ClassSet(tuple(range(len(names))), list(names))
    k = len(present)
    if np.array_equal(present, np.arange(k)):
        return ClassSet(tuple(range(k)), [str(i) for i in range(k)])
    notice = (
        f"{where}: the labels {_span(present)} are read as classes {_span(np.arange(k))} in that order "
        f"(predictions name the original labels)"
    )
    return ClassSet(tuple(int(v) for v in present), [str(int(v)) for v in present], notice)


def names_notice(names: list[str], where: str) -> str | None:
    """The notice for class names that are integer labels other than ``0..K-1`` (a format mapped
    its labels, as an ``.npz`` with labels ``{0, 7}`` or a ``.ts`` file with ``1..K``), else None."""
    try:
        values = np.array([int(n) for n in names], dtype=np.int64)
    except ValueError:
        return None
    if np.array_equal(values, np.arange(len(values))):
        return None
    return (
        f"{where}: the labels {_span(values)} are read as classes {_span(np.arange(len(values)))} in that order "
        f"(predictions name the original labels)"
    )


def default_names(names: list[str] | None) -> bool:
    """True when ``names`` are only the class ids ``0..K-1`` (no dataset named its classes)."""
    return names is None or names == [str(i) for i in range(len(names))]


def encode_by_names(y: np.ndarray, names: list[str], what: str = "y") -> np.ndarray:
    """Labels of a trained model's classes ``names`` (original labels, as :class:`ClassSet` keeps
    them) as its class ids; a label it does not know is one sentence."""
    y = class_ids(y, what)
    try:
        values = np.array([int(n) for n in names], dtype=np.int64)
    except ValueError:  # named classes: labels are their indices
        values = np.arange(len(names), dtype=np.int64)
    order = np.argsort(values)
    pos = np.searchsorted(values, y, sorter=order)
    pos = np.minimum(pos, len(values) - 1)
    ids = order[pos]
    unknown = values[ids] != y
    if unknown.any():
        i = int(np.argmax(unknown))
        known = _span(np.sort(values))
        raise DataError(
            f"{what}[{i}] is the label {int(y[i])}, which the model does not know (it knows {len(names)} classes, "
            f"labels {known})"
        )
    return ids.astype(np.int64)
