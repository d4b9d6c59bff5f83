"""GRU cell and sequence, forward and backward: the other gated cell among the article's remedies
for vanishing gradients (6.2.2).

Gate convention is torch's (``nn.GRU``): the rows of ``W`` ``(3H, D)``, ``U`` ``(3H, H)`` and of the
two biases ``b`` and ``b_U`` ``(3H,)`` are three blocks in the order **r, z, n**::

    r = sigmoid(W_r x_t + b_r + U_r h_{t-1} + b_Ur)        reset gate
    z = sigmoid(W_z x_t + b_z + U_z h_{t-1} + b_Uz)        update gate
    n = tanh(W_n x_t + b_n + r * (U_n h_{t-1} + b_Un))     candidate state
    h_t = (1 - z) * n + z * h_{t-1}

Two biases, because the reset gate multiplies ``U_n h_{t-1} + b_Un`` after the matrix product
(Cho et al.'s first version, and Keras's default ``reset_after=True``): ``b_Un`` cannot be folded into
``b_n``. For r and z only ``b + b_U`` matters. Where ``z`` is near 1, ``h_t`` copies ``h_{t-1}``
and the gradient passes through unchanged: the GRU's answer to the vanishing gradient.

To load into ``nn.GRU(D, H, batch_first=True)``: ``weight_ih_l0 = W``, ``weight_hh_l0 = U``,
``bias_ih_l0 = b``, ``bias_hh_l0 = b_U``. Keras orders its blocks z, r, h and stores kernels
transposed, ``(D, 3H)``.
"""

from __future__ import annotations

import numpy as np

from .dense import sigmoid


def gru_cell_forward(
    x_t: np.ndarray, h_prev: np.ndarray, W: np.ndarray, U: np.ndarray, b: np.ndarray, b_U: np.ndarray
) -> tuple[np.ndarray, dict]:
    """One GRU step (module docstring's equations).

    Args:
        x_t: ``(B, D)``; h_prev: ``h_{t-1}`` ``(B, H)``.
        W: ``(3H, D)``; U: ``(3H, H)``; b, b_U: ``(3H,)``, blocks r, z, n.
    Returns:
        ``h_t`` ``(B, H)`` and a cache.
    """
    x_r, x_z, x_n = np.split(x_t @ W.T + b, 3, axis=1)  # 3 x (B, H)
    u_r, u_z, u_n = np.split(h_prev @ U.T + b_U, 3, axis=1)  # 3 x (B, H)
    r = sigmoid(x_r + u_r)  # (B, H)
    z = sigmoid(x_z + u_z)  # (B, H)
    n = np.tanh(x_n + r * u_n)  # (B, H)
    h_t = (1 - z) * n + z * h_prev  # (B, H)
    cache = {"x_t": x_t, "h_prev": h_prev, "r": r, "z": z, "n": n, "u_n": u_n, "W": W, "U": U}
    return h_t, cache


def gru_cell_backward(dh_t: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradients of one GRU step, given the total ``dL/dh_t`` ``(B, H)``.

    Returns:
        ``{"x_t": (B, D), "h_prev": (B, H), "W": (3H, D), "U": (3H, H), "b": (3H,), "b_U": (3H,)}``.
    """
    r, z, n, u_n, h_prev = cache["r"], cache["z"], cache["n"], cache["u_n"], cache["h_prev"]
    dn = dh_t * (1 - z)  # (B, H)
    dz = dh_t * (h_prev - n)  # (B, H)
    da_n = dn * (1 - n**2)  # (B, H) at n's pre-activation
    da_r = da_n * u_n * r * (1 - r)  # (B, H)
    da_z = dz * z * (1 - z)  # (B, H)
    # The input side and the recurrent side see the same r, z pre-activation gradients; for n the
    # recurrent side sits behind the reset gate, so it gets r * da_n.
    dgx = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H) at x W^T + b
    dgu = np.concatenate([da_r, da_z, r * da_n], axis=1)  # (B, 3H) at h U^T + b_U
    return {
        "x_t": dgx @ cache["W"],  # (B, D)
        "h_prev": dh_t * z + dgu @ cache["U"],  # (B, H) direct copy + through gates
        "W": dgx.T @ cache["x_t"],  # (3H, D)
        "U": dgu.T @ h_prev,  # (3H, H)
        "b": dgx.sum(axis=0),  # (3H,)
        "b_U": dgu.sum(axis=0),  # (3H,)
    }


def gru_forward(
    x: np.ndarray, h0: np.ndarray | None, W: np.ndarray, U: np.ndarray, b: np.ndarray, b_U: np.ndarray
) -> tuple[np.ndarray, dict]:
    """A GRU over a sequence.

    Args:
        x: ``(B, T, D)``; h0: ``(B, H)`` or None for zeros.
        W: ``(3H, D)``; U: ``(3H, H)``; b, b_U: ``(3H,)``.
    Returns:
        ``h`` ``(B, T, H)``, every ``h_t`` (what ``nn.GRU`` returns as output), and a cache.
    """
    B, T, _ = x.shape
    H = U.shape[1]
    h_prev = np.zeros((B, H), dtype=x.dtype) if h0 is None else h0  # (B, H)
    hs, steps = [], []
    for t in range(T):
        h_prev, step = gru_cell_forward(x[:, t], h_prev, W, U, b, b_U)  # (B, H)
        hs.append(h_prev)
        steps.append(step)
    return np.stack(hs, axis=1), {"steps": steps}  # (B, T, H)


def gru_backward(dh: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Backpropagation through time for :func:`gru_forward`.

    Args:
        dh: ``dL/dh_t`` from outside the recurrence, every step, ``(B, T, H)``.
    Returns:
        ``{"x": (B, T, D), "h0": (B, H), "W": (3H, D), "U": (3H, H), "b": (3H,), "b_U": (3H,)}``.
    """
    steps = cache["steps"]
    T = len(steps)
    dW = dU = db = db_U = 0.0
    dx = [None] * T
    dh_from_next = np.zeros_like(dh[:, 0])  # (B, H)
    for t in reversed(range(T)):
        g = gru_cell_backward(dh[:, t] + dh_from_next, steps[t])
        dW, dU, db, db_U = dW + g["W"], dU + g["U"], db + g["b"], db_U + g["b_U"]
        dx[t] = g["x_t"]  # (B, D)
        dh_from_next = g["h_prev"]  # (B, H)
    return {"x": np.stack(dx, axis=1), "h0": dh_from_next, "W": dW, "U": dU, "b": db, "b_U": db_U}
