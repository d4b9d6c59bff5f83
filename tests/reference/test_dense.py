"""Eq. 3.1.3 (fully connected), flatten, activations and losses against torch and finite differences."""
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layerlab.reference.dense import (dense_backward, dense_forward, flatten_backward, flatten_forward,
                                      relu_backward, relu_forward, sigmoid, tanh_backward, tanh_forward)
from layerlab.reference.losses import (log_softmax, mse_backward, mse_forward, softmax,
                                       softmax_cross_entropy_backward, softmax_cross_entropy_forward)

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
    check_against_torch(flatten_forward, flatten_backward, partial(torch.flatten, start_dim=1),
                        dict(x=rand(2, 3, 4, 5, seed=1)))


@pytest.mark.parametrize("forward,backward,torch_fn", [
    (relu_forward, relu_backward, F.relu), (tanh_forward, tanh_backward, torch.tanh)])
def test_activation(forward, backward, torch_fn):
    check_against_torch(forward, backward, torch_fn, dict(x=rand(3, 2, 5, seed=1)))


def test_sigmoid_is_stable_and_exact():
    x = np.array([-800.0, -30.0, -1.0, 0.0, 2.0, 800.0])
    np.testing.assert_allclose(sigmoid(x), torch.sigmoid(torch.tensor(x)).numpy(), rtol=1e-15, atol=0)


@pytest.mark.parametrize("lead", [(1,), (6,), (3, 5)])  # a classifier's batch, or an RNN's (B, T)
def test_softmax_cross_entropy(lead):
    K = 4
    targets = np.random.default_rng(0).integers(0, K, size=lead)
    check_against_torch(softmax_cross_entropy_forward, softmax_cross_entropy_backward,
                        lambda z, y: F.cross_entropy(z.reshape(-1, K), y.reshape(-1)),
                        dict(logits=rand(*lead, K, seed=1, scale=3.0), targets=targets), no_grad={"targets"})


def test_softmax_and_log_softmax_survive_huge_logits():
    z = rand(3, 5, seed=1) * 1000
    np.testing.assert_allclose(log_softmax(z), F.log_softmax(torch.tensor(z), -1).numpy(), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(softmax(z), F.softmax(torch.tensor(z), -1).numpy(), rtol=1e-12, atol=1e-300)


def test_mse():
    check_against_torch(mse_forward, mse_backward, F.mse_loss,
                        dict(pred=rand(3, 4, seed=1), target=rand(3, 4, seed=2)), no_grad={"target"})
