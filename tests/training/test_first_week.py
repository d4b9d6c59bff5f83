"""A practitioner's first week: splits named for what they are, a finished schedule not restarted
without a word, soft and multi-label targets, an open recipe (optimizers, losses, class weights and
metrics by name), callbacks from the command line and on resume, fine-tuning, save and load."""

from __future__ import annotations

import json

import numpy as np
import pytest

import layerlab
from datagen import bar_images
from layerlab import api
from layerlab.cli import main
from layerlab.errors import LayerlabError


@pytest.fixture(scope="module")
def bars():
    rng = np.random.default_rng(0)
    x, y = bar_images(200, rng, classes=4, cover=True)
    xt, yt = bar_images(60, rng, classes=4)
    return x, y, xt, yt


@pytest.fixture(scope="module")
def split_run(bars, tmp_path_factory):
    """fit with a validation split and no test data: a run with no test set."""
    x, y, _, _ = bars
    out = tmp_path_factory.mktemp("week") / "run"
    layerlab.fit("cnn", x, y, validation_split=0.2, epochs=2, verbose=0, channels="4,M", run_dir=out)
    return out


# ----------------------------------------------------------------------------------------------
# Splits named for what they are
# ----------------------------------------------------------------------------------------------
def test_a_run_without_test_data_is_never_evaluated_as_a_test_set(split_run, capsys):
    info = json.loads((split_run / "run.json").read_text())
    assert info["test_set"] is False and info["selection"] == "validation"
    assert main(["evaluate", str(split_run), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["split"] == "validation" and r["weights"] == "best" and r["chose_weights"] is True
    assert r["n"] == 40 and "no test set" in r["note"] and "--data" in r["note"]
    assert main(["evaluate", str(split_run)]) == 0
    text = capsys.readouterr().out
    assert "40 validation samples" in text and "no test set" in text and " test samples" not in text
    last = api.evaluate_run(split_run, which="last")
    assert last["split"] == "validation" and last["chose_weights"] is False


def test_a_run_with_a_test_set_says_test(tmp_path, capsys):
    from datagen import make_idx_dir

    data = make_idx_dir(tmp_path / "idx", n_train=120, n_test=40)
    out = tmp_path / "run"
    flags = ["--data", str(data), "--model", "cnn", "--channels", "4,M", "--epochs", "1", "--validation", "0.2"]
    assert main(["train", *flags, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert json.loads((out / "run.json").read_text())["test_set"] is True
    r = api.evaluate_run(out)
    assert r["split"] == "test" and r["n"] == 40 and "note" not in r


def test_evaluate_a_run_on_data_the_user_names(split_run, bars, tmp_path, capsys):
    _, _, xt, yt = bars
    f = tmp_path / "held_out.npz"
    np.savez(f, x_train=xt[:, None], y_train=yt, x_test=xt[:, None], y_test=yt)
    assert main(["evaluate", str(split_run), "--data", str(f), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["split"] == "test" and r["n"] == 60 and "note" not in r
    model_only = layerlab.evaluate(split_run, xt, yt)
    assert model_only["accuracy"] == pytest.approx(r["accuracy"])


def test_the_report_never_calls_the_selecting_split_a_test_set(split_run):
    from layerlab.inspect.report import write_report

    page = write_report(split_run, probes=1).read_text()
    assert "Test-set evaluation" not in page
    assert "Validation-split evaluation" in page and "no test set" in page


# ----------------------------------------------------------------------------------------------
# A finished schedule is not restarted without a word
# ----------------------------------------------------------------------------------------------
def test_extending_a_finished_onecycle_run_says_how_to_continue(tmp_path, capsys):
    from datagen import make_idx_dir
    from layerlab.config import RunConfig
    from layerlab.rundir import RunDir

    data = make_idx_dir(tmp_path / "d", n_train=64, n_test=16)
    cfg = RunConfig()
    cfg.data.name, cfg.model.name, cfg.model.channels = str(data), "cnn", "4,M"
    cfg.train.epochs, cfg.train.batch_size, cfg.train.schedule = 2, 16, "onecycle"
    run, result = api.train(cfg, tmp_path / "run")
    end = result.history[-1]["lr"]
    assert end < 1e-6
    with pytest.raises(LayerlabError, match=r"onecycle schedule over its 2 epochs.*--extend-lr LR"):
        api.resume(run.path, epochs=3)
    assert main(["train", "--resume", str(run.path), "--epochs", "3", "--quiet"]) == 2
    assert "--extend-lr" in capsys.readouterr().err
    assert RunDir(run.path).info()["status"] == "completed"  # the refusal changed nothing
    assert main(["train", "--resume", str(run.path), "--epochs", "3", "--extend-lr", "1e-4", "--quiet"]) == 0
    rows = RunDir(run.path).metrics()
    assert [r["lr"] for r in rows[:2]] == [r["lr"] for r in result.history]
    assert rows[2]["lr"] == pytest.approx(1e-4)
    saved = RunDir(run.path).config().train
    assert (saved.schedule_epochs, saved.extend_lr, saved.epochs) == (2, 1e-4, 3)
    _, more = api.resume(run.path, epochs=4)  # extended once: the added epochs go on at that rate
    assert more.history[-1]["lr"] == pytest.approx(1e-4)
    with pytest.raises(LayerlabError, match=r"already extended at the constant rate 0\.0001"):
        api.resume(run.path, epochs=5, extend_lr=1e-3)


# ----------------------------------------------------------------------------------------------
# Probability and multi-label targets: never a silent regression
# ----------------------------------------------------------------------------------------------
def test_target_kind_of_two_dimensional_targets():
    from layerlab.labels import target_kind

    assert target_kind(np.eye(3)[[0, 1, 2, 1]]) == "one-hot"
    assert target_kind(np.array([[0.7, 0.3], [0.1, 0.9]], dtype=np.float32)) == "probabilities"
    assert target_kind(np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0]])) == "multi-label"
    assert target_kind(np.array([[0.5, 0.2], [0.1, 0.1]])) == "regression"
    assert target_kind(np.array([[2.0, -1.0], [0.1, 3.0]])) == "regression"
    assert target_kind(np.array([[2, 3], [1, 1]])) is None
    assert target_kind(np.zeros(4)) is None


def test_probability_targets_train_a_classifier_with_soft_cross_entropy(bars, caplog):
    x, y, xt, yt = bars
    soft = (0.9 * np.eye(4)[y] + 0.025).astype(np.float32)  # rows sum to 1: label-smoothed targets
    with caplog.at_level("WARNING"):
        h = layerlab.fit("cnn", x, soft, validation_split=0.2, epochs=3, verbose=0, channels="4,M", lr=3e-3)
    assert "soft-target cross-entropy" in caplog.text
    assert h.task == "classification" and h.num_outputs == 4
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(h.history)
    ev = layerlab.evaluate(h, xt, yt)
    assert ev["accuracy"] > 0.5 and len(ev["confusion"]) == 4
    probs = layerlab.predict(h, xt)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_soft_cross_entropy_is_the_expected_value():
    import torch

    from layerlab.training.metrics import batch_stats, compute_loss, compute_metrics

    out = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([[0.8, 0.2, 0.0], [0.0, 0.5, 0.5]])
    want = -(y * torch.log_softmax(out, -1)).sum(-1).mean()
    assert float(compute_loss("classification", out, y)) == pytest.approx(float(want))
    assert batch_stats("classification", out, y, want)[1] == 2  # both rows' likeliest class predicted
    assert compute_metrics("classification", out, y)["accuracy"] == 1.0


def test_multi_label_targets_train_a_sigmoid_head_with_multi_label_metrics(bars, caplog):
    x, y, xt, yt = bars
    # label 0: the bar is in the upper half; labels 1..3: the class is k (several labels or none per row)
    multi = np.stack([y < 2, y == 1, y == 2, y == 3], axis=1).astype(np.int64)
    assert (multi.sum(1) != 1).any()
    with caplog.at_level("WARNING"):
        h = layerlab.fit("cnn", x, multi, epochs=4, verbose=0, channels="4,M", lr=3e-3)
    assert "binary cross-entropy" in caplog.text and h.task == "multilabel"
    mt = np.stack([yt < 2, yt == 1, yt == 2, yt == 3], axis=1).astype(np.int64)
    ev = layerlab.evaluate(h, xt, mt)
    assert set(ev) >= {"loss", "accuracy", "exact_match", "f1_micro", "f1_macro", "per_class_accuracy"}
    assert ev["accuracy"] > 0.8 and "confusion" not in ev
    probs = layerlab.predict(h, xt)
    assert probs.shape == (60, 4) and not np.allclose(probs.sum(1), 1.0)  # sigmoids, not a softmax
    tops = layerlab.predict(h, xt[:3], top_k=2)
    assert tops[0]["kind"] == "labels" and isinstance(tops[0]["labels"], list)


def test_float_rows_that_are_no_classes_are_regression_with_a_notice(bars, caplog):
    x, _, _, _ = bars
    rng = np.random.default_rng(1)
    target = rng.normal(size=(len(x), 2)).astype(np.float32)
    with caplog.at_level("WARNING"):
        h = layerlab.fit("cnn", x, target, epochs=1, verbose=0, channels="4,M")
    assert h.task == "regression" and "trained as regression of 2 values" in caplog.text


def test_a_multi_label_run_is_evaluated_predicted_and_reported(bars, tmp_path, capsys):
    from datagen import save_png
    from layerlab.inspect.report import write_report

    x, y, xt, _ = bars
    multi = np.stack([y < 2, y == 1, y == 2, y == 3], axis=1).astype(np.int64)
    out = tmp_path / "run"
    layerlab.fit("cnn", x, multi, validation_split=0.2, epochs=1, verbose=0, channels="4,M", run_dir=out)
    assert json.loads((out / "run.json").read_text())["dataset"]["task"] == "multilabel"
    assert main(["evaluate", str(out), "--json", "--per-sample"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["split"] == "validation" and "exact_match" in r and isinstance(r["predictions"][0]["true"], list)
    img = save_png(tmp_path / "a.png", xt[0])
    assert main(["predict", str(out), str(img), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["kind"] == "labels"
    page = write_report(out, probes=1).read_text()
    assert "exact match" in page and "Test-set evaluation" not in page


# ----------------------------------------------------------------------------------------------
# An open recipe: optimizers, losses, class weights and metrics by name
# ----------------------------------------------------------------------------------------------
def _cfg(**train):
    from layerlab.config import TrainConfig

    return TrainConfig(**train)


def test_optimizers_by_name_with_their_options():
    import torch

    from layerlab.errors import ConfigError
    from layerlab.training.optim import check_optimizer, make_optimizer

    model, cpu = torch.nn.Linear(3, 2), torch.device("cpu")
    opt = make_optimizer(model, _cfg(optimizer="adamw", optimizer_args="amsgrad=true,betas=[0.8, 0.9]"), cpu)
    g = opt.param_groups[0]
    assert type(opt) is torch.optim.AdamW and g["amsgrad"] and g["betas"] == (0.8, 0.9)
    assert g["weight_decay"] == 0.01 and g["eps"] == 1e-7  # AdamW's own decay; Keras's epsilon
    sgd = make_optimizer(model, _cfg(optimizer="sgd", momentum=0.9, optimizer_args="nesterov=true"), cpu)
    assert type(sgd) is torch.optim.SGD and sgd.param_groups[0]["nesterov"] and sgd.param_groups[0]["momentum"] == 0.9
    rms = make_optimizer(model, _cfg(optimizer="rmsprop", optimizer_args="alpha=0.9,centered=true"), cpu)
    assert type(rms) is torch.optim.RMSprop and rms.param_groups[0]["alpha"] == 0.9
    with pytest.raises(ConfigError, match=r"SGD takes no option 'betas'; it takes momentum, dampening"):
        make_optimizer(model, _cfg(optimizer="sgd", optimizer_args="betas=[0.9, 0.9]"), cpu)
    with pytest.raises(ConfigError, match="the learning rate is --lr"):
        make_optimizer(model, _cfg(optimizer_args="lr=0.1"), cpu)
    with pytest.raises(ConfigError, match="--optimizer sgd: Nesterov momentum requires a momentum"):
        check_optimizer(_cfg(optimizer="sgd", optimizer_args="nesterov=true"), cpu)


def test_optimizer_args_from_repeated_flags_and_presets(tmp_path):
    from layerlab.cli import build_parser
    from layerlab.config import RunConfig, config_from_flags
    from layerlab.errors import ConfigError

    args = build_parser().parse_args(
        ["train", "--optimizer", "sgd", "--optimizer-arg", "nesterov=true", "--optimizer-arg", "dampening=0"]
    )
    cfg, given = config_from_flags(args, RunConfig())
    assert (
        cfg.train.optimizer_args == "nesterov=true,dampening=0"
        and given["train.optimizer_args"] == cfg.train.optimizer_args
    )
    preset = tmp_path / "p.toml"
    preset.write_text('[train]\noptimizer = "adamw"\noptimizer_args = "betas = [0.9"\n')
    with pytest.raises(ConfigError, match="is not a value"):
        RunConfig.from_toml(preset)
    preset.write_text('[train]\noptimizer = "lbfgs"\n')
    with pytest.raises(ConfigError, match="optimizer must be one of adam, adamw, sgd, rmsprop"):
        RunConfig.from_toml(preset)


def test_optimizer_args_text_round_trips():
    from hypothesis import given
    from hypothesis import strategies as st

    from layerlab.recipe import format_args, parse_args

    value = st.one_of(
        st.booleans(),
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        st.text("abc ,=[]'x", max_size=6),
        st.lists(st.floats(0, 1), max_size=3),
    )

    @given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), value, min_size=1, max_size=4))
    def check(args):
        assert parse_args(format_args(args)) == args

    check()


def test_losses_by_name_and_class_weights():
    import torch
    import torch.nn.functional as F

    from layerlab.training.metrics import compute_loss

    out, y = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]]), torch.tensor([0, 2])
    w = torch.tensor([1.0, 2.0, 3.0])
    got = compute_loss("classification", out, y, 0.1, None, "1.0,2.0,3.0")
    assert float(got) == pytest.approx(float(F.cross_entropy(out, y, weight=w, label_smoothing=0.1)))
    bce = compute_loss("classification", out, y, loss="bce")
    assert float(bce) == pytest.approx(float(F.binary_cross_entropy_with_logits(out, F.one_hot(y, 3).float())))
    r, t = torch.tensor([[0.0], [3.0]]), torch.tensor([0.5, 0.0])
    assert float(compute_loss("regression", r, t, loss="huber")) == pytest.approx(float(F.huber_loss(r[:, 0], t)))


def test_a_loss_or_metric_that_does_not_fit_the_task_is_refused_before_any_run(bars, tmp_path):
    x, y, _, _ = bars
    cases = [
        ({"loss": "mse"}, "--loss mse does not train a classifier"),
        ({"metrics": ["top9_accuracy"]}, "top9_accuracy: the data has 4 classes"),
        ({"metrics": "f1"}, "unknown metric 'f1'"),
        ({"class_weight": [1.0, 2.0]}, "2 weights for 4 classes"),
    ]
    for opts, msg in cases:
        with pytest.raises(LayerlabError, match=msg):
            layerlab.fit("cnn", x, y, epochs=1, verbose=0, channels="4,M", run_dir=tmp_path / "r", **opts)
        assert not (tmp_path / "r").exists()


def test_class_weight_balanced_is_resolved_and_recorded(bars, tmp_path):
    from layerlab.config import RunConfig

    x, y, _, _ = bars
    y = y.copy()
    y[:60] = 0  # an unbalanced set
    h = layerlab.fit("cnn", x, y, epochs=1, verbose=0, channels="4,M", class_weight="balanced", run_dir=tmp_path / "r")
    counts = np.bincount(y, minlength=4)
    saved = RunConfig.from_toml(tmp_path / "r" / "config.toml").train.class_weight
    np.testing.assert_allclose([float(w) for w in saved.split(",")], len(y) / (4 * counts))
    assert h.history["loss"]
    (tmp_path / "w.json").write_text('{"1": 3.0}')
    h2 = layerlab.fit("cnn", x, y, epochs=1, verbose=0, channels="4,M", class_weight=str(tmp_path / "w.json"))
    assert h2.history["loss"]


def test_metrics_by_name_reach_metrics_csv_history_and_evaluate(bars, tmp_path):
    import csv

    from sklearn.metrics import f1_score

    from layerlab.callbacks import Callback

    class Extra(Callback):
        def on_epoch_end(self, trainer, epoch, row):
            row["val_double_accuracy"] = 2 * row["val_accuracy"]

    x, y, xt, yt = bars
    names = ["top2_accuracy", "f1_macro", "recall_weighted", "auroc"]
    h = layerlab.fit(
        "cnn",
        x,
        y,
        validation_data=(xt, yt),
        epochs=2,
        verbose=0,
        channels="4,M",
        metrics=names,
        callbacks=[Extra()],
        run_dir=tmp_path / "r",
    )
    for name in names:
        assert len(h.history[f"val_{name}"]) == 2
    assert h.history["val_double_accuracy"] == [2 * a for a in h.history["val_accuracy"]]
    rows = list(csv.DictReader(open(tmp_path / "r" / "metrics.csv")))
    assert float(rows[-1]["val_f1_macro"]) == pytest.approx(h.history["val_f1_macro"][-1])
    ev = layerlab.evaluate(h, xt, yt, metrics=["f1_macro", "top2_accuracy"])
    pred = layerlab.predict(h, xt).argmax(1)
    assert ev["f1_macro"] == pytest.approx(f1_score(yt, pred, average="macro"), abs=1e-6)
    assert ev["top2_accuracy"] >= ev["accuracy"]
    run_ev = api.evaluate_run(tmp_path / "r", which="last")
    assert run_ev["f1_macro"] == pytest.approx(ev["f1_macro"], abs=1e-6)  # the run's metrics, evaluated again


# ----------------------------------------------------------------------------------------------
# Callbacks from the command line and on resume
# ----------------------------------------------------------------------------------------------
def test_early_stopping_from_the_command_line_and_callbacks_on_resume(tmp_path, capsys):
    from datagen import make_idx_dir
    from layerlab.callbacks import Callback
    from layerlab.rundir import RunDir

    data = make_idx_dir(tmp_path / "d", n_train=80, n_test=20)
    out = tmp_path / "run"
    flags = ["--data", str(data), "--model", "cnn", "--channels", "4,M", "--validation", "0.25", "--lr", "0"]
    code = main(
        [
            "train",
            *flags,
            "--epochs",
            "6",
            "--early-stopping",
            "1",
            "--monitor",
            "val_loss",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    capsys.readouterr()
    info = RunDir(out).info()
    assert len(RunDir(out).metrics()) == 2 and info["stopped_early"]["epoch"] == 2  # lr 0: nothing improves

    seen = []

    class Seen(Callback):
        def on_epoch_end(self, trainer, epoch, row):
            seen.append(epoch)

    _, result = api.resume(out, callbacks=[Seen()], verbose=2)
    assert seen == [3] and len(result.history) == 3  # the restored early stopping stops it again
    shown = capsys.readouterr()
    assert "epoch 3" in shown.out + shown.err, shown  # verbose=2: a line for the resumed epoch
    with pytest.raises(LayerlabError, match="callbacks must be a list"):
        api.resume(out, callbacks=Seen())


# ----------------------------------------------------------------------------------------------
# Fine-tuning
# ----------------------------------------------------------------------------------------------
def test_fine_tuning_a_run_on_a_new_three_class_task_with_a_new_head(split_run, tmp_path, capsys):
    import torch

    from datagen import make_idx_dir
    from layerlab.rundir import RunDir

    rng = np.random.default_rng(5)
    x3, y3 = bar_images(90, rng, classes=3, cover=True)
    with pytest.raises(LayerlabError, match=r"its head classifier has shape \(4, .*pass --head new"):
        layerlab.fit("cnn", x3, y3, epochs=1, verbose=0, channels="4,M", init_from=str(split_run))
    with pytest.raises(LayerlabError, match="--freeze nope: the model has no such layer; its layers are"):
        layerlab.fit(
            "cnn", x3, y3, epochs=1, verbose=0, channels="4,M", init_from=str(split_run), head="new", freeze="nope"
        )
    source = RunDir(split_run).model("best")
    out = tmp_path / "ft"
    h = layerlab.fit(
        "cnn",
        x3,
        y3,
        validation_split=0.2,
        epochs=2,
        verbose=0,
        channels="4,M",
        init_from=str(split_run),
        head="new",
        freeze="body",
        run_dir=out,
        lr=1e-2,
    )
    info = RunDir(out).info()
    assert info["init_from"]["run"] == str(RunDir(split_run).path) and info["init_from"]["head"] == "new"
    assert info["init_from"]["weights"] == "best" and info["init_from"]["frozen"] == "body"
    tuned = h.model.state_dict()
    for name, value in source.state_dict().items():
        if name.startswith("classifier."):
            assert tuned[name].shape[0] == 3
        else:  # the body is the source's and stayed frozen
            assert torch.equal(tuned[name].cpu(), value), name
    assert h.history["val_accuracy"][-1] > 1 / 3
    _, more = api.resume(out, epochs=3)  # the frozen layers stay frozen on resume
    again = RunDir(out).model("last").state_dict()
    assert all(torch.equal(again[n], v) for n, v in source.state_dict().items() if not n.startswith("classifier."))
    assert len(more.history) == 3
    # the command line: the model defaults to the source run's
    data = make_idx_dir(tmp_path / "idx", n_train=80, n_test=20)
    cli_out = tmp_path / "cli"
    argv = ["train", "--data", str(data), "--init-from", str(split_run), "--head", "new", "--freeze", "features.0"]
    assert main([*argv, "--epochs", "1", "--out", str(cli_out), "--quiet"]) == 0
    capsys.readouterr()
    assert RunDir(cli_out).config().model.channels == "4,M"
    assert RunDir(cli_out).info()["init_from"]["frozen"] == "features.0"


# ----------------------------------------------------------------------------------------------
# Save and load
# ----------------------------------------------------------------------------------------------
def test_save_and_load_one_safetensors_file(bars, split_run, tmp_path):
    from safetensors import safe_open

    x, y, xt, yt = bars
    h = layerlab.fit("cnn", x[:80], y[:80], epochs=1, verbose=0, channels="4,M", batch_norm=True)
    path = layerlab.save(h, tmp_path / "model.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["builder"] == "cnn" and json.loads(meta["options"]) == {"channels": "4,M", "batch_norm": True}
    assert json.loads(meta["classes"]) == ["0", "1", "2", "3"] and meta["task"] == "classification"
    raw = path.read_bytes()  # safetensors: an 8-byte length, a JSON header, raw tensor bytes (no pickle)
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"]["builder"] == "cnn" and all(
        v["dtype"] in ("F32", "I64") for k, v in header.items() if k != "__metadata__"
    )
    loaded = layerlab.load(path)
    np.testing.assert_allclose(layerlab.predict(loaded, xt), layerlab.predict(h, xt), rtol=1e-5, atol=1e-6)
    assert layerlab.predict(loaded, xt[:1], top_k=2)[0]["label"] in loaded.classes
    # a run directory saves its chosen weights
    run_file = layerlab.save(split_run, tmp_path / "run.safetensors")
    from_run = layerlab.evaluate(layerlab.load(run_file), xt, yt)
    assert from_run["accuracy"] == pytest.approx(layerlab.evaluate(split_run, xt, yt)["accuracy"])


def test_save_and_load_refuse_in_one_sentence(bars, tmp_path):
    import torch

    x, y, _, _ = bars
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 4))
    h = layerlab.fit(net, x[:40], y[:40], epochs=1, verbose=0)
    with pytest.raises(LayerlabError, match="was not built by a registered name"):
        layerlab.save(h, tmp_path / "m.safetensors")
    with pytest.raises(LayerlabError, match="give it the History"):
        layerlab.save(net, tmp_path / "m.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(LayerlabError, match="not a safetensors file"):
        layerlab.load(bad)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(LayerlabError, match=r"not a model saved by layerlab\.save"):
        layerlab.load(tmp_path / "plain.safetensors")


# ----------------------------------------------------------------------------------------------
# The learning-rate range test
# ----------------------------------------------------------------------------------------------
def test_suggest_is_the_steepest_fall():
    from layerlab.lrfind import suggest

    lrs = [10.0 ** (-6 + i * 0.25) for i in range(30)]
    losses = [2.0] * 10 + [2.0 - 0.1 * i for i in range(1, 8)] + [1.3 - 0.5, *([0.8] * 12)]
    assert suggest(lrs, losses) == lrs[17]  # the one drop of 0.5
    assert suggest(lrs[:3], losses[:3]) is None


def test_lr_find_from_python_and_the_command_line(bars, tmp_path, capsys):
    from datagen import make_idx_dir

    x, y, _, _ = bars
    h = layerlab.fit("cnn", x[:40], y[:40], epochs=1, verbose=0, channels="4,M")
    before = {k: v.clone() for k, v in h.model.state_dict().items()}
    r = layerlab.lr_find(h.model, x, y, num_iter=40, end_lr=1.0, out=tmp_path / "py")
    assert all(a.equal(b) for a, b in zip(before.values(), h.model.state_dict().values(), strict=True))  # restored
    assert len(r["lrs"]) == len(r["losses"]) <= 40 and r["lrs"][0] == pytest.approx(1e-7)
    assert r["suggestion"] is not None and 1e-7 < r["suggestion"] < 1.0
    assert r["plot"].stat().st_size > 1000 and r["csv"].read_text().startswith("step,lr,loss,raw_loss")
    data = make_idx_dir(tmp_path / "d", n_train=64, n_test=16)
    argv = ["lr-find", "--data", str(data), "--model", "cnn", "--channels", "4,M", "--num-iter", "20"]
    assert main([*argv, "--out", str(tmp_path / "cli"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] <= 20 and (tmp_path / "cli" / "lr_find.png").is_file()
    assert main([*argv, "--num-iter", "2", "--out", str(tmp_path / "cli")]) == 2
    assert "--num-iter must be at least 5" in capsys.readouterr().err


def test_a_multi_label_prediction_line():
    from layerlab.cli.run import prediction_line

    r = {
        "file": "f",
        "notes": [],
        "kind": "labels",
        "labels": ["cat", "dog"],
        "top_k": [{"index": 0, "label": "cat", "probability": 0.9}, {"index": 1, "label": "dog", "probability": 0.7}],
    }
    assert prediction_line(r) == "f: cat, dog   top-2: cat 0.900, dog 0.700"
    assert prediction_line({**r, "labels": []}).startswith("f: (no label)")


def test_mps_is_accepted_where_torch_reports_it(monkeypatch):
    import torch

    from layerlab.config import RunConfig
    from layerlab.training.runtime import resolve_device

    RunConfig.from_dict({"train": {"device": "mps"}})  # a config choice, on every machine
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(LayerlabError, match="torch reports no MPS device here"):
        resolve_device("mps")


def test_notebook_progress_follows_time_and_keeps_its_final_state(monkeypatch):
    """In a notebook (a Jupyter console with ipywidgets) the bar reads every step, redraws by time,
    not every 20 steps, and is left drawn at the end of the epoch (not transient)."""
    import io

    import torch
    from rich.console import Console

    from layerlab import callbacks, engine
    from layerlab.config import TrainConfig
    from layerlab.data import Dataset, Split

    monkeypatch.setattr(callbacks, "_jupyter_bar_possible", lambda console: True)
    out = Console(file=io.StringIO(), width=200)
    bar = Console(file=io.StringIO(), width=200, force_terminal=True)
    pb = callbacks.ProgressBar(1, console=out, bar_console=bar, refresh_seconds=0.0)
    assert pb.notebook and pb.every_n_steps == 1 and callbacks.log_interval([pb]) == 1
    drawn = []
    real = __import__("rich.progress", fromlist=["Progress"]).Progress.refresh
    monkeypatch.setattr(
        "rich.progress.Progress.refresh", lambda self: (drawn.append(self.tasks[0].completed), real(self))[1]
    )
    x, y = torch.randn(64, 1, 8, 8), torch.arange(64) % 2
    ds = Dataset("t", Split(x, y), Split(x, y), "classification", ["0", "1"], 2, "t", {}, None)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    engine.fit(model, ds, TrainConfig(epochs=1, batch_size=8, device="cpu"), progress=pb)
    assert drawn[1:9] == [1, 2, 3, 4, 5, 6, 7, 8] and drawn[-1] == 8, drawn  # every step; the final state
    pb_terminal = callbacks.ProgressBar(1, console=out, bar_console=bar)
    monkeypatch.setattr(callbacks, "_jupyter_bar_possible", lambda console: False)
    assert callbacks.ProgressBar(1, console=out, bar_console=bar).every_n_steps is None and pb_terminal.notebook


# ----------------------------------------------------------------------------------------------
# One CSV with a label column
# ----------------------------------------------------------------------------------------------
def _table(path, n=60, seed=0):
    rng = np.random.default_rng(seed)
    kinds = ["setosa", "versicolor", "virginica"]
    lines = ["a,b,species,c"]
    for i in range(n):
        k = i % 3
        a, b, c = rng.normal(size=3) * 0.2 + k
        lines.append(f"{a:.3f},{b:.3f},{kinds[k]},{'' if i == 5 else f'{c:.3f}'}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_one_csv_with_a_label_column_and_a_test_split(tmp_path, capsys):
    from layerlab.rundir import RunDir

    table = _table(tmp_path / "iris.csv")
    out = tmp_path / "run"
    argv = ["train", "--data", str(table), "--label-column", "species", "--test-split", "0.25", "--model", "mlp"]
    assert main([*argv, "--epochs", "30", "--lr", "0.01", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    info = RunDir(out).info()
    assert info["dataset"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert (info["dataset"]["n_train"], info["dataset"]["n_test"]) == (45, 15)  # 5 of each class held out
    r = api.evaluate_run(out)
    assert r["split"] == "test" and r["n"] == 15 and r["accuracy"] > 0.8
    from layerlab.data.formats.labeled_csv import split_indices

    a = split_indices(["x"] * 10 + ["y"] * 10, 0.3, 7, True)
    assert all(
        np.array_equal(u, v) for u, v in zip(a, split_indices(["x"] * 10 + ["y"] * 10, 0.3, 7, True), strict=True)
    )
    assert len(a[1]) == 6


def test_a_labelled_csv_is_checked_in_one_sentence(tmp_path, capsys):
    table = _table(tmp_path / "t.csv")
    base = ["train", "--data", str(table), "--model", "mlp", "--epochs", "1", "--quiet"]
    for extra, msg in (
        (["--label-column", "kind", "--test-split", "0.2"], "no column 'kind'; its columns are a, b, species, c"),
        (["--test-split", "0.2"], "give the label column with --label-column NAME"),
        (["--label-column", "species"], "give --test-split F"),
    ):
        assert main([*base, *extra, "--out", str(tmp_path / "r")]) == 2
        assert msg in capsys.readouterr().err
        assert not (tmp_path / "r").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,label\n1.0,x\nhello,y\n")
    assert main([*base[:2], str(bad), *base[3:], "--label-column", "label", "--test-split", "0.5"]) == 2
    assert "line 3, column 'a' holds 'hello', not a number" in capsys.readouterr().err


def test_a_folder_of_csv_files_gets_the_right_sentence(tmp_path, capsys):
    d = tmp_path / "tables"
    d.mkdir()
    _table(d / "a.csv")
    _table(d / "b.csv")
    assert main(["train", "--data", str(d), "--model", "mlp", "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "holds CSV/TSV files (a.csv, b.csv)" in err and "--label-column NAME" in err
    assert "one subfolder per class" not in err
