"""The command line with recurrent models on tiny data: train, evaluate, predict, generate."""

import csv
import json

import numpy as np
import pytest

from layerlab.cli import main

TINY = ["--epochs", "1", "--hidden", "8", "--batch-size", "16", "--quiet", "--threads", "1"]


def _json_out(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _metrics(run):
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_adding_train_with_clip_evaluate_predict(tmp_path, capsys):
    run = tmp_path / "add"
    assert (
        main(
            [
                "train",
                "--model",
                "rnn",
                "--data",
                "adding",
                "--length",
                "12",
                "--n-train",
                "64",
                "--n-test",
                "16",
                "--clip",
                "0.01",
                "--out",
                str(run),
                "--json",
                *TINY,
            ]
        )
        == 0
    )
    s = _json_out(capsys)
    assert s["test_accuracy"] is None and s["test_loss"] > 0
    row = _metrics(run)[0]
    # clipping by global norm is logged per epoch; a max norm of 0.01 clips every step
    assert float(row["grad_norm_max"]) >= float(row["grad_norm_mean"]) > 0.01
    assert float(row["clipped_fraction"]) == 1.0
    assert main(["evaluate", str(run), "--json"]) == 0
    e = _json_out(capsys)
    assert e["n"] == 16 and "accuracy" not in e and e["loss"] == pytest.approx(s["test_loss"], rel=1e-4)
    x = np.zeros((3, 12, 2), dtype=np.float32)
    x[:, [2, 9], 1] = 1
    x[:, :, 0] = 0.5
    np.save(tmp_path / "seqs.npy", x)
    assert main(["predict", str(run), str(tmp_path / "seqs.npy"), "--json"]) == 0
    p = _json_out(capsys)
    assert len(p) == 3 and p[0]["file"].endswith("seqs.npy[0]") and isinstance(p[0]["value"], float)
    assert main(["predict", str(run), str(tmp_path / "seqs.npy")]) == 0
    assert "seqs.npy[2]:" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["gru", "residual"])
def test_copy_task_per_step(tmp_path, capsys, model):
    run = tmp_path / model
    assert (
        main(
            [
                "train",
                "--model",
                model,
                "--data",
                "copy",
                "--length",
                "3",
                "--n-train",
                "32",
                "--n-test",
                "8",
                "--out",
                str(run),
                "--json",
                *TINY,
            ]
        )
        == 0
    )
    s = _json_out(capsys)
    # one epoch on 32 sequences learns nothing (measured: 0 to 0.23 over seeds, chance 1/8), so check the number
    # against the run's record and against a forward pass of the saved model scored by hand: only the 8 x 10 recall
    # steps count, not the 8 x 13 ignored (-100) ones
    assert s["test_accuracy"] == float(_metrics(run)[-1]["test_accuracy"])
    import torch

    from layerlab.api import load_run
    from layerlab.data import load_dataset

    net, _, _ = load_run(run, "last")
    test = load_dataset("copy", length=3, n_train=32, n_test=8).test
    with torch.no_grad():
        pred = net(test.x).argmax(-1)  # (8, 23)
    scored = test.y != -100
    assert int(scored.sum()) == 80
    assert s["test_accuracy"] == pytest.approx((pred[scored] == test.y[scored]).float().mean().item())
    info = json.loads((run / "run.json").read_text())
    assert info["input_spec"]["head"] == "step" and info["dataset"]["task"] == "sequence-classification"
    assert main(["evaluate", str(run), "--json"]) == 0
    assert _json_out(capsys)["accuracy"] == pytest.approx(s["test_accuracy"])


def test_ts_train_evaluate_predict(tmp_path, capsys):
    rng = np.random.default_rng(0)
    head = "@problemName Waves\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true up down\n@data\n"
    for part, n in (("TRAIN", 24), ("TEST", 8)):
        lines = []
        for i in range(n):
            T = int(rng.integers(5, 12))
            sign = 1 if i % 2 == 0 else -1
            a = ",".join(f"{sign * t / T + 0.1 * rng.standard_normal():.3f}" for t in range(T))
            b = ",".join(f"{rng.standard_normal():.3f}" for _ in range(T))
            lines.append(f"{a}:{b}:{'up' if sign > 0 else 'down'}")
        (tmp_path / f"Waves_{part}.ts").write_text(head + "\n".join(lines) + "\n")
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                "lstm",
                "--layers",
                "2",
                "--bidirectional",
                "--data",
                str(tmp_path / "Waves_TRAIN.ts"),
                "--out",
                str(run),
                "--json",
                *TINY,
            ]
        )
        == 0
    )
    assert main(["evaluate", str(run), "--json"]) == 0
    e = _json_out(capsys)
    assert e["n"] == 8 and set(e["per_class_accuracy"]) <= {"up", "down"}
    assert main(["predict", str(run), str(tmp_path / "Waves_TEST.ts"), "--json"]) == 0
    p = _json_out(capsys)
    assert len(p) == 8 and p[0]["label"] in ("up", "down") and p[0]["true_label"] == "up"


def test_text_train_generate_predict(tmp_path, capsys):
    book = tmp_path / "book.txt"
    book.write_text("to be or not to be, that is the question.\n" * 40)
    run = tmp_path / "lm"
    assert (
        main(["train", "--model", "lstm", "--data", str(book), "--length", "20", "--out", str(run), "--json", *TINY])
        == 0
    )
    _json_out(capsys)
    assert main(["generate", str(run), "--prompt", "to be", "--length", "30", "--temperature", "0.8", "--json"]) == 0
    g = _json_out(capsys)
    assert g["text"].startswith("to be") and len(g["sample"]) == 30 and set(g["sample"]) <= set(book.read_text())
    assert main(["generate", str(run), "--prompt", "to be", "--length", "30", "--temperature", "0.8", "--json"]) == 0
    assert _json_out(capsys)["sample"] == g["sample"]  # seeded
    assert main(["generate", str(run), "--prompt", "xyz!", "--length", "5"]) == 2
    assert "lacks" in capsys.readouterr().err
    (tmp_path / "q.txt").write_text("to be or not to b")
    assert main(["predict", str(run), str(tmp_path / "q.txt"), "--json"]) == 0
    assert len(_json_out(capsys)[0]["top_k"]) == 3


def test_generate_refuses_a_non_text_run(tmp_path, capsys):
    run = tmp_path / "add"
    assert (
        main(
            [
                "train",
                "--model",
                "gru",
                "--data",
                "adding",
                "--length",
                "5",
                "--n-train",
                "16",
                "--n-test",
                "4",
                "--out",
                str(run),
                *TINY,
            ]
        )
        == 0
    )
    assert main(["generate", str(run), "--prompt", "a"]) == 2
    assert "not a character-level language model" in capsys.readouterr().err


def test_images_default_to_rows_and_sequence_modes(tmp_path, idx_dir, capsys):
    run = tmp_path / "rows"
    assert (
        main(
            [
                "train",
                "--model",
                "article-lstm",
                "--data",
                str(idx_dir),
                "--out",
                str(run),
                "--json",
                "--epochs",
                "5",
                "--quiet",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    # reading rows, the LSTM finds the bar (measured after 5 epochs: 0.86-0.89 over seeds 0-2; 1 epoch: 0.07-0.17,
    # chance 0.1), and the printed accuracy is the last epoch's in metrics.csv
    accuracy = _json_out(capsys)["test_accuracy"]
    assert accuracy > 0.5
    assert [int(r["epoch"]) for r in _metrics(run)] == [1, 2, 3, 4, 5]
    assert accuracy == float(_metrics(run)[-1]["test_accuracy"])
    info = json.loads((run / "run.json").read_text())
    # no --sequence: a recurrent model gets the images read as rows (28 steps of 28 pixels), by the data side
    assert info["dataset"]["input_shape"] == [28, 28]
    assert info["input_spec"]["sequence"] == "rows" and info["input_spec"]["image_shape"] == [1, 28, 28]
    from layerlab import api
    from layerlab.config import RunConfig

    cfg = RunConfig()
    cfg.data.name, cfg.data.sequence = str(idx_dir), "permuted"
    ds = api.prepare_data(cfg)
    assert ds.input_shape == (784, 1) and ds.spec.sequence == "permuted"


@pytest.mark.parametrize("task,model", [("adding", "residual"), ("copy", "gru")])
def test_run_task_gives_what_layerlab_train_gives(tmp_path, task, model):
    """layerlab.experiments.run_adding / run_copy (what `layerlab claims` calls) train as the CLI
    does: the same per-epoch numbers, and the caller's thread count is left alone."""
    import torch

    from layerlab.experiments import run_adding, run_copy

    budget = {"hidden": 8, "n_train": 64, "n_test": 16, "epochs": 2, "batch_size": 16, "lr": 0.01, "seed": 3}
    run = tmp_path / "run"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in budget.items()]
    argv = ["train", "--model", model, "--data", task, "--length", "6", *flags, "--clip", "1", "--threads", "1"]
    assert main([*argv, "--out", str(run), "--quiet"]) == 0
    threads = torch.get_num_threads()
    r = (run_adding if task == "adding" else run_copy)(model, 6, **budget)
    assert torch.get_num_threads() == threads
    key = "test_loss" if task == "adding" else "test_accuracy"
    assert r["per_epoch"] == [float(row[key]) for row in _metrics(run)]
    assert r["metric"] == ("mse" if task == "adding" else "accuracy") and r["final"] == r["per_epoch"][-1]
    assert r["parameters"] == json.loads((run / "run.json").read_text())["model"]["parameters"]
