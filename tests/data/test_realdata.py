"""Real Fashion-MNIST, when the machine has it (Debian: apt-get install dataset-fashion-mnist).
Seconds, not minutes: the full recipe is the README's main command and benchmarks/."""

import pytest
import torch

from layerlab import api
from layerlab.config import RunConfig
from layerlab.data import Dataset, load_dataset
from layerlab.data.catalog import locate

pytestmark = pytest.mark.realdata

HERE = locate("fashion-mnist")


@pytest.fixture(scope="module")
def fashion():
    if HERE is None:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    return load_dataset("fashion-mnist")


def test_fashion_mnist_files_parse(fashion):
    assert fashion.train.x.shape == (60_000, 1, 28, 28) and fashion.test.x.shape == (10_000, 1, 28, 28)
    assert torch.bincount(fashion.train.y).tolist() == [6000] * 10
    assert torch.bincount(fashion.test.y).tolist() == [1000] * 10
    assert fashion.classes[9] == "Ankle boot"
    assert abs(float(fashion.train.x.mean()) - 0.2860) < 1e-3  # the published mean pixel value


def test_article_cnn_learns_fashion_mnist_in_seconds(fashion, tmp_path):
    small = Dataset(
        "fashion-mnist",
        fashion.train.subset(torch.arange(4000)),
        fashion.test.subset(torch.arange(1000)),
        fashion.task,
        fashion.classes,
        fashion.num_outputs,
        spec=fashion.spec,
    )
    cfg = RunConfig()
    cfg.train.epochs = 1
    _, result = api.train(cfg, tmp_path / "run", dataset=small)
    assert result.history[0]["test_accuracy"] > 0.70, result.history
