"""Callbacks with state saved in the checkpoint: EarlyStopping killed and resumed stops where an
uninterrupted run stops, with the same weights restored; what a callback refuses is refused before
any run directory is made."""

from __future__ import annotations

import pytest
import torch

from datagen import make_idx_dir
from layerlab import api, engine
from layerlab.callbacks import Callback, EarlyStopping, TensorBoard, callback_states, load_callback_states
from layerlab.config import RunConfig, TrainConfig
from layerlab.data import Dataset, Split
from layerlab.errors import LayerlabError
from layerlab.rundir import RunDir


def _cfg(data, **train) -> RunConfig:
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.data.validation = 0.25
    cfg.train.epochs = 8
    cfg.train.batch_size = 16
    cfg.train.threads = 1
    cfg.train.device = "cpu"
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def _stopper() -> EarlyStopping:
    # only the first epoch can improve by more than 1e9: patience 2 stops after epoch 3 of 8
    return EarlyStopping("val_loss", patience=2, min_delta=1e9, restore_best=True)


@pytest.mark.parametrize("cut", ["after-epoch-2", "mid-epoch-3"])
def test_early_stopping_resumed_stops_where_an_uninterrupted_run_stops(tmp_path, monkeypatch, cut):
    """Old code kept the best weights in memory only: after the resume the best epoch (1) was
    behind it, so the model kept its last weights (with a warning) instead of epoch 1's."""
    data = make_idx_dir(tmp_path / "d", n_train=64, n_test=16)  # 48 train samples: 3 steps an epoch
    every = {"checkpoint_every": 7} if cut == "mid-epoch-3" else {}  # global step 7 = epoch 3, step 1
    full_stop = _stopper()
    full, full_result = api.train(_cfg(data, **every), tmp_path / "full", callbacks=[full_stop])
    assert full_result.stopped_early["epoch"] == 3 and full_stop.best_epoch == 1

    real = RunDir.save_checkpoint

    def killed(self, *a, **kw):
        real(self, *a, **kw)
        if (cut == "after-epoch-2" and kw["epoch"] == 2 and not kw.get("step")) or kw.get("step"):
            raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        api.train(_cfg(data, **every), tmp_path / "cut", callbacks=[_stopper()])
    monkeypatch.undo()
    saved = RunDir(tmp_path / "cut").training_state()["callbacks"]["EarlyStopping"]
    assert saved["best_epoch"] == 1 and set(saved["best_weights"]) == set(full_stop.best_weights)

    resumed_stop = _stopper()
    # the resumed run's callbacks: api.resume hands its progress callback to the loop
    _, result = api.resume(tmp_path / "cut", progress=resumed_stop)
    assert result.stopped_early == full_result.stopped_early
    assert [r["val_loss"] for r in result.history] == [r["val_loss"] for r in full_result.history]
    assert resumed_stop.best_weights is not None
    for k, v in full_stop.best_weights.items():
        assert torch.equal(resumed_stop.best_weights[k], v), k
    # epoch 1's weights, not the last epoch's: restoring them changes the model
    last = RunDir(full.path).model("last").state_dict()
    assert not all(torch.equal(last[k], v) for k, v in full_stop.best_weights.items())


def test_callback_state_goes_by_class_and_order_and_loads_weights_only(tmp_path):
    class Counter(Callback):
        def __init__(self):
            self.n = 0

        def on_epoch_end(self, trainer, epoch, row):
            self.n += epoch

        def state_dict(self):
            return {"n": self.n, "t": torch.tensor([float(self.n)])}

        def load_state_dict(self, state):
            self.n = state["n"]

    a, b, quiet = Counter(), Counter(), Callback()
    a.n, b.n = 3, 5
    states = callback_states([a, quiet, b])
    assert sorted(states) == ["Counter", "Counter#2"]
    torch.save(states, tmp_path / "s.pt")
    loaded = torch.load(tmp_path / "s.pt", weights_only=True)
    c, d = Counter(), Counter()
    load_callback_states([c, Callback(), d], loaded)
    assert (c.n, d.n) == (3, 5)
    load_callback_states([c], None)  # a checkpoint without callback state changes nothing
    assert c.n == 3


def _tiny(validation: bool) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x, xt = torch.randn(32, 1, 4, 4, generator=g), torch.randn(8, 1, 4, 4, generator=g)
    meta = {"validation_fraction": 0.25} if validation else {}
    return Dataset("tiny", Split(x, (x.mean((1, 2, 3)) > 0).long()), Split(xt, (xt.mean((1, 2, 3)) > 0).long()),
                   classes=["a", "b"], num_outputs=2, meta=meta)  # fmt: skip


def test_what_a_callback_refuses_is_refused_before_anything_is_made(tmp_path):
    # a monitor on the test set is refused where it is written
    with pytest.raises(LayerlabError, match="would choose on the test set"):
        EarlyStopping("test_loss")
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu")
    with pytest.raises(LayerlabError, match="the run has no validation split"):
        engine.check_training(cfg, _tiny(validation=False), [EarlyStopping("val_loss")])
    engine.check_training(cfg, _tiny(validation=True), [EarlyStopping("val_loss")])
    with pytest.raises(LayerlabError, match="cannot write TensorBoard files there"):
        engine.check_training(cfg, _tiny(validation=True), [TensorBoard("/dev/null/x")])
    with pytest.raises(LayerlabError, match="/dev/null/x: cannot write TensorBoard files there"):
        engine.check_training(TrainConfig(tensorboard="/dev/null/x"), _tiny(validation=True))
    with pytest.raises(LayerlabError, match="--cuda-graph needs a CUDA device"):
        engine.check_training(TrainConfig(cuda_graph=True), _tiny(False), [], device=torch.device("cpu"))
