"""The file readers, in NumPy: image files, sequences in ``.npy``/CSV/TSV files, images, volumes and
token ids given as ``.npy``, text in a vocabulary, the files to predict on as a run's input spec says
(:func:`layerlab.fileformats.read_files` walks the format registry to them), and the transforms
predict applies to what they read.

One implementation serves both ways of predicting: :mod:`layerlab.data` (``layerlab predict
RUN_DIR``, and training) wraps what these return in tensors, and :mod:`layerlab.deploy`
(``layerlab predict --onnx``) hands it to onnxruntime as it is. So the two read a file the same way,
with the same notes and the same sentences for what they cannot read.

This module imports NumPy, Pillow when it reads an image, and of layerlab only
:mod:`layerlab.errors`: never torch (an import-linter contract, ``readers-no-torch`` in
pyproject.toml, holds it to that), as ``predict --onnx`` runs without it. It cannot live under
:mod:`layerlab.data`, whose package imports torch.

Pixels become float32 by the one rule of :func:`scale_pixels`, which every path shares (image
files, IDX, ``.npz`` and ``fit()`` arrays, ``.npy`` files to predict on): an integer divided by the
largest value of its type, not by 255 alone. For image files: 8-bit modes (``L``, ``RGB``, ``P``,
...) / 255; 16-bit grey (``I;16``, as Pillow reads 16-bit PNG and TIFF) / 65535; 32-bit integers
(``I``) / 65535 when every value fits 16 bits (how Pillow often holds 16-bit files), else
/ (2**31 - 1), negatives clipped to 0; float images (``F``) as they are (they must be finite).
Converting a 16-bit image to ``L`` would clip it to 255 and make it all ones.
An image larger than :data:`MAX_PIXELS` (width times height) is refused before it is decoded.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .choices import SEQUENCE_MODES
from .errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
#: The largest image read, in pixels (width x height): Pillow's own decompression-bomb limit,
#: about 89 megapixels (a 9459 x 9459 image, 358 MB as float32 RGB).
MAX_PIXELS = 89_478_485
#: Modes holding more than 8 bits per pixel, read by :func:`_high_bit_array` (grey, one channel).
HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


# ----------------------------------------------------------------------------------------------
# Integer pixels: the one scaling rule (image files, .npy/.npz arrays, fit() arrays)
# ----------------------------------------------------------------------------------------------
#: Integer types read as pixels, each divided by the largest value of its type (uint8 by 255,
#: uint16 by 65535, int16 by 32767, ...). Wider integers (int64, uint32, uint64) are refused: divided
#: by their range any pixel value would be about 0, and no image format stores them.
PIXEL_TYPES = ("uint8", "uint16", "int8", "int16", "int32")


def scale_pixels(a: np.ndarray, what: str) -> tuple[np.ndarray, str | None]:
    """Image or volume values ``a`` as float32, by the one rule for pixels wherever they come from
    (image files, IDX files, the arrays of an ``.npz`` or of :func:`layerlab.fit`, ``.npy`` files
    to predict on): an integer type of :data:`PIXEL_TYPES` divided by its largest value (uint8 and
    uint16 land in [0, 1], signed types in [-1, 1]), booleans 0 or 1, floats as they are (they
    must be finite); any other integer type is refused in one sentence naming ``what``. Returns the
    values and a note saying how integers were scaled (None for floats and booleans)."""
    if a.dtype.name in PIXEL_TYPES:
        top = np.iinfo(a.dtype).max
        return np.asarray(a, dtype=np.float32) / np.float32(top), f"{a.dtype.name} pixels divided by {top}"
    if a.dtype.kind == "b":
        return a.astype(np.float32), None
    if a.dtype.kind in "iu":
        raise DataError(
            f"{what} holds {a.dtype} values; integer pixels are divided by the largest value of their type, "
            f"so give uint8 pixels (0..255), uint16 (0..65535) or floats scaled as the model was trained"
        )
    if a.dtype.kind != "f":
        raise DataError(f"{what} holds {a.dtype} values; expected an array of numbers")
    x = np.asarray(a, dtype=np.float32)
    if not np.isfinite(x).all():
        i = np.argwhere(~np.isfinite(x))[0]
        raise DataError(f"{what} holds a non-finite value (inf or NaN) at index {tuple(int(v) for v in i)}")
    return x, None


# ----------------------------------------------------------------------------------------------
# Image files
# ----------------------------------------------------------------------------------------------
def _high_bit_array(im, path: Path) -> tuple[np.ndarray, str]:
    """A 16-bit, 32-bit integer or float grey image as float32 ``(H, W)`` in [0, 1], and a note."""
    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise DataError(f"{path}: a float image holding non-finite pixel values (inf or NaN)")
        return a, "float pixels taken as they are"
    if im.mode.startswith("I;16"):
        return scale_pixels(a.astype(np.uint16), str(path))[0], f"{im.mode} pixels divided by 65535"
    # Pillow often holds 16-bit files as 32-bit integers (mode I): values that fit 16 bits are 16-bit
    if a.size and a.min() >= 0 and a.max() <= 65535:
        return scale_pixels(a.astype(np.uint16), str(path))[0], "32-bit pixels holding 16-bit values divided by 65535"
    return np.clip(scale_pixels(a.astype(np.int32), str(path))[0], 0.0, 1.0), "32-bit pixels divided by 2**31 - 1"


def _decode(
    path: Path, channels: int | None, size: tuple[int, int] | None, raw: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Pixels of ``path`` as float32 ``(H, W)`` or ``(H, W, C)`` and notes (see :func:`read_image`)."""
    from PIL import Image

    notes = []
    with Image.open(path) as im:
        if im.width * im.height > MAX_PIXELS:
            raise DataError(
                f"{path}: an image of {im.width}x{im.height} pixels is larger than the "
                f"{MAX_PIXELS:,} pixels layerlab reads; scale it down first"
            )
        im.load()
        img: Image.Image = im
        if img.mode in HIGH_BIT_MODES:
            arr, note = _high_bit_array(img, path)
            notes.append(note)
            if size is not None and arr.shape != tuple(size):
                notes.append(f"resized from {arr.shape[1]}x{arr.shape[0]} to {size[1]}x{size[0]}")
                resized = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32)).resize(
                    (size[1], size[0]), Image.Resampling.BILINEAR
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
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(img)  # 8-bit modes: uint8, divided by 255 unless kept raw
            arr = arr if raw else scale_pixels(arr, str(path))[0]
    return arr, notes


def read_image(
    path: str | Path, channels: int | None = None, size: tuple[int, int] | None = None, *, raw: bool = False
) -> tuple[np.ndarray, list[str]]:
    """An image file as float32 ``(C, H, W)`` in [0, 1] (see the module docstring for how each
    pixel type is scaled), and a list of notes on what had to be changed.

    ``channels`` 1 or 3 converts (grey <-> RGB); ``size`` (H, W) resizes bilinearly. ``raw``
    keeps 8-bit pixels as uint8 (divided by 255 later, on the training device).
    """
    from PIL import Image

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # we check MAX_PIXELS ourselves; damaged EXIF or TIFF tags only warn, and the pixels decide
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            arr, notes = _decode(path, channels, size, raw)
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
    return np.ascontiguousarray(arr), notes


def image_sequence(x: np.ndarray, mode: str, permutation: np.ndarray | None = None) -> np.ndarray:
    """Images ``(N, C, H, W)`` as sequences: ``rows`` ``(N, H, W*C)``; ``pixels`` ``(N, H*W, C)``;
    ``permuted`` the pixel sequence in the order ``permutation`` (``H*W`` indices, which the caller
    gives: training draws it with torch's ``randperm``, an exported model stores it)."""
    N, C, H, W = x.shape
    if mode == "rows":
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1).reshape(N, H, W * C))
    seq = x.transpose(0, 2, 3, 1).reshape(N, H * W, C)
    if mode == "pixels":
        return np.ascontiguousarray(seq)
    if mode == "permuted":
        if permutation is None or len(permutation) != H * W:
            raise DataError(f"images read as permuted pixels need an order of their {H * W} pixels ({H}x{W})")
        return np.ascontiguousarray(seq[:, permutation])
    raise DataError(f"unknown --sequence {mode!r}; expected one of {', '.join(SEQUENCE_MODES)}")


# ----------------------------------------------------------------------------------------------
# Images, volumes and token ids given as .npy
# ----------------------------------------------------------------------------------------------
def grid_array(
    path: Path, kind: str, shape: tuple[int, ...], pixel_scale: float | None, any_size: bool
) -> tuple[list[np.ndarray], str | None]:
    """Images ``(C, H, W)`` (``kind`` ``image``) or volumes ``(C, D, H, W)`` (``volume``) from an
    ``.npy``, as float32: one sample, or ``N`` of them stacked (for one channel, images may also
    come as ``(H, W)`` or ``(N, H, W)``), with a note (or None). Values are scaled by
    :func:`scale_pixels`, the rule training applies; the note says so where the run's data was not
    uint8 pixels (``pixel_scale`` None) or the array is uint16. The size must be the model's
    ``shape`` unless it takes any size (``any_size``)."""
    try:
        a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a NumPy .npy file ({e})") from None
    if a.dtype.kind not in "biuf" or a.size == 0:
        raise DataError(f"{path}: expected an array of numbers, got {a.dtype} {a.shape}")
    shape = tuple(shape)
    C, rank = shape[0], len(shape)
    what = "images (C, H, W)" if kind == "image" else "volumes (C, D, H, W)"
    if a.ndim == rank and a.shape[0] == C:
        a = a[None]
    elif C == 1 and kind == "image" and a.ndim in (2, 3):  # grey images without their channel axis
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
    x, note = scale_pixels(a, str(path))
    if note is not None and a.dtype == np.uint8 and pixel_scale is not None:
        note = None  # as the model's training data was scaled: nothing to say
    elif note is not None and pixel_scale is None:
        note += " (the model was trained on values taken as they are)"
    return list(x), note


def token_ids(path: Path, num_tokens: int | None) -> list[np.ndarray]:
    """Token id sequences (int64) from an ``.npy`` of integers: ``(N, T)`` or one ``(T,)``, each id
    below ``num_tokens`` (when it is given)."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a NumPy .npy file ({e})") from None
    if a.dtype.kind not in "iu" or a.ndim not in (1, 2) or a.size == 0:
        raise DataError(f"{path}: expected token ids, integers of shape (N, T) or (T,), got {a.dtype} {a.shape}")
    if a.min() < 0 or (num_tokens is not None and a.max() >= num_tokens):
        raise DataError(f"{path}: token ids must be between 0 and {(num_tokens or 1) - 1}, got {a.min()}..{a.max()}")
    return [r.astype(np.int64) for r in np.atleast_2d(a)]


# ----------------------------------------------------------------------------------------------
# Text: characters as token ids
# ----------------------------------------------------------------------------------------------
def read_text(path: Path) -> str:
    """The UTF-8 text of ``path``, with Windows line ends made ``\\n``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start} cannot be decoded)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    return text.replace("\r\n", "\n")


def text_ids(text: str, chars: str, what: str = "text") -> np.ndarray:
    """Token ids (int64 ``(T,)``) of ``text`` in the vocabulary ``chars`` (``chars[i]`` is token
    ``i``); one sentence naming ``what`` for characters it lacks."""
    index = {c: i for i, c in enumerate(chars)}
    unknown = sorted({c for c in text if c not in index})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:8])
        raise DataError(
            f"the {what} holds character(s) {shown} that the model's vocabulary of {len(chars)} characters lacks"
        )
    return np.array([index[c] for c in text], dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# Sequences: UCR-style CSV/TSV (one case per row, label first, then the values; NaN/empty pad
# unequal lengths), and one file of sequences to predict on
# ----------------------------------------------------------------------------------------------
def trim_trailing_missing(s: np.ndarray) -> np.ndarray:
    """Drop trailing steps of ``s`` ``(T, F)`` where every feature is missing (NaN): how some files
    encode unequal lengths."""
    valid = ~np.isnan(s).all(axis=1)
    if not valid.any():
        return s[:0]
    return s[: int(np.nonzero(valid)[0][-1]) + 1]


#: A number as a CSV/TSV cell holds it: decimal, with an optional exponent (``1``, ``-2.5``,
#: ``3e-4``), or ``nan`` (missing) / ``inf`` (refused) in any case. Python's ``float`` would also take
#: ``1_000``, which no table writer means; hexadecimal and other notations are not numbers here.
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)
MISSING_CELLS = ("", "?")


def cell_value(c: str) -> float:
    """One CSV/TSV cell (already unquoted by the csv module: a quoted number is that number) as a
    float: NaN for a missing cell (empty or ``?``, or ``nan``); ValueError for anything that is not
    a number by :data:`_NUMBER` (hexadecimal, words, a quote character left inside the cell). The
    one rule for cells, in training files and files to predict on alike."""
    c = c.strip()
    if c in MISSING_CELLS:
        return math.nan
    if not _NUMBER.fullmatch(c):
        raise ValueError(c)
    return float(c)


def read_table(path: Path) -> tuple[list[list[str]], str]:
    """The non-empty rows of a CSV (``,``) or TSV (tab) file as cells (quoting undone by the csv
    module), and the delimiter: tab for ``.tsv``, or a first line holding tabs but no comma."""
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
    return rows, delim


def _row_values(cells: list[str], path: Path, i: int) -> np.ndarray | None:
    """The cells of row ``i`` as float64 (:func:`cell_value`); None for a first row in which no cell
    is a number (a header); one sentence naming the row and cell for a cell that is not a number."""
    values, bad = [], None
    for c in cells:
        try:
            values.append(cell_value(c))
        except ValueError:
            values.append(math.nan)
            bad = c.strip() if bad is None else bad
    if bad is None:
        return np.array(values, dtype=np.float64)
    if i == 1 and not any(_is_number(c) for c in cells):
        return None  # a header row: words (and blanks), no number
    raise DataError(
        f"{path}, row {i}: a value that is not a number ({bad[:30]!r}); write plain decimal numbers, "
        f"and leave a cell empty or write '?' for a missing one"
    )


def read_csv_sequences(path: str | Path, labelled: bool = True) -> tuple[list[np.ndarray], list[str]]:
    """Univariate sequences ``(T_i, 1)`` from a CSV (``,``) or TSV (tab) file: each row
    ``label, v1, v2, ...`` (or only values with ``labelled=False``), and the labels as written.
    Cells are read by :func:`cell_value`: empty cells and ``?`` are missing (NaN), trailing missing
    values shorten the row's sequence, and a cell that is not a number is an error. A first row in
    which no value is a number is a header and skipped."""
    path = Path(path)
    rows, _ = read_table(path)
    return _parse_rows(rows, path, labelled)


def _parse_rows(rows: list[list[str]], path: Path, labelled: bool):
    seqs, labels = [], []
    start = 1 if labelled else 0
    for i, row in enumerate(rows, 1):
        cells = [c.strip() for c in row[start:]]
        v = _row_values(cells, path, i)
        if v is None:
            continue  # a header row
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
    return _NUMBER.fullmatch(c.strip()) is not None


def read_sequence_file(
    path: Path,
    features: int,
    length: int | None = None,
    *,
    read_ts: Callable[[Path], tuple[list[np.ndarray], list]] | None = None,
) -> tuple[list[np.ndarray], list[str], list]:
    """Sequences ``(T_i, F)`` from one file, a name for each, and the labels the file carries
    (``.ts``, and UCR-layout CSV as below; else empty).

    ``.npy``: ``(N, T, F)``; ``(N, T)`` N univariate sequences when ``F == 1``, else one ``(T, F)``
    sequence; ``(T,)`` one univariate sequence. ``.csv``/``.tsv``: with ``F == 1`` one sequence per
    row, else one sequence with a row per step and a column per feature. ``.ts``: every case, read
    by ``read_ts`` (a path to the cases and their labels), which ``layerlab predict RUN_DIR`` gives
    (:func:`layerlab.data.formats.tabular.read_sequence_file`); without it ``.ts`` is refused.

    A CSV/TSV in UCR's training layout (the label first, then the values) is recognised when the
    run is fixed-length (``length`` is its ``T``) and every row holds exactly ``T + 1`` values: the
    first column is then the label, returned as the case's label (predict's ``true_label``), not
    read as a value. A file of sequences one step longer than the run's would be misread, but the
    model could not take those anyway. Give ``length=None`` for variable-length runs.
    """
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
        else:  # a step per row, a feature per column; cells read as every CSV cell is (cell_value)
            table: list = []
            for i, row in enumerate(read_table(path)[0], 1):
                v = _row_values(row, path, i)
                if v is None:
                    continue  # a header row
                if table and len(v) != len(table[0]):
                    raise DataError(f"{path}, row {i}: {len(v)} values, where the rows above hold {len(table[0])}")
                if np.isinf(v).any():
                    raise DataError(f"{path}, row {i}: an infinite value")
                table.append(v)
            if not table:
                raise DataError(f"{path}: no rows of numbers")
            seqs = [np.stack(table)]
    elif suffix == ".ts" and read_ts is not None:
        seqs, labels = read_ts(path)
    elif suffix == ".ts":
        raise DataError(
            f"{path}: predict --onnx reads .npy, .csv and .tsv sequences; `layerlab predict RUN_DIR` reads .ts files"
        )
    else:
        kinds = ".npy, .csv, .tsv or .ts" if read_ts is not None else ".npy, .csv or .tsv"
        raise DataError(f"{path}: cannot predict on a {suffix or 'suffix-less'} file; give {kinds} sequences")
    for s in seqs:
        if s.shape[1] != features:
            raise DataError(f"{path}: sequences of {s.shape[1]} features, the model takes {features}")
        if len(s) == 0:
            raise DataError(f"{path}: an empty sequence")
    names = [str(path)] if len(seqs) == 1 else [f"{path}[{i}]" for i in range(len(seqs))]
    return seqs, names, labels


def standardise(seqs: list[np.ndarray], mean, std, names: list[str] | None = None) -> tuple[list[np.ndarray], int]:
    """``(s - mean) / std`` per feature, in float64, then float32; missing values (NaN) become 0,
    the training mean. Returns the new sequences and how many values were missing.

    The result is checked after the transform: a value that was there (not NaN) but is not finite
    once standardised (beyond float32's range, e.g. ``1e38`` against a small training spread) is
    refused in one sentence naming ``names[i]`` (else ``sequence i``), its step and feature: a model
    fed it answers NaN."""
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    out, missing = [], 0
    for i, s in enumerate(seqs):
        s = np.asarray(s, dtype=np.float64)
        gap = np.isnan(s)
        with np.errstate(over="ignore", invalid="ignore"):
            z = ((s - mean) / std).astype(np.float32)
        over = ~np.isfinite(z) & ~gap
        if over.any():
            t, f = (int(v) for v in np.argwhere(over)[0])
            name = names[i] if names is not None else f"sequence {i + 1}"
            raise DataError(
                f"{name}: the value {s[t, f]:g} at step {t + 1}, feature {f + 1} is beyond float32's range "
                f"once standardised with the training mean and standard deviation"
            )
        missing += int(gap.sum())
        out.append(np.where(gap, np.float32(0), z))
    return out, missing


# ----------------------------------------------------------------------------------------------
# Files to predict on, as a run's input spec says
# ----------------------------------------------------------------------------------------------
@dataclass
class FileInputs:
    """Samples :func:`layerlab.fileformats.read_files` read, in NumPy, each on its own (not batched, not padded): of one
    kind, ``images`` (float32 ``(C, H, W)`` or ``(C, D, H, W)``), ``sequences`` (the raw float64
    ``(T_i, F)`` values, NaN where missing, not yet standardised) or ``texts`` (int64 token ids
    ``(T_i,)``); and per sample its name (``path`` or ``path[i]``), notes (what was converted,
    assumed or filled) and the label its file carries (or None)."""

    images: list[np.ndarray] = field(default_factory=list)
    sequences: list[np.ndarray] = field(default_factory=list)
    texts: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    notes: list[list[str]] = field(default_factory=list)
    truths: list = field(default_factory=list)
