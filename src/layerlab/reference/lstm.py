"""LSTM cell and sequence, forward and backward: one of the article's remedies for vanishing
gradients (6.2.2), and the recurrent layer of its section-4 model.

Gate convention is torch's (``nn.LSTM``): the rows of ``W`` ``(4H, D)``, ``U`` ``(4H, H)`` and ``b``
``(4H,)`` are four blocks in the order **i, f, g, o**::

    [a_i, a_f, a_g, a_o] = W x_t + U h_{t-1} + b
    i = sigmoid(a_i)      input gate
    f = sigmoid(a_f)      forget gate
    g = tanh(a_g)         candidate cell
    o = sigmoid(a_o)      output gate
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

The cell state ``c_t`` is why the LSTM helps: ``dc_t/dc_{t-1} = diag(f)``, no squashing and no
weight matrix, so with forget gates near 1 the gradient along ``c`` survives many steps.

To load into ``nn.LSTM(D, H, batch_first=True)``: ``weight_ih_l0 = W``, ``weight_hh_l0 = U``,
``bias_ih_l0 = b``, ``bias_hh_l0 = 0`` (torch keeps two biases; only their sum matters). Keras orders
the gates i, f, c, o (the same as torch's i, f, g, o) but stores kernels transposed, ``(D, 4H)``.
The symbol ``c`` here is the cell state, not the RNN output bias.
"""

from __future__ import annotations

import numpy as np

from .dense import sigmoid


def lstm_cell_forward(
    x_t: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, W: np.ndarray, U: np.ndarray, b: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """One LSTM step (module docstring's equations).

    Args:
        x_t: ``(B, D)``; h_prev, c_prev: ``h_{t-1}``, ``c_{t-1}``, ``(B, H)``.
        W: ``(4H, D)``; U: ``(4H, H)``; b: ``(4H,)``, gate blocks i, f, g, o.
    Returns:
        ``(h_t, c_t)``, each ``(B, H)``, and a cache.
    """
    a = x_t @ W.T + h_prev @ U.T + b  # (B, 4H)
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)  # 4 x (B, H)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)  # 4 x (B, H)
    c_t = f * c_prev + i * g  # (B, H)
    tanh_c = np.tanh(c_t)  # (B, H)
    h_t = o * tanh_c  # (B, H)
    cache = {
        "x_t": x_t,
        "h_prev": h_prev,
        "c_prev": c_prev,
        "i": i,
        "f": f,
        "g": g,
        "o": o,
        "tanh_c": tanh_c,
        "W": W,
        "U": U,
    }
    return (h_t, c_t), cache


def lstm_cell_backward(dh_t: np.ndarray, dc_t: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradients of one LSTM step.

    Args:
        dh_t: total ``dL/dh_t`` ``(B, H)``.
        dc_t: ``dL/dc_t`` that reaches ``c_t`` other than through ``h_t`` (from ``c_{t+1}``), ``(B, H)``.
    Returns:
        ``{"x_t": (B, D), "h_prev": (B, H), "c_prev": (B, H), "W": (4H, D), "U": (4H, H), "b": (4H,)}``.
    """
    i, f, g, o, tanh_c = cache["i"], cache["f"], cache["g"], cache["o"], cache["tanh_c"]
    dc = dc_t + dh_t * o * (1 - tanh_c**2)  # (B, H) both paths into c_t
    do = dh_t * tanh_c  # (B, H)
    di, df, dg = dc * g, dc * cache["c_prev"], dc * i  # (B, H) each
    # Back through each gate's nonlinearity: sigmoid' = s(1-s), tanh' = 1 - t^2.
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], axis=1)  # (B, 4H)
    return {
        "x_t": da @ cache["W"],  # (B, D)
        "h_prev": da @ cache["U"],  # (B, H)
        "c_prev": dc * f,  # (B, H) dc_t/dc_{t-1} = diag(f)
        "W": da.T @ cache["x_t"],  # (4H, D)
        "U": da.T @ cache["h_prev"],  # (4H, H)
        "b": da.sum(axis=0),  # (4H,)
    }


def lstm_forward(
    x: np.ndarray, h0: np.ndarray | None, c0: np.ndarray | None, W: np.ndarray, U: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, dict]:
    """An LSTM over a sequence.

    Args:
        x: ``(B, T, D)``.
        h0, c0: initial states ``(B, H)``, or None for zeros.
        W: ``(4H, D)``; U: ``(4H, H)``; b: ``(4H,)``.
    Returns:
        ``h`` ``(B, T, H)``, every ``h_t`` (what ``nn.LSTM`` returns as output), and a cache whose
        ``"c"`` ``(B, T, H)`` holds every cell state (``c[:, -1]`` is ``nn.LSTM``'s ``c_n``).
    """
    B, T, _ = x.shape
    H = U.shape[1]
    h_prev = np.zeros((B, H), dtype=x.dtype) if h0 is None else h0  # (B, H)
    c_prev = np.zeros((B, H), dtype=x.dtype) if c0 is None else c0  # (B, H)
    hs, cs, steps = [], [], []
    for t in range(T):
        (h_prev, c_prev), step = lstm_cell_forward(x[:, t], h_prev, c_prev, W, U, b)
        hs.append(h_prev)
        cs.append(c_prev)
        steps.append(step)
    h = np.stack(hs, axis=1)  # (B, T, H)
    return h, {"steps": steps, "c": np.stack(cs, axis=1)}  # c: (B, T, H)


def lstm_backward(dh: np.ndarray, cache: dict, dc_last: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Backpropagation through time for :func:`lstm_forward`.

    Args:
        dh: ``dL/dh_t`` from outside the recurrence, every step, ``(B, T, H)``.
        cache: from :func:`lstm_forward`.
        dc_last: ``dL/dc_T`` ``(B, H)`` when the final cell state is used downstream, or None.
    Returns:
        ``{"x": (B, T, D), "h0": (B, H), "c0": (B, H), "W": (4H, D), "U": (4H, H), "b": (4H,)}``.
    """
    steps = cache["steps"]
    T = len(steps)
    dW = dU = db = 0.0
    dx = [None] * T
    dh_from_next = np.zeros_like(dh[:, 0])  # (B, H)
    dc_from_next = np.zeros_like(dh[:, 0]) if dc_last is None else dc_last  # (B, H)
    for t in reversed(range(T)):
        g = lstm_cell_backward(dh[:, t] + dh_from_next, dc_from_next, steps[t])
        dW, dU, db = dW + g["W"], dU + g["U"], db + g["b"]
        dx[t] = g["x_t"]  # (B, D)
        dh_from_next, dc_from_next = g["h_prev"], g["c_prev"]  # (B, H) each
    return {"x": np.stack(dx, axis=1), "h0": dh_from_next, "c0": dc_from_next, "W": dW, "U": dU, "b": db}
