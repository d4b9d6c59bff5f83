"""MNIST-1D as a named set: generated offline with the mnist1d package (never downloaded), cached as
an .npz so it is made once, the same every time; trained on, evaluated and predicted on through the
CLI; one sentence when the package is missing. And the fully connected models its table needs
(``mlp``, ``linear``)."""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest
import torch

import layerlab
from layerlab.cli import main
from layerlab.data import catalog
from layerlab.data.formats import mnist1d
from layerlab.errors import ConfigError, DataError
from layerlab.models import create_model, list_models
from layerlab.rundir import RunDir


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The package's MNIST-1D generated once for this module, as a --data-dir holding the cache file."""
    pytest.importorskip("mnist1d")
    root = tmp_path_factory.mktemp("mnist1d-data")
    arrays, made_by = mnist1d.generate()
    mnist1d.write_cache(root / mnist1d.FILENAME, arrays, made_by)
    return root, arrays


def no_package(monkeypatch):
    """Make ``import mnist1d`` fail, as where the package is not installed."""
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)


def test_generated_on_first_use_into_the_cache_then_read_from_it(monkeypatch):
    pytest.importorskip("mnist1d")
    random.seed(1)
    np.random.seed(1)
    py_next, np_next = random.random(), np.random.rand()
    random.seed(1)
    np.random.seed(1)
    ds = layerlab.load_dataset("mnist-1d")
    # the package seeds the global generators; a caller's streams are left where they were
    assert (random.random(), np.random.rand()) == (py_next, np_next)
    cached = catalog.cache_root() / "mnist-1d" / mnist1d.FILENAME
    assert cached.is_file() and ds.source == str(cached)
    assert ds.name == "mnist-1d" and ds.task == "classification"
    assert ds.train.x.shape == (4000, 40, 1) and ds.test.x.shape == (1000, 40, 1)
    assert ds.train.x.dtype == torch.float32 and ds.train.lengths is None
    assert ds.classes == [str(i) for i in range(10)] and ds.num_outputs == 10
    assert torch.bincount(ds.train.y, minlength=10).min() > 350  # about 400 of every digit
    assert ds.spec.kind == "sequence" and ds.spec.shape == (40, 1) and ds.spec.head == "last"
    assert abs(ds.spec.feature_mean[0]) < 0.05 and abs(ds.spec.feature_std[0] - 1) < 0.05
    assert ds.meta["generated_by"]["args"]["seed"] == 42
    assert ds.meta["paper_accuracy"]["CNN"] == 0.94
    # made once: a second load reads the file, without the package
    no_package(monkeypatch)
    again = layerlab.load_dataset("mnist1d")  # an alias
    assert torch.equal(again.train.x, ds.train.x) and torch.equal(again.test.y, ds.test.y)


def test_deterministic_the_packages_default_split(generated):
    root, arrays = generated
    second, made_by = mnist1d.generate()
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(arrays[k], second[k]), k
    assert made_by["args"]["num_samples"] == 5000 and made_by["args"]["train_split"] == 0.8
    assert made_by["package"].startswith("mnist1d ")
    ds = layerlab.load_dataset("mnist-1d", data_dir=root)
    assert ds.source == str(root / mnist1d.FILENAME)
    np.testing.assert_array_equal(ds.train.y.numpy(), arrays["y_train"])
    # standardised with the training statistics, which the spec records for predict
    mean, std = ds.spec.feature_mean[0], ds.spec.feature_std[0]
    np.testing.assert_allclose(ds.test.x[:, :, 0].numpy(), (arrays["x_test"] - mean) / std, atol=1e-5)


def test_subset_and_flags_it_does_not_take(generated):
    root, _ = generated
    ds = layerlab.load_dataset("mnist-1d", data_dir=root, n_train=100, n_test=50)
    assert (len(ds.train), len(ds.test)) == (100, 50)
    with pytest.raises(DataError, match="mnist-1d has no length to set"):
        layerlab.load_dataset("mnist-1d", data_dir=root, length=20)
    with pytest.raises(DataError, match="already sequence data"):
        layerlab.load_dataset("mnist-1d", data_dir=root, sequence="rows")


def test_missing_package_is_one_sentence(monkeypatch, capsys, tmp_path):
    no_package(monkeypatch)
    with pytest.raises(DataError) as e:
        layerlab.load_dataset("mnist-1d")
    msg = str(e.value)
    assert msg == "mnist-1d is generated with the mnist1d package: pip install 'layerlab[mnist1d]'"
    assert not (catalog.cache_root() / "mnist-1d" / mnist1d.FILENAME).exists()
    assert main(["train", "--data", "mnist-1d", "--model", "gru", "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == f"layerlab: error: {msg}\n"


def test_data_list_shows_it(monkeypatch, capsys):
    assert main(["data", "list"]) == 0
    assert "mnist-1d" in capsys.readouterr().out
    monkeypatch.setattr(catalog, "find_spec", lambda name: None)
    assert catalog.known_datasets()["mnist-1d"].endswith("pip install 'layerlab[mnist1d]'")


def test_a_damaged_cache_is_one_sentence(tmp_path):
    (tmp_path / mnist1d.FILENAME).write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"not a readable mnist-1d cache .*delete it") as e:
        layerlab.load_dataset("mnist-1d", data_dir=tmp_path)
    assert "\n" not in str(e.value)
    np.savez(tmp_path / mnist1d.FILENAME, x_train=np.zeros((3, 7)), y_train=np.zeros(3, int), x_test=np.zeros((2, 7)))
    with pytest.raises(DataError, match="not a readable"):  # y_test missing
        layerlab.load_dataset("mnist-1d", data_dir=tmp_path)
    z = {"x_train": np.zeros((3, 7)), "y_train": np.zeros(3, int), "x_test": np.zeros((2, 7)), "y_test": np.zeros(2)}
    np.savez(tmp_path / mnist1d.FILENAME, **z)
    with pytest.raises(DataError, match=r"are not mnist-1d's \(N, 40\)"):
        layerlab.load_dataset("mnist-1d", data_dir=tmp_path)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_train_evaluate_predict_on_a_subset(generated, tmp_path, capsys):
    root, arrays = generated
    common = ["--data", "mnist-1d", "--data-dir", root, "--n-test", 100, "--batch-size", 50, "--threads", 1]
    gru, cnn = tmp_path / "gru", tmp_path / "cnn"
    run_cli(capsys, "train", "--model", "gru", "--hidden", 8, "--epochs", 1, "--n-train", 300, *common, "--out", gru)
    run_cli(
        capsys,
        *["train", "--model", "cnn", "--channels", "16,M,32", "--padding", "same", "--global-pool", "avg"],
        *["--epochs", 5, "--lr", 0.01, "--n-train", 1000, *common, "--out", cnn, "--quiet"],
    )
    info = json.loads((cnn / "run.json").read_text())
    assert info["input_spec"]["kind"] == "sequence" and info["input_spec"]["shape"] == [40, 1]
    assert info["dataset"]["n_train"] == 1000 and info["dataset"]["num_outputs"] == 10
    r = json.loads(run_cli(capsys, "evaluate", cnn, "--json"))
    assert r["n"] == 100 and r["accuracy"] > 0.25  # 5 epochs on 1000 samples: about 0.5, chance is 0.1
    # raw values as the package makes them: an .npy of N sequences (N, 40), a CSV row per sequence
    np.save(tmp_path / "three.npy", arrays["x_test"][:3])
    np.savetxt(tmp_path / "one.csv", arrays["x_test"][3:4], delimiter=",")
    for run in (gru, cnn):
        preds = json.loads(run_cli(capsys, "predict", run, tmp_path / "three.npy", tmp_path / "one.csv", "--json"))
        assert [p["file"] for p in preds] == [f"{tmp_path / 'three.npy'}[{i}]" for i in range(3)] + [
            str(tmp_path / "one.csv")
        ]
        assert all(p["label"] in mnist1d.CLASSES for p in preds)
    # predict reads a file exactly as training read the test set
    model = RunDir(cnn).model("last")
    ds = layerlab.load_dataset("mnist-1d", data_dir=root, n_test=4)
    with torch.no_grad():
        want = torch.softmax(model(ds.test.x), -1).max(-1).values.tolist()
    assert [p["probability"] for p in preds] == pytest.approx(want, abs=1e-5)


# ----------------------------------------------------------------------------------------------
# mlp and linear
# ----------------------------------------------------------------------------------------------
def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_mlp_and_linear_are_registered_with_the_papers_sizes():
    assert {"mlp", "linear"} <= set(list_models())
    # MNIST-1D's paper: logistic regression 410 parameters, its MLP (2 x 100 hidden) 15,210
    assert n_params(create_model("linear", (40, 1), 10)) == 410
    assert n_params(create_model("mlp", (40, 1), 10)) == 15_210
    m = create_model("mlp", (3, 8, 8), 4, hidden=16, layers=3, dropout=0.5)
    assert m(torch.randn(5, 3, 8, 8)).shape == (5, 4)
    assert sum(isinstance(x, torch.nn.Linear) for x in m.modules()) == 4


def test_mlp_sequences_padding_does_not_change_the_result():
    torch.manual_seed(0)
    m = create_model("mlp", (10, 2), 3, hidden=8).eval()
    x = torch.randn(3, 10, 2)
    lengths = torch.tensor([10, 6, 3])
    padded = x.clone()
    padded[1, 6:] = 5.0  # garbage past the length
    padded[2, 3:] = -7.0
    out = m(padded, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = m(x[i : i + 1, :n])  # shorter than built: padded with zeros
        torch.testing.assert_close(out[i : i + 1], alone)
    with pytest.raises(DataError, match="at most 10 steps"):
        m(torch.randn(1, 11, 2))


def test_mlp_refusals_are_one_sentence():
    with pytest.raises(ConfigError, match="token ids"):
        create_model("mlp", (20,), 5)
    with pytest.raises(ConfigError, match="--layers of at least 0"):
        create_model("mlp", (4, 2), 3, layers=-1)
    with pytest.raises(ConfigError, match="does not take hidden"):
        create_model("linear", (4, 2), 3, hidden=8)
    with pytest.raises(ConfigError, match="parameters; at most"):
        create_model("mlp", (100_000, 100), 3, hidden=1000)
