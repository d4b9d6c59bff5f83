"""Convolution layer, article eq. 3.1.1: a cross-correlation plus a bias.

The article writes one channel, one kernel and 1-based indices::

    y[i,j] = sum_{m=1..M} sum_{n=1..N} x[m+i-1, n+j-1] * w[m,n] + b

Here indices are 0-based (so ``m+i-1`` becomes ``i+m``), with several input channels ``C_in``,
several kernels ``C_out``, a stride ``s`` and zero padding ``p``::

    y[o,i,j] = sum_{c} sum_{m<kh} sum_{n<kw} x_pad[c, s*i + m, s*j + n] * W[o,c,m,n] + b[o]

Layouts are torch's: ``x`` is NCHW ``(B, C_in, H_in, W_in)`` and ``W`` is ``(C_out, C_in, kh, kw)``,
so the same arrays can be handed to ``torch.nn.functional.conv2d``. No kernel flip: like the article,
torch and Keras, this is a cross-correlation.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pair(v) -> tuple[int, int]:
    return (v, v) if np.isscalar(v) else tuple(v)


def windows(x_pad: np.ndarray, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
    """Every kh x kw window of ``x_pad`` that the stride visits, as a read-only view (im2col).

    Args:
        x_pad: ``(B, C, H, W)``, already padded.
    Returns:
        ``(B, C, H_out, W_out, kh, kw)`` where ``[b, c, i, j]`` is the window whose top-left corner
        is ``x_pad[b, c, sh*i, sw*j]``. A view, not a copy: the memory cost is paid only by
        whatever consumes it.
    """
    # NumPy takes a tuple of axes; its type stubs say one axis
    return sliding_window_view(x_pad, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # type: ignore[call-overload]


def add_windows_back(dwin: np.ndarray, x_pad_shape: tuple, sh: int, sw: int) -> np.ndarray:
    """The adjoint of :func:`windows` (col2im): sum each window's gradient into the pixels it read.

    A pixel that several windows read (stride < kernel) receives the sum of their gradients.

    Args:
        dwin: ``(B, C, H_out, W_out, kh, kw)``, the gradient with respect to every window entry.
        x_pad_shape: ``(B, C, H, W)`` of the padded input.
    Returns:
        ``(B, C, H, W)``.
    """
    _, _, H_out, W_out, kh, kw = dwin.shape
    dx_pad = np.zeros(x_pad_shape, dtype=dwin.dtype)  # (B, C, H, W)
    # Looping over the kh*kw kernel offsets (not over output pixels) keeps each step one strided
    # array add; offset (m, n) of window (i, j) is pixel (sh*i + m, sw*j + n).
    for m in range(kh):
        for n in range(kw):
            dx_pad[:, :, m : m + sh * H_out : sh, n : n + sw * W_out : sw] += dwin[..., m, n]
    return dx_pad


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Spatial output length of a valid window sweep: ``floor((size + 2p - k) / s) + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def conv2d_forward(
    x: np.ndarray, W: np.ndarray, b: np.ndarray | None = None, stride=1, padding=0
) -> tuple[np.ndarray, dict]:
    """Eq. 3.1.1, batched and multi-channel: ``y[o,i,j] = sum_{c,m,n} x_pad[c, s*i+m, s*j+n] W[o,c,m,n] + b[o]``.

    Args:
        x: input images, ``(B, C_in, H_in, W_in)``.
        W: kernels, ``(C_out, C_in, kh, kw)``.
        b: one bias per kernel, ``(C_out,)``, or None for no bias.
        stride: ``s``, an int or ``(sh, sw)``.
        padding: zeros added on every side, an int or ``(ph, pw)``.
    Returns:
        ``y`` of shape ``(B, C_out, H_out, W_out)`` with ``H_out = (H_in + 2ph - kh) // sh + 1``,
        and the cache :func:`conv2d_backward` needs.
    """
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    kh, kw = W.shape[2:]
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # (B, C_in, H_in+2ph, W_in+2pw)
    win = windows(x_pad, kh, kw, sh, sw)  # (B, C_in, H_out, W_out, kh, kw)
    # The equation's triple sum over (c, m, n), for every (b, i, j, o) at once: one matrix product
    # (tensordot; np.einsum("bcijmn,ocmn->boij") says the same but runs ~3x slower for C_in = 1).
    y = np.tensordot(win, W, axes=([1, 4, 5], [1, 2, 3]))  # (B, H_out, W_out, C_out)
    y = y.transpose(0, 3, 1, 2)  # (B, C_out, H_out, W_out)
    if b is not None:
        y = y + b[None, :, None, None]
    cache = {
        "win": win,
        "x_pad_shape": x_pad.shape,
        "W": W,
        "has_b": b is not None,
        "stride": (sh, sw),
        "padding": (ph, pw),
    }
    return y, cache


def conv2d_backward(dy: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradients of eq. 3.1.1, given ``dy = dL/dy``.

    ``dL/dW[o,c,m,n] = sum_{b,i,j} dy[b,o,i,j] x_pad[b,c,s*i+m,s*j+n]`` (a correlation of the input
    with the output gradient), ``dL/db[o] = sum_{b,i,j} dy[b,o,i,j]``, and ``dL/dx`` sends each
    ``dy[b,o,i,j] * W[o,c,m,n]`` back to the pixel that was multiplied by ``W[o,c,m,n]``.

    Args:
        dy: ``(B, C_out, H_out, W_out)``.
        cache: from :func:`conv2d_forward`.
    Returns:
        ``{"x": (B, C_in, H_in, W_in), "W": (C_out, C_in, kh, kw), "b": (C_out,)}``
        (no ``"b"`` when the forward had none).
    """
    win, W = cache["win"], cache["W"]
    sh, sw = cache["stride"]
    ph, pw = cache["padding"]
    dW = np.tensordot(dy, win, axes=([0, 2, 3], [0, 2, 3]))  # (C_out, C_in, kh, kw) sum over b, i, j
    dwin = np.tensordot(dy, W, axes=([1], [0]))  # (B, H_out, W_out, C_in, kh, kw) sum over o
    dwin = dwin.transpose(0, 3, 1, 2, 4, 5)  # (B, C_in, H_out, W_out, kh, kw)
    dx_pad = add_windows_back(dwin, cache["x_pad_shape"], sh, sw)  # (B, C_in, H_in+2ph, W_in+2pw)
    Hp, Wp = dx_pad.shape[2:]
    grads = {"x": dx_pad[:, :, ph : Hp - ph, pw : Wp - pw], "W": dW}  # x: (B, C_in, H_in, W_in)
    if cache["has_b"]:
        grads["b"] = dy.sum(axis=(0, 2, 3))  # (C_out,)
    return grads
