"""Model outputs to predictions, without torch: the one decoder both ways of predicting use.

:func:`layerlab.api.decode` (``layerlab predict RUN_DIR``, ``layerlab.predict(..., top_k=K)``)
hands it one sample's outputs as a NumPy array; :mod:`layerlab.deploy` (``predict --onnx``) hands
it what onnxruntime returns. So a prediction reads the same, key for key, whichever path made it,
and neither holds a copy of the rules.

A prediction is always finite: outputs that are not (inf or NaN: an input far outside what the
model was trained on overflowed it) are refused in one sentence, never printed as ``nan`` or
written into JSON, which has no NaN.

Imports NumPy and :mod:`layerlab.errors` only (the ``inputspec-no-torch`` import-linter contract).
"""

from __future__ import annotations

import numpy as np

from .errors import DataError

#: What a prediction holds, by how the model's outputs are read (:func:`decode_kind`).
DECODE_KINDS = ("regression", "next", "steps", "class", "labels")


def decode_kind(task: str | None, head: str | None, vocab: str | None) -> str:
    """How a model's outputs become a prediction: ``regression`` (values), ``next`` (a character
    model: the character after the input), ``steps`` (one class per step) or ``class`` (top-k)."""
    if task == "regression":
        return "regression"
    if task == "multilabel":
        return "labels"
    if head == "step":
        return "next" if vocab is not None else "steps"
    return "class"


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float32 as torch computes it."""
    z = np.asarray(z, dtype=np.float32)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def top_k(probs: np.ndarray, classes: list[str], k: int) -> list[dict]:
    """The ``k`` likeliest classes of one probability vector ``(K,)``, likeliest first (ties in
    class order)."""
    k = max(1, min(k, len(classes)))
    idx = np.argsort(-np.asarray(probs), kind="stable")[:k]
    return [{"index": int(j), "label": classes[int(j)], "probability": float(probs[j])} for j in idx]


def decode(
    out: np.ndarray, length: int, *, task: str, classes: list[str], vocab: str | None = None, k: int = 3
) -> dict:
    """The prediction for one sample's outputs ``out`` (``(K,)`` for a class per sample, ``(T, K)``
    for one per step, values for regression), ``length`` its steps (sequences and text): ``kind``
    ``class`` (the likeliest class, its probability and the ``top_k`` list), ``next`` (a text model
    with ``vocab``: the character after the input), ``steps`` (one class per step), ``value`` or
    ``values`` (regression), ``labels`` (multi-label: every label of probability above 0.5).
    Non-finite outputs raise :class:`~layerlab.errors.DataError`."""
    out = np.asarray(out, dtype=np.float32)
    if task == "regression":
        o = out.reshape(-1)
        used = o[:1] if o.size == 1 else o[:length]
    elif out.ndim == 2:
        used = out[length - 1] if vocab is not None else out[:length]
    else:
        used = out
    if not np.isfinite(used).all():
        raise DataError(
            "the model's outputs for this input are not finite (inf or NaN): its values lie far outside "
            "the data the model was trained on"
        )
    if task == "regression":
        if o.size == 1:
            return {"kind": "value", "value": float(o[0])}
        return {"kind": "values", "values": [float(v) for v in used]}
    if task == "multilabel":  # a sigmoid per label: every label above 0.5, and the k likeliest
        probs = 1 / (1 + np.exp(-used.astype(np.float64)))
        top = top_k(probs, classes, k)
        return {"kind": "labels", "labels": [c for c, p in zip(classes, probs, strict=True) if p > 0.5], "top_k": top}
    if out.ndim == 2 and vocab is not None:  # a character model: what comes after the text
        return _top_result("next", top_k(softmax(used), classes, k))
    if out.ndim == 2:
        return {"kind": "steps", "labels": [classes[int(j)] for j in used.argmax(-1)]}
    return _top_result("class", top_k(softmax(used), classes, k))


def _top_result(kind: str, top: list[dict]) -> dict:
    """A prediction of ``kind`` from its top-k list: the likeliest class in front, then the list."""
    return {"kind": kind, **{key: top[0][key] for key in ("index", "label", "probability")}, "top_k": top}
