"""Softmax cross-entropy (the article's softmax output with sparse categorical cross-entropy) and MSE."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layerlab.reference.losses import (
    log_softmax,
    mse_backward,
    mse_forward,
    softmax,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)

from .helpers import check_against_torch, rand


@pytest.mark.parametrize("lead", [(1,), (6,), (3, 5)])  # a classifier's batch, or an RNN's (B, T)
def test_softmax_cross_entropy(lead):
    K = 4
    targets = np.random.default_rng(0).integers(0, K, size=lead)
    check_against_torch(
        softmax_cross_entropy_forward,
        softmax_cross_entropy_backward,
        lambda z, y: F.cross_entropy(z.reshape(-1, K), y.reshape(-1)),
        dict(logits=rand(*lead, K, seed=1, scale=3.0), targets=targets),
        no_grad={"targets"},
    )


def test_softmax_and_log_softmax_survive_huge_logits():
    z = rand(3, 5, seed=1) * 1000
    np.testing.assert_allclose(log_softmax(z), F.log_softmax(torch.tensor(z), -1).numpy(), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(softmax(z), F.softmax(torch.tensor(z), -1).numpy(), rtol=1e-12, atol=1e-300)


def test_mse():
    check_against_torch(
        mse_forward,
        mse_backward,
        F.mse_loss,
        dict(pred=rand(3, 4, seed=1), target=rand(3, 4, seed=2)),
        no_grad={"target"},
    )
