"""MNIST-1D (Greydanus 2020, "Scaling down deep learning"): ten 1-D digit templates, padded,
scaled, circularly shifted, sheared and given correlated and white noise, then resampled to 40
steps. A sequence set of 5,000 univariate series ``(40, 1)`` in 10 classes, split 4,000 / 1,000.

The data is generated here, never downloaded: :func:`generate` calls the ``mnist1d`` package's
``make_dataset`` with its default arguments (``get_dataset_args()``: seed 42, 5,000 samples, 80%
training), the same data its paper's benchmark trains on, and :func:`write_cache` keeps the arrays
in an ``.npz`` (written to a temporary name, then renamed), so the package is needed once and the
set is the same in every later run, offline. ``make_dataset`` seeds NumPy's and Python's global
random generators; their states are put back afterwards, so loading the set draws nothing from a
caller's streams. The package is an optional dependency: ``pip install 'layerlab[mnist1d]'``.

The paper's test accuracies (its benchmark table, as the mnist1d README gives it) are
:data:`PAPER_ACCURACY`; ``benchmarks/mnist1d_table.py`` sets layerlab's models beside them.
"""

from __future__ import annotations

import json
import os
import random
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from ...errors import DataError
from .. import Dataset
from . import build_sequence_dataset

NAME = "mnist-1d"
FILENAME = "mnist1d_data.npz"
CLASSES = [str(i) for i in range(10)]
LENGTH = 40
N_TRAIN, N_TEST = 4000, 1000
#: The paper's test accuracies (its benchmark table, as the mnist1d README gives it), as fractions.
PAPER_ACCURACY = {"logistic regression": 0.32, "MLP": 0.68, "GRU": 0.91, "CNN": 0.94}
INSTALL_HINT = "pip install 'layerlab[mnist1d]'"


def generate() -> tuple[dict[str, np.ndarray], dict]:
    """The package's default MNIST-1D: ``x_train`` ``(4000, 40)``, ``y_train`` ``(4000,)``,
    ``x_test`` ``(1000, 40)``, ``y_test`` ``(1000,)``, and what made it (package version and
    arguments). Raises :class:`DataError` when the ``mnist1d`` package cannot be imported."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:
        missing = (getattr(e, "name", None) or "").split(".")[0]
        why = "" if missing == "mnist1d" else f" (importing it failed: {e})"
        raise DataError(f"mnist-1d is generated with the mnist1d package{why}: {INSTALL_HINT}") from None
    args = get_dataset_args()
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(args)  # seeds the global generators from args.seed
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    try:
        pkg = version("mnist1d")
    except PackageNotFoundError:
        pkg = "unknown"
    made_by = {
        "package": f"mnist1d {pkg}",
        "args": {k: v for k, v in vars(args).items() if k != "url"},
    }
    arrays = {
        "x_train": np.asarray(d["x"], dtype=np.float64),
        "y_train": np.asarray(d["y"], dtype=np.int64),
        "x_test": np.asarray(d["x_test"], dtype=np.float64),
        "y_test": np.asarray(d["y_test"], dtype=np.int64),
    }
    return arrays, made_by


def write_cache(path: Path, arrays: dict[str, np.ndarray], made_by: dict) -> Path:
    """Keep ``arrays`` as ``path`` (an ``.npz``): written to a temporary file beside it, flushed,
    then renamed, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per process: two may generate at once
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, made_by=np.array(json.dumps(made_by)))  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_cache(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays :func:`write_cache` kept, checked: shapes, finite values, labels 0 to 9."""
    fix = f"delete it and {NAME} is generated again"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in ("x_train", "y_train", "x_test", "y_test")}
            made_by = json.loads(str(z["made_by"])) if "made_by" in z.files else {}
    except Exception as e:  # not a zip, a damaged member, a missing array, pickled objects...
        raise DataError(f"{path}: not a readable {NAME} cache ({type(e).__name__}); {fix}") from None
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim != 2 or x.shape[1] != LENGTH or y.shape != (len(x),) or len(x) == 0:
            raise DataError(
                f"{path}: x_{part} {x.shape} and y_{part} {y.shape} are not {NAME}'s (N, {LENGTH}) and (N,); {fix}"
            )
        if x.dtype.kind != "f" or not np.isfinite(x).all() or y.dtype.kind not in "iu" or y.min() < 0 or y.max() > 9:
            raise DataError(f"{path}: x_{part} or y_{part} holds values {NAME} never has; {fix}")
    return arrays, made_by


def load_mnist1d(found: Path | None, target: Path) -> Dataset:
    """MNIST-1D from the cache file ``found``, or (None) generated now and kept as ``target``.

    Sequences ``(40, 1)``, standardised with the training set's mean and standard deviation like
    every sequence set (the package has already scaled the whole set to mean 0 and deviation 1, so
    this changes the values by little), classes ``"0"`` to ``"9"``."""
    if found is not None:
        arrays, made_by = read_cache(found)
        path = found
    else:
        arrays, made_by = generate()
        path = write_cache(target, arrays, made_by)
    train = ([s[:, None] for s in arrays["x_train"]], [str(int(v)) for v in arrays["y_train"]])
    test = ([s[:, None] for s in arrays["x_test"]], [str(int(v)) for v in arrays["y_test"]])
    return build_sequence_dataset(
        NAME,
        train,
        test,
        classes=CLASSES,
        source=str(path),
        meta={"format": "mnist1d", "generated_by": made_by, "paper_accuracy": PAPER_ACCURACY},
    )
