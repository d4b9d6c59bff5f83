import json

import pytest
import torch
from safetensors.torch import load_file

from datagen import make_idx_dir, save_png
from layerlab import api
from layerlab.config import RunConfig
from layerlab.errors import LayerlabError, TrainingError
from layerlab.rundir import RunDir


def _cfg(data, epochs=2, **train):
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.train.epochs = epochs
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def test_run_directory_contents(trained_run):
    run = RunDir(trained_run)
    info = run.info()
    assert info["status"] == "completed" and info["model"]["parameters"] == 34_826
    assert info["environment"]["torch"] == torch.__version__ and info["seed"] == 0 and info["device"] == "cpu"
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"train_loss", "test_accuracy", "train_seconds", "eval_seconds"} <= set(rows[0])
    assert run.config().train.lr == 1e-3 and run.config().train.eps == 1e-7
    # one checkpoint directory, named by the pointer; no best without a validation split
    (current,) = [p for p in run.ckpt_dir.iterdir() if p.is_dir()]
    assert json.loads((run.ckpt_dir / "current.json").read_text()) == {"dir": current.name, "epoch": 2, "step": 0}
    assert sorted(p.name for p in current.iterdir()) == ["last.safetensors", "state.pt"]
    assert run.weights("last") == current / "last.safetensors"
    assert not list(run.path.rglob("*.tmp")) and not list(run.path.rglob(".tmp-*"))  # no temporaries
    assert not (run.path / "lock").exists()  # released at the end
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["wall_seconds"] > 0


def test_tiny_training_learns_and_evaluates(trained_run):
    r = api.evaluate_run(trained_run)
    assert r["n"] == 100 and r["accuracy"] >= 0.9, r
    assert set(r["per_class_accuracy"]) <= {str(i) for i in range(10)}


def test_predict_png_files(trained_run, tmp_path):
    import numpy as np

    img = np.zeros((28, 28), dtype=np.uint8)
    img[2 * 4 + 3 : 2 * 4 + 5, 4:24] = 255  # a class-4 bar
    p = save_png(tmp_path / "four.png", img)
    big = np.zeros((56, 56, 3), dtype=np.uint8)
    big[2 * (2 * 7 + 3) : 2 * (2 * 7 + 5), 8:48] = 255  # a class-7 bar at twice the size, in colour
    q = save_png(tmp_path / "seven.png", big)
    out = api.predict_files(trained_run, [p, q], top_k=3)
    assert [o["label"] for o in out] == ["4", "7"]
    assert len(out[0]["top_k"]) == 3 and out[0]["top_k"][0]["probability"] == out[0]["probability"]
    assert sum(t["probability"] for t in out[0]["top_k"]) <= 1 + 1e-6
    assert out[0]["notes"] == [] and any("resized" in n for n in out[1]["notes"])


def test_resume_is_exact(tmp_path):
    data = make_idx_dir(tmp_path / "d", n_train=96, n_test=32)
    full, _ = api.train(_cfg(data, epochs=2), tmp_path / "full")
    half, _ = api.train(_cfg(data, epochs=1), tmp_path / "half")
    resumed, result = api.resume(half.path, epochs=2)
    assert [r["epoch"] for r in result.history] == [1, 2]
    a = load_file(str(full.weights("last")))
    b = load_file(str(resumed.weights("last")))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    fm, rm = full.metrics(), resumed.metrics()
    assert fm[1]["train_loss"] == rm[1]["train_loss"]
    assert resumed.info()["status"] == "completed" and resumed.info()["resumed_from_epoch"] == 1


def test_resume_needs_more_epochs(trained_run):
    with pytest.raises(LayerlabError, match="already trained 2 epochs"):
        api.resume(trained_run)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_run(tmp_path):
    from layerlab.data import load_dataset

    data = make_idx_dir(tmp_path / "d", n_train=64, n_test=32)
    ds = load_dataset(str(data))
    ds.train.x[5, 0, 3, 3] = float("nan")  # one corrupt pixel poisons the loss
    with pytest.raises(TrainingError, match=r"loss became nan.*; no checkpoint was written"):
        api.train(_cfg(data, epochs=3), tmp_path / "run", dataset=ds)
    info = RunDir(tmp_path / "run").info()
    assert info["status"] == "failed" and "nan" in info["error"]


def test_existing_run_dir_is_not_overwritten(trained_run, tmp_path):
    before = (trained_run / "run.json").read_text()
    with pytest.raises(LayerlabError, match="already exists"):
        api.train(_cfg(tmp_path / "anything"), trained_run)  # refused before the data is even read
    assert (trained_run / "run.json").read_text() == before


def test_evaluate_rejects_data_of_another_shape(trained_run, tmp_path):
    import numpy as np

    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            save_png(tmp_path / "imgs" / cls / f"{i}.png", np.zeros((10, 10, 3)))
    with pytest.raises(LayerlabError, match=r"samples of shape \(3, 10, 10\)"):
        api.evaluate_run(trained_run, data=str(tmp_path / "imgs"))


def test_validation_split_is_recorded(tmp_path):
    data = make_idx_dir(tmp_path / "d", n_train=100, n_test=20)
    cfg = _cfg(data, epochs=1)
    cfg.data.validation = 0.25
    run, _ = api.train(cfg, tmp_path / "run")
    assert run.info()["dataset"]["n_train"] == 75 and run.info()["dataset"]["n_test"] == 25
    assert run.info()["selection"] == "validation" and set(run.info()["data_fingerprint"]) == {"train", "validation"}


def test_nan_test_loss_fails_the_run_and_says_which_checkpoint_is_kept(tmp_path):
    """Old code ended such a run ``completed``: a NaN test loss was never checked."""
    from layerlab.data import load_dataset

    data = make_idx_dir(tmp_path / "d", n_train=64, n_test=32)
    ds = load_dataset(str(data))
    ds.test.x[3, 0, 5, 5] = float("inf")
    with pytest.raises(TrainingError, match=r"the test loss became nan after epoch 1 .*; no checkpoint was written"):
        api.train(_cfg(data, epochs=2), tmp_path / "run", dataset=ds)
    info = RunDir(tmp_path / "run").info()
    assert info["status"] == "failed" and "test loss became nan" in info["error"]


def test_nan_after_a_checkpoint_names_the_epoch_kept(tmp_path, monkeypatch):
    from layerlab.data import load_dataset
    from layerlab.training import loop as engine

    data = make_idx_dir(tmp_path / "d", n_train=64, n_test=32)
    ds = load_dataset(str(data))
    real = engine.evaluate
    calls = []

    def poisoned_second_epoch(*a, **kw):
        calls.append(1)
        row = real(*a, **kw)
        return {k: (float("nan") if k.endswith("loss") and len(calls) == 2 else v) for k, v in row.items()}

    monkeypatch.setattr(engine, "evaluate", poisoned_second_epoch)
    with pytest.raises(TrainingError, match="the checkpoint of epoch 1 is kept"):
        api.train(_cfg(data, epochs=3), tmp_path / "run", dataset=ds)
    run = RunDir(tmp_path / "run")
    assert run.info()["status"] == "failed" and run.training_state()["epoch"] == 1
    assert [r["epoch"] for r in run.metrics()] == [1]
