"""Recurrent models: shapes, gradients, the two paths agreeing, padding invariance, Keras's init."""

import itertools

import pytest
import torch

from layerlab.errors import ConfigError, DataError
from layerlab.models import create_model, list_models

CELLS = ["rnn", "lstm", "gru", "residual"]
CONFIGS = [  # (layers, bidirectional, head)
    (1, False, "last"),
    (2, False, "step"),
    (2, True, "last"),
    (1, True, "step"),
]


def _model(cell, layers=1, bidirectional=False, head="last", shape=(9, 3), k=5, hidden=6, **kw):
    torch.manual_seed(0)
    return create_model(cell, shape, k, hidden=hidden, layers=layers, bidirectional=bidirectional, head=head, **kw)


def test_registered():
    names = list_models()
    for n in CELLS + ["article-lstm"]:
        assert n in names


@pytest.mark.parametrize("cell,config", list(itertools.product(CELLS, CONFIGS)))
def test_forward_backward_shapes_and_finite_gradients(cell, config):
    layers, bi, head = config
    m = _model(cell, layers, bi, head, dropout=0.2 if layers > 1 else 0.0)
    x = torch.randn(4, 9, 3)
    lengths = torch.tensor([9, 4, 7, 1])
    for lens in (None, lengths):
        out = m(x, lens)
        assert out.shape == ((4, 5) if head == "last" else (4, 9, 5))
        m.zero_grad()
        out.square().mean().backward()
        for name, p in m.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert m.cell == cell and m.hidden_size == 6 and m.num_layers == layers


@pytest.mark.parametrize("cell,config", list(itertools.product(CELLS, CONFIGS)))
def test_forward_with_states_agrees_with_forward(cell, config):
    layers, bi, head = config
    m = _model(cell, layers, bi, head).eval()
    x = torch.randn(3, 9, 3)
    for lens in (None, torch.tensor([9, 5, 2])):
        fast = m(x, lens)
        slow, states = m.forward_with_states(x, lens)
        torch.testing.assert_close(slow, fast, atol=1e-6, rtol=1e-5)
        assert len(states) == layers and all(len(s) == 9 for s in states)
        assert all(h.shape == (3, 6) for s in states for h in s)


@pytest.mark.parametrize("cell", CELLS)
def test_state_gradients_are_the_total_gradient_through_time(cell):
    m = _model(cell, layers=2)
    x = torch.randn(2, 9, 3)
    out, states = m.forward_with_states(x)
    out.sum().backward()
    top = states[-1]
    assert all(h.grad is not None for s in states for h in s)
    # dL/dh_T of the top layer reaches the loss only through the head: V^T 1
    torch.testing.assert_close(top[-1].grad, m.out.weight.sum(0).expand(2, -1))
    # the same tensors: autograd from the last output to an early h_t equals its retained grad
    out2, states2 = m.forward_with_states(x)
    g = torch.autograd.grad(out2.sum(), states2[0][2])[0]
    torch.testing.assert_close(g, states[0][2].grad)


@pytest.mark.parametrize("cell,bi,head", list(itertools.product(CELLS, [False, True], ["last", "step"])))
def test_result_does_not_depend_on_padding_or_batch(cell, bi, head):
    m = _model(cell, layers=2, bidirectional=bi, head=head).eval()
    torch.manual_seed(1)
    seqs = [torch.randn(n, 3) for n in (5, 9, 2)]
    alone = [m(s[None]) for s in seqs]  # each on its own, no padding
    for T in (9, 13):  # padded to 9 and to 13, garbage padding
        x = torch.full((3, T, 3), 7.0)
        for i, s in enumerate(seqs):
            x[i, : len(s)] = s
        lengths = torch.tensor([len(s) for s in seqs])
        for path in (m, lambda a, b: m.forward_with_states(a, b)[0]):
            out = path(x, lengths)
            for i, s in enumerate(seqs):
                got = out[i] if head == "last" else out[i, : len(s)]
                torch.testing.assert_close(got, alone[i][0], atol=1e-5, rtol=1e-4)
    # in another batch, with other neighbours
    out = m(torch.stack([torch.zeros(9, 3), torch.nn.functional.pad(seqs[0], (0, 0, 0, 4))]), torch.tensor([9, 5]))
    got = out[1] if head == "last" else out[1, :5]
    torch.testing.assert_close(got, alone[0][0], atol=1e-5, rtol=1e-4)


def test_article_lstm_is_keras_lstm_128():
    m = create_model("article-lstm", (28, 28), 10)
    assert m.cell == "lstm" and m.hidden_size == 128 and m.num_layers == 1 and m.head == "last"
    lstm = m.rnn.fused
    H = 128
    # Keras's LSTM(128) on 28 features has 4*128*(28+128) + 4*128 = 80,384 weights; torch keeps a
    # second bias vector b_hh (512 more, held at 0 at init), the Dense head 1,290
    assert sum(p.numel() for p in m.parameters()) == 80_384 + 512 + 1_290
    b = lstm.bias_ih_l0.detach()
    assert torch.all(b[H : 2 * H] == 1) and torch.all(b[:H] == 0) and torch.all(b[2 * H :] == 0)
    assert torch.all(lstm.bias_hh_l0 == 0) and torch.all(m.out.bias == 0)
    U = lstm.weight_hh_l0.detach()  # (4H, H), orthonormal columns
    torch.testing.assert_close(U.T @ U, torch.eye(H), atol=1e-5, rtol=0)
    W = lstm.weight_ih_l0.detach()
    limit = (6 / (28 + 4 * H)) ** 0.5  # glorot-uniform bound
    assert W.abs().max() <= limit and W.abs().max() > 0.9 * limit
    assert m(torch.zeros(2, 28, 28)).shape == (2, 10)


def test_recurrent_family_init():
    res = create_model("residual", (5, 3), 2, hidden=4)
    W, U, b, b_U = res.rnn.weights(0)
    assert W.shape == (8, 3) and U.shape == (8, 4) and b_U is None  # gate blocks z, h
    assert torch.all(b[:4] == -3) and torch.all(b[4:] == 0)  # small first steps
    gru = create_model("gru", (5, 3), 2, hidden=4, layers=2, bidirectional=True)
    for k in range(2):
        for d in range(2):
            W, U, b, b_U = gru.rnn.weights(k, d)
            assert W.shape[1] == (3 if k == 0 else 8) and torch.all(b == 0) and torch.all(b_U == 0)
            torch.testing.assert_close(U.T @ U, torch.eye(4), atol=1e-5, rtol=0)


def test_images_reach_a_recurrent_model_as_rows_read_by_the_data_side():
    """Reading images as rows exists once (the input spec's transform); the model takes sequences only."""
    from layerlab.data.transforms import image_sequence

    m = create_model("article-lstm", (28, 28), 10).eval()
    img = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(image_sequence(img, "rows"), img[:, 0])  # (B, 1, 28, 28) -> rows (B, 28, 28)
    assert m(image_sequence(img, "rows")).shape == (2, 10)
    x = torch.rand(2, 3, 8, 5)
    torch.testing.assert_close(image_sequence(x, "rows"), x.permute(0, 2, 3, 1).reshape(2, 8, 15))
    with pytest.raises(ConfigError, match="--sequence rows"):
        create_model("gru", (3, 8, 5), 4, hidden=4)


def test_token_inputs_are_one_hot():
    m = _model("lstm", head="step", shape=(7,), k=11).eval()
    ids = torch.randint(0, 11, (2, 7))
    onehot = torch.nn.functional.one_hot(ids, 11).float()
    out, _ = m.rnn(onehot)
    torch.testing.assert_close(m(ids), m.out(out))
    # stepping with carried state equals the whole sequence at once
    a, s = m.step_logits(ids[:, :3])
    b, _ = m.step_logits(ids[:, 3:], s)
    torch.testing.assert_close(torch.cat([a, b], 1), m(ids), atol=1e-6, rtol=1e-5)


def test_residual_step_logits_carry_state():
    m = _model("residual", layers=2, head="step", shape=(7,), k=5).eval()
    ids = torch.randint(0, 5, (1, 7))
    a, s = m.step_logits(ids[:, :4])
    b, _ = m.step_logits(ids[:, 4:], s)
    torch.testing.assert_close(torch.cat([a, b], 1), m(ids), atol=1e-6, rtol=1e-5)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="head"):
        create_model("lstm", (5, 2), 3, head="middle")
    with pytest.raises(ConfigError, match="shape"):
        create_model("lstm", (1, 2, 3, 4), 3)
    with pytest.raises(ConfigError, match="dropout"):
        create_model("gru", (5, 2), 3, dropout=1.5)
    with pytest.raises(DataError, match="lengths"):
        create_model("gru", (5, 2), 3)(torch.zeros(2, 5, 2), torch.tensor([0, 5]))


def test_article_lstm_has_keras_single_bias_and_parameter_count():
    from layerlab.api import count_parameters

    m = create_model("article-lstm", (28, 28), 10)
    frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
    assert frozen and all(".bias_hh_" in n for n in frozen)
    assert all(not p.any() for n, p in m.named_parameters() if n in frozen)
    assert count_parameters(m) == 81_674  # Keras's LSTM(128) + Dense(10) on 28 features
