"""UCR/UEA ``.ts`` time series (https://www.timeseriesclassification.com, the sktime/aeon format).

The format is a page of code: a header of @-lines, then one case per line, dimensions separated
by ':', values by ',', the label last. aeon's reader is well kept but pulls in numba, pandas, scipy
and scikit-learn (and ~4 s of imports) for it, so we read it ourselves and test against aeon on
the sets it bundles (tests/recurrent/test_rnn_data.py) and with hypothesis
(tests/data/test_formats_hypothesis.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DataError
from .. import Dataset
from . import build_sequence_dataset, paired_test_file, trim_trailing_missing


@dataclass
class TsData:
    """One ``.ts`` file: ``series`` of ``(T_i, F)`` float arrays (NaN where missing), ``labels``
    (class names, or floats for a regression file), the declared class names, ``regression``."""

    series: list[np.ndarray]
    labels: list
    class_names: list[str] | None
    regression: bool
    problem: str | None
    path: Path


def _ts_bool(value: str, key: str, path: Path, lineno: int) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise DataError(f"{path}, line {lineno}: @{key} must be true or false, got {value.strip()!r}")
    return v == "true"


def _ts_values(text: str, path: Path, lineno: int, dim: int) -> np.ndarray:
    text = text.strip()
    if not text:
        return np.zeros(0)
    out = []
    for tok in text.split(","):
        tok = tok.strip()
        if tok in ("?", "", "NaN", "nan"):
            out.append(math.nan)
            continue
        try:
            v = float(tok)
        except ValueError:
            raise DataError(
                f"{path}, line {lineno}: dimension {dim + 1} holds {tok[:30]!r}, which is not a "
                f"number (nor '?' for a missing value)"
            ) from None
        if math.isinf(v):
            raise DataError(
                f"{path}, line {lineno}: dimension {dim + 1} holds {tok[:30]!r}, an infinite value "
                f"(write '?' for a missing one)"
            )
        out.append(v)
    return np.asarray(out, dtype=np.float64)


def read_ts(path: str | Path) -> TsData:
    """Read a UCR/UEA ``.ts`` file: univariate or multivariate, equal or unequal length, class
    labels or regression targets (``@targetLabel true``). Missing values (``?``) are NaN; trailing
    all-missing steps are dropped. Timestamped files (``@timeStamps true``) are not supported.

    Raises :class:`DataError` with one sentence naming the file (and line) for anything malformed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file (a .ts file is UTF-8 text)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    header: dict[str, str] = {}
    class_names: list[str] | None = None
    has_class = regression = False
    dims_declared = None
    in_data = False
    series: list = []
    labels: list = []
    n_dims = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "%")):  # comments (% as in ARFF)
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DataError(
                    f"{path}, line {lineno}: expected an @-header line or @data before the data, "
                    f"got {line[:40]!r}; is this a .ts file?"
                )
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                in_data = True
                continue
            header[key] = value
            if key == "classlabel":
                parts = value.split()
                has_class = _ts_bool(parts[0] if parts else "", "classLabel", path, lineno)
                if has_class:
                    class_names = parts[1:] or None
            elif key == "targetlabel":
                regression = _ts_bool(value, "targetLabel", path, lineno)
            elif key == "timestamps" and _ts_bool(value, "timeStamps", path, lineno):
                raise DataError(
                    f"{path}: timestamped .ts files (@timeStamps true) are not supported; "
                    f"export the series without timestamps"
                )
            elif key in ("dimension", "dimensions"):
                try:
                    dims_declared = int(value)
                except ValueError:
                    raise DataError(f"{path}, line {lineno}: @{key} must be an integer, got {value!r}") from None
            continue
        fields = line.split(":")
        labelled = has_class or regression
        if labelled:
            if len(fields) < 2:
                raise DataError(
                    f"{path}, line {lineno}: expected the values and then a "
                    f"{'target' if regression else 'class label'} after the last ':'"
                )
            label = fields[-1].strip()
            fields = fields[:-1]
            if regression:
                try:
                    target = float(label)
                except ValueError:
                    raise DataError(f"{path}, line {lineno}: target {label[:30]!r} is not a number") from None
                if not math.isfinite(target):
                    raise DataError(f"{path}, line {lineno}: target {label[:30]!r} is not a finite number")
                labels.append(target)
            else:
                if class_names is not None and label not in class_names:
                    raise DataError(
                        f"{path}, line {lineno}: class label {label!r} is not among the declared "
                        f"labels {' '.join(class_names)}"
                    )
                labels.append(label)
        if n_dims is None:
            n_dims = len(fields)
            if dims_declared is not None and dims_declared != n_dims:
                raise DataError(
                    f"{path}, line {lineno}: @dimensions declares {dims_declared} dimensions but the "
                    f"first case has {n_dims}"
                )
        elif len(fields) != n_dims:
            raise DataError(
                f"{path}, line {lineno}: this case has {len(fields)} dimensions, the first case has {n_dims}"
            )
        dims = [_ts_values(f, path, lineno, d) for d, f in enumerate(fields)]
        T = max(len(d) for d in dims)
        if T == 0:
            raise DataError(f"{path}, line {lineno}: a case with no values")
        s = np.full((T, n_dims), np.nan)
        for d, v in enumerate(dims):
            s[: len(v), d] = v
        s = trim_trailing_missing(s)
        if len(s) == 0:
            raise DataError(f"{path}, line {lineno}: a case whose values are all missing")
        series.append(s)
    if not in_data:
        raise DataError(f"{path}: no @data line; not a UCR/UEA .ts file")
    if not series:
        raise DataError(f"{path}: no cases after @data")
    if not (has_class or regression):
        labels = []
    return TsData(series, labels, class_names, regression, header.get("problemname"), path)


def load_ts_pair(train_path: str | Path) -> Dataset:
    """``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` beside it, as one dataset."""
    train_path = Path(train_path)
    test_path = paired_test_file(train_path)
    tr, te = read_ts(train_path), read_ts(test_path)
    name = re.sub(r"(_TRAIN|_TEST)?(\.ts)?$", "", tr.problem or "", flags=re.I) or train_path.stem[:-6]
    if not (tr.labels and te.labels):
        raise DataError(
            f"{train_path if not tr.labels else test_path}: the cases carry no class label or target "
            f"(@classLabel false); layerlab trains on labelled cases"
        )
    if tr.regression != te.regression:
        raise DataError(f"{test_path}: one file has class labels, the other regression targets")
    classes = tr.class_names or None
    ds = build_sequence_dataset(
        name,
        (tr.series, tr.labels),
        (te.series, te.labels),
        classes=classes,
        regression=tr.regression,
        source=str(train_path.parent),
        meta={"format": "ts", "multivariate": tr.series[0].shape[1] > 1},
    )
    ds.train.names = [f"{train_path.name} case {i + 1}" for i in range(len(ds.train))]
    ds.test.names = [f"{test_path.name} case {i + 1}" for i in range(len(ds.test))]
    return ds
