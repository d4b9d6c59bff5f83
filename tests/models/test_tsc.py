"""Wang et al. 2017's time-series baselines, ``fcn`` and ``resnet1d``: the architecture the paper
gives (widths, kernels, batch norm, shortcuts, global average pooling), series of any length, and
padded series given with their lengths read exactly as alone. Build, forward, summary, ONNX export
and the views are covered for every registered model by test_conformance.py."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from layerlab.errors import ConfigError, DataError
from layerlab.models import create_model, list_models, model_options
from layerlab.models.tsc import ConvBlock, ResidualBlock


def _convs(model: nn.Module) -> list[tuple[int, int, int]]:
    return [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in model.modules() if isinstance(m, nn.Conv1d)]


def test_both_are_registered_without_options():
    assert {"fcn", "resnet1d"} <= set(list_models())
    assert model_options("fcn") == [] and model_options("resnet1d") == []


def test_fcn_is_three_conv_blocks_of_128_256_128_with_kernels_8_5_3():
    model = create_model("fcn", (150, 1), 2)
    assert _convs(model) == [(1, 128, 8), (128, 256, 5), (256, 128, 3)]
    assert [type(b) for b in model.features] == [ConvBlock] * 3
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 3
    assert model.pool.mode == "avg" and model.classifier.in_features == 128
    convs = 1 * 128 * 8 + 128 * 256 * 5 + 256 * 128 * 3  # no bias: batch norm shifts
    assert sum(p.numel() for p in model.parameters()) == convs + 2 * (128 + 256 + 128) + 128 * 2 + 2
    assert model.any_size and model.min_size == 1 and model.steps_first


def test_resnet1d_is_three_residual_blocks_of_64_128_128_with_shortcuts():
    model = create_model("resnet1d", (150, 3), 4)
    blocks = list(model.features)
    assert [type(b) for b in blocks] == [ResidualBlock] * 3
    assert [[c.conv.kernel_size[0] for c in b.convs] for b in blocks] == [[8, 5, 3]] * 3
    assert [b.convs[-1].conv.out_channels for b in blocks] == [64, 128, 128]
    assert [b.convs[-1].act is None for b in blocks] == [True] * 3  # ReLU after the sum, not before
    # a 1x1 conv projects the shortcut where the width changes (3 -> 64, 64 -> 128), batch norm alone where not
    assert [len(b.shortcut) for b in blocks] == [2, 2, 1]
    assert model.classifier.in_features == 128


@pytest.mark.parametrize("name", ["fcn", "resnet1d"])
def test_a_series_of_another_length_and_its_shape_errors(name):
    model = create_model(name, (40, 2), 3).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 17, 2)).shape == (2, 3)  # global pooling: any length
    with pytest.raises(DataError, match="2 features per step"):
        model(torch.randn(2, 40, 5))
    with pytest.raises(ConfigError, match="token ids"):
        create_model(name, (40,), 3)


@settings(max_examples=6, deadline=None)
@given(name=st.sampled_from(["fcn", "resnet1d"]), n=st.integers(1, 20), fill=st.floats(-50, 50))
def test_padding_given_with_lengths_is_read_as_nothing(name, n, fill):
    """A series padded to a batch's longest, with its length, gets the logits it gets alone, whatever
    the padding holds: every map is zeroed past the length and the pool leaves those steps out."""
    torch.manual_seed(0)
    model = create_model(name, (20, 2), 3).eval()
    x = torch.randn(1, 20, 2)
    padded = x.clone()
    padded[:, n:] = fill
    with torch.no_grad():
        alone = model(x[:, :n])
        masked = model(padded, torch.tensor([n]))
    torch.testing.assert_close(masked, alone, atol=1e-4, rtol=1e-4)


def test_an_even_kernel_pads_one_more_step_on_the_right_as_keras_same():
    block = ConvBlock(1, 1, 1, 8).eval()
    nn.init.ones_(block.conv.weight)
    x = torch.zeros(1, 1, 10)
    x[0, 0, 0] = 1.0  # the first step reaches the outputs whose window covers it: the first 4 (3 left, 4 right)
    with torch.no_grad():
        y = block.conv(nn.functional.pad(x, block.pad))
    assert y.shape[-1] == 10 and (y[0, 0] != 0).nonzero().flatten().tolist() == [0, 1, 2, 3]
