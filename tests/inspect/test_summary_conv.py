"""Model summary (parameters, FLOPs against a hand count, elements passed on), conv filters and
feature maps (shapes equal to the summary's layer shapes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from layerlab.errors import LayerlabError
from layerlab.inspect.conv import feature_maps, filters, find_layer
from layerlab.inspect.summary import summarize
from layerlab.models import create_model


@pytest.fixture(scope="module")
def article_cnn():
    torch.manual_seed(0)
    return create_model("article-cnn", (1, 28, 28), 10)


def test_article_cnn_parameters_and_flops_by_hand(article_cnn):
    s = summarize(article_cnn, (1, 28, 28), "article-cnn")
    assert s.total_parameters == 34_826 == 320 + 18_496 + 16_010
    rows = {r.alias: r for r in s.rows}
    assert [rows[a].parameters for a in ("conv1", "conv2", "dense1")] == [320, 18_496, 16_010]
    # a multiply-add is 2 FLOPs; bias, ReLU and max pooling count nothing (torch's convention)
    conv1 = 26 * 26 * 32 * (3 * 3 * 1) * 2
    conv2 = 11 * 11 * 64 * (3 * 3 * 32) * 2
    dense = 5 * 5 * 64 * 10 * 2
    assert (rows["conv1"].flops, rows["conv2"].flops, rows["dense1"].flops) == (conv1, conv2, dense)
    assert s.total_flops == conv1 + conv2 + dense == 4_881_920
    assert rows["pool1"].flops == rows["relu1"].flops == 0


def test_summary_shows_pooling_shrinks_what_follows(article_cnn):
    s = summarize(article_cnn, (1, 28, 28))
    rows = {r.alias: r for r in s.rows}
    assert [rows[a].output_shape for a in ("conv1", "pool1", "conv2", "pool2", "dense1")] == [
        (32, 26, 26),
        (32, 13, 13),
        (64, 11, 11),
        (64, 5, 5),
        (10,),
    ]
    assert rows["pool1"].elements * 4 == rows["relu1"].elements
    assert (rows["pool2"].elements, rows["relu2"].elements) == (1_600, 7_744)
    w = s.without_pools
    # without pools: 28 -> 26 -> 24, so 24*24*64 inputs to the Dense layer
    assert w["inputs_without_pools"] == 24 * 24 * 64
    assert w["parameters_without_pools"] == 24 * 24 * 64 * 10 + 10 == 368_650
    assert w["parameters_with_pools"] == 16_010
    assert "368,650" in s.pooling_line() and "368,650" in s.to_text()


def test_feature_map_shapes_match_layer_shapes(article_cnn):
    s = summarize(article_cnn, (1, 28, 28))
    shapes = {r.alias: r.output_shape for r in s.rows}
    maps = feature_maps(article_cnn, torch.rand(1, 28, 28))
    assert [m.alias for m in maps] == ["conv1", "pool1", "conv2", "pool2"]
    for m in maps:
        assert tuple(m.maps.shape) == shapes[m.alias]
    # conv maps are shown after the ReLU (Keras's Conv2D(activation='relu')), kept before pooling
    assert maps[0].maps.min() >= 0 and "ReLU" in maps[0].label
    torch.testing.assert_close(maps[1].maps, nn.functional.max_pool2d(maps[0].maps[None], 2)[0])


def test_feature_maps_equal_a_hand_convolution():
    conv = nn.Conv2d(1, 2, 3)
    model = nn.Sequential(conv, nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 2))
    x = torch.rand(1, 8, 8)
    maps = feature_maps(model, x)
    expected = torch.relu(nn.functional.conv2d(x[None], conv.weight, conv.bias))[0]
    torch.testing.assert_close(maps[0].maps, expected.detach())


def test_filters_by_alias_or_module_name(article_cnn):
    name, alias, w = filters(article_cnn, "conv2")
    assert (name, alias, tuple(w.shape)) == ("features.3", "conv2", (64, 32, 3, 3))
    assert filters(article_cnn, "features.0")[1] == "conv1"
    assert filters(article_cnn)[1] == "conv1"
    with pytest.raises(LayerlabError, match=r"no conv layer named 'conv7'.*conv1 \(features\.0\), conv2"):
        find_layer(article_cnn, "conv7")
    with pytest.raises(LayerlabError, match="no conv layer"):
        filters(nn.Sequential(nn.Linear(2, 2)))


def test_summary_of_a_recurrent_model_counts_its_step_loop():
    T, F, Hd = 10, 3, 8
    from layerlab.api import count_parameters

    model = create_model("lstm", (T, F), 2, hidden=Hd)
    s = summarize(model, (T, F))
    # input projection of every step + recurrent product of every step (4 gates) + the head
    assert s.total_flops == 2 * T * F * 4 * Hd + 2 * T * Hd * 4 * Hd + 2 * Hd * 2
    # trainable parameters, as the run records them (a frozen bias is not counted)
    assert s.total_parameters == sum(r.parameters for r in s.rows) == count_parameters(model)


def test_summary_rejects_a_wrong_input_shape(article_cnn):
    with pytest.raises(LayerlabError, match="does not take samples of shape"):
        summarize(article_cnn, (3, 5, 5))


def test_plots_render(article_cnn, tmp_path):
    from layerlab import plots

    s = summarize(article_cnn, (1, 28, 28), "article-cnn")
    for name, fig in {
        "elements": plots.layer_elements(s),
        "filters1": plots.conv_filters(filters(article_cnn, "conv1")[2]),
        "mosaic": plots.conv_filters(torch.randn(6, 4, 3, 3)),
        "rgb": plots.conv_filters(torch.randn(4, 3, 3, 3)),
        "maps": plots.feature_maps(torch.rand(4, 6, 6), "x", image=torch.rand(1, 8, 8)),
    }.items():
        path = plots.save(fig, tmp_path / f"{name}.png")
        assert path.stat().st_size > 1000
        for ax in fig.axes:
            if ax.get_visible() and ax.axison and ax.get_xlabel():
                assert ax.get_ylabel()
    assert np.asarray(filters(article_cnn)[2]).shape == (32, 1, 3, 3)
