"""layerlab.reference.network: whole models against torch, optimisers against torch.optim."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layerlab.reference.network import (
    GRU,
    LSTM,
    RNN,
    SGD,
    Adam,
    Dense,
    LastStep,
    Sequential,
    article_cnn,
    clip_grad_norm,
    orthogonal,
)

from .helpers import check_against_torch, rand, torch_gru, torch_lstm, torch_rnn


def check_model(model, torch_fn, x):
    """A Sequential through the shared helper: its own parameter arrays are the helper's params,
    so the helper's finite differences perturb exactly what the model reads."""
    check_against_torch(
        lambda x, *_: (model.forward(x), None),
        lambda d, _: {"x": model.backward(d), **model.gradients()},
        torch_fn,
        dict(x=x),
        model.parameters(),
    )


def test_article_cnn_has_the_articles_34826_parameters():
    model = article_cnn(rng=np.random.default_rng(0))
    assert model.num_parameters() == 34_826 == 320 + 18_496 + 16_010
    assert model.forward(rand(2, 1, 28, 28)).shape == (2, 10)


def test_article_cnn_end_to_end_matches_torch():
    model = article_cnn((2, 12, 11), 5, (3, "M", 4, "M"), rng=np.random.default_rng(0))

    def torch_cnn(x, W0, b0, W3, b3, W7, b7):
        h = F.max_pool2d(F.relu(F.conv2d(x, W0, b0)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, W3, b3)), 2)
        return F.linear(h.flatten(1), W7, b7)

    check_model(model, torch_cnn, rand(2, 2, 12, 11, seed=1))


def test_article_cnn_rejects_too_small_input():
    with pytest.raises(ValueError, match="too small"):
        article_cnn((1, 8, 8), 10)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_models_match_torch(cell):
    """Recurrent layer > last step > dense, the article's section-4 sequence model."""
    rng = np.random.default_rng(0)
    layer = {"rnn": RNN(3, 4, rng=rng), "lstm": LSTM(3, 4, rng=rng), "gru": GRU(3, 4, rng=rng)}[cell]
    model = Sequential(layer, LastStep(), Dense(4, 2, rng=rng))

    def torch_model(x, W, U, b, *rest):
        if cell == "gru":
            h = torch_gru(x, None, W, U, b, rest[0])
        elif cell == "lstm":
            h = torch_lstm(x, None, None, W, U, b)[0]
        else:
            h = torch_rnn(x, None, W, U, b)
        return F.linear(h[:, -1], *rest[-2:])

    check_model(model, torch_model, rand(2, 6, 3, seed=1))


def test_rnn_layer_with_per_step_output_matches_torch():
    model = Sequential(RNN(3, 4, 2, rng=np.random.default_rng(0)))
    check_model(model, lambda x, W, U, b, V, c: torch_rnn(x, None, W, U, b, V, c), rand(2, 5, 3, seed=1))


def test_keras_initialisers():
    rng = np.random.default_rng(0)
    Q = orthogonal(6, 6, rng)
    np.testing.assert_allclose(Q @ Q.T, np.eye(6), atol=1e-12)
    lstm = LSTM(3, 5, rng=rng)
    np.testing.assert_array_equal(lstm.params["b"], np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    U = lstm.params["U"]  # (4H, H): orthonormal columns
    np.testing.assert_allclose(U.T @ U, np.eye(5), atol=1e-12)


def _run_optimizer(make_ref, make_torch, steps=5):
    params = {"a": rand(3, 4, seed=1), "b": rand(5, seed=2)}
    grads = [
        {k: rand(*v.shape, seed=10 + i + 100 * n) for n, (k, v) in enumerate(params.items())} for i in range(steps)
    ]
    tparams = [torch.tensor(v.copy(), requires_grad=True) for v in params.values()]
    opt, topt = make_ref(params), make_torch(tparams)
    for g in grads:
        opt.step(g)
        for p, gv in zip(tparams, g.values(), strict=True):
            p.grad = torch.tensor(gv)
        topt.step()
    for v, p in zip(params.values(), tparams, strict=True):
        np.testing.assert_allclose(v, p.detach().numpy(), rtol=0, atol=1e-12)


def test_sgd_with_momentum_matches_torch():
    _run_optimizer(lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))


def test_adam_matches_torch_with_keras_epsilon():
    _run_optimizer(lambda p: Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01, eps=1e-7))


def test_clip_grad_norm_matches_torch():
    grads = {"a": rand(3, 4, seed=1), "b": rand(5, seed=2)}
    tensors = [torch.zeros(3, 4, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)]
    for t, g in zip(tensors, grads.values(), strict=True):
        t.grad = torch.tensor(g)
    norm = clip_grad_norm(grads, 1.5)
    tnorm = torch.nn.utils.clip_grad_norm_(tensors, 1.5)
    assert abs(norm - float(tnorm)) < 1e-12
    assert abs(np.sqrt(sum(np.sum(g * g) for g in grads.values())) - 1.5) < 1e-12
    for t, g in zip(tensors, grads.values(), strict=True):
        # torch divides by (norm + 1e-6) against a zero norm; the reference only divides when norm > max_norm.
        np.testing.assert_allclose(g, t.grad.numpy() * (norm + 1e-6) / norm, rtol=1e-12, atol=0)
