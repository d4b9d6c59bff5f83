"""``layerlab train --data X`` with no model named: a model chosen for the data's kind (a batch-norm
CNN with a global pool for images, Wang et al.'s FCN for series), a one-cycle rate, a validation
split and early stopping under an epoch cap; printed in one line and kept in the run's config and
``run.json``. Flags the user typed win; a named model, a preset or --init-from keeps the old
behaviour (the article's defaults for a bare ``layerlab train``)."""

from __future__ import annotations

import json
import tomllib
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datagen import make_idx_dir, ts_text
from layerlab import defaults
from layerlab.cli import main
from layerlab.config import RunConfig


def _ucr(root, n_train=30, n_test=10, T=24):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("TRAIN", n_train), ("TEST", n_test)):
        labels = [str(i % 2) for i in range(n)]
        series = [
            np.sin(np.linspace(0, 3 + 3 * int(c), T))[:, None] + 0.1 * rng.standard_normal((T, 1)) for c in labels
        ]
        (root / f"Toy_{split}.ts").write_text(ts_text(series, labels, problem="Toy"))
    return root / "Toy_TRAIN.ts"


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _config(run) -> dict:
    return tomllib.loads((run / "config.toml").read_text())


def test_only_data_chooses_fcn_for_series_and_records_it(tmp_path, capsys):
    data = _ucr(tmp_path / "ucr")
    run = tmp_path / "run"
    code, out, _ = _run(capsys, "train", "--data", data, "--epochs", 2, "--threads", 1, "--out", run)
    assert code == 0
    (line,) = [s for s in out.splitlines() if s.startswith("defaults")]
    assert (
        line.startswith("defaults for series: fcn, onecycle to lr 0.001, batch 8, up to 2 epochs")
        and "--epochs" in line
    )
    cfg = _config(run)
    assert cfg["model"] == {"name": "fcn"} and cfg["data"]["validation"] == defaults.VALIDATION
    assert (cfg["train"]["schedule"], cfg["train"]["epochs"], cfg["train"]["batch_size"]) == ("onecycle", 2, 8)
    assert cfg["train"]["early_stopping"] == defaults.MIN_PATIENCE and cfg["train"]["monitor"] == "val_loss"
    record = json.loads((run / "run.json").read_text())["defaults"]
    assert record["kind"] == "sequence" and record["model"] == {"name": "fcn"} and record["kept"] == ["train.epochs"]


def test_only_data_chooses_a_batch_norm_cnn_with_a_global_pool_for_images(tmp_path, capsys):
    data = make_idx_dir(tmp_path / "bars", n_train=60, n_test=20)
    run = tmp_path / "run"
    code, _, _ = _run(capsys, "train", "--data", data, "--epochs", 1, "--lr", 0.01, "--out", run, "--quiet")
    assert code == 0
    cfg = _config(run)
    assert cfg["model"] == defaults.MODELS["image"]
    assert cfg["train"]["lr"] == 0.01 and cfg["train"]["schedule"] == "onecycle"  # the typed flag wins
    assert json.loads((run / "run.json").read_text())["defaults"]["kept"] == ["train.epochs", "train.lr"]


@pytest.mark.parametrize(
    "extra",
    [["--model", "cnn", "--channels", "4,M"], ["--channels", "4,M"], ["--config", "CFG"]],
    ids=["model", "model-option", "config"],
)
def test_a_named_model_or_a_preset_keeps_the_old_recipe(tmp_path, capsys, extra):
    data = make_idx_dir(tmp_path / "bars", n_train=40, n_test=20)
    (tmp_path / "c.toml").write_text('[model]\nname = "cnn"\nchannels = "4,M"\n')
    extra = [str(tmp_path / "c.toml") if e == "CFG" else e for e in extra]
    run = tmp_path / "run"
    code, out, err = _run(capsys, "train", "--data", data, "--epochs", 1, *extra, "--out", run)
    if extra == ["--channels", "4,M"]:  # a model option names the article's model, which takes none
        assert code == 2 and "article-cnn does not take --channels" in err
        return
    assert code == 0 and "defaults for" not in out
    cfg = _config(run)
    assert cfg["model"]["name"] == "cnn" and cfg["train"]["schedule"] == "constant"
    assert "validation" not in cfg["data"] or cfg["data"]["validation"] == 0
    assert "early_stopping" not in cfg["train"] and "defaults" not in json.loads((run / "run.json").read_text())


def test_applies_only_with_data_and_no_model_preset_or_init():
    assert defaults.applies(None, {"data.name": "x", "train.epochs": 3, "train.threads": 1})
    assert not defaults.applies(None, {})  # bare `layerlab train`: the article's run
    assert not defaults.applies("article_cnn", {"data.name": "x"})
    assert not defaults.applies(None, {"data.name": "x", "model.name": "cnn"})
    assert not defaults.applies(None, {"data.name": "x", "model.batch_norm": True})
    assert not defaults.applies(None, {"data.name": "x", "train.init_from": "runs/a"})


def _ds(n, kind="sequence"):
    return SimpleNamespace(train=range(n), spec=SimpleNamespace(kind=kind))


@given(n=st.integers(2, 200_000), batch=st.one_of(st.none(), st.integers(1, 4096)))
def test_the_recipe_stays_in_its_bounds(n, batch):
    cfg = RunConfig()
    cfg.data.validation = defaults.VALIDATION
    given_flags = {"data.name": "x"} if batch is None else {"data.name": "x", "train.batch_size": batch}
    if batch is not None:
        cfg.train.batch_size = batch
    record = defaults.choose(cfg, given_flags, _ds(n))
    t = cfg.train
    assert defaults.MIN_BATCH <= record["train"]["batch_size"] <= defaults.MAX_BATCH or batch is not None
    assert t.batch_size == (batch if batch is not None else record["train"]["batch_size"])
    assert defaults.MIN_EPOCHS <= t.epochs <= defaults.MAX_EPOCHS
    assert t.early_stopping >= defaults.MIN_PATIENCE and t.early_stopping <= max(defaults.MIN_PATIENCE, t.epochs)
    assert cfg.model.name == "fcn" and t.schedule == "onecycle"
    assert record["kept"] == ([] if batch is None else ["train.batch_size"])


@pytest.mark.parametrize(
    "kind, label_column, model",
    [("image", None, "cnn"), ("volume", None, "cnn"), ("sequence", None, "fcn"), ("sequence", "y", "mlp")]
    + [("tokens", None, "lstm")],
)
def test_each_kind_gets_its_model(kind, label_column, model):
    cfg = RunConfig()
    cfg.data.validation, cfg.data.label_column = 0.2, label_column
    record = defaults.choose(cfg, {"data.name": "x"}, _ds(100, kind))
    assert cfg.model.name == model and record["model"]["name"] == model
    assert (cfg.train.clip == 1.0) == (kind == "tokens")
    assert defaults.describe(record).startswith(f"defaults for {defaults.KIND_WORDS[record['kind']]}: {model}")


def test_no_validation_split_means_no_early_stopping():
    cfg = RunConfig()
    cfg.data.validation = 0.0
    record = defaults.choose(cfg, {"data.name": "x", "data.validation": 0.0}, _ds(100))
    assert cfg.train.early_stopping is None and record["kept"] == ["data.validation"]
    assert "no early stopping" in defaults.describe(record)


def test_the_ucr_fcn_preset_trains_fcn_with_the_papers_adam(tmp_path, capsys):
    """``--config ucr_fcn``: Wang et al.'s FCN, Adam at 1e-3 with the epsilon of the Keras of the paper's time
    (1e-8), early stopping on a validation split; a preset is no case for the defaults."""
    data = _ucr(tmp_path / "ucr")
    run = tmp_path / "run"
    code, out, _ = _run(capsys, "train", "--config", "ucr_fcn", "--data", data, "--epochs", 1, "--out", run)
    assert code == 0 and "defaults for" not in out
    cfg = _config(run)
    assert cfg["model"] == {"name": "fcn"} and cfg["data"]["validation"] == 0.2
    t = cfg["train"]
    assert (t["lr"], t["eps"], t["batch_size"], t["early_stopping"], t["schedule"]) == (1e-3, 1e-8, 16, 50, "constant")
