import math

import pytest
import torch

from layerlab.errors import ConfigError
from layerlab.models import create_model, list_models


def test_article_cnn_has_34826_parameters():
    m = create_model("article-cnn", (1, 28, 28), 10)
    per_layer = [
        sum(p.numel() for p in mod.parameters())
        for mod in m.modules()
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    assert per_layer == [320, 18_496, 16_010]  # the article's 320 + 18,496 + 16,010
    assert sum(per_layer) == 34_826


def test_article_cnn_layer_shapes():
    m = create_model("article-cnn", (1, 28, 28), 10)
    x = torch.zeros(2, 1, 28, 28)
    shapes = []
    for layer in m.features:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(32, 26, 26), (32, 26, 26), (32, 13, 13), (64, 11, 11), (64, 11, 11), (64, 5, 5)]
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_article_cnn_on_cifar_shape():
    m = create_model("article-cnn", (3, 32, 32), 10)
    assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert sum(p.numel() for p in m.parameters()) == 896 + 18_496 + (64 * 6 * 6 * 10 + 10)


@pytest.mark.parametrize("layer_index", [0, 3])
def test_glorot_uniform_kernels_zero_biases(layer_index):
    torch.manual_seed(0)
    conv = create_model("article-cnn", (1, 28, 28), 10).features[layer_index]
    fan_in = conv.in_channels * 9
    fan_out = conv.out_channels * 9
    limit = math.sqrt(6 / (fan_in + fan_out))
    w = conv.weight.detach()
    assert float(w.abs().max()) <= limit
    # uniform(-a, a) has standard deviation a / sqrt(3); large layers hit it closely
    assert abs(float(w.std()) - limit / math.sqrt(3)) < 0.1 * limit / math.sqrt(3)
    assert abs(float(w.mean())) < 0.05 * limit
    assert torch.count_nonzero(conv.bias) == 0


def test_dense_glorot():
    torch.manual_seed(0)
    fc = create_model("article-cnn", (1, 28, 28), 10).classifier
    limit = math.sqrt(6 / (1600 + 10))
    assert float(fc.weight.abs().max()) <= limit
    assert abs(float(fc.weight.std()) - limit / math.sqrt(3)) < 0.05 * limit
    assert torch.count_nonzero(fc.bias) == 0


def test_too_small_input_is_a_clear_error():
    with pytest.raises(ConfigError, match="too small"):
        create_model("article-cnn", (1, 8, 8), 10)


def test_unknown_model_lists_known():
    with pytest.raises(ConfigError, match=r"unknown model 'resnet-9000'; known models: .*article-cnn"):
        create_model("resnet-9000", (1, 28, 28), 10)


def test_configurable_cnn():
    m = create_model("cnn", (1, 28, 28), 3, channels="8,M,16,M")
    assert m(torch.zeros(1, 1, 28, 28)).shape == (1, 3)
    with pytest.raises(ConfigError, match="--channels"):
        create_model("cnn", (1, 28, 28), 3, channels="8,X")


def test_registry_lists_article_cnn():
    assert "article-cnn" in list_models()


def test_pool_first_fast_path_equals_the_articles_order():
    torch.manual_seed(0)
    m = create_model("article-cnn", (1, 28, 28), 10)
    x = torch.randn(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))
    fast = m(x)
    torch.nn.functional.cross_entropy(fast, y).backward()
    fast_grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    literal = m.classifier(m.flatten(m.features(x)))  # conv > ReLU > pool, as the article writes it
    torch.nn.functional.cross_entropy(literal, y).backward()
    assert torch.equal(fast, literal)
    for g, p in zip(fast_grads, m.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-7)


def test_hooks_see_the_articles_layer_order():
    m = create_model("article-cnn", (1, 28, 28), 10)
    seen = []
    hooks = [
        layer.register_forward_hook(lambda mod, i, o: seen.append((type(mod).__name__, tuple(o.shape[1:]))))
        for layer in m.features
    ]
    m(torch.zeros(1, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert seen[:3] == [("Conv2d", (32, 26, 26)), ("ReLU", (32, 26, 26)), ("MaxPool2d", (32, 13, 13))]


def test_a_huge_layer_plan_is_refused_before_allocating():
    from layerlab.models.cnn import plan_check

    m = create_model("cnn", (1, 28, 28), 10, channels="8,M,16")
    assert plan_check((1, 28, 28), 10, [8, "M", 16]) == sum(p.numel() for p in m.parameters())
    with pytest.raises(ConfigError, match=r"would have 677,000,000,010 parameters"):
        create_model("cnn", (1, 28, 28), 10, channels="100000000")
    with pytest.raises(ConfigError, match="at least 1 filter"):
        create_model("cnn", (1, 28, 28), 10, channels="0")
