"""Honest selection: nothing is chosen on the test set. With --validation the held-out split is
stratified and chooses ``best``; without it there is no ``best`` and everything shows ``last``."""

from __future__ import annotations

import json

import pytest
import torch

from datagen import make_idx_dir
from layerlab import api
from layerlab.cli import main
from layerlab.config import RunConfig
from layerlab.data import Dataset, Split, load_dataset, split_validation
from layerlab.errors import LayerlabError
from layerlab.rundir import RunDir


def _cfg(data, epochs=2, validation=0.0) -> RunConfig:
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.data.validation = validation
    cfg.train.epochs = epochs
    return cfg


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("selection")
    data = make_idx_dir(root / "bars", n_train=120, n_test=40)
    validated, _ = api.train(_cfg(data, epochs=3, validation=0.25), root / "validated")
    plain, _ = api.train(_cfg(data, epochs=2), root / "plain")
    return validated.path, plain.path


def test_validation_split_is_stratified_and_deterministic():
    """Old code drew a plain random subset: class shares in the validation split drifted."""
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    ds = Dataset("t", Split(torch.randn(100, 1, 4, 4), y), Split(torch.randn(5, 1, 4, 4), y[:5]), num_outputs=3)
    v = split_validation(ds, 0.2, seed=3)
    assert torch.bincount(v.test.y).tolist() == [12, 6, 2] and len(v.train) == 80
    again = split_validation(ds, 0.2, seed=3)
    assert torch.equal(v.test.x, again.test.x) and torch.equal(v.train.x, again.train.x)
    assert not torch.equal(split_validation(ds, 0.2, seed=4).test.x, v.test.x)
    together = torch.cat([v.train.x, v.test.x]).reshape(100, -1)
    assert torch.equal(together.sort(0).values, ds.train.x.reshape(100, -1).sort(0).values)  # a partition
    odd = split_validation(ds, 0.25, seed=0)  # 25 of 60/30/10: shares 15, 7.5, 2.5 -> 15, 8, 2 by remainders
    assert len(odd.test) == 25 and torch.bincount(odd.test.y).tolist() in ([15, 8, 2], [15, 7, 3])


def test_regression_validation_is_a_random_split():
    ds = Dataset("r", Split(torch.randn(50, 4, 1), torch.randn(50)), Split(torch.randn(5, 4, 1), torch.randn(5)))
    ds.task = "regression"
    v = split_validation(ds, 0.2, seed=0)
    assert len(v.test) == 10 and len(v.train) == 40


def test_validation_chooses_best_and_metrics_say_val(runs):
    """Old code: ``best`` was the lowest *test* loss and the columns said ``test_*``."""
    validated, _ = runs
    run = RunDir(validated)
    rows = run.metrics()
    assert {"val_loss", "val_accuracy"} <= set(rows[0]) and not any(k.startswith("test_") for k in rows[0])
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["best_epoch"] == min(rows, key=lambda r: r["val_loss"])["epoch"]
    assert run.info()["selection"] == "validation" and run.weights("best").is_file()
    assert run.resolve_weights() == "best" and api.evaluate_run(validated)["weights"] == "best"
    assert api.evaluate_run(validated, which="best")["n"] == 40  # evaluated on the whole test set


def test_without_validation_nothing_is_chosen_and_last_is_used(runs, capsys):
    """Old code wrote best.safetensors by test loss and evaluate/predict/report defaulted to it."""
    _, plain = runs
    run = RunDir(plain)
    assert run.info()["selection"] is None and not run.weights("best").exists()
    assert "best_epoch" not in json.loads((run.path / "summary.json").read_text())
    assert run.resolve_weights() == "last" and run.resolve_weights("auto") == "last"
    assert main(["evaluate", str(plain)]) == 0
    assert "last weights" in capsys.readouterr().out
    assert main(["evaluate", str(plain), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == "last"
    with pytest.raises(LayerlabError, match=r"trained without --validation.*use --weights last"):
        api.evaluate_run(plain, which="best")
    assert main(["evaluate", str(plain), "--weights", "best"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no best" in err
    assert "chosen on no split" in run.describe_weights(run.resolve_weights())


def test_train_summary_names_the_split(runs, tmp_path, capsys):
    data = make_idx_dir(tmp_path / "d", n_train=40, n_test=20)
    args = ["train", "--data", str(data), "--epochs", "1", "--quiet", "--json", "--validation", "0.25"]
    assert main([*args, "--out", str(tmp_path / "v")]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["best_epoch"] == 1 and "val_loss" in s and "test_loss" not in s


def test_loading_the_test_set_for_selection_is_impossible_by_default(runs):
    """Without validation, no default anywhere reads a checkpoint chosen on the test set."""
    validated, plain = runs
    _, _, info = api.load_run(plain)
    assert info["weights_used"] == "last"
    _, _, info = api.load_run(validated)
    assert info["weights_used"] == "best"


def test_stratified_split_on_real_loader(tmp_path):
    data = make_idx_dir(tmp_path / "d", n_train=200, n_test=10)
    ds = load_dataset(str(data))
    v = split_validation(ds, 0.1, seed=0)
    full = torch.bincount(ds.train.y.long(), minlength=10).double()
    got = torch.bincount(v.test.y.long(), minlength=10).double()
    assert len(v.test) == 20 and ((got - full * 0.1).abs() < 1).all()
