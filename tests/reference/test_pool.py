"""Eq. 3.1.2 (max pooling, as the article means it) against torch and finite differences."""

from functools import partial

import pytest
import torch.nn.functional as F

from layerlab.reference.pool import maxpool2d_backward, maxpool2d_forward

from .helpers import check_against_torch, rand


@pytest.mark.parametrize(
    "B,C,size,kernel,stride,padding",
    [
        (2, 3, 8, 2, None, 0),  # the article's MaxPooling2D((2, 2))
        (1, 2, 7, 2, None, 0),  # odd size: the last row and column are dropped
        (2, 2, 7, 3, 2, 1),  # overlapping windows with padding
        (2, 1, 9, 3, 1, 0),  # stride 1: a pixel can win several windows
        (1, 2, (6, 8), (2, 4), (2, 4), 0),
    ],
)
def test_maxpool2d(B, C, size, kernel, stride, padding):
    h, w = (size, size) if isinstance(size, int) else size
    check_against_torch(
        partial(maxpool2d_forward, kernel=kernel, stride=stride, padding=padding),
        maxpool2d_backward,
        partial(F.max_pool2d, kernel_size=kernel, stride=stride, padding=padding),
        dict(x=rand(B, C, h, w, seed=4)),
    )


def test_maxpool_is_the_max_of_each_2x2_block():
    """What eq. 3.1.2 means (0-based): y[i,j] = max(x[2i,2j], x[2i,2j+1], x[2i+1,2j], x[2i+1,2j+1])."""
    x = rand(1, 1, 6, 6, seed=5)
    y, _ = maxpool2d_forward(x)
    for i in range(3):
        for j in range(3):
            assert y[0, 0, i, j] == max(
                x[0, 0, 2 * i, 2 * j],
                x[0, 0, 2 * i, 2 * j + 1],
                x[0, 0, 2 * i + 1, 2 * j],
                x[0, 0, 2 * i + 1, 2 * j + 1],
            )
