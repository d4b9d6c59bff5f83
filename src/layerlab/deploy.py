"""Predicting with an exported model, with onnxruntime, NumPy and Pillow alone: no torch.

``layerlab export RUN_DIR`` writes one self-contained ``.onnx`` file: besides the graph and its
weights, its ``metadata_props`` hold how raw input becomes the model's input (the run's input spec,
and for permuted-pixel runs the permutation itself), the class names, the task and how the outputs
are decoded, the model's name and the layerlab version that wrote it (:func:`metadata_props`
writes them, :func:`read_metadata` reads them back). ``layerlab predict --onnx FILE INPUTS...``
(:func:`predict_files`) then reads the inputs exactly as ``layerlab predict RUN_DIR`` does, runs
onnxruntime and prints the same lines.

This module imports numpy, and onnxruntime and Pillow when it needs them, and of layerlab only
:mod:`layerlab.errors`, :mod:`layerlab.readers`, :mod:`layerlab.inputspec` and
:mod:`layerlab.decoding`; an import-linter contract (``deploy-no-torch`` in pyproject.toml) and
``tests/export/test_onnx_predict.py`` (which blocks torch in a fresh interpreter) hold it to that.
Files become arrays in :mod:`layerlab.readers` (held torch-free by ``readers-no-torch``),
the one implementation of the readers, in NumPy, which :mod:`layerlab.data` wraps in tensors for
``layerlab predict RUN_DIR``: :func:`~layerlab.fileformats.read_files` (the format registry) reads
images (pixel scaling by type, channel conversion, bilinear resizing), ``.npy`` images and volumes, sequences (``.npy``,
``.csv`` and ``.tsv``; ``.ts`` files need ``layerlab predict RUN_DIR``), text and token ids, with
the same notes and the same sentences for what it cannot read, and
:func:`~layerlab.readers.image_sequence` (rows, pixels, the permuted order, which the export
stores, as torch's ``randperm`` is not NumPy's) and :func:`~layerlab.readers.standardise` turn them
into what the model reads, with the input spec's transform (:mod:`layerlab.inputspec`), and
:mod:`layerlab.decoding` turns outputs into predictions: the same modules torch's predict uses.

``tests/export/test_onnx_predict.py`` checks the predictions against the torch path: the same classes and
probabilities (to 1e-4) for the same files.

Inputs of one shape go through the model together; sequences of different lengths (and, for a CNN
with a global pool, which takes any size, images of different sizes) go in groups of one shape
each: the ONNX model reads whole batches, and a recurrent model or a CNN with a global pool reads
each sequence at its own length, as torch's packed or masked batch reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import decoding
from .choices import TASKS  # what a model predicts (run.json's dataset.task)
from .errors import ConfigError, DataError, LayerlabError
from .fileformats import read_files
from .inputspec import InputSpec

#: The metadata format written by :func:`metadata_props`; a reader refuses a newer one.
FORMAT = 1
#: Keys of the ONNX ``metadata_props`` whose values are JSON (the others are plain strings).
JSON_KEYS = ("classes", "input_spec", "permutation", "model_options", "input", "output", "check")
BATCH = 1000  # samples per onnxruntime call, as torch's predict batches them


# ----------------------------------------------------------------------------------------------
# The metadata inside the .onnx file
# ----------------------------------------------------------------------------------------------
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
    """What :func:`read_metadata` gives: the run's input ``spec``
    (:class:`~layerlab.inputspec.InputSpec`), ``classes``, ``task``, ``decode``, ``num_outputs``,
    the stored ``permutation`` (or None), ``min_size`` (or None) and every key as read (``props``)."""

    spec: InputSpec
    classes: list[str]
    task: str
    decode: str
    num_outputs: int
    permutation: np.ndarray | None = None
    min_size: int | None = None
    props: dict = field(default_factory=dict)


def read_metadata(props: dict[str, str], path: str | Path = "model") -> Metadata:
    """The layerlab metadata of an ONNX model's ``metadata_props`` (a dict of strings), every field
    predict reads checked as strictly as ``run.json``: the input spec field by field
    (:meth:`~layerlab.inputspec.InputSpec.from_dict`), ``task`` and ``decode`` among the known ones
    and in agreement, ``num_outputs`` a positive integer, ``classes`` that many names (strings),
    ``permutation`` an order of the image's pixels (permuted-pixel runs, and only those),
    ``min_size`` a positive integer.

    Args:
        props: the ONNX model's ``metadata_props``.
        path: the model's file, named in errors.

    Returns:
        The :class:`Metadata`.

    Raises:
        DataError: one sentence naming ``path`` for the first thing wrong.
    """
    if "layerlab_version" not in props or "input_spec" not in props:
        raise DataError(
            f"{path}: an ONNX model without layerlab's metadata (input spec, classes); predict --onnx "
            f"takes a file written by `layerlab export RUN_DIR`"
        )
    try:
        fmt = _integer(props.get("layerlab_format", "1"), "layerlab_format", 1)
        if fmt > FORMAT:
            raise DataError(
                f"{path}: written by layerlab {props['layerlab_version']} in metadata format {fmt}; this "
                f"layerlab reads format {FORMAT}, so update it"
            )
        values: dict[str, Any] = {}
        for k, v in props.items():
            try:
                values[k] = json.loads(v) if k in JSON_KEYS else v
            except (ValueError, RecursionError):
                raise ValueError(f"{k} is not JSON") from None
        spec = InputSpec.from_dict(values["input_spec"])
        task = values.get("task") or "classification"
        if task not in TASKS:
            raise ValueError(f"task is {str(task)[:40]!r}, not one of {', '.join(TASKS)}")
        classes = values.get("classes")
        if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
            raise ValueError("classes must be a list of names (strings)")
        num_outputs = _integer(values.get("num_outputs") or len(classes or []), "num_outputs", 1)
        if classes and len(classes) != num_outputs:
            raise ValueError(f"{len(classes)} class names for {num_outputs} outputs")
        if spec.vocab is not None and len(spec.vocab) != num_outputs:
            raise ValueError(f"a vocabulary of {len(spec.vocab)} characters for {num_outputs} outputs")
        kind = decoding.decode_kind(task, spec.head, spec.vocab)
        if values.get("decode") not in (None, kind):
            raise ValueError(f"decode is {str(values['decode'])[:40]!r}, where the task and input spec say {kind!r}")
        permutation = _permutation(values.get("permutation"), spec)
        min_size = None if values.get("min_size") is None else _integer(values["min_size"], "min_size", 1)
    except (ValueError, TypeError, KeyError, DataError) as e:
        raise DataError(f"{path}: its layerlab metadata cannot be read ({str(e)[:300]})") from None
    return Metadata(
        spec=spec,
        classes=classes or [str(i) for i in range(num_outputs)],
        task=task,
        decode=kind,
        num_outputs=num_outputs,
        permutation=permutation,
        min_size=min_size,
        props=props,
    )


def _integer(v, name: str, least: int) -> int:
    """``v`` (an int, or a string of one) as an int of at least ``least``, else ValueError."""
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError(f"{name} must be a whole number, got {str(v)[:40]!r}")
    try:
        n = int(v)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {str(v)[:40]!r}") from None
    if n < least:
        raise ValueError(f"{name} must be at least {least}, got {n}")
    return n


def _permutation(v, spec: InputSpec) -> np.ndarray | None:
    """The stored pixel order of a permuted-pixel run: every pixel index ``0 .. H*W - 1`` once."""
    if spec.sequence != "permuted":
        if v is not None:
            raise ValueError("a permutation for a model that does not read permuted pixels")
        return None
    if spec.image_shape is None:
        raise ValueError("input_spec reads permuted pixels but has no image_shape")
    n = spec.image_shape[1] * spec.image_shape[2]
    if (
        not isinstance(v, list)
        or len(v) != n
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in v)
        or sorted(v) != list(range(n))
    ):
        raise ValueError(f"permutation must hold each of the {n} pixel indices once")
    return np.asarray(v, dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------
class OnnxModel:
    """An exported layerlab model in an onnxruntime session, with its metadata.

    Args:
        path: the ``.onnx`` file.

    Raises:
        LayerlabError: onnxruntime is not installed.
        DataError: no such file, not an ONNX model, or layerlab's metadata missing or wrong (see
            :func:`read_metadata`).
    """

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
            raise DataError(f"{self.path}: {what}")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # onnxruntime's warnings are for its developers, not ours
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # a file that is not ONNX raises onnxruntime's own errors
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise DataError(f"{self.path}: not an ONNX model onnxruntime can load ({first})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = list(inp.shape)  # ints where fixed, names (or None) where dynamic
        self.input_type = inp.type
        self.use_metadata(self.session.get_modelmeta().custom_metadata_map)

    def use_metadata(self, props: dict[str, str]) -> None:
        """Read ``props`` (the file's ``metadata_props``) as this model's metadata, checked field by
        field (:func:`read_metadata`) and against the graph's input and output shapes."""
        self.meta = read_metadata(props, self.path)
        self._check_graph()
        # a CNN with a global pool takes any size: its spatial axes are dynamic (images keep their own)
        self.any_size = (
            self.meta.spec.kind in ("image", "volume")
            and self.meta.spec.sequence is None
            and any(not isinstance(d, int) for d in self.input_shape[2:])
        )

    def _check_graph(self) -> None:
        """The metadata describes this graph: its input has the rank of a batch of the spec's
        samples, fixed at the spec's sizes where it is fixed, and its output has ``num_outputs``
        values per sample (per step) where that axis is fixed; one sentence otherwise."""
        spec, meta = self.meta.spec, self.meta
        shape = self.input_shape
        want = "tensor(int64)" if spec.kind == "tokens" else "tensor(float)"
        if self.input_type != want:
            raise DataError(
                f"{self.path}: its metadata's input spec describes {spec.kind} ({want}), the graph takes "
                f"{self.input_type}; the file was altered"
            )
        sizes = "x".join(str(s) if isinstance(s, int) else "any" for s in shape[1:])
        if len(shape) != len(spec.shape) + 1 or any(
            isinstance(d, int) and d != s for d, s in zip(shape[1:], spec.shape, strict=False)
        ):
            raise DataError(
                f"{self.path}: its metadata's input spec describes samples of shape "
                f"{'x'.join(map(str, spec.shape))}, the graph takes {sizes}; the file was altered"
            )
        out = list(self.session.get_outputs()[0].shape)
        if out and isinstance(out[-1], int) and meta.task != "regression" and out[-1] != meta.num_outputs:
            raise DataError(
                f"{self.path}: its metadata names {meta.num_outputs} classes, the graph outputs {out[-1]} "
                f"values per sample; the file was altered"
            )

    def check_shape(self, shape: tuple[int, ...], name: str) -> None:
        """One sentence naming ``name`` when a sample of ``shape`` does not fit a fixed axis, or is
        smaller than a model that takes any size reads (``min_size`` on each side)."""
        need = self.meta.min_size
        if self.any_size and need is not None and min(shape[1:]) < need:
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
        try:
            outs = [self.session.run(None, {self.input_name: x[i : i + BATCH]})[0] for i in range(0, len(x), BATCH)]
        except Exception as e:  # onnxruntime's own errors, for inputs the graph cannot take
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise DataError(f"{self.path}: onnxruntime cannot run the model on these inputs ({first})") from None
        return np.concatenate(outs).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------
# Reading inputs (with layerlab.readers, as layerlab.data reads them; see the module docstring)
# ----------------------------------------------------------------------------------------------
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
    ``.tsv``) or text files as the exported run's input spec says, with
    :func:`layerlab.fileformats.read_files` and :meth:`layerlab.inputspec.InputSpec.samples`, as
    :func:`layerlab.data.inputs.read_inputs` reads them; ``any_size`` (a model that takes any size)
    keeps each image at its own size. None for no files."""
    read = read_files(files, meta.spec, meta.num_outputs, any_size=any_size)
    if read is None:
        return None
    return Inputs(meta.spec.samples(read, meta.permutation), read.names, read.notes, read.truths)


# ----------------------------------------------------------------------------------------------
# predict --onnx
# ----------------------------------------------------------------------------------------------
def predict_files(onnx_path: str | Path, files: list[str | Path], *, top_k: int = 3) -> list[dict]:
    """Predict files with an exported model, through onnxruntime, without torch.

    Args:
        onnx_path: the ``.onnx`` file ``layerlab export`` wrote.
        files: image, sequence (``.npy``, ``.csv``, ``.tsv``) or text files, read as the model's
            run read its data.
        top_k: how many of the likeliest classes each result lists.

    Returns:
        The same list of dicts as :func:`layerlab.api.predict_files` (``file``, ``notes``, what
        :func:`layerlab.decoding.decode` gives, ``true_label`` where the file carries one).

    Raises:
        ConfigError: ``top_k`` below 1.
        LayerlabError: onnxruntime is not installed.
        DataError: a model file that is not a layerlab ONNX model, or an input that cannot be read
            or does not fit it.
    """
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    return predict_with(OnnxModel(onnx_path), files, top_k=top_k)


def predict_with(model: OnnxModel, files: list[str | Path], *, top_k: int = 3) -> list[dict]:
    """:func:`predict_files` with a model already loaded."""
    meta = model.meta
    inputs = read_inputs(files, meta, any_size=model.any_size)
    if inputs is None:
        return []
    outs: list[Any] = [None] * len(inputs.samples)  # every one set below
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
        length = int(inputs.samples[i].shape[0]) if meta.spec.kind in ("sequence", "tokens") else 0
        try:
            decoded = decoding.decode(
                outs[i], length, task=meta.task, classes=meta.classes, vocab=meta.spec.vocab, k=top_k
            )
        except DataError as e:
            raise DataError(f"{name}: {e}") from None
        r = {"file": name, "notes": inputs.notes[i], **decoded}
        truth = inputs.truths[i]
        if truth is not None:
            r["true_label"] = truth if isinstance(truth, str) else float(truth)
        results.append(r)
    return results
