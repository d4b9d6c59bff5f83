"""The reference alone trains the article's models: the CNN on real digits, the tanh RNN on sequences.

One BLAS thread throughout: the matrices are small, and on a shared 2-core machine extra threads
cost more than they save (measured: ~1 s per CNN epoch instead of 2.5-5 s). How long the training takes
is measured by ``benchmarks/reference_training.py``, not asserted here.
"""

import numpy as np
import pytest

from layerlab.reference.network import GRU, LSTM, RNN, Adam, Dense, LastStep, Sequential, accuracy, article_cnn, fit

sklearn = pytest.importorskip("sklearn")
threadpoolctl = pytest.importorskip("threadpoolctl")
from sklearn.datasets import load_digits  # noqa: E402  (after the skip)
from sklearn.model_selection import train_test_split  # noqa: E402


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpoolctl.threadpool_limits(1):
        yield


def digits_split(as_sequences=False):
    d = load_digits()
    x = d.images / 16.0  # (N, 8, 8)
    if not as_sequences:
        # 2x nearest upsampling so the article's valid convs and pools fit: 16 > 14 > 7 > 5 > 2.
        x = x.repeat(2, axis=1).repeat(2, axis=2)[:, None]  # (N, 1, 16, 16)
    return train_test_split(x, d.target, test_size=0.25, random_state=0, stratify=d.target)


def delayed_echo(n, T, K, delay, rng):
    """One-hot symbols; the target at step t is the symbol seen at t - delay (0 before the start)."""
    symbols = rng.integers(0, K, size=(n, T))
    targets = np.zeros_like(symbols)
    targets[:, delay:] = symbols[:, :-delay]
    return np.eye(K)[symbols], targets


def test_reference_cnn_learns_digits_to_90_percent():
    x_tr, x_te, y_tr, y_te = digits_split()
    rng = np.random.default_rng(0)
    model = article_cnn((1, 16, 16), 10, (8, "M", 16, "M"), rng=rng)  # the article's shape, narrower
    history = fit(model, Adam(model.parameters(), lr=1e-2), x_tr, y_tr, epochs=5, rng=rng)
    acc = accuracy(model, x_te, y_te)
    assert history[-1] < history[0]
    assert acc >= 0.90, f"test accuracy {acc:.3f}"


@pytest.mark.parametrize(
    "cell,delay,steps,lr",
    [
        ("rnn", 5, 200, 1e-2),
        # The gated cells learn this shift register more slowly than tanh (they must first learn to
        # open their gates); a shorter delay keeps the test short, it still needs memory.
        ("gru", 3, 150, 2e-2),
        ("lstm", 3, 150, 2e-2),
    ],
)
def test_reference_recurrent_net_learns_delayed_echo(cell, delay, steps, lr):
    """Echo the symbol from `delay` steps back, scored at every step: needs memory, not just the input."""
    K, T, H = 4, 12, 32
    rng = np.random.default_rng(0)
    if cell == "rnn":
        model = Sequential(RNN(K, H, K, rng=rng))  # y_t = V h_t + c
    else:
        model = Sequential((GRU if cell == "gru" else LSTM)(K, H, rng=rng), Dense(H, K, rng=rng))
    opt = Adam(model.parameters(), lr=lr)
    for _ in range(steps):  # fresh sequences every step
        x, y = delayed_echo(32, T, K, delay, rng)
        fit(model, opt, x, y, epochs=1, rng=rng, max_grad_norm=5.0)
    x_te, y_te = delayed_echo(500, T, K, delay, np.random.default_rng(1))
    assert accuracy(model, x_te, y_te) >= 0.95


def test_reference_rnn_reads_digits_row_by_row():
    x_tr, x_te, y_tr, y_te = digits_split(as_sequences=True)  # (N, T=8, D=8)
    rng = np.random.default_rng(0)
    model = Sequential(RNN(8, 64, 10, rng=rng), LastStep())  # classify from y_T
    fit(model, Adam(model.parameters(), lr=3e-3), x_tr, y_tr, epochs=6, rng=rng, max_grad_norm=5.0)
    assert accuracy(model, x_te, y_te) >= 0.90
