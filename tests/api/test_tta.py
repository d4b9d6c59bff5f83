"""Flip test-time augmentation at evaluate: the mean of the softmax of each image and of its
left-right mirror, from Python and the command line; refused in one sentence where it does not fit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import layerlab
from datagen import bar_images
from layerlab.errors import ConfigError


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    x, y = bar_images(48, np.random.default_rng(0), classes=4, cover=True)
    run = tmp_path_factory.mktemp("tta") / "run"
    h = layerlab.fit("article-cnn", x, y, epochs=1, batch_size=8, verbose=0, threads=1, run_dir=run)
    return h, x, y, run


def _by_hand(model, x, y):
    """The averaged probabilities computed here, apart from layerlab's evaluate."""
    xt = torch.from_numpy(x).float()[:, None] / 255
    model.eval()
    with torch.no_grad():
        p = torch.softmax(model(xt), -1)
        q = torch.softmax(model(xt.flip(-1)), -1)
    avg = (p + q) / 2
    yt = torch.from_numpy(y.astype(np.int64))
    acc = float((avg.argmax(-1) == yt).float().mean())
    loss = float(-torch.log(avg[torch.arange(len(y)), yt]).mean())
    return acc, loss, p, q


def test_flip_tta_is_the_mean_of_the_two_softmaxes(fitted):
    h, x, y, _ = fitted
    acc, loss, p, q = _by_hand(h.model, x, y)
    assert not torch.allclose(p, q, atol=1e-4)  # the model is not flip-symmetric: the test can fail
    got = layerlab.evaluate(h, x, y, tta="flip")
    plain = layerlab.evaluate(h, x, y)
    assert got["tta"] == "flip" and "tta" not in plain
    assert got["accuracy"] == pytest.approx(acc, abs=1e-9)
    assert got["loss"] == pytest.approx(loss, rel=1e-5)
    assert got["loss"] != pytest.approx(plain["loss"], rel=1e-5)


def test_the_cli_evaluates_a_run_with_flip_tta_and_says_so(fitted):
    h, x, y, run = fitted
    acc, loss, _, _ = _by_hand(h.model, x, y)  # the run's held-out split is its training arrays
    r = subprocess.run(
        [sys.executable, "-m", "layerlab", "evaluate", str(run), "--tta", "flip", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["tta"] == "flip" and got["n"] == 48
    assert got["accuracy"] == pytest.approx(acc, abs=1e-9) and got["loss"] == pytest.approx(loss, rel=1e-5)
    text = subprocess.run(
        [sys.executable, "-m", "layerlab", "evaluate", str(run), "--tta", "flip"], capture_output=True, text=True
    )
    assert text.returncode == 0 and "test-time augmentation: flip" in text.stdout


def test_flip_tta_is_refused_for_sequences_in_one_sentence(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 6, 3)).astype(np.float32)
    y = np.arange(24) % 2
    h = layerlab.fit("lstm", x, y, epochs=1, verbose=0, hidden=4, threads=1, run_dir=tmp_path / "run")
    with pytest.raises(ConfigError, match="no left and right"):
        layerlab.evaluate(h, x, y, tta="flip")
    r = subprocess.run(
        [sys.executable, "-m", "layerlab", "evaluate", str(tmp_path / "run"), "--tta", "flip"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "no left and right" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_unknown_tta_is_one_sentence(fitted):
    h, x, y, _ = fitted
    with pytest.raises(ConfigError, match="unknown test-time augmentation 'rotate'"):
        layerlab.evaluate(h, x, y, tta="rotate")
