"""``layerlab tune`` and :func:`layerlab.tuning.tune` on tiny data: each trial is a valid run
directory with its study, number and parameters in run.json; a base config without a validation
split is refused; a pruned trial is recorded ``pruned`` (Optuna: PRUNED); workers share a journal
file with exactly N trials and no duplicate; a worker killed mid-trial (kill -9) leaves its trial
failed, and a restarted worker completes the study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="layerlab tune needs the tune extra (optuna)")

from datagen import make_idx_dir  # noqa: E402
from layerlab import tuning  # noqa: E402
from layerlab.record import list_runs, read_info  # noqa: E402
from layerlab.rundir import RunDir  # noqa: E402

SPACE = """
[train.lr]
float = [1e-3, 1e-1]
log = true

[model.hidden]
int = [4, 16]
"""


def write_base(tmp: Path, validation: float = 0.25, epochs: int = 1) -> Path:
    data = make_idx_dir(tmp / "bars", n_train=80, n_test=20)
    base = tmp / "base.toml"
    base.write_text(
        f'[data]\nname = "{data}"\nvalidation = {validation}\n'
        f'[model]\nname = "mlp"\nhidden = 8\nlayers = 1\n'
        f'[train]\nepochs = {epochs}\nbatch_size = 20\ndevice = "cpu"\nthreads = 1\n'
    )
    return base


@pytest.fixture
def study_files(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    return write_base(tmp_path), space


def _layerlab(*args, pause: str | None = None, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LAYERLAB_TEST_PAUSE_AT", None)
    if pause:
        env["LAYERLAB_TEST_PAUSE_AT"] = pause
    return subprocess.Popen(
        [sys.executable, "-m", "layerlab", "tune", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _check_study(out: Path, study: str, n_done: int) -> list:
    """The study's trials; checks that every trial has its own valid run directory that says the
    trial's number, study and parameters and its state, and that ``n_done`` are COMPLETE or PRUNED."""
    s = optuna.load_study(study_name=study, storage=tuning.open_storage(str(out / "optuna.journal")))
    trials = s.get_trials(deepcopy=False)
    assert all(Path(t.user_attrs["run_dir"]).parent == out.resolve() for t in trials)
    _check_rundirs(trials, study)
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == n_done
    return trials


def _check_rundirs(trials: list, study: str) -> None:
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # no duplicate, no gap
    dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(dirs)) == len(dirs)
    want = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed"}
    for t in trials:
        run = Path(t.user_attrs["run_dir"])
        assert run.name == f"trial-{t.number:04d}"
        info = read_info(run)
        assert info["tune"]["study"] == study and info["tune"]["trial"] == t.number
        assert info["tune"]["params"] == t.params
        assert info["status"] == want[t.state.name], (t.number, t.state, info["status"])
        if t.state.name == "COMPLETE":
            RunDir(run).model("best")  # a whole run: its weights load
            cfg = RunDir(run).config()
            for key, value in t.params.items():  # the run trained with the trial's values
                section, name = key.split(".")
                assert getattr(getattr(cfg, section), name) == value


def test_a_study_writes_one_run_directory_per_trial(study_files, tmp_path):
    base, space = study_files
    out = tmp_path / "study"
    seen = []
    r = tuning.tune(str(base), str(space), 2, out=out, prune="none", metric="val_accuracy", on_trial=seen.append)
    trials = _check_study(out, "space", 2)
    assert len(trials) == 2 and [t["number"] for t in seen] == [0, 1]
    assert r.counts == {"COMPLETE": 2} and r.direction == "maximize"
    assert r.best["value"] == max(t.value for t in trials)
    # the objective is the last epoch's validation accuracy, as metrics.csv has it
    best_run = Path(r.best["run_dir"])
    assert abs(RunDir(best_run).metrics()[-1]["val_accuracy"] - r.best["value"]) < 1e-9
    # a second call continues the same study to 3 trials
    tuning.tune(str(base), str(space), 3, out=out, prune="none", metric="val_accuracy")
    assert len(_check_study(out, "space", 3)) == 3
    assert r.importances is None and "--show space" in r.importances_note  # tune leaves them to --show
    # the trials are ordinary runs to the run listing (what the explorer reads), with their parameters
    records = list_runs(tmp_path)
    assert [rec.path.name for rec in records] == ["trial-0000", "trial-0001", "trial-0002"]
    assert [rec.info["tune"]["params"] for rec in records] == [t.params for t in _check_study(out, "space", 3)]
    shown = tuning.show("space", out=out)
    assert shown.counts == {"COMPLETE": 3} and set(shown.importances) == {"train.lr", "model.hidden"}


def test_a_base_config_without_validation_is_refused_in_one_sentence(tmp_path):
    base = write_base(tmp_path, validation=0.0)
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    out = tmp_path / "study"
    p = _layerlab("--config", str(base), "--space", str(space), "--trials", "2", "--out", str(out))
    _stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 2
    assert stderr.count("\n") == 1 and "no validation split" in stderr and "never on the test set" in stderr
    assert not out.exists()  # nothing made


@pytest.mark.slow
def test_validation_holds_out_a_split_of_a_config_without_one(tmp_path):
    base = write_base(tmp_path, validation=0.0)
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    out = tmp_path / "study"
    p = _layerlab(*"--trials 1 --prune none --validation 0.25 --quiet".split(), "--config", str(base), "--space",
                  str(space), "--out", str(out))  # fmt: skip
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    assert RunDir(out / "trial-0000").config().data.validation == 0.25


@pytest.mark.parametrize(
    "args, words",
    [
        (["--metric", "test_accuracy"], "--metric must be a validation column"),
        (["--trials", "0"], "--trials"),
        (["--space", "SPACE_BAD"], "[train] has no field 'lrr'"),
    ],
)
def test_bad_tune_options_are_one_sentence(study_files, tmp_path, args, words):
    base, space = study_files
    bad = tmp_path / "bad.toml"
    bad.write_text("[train.lrr]\nfloat = [0.1, 0.2]\n")
    given = {"--config": str(base), "--space": str(space), "--trials": "2", "--out": str(tmp_path / "s")}
    for k, v in zip(args[::2], args[1::2], strict=True):
        given[k] = str(bad) if v == "SPACE_BAD" else v
    p = _layerlab(*[x for kv in given.items() for x in kv])
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 2 and stderr.count("\n") == 1 and words in stderr, stderr


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_a_pruned_trial_is_recorded_pruned_not_failed(tmp_path):
    base = write_base(tmp_path, epochs=3)
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    out = tmp_path / "study"
    r = tuning.tune(str(base), str(space), 2, out=out, prune=AlwaysPrune())
    assert r.counts == {"PRUNED": 2} and r.best is None
    trials = _check_study(out, "space", 2)
    for t in trials:
        info = read_info(t.user_attrs["run_dir"])
        assert info["status"] == "pruned" and info["pruned"]["epoch"] == 1
        assert info["stopped_early"]["epoch"] == 1 and "pruned" in info["stopped_early"]["reason"]
        assert len(RunDir(t.user_attrs["run_dir"]).metrics()) == 1  # stopped after its first epoch
        assert t.intermediate_values == {1: info["pruned"]["value"]}
    assert "at least 2 completed trials" in tuning.show("space", out=out).importances_note


def test_a_trial_is_not_pruned_after_its_last_epoch(tmp_path):
    # a pruner that says "prune" at every step stops a trial after epoch 1 of 2; after the last epoch
    # there is nothing left to save, so a 1-epoch trial is COMPLETE with its value (not PRUNED and lost)
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    for epochs, state, status, trained in ((2, "PRUNED", "pruned", 1), (1, "COMPLETE", "completed", 1)):
        base = write_base(tmp_path / f"e{epochs}", epochs=epochs)
        out = tmp_path / f"study-e{epochs}"
        r = tuning.tune(str(base), str(space), 1, out=out, prune=AlwaysPrune(), metric="val_accuracy")
        assert r.counts == {state: 1}
        for t in _check_study(out, "space", 1):
            info = read_info(t.user_attrs["run_dir"])
            assert info["status"] == status and len(RunDir(t.user_attrs["run_dir"]).metrics()) == trained
            assert list(t.intermediate_values) == list(range(1, trained + 1))
    assert r.best is not None and r.best["value"] == r.trials[0]["value"] == t.intermediate_values[1]


def test_show_of_a_missing_study_is_one_sentence(tmp_path, study_files):
    base, space = study_files
    out = tmp_path / "study"
    tuning.tune(str(base), str(space), 1, out=out, prune="none")
    p = _layerlab("--show", "other", "--out", str(out))
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 2 and "no study 'other'" in stderr and "it holds space" in stderr
    p = _layerlab("--show", "space", "--out", str(out))
    stdout, _ = p.communicate(timeout=120)
    assert p.returncode == 0 and "1 complete" in stdout and "need at least 2 completed trials" in stdout
    p = _layerlab("--show", "space", "--out", str(out), "--json")
    stdout, _ = p.communicate(timeout=120)
    shown = json.loads(stdout)
    assert shown["counts"] == {"COMPLETE": 1} and shown["best"]["run_dir"] == str((out / "trial-0000").resolve())


def test_a_study_refuses_a_worker_with_another_space(study_files, tmp_path):
    base, space = study_files
    out = tmp_path / "study"
    tuning.tune(str(base), str(space), 1, out=out, prune="none")
    other = tmp_path / "other.toml"
    other.write_text("[train.lr]\nfloat = [0.01, 0.1]\n")
    with pytest.raises(tuning.ConfigError, match="was started with another space"):
        tuning.tune(str(base), str(other), 2, out=out, study="space", prune="none")


@pytest.mark.slow
def test_three_workers_on_one_journal_record_exactly_twelve_trials(study_files, tmp_path):
    base, space = study_files
    out = tmp_path / "study"
    p = _layerlab(
        "--config", str(base), "--space", str(space), "--trials", "12", "--workers", "3", "--out", str(out),
        "--prune", "none",
    )  # fmt: skip
    stdout, stderr = p.communicate(timeout=600)
    assert p.returncode == 0, stderr
    trials = _check_study(out, "space", 12)
    assert len(trials) == 12 and all(t.state.name == "COMPLETE" for t in trials)
    workers = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(workers) > 1  # shared between processes
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [f"trial-{i:04d}" for i in range(12)]
    assert len([line for line in stdout.splitlines() if line.startswith("trial ")]) == 12


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_it_failed_and_a_restarted_worker_completes_the_study(study_files, tmp_path):
    base, space = study_files
    out = tmp_path / "study"
    args = ["--config", str(base), "--space", str(space), "--trials", "3", "--out", str(out), "--prune", "none"]
    first = _layerlab(*args, pause="step:1")
    for line in first.stderr:  # trial 0 is in its first training step
        if line.strip() == "LAYERLAB_PAUSED step":
            break
    else:
        pytest.fail(f"the worker ended (code {first.wait()}) before its first step")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    s = optuna.load_study(study_name="space", storage=tuning.open_storage(str(out / "optuna.journal")))
    assert [t.state.name for t in s.get_trials()] == ["RUNNING"]  # the dead worker's trial, left behind
    assert read_info(out / "trial-0000")["status"] == "running"
    again = _layerlab(*args)
    _stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    trials = _check_study(out, "space", 3)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    info = read_info(out / "trial-0000")
    assert info["status"] == "failed" and f"process {first.pid}" in info["error"]


def test_a_study_whose_trials_all_diverge_stops_with_one_sentence(tmp_path):
    base = write_base(tmp_path)
    space = tmp_path / "space.toml"
    space.write_text('[train.lr]\nfloat = [1e30, 1e31]\n[train.optimizer]\nchoices = ["sgd"]\n')  # steps to inf
    out = tmp_path / "study"
    with pytest.raises(tuning.TrainingError, match=r"5 trials failed and 0 of 2 are done"):
        tuning.tune(str(base), str(space), 2, out=out, prune="none")
    trials = optuna.load_study(study_name="space", storage=tuning.open_storage(str(out / "optuna.journal"))).trials
    assert [t.state.name for t in trials] == ["FAIL"] * 5
    for t in trials:
        info = read_info(t.user_attrs["run_dir"])
        assert info["status"] == "failed" and "loss became" in info["error"] and "loss became" in t.user_attrs["error"]


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_taken_over_by_a_worker_still_running(study_files, tmp_path):
    """Two workers at once, one killed in its first trial: the other sees that its process is gone,
    marks the trial failed and takes its place, and the study completes with no restart."""
    base, space = study_files
    out = tmp_path / "study"
    args = ["--config", str(base), "--space", str(space), "--trials", "3", "--out", str(out), "--prune", "none"]
    doomed = _layerlab(*args, pause="step:1")
    for line in doomed.stderr:
        if line.strip() == "LAYERLAB_PAUSED step":
            break
    else:
        pytest.fail(f"the worker ended (code {doomed.wait()}) before its first step")
    other = _layerlab(*args)  # starts while trial 0 is running
    storage = tuning.open_storage(str(out / "optuna.journal"))
    deadline = time.monotonic() + 120
    while len(optuna.load_study(study_name="space", storage=storage).trials) < 2:  # the other has a trial
        assert time.monotonic() < deadline and other.poll() is None, "the second worker took no trial"
        time.sleep(0.2)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(30)
    _, stderr = other.communicate(timeout=300)
    assert other.returncode == 0, stderr
    trials = _check_study(out, "space", 3)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert {t.user_attrs["worker"]["pid"] for t in trials[1:]} == {other.pid}


def test_a_seeded_space_reruns_trial_for_trial(tmp_path):
    base = write_base(tmp_path)
    space = tmp_path / "space.toml"
    space.write_text("[search]\nseed = 7\n" + SPACE)
    runs = [tuning.tune(str(base), str(space), 2, out=tmp_path / f"s{i}", prune="none") for i in range(2)]
    params = [[t["params"] for t in r.trials] for r in runs]
    values = [[t["value"] for t in r.trials] for r in runs]
    assert params[0] == params[1] and values[0] == values[1]  # same values drawn, same runs trained
    # a second worker (here: a second call) with the same seed does not draw the first one's values again
    out = tmp_path / "joined"
    tuning.tune(str(base), str(space), 1, out=out, prune="none")
    r = tuning.tune(str(base), str(space), 2, out=out, prune="none")
    assert r.trials[0]["params"] == params[0][0] and r.trials[1]["params"] != r.trials[0]["params"]


def test_workers_refuse_a_callback_that_cannot_reach_them(study_files, tmp_path):
    base, space = study_files
    with pytest.raises(tuning.ConfigError, match="must be picklable"):
        tuning.tune(str(base), str(space), 2, out=tmp_path / "s", workers=2, on_trial=lambda t: None)
    assert not (tmp_path / "s").exists()  # refused before the study exists


def _seed_for(draws: list[float], choices: list[float]) -> int:
    """A ``[search] seed`` whose random sampler draws ``draws`` for trials 0, 1, ... (each trial's
    sampler is seeded with seed + its number, and a random sampler ignores the history)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for seed in range(500):
        got = [
            optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed + k))
            .ask()
            .suggest_categorical("train.lr", choices)
            for k in range(len(draws))
        ]
        if got == draws:
            return seed
    raise AssertionError("no seed draws that sequence")


@pytest.mark.slow
def test_the_median_pruner_stops_a_trial_worse_than_the_others(tmp_path):
    base = write_base(tmp_path, epochs=2)
    choices = [0.05, 0.0]  # lr 0 trains nothing: its validation loss stays where it started
    seed = _seed_for([0.05, 0.05, 0.0], choices)
    space = tmp_path / "space.toml"
    space.write_text(f'[search]\nsampler = "random"\nseed = {seed}\n[train.lr]\nchoices = [0.05, 0.0]\n')
    out = tmp_path / "study"
    p = _layerlab("--config", str(base), "--space", str(space), "--trials", "3", "--out", str(out), "--prune", "median")
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    trials = _check_study(out, "space", 3)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert trials[2].params == {"train.lr": 0.0}
    assert len(RunDir(out / "trial-0002").metrics()) == 1  # stopped after epoch 1 of 2
    assert "trial    2 pruned" in stdout
