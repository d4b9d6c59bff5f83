"""The `cnn` model on 1-D, 2-D and 3-D data: shapes, parameters, padding, batch norm, residual
blocks, global pooling (masked on padded sequences), and the article's CNN unchanged."""

import pytest
import torch
import torch.nn as nn

from layerlab.errors import ConfigError, DataError
from layerlab.models import create_model
from layerlab.models.cnn import ConvNet, GlobalPool, Residual, plan_check


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --- the article's CNN, unchanged -------------------------------------------------------------
def test_article_cnn_is_unchanged():
    torch.manual_seed(0)
    m = create_model("article-cnn", (1, 28, 28), 10)
    assert n_params(m) == 34_826
    assert [type(layer).__name__ for layer in m.features] == [
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Conv2d",
        "ReLU",
        "MaxPool2d",
    ]
    assert m.pool is None and m.dropout is None
    # the same parameters as the recipe before 1-D/3-D: torch's layers made in this order, then Keras's init
    torch.manual_seed(0)
    convs = [nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)]
    fc = nn.Linear(1600, 10)
    for layer in [*convs, fc]:
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
    ref = [convs[0].weight, convs[0].bias, convs[1].weight, convs[1].bias, fc.weight, fc.bias]
    for p, q in zip(m.parameters(), ref, strict=True):
        assert torch.equal(p, q)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = m(x)
        h = torch.max_pool2d(torch.relu(convs[0](x)), 2)  # conv > ReLU > pool, as the article writes it
        h = torch.max_pool2d(torch.relu(convs[1](h)), 2)
        literal = fc(h.flatten(1))
    torch.testing.assert_close(y, literal)
    # the numbers the model gave before this change, for this seed
    torch.testing.assert_close(float(y.sum()), 0.5973865985870361, atol=1e-5, rtol=0)
    torch.testing.assert_close(float(y[0, 0]), 0.08181340247392654, atol=1e-6, rtol=0)


def test_article_cnn_takes_images_only():
    with pytest.raises(ConfigError, match=r"image samples of shape \(channels, height, width\)"):
        create_model("article-cnn", (100, 3), 10)


# --- dimensionality from the sample shape ------------------------------------------------------
@pytest.mark.parametrize(
    "shape, batch, conv, spatial, params",
    [
        # (T, F): F=3 channels over T=40 steps; 40 > 38 > 19 > 17 > 8
        ((40, 3), (2, 40, 3), nn.Conv1d, (8,), (3 * 8 * 3 + 8) + (8 * 16 * 3 + 16) + (16 * 8 * 5 + 5)),
        ((1, 28, 28), (2, 1, 28, 28), nn.Conv2d, (5, 5), (9 * 8 + 8) + (8 * 16 * 9 + 16) + (16 * 25 * 5 + 5)),
        (
            (2, 12, 14, 16),
            (2, 2, 12, 14, 16),
            nn.Conv3d,
            (1, 2, 2),
            (2 * 8 * 27 + 8) + (8 * 16 * 27 + 16) + (16 * 4 * 5 + 5),
        ),
    ],
)
def test_dimensionality_shapes_and_parameters(shape, batch, conv, spatial, params):
    m = create_model("cnn", shape, 5, channels="8,M,16,M")
    assert m.dims == len(spatial)
    assert all(isinstance(c, conv) for c in m.modules() if isinstance(c, (nn.Conv1d, nn.Conv2d, nn.Conv3d)))
    assert n_params(m) == params == plan_check(_conv_shape(shape), 5, [8, "M", 16, "M"])
    assert m(torch.randn(*batch)).shape == (2, 5)
    assert m.features(torch.randn(*batch).transpose(1, 2) if len(shape) == 2 else torch.randn(*batch)).shape[2:] == (
        spatial
    )


def _conv_shape(shape):
    return (shape[1], shape[0]) if len(shape) == 2 else shape


def test_sequence_is_read_as_channels_over_steps():
    """(B, T, F) is F channels over T steps: the same as a Conv1d on the transposed batch."""
    torch.manual_seed(0)
    m = create_model("cnn", (30, 4), 3, channels="6")
    x = torch.randn(2, 30, 4)
    conv = m.features[0]
    assert conv.in_channels == 4
    expected = m.classifier(torch.relu(conv(x.transpose(1, 2))).flatten(1))
    torch.testing.assert_close(m(x), expected)


def test_shorter_sequences_are_padded_to_the_built_length_and_longer_refused():
    torch.manual_seed(0)
    m = create_model("cnn", (20, 2), 3, channels="4").eval()
    x = torch.randn(1, 12, 2)
    padded = torch.cat([x, torch.zeros(1, 8, 2)], dim=1)
    torch.testing.assert_close(m(x), m(padded, torch.tensor([12])))
    with pytest.raises(DataError, match="at most 20 steps"):
        m(torch.randn(1, 21, 2))


@pytest.mark.parametrize("shape", [(50,), (7,)])
def test_token_inputs_are_a_clear_error(shape):
    with pytest.raises(ConfigError, match=r"token ids.*recurrent model"):
        create_model("cnn", shape, 10)


def test_five_dimensional_samples_are_refused():
    with pytest.raises(ConfigError, match=r"\(C, D, H, W\) volumes, got samples of shape"):
        create_model("cnn", (1, 4, 4, 4, 4), 2)


# --- padding ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, same, valid",
    [((32, 2), (32,), (30,)), ((1, 16, 12), (16, 12), (14, 10)), ((1, 6, 8, 8), (6, 8, 8), (4, 6, 6))],
)
def test_padding_same_keeps_the_size_valid_shrinks_it(shape, same, valid):
    x = torch.randn(1, *shape)
    for padding, size in (("same", same), ("valid", valid)):
        m = create_model("cnn", shape, 2, channels="4", padding=padding)
        conv = m.features[0]
        inp = x.transpose(1, 2) if len(shape) == 2 else x
        assert conv(inp).shape[2:] == size
        assert m(x).shape == (1, 2)


def test_same_padding_lets_small_inputs_through():
    with pytest.raises(ConfigError, match="too small"):
        create_model("cnn", (1, 4, 4), 2, channels="4,4,4")
    assert create_model("cnn", (1, 4, 4), 2, channels="4,4,4", padding="same")(torch.randn(1, 1, 4, 4)).shape == (1, 2)


def test_bad_options_are_one_sentence():
    with pytest.raises(ConfigError, match="--padding must be 'valid' or 'same'"):
        create_model("cnn", (1, 8, 8), 2, padding="full")
    with pytest.raises(ConfigError, match="--global-pool must be 'avg' or 'max'"):
        create_model("cnn", (1, 8, 8), 2, global_pool="median")
    with pytest.raises(ConfigError, match=r"--dropout must be in \[0, 1\)"):
        create_model("cnn", (1, 8, 8), 2, dropout=1.5)
    with pytest.raises(ConfigError, match="model cnn does not take hidden"):
        create_model("cnn", (1, 8, 8), 2, hidden=3)


# --- batch norm and dropout -----------------------------------------------------------------------
def test_batch_norm_replaces_the_conv_bias():
    m = create_model("cnn", (3, 16, 16), 4, channels="8,M,16", batch_norm=True)
    kinds = [type(layer).__name__ for layer in m.features]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "BatchNorm2d", "ReLU"]
    assert all(c.bias is None for c in m.modules() if isinstance(c, nn.Conv2d))
    # conv kernels + BN's scale and shift, Dense on 16x5x5
    expected = (3 * 8 * 9 + 2 * 8) + (8 * 16 * 9 + 2 * 16) + (16 * 25 * 4 + 4)
    assert n_params(m) == expected == plan_check((3, 16, 16), 4, [8, "M", 16], batch_norm=True)
    m.train()
    m(torch.randn(4, 3, 16, 16)).sum().backward()
    m.eval()
    assert m(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_batch_norm_1d_and_3d():
    assert any(
        isinstance(b, nn.BatchNorm1d) for b in create_model("cnn", (20, 3), 2, channels="4", batch_norm=True).modules()
    )
    m3 = create_model("cnn", (1, 6, 6, 6), 2, channels="4", batch_norm=True)
    assert any(isinstance(b, nn.BatchNorm3d) for b in m3.modules())
    assert m3(torch.randn(2, 1, 6, 6, 6)).shape == (2, 2)


def test_dropout_before_the_head():
    torch.manual_seed(0)
    m = create_model("cnn", (1, 12, 12), 3, channels="4", dropout=0.5)
    assert isinstance(m.dropout, nn.Dropout) and m.dropout.p == 0.5
    assert n_params(m) == n_params(create_model("cnn", (1, 12, 12), 3, channels="4"))
    x = torch.randn(2, 1, 12, 12)
    m.eval()
    torch.testing.assert_close(m(x), m(x))
    m.train()
    assert not torch.equal(m(x), m(x))  # a different mask each call while training


# --- residual blocks ------------------------------------------------------------------------------
def test_residual_blocks_where_the_shape_is_kept():
    torch.manual_seed(0)
    m = create_model("cnn", (3, 16, 16), 2, channels="8,8,M,16,16", padding="same", residual=True)
    kinds = [type(layer).__name__ for layer in m.features]
    # the first conv of each width changes the channels (3>8, 8>16): plain; the repeat keeps the shape: a block
    assert kinds == ["Conv2d", "ReLU", "Residual", "MaxPool2d", "Conv2d", "ReLU", "Residual"]
    assert m.residual_blocks == 2
    plain = create_model("cnn", (3, 16, 16), 2, channels="8,8,M,16,16", padding="same")
    assert n_params(m) == n_params(plain)  # identity shortcuts add no parameters
    block = m.features[2]
    x = torch.randn(2, 8, 16, 16)
    torch.testing.assert_close(block(x), torch.relu(x + block.conv(x)))
    assert m(torch.randn(2, 3, 16, 16)).shape == (2, 2)


def test_residual_block_with_batch_norm_1d():
    m = create_model("cnn", (40, 4), 2, channels="4,M,4", padding="same", residual=True, batch_norm=True).eval()
    blocks = [b for b in m.modules() if isinstance(b, Residual)]
    assert len(blocks) == 2 and all(isinstance(b.norm, nn.BatchNorm1d) for b in blocks)
    x = torch.randn(3, 4, 40)
    b = blocks[0]
    torch.testing.assert_close(b(x), torch.relu(x + b.norm(b.conv(x))))


def test_residual_without_any_shape_keeping_conv_is_refused():
    with pytest.raises(ConfigError, match=r"--residual.*--padding same"):
        create_model("cnn", (1, 28, 28), 10, channels="32,M,64", padding="same", residual=True)
    with pytest.raises(ConfigError, match="--residual"):
        create_model("cnn", (1, 28, 28), 10, channels="8,8", residual=True)  # valid padding shrinks


# --- global pooling -----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize(
    "shape, other", [((30, 3), (57, 3)), ((1, 28, 28), (1, 40, 33)), ((2, 8, 10, 12), (2, 13, 9, 16))]
)
def test_global_pool_takes_any_size(mode, shape, other):
    m = create_model("cnn", shape, 4, channels="8,M,16", global_pool=mode)
    assert isinstance(m.pool, GlobalPool) and m.global_pool == mode
    assert m.classifier.in_features == 16
    assert n_params(m) == plan_check(_conv_shape(shape), 4, [8, "M", 16], global_pool=mode)
    assert m(torch.randn(2, *shape)).shape == m(torch.randn(2, *other)).shape == (2, 4)


def test_global_pool_values():
    x = torch.randn(2, 3, 5, 6)
    torch.testing.assert_close(GlobalPool("avg")(x), x.mean(dim=(2, 3)))
    torch.testing.assert_close(GlobalPool("max")(x), x.amax(dim=(2, 3)))


def test_global_pool_none_is_flatten():
    m = create_model("cnn", (1, 12, 12), 2, channels="4", global_pool="none")
    assert m.pool is None and m.classifier.in_features == 4 * 10 * 10


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_masked_global_pool_is_invariant_to_padding(mode, padding, batch_norm):
    """Each sequence of a padded batch gets the logits it gets alone: the padded steps, whatever
    they hold, are zeroed between the layers and left out of the pool."""
    torch.manual_seed(0)
    kw = {"padding": padding, "batch_norm": batch_norm, "global_pool": mode}
    residual = padding == "same"
    m = create_model("cnn", (64, 3), 5, channels="8,M,8,M,16", residual=residual, **kw).eval()
    lengths = torch.tensor([64, 26, 40, 31])  # each long enough for the layers alone
    seqs = [torch.randn(int(n), 3) for n in lengths]
    x = torch.full((4, 64, 3), 7.5)  # padding that is not even zero
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    with torch.no_grad():
        batched = m(x, lengths)
        alone = torch.cat([m(s[None]) for s in seqs])
        longer = m(torch.cat([x, torch.randn(4, 30, 3)], dim=1), lengths)  # more padding
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(longer, batched, atol=1e-5, rtol=1e-5)


def test_full_lengths_give_the_unmasked_result():
    torch.manual_seed(0)
    m = create_model("cnn", (32, 2), 3, channels="4,M,8", global_pool="avg").eval()
    x = torch.randn(3, 32, 2)
    torch.testing.assert_close(m(x, torch.full((3,), 32)), m(x), atol=1e-6, rtol=1e-6)


def test_flatten_model_with_lengths_reads_a_sequence_as_alone():
    """Without a global pool a fixed T is built in; a shorter sequence, padded in a batch or read
    alone (padded inside the model), gets the same logits."""
    torch.manual_seed(0)
    m = create_model("cnn", (16, 2), 3, channels="4,M,4").eval()
    x = torch.randn(2, 16, 2)
    x[1, 9:] = 3.0  # padding of any value
    with torch.no_grad():
        out = m(x, torch.tensor([16, 9]))
        torch.testing.assert_close(out[0], m(x[:1])[0])
        torch.testing.assert_close(out[1], m(x[1:2, :9])[0])


def test_gradients_flow_through_the_masked_path():
    m = create_model("cnn", (20, 2), 3, channels="4,M,4", global_pool="max")
    out = m(torch.randn(3, 20, 2), torch.tensor([20, 5, 12]))
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_convnet_kwargs_from_python():
    m = ConvNet((1, 10, 10), 2, [4, "M"], padding="same", global_pool="avg", dropout=0.1)
    assert m(torch.randn(1, 1, 10, 10)).shape == (1, 2)


def test_summary_reads_a_1d_and_a_3d_cnn():
    from layerlab.inspect.summary import summarize

    s1 = summarize(create_model("cnn", (40, 3), 4, channels="8,M,16", global_pool="avg"), (40, 3), "cnn")
    assert s1.total_parameters == 3 * 8 * 3 + 8 + 8 * 16 * 3 + 16 + 16 * 4 + 4
    assert [r.kind for r in s1.rows][:3] == ["Conv1d", "ReLU", "MaxPool1d"]
    s3 = summarize(create_model("cnn", (1, 8, 8, 8), 2, channels="4,M"), (1, 8, 8, 8), "cnn")
    assert s3.rows[0].output_shape == (4, 6, 6, 6) and s3.without_pools is not None
