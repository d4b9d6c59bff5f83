"""benchmarks/augment_table.py --quick on tiny data: both article-CNN arms and a fashion_best run
train, the file has their rows, the commands and the CPU; a fashion_best run on other data or
epochs is marked as not the preset as shipped."""

import sys
from pathlib import Path

import pytest

from datagen import make_idx_dir

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import augment_table  # noqa: E402


@pytest.mark.slow
def test_quick_table_on_tiny_data(tmp_path, capsys):
    data = make_idx_dir(tmp_path / "bars", n_train=60, n_test=20)
    out = tmp_path / "augment.md"
    args = ["--quick", "--data", str(data), "--runs", str(tmp_path / "runs"), "--out", str(out)]
    assert augment_table.main(args) == 0
    text = out.read_text()
    assert "--quick" in text and "not a result" in text and "shared with other work" in text
    rows = [line for line in text.splitlines() if line.startswith("| article CNN")]
    assert len(rows) == 2 and "--augment crop=2,flip" in rows[1]
    for row in rows:
        cells = row.split("|")
        acc = float(cells[3])  # seed 0's test accuracy, %: a multiple of 1/20 of the 20 test images
        assert cells[2].strip() == "1"  # epochs
        assert 0 <= acc <= 100 and abs(acc / 5 - round(acc / 5)) < 1e-6
    best = [line for line in text.splitlines() if line.startswith("| 0 ")]
    assert len(best) == 1 and "not the preset as shipped" in best[0] and "(1 of 1)" in best[0]
    assert "layerlab evaluate runs/best-s0" in text
    assert (tmp_path / "runs" / "best-s0.test.json").is_file()  # the test set scored once, then read back
