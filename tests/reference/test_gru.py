"""GRU (article 6.2.2) against nn.GRU with the same weights (torch gate order r, z, n, two biases)."""

import pytest

from layerlab.reference.gru import gru_backward, gru_forward

from .helpers import check_against_torch, rand, torch_gru

D, H = 3, 4


def gru_params():
    return dict(
        W=rand(3 * H, D, seed=3, scale=0.5),
        U=rand(3 * H, H, seed=4, scale=0.5),
        b=rand(3 * H, seed=5),
        b_U=rand(3 * H, seed=6),
    )


@pytest.mark.parametrize("T", [1, 2, 50])
@pytest.mark.parametrize("B", [1, 3])
def test_gru(B, T):
    inputs = dict(x=rand(B, T, D, seed=1), h0=rand(B, H, seed=2))
    check_against_torch(gru_forward, gru_backward, torch_gru, inputs, gru_params())


def test_gru_zero_initial_state():
    check_against_torch(gru_forward, gru_backward, torch_gru, dict(x=rand(2, 5, D, seed=1), h0=None), gru_params())
