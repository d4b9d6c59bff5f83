"""Max pooling, article eq. 3.1.2.

The article prints a garbled window,
``y[i,j] = max(x[i+2k-1, j+2l-1], x[i+2k, j+2l-1], x[i+2k+1, j+2l-1], x[i+2k+1, j+2l])``
(three rows, two columns, free indices k and l). What it means, and what its code uses
(``MaxPooling2D((2, 2))``), is 2x2 max pooling with stride 2, each output the max of one
non-overlapping 2x2 block (0-based)::

    y[i,j] = max(x[2i, 2j], x[2i, 2j+1], x[2i+1, 2j], x[2i+1, 2j+1])

and in general, kernel ``kh x kw``, stride ``s``::

    y[i,j] = max_{m<kh, n<kw} x[s*i + m, s*j + n]

applied to every channel of every image separately. Rows or columns left over when the size is not
a multiple of the stride are dropped (floor), as in Keras and torch.
"""

from __future__ import annotations

import numpy as np

from .conv import _pair, add_windows_back, windows


def maxpool2d_forward(x: np.ndarray, kernel=2, stride=None, padding=0) -> tuple[np.ndarray, dict]:
    """Eq. 3.1.2: ``y[b,c,i,j] = max_{m<kh, n<kw} x_pad[b, c, s*i+m, s*j+n]``.

    Args:
        x: ``(B, C, H_in, W_in)``.
        kernel: window size, an int or ``(kh, kw)``; 2 is the article's.
        stride: an int or ``(sh, sw)``; None means equal to the kernel (non-overlapping windows).
        padding: padding on every side, filled with -inf so it is never the max (torch's rule).
    Returns:
        ``y`` of shape ``(B, C, H_out, W_out)``, ``H_out = (H_in + 2ph - kh) // sh + 1``, and a cache.
    """
    kh, kw = _pair(kernel)
    sh, sw = _pair(kernel if stride is None else stride)
    ph, pw = _pair(padding)
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    win = windows(x_pad, kh, kw, sh, sw)  # (B, C, H_out, W_out, kh, kw)
    flat = win.reshape(win.shape[:4] + (kh * kw,))  # (B, C, H_out, W_out, kh*kw)
    # The max is differentiable almost everywhere: its gradient is 1 at the winner, 0 elsewhere.
    # Remember which entry won (first one on ties, as torch does) for the backward pass.
    arg = flat.argmax(axis=-1)  # (B, C, H_out, W_out)
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]  # (B, C, H_out, W_out)
    cache = {"arg": arg, "x_pad_shape": x_pad.shape, "kernel": (kh, kw), "stride": (sh, sw), "padding": (ph, pw)}
    return y, cache


def maxpool2d_backward(dy: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Gradient of eq. 3.1.2: each ``dy[b,c,i,j]`` goes to the input pixel that was the max.

    Args:
        dy: ``(B, C, H_out, W_out)``.
        cache: from :func:`maxpool2d_forward`.
    Returns:
        ``{"x": (B, C, H_in, W_in)}``; pixels that won no window get 0, pixels that won several
        (overlapping windows) get the sum.
    """
    kh, kw = cache["kernel"]
    sh, sw = cache["stride"]
    ph, pw = cache["padding"]
    dflat = np.zeros(dy.shape + (kh * kw,), dtype=dy.dtype)  # (B, C, H_out, W_out, kh*kw)
    np.put_along_axis(dflat, cache["arg"][..., None], dy[..., None], axis=-1)
    dwin = dflat.reshape(dy.shape + (kh, kw))  # (B, C, H_out, W_out, kh, kw)
    dx_pad = add_windows_back(dwin, cache["x_pad_shape"], sh, sw)  # (B, C, H_pad, W_pad)
    Hp, Wp = dx_pad.shape[2:]
    return {"x": dx_pad[:, :, ph : Hp - ph, pw : Wp - pw]}  # (B, C, H_in, W_in)
