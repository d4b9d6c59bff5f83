"""Numbers the README and docs quote from a committed results file (or from the code that makes the
table they sit in) are that file's numbers: each is read from its source here and looked for in the
text, so a rerun that changes a result, or a hand edit, fails until the text says the same."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def _flat(path: Path) -> str:
    """The text with every run of whitespace as one space (statements wrap across lines)."""
    return " ".join(path.read_text(encoding="utf-8").split())


def _cpu_loop() -> dict[str, dict]:
    """``benchmarks/results/cpu_loop.md`` per model: the ratio it reports, layerlab's and the best plain
    loop's seconds per epoch."""
    text = (RESULTS / "cpu_loop.md").read_text(encoding="utf-8")
    out = {}
    for model, section in re.findall(r"## article (CNN|LSTM)\n(.*?)(?=\n## |\Z)", text, re.S):
        ratio = re.search(r"layerlab / best plain loop: \*\*([0-9.]+x)\*\*", section).group(1)
        rows = [
            [c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")
        ]
        seconds = {r[0]: r[1] for r in rows[2:]}
        layerlab = next(v for k, v in seconds.items() if k.startswith("**layerlab**"))
        best = next(r[1] for r in rows[2:] if r[-1] == "1.00x")
        out[model] = {"ratio": ratio, "layerlab": layerlab, "best": best}
    return out


def test_cpu_loop_ratios_are_the_results_files():
    got = _cpu_loop()
    assert set(got) == {"CNN", "LSTM"}
    speed = _flat(ROOT / "docs" / "speed.md")
    assert f"{got['CNN']['ratio']} for the CNN, {got['LSTM']['ratio']} for the LSTM" in speed
    bench = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    for model, r in got.items():
        row = re.search(rf"\| article {model}, second run \|([^\n]*)", bench).group(1)
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert cells[1].split()[0] == r["best"] and cells[2] == r["layerlab"] and cells[3] == f"**{r['ratio']}**"


def test_onnx_check_difference_is_the_recorded_one():
    recorded = re.search(r"max abs diff ([0-9.e+-]+)\)", (RESULTS / "onnx_predict.md").read_text()).group(1)
    assert f"(`check.max_abs_diff`: {recorded} for the trained article CNN" in _flat(ROOT / "docs" / "features.md")


def test_onnx_length_statement_matches_the_export():
    """The residual cell's loop is unrolled at export: its time axis is not dynamic, and the docs say so."""
    from layerlab.export import dynamic_axes
    from layerlab.models import create_model

    assert 1 in dynamic_axes(create_model("lstm", (5, 2), 1, hidden=4), 3)
    assert 1 not in dynamic_axes(create_model("residual", (5, 2), 1, hidden=4), 3)
    text = _flat(ROOT / "docs" / "features.md")
    assert "any length for a recurrent model on torch's fused layers" in text and "`residual` cell's loop" in text


def _reference_train():
    spec = importlib.util.spec_from_file_location("reference_train", ROOT / "examples" / "reference_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vanishing_slope_table_and_its_sentence_are_the_reference():
    text = (ROOT / "docs" / "equations.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([0-9.]+) \| (-?[0-9.]+) \| (-?[0-9.]+) \| ([0-9.e+-]+) \|$", text, re.M)
    assert [r[0] for r in rows] == ["0.3", "0.6", "0.9", "1.0"]
    ref = _reference_train()
    close, off = [], []
    for sigma, slope, log_sigma, ratio in rows:
        got_slope, got_ratio = ref.vanishing_slope(float(sigma))
        assert f"{got_slope:.4f}" == slope and f"{math.log(float(sigma)):.4f}" == log_sigma
        assert f"{got_ratio:.1e}" == ratio
        diff = float(slope) - float(log_sigma)
        (close if abs(diff) < 5e-4 else off).append((sigma, diff))
    sentence = _flat(ROOT / "docs" / "equations.md")
    names = " and ".join(s for s, _ in close)
    assert f"`log sigma` to three decimal places at sigma {names};" in sentence
    below = " and ".join(f"{-d:.4f}" for _, d in off)
    assert all(d < 0 for _, d in off)
    assert f"at {' and '.join(s for s, _ in off)} it lies {below} below it" in sentence


def test_claims_page_is_its_results_file_rendered():
    """docs/claims.md holds no number by hand: it is claims.json rendered, byte for byte."""
    from layerlab.claims import render_page

    page = ROOT / "docs" / "claims.md"
    doc = json.loads((RESULTS / "claims" / "claims.json").read_text(encoding="utf-8"))
    rendered = render_page(doc, Path("docs/claims.md"), Path("benchmarks/results/claims"))
    if rendered != page.read_text(encoding="utf-8"):
        pytest.fail("docs/claims.md differs from claims.json rendered: rerun `layerlab claims` (or --update)")
