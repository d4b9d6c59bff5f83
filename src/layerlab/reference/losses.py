"""Softmax with cross-entropy (the article's ``Dense(..., activation='softmax')`` with
``sparse_categorical_crossentropy``), and mean squared error.

Softmax and cross-entropy are computed together, from the logits: ``log softmax(z)_k =
z_k - logsumexp(z)`` never takes the log of an underflowed probability, and the gradient of the pair
is the short ``softmax(z) - onehot(y)``.
"""

from __future__ import annotations

import numpy as np


def log_softmax(z: np.ndarray) -> np.ndarray:
    """``z_k - log sum_j exp(z_j)`` over the last axis; shifting by the max keeps ``exp`` finite."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """``exp(z_k) / sum_j exp(z_j)`` over the last axis."""
    return np.exp(log_softmax(z))


def softmax_cross_entropy_forward(logits: np.ndarray, targets: np.ndarray) -> tuple[float, dict]:
    """Mean cross-entropy of ``softmax(logits)`` against integer class labels.

    ``L = -(1/N) sum_n log softmax(z_n)[y_n]``, ``N`` being every position: the batch for a
    classifier, batch times time for a per-step RNN output.

    Args:
        logits: ``(..., K)``, e.g. ``(B, K)`` or ``(B, T, K)``.
        targets: integer labels in ``[0, K)``, shape ``(...)``, e.g. ``(B,)`` or ``(B, T)``.
    Returns:
        The scalar loss and a cache.
    """
    logp = log_softmax(logits)  # (..., K)
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]  # (...)
    return float(-picked.mean()), {"logp": logp, "targets": targets}


def softmax_cross_entropy_backward(dloss: float, cache: dict) -> dict[str, np.ndarray]:
    """``dL/dz = (softmax(z) - onehot(y)) / N``, times the upstream ``dloss`` (1 for a final loss).

    Returns:
        ``{"logits": (..., K)}``.
    """
    logp, targets = cache["logp"], cache["targets"]
    probs = np.exp(logp)  # (..., K) softmax(z)
    onehot = np.zeros_like(probs)  # (..., K)
    np.put_along_axis(onehot, targets[..., None], 1.0, axis=-1)
    return {"logits": (probs - onehot) * (dloss / targets.size)}


def mse_forward(pred: np.ndarray, target: np.ndarray) -> tuple[float, dict]:
    """``L = mean((pred - target)^2)`` over every entry."""
    diff = pred - target
    return float(np.mean(diff**2)), {"diff": diff}


def mse_backward(dloss: float, cache: dict) -> dict[str, np.ndarray]:
    """``dL/dpred = 2 (pred - target) / N``. Returns ``{"pred": same shape as pred}``."""
    diff = cache["diff"]
    return {"pred": diff * (2 * dloss / diff.size)}
