"""Training you can trust: a run killed anywhere resumes to bit-identical weights; mid-epoch
checkpoints; the lock; the data fingerprint; SIGTERM handled like Ctrl-C.

The kill tests run ``python -m layerlab train`` in a subprocess with ``LAYERLAB_TEST_PAUSE_AT``
(see :func:`layerlab.checkpoint.pause_point`): the process prints ``LAYERLAB_PAUSED NAME`` at the
named point and sleeps, and the test SIGKILLs it there. ``LAYERLAB_KILL_TABLE=1`` also runs every
kill point from a fresh start on its own (slower: two processes per point).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from datagen import make_idx_dir
from layerlab import api
from layerlab.config import RunConfig
from layerlab.errors import LayerlabError
from layerlab.rundir import RunDir

# 48 samples in batches of 16: 3 steps an epoch, 3 epochs = 9 steps; a mid-epoch checkpoint every
# 2 steps (after global steps 2, 4, 8; 6 and 9 end an epoch). Checkpoint writes, in order:
# 1 step 2, 2 epoch 1, 3 step 4, 4 epoch 2, 5 step 8, 6 epoch 3.
FLAGS = ["--model", "article-cnn", "--epochs", "3", "--batch-size", "16", "--threads", "1", "--device", "cpu"]
FLAGS += ["--checkpoint-every", "2"]

#: (kill point, what it is): the pause point's name and which time it is reached (``NAME:K``).
KILL_POINTS = [
    ("step:1", "between steps, before any checkpoint"),
    ("after-weights:1", "inside the first mid-epoch checkpoint: weights written, state not"),
    ("after-state:1", "inside a checkpoint: weights and state written, not renamed"),
    ("before-swap:1", "inside a checkpoint: renamed, pointer not yet swapped"),
    ("after-swap:1", "inside a checkpoint: pointer swapped, old one and metrics not yet"),
    ("after-epoch:1", "right after epoch 1's checkpoint"),
    ("step:5", "between steps, mid epoch 2 (after a mid-epoch checkpoint)"),
    ("after-weights:4", "inside epoch 2's checkpoint: weights written"),
    ("before-swap:4", "inside epoch 2's checkpoint: before the swap"),
    ("after-swap:6", "inside the last checkpoint: after the swap, before metrics.csv"),
    ("step:9", "after the last step, before the last evaluation"),
]


def _env(pause: str | None = None) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LAYERLAB_TEST_PAUSE_AT", None)
    if pause:
        env["LAYERLAB_TEST_PAUSE_AT"] = pause
    return env


def _layerlab(*args: str, pause: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "layerlab", *args, "--quiet"],
        env=_env(pause),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_pause(proc: subprocess.Popen, point: str, timeout: float = 60) -> None:
    """Read the process's stderr until it says it paused at ``point``; fail if it ends first."""
    name = point.split(":")[0]
    for line in proc.stderr:
        if line.strip() == f"LAYERLAB_PAUSED {name}":
            return
    proc.wait(timeout)
    pytest.fail(f"the run ended (code {proc.returncode}) without reaching {point}")


def _kill_at(args: list[str], point: str) -> None:
    proc = _layerlab(*args, pause=point)
    try:
        _wait_for_pause(proc, point)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()


def _finish(args: list[str]) -> None:
    proc = _layerlab(*args)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


def _weights(run: Path) -> dict:
    return load_file(str(RunDir(run).weights("last")))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _check_whole(run: Path) -> None:
    """After a resume: completed, unlocked, no temporaries, metrics agree with the checkpoint."""
    r = RunDir(run)
    assert r.info()["status"] == "completed"
    assert not (run / "lock").exists()
    assert not [p.name for p in r.ckpt_dir.iterdir() if p.name.startswith(".")], list(r.ckpt_dir.iterdir())
    assert len([p for p in r.ckpt_dir.iterdir() if p.is_dir()]) == 1
    assert [m["epoch"] for m in r.metrics()] == [1, 2, 3] == [h["epoch"] for h in r.training_state()["history"]]


@pytest.fixture(scope="module")
def crash_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    data = make_idx_dir(root / "bars", n_train=48, n_test=16)
    ref = root / "reference"
    return root, data, ref


@pytest.mark.slow
def test_killed_anywhere_resume_is_bit_identical(crash_data):
    """One run killed at every kill point in turn (each resume killed at the next point), then
    resumed to the end: its weights are those of an uninterrupted run, bit for bit, and nothing
    torn or stale is left. Old code: no --checkpoint-every, no pause points, and a kill between its
    two renames resumed epoch-N weights with the epoch-(N-1) optimizer."""
    root, data, ref = crash_data
    reference = _layerlab("train", "--data", str(data), "--out", str(ref), *FLAGS)  # alongside, 2 cores
    run = root / "chain"
    # per process the counts restart: points that a resumed process still reaches
    # (the last: the final checkpoint swapped in, the end not yet recorded: resume records it)
    chain = ["step:2", "after-weights:1", "before-swap:1", "after-swap:1", "after-epoch:1", "after-state:1"]
    chain += ["after-swap:4"]
    _kill_at(["train", "--data", str(data), "--out", str(run), *FLAGS], chain[0])
    for point in chain[1:]:
        _kill_at(["train", "--resume", str(run)], point)
    _finish(["train", "--resume", str(run)])
    _, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, err
    assert _same(_weights(run), _weights(ref))
    _check_whole(run)
    assert RunDir(run).metrics()[-1]["train_loss"] == RunDir(ref).metrics()[-1]["train_loss"]


@pytest.mark.slow  # about 80 s on 2 cores; CI runs it (`pytest -m "not slow"` for a quick pass)
@pytest.mark.parametrize("point", [p for p, _ in KILL_POINTS])
def test_each_kill_point_resumes_bit_identical(crash_data, point):
    root, data, ref = crash_data
    if not (ref / "run.json").is_file():
        _finish(["train", "--data", str(data), "--out", str(ref), *FLAGS])
    run = root / f"kill-{point.replace(':', '-')}"
    _kill_at(["train", "--data", str(data), "--out", str(run), *FLAGS], point)
    _finish(["train", "--resume", str(run)])
    assert _same(_weights(run), _weights(ref)), point
    _check_whole(run)


@pytest.mark.slow
def test_sigterm_is_handled_like_ctrl_c(crash_data):
    """Old code: SIGTERM killed the process outright and run.json stayed ``running``."""
    root, data, _ = crash_data
    run = root / "term"
    proc = _layerlab("train", "--data", str(data), "--out", str(run), *FLAGS, pause="after-epoch:1")
    _wait_for_pause(proc, "after-epoch:1")
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(30) == 143
    assert "terminated (SIGTERM); the checkpoint of epoch 1 is kept" in err, err
    info = RunDir(run).info()
    assert info["status"] == "interrupted"
    assert not (run / "lock").exists()


# ----------------------------------------------------------------------------------------------
# in-process: mid-epoch resume, the lock, the data fingerprint
# ----------------------------------------------------------------------------------------------
def _cfg(data, epochs=2, **train) -> RunConfig:
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.train.epochs = epochs
    cfg.train.batch_size = 16
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def test_mid_epoch_resume_is_exact(tmp_path, monkeypatch):
    """Stopped right after the checkpoint at step 5 (mid epoch 2), resume gives the weights and
    train loss of an uninterrupted run. Old code had no mid-epoch checkpoint to resume from."""
    data = make_idx_dir(tmp_path / "d", n_train=64, n_test=16)  # 4 steps an epoch
    full, _ = api.train(_cfg(data, checkpoint_every=5), tmp_path / "full")
    real = RunDir.save_checkpoint

    def stop_after_mid_epoch(self, *a, **kw):
        real(self, *a, **kw)
        if kw.get("step"):
            raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", stop_after_mid_epoch)
    with pytest.raises(KeyboardInterrupt):
        api.train(_cfg(data, checkpoint_every=5), tmp_path / "cut")
    monkeypatch.undo()
    cut = RunDir(tmp_path / "cut")
    assert cut.info()["status"] == "interrupted"
    assert json.loads((cut.ckpt_dir / "current.json").read_text())["step"] == 1  # global step 5 = epoch 2, step 1
    assert cut.kept() == "the checkpoint after step 1 of epoch 2 is kept"
    resumed, result = api.resume(cut.path)
    assert resumed.info()["resumed_from_step"] == 1
    assert _same(_weights(full.path), _weights(resumed.path))
    assert result.history[-1]["train_loss"] == full.metrics()[-1]["train_loss"]


def test_a_locked_run_cannot_be_resumed_and_a_stale_lock_is_taken_over(tmp_path, caplog):
    """Old code had no lock: two resumes wrote one run at once."""
    import platform

    data = make_idx_dir(tmp_path / "d", n_train=32, n_test=16)
    run, _ = api.train(_cfg(data, epochs=1), tmp_path / "run")
    assert not (run.path / "lock").exists()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run.path / "lock").write_text(json.dumps({"pid": holder.pid, "host": platform.node()}))
        with pytest.raises(LayerlabError, match=f"is locked by process {holder.pid} on "):
            api.resume(run.path, epochs=2)
    finally:
        holder.kill()
        holder.wait()
    caplog.set_level("WARNING")
    api.resume(run.path, epochs=2)  # its process is gone: a stale lock
    assert f"taking over the lock of process {holder.pid}" in caplog.text
    assert RunDir(run.path).info()["status"] == "completed" and not (run.path / "lock").exists()


def test_resume_refuses_other_data(tmp_path):
    """Old code resumed on whatever data it found, silently."""
    from layerlab.data import load_dataset

    data = make_idx_dir(tmp_path / "d", n_train=32, n_test=16)
    run, _ = api.train(_cfg(data, epochs=1), tmp_path / "run")
    ds = load_dataset(str(data))
    ds.train.x[0, 0, 0, 0] += 0.5
    with pytest.raises(LayerlabError, match="the train split has the same size but other content"):
        api.resume(run.path, epochs=2, dataset=ds)
    fewer = load_dataset(str(data))
    fewer.test = fewer.test.subset(torch.arange(8))
    with pytest.raises(
        LayerlabError, match=r"the test split has 8 samples of shape \(1, 28, 28\), the run recorded 16"
    ):
        api.resume(run.path, epochs=2, dataset=fewer)
    assert not (run.path / "lock").exists()


def test_leftovers_of_a_killed_write_are_cleaned_by_the_next_writer_only(tmp_path):
    """Leftovers stay through evaluate (a read command deletes nothing: old code cleaned them there,
    and with a missing pointer every checkpoint) and go at the next ``--resume``, under its lock."""
    data = make_idx_dir(tmp_path / "d", n_train=32, n_test=16)
    run, _ = api.train(_cfg(data, epochs=1), tmp_path / "run")
    (run.ckpt_dir / ".tmp-abc").mkdir()
    (run.ckpt_dir / ".tmp-abc" / "last.safetensors").write_bytes(b"half")
    (run.ckpt_dir / "ckpt-orphan").mkdir()
    (run.path / ".run.json.x1.tmp").write_text("{")
    before = sorted(p.name for p in run.ckpt_dir.iterdir())
    api.evaluate_run(run.path)
    assert sorted(p.name for p in run.ckpt_dir.iterdir()) == before
    assert (run.path / ".run.json.x1.tmp").exists()
    api.resume(run.path, epochs=2)
    assert sorted(p.name for p in run.ckpt_dir.iterdir()) == sorted(
        ["current.json", json.loads((run.ckpt_dir / "current.json").read_text())["dir"]]
    )
    assert not (run.path / ".run.json.x1.tmp").exists()
