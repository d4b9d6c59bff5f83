"""The article's vanishing-gradient claim (3.2.3, 6.2.1), computed from the reference.

With the loss on the last output only, BPTT's dL/dh_t must equal dL/dh_T times the product of the
Jacobians dh_s/dh_{s-1} = diag(1 - h_s^2) U for s = T..t+1, and when ||U||_2 < 1 its norm must fall
geometrically with the distance T - t, at a rate no slower than ||U||_2 per step.
"""

from functools import reduce

import numpy as np
import pytest

from layerlab.reference.rnn import rnn_backward, rnn_forward

D, H, O, T = 3, 8, 2, 40


def orthogonal(n, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q


def loss_at_last_step(U, x_scale=1.0, seed=0):
    """Run the RNN, put a random dL/dy_T on the last step only, return BPTT's per-step gradients."""
    rng = np.random.default_rng(seed)
    x = x_scale * rng.standard_normal((2, T, D))
    W, b = rng.standard_normal((H, D)) / np.sqrt(D), np.zeros(H)
    V, c = rng.standard_normal((O, H)), np.zeros(O)
    y, cache = rnn_forward(x, None, W, U, b, V, c)
    dy = np.zeros_like(y)
    dy[:, -1] = rng.standard_normal((2, O))
    g = rnn_backward(dy, cache, return_per_step=True)
    return g["h"], g["jacobians"], cache["h"]  # (B, T, H), (B, T, H, H), (B, T, H)


def distance_and_log_norm(dh):
    norms = np.linalg.norm(dh, axis=-1)  # (B, T)
    distance = np.arange(T)[::-1]  # T - t for t = 1..T
    return distance, np.log(norms)


def test_bptt_is_the_product_of_jacobians():
    """dL/dh_t (BPTT) = dL/dh_T (dh_T/dh_{T-1}) ... (dh_{t+1}/dh_t), for every t, to 1e-10 relative."""
    dh, J, _ = loss_at_last_step(0.5 * orthogonal(H, 1))
    for b in range(dh.shape[0]):
        for t in range(T - 1):
            # The article's product, written as matrices; index s holds dh_{s+1}/dh_s (0-based h).
            product = reduce(np.matmul, [J[b, s] for s in range(T - 1, t, -1)])  # (H, H)
            expected = dh[b, -1] @ product
            err = np.linalg.norm(dh[b, t] - expected) / np.linalg.norm(expected)
            assert err < 1e-10, f"t={t + 1}: BPTT and the Jacobian product differ by {err:.1e} (relative)"


@pytest.mark.parametrize("sigma", [0.3, 0.6, 0.9])
def test_gradient_falls_geometrically_at_the_spectral_rate(sigma):
    """U = sigma * Q (all singular values sigma) and small inputs (tanh' ~ 1): slope of log ||dL/dh_t||
    against T - t is log(sigma), the spectral bound, to within 1e-2."""
    dh, _, h = loss_at_last_step(sigma * orthogonal(H, 2), x_scale=0.01)
    distance, log_norm = distance_and_log_norm(dh)
    for b in range(dh.shape[0]):
        slope, _ = np.polyfit(distance, log_norm[b], 1)
        assert slope < 0
        assert abs(slope - np.log(sigma)) < 1e-2, (slope, np.log(sigma))
        assert slope <= np.log(sigma) + 1e-12  # tanh' <= 1 can only make it fall faster
    assert np.max(h**2) < 1e-2  # the premise: tanh is in its linear range


@pytest.mark.parametrize("seed", [3, 4])
def test_every_step_obeys_the_bound(seed):
    """A general U with ||U||_2 = 0.8 and ordinary inputs: each step back shrinks the gradient by at
    least max(1 - h_t^2) * ||U||_2 (the factor's norm bound), and the fitted rate is below log 0.8."""
    A = np.random.default_rng(seed).standard_normal((H, H))
    U = 0.8 * A / np.linalg.norm(A, 2)
    dh, _, h = loss_at_last_step(U, seed=seed)
    norms = np.linalg.norm(dh, axis=-1)  # (B, T)
    bound = np.max(1 - h**2, axis=-1) * np.linalg.norm(U, 2)  # (B, T): factor t's bound
    ratio = norms[:, :-1] / norms[:, 1:]  # ||dL/dh_t|| / ||dL/dh_{t+1}||
    assert np.all(ratio <= bound[:, 1:] + 1e-12)
    distance, log_norm = distance_and_log_norm(dh)
    for b in range(dh.shape[0]):
        slope, _ = np.polyfit(distance, log_norm[b], 1)
        assert slope < np.log(0.8)
