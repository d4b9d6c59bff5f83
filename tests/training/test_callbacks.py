"""Callbacks: early stopping (a run that stops is whole: history, metrics.csv, checkpoint, run.json,
summary.json; resuming it trains on), restore_best, TensorBoard scalars read back, the step log,
the learning-rate monitor, the progress bar at verbose 0/1/2."""

import csv
import io
import json
import math
import sys

import pytest
import torch
import torch.nn as nn

from datagen import make_idx_dir
from layerlab import api, engine
from layerlab.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ProgressBar,
    StepLogger,
    TensorBoard,
    log_interval,
)
from layerlab.config import RunConfig, TrainConfig
from layerlab.data import Dataset, Split
from layerlab.errors import ConfigError, LayerlabError
from layerlab.rundir import RunDir


def _tiny(validation: bool = False, n_train: int = 48, n_test: int = 16) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x, xt = torch.randn(n_train, 1, 4, 4, generator=g), torch.randn(n_test, 1, 4, 4, generator=g)
    y, yt = (x.mean((1, 2, 3)) > 0).long(), (xt.mean((1, 2, 3)) > 0).long()
    meta = {"validation_fraction": 0.25} if validation else {}
    return Dataset("tiny", Split(x, y), Split(xt, yt), classes=["a", "b"], num_outputs=2, meta=meta)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 2))


def _train_cfg(**kw) -> TrainConfig:
    cfg = TrainConfig(epochs=3, batch_size=16, device="cpu", lr=0.01)  # 3 steps an epoch
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def _run_cfg(data, epochs=5, **train) -> RunConfig:
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.data.validation = 0.25
    cfg.train.epochs = epochs
    cfg.train.batch_size = 16
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


class Scripted(Callback):
    """Puts a scripted ``score`` in each row and keeps a copy of the weights of each epoch."""

    def __init__(self, scores):
        self.scores, self.weights = scores, {}

    def on_epoch_end(self, trainer, epoch, row):
        row["score"] = self.scores[epoch - 1]
        self.weights[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}


# ----------------------------------------------------------------------------------------------
# early stopping
# ----------------------------------------------------------------------------------------------
def test_early_stopping_stops_a_run_and_leaves_it_whole(tmp_path):
    data = make_idx_dir(tmp_path / "d", n_train=64, n_test=16)
    # only the first epoch can improve by more than 1e9: patience 1 stops after epoch 3 of 5
    stop = EarlyStopping("val_loss", patience=2, min_delta=1e9)
    run, result = api.train(_run_cfg(data), tmp_path / "run", callbacks=[stop])
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert result.stopped_early == {"epoch": 3, "reason": result.stopped_early["reason"]}
    assert result.stopped_early["reason"].startswith("val_loss did not improve for 2 epochs (best ")
    run = RunDir(run.path)
    info, summary = run.info(), json.loads((run.path / "summary.json").read_text())
    assert info["status"] == "completed" and info["stopped_early"] == result.stopped_early
    assert summary["epochs"] == 3 and summary["stopped_early"] == result.stopped_early
    assert [r["epoch"] for r in run.metrics()] == [1, 2, 3]
    state = run.training_state()
    assert (state["epoch"], state["step"]) == (3, 0) and [r["epoch"] for r in state["history"]] == [1, 2, 3]
    assert json.loads((run.ckpt_dir / "current.json").read_text())["epoch"] == 3
    assert run.resolve_weights("auto") == "best" and not (run.path / "lock").exists()

    # resuming a run that stopped early trains on to its epochs (the callbacks of the resume decide
    # anew) and the run no longer says it stopped
    resumed, more = api.resume(run.path)
    assert [r["epoch"] for r in more.history] == [1, 2, 3, 4, 5] and more.stopped_early is None
    info = RunDir(resumed.path).info()
    assert info["status"] == "completed" and "stopped_early" not in info and info["resumed_from_epoch"] == 3
    assert "stopped_early" not in json.loads((run.path / "summary.json").read_text())


def test_early_stopping_counts_the_epochs_before_a_resume():
    """Patience replays the history: 1 and 2 did not improve on 0, so epoch 3 (the first after the
    resume) stops it."""
    stop = EarlyStopping("score", patience=3)
    history = [{"epoch": e, "score": s} for e, s in [(1, 0.5), (2, 0.7), (3, 0.6)]]
    trainer = engine.Trainer(model=_model(), optimizer=None, history=history, cfg=None)
    stop.on_train_begin(trainer)
    stop.on_epoch_end(trainer, 4, {"epoch": 4, "score": 0.9})
    assert trainer.stop_training and stop.best_epoch == 1


def test_restore_best_loads_the_best_epochs_weights_from_memory():
    scripted = Scripted([3.0, 1.0, 2.0, 5.0, 0.0])
    stop = EarlyStopping("score", patience=1, restore_best=True)
    model = _model()
    result = engine.fit(model, _tiny(), _train_cfg(epochs=5), callbacks=[scripted, stop])
    assert result.stopped_early["epoch"] == 3 and stop.best_epoch == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, scripted.weights[2][k]), k
    assert not torch.equal(scripted.weights[2]["1.weight"], scripted.weights[3]["1.weight"])


def test_early_stopping_never_chooses_on_the_test_set():
    with pytest.raises(LayerlabError, match="EarlyStopping on test_loss would choose on the test set"):
        engine.fit(_model(), _tiny(), _train_cfg(), callbacks=[EarlyStopping("test_loss")])
    with pytest.raises(LayerlabError, match="monitors val_loss, but the run has no validation split"):
        engine.fit(_model(), _tiny(), _train_cfg(), callbacks=[EarlyStopping()])
    with pytest.raises(LayerlabError, match="monitors val_mse, which the epoch rows do not have"):
        engine.fit(_model(), _tiny(validation=True), _train_cfg(), callbacks=[EarlyStopping("val_mse")])


def test_a_stop_asked_at_the_last_epoch_is_no_early_stop():
    class StopNow(Callback):
        def on_epoch_end(self, trainer, epoch, row):
            trainer.stop_training = epoch == 3

    result = engine.fit(_model(), _tiny(), _train_cfg(), callbacks=[StopNow()])
    assert len(result.history) == 3 and result.stopped_early is None


# ----------------------------------------------------------------------------------------------
# the learning rate, the step log
# ----------------------------------------------------------------------------------------------
def test_step_logger_and_lr_monitor_record_the_rate_used(tmp_path):
    cfg = _train_cfg(schedule="cosine", warmup_epochs=1.0, min_lr=0.001)
    monitor, logger = LearningRateMonitor(), StepLogger(tmp_path / "steps.csv")
    result = engine.fit(_model(), _tiny(), cfg, callbacks=[monitor, logger])
    factor = engine.lr_factor(cfg, 3)
    with open(tmp_path / "steps.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(StepLogger.COLUMNS)
    assert [int(r["step"]) for r in rows] == list(range(1, 10))  # every step of 3 epochs
    assert [int(r["epoch"]) for r in rows] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [int(r["epoch_step"]) for r in rows] == [1, 2, 3] * 3
    assert [float(r["lr"]) for r in rows] == [0.01 * factor(s) for s in range(9)]
    assert all(math.isfinite(float(r["loss"])) and 0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert float(rows[2]["loss"]) == pytest.approx(result.history[0]["train_loss"])  # running mean = the epoch's
    assert monitor.steps == [(s, 0.01 * factor(s - 1)) for s in range(1, 10)]
    for e, row in enumerate(result.history):
        assert (row["lr_start"], row["lr"]) == (0.01 * factor(3 * e), 0.01 * factor(3 * e + 2))


def test_step_calls_come_every_log_every_steps_unless_a_callback_asks_for_more():
    assert log_interval([ProgressBar(0)]) == 20
    assert log_interval([StepLogger("x.csv", every_n_steps=4), LearningRateMonitor(6)]) == 2
    seen = []

    class Steps(Callback):
        def on_step_end(self, trainer, step, logs):
            seen.append((step, logs["epoch_step"]))

    engine.fit(_model(), _tiny(n_train=160), _train_cfg(epochs=2), callbacks=[Steps()], log_every=4)
    # 10 steps an epoch: every 4th of the run, and each epoch's last
    assert seen == [(4, 4), (8, 8), (10, 10), (12, 2), (16, 6), (20, 10)]


# ----------------------------------------------------------------------------------------------
# TensorBoard
# ----------------------------------------------------------------------------------------------
def _read_scalars(log_dir) -> dict:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_writes_scalars_that_read_back(tmp_path):
    pytest.importorskip("tensorboard")
    tb = TensorBoard(tmp_path / "tb", every_n_steps=2)
    result = engine.fit(_model(), _tiny(validation=True), _train_cfg(), callbacks=[tb])
    scalars = _read_scalars(tmp_path / "tb")
    for col in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
        want = [(r["epoch"], r[col]) for r in result.history]
        assert [(s, pytest.approx(v, rel=1e-6)) for s, v in want] == scalars[f"epoch/{col}"], col
    assert [s for s, _ in scalars["step/loss"]] == [2, 4, 6, 8]
    assert {"step/lr", "step/batch_loss", "step/accuracy"} <= set(scalars)


def test_train_tensorboard_config_adds_the_callback(tmp_path):
    pytest.importorskip("tensorboard")
    engine.fit(_model(), _tiny(), _train_cfg(epochs=2, tensorboard=str(tmp_path / "tb")))
    assert [s for s, _ in _read_scalars(tmp_path / "tb")["epoch/test_loss"]] == [1, 2]


def test_tensorboard_without_the_package_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(LayerlabError, match=r"needs the tensorboard package; install it with pip install"):
        TensorBoard("tb")


# ----------------------------------------------------------------------------------------------
# progress
# ----------------------------------------------------------------------------------------------
def _consoles(terminal: bool = True):
    from rich.console import Console

    lines, bar = io.StringIO(), io.StringIO()
    return (
        lines,
        bar,
        Console(file=lines, width=200, highlight=False),
        Console(file=bar, width=200, force_terminal=terminal),
    )


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_progress_bar_verbosity(verbose):
    lines, bar, out, err = _consoles()
    pb = ProgressBar(verbose, console=out, bar_console=err)
    engine.fit(_model(), _tiny(validation=True), _train_cfg(), progress=pb)
    printed = lines.getvalue().splitlines()
    if verbose == 0:
        assert printed == [] and bar.getvalue() == ""
        return
    assert [p.split(" | ")[0] for p in printed] == ["epoch 1", "epoch 2", "epoch 3"]
    assert all("val_loss" in p and "samples/s" in p for p in printed)
    if verbose == 1:
        assert "epoch 3/3" in bar.getvalue() and "loss" in bar.getvalue()
    else:
        assert bar.getvalue() == ""


def test_progress_bar_is_not_drawn_where_it_cannot_be():
    lines, bar, out, err = _consoles(terminal=False)
    engine.fit(_model(), _tiny(), _train_cfg(), callbacks=[ProgressBar(1, console=out, bar_console=err)])
    assert bar.getvalue() == "" and len(lines.getvalue().splitlines()) == 3


def test_progress_takes_a_callback_only():
    """The older ``Progress`` hooks are gone (a Callback does the same): anything else is refused in
    one sentence before training."""
    with pytest.raises(ConfigError, match=r"progress= takes a layerlab\.callbacks\.Callback, got dict"):
        engine.fit(_model(), _tiny(), _train_cfg(epochs=1), progress={"on_epoch_end": print})


def test_callbacks_are_closed_when_training_fails(tmp_path):
    class Boom(Callback):
        def on_epoch_end(self, trainer, epoch, row):
            raise RuntimeError("boom")

    logger = StepLogger(tmp_path / "s.csv")
    with pytest.raises(RuntimeError, match="boom"):
        engine.fit(_model(), _tiny(), _train_cfg(), callbacks=[logger, Boom()])
    assert logger._file is None and len((tmp_path / "s.csv").read_text().splitlines()) == 1 + 3
