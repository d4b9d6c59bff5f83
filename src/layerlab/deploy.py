"""Predicting with an exported model, with onnxruntime, NumPy and Pillow alone: no torch.

``layerlab export RUN_DIR`` writes one self-contained ``.onnx`` file: besides the graph and its
weights, its ``metadata_props`` hold how raw input becomes the model's input (the run's input spec,
and for permuted-pixel runs the permutation itself), the class names, the task and how the outputs
are decoded, the model's name and the layerlab version that wrote it (:func:`metadata_props`
writes them, :func:`read_metadata` reads them back). ``layerlab predict --onnx FILE INPUTS...``
(:func:`predict_files`) then reads the inputs exactly as ``layerlab predict RUN_DIR`` does, runs
onnxruntime and prints the same lines.

This module imports numpy, and onnxruntime and Pillow when it needs them, and of layerlab only
:mod:`layerlab.errors`; an import-linter contract (``deploy-no-torch`` in pyproject.toml) and
``tests/test_onnx_predict.py`` (which blocks torch in a fresh interpreter) hold it to that. The
readers of :mod:`layerlab.data` produce torch tensors, so the few lines that turn files into
arrays are written here again in NumPy, one function per reader they mirror:

- :func:`read_image` is :func:`layerlab.data.formats.folder.read_image` (pixel scaling by type,
  channel conversion, bilinear resizing, the same notes and errors);
- :func:`image_sequence` is :func:`layerlab.data.transforms.image_sequence` (rows, pixels, the
  permuted order, which the export stores, as torch's ``randperm`` is not NumPy's);
- :func:`read_sequence_file` is :func:`layerlab.data.formats.tabular.read_sequence_file` for
  ``.npy``, ``.csv`` and ``.tsv`` files (``.ts`` files need ``layerlab predict RUN_DIR``);
- :func:`_grid_array` is ``layerlab.data.inputs._grid_array`` (images and volumes given as ``.npy``);
- :func:`standardise` is :func:`layerlab.data.transforms.standardise`;
- :func:`decode` is :func:`layerlab.api.decode` (softmax, top-k, class names).

``tests/test_onnx_predict.py`` checks them against the torch path: the same classes and
probabilities (to 1e-4) for the same files.

Inputs of one shape go through the model together; sequences of different lengths (and, for a CNN
with a global pool, which takes any size, images of different sizes) go in groups of one shape
each: the ONNX model reads whole batches, and a recurrent model or a CNN with a global pool reads
each sequence at its own length, as torch's packed or masked batch reads it.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, LayerlabError

#: The metadata format written by :func:`metadata_props`; a reader refuses a newer one.
FORMAT = 1
#: Keys of the ONNX ``metadata_props`` whose values are JSON (the others are plain strings).
JSON_KEYS = ("classes", "input_spec", "permutation", "model_options", "input", "output", "check")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}  # as layerlab.data.formats.folder
MAX_PIXELS = 89_478_485  # as layerlab.data.formats.folder: Pillow's decompression-bomb limit
HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
BATCH = 1000  # samples per onnxruntime call, as torch's predict batches them


# ----------------------------------------------------------------------------------------------
# The metadata inside the .onnx file
# ----------------------------------------------------------------------------------------------
def decode_kind(task: str | None, spec: dict) -> str:
    """How a model's outputs become a prediction: ``regression`` (values), ``next`` (a character
    model: the character after the input), ``steps`` (one class per step) or ``class`` (top-k)."""
    if task == "regression":
        return "regression"
    if spec.get("head") == "step":
        return "next" if spec.get("vocab") is not None else "steps"
    return "class"


def metadata_props(record: dict) -> dict[str, str]:
    """The ``metadata_props`` of an exported model, as strings, from what the export records:
    ``layerlab_version``, ``layerlab_format``, ``model``, ``weights``, ``task``, ``decode``,
    ``classes``, ``num_outputs``, ``input_spec``, ``permutation`` (permuted-pixel runs), ``input``,
    ``output``, ``preprocess``, ``model_options``, ``min_size`` (a CNN that takes any size), ``check``,
    ``torch`` (what is present of them)."""
    props = {"layerlab_format": str(FORMAT)}
    for key, value in record.items():
        if value is None:
            continue
        props[key] = json.dumps(value) if key in JSON_KEYS else str(value)
    return props


@dataclass
class Metadata:
    """What :func:`read_metadata` gives: the run's input ``spec`` (a dict, as ``run.json`` holds
    it), ``classes``, ``task``, ``decode``, ``num_outputs``, the stored ``permutation`` (or None)
    and every key as read (``props``)."""

    spec: dict
    classes: list[str]
    task: str
    decode: str
    num_outputs: int
    permutation: np.ndarray | None = None
    props: dict = field(default_factory=dict)


def read_metadata(props: dict[str, str], path: str | Path = "model") -> Metadata:
    """The layerlab metadata of an ONNX model's ``metadata_props`` (a dict of strings); one
    sentence naming ``path`` when they are not layerlab's."""
    if "layerlab_version" not in props or "input_spec" not in props:
        raise LayerlabError(
            f"{path}: an ONNX model without layerlab's metadata (input spec, classes); predict --onnx "
            f"takes a file written by `layerlab export RUN_DIR`"
        )
    try:
        fmt = int(props.get("layerlab_format", "1"))
        values = {k: (json.loads(v) if k in JSON_KEYS else v) for k, v in props.items()}
        spec = values["input_spec"]
        classes = [str(c) for c in values.get("classes") or []]
        num_outputs = int(values.get("num_outputs") or len(classes))
        if not isinstance(spec, dict) or "kind" not in spec or "shape" not in spec:
            raise ValueError("input_spec has no kind and shape")
    except (ValueError, TypeError, KeyError) as e:
        raise LayerlabError(f"{path}: its layerlab metadata cannot be read ({e})") from None
    if fmt > FORMAT:
        raise LayerlabError(
            f"{path}: written by layerlab {props['layerlab_version']} in metadata format {fmt}; this "
            f"layerlab reads format {FORMAT}, so update it"
        )
    task = values.get("task") or "classification"
    perm = values.get("permutation")
    return Metadata(
        spec=spec,
        classes=classes or [str(i) for i in range(num_outputs)],
        task=task,
        decode=values.get("decode") or decode_kind(task, spec),
        num_outputs=num_outputs,
        permutation=None if perm is None else np.asarray(perm, dtype=np.int64),
        props=props,
    )


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------
class OnnxModel:
    """An exported layerlab model in an onnxruntime session, with its metadata."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise LayerlabError(
                "predict --onnx needs onnxruntime, which is not installed; pip install onnxruntime "
                "(or pip install 'layerlab[onnx]')"
            ) from None
        if not self.path.is_file():
            what = "a directory, not an ONNX file" if self.path.is_dir() else "no such file"
            raise LayerlabError(f"{self.path}: {what}")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # onnxruntime's warnings are for its developers, not ours
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # a file that is not ONNX raises onnxruntime's own errors
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise LayerlabError(f"{self.path}: not an ONNX model onnxruntime can load ({first})") from None
        self.meta = read_metadata(self.session.get_modelmeta().custom_metadata_map, self.path)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = list(inp.shape)  # ints where fixed, names (or None) where dynamic
        # a CNN with a global pool takes any size: its spatial axes are dynamic (images keep their own)
        self.any_size = (
            self.meta.spec["kind"] in ("image", "volume")
            and self.meta.spec.get("sequence") is None
            and any(not isinstance(d, int) for d in self.input_shape[2:])
        )

    def check_shape(self, shape: tuple[int, ...], name: str) -> None:
        """One sentence naming ``name`` when a sample of ``shape`` does not fit a fixed axis, or is
        smaller than a model that takes any size reads (``min_size`` on each side)."""
        need = self.meta.props.get("min_size")
        if self.any_size and need is not None and min(shape[1:]) < int(need):
            raise DataError(
                f"{name} is {'x'.join(map(str, shape[1:]))}; this model needs at least {need} on each side "
                f"(its convs and pools)"
            )
        want = self.input_shape[1:]
        for got, fixed in zip(shape, want, strict=False):
            if isinstance(fixed, int) and got != fixed:
                size = "x".join(str(s) if isinstance(s, int) else "any" for s in want)
                raise DataError(
                    f"{name}: a sample of shape {'x'.join(map(str, shape))}, the ONNX model takes {size} "
                    f"(a CNN with a Flatten head is fixed to its size; `layerlab predict RUN_DIR` pads "
                    f"and masks shorter sequences)"
                )

    def run(self, x: np.ndarray) -> np.ndarray:
        """Outputs of a batch ``x`` of samples of one shape, :data:`BATCH` at a time, as float32."""
        outs = [self.session.run(None, {self.input_name: x[i : i + BATCH]})[0] for i in range(0, len(x), BATCH)]
        return np.concatenate(outs).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------
# Reading inputs (NumPy ports of layerlab.data's readers; see the module docstring)
# ----------------------------------------------------------------------------------------------
def _high_bit_array(im, path: Path) -> tuple[np.ndarray, str]:
    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise DataError(f"{path}: a float image holding non-finite pixel values (inf or NaN)")
        return a, "float pixels taken as they are"
    if im.mode.startswith("I;16"):
        return a.astype(np.float32) / 65535.0, f"{im.mode} pixels divided by 65535"
    a = a.astype(np.float64)
    if a.size and a.min() >= 0 and a.max() <= 65535:
        return (a / 65535.0).astype(np.float32), "32-bit pixels holding 16-bit values divided by 65535"
    return np.clip(a / (2**31 - 1), 0.0, 1.0).astype(np.float32), "32-bit pixels divided by 2**31 - 1"


def _decode_image(path: Path, channels: int | None, size: tuple[int, int] | None) -> tuple[np.ndarray, list[str]]:
    from PIL import Image

    notes = []
    with Image.open(path) as im:
        if im.width * im.height > MAX_PIXELS:
            raise DataError(
                f"{path}: an image of {im.width}x{im.height} pixels is larger than the "
                f"{MAX_PIXELS:,} pixels layerlab reads; scale it down first"
            )
        im.load()
        img = im
        if img.mode in HIGH_BIT_MODES:
            arr, note = _high_bit_array(img, path)
            notes.append(note)
            if size is not None and arr.shape != tuple(size):
                notes.append(f"resized from {arr.shape[1]}x{arr.shape[0]} to {size[1]}x{size[0]}")
                resized = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32)).resize(
                    (size[1], size[0]), Image.BILINEAR
                )
                arr = np.array(resized, dtype=np.float32)
            if channels == 3:
                notes.append(f"converted from {img.mode} grey to RGB")
                arr = np.repeat(arr[..., None], 3, axis=2)
        else:
            if channels is None:
                channels = 1 if img.mode in ("1", "L", "LA") else 3
            mode = "L" if channels == 1 else "RGB"
            if img.mode != mode:
                if channels == 1 or img.mode not in ("1", "L", "P"):
                    notes.append(f"converted from {img.mode} to {mode}")
                img = img.convert(mode)
            if size is not None and (img.height, img.width) != tuple(size):
                notes.append(f"resized from {img.width}x{img.height} to {size[1]}x{size[0]}")
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr, notes


def read_image(path: Path, channels: int | None = None, size: tuple[int, int] | None = None):
    """An image file as float32 ``(C, H, W)`` in [0, 1] and notes: 8-bit values / 255, 16-bit /
    65535; ``channels`` 1 or 3 converts, ``size`` (H, W) resizes bilinearly (as torch predict)."""
    try:
        from PIL import Image
    except ImportError:
        raise LayerlabError("reading images needs Pillow, which is not installed; pip install pillow") from None
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            arr, notes = _decode_image(path, channels, size)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a directory, not an image file") from None
    except Image.DecompressionBombError:
        raise DataError(f"{path}: an image larger than the {MAX_PIXELS:,} pixels layerlab reads") from None
    except MemoryError:
        raise DataError(f"{path}: too large to decode in memory") from None
    except Exception as e:  # a damaged file raises many kinds of error inside Pillow's decoders
        raise DataError(f"{path}: not an image Pillow can read ({type(e).__name__})") from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr, dtype=np.float32), notes


def image_sequence(x: np.ndarray, mode: str, permutation: np.ndarray | None = None) -> np.ndarray:
    """Images ``(N, C, H, W)`` as sequences: ``rows`` ``(N, H, W*C)``; ``pixels`` ``(N, H*W, C)``;
    ``permuted`` the pixel sequence in the stored order ``permutation``."""
    N, C, H, W = x.shape
    if mode == "rows":
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1).reshape(N, H, W * C))
    seq = x.transpose(0, 2, 3, 1).reshape(N, H * W, C)
    if mode == "pixels":
        return np.ascontiguousarray(seq)
    if mode == "permuted":
        if permutation is None or len(permutation) != H * W:
            raise LayerlabError("the model reads permuted pixels and its file holds no permutation of them")
        return np.ascontiguousarray(seq[:, permutation])
    raise LayerlabError(f"unknown image-as-sequence mode {mode!r} in the model's metadata")


def _trim_trailing_missing(s: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(s).all(axis=1)
    if not valid.any():
        return s[:0]
    return s[: int(np.nonzero(valid)[0][-1]) + 1]


def _is_number(c: str) -> bool:
    try:
        float(c)
        return True
    except ValueError:
        return c in ("", "?")


def read_csv_sequences(path: Path, labelled: bool = True) -> tuple[list[np.ndarray], list[str]]:
    """Univariate sequences ``(T_i, 1)`` of a CSV/TSV, one per row (``label, v1, v2, ...`` with
    ``labelled``); empty cells and ``?`` are missing, trailing missing values shorten a row, a
    first row that is not numbers is a header."""
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
    except csv.Error as e:
        raise DataError(f"{path}: not a readable {'TSV' if delim == chr(9) else 'CSV'} file ({e})") from None
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
        s = _trim_trailing_missing(v[:, None])
        if len(s) == 0:
            raise DataError(f"{path}, row {i}: no values")
        seqs.append(s)
        if labelled:
            labels.append(row[0].strip())
    if not seqs:
        raise DataError(f"{path}: no rows of numbers")
    return seqs, labels


def read_sequence_file(path: Path, features: int, length: int | None = None):
    """Sequences ``(T_i, F)`` of an ``.npy``, ``.csv`` or ``.tsv`` file, a name for each and the
    labels a UCR-layout CSV carries (a fixed-length run's ``T + 1`` values a row: the label first)."""
    suffix = path.suffix.lower()
    labels: list = []
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except Exception as e:
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
                seqs, labels = read_csv_sequences(path, labelled=True)
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    a = np.genfromtxt(
                        path, delimiter="\t" if suffix == ".tsv" else ",", dtype=np.float64, encoding="utf-8"
                    )
            except FileNotFoundError:
                raise DataError(f"{path}: no such file") from None
            except Exception as e:
                raise DataError(f"{path}: not a table of numbers ({type(e).__name__})") from None
            if a.ndim == 2 and len(a) and np.isnan(a[0]).all():
                a = a[1:]
            if a.size == 0:
                raise DataError(f"{path}: no rows of numbers")
            if np.isinf(a).any():
                raise DataError(
                    f"{path}, row {int(np.argwhere(np.isinf(np.atleast_2d(a)))[0][0]) + 1}: an infinite value"
                )
            seqs = [np.atleast_2d(a)]
    elif suffix == ".ts":
        raise DataError(
            f"{path}: predict --onnx reads .npy, .csv and .tsv sequences; `layerlab predict RUN_DIR` reads .ts files"
        )
    else:
        raise DataError(
            f"{path}: cannot predict on a {suffix or 'suffix-less'} file; give .npy, .csv or .tsv sequences"
        )
    for s in seqs:
        if s.shape[1] != features:
            raise DataError(f"{path}: sequences of {s.shape[1]} features, the model takes {features}")
        if len(s) == 0:
            raise DataError(f"{path}: an empty sequence")
    names = [str(path)] if len(seqs) == 1 else [f"{path}[{i}]" for i in range(len(seqs))]
    return seqs, names, labels


def standardise(seqs: list[np.ndarray], mean, std) -> list[np.ndarray]:
    """``(s - mean) / std`` per feature in float64, then float32; missing values (NaN) become 0."""
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    out = []
    for s in seqs:
        z = (s - mean) / std
        out.append(np.where(~np.isfinite(z), 0.0, z).astype(np.float32))
    return out


def _token_ids(path: Path, num_tokens: int) -> list[np.ndarray]:
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a NumPy .npy file ({e})") from None
    if a.dtype.kind not in "iu" or a.ndim not in (1, 2) or a.size == 0:
        raise DataError(f"{path}: expected token ids, integers of shape (N, T) or (T,), got {a.dtype} {a.shape}")
    if a.min() < 0 or a.max() >= num_tokens:
        raise DataError(f"{path}: token ids must be between 0 and {num_tokens - 1}, got {a.min()}..{a.max()}")
    return [r.astype(np.int64) for r in np.atleast_2d(a)]


def _text_ids(path: Path, vocab: str) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start} cannot be decoded)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted({c for c in text if c not in index})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:8])
        raise DataError(
            f"the file {path} holds character(s) {shown} that the model's vocabulary of {len(vocab)} characters lacks"
        )
    if not text:
        raise DataError(f"{path}: empty text")
    return np.array([index[c] for c in text], dtype=np.int64)


def _grid_array(path: Path, spec: dict, any_size: bool) -> list[np.ndarray]:
    """Images ``(C, H, W)`` or volumes ``(C, D, H, W)`` of an ``.npy``: one, or N stacked (one
    channel: ``(H, W)``, ``(N, H, W)`` too); 8-bit values scaled as in training, other numbers as
    they are (finite); the model's size unless it takes any size."""
    try:
        a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a NumPy .npy file ({e})") from None
    if a.dtype.kind not in "biuf" or a.size == 0:
        raise DataError(f"{path}: expected an array of numbers, got {a.dtype} {a.shape}")
    shape = tuple(spec["shape"])
    C, rank = shape[0], len(shape)
    what = "images (C, H, W)" if spec["kind"] == "image" else "volumes (C, D, H, W)"
    if a.ndim == rank and a.shape[0] == C:
        a = a[None]
    elif C == 1 and spec["kind"] == "image" and a.ndim in (2, 3):
        a = a.reshape(-1, 1, *a.shape[-2:])
    if a.ndim != rank + 1 or a.shape[1] != C:
        raise DataError(
            f"{path}: the model takes {what} with C = {C}, one or N of them stacked; got an array of shape {a.shape}"
        )
    if not any_size and tuple(a.shape[1:]) != shape:
        raise DataError(
            f"{path}: samples of shape {tuple(a.shape[1:])}; the model takes {shape} (its Dense head "
            f"fixes the size; a model trained with --global-pool takes any size)"
        )
    if a.dtype == np.uint8 and spec.get("pixel_scale") is not None:
        x = a.astype(np.float32) * np.float32(spec["pixel_scale"])
    else:
        x = a.astype(np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"{path}: holds non-finite values (inf or NaN)")
    return list(x)


@dataclass
class Inputs:
    """Samples read from files, each as the model takes it (no batch axis, not padded), with its
    name (``path`` or ``path[i]``), notes (what was converted) and the label its file carries."""

    samples: list[np.ndarray]
    names: list[str]
    notes: list[list[str]]
    truths: list


def read_inputs(files: list[str | Path], meta: Metadata, *, any_size: bool = False) -> Inputs | None:
    """Read image (files, or ``.npy`` arrays of images or volumes), sequence (``.npy``, ``.csv``,
    ``.tsv``) or text files as the exported run's input spec says (see
    :func:`layerlab.data.inputs.read_inputs`, which this mirrors); ``any_size`` (a model that takes
    any size) keeps each image at its own size. None for no files."""
    spec = meta.spec
    kind, shape = spec["kind"], tuple(spec["shape"])
    if kind not in ("image", "volume", "sequence", "tokens"):
        raise LayerlabError(f"predict --onnx does not read {kind} inputs; use `layerlab predict RUN_DIR`")
    image_shape = spec.get("image_shape")
    features = shape[-1] if kind == "sequence" else 1
    images, seqs, texts = [], [], []
    names, notes, truths, seq_notes = [], [], [], []
    for f in map(Path, files):
        suffix = f.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            if image_shape is None:
                raise DataError(f"{f}: the model takes {kind} of shape {shape}, not image files")
            C, H, W = image_shape
            x, n = read_image(f, channels=C, size=None if any_size else (H, W))
            images.append(x)
            names.append(str(f))
            notes.append(n)
            truths.append(None)
        elif kind in ("image", "volume") and spec.get("sequence") is None and suffix == ".npy":
            xs = _grid_array(f, spec, any_size)
            images += xs
            names += [str(f)] if len(xs) == 1 else [f"{f}[{i}]" for i in range(len(xs))]
            notes += [[] for _ in xs]
            truths += [None] * len(xs)
        elif kind == "tokens" and suffix == ".npy":
            rows = _token_ids(f, meta.num_outputs)
            texts += rows
            names += [str(f)] if len(rows) == 1 else [f"{f}[{i}]" for i in range(len(rows))]
            notes += [[] for _ in rows]
            truths += [None] * len(rows)
        elif kind == "tokens":
            if spec.get("vocab") is None:
                raise DataError(
                    f"{f}: the model takes token ids and its run keeps no vocabulary to encode text "
                    f"with; give the ids as an .npy array of integers"
                )
            texts.append(_text_ids(f, spec["vocab"]))
            names.append(str(f))
            notes.append([])
            truths.append(None)
        else:
            fixed = None if spec.get("variable_length") or kind != "sequence" else shape[0]
            s, n, lab = read_sequence_file(f, features, fixed)
            ucr = bool(lab) and suffix in (".csv", ".tsv")
            seq_notes.append(
                [f"every row holds T + 1 = {fixed + 1} values: the first column read as the label"] if ucr else []
            )
            seqs.append(s)
            names += n
            truths += list(lab) if lab else [None] * len(s)
    if not names:
        return None
    kinds = [k for k, v in (("images", images), ("sequences", seqs), ("texts", texts)) if v]
    if len(kinds) > 1:
        raise DataError(f"give one kind of input per call, not {' and '.join(kinds)} together")
    if images:
        if spec.get("sequence") is None:
            if kind not in ("image", "volume"):
                raise DataError(f"the model takes {kind} of shape {shape}, not images")
            return Inputs(images, names, notes, truths)
        x = image_sequence(np.stack(images), spec["sequence"], meta.permutation)
        return Inputs(list(x), names, notes, truths)
    if texts:
        return Inputs(texts, names, notes, truths)
    if kind != "sequence":
        raise DataError(f"the model takes {kind} of shape {shape}, not sequences of numbers")
    flat = [s for file_seqs in seqs for s in file_seqs]
    if spec.get("feature_mean") is not None:
        samples = standardise(flat, spec["feature_mean"], spec["feature_std"])
    else:
        samples = [np.nan_to_num(np.asarray(s, dtype=np.float64)).astype(np.float32) for s in flat]
    for file_seqs, read_notes in zip(seqs, seq_notes, strict=True):
        missing = sum(int((~np.isfinite(s)).sum()) for s in file_seqs)
        filled = [f"{missing} missing values filled with the training mean"] if missing else []
        notes += [read_notes + filled for _ in file_seqs]
    return Inputs(samples, names, notes, truths)


# ----------------------------------------------------------------------------------------------
# Decoding (as layerlab.api.decode)
# ----------------------------------------------------------------------------------------------
def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float32 as torch computes it."""
    z = np.asarray(z, dtype=np.float32)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def top_k(probs: np.ndarray, classes: list[str], k: int) -> list[dict]:
    """The ``k`` likeliest classes of one probability vector, likeliest first."""
    k = max(1, min(k, len(classes)))
    idx = np.argsort(-probs, kind="stable")[:k]
    return [{"index": int(j), "label": classes[int(j)], "probability": float(probs[j])} for j in idx]


def decode(out: np.ndarray, length: int, meta: Metadata, k: int = 3) -> dict:
    """The prediction for one sample's outputs ``out`` (``(K,)``, ``(T, K)`` or regression values)
    by what the model predicts, as :func:`layerlab.api.decode` gives it."""
    if meta.task == "regression":
        o = out.reshape(-1)
        if o.size == 1:
            return {"kind": "value", "value": float(o[0])}
        return {"kind": "values", "values": [float(v) for v in o[:length]]}
    if out.ndim == 2 and meta.spec.get("vocab") is not None:
        return _top_result("next", top_k(softmax(out[length - 1]), meta.classes, k))
    if out.ndim == 2:
        return {"kind": "steps", "labels": [meta.classes[int(j)] for j in out[:length].argmax(-1)]}
    return _top_result("class", top_k(softmax(out), meta.classes, k))


def _top_result(kind: str, top: list[dict]) -> dict:
    return {"kind": kind, **{key: top[0][key] for key in ("index", "label", "probability")}, "top_k": top}


# ----------------------------------------------------------------------------------------------
# predict --onnx
# ----------------------------------------------------------------------------------------------
def predict_files(onnx_path: str | Path, files: list[str | Path], *, top_k: int = 3) -> list[dict]:
    """Predictions of an exported model for image, sequence (``.npy``, ``.csv``, ``.tsv``) or text
    files, read as its run read them; the same list of dicts as :func:`layerlab.api.predict_files`
    (``file``, ``notes``, what :func:`decode` gives, ``true_label`` where the file carries one)."""
    if top_k < 1:
        raise LayerlabError(f"--top-k must be at least 1, got {top_k}")
    model = OnnxModel(onnx_path)
    meta = model.meta
    inputs = read_inputs(files, meta, any_size=model.any_size)
    if inputs is None:
        return []
    outs: list[np.ndarray | None] = [None] * len(inputs.samples)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(inputs.samples):  # one batch per sample shape (sequence length, image size)
        groups.setdefault(tuple(s.shape), []).append(i)
    for shape, index in groups.items():
        model.check_shape(shape, inputs.names[index[0]])
        got = model.run(np.stack([inputs.samples[i] for i in index]))
        for j, i in enumerate(index):
            outs[i] = got[j]
    results = []
    for i, name in enumerate(inputs.names):
        length = int(inputs.samples[i].shape[0]) if meta.spec["kind"] in ("sequence", "tokens") else 0
        r = {"file": name, "notes": inputs.notes[i], **decode(outs[i], length, meta, top_k)}
        truth = inputs.truths[i]
        if truth is not None:
            r["true_label"] = truth if isinstance(truth, str) else float(truth)
        results.append(r)
    return results
