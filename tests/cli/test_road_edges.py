"""Edges of the road from a run to its views: what a run refuses, and what asking it leaves alone."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from layerlab import api
from layerlab.cli import main
from layerlab.rundir import RunDir


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("layerlab: error: ") and len(err.strip().splitlines()) == 1, err
    return err


def test_evaluating_on_data_with_other_classes_is_one_sentence(trained_run, tmp_path, capsys):
    from PIL import Image

    other = tmp_path / "three"
    for part in ("train", "test"):
        for k in range(3):
            (other / part / f"c{k}").mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((28, 28), 80 * k + i, dtype=np.uint8)).save(other / part / f"c{k}" / f"{i}.png")
    assert main(["evaluate", str(trained_run), "--data", str(other)]) == 2
    assert "3 outputs" in _err(capsys)


def test_the_initial_model_leaves_the_callers_random_streams_alone(trained_run):
    torch.manual_seed(1234)
    random.seed(5)
    np.random.seed(6)
    want = (torch.rand(1), random.random(), np.random.rand())
    torch.manual_seed(1234)
    random.seed(5)
    np.random.seed(6)
    init = RunDir(trained_run).model("init")
    assert (torch.rand(1), random.random(), np.random.rand()) == want
    # and it is the run's own initialisation, every time
    again = RunDir(trained_run).model("init")
    for (k, a), (_, b) in zip(init.state_dict().items(), again.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_train_json_prints_only_json_on_stdout(idx_dir, tmp_path, capsys):
    assert main(["train", "--data", str(idx_dir), "--epochs", "1", "--out", str(tmp_path / "r"), "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["epochs"] == 1


@pytest.mark.parametrize(
    "flag, value, says",
    [
        ("--batch-size", "0", "--batch-size must be at least 1"),
        ("--lr", "-1", "--lr must be at least 0.0"),
        ("--eval-batch-size", "0", "--eval-batch-size must be at least 1"),
        ("--epochs", "0", "--epochs must be at least 1"),
        ("--validation", "1.0", "--validation must be below 1.0"),
        ("--clip", "-1", "--clip must be above 0.0"),
        ("--lr", "nan", "--lr must be a finite number"),
        ("--batch-size", "-4", "--batch-size must be at least 1"),
        ("--epochs", "-2", "--epochs must be at least 1"),
        ("--threads", "0", "--threads must be at least 1"),
        ("--length", "0", "--length must be at least 1"),
        ("--n-train", "0", "--n-train must be at least 1"),
        ("--validation", "0.999", "leaves none to train on"),
    ],
)
def test_values_out_of_range_exit_2_before_anything_is_written(flag, value, says, idx_dir, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--data", str(idx_dir), flag, value, "--out", str(out)]) == 2
    assert says in _err(capsys)
    assert not out.exists()


def test_a_config_built_in_python_is_checked_too(idx_dir, tmp_path):
    from layerlab.config import RunConfig
    from layerlab.errors import ConfigError

    cfg = RunConfig()
    cfg.data.name, cfg.train.batch_size = str(idx_dir), 0
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        api.train(cfg, tmp_path / "r")


def test_inspect_views_name_what_they_do_not_take(trained_run, capsys):
    assert main(["inspect", "gradflow", str(trained_run), "--hidden", "9"]) == 2
    assert "--hidden apply to a fresh MODEL" in _err(capsys)
    assert main(["inspect", "summary", "article-cnn", "--hidden", "5"]) == 2
    assert "does not take hidden" in _err(capsys)
    assert main(["compare-cells", "--task", "adding", "--length", "5", "--cells", "article-cnn"]) == 2
    assert "not a recurrent model" in _err(capsys)


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("copy") / "run"
    assert (
        main(
            [
                "train",
                "--model",
                "lstm",
                "--data",
                "copy",
                "--length",
                "4",
                "--n-train",
                "64",
                "--n-test",
                "16",
                "--hidden",
                "8",
                "--epochs",
                "1",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    return out


def test_a_token_run_is_summarised_predicted_and_evaluated_per_sample(copy_run, tmp_path, capsys):
    assert main(["inspect", "summary", str(copy_run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_shape"] == [24]
    ds = RunDir(copy_run).dataset()
    ids = tmp_path / "ids.npy"
    np.save(ids, ds.test.x[:3].numpy())
    assert main(["predict", str(copy_run), str(ids), "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    ev = api.evaluate_run(copy_run, per_sample=True)
    assert [p["kind"] for p in preds] == ["steps"] * 3
    for p, e in zip(preds, ev["predictions"][:3], strict=True):
        assert len(p["labels"]) == 24 and len(e["true"]) == len(e["predicted"]) == 10  # the 10 recall steps
        assert p["labels"][-10:] == e["predicted"]
    np.save(ids, np.array([[0, 99]]))
    assert main(["predict", str(copy_run), str(ids)]) == 2
    assert "token ids must be between 0 and 9" in _err(capsys)


def test_top_k_and_temperature_out_of_range_are_one_sentence(trained_run, tmp_path, capsys):
    from PIL import Image

    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(png)
    assert main(["predict", str(trained_run), str(png), "--top-k", "0"]) == 2
    assert "--top-k must be at least 1, got 0" in _err(capsys)
    assert main(["generate", str(trained_run), "--temperature", "nan"]) == 2
    assert "--temperature must be a finite number, got nan" in _err(capsys)  # checked as the flag is read


def test_out_under_a_file_is_one_sentence(idx_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["train", "--data", str(idx_dir), "--epochs", "1", "--out", str(blocker / "run")]) == 2
    assert "cannot create the run directory there" in _err(capsys)


def test_a_hand_edited_run_record_is_one_sentence(trained_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    info = json.loads((copy / "run.json").read_text())
    info["dataset"]["num_outputs"] = "ten"
    (copy / "run.json").write_text(json.dumps(info))
    assert main(["evaluate", str(copy)]) == 2
    assert "corrupt run record (dataset.num_outputs must be a positive integer)" in _err(capsys)


def test_arrays_fitted_without_held_out_data_never_call_the_training_data_a_test(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = (rng.random((60, 28, 28)) * 255).astype(np.uint8)
    y = rng.integers(0, 3, 60)
    history = layerlab_fit(x, y, tmp_path / "run")
    assert set(history.history) == {"loss", "accuracy"}
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train_eval_loss" in header and not any(c.startswith(("test_", "val_")) for c in header)
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    assert "60 training samples" in capsys.readouterr().out


def layerlab_fit(x, y, run_dir):
    import layerlab

    return layerlab.fit("article-cnn", x, y, epochs=1, verbose=0, run_dir=str(run_dir))
