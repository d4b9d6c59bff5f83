"""Shared fixtures: an isolated environment (no downloads, a private cache) so tests never depend
on what the machine has, and small datasets and runs made on the spot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from datagen import make_idx_dir

# CI replays the same examples every run (a red build is then the code's, never the draw's); a
# developer's run draws new ones each time, which is how the property tests find new cases.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("LAYERLAB_OFFLINE", "1")
    monkeypatch.setenv("LAYERLAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("LAYERLAB_DATA_DIR", raising=False)


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    return make_idx_dir(tmp_path / "bars")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A small article-cnn run on the bar images, trained once for the tests that read a run."""
    from layerlab import api
    from layerlab.config import RunConfig

    root = tmp_path_factory.mktemp("trained")
    data = make_idx_dir(root / "bars", n_train=400, n_test=100)
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.train.epochs = 2
    run, _ = api.train(cfg, root / "run")
    return run.path
