"""Gradient flow through time: the measured curves against closed forms and the NumPy reference.

A linear RNN ``h_t = U h_{t-1} + W x_t`` with the loss on ``h_T`` has, exactly,
``dL/dh_t = (U^T)^{T-t} dL/dh_T`` and ``dh_T/dh_t = U^{T-t}``; a tanh RNN's ``dL/dh_t`` must equal
what :mod:`layerlab.reference.rnn`'s BPTT computes for the same weights.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from layerlab.errors import LayerlabError
from layerlab.inspect.gradflow import fit_decay, gradient_flow

B, T, D, H = 6, 12, 3, 5


class LinearRNN(nn.Module):
    """``h_t = U h_{t-1} + W x_t``; the output is ``h_T`` (a regression on all H units)."""

    def __init__(self, U: np.ndarray, W: np.ndarray):
        super().__init__()
        self.U = nn.Parameter(torch.tensor(U))
        self.W = nn.Parameter(torch.tensor(W))

    def forward_with_states(self, x, lengths=None):
        h = torch.zeros(x.shape[0], self.U.shape[0], dtype=x.dtype)
        hs = []
        for t in range(x.shape[1]):
            h = h @ self.U.T + x[:, t] @ self.W.T  # (B, H)
            h.retain_grad()
            hs.append(h)
        return h, [hs]

    def forward(self, x, lengths=None):
        return self.forward_with_states(x)[0]


class TanhRNN(nn.Module):
    """The article's 3.2.1/3.2.2 with the output read at the last step: ``y = V h_T + c``."""

    def __init__(self, W, U, b, V, c):
        super().__init__()
        for k, v in dict(W=W, U=U, b=b, V=V, c=c).items():
            setattr(self, k, nn.Parameter(torch.tensor(v)))

    def forward_with_states(self, x, lengths=None):
        h = torch.zeros(x.shape[0], self.U.shape[0], dtype=x.dtype)
        hs = []
        for t in range(x.shape[1]):
            h = torch.tanh(x[:, t] @ self.W.T + h @ self.U.T + self.b)  # (B, H)
            h.retain_grad()
            hs.append(h)
        return h @ self.V.T + self.c, [hs]

    def forward(self, x, lengths=None):
        return self.forward_with_states(x)[0]


def _orthogonal(n, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q


def _linear_case(U, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((H, D))
    x = rng.standard_normal((B, T, D))
    y = rng.standard_normal((B, H))
    return LinearRNN(U, W), torch.tensor(x), torch.tensor(y), W, x, y


def test_linear_rnn_matches_closed_form():
    rng = np.random.default_rng(1)
    U = 0.8 * rng.standard_normal((H, H)) / math.sqrt(H)  # not normal: a real test
    model, xt, yt, W, x, y = _linear_case(U)
    flow = gradient_flow(model, xt, yt, task="regression", probes=0)
    # closed form in NumPy: h_T, then dL/dh_T of the per-sample MSE (engine loss x batch size)
    h = np.zeros((B, H))
    for t in range(T):
        h = h @ U.T + x[:, t] @ W.T
    g_T = 2 * (h - y) / H  # (B, H)
    expected_grad, expected_jac = [], []
    for t in range(1, T + 1):
        P = np.linalg.matrix_power(U.T, T - t)  # (U^T)^{T-t}
        expected_grad.append(np.linalg.norm(g_T @ P.T, axis=1).mean())
        expected_jac.append(np.linalg.norm(np.linalg.matrix_power(U, T - t)) / math.sqrt(H))
    lf = flow.layers[0]
    expected_spectral = [np.linalg.norm(np.linalg.matrix_power(U, T - t), 2) for t in range(1, T + 1)]
    np.testing.assert_allclose(lf.jacobian_spectral, expected_spectral, rtol=1e-10)
    # the engine's loss runs in float32 (for AMP), so dL/dh_T carries float32 rounding
    np.testing.assert_allclose(lf.grad_norm, expected_grad, rtol=1e-6)
    np.testing.assert_allclose(lf.jacobian_norm, expected_jac, rtol=1e-10)
    assert lf.jacobian_norm[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("a", [0.7, 0.95, 1.1])
def test_scaled_orthogonal_gives_exact_decay_factor(a):
    model, xt, yt, *_ = _linear_case(a * _orthogonal(H, 2))
    lf = gradient_flow(model, xt, yt, task="regression", probes=0).layers[0]
    # ||(aQ)^k||_F / sqrt(H) = a^k and ||(aQ^T)^k g|| = a^k ||g||: both exactly geometric
    np.testing.assert_allclose(lf.jacobian_norm, a ** np.arange(T - 1, -1, -1), rtol=1e-10)
    assert lf.jacobian_fit.factor == pytest.approx(a, rel=1e-9)
    np.testing.assert_allclose(lf.jacobian_spectral, a ** np.arange(T - 1, -1, -1), rtol=1e-10)
    assert lf.grad_fit.factor == pytest.approx(a, rel=1e-9)
    assert lf.jacobian_fit.r2 == pytest.approx(1.0)
    assert lf.jacobian_fit.steps_per_10x == pytest.approx(math.log(10) / -math.log(a))


def test_random_probes_estimate_the_frobenius_norm():
    rng = np.random.default_rng(3)
    U = 0.9 * rng.standard_normal((H, H)) / math.sqrt(H)
    model, xt, yt, *_ = _linear_case(U)
    exact = gradient_flow(model, xt, yt, task="regression", probes=0).layers[0].jacobian_norm
    est = gradient_flow(model, xt, yt, task="regression", probes=200, seed=1)
    assert "200 random unit probes" in est.method and est.layers[0].jacobian_spectral is None
    np.testing.assert_allclose(est.layers[0].jacobian_norm, exact, rtol=0.1)


def test_tanh_rnn_matches_reference_bptt_and_decays_geometrically():
    from layerlab.reference.rnn import rnn_backward, rnn_forward

    rng = np.random.default_rng(4)
    T_long, O = 30, 2
    W = rng.standard_normal((H, D)) / math.sqrt(D)
    U = 0.9 * _orthogonal(H, 5)
    b, V, c = 0.1 * rng.standard_normal(H), rng.standard_normal((O, H)), np.zeros(O)
    x = rng.standard_normal((B, T_long, D))
    target = rng.standard_normal((B, O))
    flow = gradient_flow(TanhRNN(W, U, b, V, c), torch.tensor(x), torch.tensor(target), task="regression", probes=0)
    # the reference: the same loss sits on y_T only
    y, cache = rnn_forward(x, None, W, U, b, V, c)
    dy = np.zeros_like(y)
    dy[:, -1] = 2 * (y[:, -1] - target) / O  # per-sample MSE
    g = rnn_backward(dy, cache, return_per_step=True)
    np.testing.assert_allclose(flow.layers[0].grad_norm, np.linalg.norm(g["h"], axis=-1).mean(0), rtol=1e-6)
    # dh_T/dh_t from the reference Jacobians: J_{t+1} ... J_T, row-vector convention
    J = g["jacobians"]  # (B, T, H, H)
    fro, spec = np.zeros((B, T_long)), np.zeros((B, T_long))
    for bi in range(B):
        P = np.eye(H)
        for t in range(T_long - 1, -1, -1):
            fro[bi, t], spec[bi, t] = np.linalg.norm(P) / math.sqrt(H), np.linalg.norm(P, 2)
            P = P @ J[bi, t]  # dh_T/dh_{t-1}
    np.testing.assert_allclose(flow.layers[0].jacobian_norm, fro.mean(0), rtol=1e-9)
    np.testing.assert_allclose(flow.layers[0].jacobian_spectral, spec.mean(0), rtol=1e-9)
    # geometric: a straight line on the log scale, shrinking by at most ||U||_2 = 0.9 per step
    fit = flow.layers[0].jacobian_fit
    assert fit.r2 > 0.95
    assert fit.factor < 0.9 + 1e-9
    assert flow.layers[0].jacobian_norm[0] < 0.9 ** (T_long - 1) * 1.001


def test_fit_decay_ignores_underflow_and_needs_two_points():
    norms = np.array([0.0, 0.0, 1e-3, 1e-2, 1e-1, 1.0])
    fit = fit_decay(norms)
    assert fit.factor == pytest.approx(0.1)
    assert (fit.first, fit.last) == (3, 6)
    assert fit_decay(np.array([0.0, 1.0])) is None


def test_a_model_without_states_is_refused():
    with pytest.raises(LayerlabError, match="forward_with_states"):
        gradient_flow(nn.Linear(3, 1), torch.zeros(2, 4, 3), torch.zeros(2), task="regression")


@pytest.mark.slow
def test_registered_cells_give_curves_over_every_step():
    from layerlab.models import create_model

    torch.manual_seed(0)
    x, y = torch.rand(4, 20, 2), torch.rand(4)
    factors = {}
    for cell in ("rnn", "lstm", "gru", "residual"):
        model = create_model(cell, (20, 2), 1, hidden=8, layers=2)
        flow = gradient_flow(model, x, y, task="regression", label="init")
        assert [lf.layer for lf in flow.layers] == [1, 2]
        for lf in flow.layers:
            assert lf.grad_norm.shape == lf.jacobian_norm.shape == (20,)
            assert np.all(np.isfinite(lf.grad_norm)) and lf.jacobian_norm[-1] == pytest.approx(1.0)
        factors[cell] = flow.layers[0].jacobian_fit.factor
    # the tanh cell's Jacobians diag(1 - h^2) U cannot grow (orthogonal U); the residual path I + ... does
    assert factors["rnn"] < 1.0
    assert factors["residual"] > factors["rnn"]
