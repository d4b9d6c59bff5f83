"""The inspection commands end to end through ``layerlab.cli.main``: what they print and write,
and one clear sentence with exit code 2 for bad input."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from datagen import save_png
from layerlab.cli import main


@pytest.mark.slow
def test_summary_of_the_article_cnn(capsys):
    assert main(["inspect", "summary", "article-cnn"]) == 0
    out = capsys.readouterr().out
    assert "34,826" in out and "4,881,920" in out and "368,650" in out
    assert "32x13x13" in out and "64x5x5" in out


@pytest.mark.slow
def test_filters_and_features_of_a_run(trained_run, tmp_path, capsys):
    out = tmp_path / "views"
    assert main(["inspect", "filters", str(trained_run), "--layer", "conv2", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "filters_conv2.csv")))
    assert len(rows) == 64 * 32 * 3 * 3 and (out / "filters_conv2.png").stat().st_size > 1000
    img = save_png(tmp_path / "bar.png", np.pad(np.full((2, 20), 255), ((10, 16), (4, 4))))
    assert main(["inspect", "features", str(trained_run), str(img), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "conv1 (Conv2d + ReLU)        32x26x26" in text and "pool2 (MaxPool2d)            64x5x5" in text
    for alias in ("input", "conv1", "pool1", "conv2", "pool2"):
        assert (out / f"features_{alias}.png").is_file() and (out / f"features_{alias}.csv").is_file()


@pytest.mark.slow
def test_curves_and_errors_of_a_run(trained_run, tmp_path, capsys):
    out = tmp_path / "views"
    assert main(["inspect", "curves", str(trained_run), "--out", str(out)]) == 0
    assert [r["epoch"] for r in csv.DictReader(open(out / "curves.csv"))] == ["1", "2"]
    assert main(["inspect", "errors", str(trained_run), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "precision" in text and "accuracy" in text
    scores = list(csv.DictReader(open(out / "class_scores.csv")))
    assert len(scores) == 10 and sum(int(r["support"]) for r in scores) == 100


@pytest.mark.parametrize(
    "argv, message",
    [
        (["inspect", "filters", "{missing}"], "no such run directory"),
        (["inspect", "filters", "{run}", "--layer", "conv9"], "no conv layer named 'conv9'"),
        (["inspect", "features", "{run}", "{text}"], "not an image"),
        (["inspect", "features", "{run}", "{missing}.png"], "no such file"),
        (["inspect", "summary", "no-such-model"], "neither a run directory nor a registered model"),
        (["inspect", "summary", "article-cnn", "--input-shape", "1,a"], "--input-shape"),
        (["inspect", "gradflow", "{run}"], "not recurrent"),
        (["report", "{missing}"], "no such run directory"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(argv, message, trained_run, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    subs = {"{run}": str(trained_run), "{missing}": str(tmp_path / "missing"), "{text}": str(text)}
    argv = [a.replace("{missing}", subs["{missing}"]) if "{missing}" in a else subs.get(a, a) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_gradflow_of_a_fresh_model(tmp_path, capsys):
    assert main(["inspect", "gradflow", "lstm"]) == 2
    assert "needs --data" in capsys.readouterr().err
    out = tmp_path / "gf"
    assert (
        main(
            [
                "inspect",
                "gradflow",
                "rnn",
                "--data",
                "adding",
                "--length",
                "10",
                "--hidden",
                "6",
                "--samples",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "per step back" in text and "exact Frobenius" in text
    rows = list(csv.DictReader(open(out / "gradflow.csv")))
    assert [int(r["t"]) for r in rows] == list(range(1, 11))
    fits = list(csv.DictReader(open(out / "gradflow_fit.csv")))
    assert {r["measure"] for r in fits} == {"grad_norm", "jacobian_norm", "jacobian_spectral"}
    assert (out / "gradflow.png").stat().st_size > 1000


@pytest.mark.slow
def test_compare_cells_writes_figure_and_table(tmp_path, capsys):
    import time

    out = tmp_path / "cc"
    t0 = time.perf_counter()
    assert (
        main(
            [
                "compare-cells",
                "--task",
                "adding",
                "--length",
                "8",
                "--cells",
                "rnn,gru",
                "--hidden",
                "4",
                "--epochs",
                "1",
                "--n-train",
                "64",
                "--n-test",
                "16",
                "--samples",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    elapsed = time.perf_counter() - t0
    text = capsys.readouterr().out
    assert "final_test_mse" in text and "0.1667" in text
    table = list(csv.DictReader(open(out / "compare_cells.csv")))
    assert [r["cell"] for r in table] == ["rnn", "gru"]
    history = list(csv.DictReader(open(out / "compare_cells_history.csv")))
    for r in table:
        assert int(r["parameters"]) > 0 and 0 < float(r["decay_per_step_init"])
        # a cell's training time covers its epochs' train and eval time (the table rounds to 0.01 s) ...
        epochs = [float(h["train_seconds"]) + float(h["eval_seconds"]) for h in history if h["cell"] == r["cell"]]
        assert len(epochs) == 1 and float(r["seconds"]) >= sum(epochs) - 0.006
    # ... and the cells' times fit inside the command's own wall time
    assert sum(float(r["seconds"]) for r in table) <= elapsed
    curves = list(csv.DictReader(open(out / "compare_cells_curves.csv")))
    assert len(curves) == 2 * 2 * 8  # cells x (init, trained) x T
    assert (out / "compare_cells.png").stat().st_size > 10_000
    assert (
        main(
            [
                "compare-cells",
                "--task",
                "adding",
                "--length",
                "8",
                "--cells",
                "rnn,nope",
                "--n-train",
                "8",
                "--n-test",
                "4",
                "--epochs",
                "1",
                "--out",
                str(out),
            ]
        )
        == 2
    )
