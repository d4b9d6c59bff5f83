"""The tuning benchmarks (benchmarks/tune_pruning.py, benchmarks/preset_study.py) without training:
the committed space holds the fast preset's own values (the preset is a point of its search), the
pruning study's base config is the preset with the benchmark's settings (or a refusal when the
preset changed under it), the report's shares and "same draws" come from the rows, and a report
shows no local folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from layerlab.config import RunConfig
from layerlab.presets import resolve
from layerlab.space import read_space

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import preset_study  # noqa: E402
import tune_pruning  # noqa: E402

PRESET = (ROOT / "src" / "layerlab" / "presets" / "article_cnn_fast.toml").read_text()


def test_the_committed_space_holds_the_fast_presets_values():
    space = read_space(tune_pruning.SPACE)
    values = preset_study.base_values("article_cnn_fast")
    assert set(values) == {p.key for p in space.params}
    for p in space.params:
        v = values[p.key]
        if p.kind == "categorical":
            assert v in p.choices, p.key
        else:
            assert p.low <= v <= p.high, p.key
    assert values == {
        "train.batch_size": 48,
        "train.lr": 0.008,
        "train.beta1": 0.85,
        "train.beta2": 0.99,
        "train.label_smoothing": 0.15,
        "train.warmup_epochs": 0.4,
    }
    assert preset_study.flags(values) == (
        "--batch-size 48 --lr 0.008 --beta1 0.85 --beta2 0.99 --label-smoothing 0.15 --warmup-epochs 0.4"
    )


def test_the_pruning_base_config_is_the_preset_with_the_benchmarks_settings(tmp_path):
    path = tmp_path / "base.toml"
    path.write_text(tune_pruning.base_config(PRESET, str(tmp_path / "data"), epochs=4, threads=1))
    cfg, preset = RunConfig.from_toml(path), RunConfig.from_toml(resolve("article_cnn_fast"))
    assert cfg.data.name == str(tmp_path / "data") and cfg.data.validation == 0.1
    assert (cfg.train.epochs, cfg.train.amp, cfg.train.device, cfg.train.threads) == (4, False, "cpu", 1)
    for field in ("batch_size", "lr", "beta1", "beta2", "label_smoothing", "warmup_epochs", "schedule", "seed"):
        assert getattr(cfg.train, field) == getattr(preset.train, field), field
    with pytest.raises(SystemExit, match="could not set"):
        tune_pruning.base_config(PRESET.replace("epochs = 2", "epochs = 3"), "d", epochs=4, threads=1)


def test_the_command_in_a_report_shows_no_local_folder():
    shown = tune_pruning.shown_command(["--out", "/tmp/x/y", "--trials", "3", "--out=/z"])
    assert shown == "python benchmarks/tune_pruning.py --out DIR --trials 3 --out=DIR"
    assert "/tmp" not in tune_pruning.shown_command(["--out", "/tmp/a"], "benchmarks/preset_study.py")


def _row(prune: str, states: list[tuple[str, int, float, float]], params: list[dict], seconds: float) -> dict:
    trials = [
        {"number": i, "state": s, "params": p, "epochs": e, "train_seconds": t, "value": v, "last_val_accuracy": v}
        for i, ((s, e, t, v), p) in enumerate(zip(states, params, strict=True))
    ]
    done = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(done, key=lambda t: t["value"])
    return {
        "prune": prune,
        "completed": len(done),
        "pruned": sum(t["state"] == "PRUNED" for t in trials),
        "failed": 0,
        "epochs_trained": sum(t["epochs"] for t in trials),
        "train_seconds": seconds,
        "wall_seconds": seconds / 2,
        "best_val_accuracy": best["value"],
        "best_trial": best["number"],
        "trials": trials,
    }


def test_the_report_counts_epochs_seconds_the_same_draws_and_the_good_trials_pruned():
    a, b, c = {"train.lr": 0.01}, {"train.lr": 0.02}, {"train.lr": 0.03}
    med = _row(
        "median", [("COMPLETE", 4, 40.0, 0.9), ("PRUNED", 1, 10.0, 0.5), ("COMPLETE", 4, 40.0, 0.8)], [a, b, c], 90.0
    )
    none = _row(
        "none", [("COMPLETE", 4, 40.0, 0.9), ("COMPLETE", 4, 40.0, 0.7), ("COMPLETE", 4, 60.0, 0.85)], [a, b, a], 140.0
    )

    class Args:
        trials, epochs, n_train, workers, threads = 3, 4, 1000, 2, 1

    text = tune_pruning.report(
        [med, none], Args, "python benchmarks/tune_pruning.py", ([1.0], [2.0]), "2026-01-01 00:00"
    )
    assert "| median | 2 | 1 | 9 | 90.0 | 45.0 | 0.9000 (trial 0) |" in text
    assert "| none | 3 | 0 | 12 | 140.0 | 70.0 | 0.9000 (trial 0) |" in text
    assert "trained 75% of the epochs and took 64% of the training seconds" in text
    assert "identical parameters in both: 2 of 3, numbers 0, 1)" in text
    assert (
        "the median pruner stopped trial 1 (its rank 3, 0.7000 after 4 epochs; stopped after epoch 1 at 0.5000)" in text
    )
    assert "2 worker processes of 1 thread," in text and "900 train, 4 epochs" in text
