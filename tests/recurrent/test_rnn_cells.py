"""Each cell's step against the equation computed by hand (NumPy, small numbers), and against
torch's own cells where torch has one."""

import numpy as np
import pytest
import torch

from layerlab.models.cells import CELLS, GRUCell, LSTMCell, ResidualCell, TanhCell


def sig(z):
    return 1 / (1 + np.exp(-z))


def _w(rows, cols, seed):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (rows, cols))


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


B, D, H = 2, 3, 4
x = _w(B, D, 1)
h_prev = _w(B, H, 2)
c_prev = _w(B, H, 3)


def test_tanh_cell_is_the_articles_equation():
    W, U, b, b_U = _w(H, D, 4), _w(H, H, 5), _w(1, H, 6)[0], _w(1, H, 7)[0]
    expected = np.tanh(x @ W.T + h_prev @ U.T + b + b_U)  # h_t = tanh(W x_t + U h_{t-1} + b)
    (h,) = TanhCell().step(_t(x @ W.T + b), (_t(h_prev),), _t(U), _t(b_U))
    np.testing.assert_allclose(h.numpy(), expected, atol=1e-12)


def test_tanh_cell_one_number_by_hand():
    # D = H = 1: h = tanh(0.5 * 2 + 0.25 * 1 + 0.1) = tanh(1.35)
    (h,) = TanhCell().step(_t([[0.5 * 2 + 0.1]]), (_t([[1.0]]),), _t([[0.25]]), None)
    assert float(h) == pytest.approx(np.tanh(1.35), abs=1e-12)


def test_lstm_cell_by_hand():
    W, U, b = _w(4 * H, D, 8), _w(4 * H, H, 9), _w(1, 4 * H, 10)[0]
    a = x @ W.T + h_prev @ U.T + b
    i, f, g, o = sig(a[:, :H]), sig(a[:, H : 2 * H]), np.tanh(a[:, 2 * H : 3 * H]), sig(a[:, 3 * H :])
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    h_t, c_t = LSTMCell().step(_t(x @ W.T + b), (_t(h_prev), _t(c_prev)), _t(U), None)
    np.testing.assert_allclose(h_t.numpy(), h, atol=1e-12)
    np.testing.assert_allclose(c_t.numpy(), c, atol=1e-12)


def test_gru_cell_by_hand():
    W, U, b, b_U = _w(3 * H, D, 11), _w(3 * H, H, 12), _w(1, 3 * H, 13)[0], _w(1, 3 * H, 14)[0]
    xw, uh = x @ W.T + b, h_prev @ U.T + b_U
    r = sig(xw[:, :H] + uh[:, :H])
    z = sig(xw[:, H : 2 * H] + uh[:, H : 2 * H])
    n = np.tanh(xw[:, 2 * H :] + r * uh[:, 2 * H :])
    expected = (1 - z) * n + z * h_prev
    (h,) = GRUCell().step(_t(xw), (_t(h_prev),), _t(U), _t(b_U))
    np.testing.assert_allclose(h.numpy(), expected, atol=1e-12)


def test_residual_cell_by_hand():
    W, U, b = _w(2 * H, D, 15), _w(2 * H, H, 16), _w(1, 2 * H, 17)[0]
    a = x @ W.T + h_prev @ U.T + b
    z = sig(a[:, :H])
    expected = h_prev + z * np.tanh(a[:, H:])  # h_t = h_{t-1} + z_t * tanh(...)
    (h,) = ResidualCell().step(_t(x @ W.T + b), (_t(h_prev),), _t(U), None)
    np.testing.assert_allclose(h.numpy(), expected, atol=1e-12)


def test_plain_residual_cell_by_hand():
    W, U, b = _w(H, D, 15), _w(H, H, 16), _w(1, H, 17)[0]
    expected = h_prev + np.tanh(x @ W.T + h_prev @ U.T + b)  # h_t = h_{t-1} + tanh(W x_t + U h_{t-1} + b)
    (h,) = ResidualCell(gated=False).step(_t(x @ W.T + b), (_t(h_prev),), _t(U), None)
    np.testing.assert_allclose(h.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(
    "name,torch_cell", [("rnn", torch.nn.RNNCell), ("lstm", torch.nn.LSTMCell), ("gru", torch.nn.GRUCell)]
)
def test_cells_match_torch_cells(name, torch_cell):
    torch.manual_seed(0)
    ref = torch_cell(D, H).double()
    cell = CELLS[name]()
    xt, h0 = _t(x), _t(h_prev)
    state = (h0, _t(c_prev)) if name == "lstm" else (h0,)
    expected = ref(xt, state if name == "lstm" else h0)
    got = cell.step(torch.nn.functional.linear(xt, ref.weight_ih, ref.bias_ih), state, ref.weight_hh, ref.bias_hh)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, atol=1e-12, rtol=0)


def test_cell_registry_names():
    assert set(CELLS) == {"rnn", "lstm", "gru", "residual"}
    assert CELLS["residual"].torch_module is None and CELLS["lstm"].torch_module is torch.nn.LSTM
