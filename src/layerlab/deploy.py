"""Predicting with an exported model, with onnxruntime, NumPy and Pillow alone: no torch.

``layerlab export RUN_DIR`` writes one self-contained ``.onnx`` file: besides the graph and its
weights, its ``metadata_props`` hold how raw input becomes the model's input (the run's input spec,
and for permuted-pixel runs the permutation itself), the class names, the task and how the outputs
are decoded, the model's name and the layerlab version that wrote it (:func:`metadata_props`
writes them, :func:`read_metadata` reads them back). ``layerlab predict --onnx FILE INPUTS...``
(:func:`predict_files`) then reads the inputs exactly as ``layerlab predict RUN_DIR`` does, runs
onnxruntime and prints the same lines.

This module imports numpy, and onnxruntime and Pillow when it needs them, and of layerlab only
:mod:`layerlab.errors` and :mod:`layerlab.readers`; an import-linter contract (``deploy-no-torch`` in
pyproject.toml) and ``tests/test_onnx_predict.py`` (which blocks torch in a fresh interpreter) hold
it to that. Files become arrays in :mod:`layerlab.readers` (held torch-free by ``readers-no-torch``),
the one implementation of the readers, in NumPy, which :mod:`layerlab.data` wraps in tensors for
``layerlab predict RUN_DIR``: :func:`~layerlab.readers.read_files` reads images (pixel scaling by
type, channel conversion, bilinear resizing), ``.npy`` images and volumes, sequences (``.npy``,
``.csv`` and ``.tsv``; ``.ts`` files need ``layerlab predict RUN_DIR``), text and token ids, with
the same notes and the same sentences for what it cannot read, and
:func:`~layerlab.readers.image_sequence` (rows, pixels, the permuted order, which the export
stores, as torch's ``randperm`` is not NumPy's) and :func:`~layerlab.readers.standardise` turn them
into what the model reads. What is written here again is the decoding: :func:`decode` is
:func:`layerlab.api.decode` (softmax, top-k, class names).

``tests/test_onnx_predict.py`` checks the predictions against the torch path: the same classes and
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

import numpy as np

from .errors import DataError, LayerlabError
from .readers import image_sequence, read_files, standardise

#: The metadata format written by :func:`metadata_props`; a reader refuses a newer one.
FORMAT = 1
#: Keys of the ONNX ``metadata_props`` whose values are JSON (the others are plain strings).
JSON_KEYS = ("classes", "input_spec", "permutation", "model_options", "input", "output", "check")
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
    :func:`layerlab.readers.read_files` as :func:`layerlab.data.inputs.read_inputs` reads them;
    ``any_size`` (a model that takes any size) keeps each image at its own size. None for no files."""
    spec = meta.spec
    kind, shape = spec["kind"], tuple(spec["shape"])
    if kind not in ("image", "volume", "sequence", "tokens"):
        raise LayerlabError(f"predict --onnx does not read {kind} inputs; use `layerlab predict RUN_DIR`")
    read = read_files(files, spec, meta.num_outputs, any_size=any_size)
    if read is None:
        return None
    names, notes, truths = read.names, read.notes, read.truths
    if read.images:
        if spec.get("sequence") is None:
            if kind not in ("image", "volume"):
                raise DataError(f"the model takes {kind} of shape {shape}, not images")
            return Inputs(read.images, names, notes, truths)
        if spec["sequence"] == "permuted" and meta.permutation is None:
            raise LayerlabError("the model reads permuted pixels and its file holds no permutation of them")
        x = image_sequence(np.stack(read.images), spec["sequence"], meta.permutation)
        return Inputs(list(x), names, notes, truths)
    if read.texts:
        return Inputs(read.texts, names, notes, truths)
    if kind != "sequence":
        raise DataError(f"the model takes {kind} of shape {shape}, not sequences of numbers")
    if spec.get("feature_mean") is not None:
        samples, _ = standardise(read.sequences, spec["feature_mean"], spec["feature_std"])
    else:
        samples = [np.nan_to_num(np.asarray(s, dtype=np.float64)).astype(np.float32) for s in read.sequences]
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
