"""Eqs. 3.2.1/3.2.2 (tanh RNN with per-step output) and its BPTT against nn.RNN + F.linear.

nn.RNN has no output layer: torch computes the hidden states with nn.RNN (``bias_hh`` zero, so its
two biases are the article's one ``b``) and ``y_t = V h_t + c`` with F.linear, composed so that
autograd gives every gradient.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layerlab.reference.rnn import rnn_backward, rnn_forward, rnn_jacobians

from .helpers import check_against_torch, rand, torch_rnn

D, H, O = 3, 4, 2


def rnn_inputs(B, T, h0=True):
    return dict(x=rand(B, T, D, seed=1), h0=rand(B, H, seed=2, scale=0.5) if h0 else None)


def rnn_params(output=True):
    p = dict(W=rand(H, D, seed=3, scale=0.5), U=rand(H, H, seed=4, scale=0.5), b=rand(H, seed=5))
    return {**p, "V": rand(O, H, seed=6), "c": rand(O, seed=7)} if output else p


@pytest.mark.parametrize("T", [1, 2, 50])
@pytest.mark.parametrize("B", [1, 3])
def test_rnn(B, T):
    check_against_torch(rnn_forward, rnn_backward, torch_rnn, rnn_inputs(B, T), rnn_params())


@pytest.mark.parametrize("T", [1, 7])
def test_rnn_zero_initial_state(T):
    check_against_torch(rnn_forward, rnn_backward, torch_rnn, rnn_inputs(2, T, h0=False), rnn_params())


@pytest.mark.parametrize("T", [1, 7])
def test_rnn_hidden_states_only(T):
    """Without V, c the output is h_1..h_T, exactly nn.RNN's output."""
    check_against_torch(rnn_forward, rnn_backward, torch_rnn, rnn_inputs(2, T), rnn_params(output=False))


def test_rnn_gradient_from_beyond_the_last_step():
    """``dh_last`` is added to dL/dh_T: the same as a loss term on h_T."""
    x, h0, p, dh_last = rand(2, 5, D, seed=1), rand(2, H, seed=2), rnn_params(), rand(2, H, seed=9)
    y, cache = rnn_forward(x, h0, **p)
    dy = rand(*y.shape, seed=8)
    g = rnn_backward(dy, cache, dh_last=dh_last)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in dict(x=x, h0=h0, **p).items()}
    y_t = torch_rnn(**t)
    h_T = torch_rnn(t["x"], t["h0"], t["W"], t["U"], t["b"])[:, -1]
    ((y_t * torch.tensor(dy)).sum() + (h_T * torch.tensor(dh_last)).sum()).backward()
    for k in t:
        np.testing.assert_allclose(g[k], t[k].grad.numpy(), rtol=0, atol=1e-12, err_msg=k)


def test_rnn_per_step_gradients_and_jacobians():
    """dL/dh_t from BPTT equals the direct term plus the next step's gradient through its Jacobian."""
    x, h0, p = rand(2, 6, D, seed=1), rand(2, H, seed=2), rnn_params()
    y, cache = rnn_forward(x, h0, **p)
    dy = rand(*y.shape, seed=8)
    g = rnn_backward(dy, cache, return_per_step=True)
    J = rnn_jacobians(cache)  # (B, T, H, H)
    assert g["h"].shape == (2, 6, H) and J.shape == (2, 6, H, H)
    np.testing.assert_array_equal(g["jacobians"], J)
    h = cache["h"]
    np.testing.assert_allclose(J[:, 2], (1 - h[:, 2] ** 2)[:, :, None] * p["U"], rtol=0, atol=0)
    direct = dy @ p["V"]  # (B, T, H) dL/dy_t V
    for t in range(5):
        through_next = np.einsum("bi,bij->bj", g["h"][:, t + 1], J[:, t + 1])
        np.testing.assert_allclose(g["h"][:, t], direct[:, t] + through_next, rtol=0, atol=1e-13)
    np.testing.assert_allclose(g["h0"], np.einsum("bi,bij->bj", g["h"][:, 0], J[:, 0]), rtol=0, atol=1e-13)
    # The per-step gradient of h_t is also torch's (retain_grad on every step's state).
    t_in = {k: torch.tensor(v, requires_grad=True) for k, v in dict(x=x, h0=h0, **p).items()}
    hs, h_prev = [], t_in["h0"]
    for s in range(6):
        h_prev = torch.tanh(t_in["x"][:, s] @ t_in["W"].T + h_prev @ t_in["U"].T + t_in["b"])
        h_prev.retain_grad()
        hs.append(h_prev)
    y_t = F.linear(torch.stack(hs, 1), t_in["V"], t_in["c"])
    (y_t * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(g["h"], torch.stack([s.grad for s in hs], 1).numpy(), rtol=0, atol=1e-12)
