"""The tanh RNN with a per-step output (article 3.2.1/3.2.2) and backpropagation through time (3.2.3).

::

    h_t = tanh(W x_t + U h_{t-1} + b)          (3.2.1, the recurrence; h_0 given, zeros by default)
    y_t = V h_t + c                            (3.2.2, the output at every step)

BPTT walks back from ``t = T`` to 1. The loss reaches ``h_t`` through ``y_t`` and through
``h_{t+1}``, so (row vectors, as the code computes them)::

    dL/dh_t     = dL/dy_t V  +  dL/dh_{t+1} (dh_{t+1}/dh_t)
    dh_t/dh_{t-1} = diag(1 - h_t^2) U          (3.2.3, one Jacobian per step)
    da_t        = dL/dh_t * (1 - h_t^2)        (gradient at the pre-activation a_t = W x_t + U h_{t-1} + b)
    dL/dW = sum_t da_t^T x_t,  dL/dU = sum_t da_t^T h_{t-1},  dL/db = sum_t da_t
    dL/dV = sum_t dL/dy_t^T h_t,  dL/dc = sum_t dL/dy_t,  dL/dh_0 = da_1 U

When the loss sits at ``y_T`` only, the first term vanishes for ``t < T`` and
``dL/dh_t = dL/dh_T (dh_T/dh_{T-1}) ... (dh_{t+1}/dh_t)``: the article's product of Jacobians, whose
norm is at most ``max(1 - h^2) * ||U||_2`` per factor, hence the vanishing gradient.

Time indexing: arrays are 0-based, so ``x[:, t-1]`` is the article's ``x_t`` and ``h[:, t-1]`` its
``h_t`` for ``t = 1..T``; ``h0`` is ``h_0``. Weight layouts are torch's (``W`` is ``(H, D)``, like
``nn.RNN.weight_ih_l0``), so ``h_t`` matches ``nn.RNN`` with ``weight_ih_l0 = W``,
``weight_hh_l0 = U``, ``bias_ih_l0 = b`` and ``bias_hh_l0 = 0`` (torch splits ``b`` in two; only the
sum matters).
"""

from __future__ import annotations

import numpy as np

from .dense import dense_backward, dense_forward


def rnn_cell_forward(
    x_t: np.ndarray, h_prev: np.ndarray, W: np.ndarray, U: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, dict]:
    """One step of eq. 3.2.1: ``h_t = tanh(W x_t + U h_{t-1} + b)``.

    Args:
        x_t: ``(B, D)``.
        h_prev: ``h_{t-1}``, ``(B, H)``.
        W: ``(H, D)``; U: ``(H, H)``; b: ``(H,)``.
    Returns:
        ``h_t`` ``(B, H)`` and a cache.
    """
    a_t = x_t @ W.T + h_prev @ U.T + b  # (B, H)
    h_t = np.tanh(a_t)  # (B, H)
    return h_t, {"x_t": x_t, "h_prev": h_prev, "h_t": h_t, "W": W, "U": U}


def rnn_cell_backward(dh_t: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradients of one step, given the total ``dL/dh_t`` (from ``y_t`` and from ``h_{t+1}``).

    Returns:
        ``{"x_t": (B, D), "h_prev": (B, H), "W": (H, D), "U": (H, H), "b": (H,)}``.
    """
    da = dh_t * (1 - cache["h_t"] ** 2)  # (B, H) tanh' = 1 - h_t^2
    return {
        "x_t": da @ cache["W"],  # (B, D)
        "h_prev": da @ cache["U"],  # (B, H) = dh_t diag(1-h_t^2) U
        "W": da.T @ cache["x_t"],  # (H, D)
        "U": da.T @ cache["h_prev"],  # (H, H)
        "b": da.sum(axis=0),  # (H,)
    }


def rnn_forward(
    x: np.ndarray,
    h0: np.ndarray | None,
    W: np.ndarray,
    U: np.ndarray,
    b: np.ndarray,
    V: np.ndarray | None = None,
    c: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Eqs. 3.2.1 and 3.2.2 over a whole sequence.

    Args:
        x: inputs ``x_1..x_T``, ``(B, T, D)``.
        h0: ``h_0``, ``(B, H)``, or None for zeros.
        W: ``(H, D)``; U: ``(H, H)``; b: ``(H,)``.
        V: ``(O, H)`` and c: ``(O,)``, the per-step output layer; with ``V=None`` the output is the
            hidden states themselves (what ``nn.RNN`` returns).
    Returns:
        ``y`` ``(B, T, O)`` (or ``h`` ``(B, T, H)`` when ``V`` is None) and a cache whose ``"h"`` holds
        every hidden state ``h_1..h_T`` ``(B, T, H)``, kept for BPTT and for inspection.
    """
    B, T, _ = x.shape
    H = U.shape[0]
    h_prev = np.zeros((B, H), dtype=x.dtype) if h0 is None else h0  # (B, H)
    hs, steps = [], []
    for t in range(T):
        h_t, step = rnn_cell_forward(x[:, t], h_prev, W, U, b)  # (B, H)
        hs.append(h_t)
        steps.append(step)
        h_prev = h_t
    h = np.stack(hs, axis=1)  # (B, T, H)
    cache = {"steps": steps, "h": h, "U": U, "has_h0": h0 is not None, "out": None}
    if V is None:
        return h, cache
    y, cache["out"] = dense_forward(h, V, c)  # (B, T, O)  y_t = V h_t + c
    return y, cache


def rnn_backward(
    dy: np.ndarray, cache: dict, dh_last: np.ndarray | None = None, return_per_step: bool = False
) -> dict[str, np.ndarray]:
    """Backpropagation through time for :func:`rnn_forward` (see the module docstring).

    Args:
        dy: ``dL/dy_t`` for every step, ``(B, T, O)`` (``(B, T, H)`` when the forward had no ``V``).
        cache: from :func:`rnn_forward`.
        dh_last: an extra ``dL/dh_T`` ``(B, H)`` from outside the sequence (a later chunk, a head on
            the last state), or None.
        return_per_step: also return ``"h"``, the total ``dL/dh_t`` for ``t = 1..T`` ``(B, T, H)``, and
            ``"jacobians"``, ``dh_t/dh_{t-1}`` ``(B, T, H, H)`` (see :func:`rnn_jacobians`).
    Returns:
        ``{"x": (B, T, D), "h0": (B, H), "W", "U", "b", "V", "c"}``, each parameter's gradient in the
        parameter's shape (no ``"V"``/``"c"`` without an output layer; ``"h0"`` is returned even when
        the forward used zeros).
    """
    steps = cache["steps"]
    T = len(steps)
    if cache["out"] is None:
        grads, dh_out = {}, dy  # (B, T, H)
    else:
        g = dense_backward(dy, cache["out"])
        grads, dh_out = {"V": g["W"], "c": g["b"]}, g["x"]  # dh_out: (B, T, H) = dL/dy_t V
    dW = dU = db = 0.0
    dx = [None] * T
    dh_per_step = [None] * T
    # dL/dh_{t+1} (dh_{t+1}/dh_t): what flows into h_t from the future; nothing beyond h_T.
    dh_from_next = np.zeros_like(dh_out[:, 0]) if dh_last is None else dh_last  # (B, H)
    for t in reversed(range(T)):
        dh_t = dh_out[:, t] + dh_from_next  # (B, H) total dL/dh_t
        dh_per_step[t] = dh_t
        g = rnn_cell_backward(dh_t, steps[t])
        dW, dU, db = dW + g["W"], dU + g["U"], db + g["b"]  # same weights at every step
        dx[t] = g["x_t"]  # (B, D)
        dh_from_next = g["h_prev"]  # (B, H)
    grads.update({"x": np.stack(dx, axis=1), "h0": dh_from_next, "W": dW, "U": dU, "b": db})
    if return_per_step:
        grads["h"] = np.stack(dh_per_step, axis=1)  # (B, T, H)
        grads["jacobians"] = rnn_jacobians(cache)  # (B, T, H, H)
    return grads


def rnn_jacobians(cache: dict) -> np.ndarray:
    """Eq. 3.2.3's factors: ``J[:, t-1] = dh_t/dh_{t-1} = diag(1 - h_t^2) U`` for ``t = 1..T``.

    Row ``k`` of ``J[b, t-1]`` is the derivative of ``h_t[k]`` with respect to ``h_{t-1}``; a row
    gradient moves one step back as ``dL/dh_{t-1} = dL/dh_t @ J[:, t-1]``.

    Args:
        cache: from :func:`rnn_forward`.
    Returns:
        ``(B, T, H, H)``.
    """
    h = cache["h"]  # (B, T, H)
    return (1 - h**2)[..., :, None] * cache["U"]  # (B, T, H, H)
