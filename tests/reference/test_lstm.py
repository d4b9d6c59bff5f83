"""LSTM (article 6.2.2) against nn.LSTM with the same weights (torch gate order i, f, g, o)."""

import pytest

from layerlab.reference.lstm import lstm_backward, lstm_forward

from .helpers import check_against_torch, rand, torch_lstm

D, H = 3, 4


def lstm_with_last_cell(x, h0, c0, W, U, b):
    """The reference with ``c_T`` as a second output, so that the dc_last path is checked too."""
    h, cache = lstm_forward(x, h0, c0, W, U, b)
    return (h, cache["c"][:, -1]), cache


def lstm_with_last_cell_backward(douts, cache):
    dh, dc_last = douts
    return lstm_backward(dh, cache, dc_last=dc_last)


def lstm_params():
    return dict(W=rand(4 * H, D, seed=3, scale=0.5), U=rand(4 * H, H, seed=4, scale=0.5), b=rand(4 * H, seed=5))


@pytest.mark.parametrize("T", [1, 2, 50])
@pytest.mark.parametrize("B", [1, 3])
def test_lstm(B, T):
    inputs = dict(x=rand(B, T, D, seed=1), h0=rand(B, H, seed=2), c0=rand(B, H, seed=6))
    check_against_torch(lstm_with_last_cell, lstm_with_last_cell_backward, torch_lstm, inputs, lstm_params())


def test_lstm_zero_initial_state():
    inputs = dict(x=rand(2, 5, D, seed=1), h0=None, c0=None)
    check_against_torch(lstm_with_last_cell, lstm_with_last_cell_backward, torch_lstm, inputs, lstm_params())
