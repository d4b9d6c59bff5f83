"""layerlab outside the repository: the wheel holds the presets and no tests, and once installed
into a fresh virtual environment ``layerlab presets`` and ``layerlab train --config article_cnn``
work from a directory that is not the checkout (the presets are package data, not files beside it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from datagen import make_idx_dir

ROOT = Path(__file__).resolve().parents[2]
TORCH = "torch==2.13.0"  # as scripts/setup.sh: the CPU build pip finds quickly


def _run(cmd: list, timeout: int, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_trains_a_preset_outside_the_repo(tmp_path):
    # build from a copy of what the wheel is made of, so the checkout gets no build/ or egg-info
    src = tmp_path / "src-copy"
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    dist = tmp_path / "dist"
    # --no-build-isolation: the setuptools of this environment builds it, no download needed
    built = _run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "-w", dist], 300)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("layerlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "layerlab/presets/article_cnn.toml" in names and "layerlab/presets/__init__.py" in names
    assert {f"layerlab/explore/static/{n}" for n in ("index.html", "app.js", "style.css")} <= set(names)
    assert not [n for n in names if n.startswith("tests/") or "conftest" in n or "datagen" in n]

    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", venv], 120).returncode == 0
    bin_ = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    installed = _run([bin_ / "python", "-m", "pip", "install", "-q", TORCH, wheel], 600, env=env)
    if installed.returncode != 0 and (
        "Could not find a version" in installed.stderr or "NewConnection" in installed.stderr
    ):
        pytest.skip(f"no package index reachable to install {TORCH} and layerlab's dependencies")
    assert installed.returncode == 0, installed.stderr[-3000:]

    elsewhere = tmp_path / "elsewhere"  # not the checkout: nothing of the repository is on the path here
    elsewhere.mkdir()
    where = _run([bin_ / "python", "-c", "import layerlab; print(layerlab.__file__)"], 60, cwd=elsewhere, env=env)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    presets = _run([bin_ / "layerlab", "presets", "--json"], 60, cwd=elsewhere, env=env)
    assert presets.returncode == 0 and "article_cnn" in json.loads(presets.stdout), presets.stderr
    data = make_idx_dir(tmp_path / "bars", n_train=64, n_test=32)
    args = ["train", "--config", "article_cnn", "--epochs", "1", "--data", data, "--out", "run", "--quiet", "--json"]
    trained = _run([bin_ / "layerlab", *args], 300, cwd=elsewhere, env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    summary = json.loads(trained.stdout)
    assert summary["model"] == "article-cnn" and summary["epochs"] == 1
    assert (elsewhere / "run" / "config.toml").is_file()
