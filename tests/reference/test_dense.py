"""Eq. 3.1.3 (fully connected), flatten and activations against torch and finite differences."""

from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layerlab.reference.dense import (
    dense_backward,
    dense_forward,
    flatten_backward,
    flatten_forward,
    relu_backward,
    relu_forward,
    sigmoid,
    tanh_backward,
    tanh_forward,
)

from .helpers import check_against_torch, rand


@pytest.mark.parametrize("lead", [(1,), (5,), (3, 4)])  # a batch, or batch x time (the RNN's V h_t + c)
@pytest.mark.parametrize("bias", [True, False])
def test_dense(lead, bias):
    params = dict(W=rand(3, 6, seed=2), b=rand(3, seed=3)) if bias else dict(W=rand(3, 6, seed=2))
    check_against_torch(dense_forward, dense_backward, F.linear, dict(x=rand(*lead, 6, seed=1)), params)


def test_dense_is_the_articles_double_sum():
    """Eq. 3.1.3 per output k: y_k = sum_i sum_j W[k,i,j] x[i,j] + b_k, i.e. flatten then W x + b."""
    x, W, b = rand(4, 5, seed=1), rand(3, 4, 5, seed=2), rand(3, seed=3)
    flat, _ = flatten_forward(x[None])
    y, _ = dense_forward(flat, W.reshape(3, -1), b)
    expected = [sum(W[k, i, j] * x[i, j] for i in range(4) for j in range(5)) + b[k] for k in range(3)]
    np.testing.assert_allclose(y[0], expected, rtol=0, atol=1e-12)


def test_flatten():
    check_against_torch(
        flatten_forward, flatten_backward, partial(torch.flatten, start_dim=1), dict(x=rand(2, 3, 4, 5, seed=1))
    )


@pytest.mark.parametrize(
    "forward,backward,torch_fn", [(relu_forward, relu_backward, F.relu), (tanh_forward, tanh_backward, torch.tanh)]
)
def test_activation(forward, backward, torch_fn):
    check_against_torch(forward, backward, torch_fn, dict(x=rand(3, 2, 5, seed=1)))


def test_sigmoid_is_stable_and_exact():
    x = np.array([-800.0, -30.0, -1.0, 0.0, 2.0, 800.0])
    np.testing.assert_allclose(sigmoid(x), torch.sigmoid(torch.tensor(x)).numpy(), rtol=1e-15, atol=0)
