"""Arrays in, as Keras users hand them over: NumPy arrays, torch tensors, PIL images or lists of
them, turned into a :class:`~layerlab.data.Dataset` to train on (:func:`dataset_from_arrays`) or
into model inputs through a run's input spec (:func:`inputs_from_arrays`), with the checks the
command line applies to files (shapes, finite values, integral labels), each one sentence.

How arrays are read:

- Integer values are pixels, divided by the largest value of their type (uint8 by 255 as
  ``keras.datasets`` users do, uint16 by 65535; int64 refused): :func:`layerlab.readers.scale_pixels`,
  the rule every reader applies; floats are cast to float32 and kept as they are.
- For a model that reads images, ``(N, H, W)`` is grey, ``(N, H, W, C)`` (Keras's channels-last) is
  moved to ``(N, C, H, W)``; of dims 1 and 3 the smaller one is the channel axis, a tie is
  channels-last.
- For a model that reads sequences, ``(N, T, F)`` and ``(N, T)`` (one feature) are sequences, and
  ``uint8`` images are read row by row, as the command line reads image sets for recurrent models.
- Integer labels and one-hot rows are classes, by the one rule of :mod:`layerlab.labels` (labels
  that are not ``0..K-1`` are mapped, with a notice, and keep their names); float targets mean
  regression.

A dataset made from arrays is kept in a run directory as ``RUN/arrays.npz`` (:func:`save_arrays`),
which :func:`layerlab.data.inputs.prepare_data` reads back, so every command works on the run. The
run's config names it relative to the run (:data:`RUN_FILE`), so a copied or moved run reads its own.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from .. import labels, readers
from ..errors import DataError
from . import Dataset, Split, images_as_sequences, split_validation
from .transforms import PIXEL_SCALE, InputSpec

log = logging.getLogger(__name__)

#: The member of an ``.npz`` that marks it as arrays kept by layerlab (with what reads them back).
MARKER = "layerlab_arrays"

#: The file of a run directory that holds the arrays ``layerlab.fit`` trained on; a run's config
#: names it by this relative name, which means the run's own copy.
RUN_FILE = "arrays.npz"


def own_arrays(run_path: str | Path, name: str) -> str:
    """The data a run's config names, as a path to read: :data:`RUN_FILE` is the run's own copy. So is
    the absolute path that runs of earlier versions recorded, where the run holds its own copy (a run
    that was copied or moved still reads its own arrays, never the original's)."""
    own = Path(run_path) / RUN_FILE
    if name == RUN_FILE or (Path(name).is_absolute() and Path(name).name == RUN_FILE and own.is_file()):
        return str(own)
    return name


def run_relative(run_path: str | Path, name: str) -> str:
    """``name`` as a run's config records it: the run's own arrays by :data:`RUN_FILE`, anything
    else as it is (the inverse of :func:`own_arrays`)."""
    return RUN_FILE if name == str(Path(run_path) / RUN_FILE) else name


# ----------------------------------------------------------------------------------------------
# Anything array-like as one NumPy array
# ----------------------------------------------------------------------------------------------
def _is_pil(v) -> bool:
    return type(v).__module__.startswith("PIL.")


def pil_pixels(img, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A PIL image as uint8 ``(H, W)`` (grey) or ``(H, W, 3)``; converted to the channels and size of
    ``image_shape`` ``(C, H, W)`` when given (as predict converts image files)."""
    from PIL import Image

    if image_shape is not None:
        C, H, W = image_shape
        img = img.convert("L" if C == 1 else "RGB")
        if (img.height, img.width) != (H, W):
            img = img.resize((W, H), Image.Resampling.BILINEAR)
    elif img.mode not in ("L", "RGB"):
        img = img.convert("L" if img.mode in ("1", "LA", "I", "I;16", "F") else "RGB")
    return np.asarray(img, dtype=np.uint8)


def as_array(x, what: str = "x", image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``x`` (a NumPy array, a torch tensor, a PIL image, or a list of those of one shape) as one
    NumPy array; a single PIL image becomes a batch of one."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if _is_pil(x):
        return pil_pixels(x, image_shape)[None]
    if isinstance(x, (list, tuple)):
        if not x:
            raise DataError(f"{what} is empty; give at least one sample")
        items = [as_array(v, what, image_shape)[0] if _is_pil(v) else as_array(v, what) for v in x]
        shapes = {a.shape for a in items}
        if len(shapes) > 1:
            raise DataError(f"{what} holds samples of different shapes {sorted(shapes)[:3]}; give one shape")
        try:
            return np.stack(items)
        except ValueError as e:
            raise DataError(f"{what} cannot be stacked into one array ({e})") from None
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise DataError(f"{what} is not an array ({type(x).__name__}: {e})") from None
    if a.dtype == object:
        raise DataError(f"{what} holds Python objects ({type(x).__name__}); give an array of numbers")
    return a


def _check_values(a: np.ndarray, what: str) -> None:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{what} holds {a.dtype} values; give an array of numbers")
    if a.ndim == 0:
        raise DataError(f"{what} is a single number ({a.item()!r}); give an array of samples, one per row")
    if a.size == 0 or a.shape[0] == 0:
        raise DataError(f"{what} of shape {a.shape} holds no samples")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        i = int(np.argmax(~np.isfinite(a.reshape(len(a), -1)).all(axis=1)))
        raise DataError(f"{what}[{i}] holds a NaN or infinite value; give finite numbers")


def to_float(a: np.ndarray) -> tuple[torch.Tensor, bool]:
    """Values as float32, and whether they were uint8 pixels (integers are scaled by
    :func:`layerlab.readers.scale_pixels`, the rule every reader applies). The one place arrays'
    pixels are scaled, so data kept in a run reads back bit for bit."""
    if not a.flags.writeable:  # PIL's arrays are read-only, and torch warns on those
        a = a.copy()
    if a.dtype.kind in "iub":  # the one rule for integer pixels (uint8 / 255, uint16 / 65535, ...)
        return torch.from_numpy(np.ascontiguousarray(readers.scale_pixels(a, "x")[0])), a.dtype == np.uint8
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)), False


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------
def images_nchw(a: np.ndarray, what: str = "x") -> np.ndarray:
    """Images ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` as ``(N, C, H, W)`` (a view where it
    can be): of dims 1 and 3 the smaller is the channel axis, a tie is channels-last (Keras's)."""
    if a.ndim == 3:
        return a[:, None]
    if a.ndim != 4:
        raise DataError(
            f"{what} of shape {a.shape} is not a batch of images; an image model takes (N, H, W), "
            f"(N, H, W, C) or (N, C, H, W)"
        )
    return a.transpose(0, 3, 1, 2) if a.shape[3] <= a.shape[1] else a


def _sequences(a: np.ndarray, what: str) -> torch.Tensor:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise DataError(f"{what} of shape {a.shape} is not a batch of sequences; a recurrent model takes (N, T, F)")
    return to_float(a)[0]


def model_inputs(x, *, sequence: bool, what: str = "x") -> tuple[torch.Tensor, InputSpec, bool]:
    """Arrays to train on: the model-ready tensor, its input spec and whether it came from uint8
    pixels. ``sequence``: the model reads sequences (uint8 images are then read as rows)."""
    a = as_array(x, what)
    _check_values(a, what)
    if sequence and not (a.dtype == np.uint8 and a.ndim in (3, 4)):
        t = _sequences(a, what)
        return t, InputSpec("sequence", tuple(t.shape[1:])), False
    t, pixels = to_float(images_nchw(a, what))
    spec = InputSpec("image", tuple(t.shape[1:]), pixel_scale=PIXEL_SCALE, image_shape=tuple(t.shape[1:]))
    return t, spec, pixels


def inputs_from_arrays(x, spec: InputSpec, what: str = "x") -> torch.Tensor:
    """Arrays (or PIL images) as inputs of a model trained with ``spec``: images converted to its
    ``(C, H, W)`` (channels-last or grey accepted; one sample without the batch axis too) and read as
    sequences where it did; sequences standardised as in training. An error names a shape that
    does not fit."""
    a = as_array(x, what, spec.image_shape)
    want_image = spec.image_shape is not None and not (spec.kind == "sequence" and a.shape[1:] == spec.shape)
    if want_image:
        assert spec.image_shape is not None  # (want_image says so)
        C, H, W = spec.image_shape
        if a.shape in ((C, H, W), (H, W, C)) or (C == 1 and a.shape == (H, W)):
            a = a[None]  # one image
        _check_values(a, what)
        if a.shape[1:] == (C, H, W):
            pass
        elif a.shape[1:] == (H, W, C):
            a = a.transpose(0, 3, 1, 2)
        elif C == 1 and a.shape[1:] == (H, W):
            a = a[:, None]
        else:
            raise DataError(
                f"{what} of shape {a.shape} does not fit the model, which takes images of {H}x{W} pixels and "
                f"{C} channel(s): give (N, {H}, {W}, {C}), (N, {C}, {H}, {W})"
                + (f" or (N, {H}, {W})" if C == 1 else "")
            )
        return spec.images(to_float(a)[0])
    if spec.kind == "sequence":
        F = spec.shape[-1]
        if a.ndim == 2 and F != 1 and a.shape[1] == F:  # one sequence (T, F); with F = 1, (N, T) is a batch
            a = a[None]
        _check_values(a, what)
        if a.ndim == 2 and F == 1:
            a = a[..., None]
        if a.ndim != 3 or a.shape[2] != F or (not spec.variable_length and a.shape[1] != spec.shape[0]):
            raise DataError(
                f"{what} of shape {a.shape} does not fit the model, which takes sequences of shape {spec.shape} "
                f"(N, T, F)"
            )
        x, _, _ = spec.sequences(list(to_float(a)[0].numpy()))
        return x
    if a.ndim == 1:
        a = a[None]
    _check_values(a, what)
    if a.dtype.kind not in "iu" or a.ndim != 2:
        raise DataError(f"{what} of {a.dtype} {a.shape}: the model takes token ids, integers of shape (N, T)")
    return torch.from_numpy(a.astype(np.int64))


# ----------------------------------------------------------------------------------------------
# Targets
# ----------------------------------------------------------------------------------------------
def _read_targets(y, n: int, what: str, task: str | None = None) -> tuple[np.ndarray, str, int | None]:
    """Targets as NumPy: class ids (int64, by :mod:`layerlab.labels`) or regression values (float32),
    the task, and the number of columns of one-hot rows (None otherwise)."""
    a = as_array(y, what)
    if a.dtype.kind not in "biuf":
        raise DataError(f"{what} holds {a.dtype} values; give integer class ids 0..K-1 or float regression targets")
    if a.ndim == 0 or len(a) != n:
        raise DataError(f"x holds {n} samples and {what} {1 if a.ndim == 0 else len(a)} targets; give one per sample")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        i = int(np.argmax(~np.isfinite(a.reshape(len(a), -1)).all(axis=1)))
        raise DataError(f"{what}[{i}] is NaN or infinite; targets must be finite")
    kind = labels.target_kind(a)
    if task in (None, "classification"):
        hot = labels.one_hot(a)
        if hot is not None:  # Keras's categorical targets: classes, never regression
            return hot, "classification", a.shape[1]
        if kind == "probabilities":  # soft targets, for the soft-target cross-entropy
            return np.ascontiguousarray(a, dtype=np.float32), "classification", a.shape[1]
    if task in (None, "multilabel") and kind in ("multi-label", "one-hot"):  # one sigmoid per label
        return np.ascontiguousarray(a, dtype=np.float32), "multilabel", a.shape[1]
    if task == "multilabel":
        raise DataError(f"{what} of shape {a.shape}: multi-label targets are (N, K) rows of 0s and 1s")
    if task is None:
        task = "regression" if a.dtype.kind == "f" else "classification"
    if task == "regression":
        if a.ndim > 2:
            raise DataError(f"{what} of shape {a.shape}: regression targets are (N,) or (N, D)")
        return np.ascontiguousarray(a, dtype=np.float32), task, None
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise DataError(f"{what} of shape {a.shape}: class labels are (N,) integers or one-hot rows (N, K)")
    return labels.class_ids(a, what), task, None


def targets(
    y,
    n: int,
    *,
    task: str | None = None,
    num_outputs: int | None = None,
    classes: list[str] | None = None,
    what: str = "y",
):
    """Targets for a trained model as a tensor, the task and the number of outputs. Integer (or
    bool) labels and one-hot rows are classes (``(N, 1)`` is taken as ``(N,)``, as
    ``keras.datasets.cifar10`` gives them); float targets ``(N,)`` or ``(N, D)`` are regression.
    ``task``/``num_outputs``: what the model expects (then float labels that are whole numbers are
    classes too); ``classes``: its class names, the original labels that :mod:`layerlab.labels`
    mapped to class ids, so ``y`` is given in the labels the model was trained on.
    """
    a, task, hot_k = _read_targets(y, n, what, task)
    if task == "multilabel" or (task == "classification" and a.ndim == 2):  # multi-label or soft rows
        if num_outputs is not None and a.shape[1] != num_outputs:
            raise DataError(f"{what} holds rows of {a.shape[1]} columns; the model gives {num_outputs}")
        return torch.from_numpy(a), task, a.shape[1]
    if task == "regression":
        d = 1 if a.ndim == 1 else a.shape[1]
        if num_outputs is not None and d != num_outputs:
            raise DataError(f"{what} has {d} value(s) per sample, the model gives {num_outputs}")
        return torch.from_numpy(a), task, d
    if hot_k is not None:
        if num_outputs is not None and hot_k != num_outputs:
            raise DataError(f"{what} holds one-hot rows of {hot_k} classes; the model knows {num_outputs}")
        return torch.from_numpy(a), task, num_outputs or hot_k
    if classes is not None:
        return torch.from_numpy(labels.encode_by_names(a, classes, what)), task, num_outputs or len(classes)
    if a.min() < 0:
        raise DataError(f"{what} holds the negative label {a.min()}; the model's classes are 0..K-1")
    k = int(a.max()) + 1
    if num_outputs is not None and k > num_outputs:
        raise DataError(f"{what} holds the label {k - 1}; the model knows {num_outputs} classes, 0..{num_outputs - 1}")
    return torch.from_numpy(a), task, num_outputs or k


# ----------------------------------------------------------------------------------------------
# A dataset from arrays
# ----------------------------------------------------------------------------------------------
def dataset_from_arrays(
    x,
    y,
    *,
    sequence: bool = False,
    validation_data: tuple | None = None,
    validation_split: float = 0.0,
    seed: int = 0,
    name: str = "arrays",
) -> Dataset:
    """A :class:`Dataset` to train on from arrays ``x`` (see the module docstring for the shapes)
    and targets ``y`` ``(N,)``.

    The held-out split (``dataset.test``, evaluated after each epoch) is ``validation_data``
    ``(x_val, y_val)``, else ``validation_split`` of the training samples (stratified by class, from
    ``seed``: not Keras's last samples), else, with neither, the training samples themselves (the
    run then reports on data it trained on; ``meta["held_out"]`` says which). ``sequence``: the
    model reads sequences.
    """
    if validation_data is not None and validation_split:
        raise DataError("give validation_data or validation_split, not both")
    xt, spec, pixels = model_inputs(x, sequence=sequence)
    ya, task, hot_k = _read_targets(y, len(xt), "y")
    xv = yva = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise DataError("validation_data must be a pair (x_val, y_val)")
        xv, vpixels = _same_kind(validation_data[0], spec, sequence, "validation_data x")
        pixels = pixels and vpixels  # kept as uint8 only when every sample was
        yva, _, vhot = _read_targets(validation_data[1], len(xv), "validation_data y", task)
        if vhot != hot_k:
            raise DataError("y and validation_data y must both be one-hot rows of one width, or both labels")
    notes: list[str] = []
    rows = ya.ndim == 2 and task != "regression"  # probability or multi-label rows: no class ids
    if yva is not None and rows and yva.ndim == 1:  # one-hot validation rows read as class ids: rows again
        yva = np.eye(ya.shape[1], dtype=np.float32)[yva]
    if yva is not None and rows and (yva.ndim != 2 or yva.shape[1] != ya.shape[1]):
        raise DataError(f"y holds rows of {ya.shape[1]} columns; validation_data y must hold rows of as many")
    if rows:
        what = "probabilities over" if task == "classification" else "0/1 labels of"
        how = "soft-target cross-entropy" if task == "classification" else "a sigmoid per label, binary cross-entropy"
        notes.append(f"y of shape {ya.shape} holds {what} {ya.shape[1]} classes: trained with {how}")
        classes, k = [str(i) for i in range(ya.shape[1])], ya.shape[1]
        yt = torch.from_numpy(ya)
        yv = torch.from_numpy(yva) if yva is not None else None
    elif task == "classification":  # one rule for class labels (layerlab.labels), as for files
        if hot_k is not None:
            notes.append(f"y of shape ({len(ya)}, {hot_k}) is one-hot: read as class ids 0..{hot_k - 1}")
        held = [("validation_data y", yva)] if yva is not None else []
        cs = labels.class_set(ya, held, where="y", names=[str(i) for i in range(hot_k)] if hot_k else None)
        notes += [cs.notice] if cs.notice else []
        classes, k = cs.names, cs.k
        yt = torch.from_numpy(cs.encode(ya))
        yv = torch.from_numpy(cs.encode(yva)) if yva is not None else None
    else:
        classes, k = None, 1 if ya.ndim == 1 else ya.shape[1]
        if ya.ndim == 2:  # never a silent regression: say how to get classes
            notes.append(
                f"y of shape {ya.shape} holds float values that are not probability rows or 0/1 labels: trained as "
                f"regression of {k} values (give class ids, one-hot, probability or 0/1 multi-label rows for classes)"
            )
        yt = torch.from_numpy(ya)
        yv = torch.from_numpy(yva) if yva is not None else None
    for note in notes:
        log.warning("%s", note)
    train = Split(xt, yt)
    if validation_data is not None:
        assert xv is not None and yv is not None  # (read from validation_data above)
        meta = {"format": "arrays", "held_out": "validation_data", **({"pixels": "uint8"} if pixels else {})}
        ds = Dataset(name, train, Split(xv, yv), task, classes, k, "arrays", meta, spec)
        ds.meta["validation_fraction"] = round(len(xv) / (len(xv) + len(xt)), 6)  # marks a validation split
    else:
        meta = {"format": "arrays", "held_out": "training", **({"pixels": "uint8"} if pixels else {})}
        ds = Dataset(name, train, train, task, classes, k, "arrays", meta, spec)
        if validation_split:
            if not 0.0 < validation_split < 1.0:
                raise DataError(f"validation_split must be between 0 and 1, got {validation_split}")
            ds = split_validation(ds, float(validation_split), seed)
            ds.meta["held_out"] = "validation_split"
    if notes:
        ds.meta["labels"] = " ".join(notes)
    if sequence and spec.kind == "image":  # uint8 images for a recurrent model: rows, as the CLI reads them
        ds = images_as_sequences(ds, "rows", seed=seed)
    return ds


def _same_kind(x, spec: InputSpec, sequence: bool, what: str) -> tuple[torch.Tensor, bool]:
    t, vspec, pixels = model_inputs(x, sequence=sequence, what=what)
    if vspec.kind != spec.kind or vspec.shape != spec.shape:
        raise DataError(f"{what} holds samples of shape {vspec.shape}, the training samples are {spec.shape}")
    return t, pixels


# ----------------------------------------------------------------------------------------------
# Kept in a run directory
# ----------------------------------------------------------------------------------------------
def save_arrays(path: str | Path, ds: Dataset) -> Path:
    """Keep a dataset made from arrays as an ``.npz`` (written to a temporary name, then renamed):
    its splits as the model takes them (uint8 where they were pixels: four times smaller, and
    scaled back bit for bit) and, in :data:`MARKER`, what reads them back."""
    path = Path(path)
    pixels = ds.meta.get("pixels") == "uint8"

    def pack(t: torch.Tensor) -> np.ndarray:
        a = t.detach().cpu().numpy()
        return np.round(a / PIXEL_SCALE).astype(np.uint8) if pixels else a

    record = {
        "name": ds.name,
        "task": ds.task,
        "classes": ds.classes,
        "num_outputs": ds.num_outputs,
        "meta": ds.meta,
        "spec": ds.spec.to_dict(),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(
            f,
            x_train=pack(ds.train.x),
            y_train=ds.train.y.cpu().numpy(),
            x_test=pack(ds.test.x),
            y_test=ds.test.y.cpu().numpy(),
            **{MARKER: np.array(json.dumps(record))},  # type: ignore[arg-type]
        )
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def is_arrays_file(path: str | Path) -> bool:
    """True for an ``.npz`` that :func:`save_arrays` wrote (it holds :data:`MARKER`)."""
    p = Path(path)
    if p.suffix != ".npz" or not p.is_file():
        return False
    try:
        with zipfile.ZipFile(p) as z:
            return f"{MARKER}.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def load_arrays(path: str | Path) -> Dataset:
    """The dataset :func:`save_arrays` kept, exactly as it was trained on."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            record = json.loads(str(z[MARKER]))
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: arrays kept by layerlab.fit cannot be read ({type(e).__name__}: {e})") from None

    def unpack(a: np.ndarray) -> torch.Tensor:
        return to_float(a)[0] if a.dtype == np.uint8 else torch.from_numpy(a)

    train = Split(unpack(arrays["x_train"]), torch.from_numpy(arrays["y_train"]))
    test = Split(unpack(arrays["x_test"]), torch.from_numpy(arrays["y_test"]))
    return Dataset(
        record["name"],
        train,
        test,
        record["task"],
        record["classes"],
        record["num_outputs"],
        str(path),
        record["meta"],
        InputSpec.from_dict(record["spec"]),
    )
