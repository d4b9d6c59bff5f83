"""Learning-rate schedules: each curve against its closed form (onecycle against torch's own
OneCycleLR), the rate a row records, and exact resume with a schedule."""

import math

import pytest
import torch

from datagen import make_idx_dir
from layerlab import api, engine
from layerlab.config import RunConfig, TrainConfig
from layerlab.errors import ConfigError
from layerlab.rundir import RunDir

SPE = 5  # steps per epoch


def _cfg(**kw) -> TrainConfig:
    cfg = TrainConfig(epochs=4)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def _lrs_used(cfg: TrainConfig, steps_per_epoch: int = SPE) -> list[float]:
    """The rate each step of a run trains with, read off the optimizer just before its step."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=cfg.lr)
    sched = engine.make_scheduler(opt, cfg, steps_per_epoch)
    used = []
    for _ in range(cfg.epochs * steps_per_epoch):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return used


def _close(a: list[float], b: list[float]) -> None:
    assert len(a) == len(b)
    for s, (x, y) in enumerate(zip(a, b, strict=True)):
        assert math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-15), (s, x, y)


def test_constant_is_the_lr_itself_and_warmup_is_linear_from_zero():
    assert _lrs_used(_cfg(lr=0.01)) == [0.01] * 4 * SPE  # exactly: runs before schedules are unchanged
    used = _lrs_used(_cfg(lr=0.01, warmup_epochs=1.4))  # W = round(1.4 * 5) = 7 steps
    _close(used, [0.01 * min(1.0, s / 7) for s in range(4 * SPE)])
    assert used[0] == 0.0


def test_step_schedule():
    used = _lrs_used(_cfg(lr=0.1, schedule="step", step_size=2, gamma=0.5))
    _close(used, [0.1 * 0.5 ** ((s // SPE) // 2) for s in range(4 * SPE)])


def test_cosine_schedule_with_warmup_and_floor():
    lr, lo, N, W = 0.1, 0.001, 4 * SPE, 5
    used = _lrs_used(_cfg(lr=lr, schedule="cosine", warmup_epochs=1.0, min_lr=lo))
    want = [
        lr * s / W if s < W else lo + (lr - lo) * 0.5 * (1 + math.cos(math.pi * (s - W) / (N - W))) for s in range(N)
    ]
    _close(used, want)
    assert used[W] == pytest.approx(lr) and min(used[W:]) > lo


@pytest.mark.parametrize("warmup_epochs, pct_start", [(0.0, 0.3), (1.0, 0.25)])
def test_onecycle_is_torchs_onecycle(warmup_epochs, pct_start):
    lr, N = 0.05, 4 * SPE
    used = _lrs_used(_cfg(lr=lr, schedule="onecycle", warmup_epochs=warmup_epochs))
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=N, pct_start=pct_start, cycle_momentum=False)
    want = []
    for _ in range(N):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    _close(used, want)


def test_a_resumed_scheduler_continues_the_curve_exactly():
    """From saved state, or from the step alone (a checkpoint from before schedules)."""
    cfg = _cfg(lr=0.1, schedule="cosine", warmup_epochs=0.5)
    full = _lrs_used(cfg)
    for how in ("state", "step"):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=cfg.lr)
        first = engine.make_scheduler(opt, cfg, SPE)
        for _ in range(7):
            opt.step()
            first.step()
        opt2 = torch.optim.SGD([p], lr=cfg.lr)
        opt2.load_state_dict(opt.state_dict())
        kw = {"state": first.state_dict()} if how == "state" else {"global_step": 7}
        second = engine.make_scheduler(opt2, cfg, SPE, **kw)
        rest = []
        for _ in range(4 * SPE - 7):
            rest.append(opt2.param_groups[0]["lr"])
            opt2.step()
            second.step()
        assert rest == full[7:], how


def test_min_lr_above_lr_is_one_sentence():
    with pytest.raises(ConfigError, match=r"--min-lr 0.5 is above --lr 0.1"):
        engine.lr_factor(_cfg(lr=0.1, schedule="cosine", min_lr=0.5), SPE)


def test_schedule_flags_are_generated_and_checked():
    from layerlab.cli import build_parser
    from layerlab.config import config_from_flags

    args = build_parser().parse_args(
        ["train", "--schedule", "cosine", "--warmup-epochs", "0.5", "--min-lr", "1e-5", "--tensorboard", "tb"]
    )
    cfg, _ = config_from_flags(args, RunConfig())
    t = cfg.train
    assert (t.schedule, t.warmup_epochs, t.min_lr, t.tensorboard) == ("cosine", 0.5, 1e-5, "tb")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--schedule", "linear"])
    with pytest.raises(ConfigError, match=r"warmup_epochs must be at least 0\.0"):
        RunConfig.from_dict({"train": {"warmup_epochs": -1}})


# ----------------------------------------------------------------------------------------------
# in a run: the rate recorded, the scheduler saved, resume bit-identical
# ----------------------------------------------------------------------------------------------
def _run_cfg(data, **train) -> RunConfig:
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.train.epochs = 3
    cfg.train.batch_size = 16
    cfg.train.lr = 3e-3
    cfg.train.schedule = "cosine"
    cfg.train.warmup_epochs = 0.5
    cfg.train.min_lr = 1e-4
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(RunDir(path).weights("last")))


@pytest.mark.parametrize("cut_at", ["epoch", "mid-epoch"])
def test_resume_with_a_cosine_schedule_is_bit_identical(tmp_path, monkeypatch, cut_at):
    """Stopped after epoch 1's checkpoint, or after a mid-epoch one (global step 5 of 12), resume
    gives the weights, losses and learning rates of the uninterrupted run."""
    data = make_idx_dir(tmp_path / "d", n_train=64, n_test=16)  # 4 steps an epoch
    every = {"checkpoint_every": 5} if cut_at == "mid-epoch" else {}
    full, full_result = api.train(_run_cfg(data, **every), tmp_path / "full")
    real = RunDir.save_checkpoint

    def stop_after_first(self, *a, **kw):
        real(self, *a, **kw)
        if cut_at == "epoch" or kw.get("step"):
            raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        api.train(_run_cfg(data, **every), tmp_path / "cut")
    monkeypatch.undo()
    cut = RunDir(tmp_path / "cut")
    state = cut.training_state()
    assert state["scheduler"]["last_epoch"] == (5 if cut_at == "mid-epoch" else 4)  # steps taken
    resumed, result = api.resume(cut.path)
    a, b = _weights(full.path), _weights(resumed.path)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for x, y in zip(full_result.history, result.history, strict=True):
        assert (x["train_loss"], x["lr"]) == (y["train_loss"], y["lr"])
    assert [r["lr"] for r in RunDir(resumed.path).metrics()] == [r["lr"] for r in full.metrics()]


def test_row_lr_is_the_rate_of_the_epochs_last_step(tmp_path):
    data = make_idx_dir(tmp_path / "d", n_train=64, n_test=16)
    run, result = api.train(_run_cfg(data), tmp_path / "run")
    factor = engine.lr_factor(run.config().train, 4)
    assert [r["lr"] for r in result.history] == [3e-3 * factor(4 * e + 3) for e in range(3)]
    assert 'schedule = "cosine"' in (run.path / "config.toml").read_text()
    assert RunDir(run.path).training_state()["scheduler"]["last_epoch"] == 12
