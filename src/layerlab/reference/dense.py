"""Fully connected layer (article eq. 3.1.3), flatten, and the ReLU and tanh activations.

The article writes one output over a 2-D feature map::

    y = sum_i sum_j w[i,j] * x[i,j] + b

With ``K`` outputs each has its own weights, ``y_k = sum_{i,j} W[k,i,j] x[i,j] + b_k``; flattening
``x`` (and each ``W[k]``) in the same order turns the double sum into one dot product, so the layer
is ``y = W x + b`` with ``W`` of shape ``(K, D)``: torch's ``nn.Linear`` layout, ready for
``torch.nn.functional.linear``. The same function is the RNN's output layer ``y_t = V h_t + c``.
"""

from __future__ import annotations

import numpy as np


def dense_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Eq. 3.1.3 for ``K`` outputs: ``y[..., k] = sum_d W[k, d] x[..., d] + b[k]``.

    Args:
        x: ``(..., D)``: ``(B, D)`` for a CNN head, ``(B, T, H)`` for the RNN's output layer.
        W: ``(K, D)``.
        b: ``(K,)`` or None.
    Returns:
        ``y`` of shape ``(..., K)`` and a cache.
    """
    y = x @ W.T  # (..., K)
    if b is not None:
        y = y + b
    return y, {"x": x, "W": W, "has_b": b is not None}


def dense_backward(dy: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradients of ``y = W x + b``: ``dx = dy W``, ``dW = sum dy^T x``, ``db = sum dy``.

    Sums run over every leading axis (batch, and time for the RNN output layer), because the same
    ``W`` and ``b`` produced every one of those outputs.

    Args:
        dy: ``(..., K)``.
        cache: from :func:`dense_forward`.
    Returns:
        ``{"x": (..., D), "W": (K, D), "b": (K,)}`` (no ``"b"`` when the forward had none).
    """
    x, W = cache["x"], cache["W"]
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, K), N = all leading axes
    x2 = x.reshape(-1, x.shape[-1])  # (N, D)
    grads = {"x": dy @ W, "W": dy2.T @ x2}  # x: (..., D), W: (K, D)
    if cache["has_b"]:
        grads["b"] = dy2.sum(axis=0)  # (K,)
    return grads


def flatten_forward(x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Keep the batch axis, flatten the rest in C order (``(B, C, H, W) -> (B, C*H*W)``), as torch does.

    Keras flattens NHWC, so its Dense kernel rows come in a different order: weights ported from
    Keras need a permutation, outputs and accuracy do not.
    """
    return x.reshape(x.shape[0], -1), {"shape": x.shape}


def flatten_backward(dy: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Undo the reshape: ``(B, D) -> (B, C, H, W)``."""
    return {"x": dy.reshape(cache["shape"])}


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, dict]:
    """``relu(x) = max(x, 0)``, elementwise, any shape."""
    return np.maximum(x, 0), {"mask": x > 0}


def relu_backward(dy: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """The derivative is 1 where ``x > 0`` and 0 elsewhere (0 at the kink, as torch chooses)."""
    return {"x": dy * cache["mask"]}


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, dict]:
    """``tanh(x)``, elementwise, any shape."""
    y = np.tanh(x)
    return y, {"y": y}


def tanh_backward(dy: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """``d tanh(x)/dx = 1 - tanh(x)^2``, written with the output so nothing is recomputed."""
    return {"x": dy * (1 - cache["y"] ** 2)}


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow for large negative ``x``; its derivative is ``s (1 - s)``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
