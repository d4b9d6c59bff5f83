"""Every command's happy path and its bad-input path, through ``layerlab.cli.main`` as a user
would call it: exit code 0, or 2 with one sentence on stderr and no traceback."""

import json
import subprocess
import sys

import numpy as np
import pytest

from datagen import make_idx_dir, save_png
from layerlab.cli import main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_bad_input(code, err, *fragments):
    assert code == 2
    assert err.startswith("layerlab: error: ") and err.count("\n") == 1 and "Traceback" not in err
    for f in fragments:
        assert f in err, err


def test_train_evaluate_predict_happy_path(capsys, tmp_path):
    data = make_idx_dir(tmp_path / "bars", n_train=200, n_test=60)
    run = tmp_path / "run"
    code, out, _ = run_cli(
        capsys,
        "train",
        "--model",  # named: with --data alone, train chooses a model for the data (layerlab.defaults)
        "article-cnn",
        "--data",
        data,
        "--epochs",
        2,
        "--batch-size",
        16,
        "--lr",
        0.002,
        "--seed",
        3,
        "--device",
        "cpu",
        "--out",
        run,
    )
    assert code == 0 and "test accuracy" in out and str(run) in out
    assert "epoch 2" in out
    code, out, _ = run_cli(capsys, "evaluate", run, "--json")
    r = json.loads(out)
    assert code == 0 and {"accuracy", "loss", "n"} <= set(r) and r["n"] == 60 and r["accuracy"] > 0.8
    code, out, _ = run_cli(capsys, "evaluate", run)
    assert code == 0 and "accuracy" in out and "per" not in out.splitlines()[0]
    img = np.zeros((28, 28), dtype=np.uint8)
    img[5:7, 4:24] = 255  # class 1
    png = save_png(tmp_path / "one.png", img)
    code, out, _ = run_cli(capsys, "predict", run, png, "--top-k", 2, "--json")
    (p,) = json.loads(out)
    assert code == 0 and p["file"] == str(png) and p["label"] == "1" and p["index"] == 1 and len(p["top_k"]) == 2
    code, out, _ = run_cli(capsys, "predict", run, png)
    assert code == 0 and "one.png: 1 (" in out


def test_train_with_config_file_and_json_summary(capsys, tmp_path):
    data = make_idx_dir(tmp_path / "bars", n_train=64, n_test=32)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\nname = "{data}"\n[model]\nname = "cnn"\nchannels = "8,M"\n[train]\nepochs = 1\n')
    code, out, _ = run_cli(capsys, "train", "--config", cfg, "--out", tmp_path / "r", "--json", "--quiet")
    summary = json.loads(out)
    assert code == 0 and summary["epochs"] == 1 and summary["model"] == "cnn"
    assert 'channels = "8,M"' in (tmp_path / "r" / "config.toml").read_text()


def test_models_and_data_list(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and "article-cnn" in out
    make_idx_dir(tmp_path / "fashion-mnist", n_train=10, n_test=10)
    code, out, _ = run_cli(capsys, "data", "list", "--json", "--data-dir", tmp_path)
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["fashion-mnist"]["available"] and not rows["cifar10"]["available"]
    code, out, _ = run_cli(capsys, "data", "list")
    assert code == 0 and "kmnist" in out


def test_missing_data_is_one_sentence(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--data", "mnist", "--data-dir", tmp_path, "--out", tmp_path / "r")
    assert_bad_input(code, err, "dataset 'mnist' not found", str(tmp_path))
    assert not (tmp_path / "r").exists()


def test_corrupt_data_file(capsys, tmp_path):
    data = make_idx_dir(tmp_path / "bars", n_train=20, n_test=10, gz=False)
    (data / "train-images-idx3-ubyte").write_bytes((data / "train-images-idx3-ubyte").read_bytes()[:5000])
    code, _, err = run_cli(capsys, "train", "--data", data, "--out", tmp_path / "r")
    assert_bad_input(code, err, "train-images-idx3-ubyte: truncated")


def test_unknown_model(capsys, tmp_path):
    data = make_idx_dir(tmp_path / "bars", n_train=20, n_test=10)
    code, _, err = run_cli(capsys, "train", "--data", data, "--model", "transformer", "--out", tmp_path / "r")
    assert_bad_input(code, err, "unknown model 'transformer'", "article-cnn")


def test_bad_config_key(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nepoch = 3\n")
    code, _, err = run_cli(capsys, "train", "--config", cfg)
    assert_bad_input(code, err, "unknown key 'epoch'", "epochs")


def test_predict_on_a_file_that_is_not_an_image(capsys, trained_run, tmp_path):
    bad = tmp_path / "data.png"
    bad.write_bytes(b"%PDF-1.4 definitely not a png")
    code, _, err = run_cli(capsys, "predict", trained_run, bad)
    assert_bad_input(code, err, "data.png: not an image")
    code, _, err = run_cli(capsys, "predict", trained_run, tmp_path / "missing.png")
    assert_bad_input(code, err, "missing.png: no such file")


def test_evaluate_something_that_is_not_a_run(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", tmp_path)
    assert_bad_input(code, err, "not a run directory")
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "nope")
    assert_bad_input(code, err, "no such run directory")


def test_corrupt_checkpoint(capsys, trained_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    from layerlab.rundir import RunDir

    RunDir(copy).weights("last").write_bytes(b"garbage")
    code, _, err = run_cli(capsys, "evaluate", copy)
    assert_bad_input(code, err, "last.safetensors: not a readable safetensors checkpoint")


def test_cuda_requested_without_gpu(capsys, tmp_path):
    data = make_idx_dir(tmp_path / "bars", n_train=20, n_test=10)
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, _, err = run_cli(capsys, "train", "--data", data, "--device", "cuda", "--out", tmp_path / "r")
    assert_bad_input(code, err, "no CUDA GPU")


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["train", "--help"],
        ["evaluate", "--help"],
        ["predict", "--help"],
        ["generate", "--help"],
        ["data", "list", "--help"],
        ["models", "--help"],
        ["inspect", "summary", "--help"],
        ["compare-cells", "--help"],
        ["report", "--help"],
    ],
)
def test_every_command_has_help(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0 and "usage: layerlab" in capsys.readouterr().out


@pytest.mark.slow
def test_console_script_and_module_entry_points(tmp_path):
    r = subprocess.run([sys.executable, "-m", "layerlab", "models"], capture_output=True, text=True)
    assert r.returncode == 0 and "article-cnn" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "layerlab", "evaluate", str(tmp_path / "x")], capture_output=True, text=True
    )
    assert r.returncode == 2 and r.stderr.strip().startswith("layerlab: error:")


def test_evaluate_per_sample(capsys, trained_run):
    code, out, _ = run_cli(capsys, "evaluate", trained_run, "--per-sample", "--json")
    r = json.loads(out)
    assert code == 0 and len(r["predictions"]) == r["n"] == 100
    p = r["predictions"][0]
    assert set(p) == {"index", "true", "predicted", "probability"} and p["index"] == 0 and 0 < p["probability"] <= 1
    code, out, _ = run_cli(capsys, "evaluate", trained_run, "--per-sample")
    lines = out.splitlines()
    header = lines.index("index,true,predicted,probability")
    rows = lines[header + 1 :]
    assert code == 0 and len(rows) == 100 and rows[0].startswith(f"0,{p['true']},{p['predicted']},")


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "{run}"],
        ["predict", "{run}", "x.png"],
        ["generate", "{run}"],
        ["inspect", "filters", "{run}"],
        ["inspect", "features", "{run}", "x.png"],
        ["inspect", "errors", "{run}"],
        ["inspect", "gradflow", "{run}"],
        ["report", "{run}"],
    ],
)
def test_weights_choices_include_init(command):
    from layerlab.cli import build_parser

    args = build_parser().parse_args([*command, "--weights", "init"])
    assert args.weights == "init"


@pytest.mark.parametrize(
    "result, line",
    [
        (
            {
                "kind": "class",
                "label": "3",
                "probability": 0.9,
                "index": 3,
                "top_k": [
                    {"index": 3, "label": "3", "probability": 0.9},
                    {"index": 1, "label": "1", "probability": 0.05},
                ],
            },
            "f: 3 (0.900)   top-2: 3 0.900, 1 0.050",
        ),
        (
            {
                "kind": "next",
                "label": "e",
                "probability": 0.5,
                "index": 2,
                "top_k": [
                    {"index": 2, "label": "e", "probability": 0.5},
                    {"index": 0, "label": " ", "probability": 0.25},
                ],
            },
            "f: next character 'e' 0.500, ' ' 0.250",
        ),
        ({"kind": "value", "value": 0.123456789}, "f: 0.123457"),
        ({"kind": "values", "values": [0.5] * 21}, "f: " + " ".join(["0.5"] * 20) + " ..."),
        ({"kind": "steps", "labels": ["a", "b"], "true_label": "up"}, "f: a b   (file says up)"),
    ],
)
def test_prediction_lines_by_kind(result, line):
    from layerlab.cli.run import prediction_line

    assert prediction_line({"file": "f", "notes": [], **result}) == line


def test_every_command_module_registers():
    """The command groups are modules of one package, all always present (no optional imports)."""
    from layerlab.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {
        "train",
        "evaluate",
        "predict",
        "generate",
        "data",
        "models",
        "presets",
        "inspect",
        "compare-cells",
        "report",
        "export",
        "claims",
        "tune",
        "explore",
        "lr-find",
    }
