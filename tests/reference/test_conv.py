"""Eq. 3.1.1 (convolution) against torch and finite differences."""

from functools import partial

import pytest
import torch.nn.functional as F

from layerlab.reference.conv import conv2d_backward, conv2d_forward

from .helpers import check_against_torch, rand


@pytest.mark.parametrize(
    "B,C_in,C_out,size,k,stride,padding",
    [
        (1, 1, 1, 5, 3, 1, 0),  # the article's case: one channel, one kernel
        (2, 3, 4, 7, 3, 1, 0),
        (2, 3, 4, 7, 3, 2, 0),
        (3, 2, 5, 8, 3, 1, 1),  # 'same' padding
        (2, 2, 3, 9, 4, 3, 2),  # stride does not divide: the last rows are never visited
        (1, 2, 2, (6, 5), (2, 3), (1, 2), (1, 0)),  # rectangular everything
    ],
)
def test_conv2d(B, C_in, C_out, size, k, stride, padding):
    (h, w), (kh, kw) = (size, size) if isinstance(size, int) else size, (k, k) if isinstance(k, int) else k
    x, W, b = rand(B, C_in, h, w, seed=1), rand(C_out, C_in, kh, kw, seed=2), rand(C_out, seed=3)
    check_against_torch(
        partial(conv2d_forward, stride=stride, padding=padding),
        conv2d_backward,
        partial(F.conv2d, stride=stride, padding=padding),
        dict(x=x),
        dict(W=W, b=b),
    )


def test_conv2d_without_bias():
    check_against_torch(
        partial(conv2d_forward, b=None),
        conv2d_backward,
        partial(F.conv2d, bias=None),
        dict(x=rand(2, 2, 6, 6, seed=1)),
        dict(W=rand(3, 2, 3, 3, seed=2)),
    )


def test_conv2d_is_the_articles_sum():
    """Eq. 3.1.1 literally, 1-based: y[i,j] = sum_{m,n} x[m+i-1, n+j-1] w[m,n] + b."""
    x, w, b = rand(1, 1, 6, 5, seed=1), rand(1, 1, 3, 2, seed=2), rand(1, seed=3)
    y, _ = conv2d_forward(x, w, b)
    M, N = 3, 2
    for i in range(1, y.shape[2] + 1):
        for j in range(1, y.shape[3] + 1):
            s = (
                sum(
                    x[0, 0, m + i - 1 - 1, n + j - 1 - 1] * w[0, 0, m - 1, n - 1]
                    for m in range(1, M + 1)
                    for n in range(1, N + 1)
                )
                + b[0]
            )
            assert abs(y[0, 0, i - 1, j - 1] - s) < 1e-12
