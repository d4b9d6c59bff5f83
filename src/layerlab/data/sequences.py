"""Sequence datasets: images read as sequences, UCR/UEA time series (``.ts``), CSV/NPZ sequences,
the synthetic long-range tasks (:mod:`.synthetic`) and character-level text (:mod:`.text`).

Sequences of different lengths are right-padded with zeros into one tensor ``(N, T_max, F)`` and
their true lengths kept in ``Split.lengths``; the recurrent models pack or mask them, so a
sequence's result does not depend on the padding.

Specs this loader answers (it is asked before the image loader):

- ``adding``, ``copy`` -- generated (``--length T``, ``--n-train``, ``--n-test``);
- ``PATH/NAME_TRAIN.ts`` (with ``NAME_TEST.ts`` beside it), a directory holding them, or the bare
  ``NAME`` of a set found in ``--data-dir``, ``$LAYERLAB_DATA_DIR`` or the UCR/UEA sets that the
  ``aeon`` package bundles (``BasicMotions``, ``JapaneseVowels``, ``ArrowHead``, ...);
- ``PATH/NAME_TRAIN.csv`` / ``.tsv`` (UCR's layout: label first, then the values; with
  ``NAME_TEST`` beside it);
- ``PATH.npz`` with arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` (optionally
  ``lengths_train``, ``lengths_test``); integer targets are classes, float targets regression,
  targets ``(N, T)`` one per step;
- ``PATH.txt``: a character-level language model of the text (:mod:`.text`).

Float features are standardised per feature with the training set's mean and standard deviation
(kept in ``Dataset.meta`` so ``predict`` applies the same).
"""
from __future__ import annotations

import csv
import math
import re
import os
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from . import Dataset, Split, synthetic

SEQUENCE_MODES = ("rows", "pixels", "permuted")
PERMUTATION_SEED = 0   # the permuted-pixel task uses one fixed permutation, whatever the run's seed


# ----------------------------------------------------------------------------------------------
# Images as sequences
# ----------------------------------------------------------------------------------------------
def image_sequence(x: torch.Tensor, mode: str, permutation: torch.Tensor | None = None) -> torch.Tensor:
    """Images ``(N, C, H, W)`` as sequences: ``rows`` ``(N, H, W*C)``; ``pixels`` ``(N, H*W, C)``;
    ``permuted`` the pixel sequence in the fixed order ``permutation``."""
    N, C, H, W = x.shape
    if mode == "rows":
        return x.permute(0, 2, 3, 1).reshape(N, H, W * C).contiguous()
    seq = x.permute(0, 2, 3, 1).reshape(N, H * W, C)
    if mode == "pixels":
        return seq.contiguous()
    if mode == "permuted":
        if permutation is None:
            permutation = pixel_permutation(H * W)
        return seq[:, permutation].contiguous()
    raise DataError(f"unknown --sequence {mode!r}; expected one of {', '.join(SEQUENCE_MODES)}")


def pixel_permutation(n: int, seed: int = PERMUTATION_SEED) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def images_as_sequences(ds: Dataset, mode: str, seed: int = 0) -> Dataset:
    """An image dataset ``(N, C, H, W)`` read as sequences (``rows`` | ``pixels`` | ``permuted``).

    ``permuted`` uses one fixed permutation (seed :data:`PERMUTATION_SEED`, recorded in the meta)
    whatever the run's ``seed``, as in the literature's permuted MNIST, so runs compare.
    """
    if ds.train.x.dim() != 4:
        raise DataError(f"--sequence {mode} reads images as sequences, but {ds.name} holds samples of shape "
                        f"{ds.input_shape}, not images")
    if mode not in SEQUENCE_MODES:
        raise DataError(f"unknown --sequence {mode!r}; expected one of {', '.join(SEQUENCE_MODES)}")
    C, H, W = ds.input_shape
    perm = pixel_permutation(H * W) if mode == "permuted" else None
    meta = {**ds.meta, "sequence": mode, "image_shape": [C, H, W]}
    if perm is not None:
        meta["permutation_seed"] = PERMUTATION_SEED
    return Dataset(ds.name, Split(image_sequence(ds.train.x, mode, perm), ds.train.y),
                   Split(image_sequence(ds.test.x, mode, perm), ds.test.y), ds.task, ds.classes, ds.num_outputs,
                   ds.source, meta)


# ----------------------------------------------------------------------------------------------
# Padding and standardising
# ----------------------------------------------------------------------------------------------
def pad_sequences(seqs: list[np.ndarray], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Right-pad ``(T_i, F)`` arrays with zeros to ``(N, T, F)`` float32; lengths ``(N,)``, or None
    when all are ``T`` long."""
    T = length or max(len(s) for s in seqs)
    F = seqs[0].shape[1]
    x = np.zeros((len(seqs), T, F), dtype=np.float32)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = s
    return torch.from_numpy(x), (None if (lengths == T).all() else torch.from_numpy(lengths))


def feature_stats(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over every step of every sequence (NaN ignored)."""
    allv = np.concatenate(seqs, axis=0).astype(np.float64)                      # (sum T_i, F)
    mean = np.nanmean(allv, axis=0) if np.isfinite(allv).any() else np.zeros(allv.shape[1])
    std = np.nanstd(allv, axis=0)
    mean = np.nan_to_num(mean)
    std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
    return mean, std


def standardise(seqs: list[np.ndarray], mean, std) -> tuple[list[np.ndarray], int]:
    """``(s - mean) / std`` per feature; missing values (NaN) become 0, the training mean. Returns
    the new sequences and how many values were missing."""
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    out, missing = [], 0
    for s in seqs:
        z = (s - mean) / std
        bad = ~np.isfinite(z)
        missing += int(bad.sum())
        out.append(np.where(bad, 0.0, z).astype(np.float32))
    return out, missing


def _trim_trailing_missing(s: np.ndarray) -> np.ndarray:
    """Drop trailing steps where every feature is missing (how some files encode unequal lengths)."""
    valid = ~np.isnan(s).all(axis=1)
    if not valid.any():
        return s[:0]
    return s[: int(np.nonzero(valid)[0][-1]) + 1]


# ----------------------------------------------------------------------------------------------
# UCR/UEA .ts files. The format is a page of code (a header of @-lines, then one case per line:
# dimensions separated by ':', values by ',', the label last); aeon's reader is well kept but
# pulls in numba, pandas, scipy and scikit-learn (and ~4 s of imports) for it, so we read it
# ourselves and test against aeon on the sets it bundles.
# ----------------------------------------------------------------------------------------------
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
            out.append(float(tok))
        except ValueError:
            raise DataError(f"{path}, line {lineno}: dimension {dim + 1} holds {tok[:30]!r}, which is not a "
                            f"number (nor '?' for a missing value)") from None
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
    series, labels = [], []
    n_dims = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "%")):                 # comments (% as in ARFF)
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DataError(f"{path}, line {lineno}: expected an @-header line or @data before the data, "
                                f"got {line[:40]!r}; is this a .ts file?")
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
                raise DataError(f"{path}: timestamped .ts files (@timeStamps true) are not supported; "
                                f"export the series without timestamps")
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
                raise DataError(f"{path}, line {lineno}: expected the values and then a "
                                f"{'target' if regression else 'class label'} after the last ':'")
            label = fields[-1].strip()
            fields = fields[:-1]
            if regression:
                try:
                    labels.append(float(label))
                except ValueError:
                    raise DataError(f"{path}, line {lineno}: target {label!r} is not a number") from None
            else:
                if class_names is not None and label not in class_names:
                    raise DataError(f"{path}, line {lineno}: class label {label!r} is not among the declared "
                                    f"labels {' '.join(class_names)}")
                labels.append(label)
        if n_dims is None:
            n_dims = len(fields)
            if dims_declared is not None and dims_declared != n_dims:
                raise DataError(f"{path}, line {lineno}: @dimensions declares {dims_declared} dimensions but the "
                                f"first case has {n_dims}")
        elif len(fields) != n_dims:
            raise DataError(f"{path}, line {lineno}: this case has {len(fields)} dimensions, the first case "
                            f"has {n_dims}")
        dims = [_ts_values(f, path, lineno, d) for d, f in enumerate(fields)]
        T = max(len(d) for d in dims)
        if T == 0:
            raise DataError(f"{path}, line {lineno}: a case with no values")
        s = np.full((T, n_dims), np.nan)
        for d, v in enumerate(dims):
            s[:len(v), d] = v
        s = _trim_trailing_missing(s)
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


# ----------------------------------------------------------------------------------------------
# UCR-style CSV/TSV: one case per row, label first, then the values (NaN/empty pad unequal lengths)
# ----------------------------------------------------------------------------------------------
def read_csv_sequences(path: str | Path, labelled: bool = True) -> tuple[list[np.ndarray], list[str]]:
    """Univariate sequences from a CSV (``,``) or TSV (tab) file: each row ``label, v1, v2, ...``
    (or only values with ``labelled=False``). A header row whose values are not numbers is skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file") from None
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delim = "\t" if path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first) else ","
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delim) if any(c.strip() for c in r)]
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
                continue                                                         # a header row
            raise DataError(f"{path}, row {i}: a value that is not a number "
                            f"({next(c for c in cells if not _is_number(c))[:30]!r})") from None
        if labelled and not row[0].strip():
            raise DataError(f"{path}, row {i}: empty label in the first column")
        s = _trim_trailing_missing(v[:, None])
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


# ----------------------------------------------------------------------------------------------
# Building datasets
# ----------------------------------------------------------------------------------------------
def _label_kind(labels: list[str]) -> str:
    """``int`` for integer class labels, ``float`` for numeric non-integers (regression), ``str``."""
    try:
        vals = [float(v) for v in labels]
    except ValueError:
        return "str"
    return "int" if all(v.is_integer() for v in vals) else "float"


def _class_order(names: list[str]) -> list[str]:
    kind = _label_kind(names)
    return sorted(set(names), key=float) if kind in ("int", "float") else sorted(set(names))


def build_sequence_dataset(name: str, train: tuple[list[np.ndarray], list], test: tuple[list[np.ndarray], list], *,
                           classes: list[str] | None = None, regression: bool = False, source: str = "",
                           meta: dict | None = None) -> Dataset:
    """A :class:`Dataset` from lists of ``(T_i, F)`` arrays and labels: standardised features, one
    padded length ``T_max`` for both splits, lengths where they differ."""
    (xtr, ytr), (xte, yte) = train, test
    F_tr, F_te = xtr[0].shape[1], xte[0].shape[1]
    if F_tr != F_te:
        raise DataError(f"{name}: the training cases have {F_tr} dimensions, the test cases {F_te}")
    mean, std = feature_stats(xtr)
    xtr, miss_tr = standardise(xtr, mean, std)
    xte, miss_te = standardise(xte, mean, std)
    T = max(max(len(s) for s in xtr), max(len(s) for s in xte))
    Xtr, Ltr = pad_sequences(xtr, T)
    Xte, Lte = pad_sequences(xte, T)
    if (Ltr is None) != (Lte is None):                                   # keep lengths on both or neither
        Ltr = Ltr if Ltr is not None else torch.full((len(xtr),), T, dtype=torch.int64)
        Lte = Lte if Lte is not None else torch.full((len(xte),), T, dtype=torch.int64)
    meta = {**(meta or {}), "feature_mean": [float(v) for v in mean], "feature_std": [float(v) for v in std],
            "max_length": T, "equal_length": Ltr is None}
    if miss_tr or miss_te:
        meta["missing_values_filled"] = miss_tr + miss_te
    if regression:
        Ytr = torch.tensor([float(v) for v in ytr], dtype=torch.float32)
        Yte = torch.tensor([float(v) for v in yte], dtype=torch.float32)
        return Dataset(name, Split(Xtr, Ytr, Ltr), Split(Xte, Yte, Lte), "regression", None, 1, source, meta)
    classes = list(classes) if classes else _class_order(list(ytr) + list(yte))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(v) for v in list(ytr) + list(yte)} - set(index))
    if unknown:
        raise DataError(f"{name}: class label(s) {', '.join(unknown[:5])} are not among the classes {' '.join(classes)}")
    Ytr = torch.tensor([index[str(v)] for v in ytr], dtype=torch.int64)
    Yte = torch.tensor([index[str(v)] for v in yte], dtype=torch.int64)
    return Dataset(name, Split(Xtr, Ytr, Ltr), Split(Xte, Yte, Lte), "classification", classes, len(classes),
                   source, meta)


def _test_beside(train_path: Path) -> Path:
    stem = train_path.stem
    if not stem.upper().endswith("_TRAIN"):
        raise DataError(f"{train_path}: name the training file NAME_TRAIN{train_path.suffix}, with "
                        f"NAME_TEST{train_path.suffix} beside it as the test set")
    test = train_path.with_name(stem[:-6] + ("_TEST" if stem.endswith("_TRAIN") else "_test") + train_path.suffix)
    if not test.is_file():
        raise DataError(f"{train_path}: the test set {test.name} is not beside it")
    return test


def load_ts_pair(train_path: str | Path) -> Dataset:
    """``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` beside it, as one dataset."""
    train_path = Path(train_path)
    test_path = _test_beside(train_path)
    tr, te = read_ts(train_path), read_ts(test_path)
    name = re.sub(r"(_TRAIN|_TEST)?(\.ts)?$", "", tr.problem or "", flags=re.I) or train_path.stem[:-6]
    if not (tr.labels and te.labels):
        raise DataError(f"{train_path if not tr.labels else test_path}: the cases carry no class label or target "
                        f"(@classLabel false); layerlab trains on labelled cases")
    if tr.regression != te.regression:
        raise DataError(f"{test_path}: one file has class labels, the other regression targets")
    classes = tr.class_names or None
    return build_sequence_dataset(name, (tr.series, tr.labels), (te.series, te.labels), classes=classes,
                                  regression=tr.regression, source=str(train_path.parent),
                                  meta={"format": "ts", "multivariate": tr.series[0].shape[1] > 1})


def load_csv_pair(train_path: str | Path) -> Dataset:
    """``NAME_TRAIN.csv`` / ``.tsv`` (label, values...) and ``NAME_TEST`` beside it."""
    train_path = Path(train_path)
    test_path = _test_beside(train_path)
    xtr, ytr = read_csv_sequences(train_path)
    xte, yte = read_csv_sequences(test_path)
    regression = _label_kind(ytr + yte) == "float"
    return build_sequence_dataset(train_path.stem[:-6], (xtr, ytr), (xte, yte), regression=regression,
                                  source=str(train_path.parent), meta={"format": train_path.suffix[1:]})


def load_npz(path: str | Path) -> Dataset:
    """An ``.npz`` with ``x_train, y_train, x_test, y_test`` (and optionally ``lengths_train``,
    ``lengths_test``). ``x`` is ``(N, T)`` or ``(N, T, F)``; integer ``y`` classes, float ``y``
    regression; ``y`` ``(N, T)`` one target per step."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a NumPy .npz archive ({e})") from None
    need = {"x_train", "y_train", "x_test", "y_test"}
    if not need <= set(z.files):
        raise DataError(f"{path}: an .npz dataset needs arrays {', '.join(sorted(need))}; it holds "
                        f"{', '.join(z.files) or 'none'}")
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
    seq_tr = [x[:n] for x, n in zip(xtr, ltr)]
    seq_te = [x[:n] for x, n in zip(xte, lte)]
    meta = {"format": "npz"}
    if not per_step:
        if regression:
            return build_sequence_dataset(name, (seq_tr, list(ytr)), (seq_te, list(yte)), regression=True,
                                          source=str(path), meta=meta)
        ytr_s, yte_s = [str(int(v)) for v in ytr], [str(int(v)) for v in yte]
        return build_sequence_dataset(name, (seq_tr, ytr_s), (seq_te, yte_s), source=str(path), meta=meta)
    # one target per step: standardise x as usual, keep y as given (-100 ignored for classes)
    ds = build_sequence_dataset(name, (seq_tr, [0.0] * len(seq_tr)), (seq_te, [0.0] * len(seq_te)),
                                regression=True, source=str(path), meta={**meta, "head": "step"})
    T = ds.train.x.shape[1]

    def targets(y, lengths):
        if regression:
            out = np.zeros((len(y), T), dtype=np.float32)
        else:
            out = np.full((len(y), T), -100, dtype=np.int64)
        out[:, :y.shape[1]] = y
        for i, n in enumerate(lengths):
            out[i, n:] = 0 if regression else -100
        return torch.from_numpy(out)

    ds.train.y, ds.test.y = targets(ytr, ltr), targets(yte, lte)
    if not regression:
        k = int(max(ds.train.y.max(), ds.test.y.max())) + 1
        ds.task, ds.classes, ds.num_outputs = "sequence-classification", [str(i) for i in range(k)], k
    return ds


# ----------------------------------------------------------------------------------------------
# Named UCR/UEA sets: in --data-dir, $LAYERLAB_DATA_DIR, or bundled with aeon
# ----------------------------------------------------------------------------------------------
def bundled_ts_root() -> Path | None:
    """aeon's bundled data directory, found without importing aeon (a 4-second import)."""
    try:
        spec = find_spec("aeon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return root if root.is_dir() else None


def _ts_roots(data_dir=None) -> list[Path]:
    roots = [Path(d) for d in (data_dir, os.environ.get("LAYERLAB_DATA_DIR")) if d]
    b = bundled_ts_root()
    return roots + ([b] if b else [])


def find_named_ts(name: str, data_dir=None) -> Path | None:
    """``ROOT/NAME/NAME_TRAIN.ts`` (or ``ROOT/NAME_TRAIN.ts``) in the first root that has it."""
    if not name or "/" in name or os.sep in name:
        return None
    for root in _ts_roots(data_dir):
        for cand in (root / name / f"{name}_TRAIN.ts", root / f"{name}_TRAIN.ts"):
            if cand.is_file() and cand.with_name(f"{name}_TEST.ts").is_file():
                return cand
    return None


def bundled_ts_names() -> list[str]:
    root = bundled_ts_root()
    if root is None:
        return []
    return sorted(d.name for d in root.iterdir()
                  if (d / f"{d.name}_TRAIN.ts").is_file() and (d / f"{d.name}_TEST.ts").is_file())


DESCRIPTIONS = {**synthetic.DESCRIPTIONS,
                **{n: "UCR/UEA time-series set bundled with the aeon package" for n in bundled_ts_names()}}


# ----------------------------------------------------------------------------------------------
# The loader entry point
# ----------------------------------------------------------------------------------------------
def _no_sequence_mode(spec: str, sequence: str | None) -> None:
    if sequence:
        raise DataError(f"--sequence {sequence} reads image datasets as sequences; {spec} is already sequence data")


def try_load(spec: str, *, data_dir=None, download: bool = True, seed: int = 0, sequence: str | None = None,
             length: int | None = None, n_train: int | None = None, n_test: int | None = None,
             **_options) -> Dataset | None:
    """Load ``spec`` if it names sequence data (see the module docstring); otherwise None."""
    key = spec.strip().lower()
    if key in synthetic.DEFAULTS:
        _no_sequence_mode(spec, sequence)
        return synthetic.load(key, length=length, n_train=n_train, n_test=n_test, seed=seed)
    p = Path(spec).expanduser()
    if p.is_dir():
        train = next((q for q in sorted(p.glob("*_TRAIN.ts"))), None)
        if train is None:
            return None                                               # an image folder, for images.py
        _no_sequence_mode(spec, sequence)
        return _subset(load_ts_pair(train), n_train, n_test)
    suffix = p.suffix.lower()
    if p.suffix and not p.exists() and suffix in (".ts", ".csv", ".tsv", ".npz", ".txt"):
        raise DataError(f"{p}: no such file")
    if p.is_file():
        _no_sequence_mode(spec, sequence)
        if suffix == ".ts":
            return _subset(load_ts_pair(p), n_train, n_test)
        if suffix in (".csv", ".tsv"):
            return _subset(load_csv_pair(p), n_train, n_test)
        if suffix == ".npz":
            return _subset(load_npz(p), n_train, n_test)
        if suffix == ".npy":
            raise DataError(f"{p}: an .npy array has no targets to train on; put x_train, y_train, x_test, "
                            f"y_test in one .npz (numpy.savez) instead")
        if suffix in (".txt", ".text", ".md"):
            from . import text

            return text.load_text(p, length=length, n_train=n_train, n_test=n_test)
        return None
    named = find_named_ts(spec.strip(), data_dir)
    if named is not None:
        _no_sequence_mode(spec, sequence)
        return _subset(load_ts_pair(named), n_train, n_test)
    return None


def _subset(ds: Dataset, n_train: int | None, n_test: int | None) -> Dataset:
    """The first ``n_train`` / ``n_test`` cases (for quick runs)."""
    if n_train:
        ds.train = ds.train.subset(torch.arange(min(n_train, len(ds.train))))
    if n_test:
        ds.test = ds.test.subset(torch.arange(min(n_test, len(ds.test))))
    return ds
