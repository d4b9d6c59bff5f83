"""Every model family and option exports to ONNX and matches torch to 1e-4 in onnxruntime, at the
built size and, where the model allows, at another (the cases of benchmarks/export_matrix.py)."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'layerlab[onnx]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'layerlab[onnx]')")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from export_matrix import CASES, max_abs_diffs


@pytest.mark.parametrize("family, options, shape, other", CASES, ids=[c[0] for c in CASES])
def test_export_matches_torch(family, options, shape, other, tmp_path):
    diffs = max_abs_diffs(family, options, shape, other, tmp_path)
    assert len(diffs) == (2 if other else 1)
    assert max(diffs) <= 1e-4, diffs


def test_a_loop_of_ours_keeps_its_time_axis_fixed():
    """The residual cell runs a Python loop that the exporter unrolls for the example's T: its ONNX
    model must not claim a dynamic time axis (it gave answers 0.5 off at another length when it did)."""
    from layerlab.export import dynamic_axes
    from layerlab.models import create_model

    assert dynamic_axes(create_model("residual", (25, 4), 3, hidden=8), 3) == {0: "batch"}
    assert dynamic_axes(create_model("gru", (25, 4), 3, hidden=8), 3) == {0: "batch", 1: "time"}
