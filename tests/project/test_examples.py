"""Every script in examples/ runs to the end: with ``--quick`` where it takes it (a few hundred
samples, one epoch), else as it is (each is short)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    if "sklearn" in script.read_text():  # reference_train.py reads scikit-learn's bundled digits
        pytest.importorskip("sklearn")
    args = ["--quick"] if "--quick" in script.read_text() else []
    r = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, f"{script.name} failed:\n{r.stderr[-3000:]}"
    assert r.stdout.strip()


def test_the_keras_style_example_uses_keras_types():
    sys.path.insert(0, str(EXAMPLES[0].parent))  # examples/ holds keras_style.py
    try:
        import keras_style
    finally:
        sys.path.pop(0)
    (x, y), (xt, yt) = keras_style.load_data(50, 20)
    assert x.shape == (50, 28, 28) and x.dtype.name == "uint8"
    assert y.shape == (50,) and y.dtype.name == "uint8"
    assert xt.shape == (20, 28, 28) and yt.shape == (20,)
