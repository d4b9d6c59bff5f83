"""benchmarks/preset_trials.py: each trial is the preset plus its flags, trained once per seed on a
held-out split; the table's mean and minimum are those of the seeds' validation accuracies."""

import re
import sys
from pathlib import Path

import pytest

from datagen import make_idx_dir

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import preset_trials  # noqa: E402


@pytest.mark.slow
def test_trials_table_over_seeds(tmp_path, capsys):
    data = make_idx_dir(tmp_path / "bars", n_train=120, n_test=40)
    out = tmp_path / "trials.md"
    args = ["--preset", "article_cnn_fast", "--seeds", "0,1", "--validation", "0.25", "--data-dir", str(data)]
    args += ["--trial", "--epochs 1 --no-amp", "--trial", "--epochs 1 --no-amp --lr 0.001", "--out", str(out)]
    assert preset_trials.main(args) == 0
    text = out.read_text()
    assert "--validation 0.25 --seed S" in text and "seeds 0, 1" in text
    rows = [line for line in text.splitlines() if line.startswith("| `--epochs 1")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip().strip("*") for c in row.strip("|").split("|")]
        seeds, mean, low = [float(c) for c in cells[1:3]], float(cells[3]), float(cells[4])
        assert all(0.0 <= a <= 1.0 for a in seeds)
        assert mean == pytest.approx(sum(seeds) / 2, abs=1e-4) and low == pytest.approx(min(seeds), abs=1e-4)
    # 30 of 120 held out: every accuracy is a multiple of 1/30
    assert all(abs(float(v) * 30 - round(float(v) * 30)) < 0.01 for v in re.findall(r"\| (0\.\d{4})", rows[0]))


def test_a_failing_trial_stops_with_the_command_and_its_error(tmp_path):
    with pytest.raises(SystemExit, match=r"preset_trials: .*--no-such-flag.* failed"):
        preset_trials.main(["--seeds", "0", "--trial=--no-such-flag", "--out", str(tmp_path / "t.md")])
