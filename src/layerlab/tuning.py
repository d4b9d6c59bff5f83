"""Hyperparameter search on Optuna: :func:`tune` and ``layerlab tune`` (needs the ``tune`` extra).

A study samples configs from a search space (:mod:`layerlab.space`) around a base config; each
trial is an ordinary run directory (``OUT/trial-0007``) trained by :func:`layerlab.api.train`, with
``tune`` in its ``run.json``: the study, the trial's number, its parameters, the metric and seed.
The objective is a **validation** metric of the last epoch (``val_loss`` by default); a base config
without a validation split is refused. Each epoch reports the metric to the trial, so a pruner
(median, Hyperband) can stop it: the run then records ``pruned`` (not ``failed``) and Optuna PRUNED.

Storage: an Optuna journal file by default (``OUT/optuna.journal``: several processes on one
machine, no server; Optuna locks it for each write), or any database URL Optuna takes
(``postgresql://...``) for workers on several machines. Any number of workers may join a study with
the same storage and study name; each takes trials until ``trials`` of them are COMPLETE or PRUNED.
Taking a trial is serialised (a ``flock`` on ``OUT/optuna.journal.claim``, a PostgreSQL advisory
lock or a MySQL named lock), so a study records exactly ``trials`` trials however many workers run.
A worker killed mid-trial leaves its trial RUNNING; the next worker to take a trial marks it FAIL
(and its run ``failed``) when its process is gone (same machine) or its heartbeat stopped (a
database storage), and the study goes on until ``trials`` are done: a trial is never run twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import multiprocessing
import os
import pickle
import platform
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import ConfigError, LayerlabError, TrainingError
from .space import Param, Space, apply, check_models, read_space

log = logging.getLogger(__name__)

PRUNERS = ("median", "hyperband", "none")
DEFAULT_ROOT = Path("runs") / "tune"
JOURNAL = "optuna.journal"
HEARTBEAT_SECONDS = 10  # a database storage: a trial whose worker stayed silent for GRACE is stale
GRACE_SECONDS = 60
WAIT_SECONDS = 1.0  # a worker with nothing to take waits this long for running trials to end
MAX_FAILED = 5  # a study stops once this many trials (or --trials, if more) have failed


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("layerlab tune needs Optuna: pip install 'layerlab[tune]'") from None
    return optuna


def direction(metric: str) -> str:
    """``maximize`` for an accuracy, ``minimize`` for a loss (as EarlyStopping's ``auto`` mode)."""
    return "maximize" if "acc" in metric else "minimize"


def check_metric(metric: str) -> None:
    if not isinstance(metric, str) or not metric.startswith("val_") or len(metric) <= 4:
        raise ConfigError(
            f"--metric must be a validation column such as val_loss or val_accuracy, got {metric!r} "
            f"(a study never chooses on the test set)"
        )


def default_journal(out: str | Path) -> Path:
    return Path(out) / JOURNAL


def _is_url(storage: str) -> bool:
    return "://" in storage


def describe_storage(storage: str) -> str:
    """The storage for messages: a database URL without its password."""
    if not _is_url(storage):
        return storage
    try:
        from sqlalchemy.engine import make_url

        return make_url(storage).render_as_string(hide_password=True)
    except Exception:
        return storage.split("@")[-1]


def _without_password(text: str, url: str) -> str:
    """``text`` with the password of the database ``url`` masked (a driver's error may quote the URL)."""
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


def open_storage(storage: str) -> Any:
    """Optuna's storage for ``storage``: a database URL, or the path of a journal file."""
    optuna = _optuna()
    if not _is_url(storage):
        from optuna.storages.journal import JournalFileBackend

        path = Path(storage).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        except OSError as e:
            raise LayerlabError(f"{path}: cannot open the journal file ({e.strerror or e})") from None
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna, and what optimize() uses
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    storage, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
                )
        except ImportError as e:
            raise ConfigError(f"{describe_storage(storage)}: the database driver is not installed ({e})") from None
        except Exception as e:  # sqlalchemy's errors: a refused connection, a bad URL
            reason = _without_password(" ".join(str(e).split()), storage)
            # workers that start together on a new database race to create Optuna's tables: the loser retries
            if attempt < 4 and ("already exists" in reason or "duplicate key" in reason.lower()):
                time.sleep(0.5 + attempt)
                continue
            raise LayerlabError(
                f"{describe_storage(storage)}: cannot open the study storage ({reason[:300]})"
            ) from None
    raise AssertionError("unreachable")


def _pruner(prune, epochs: int):
    optuna = _optuna()
    if isinstance(prune, optuna.pruners.BasePruner):
        return prune
    if prune == "median":  # a trial is compared from its first epoch on, after two whole trials
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if prune == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    if prune == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--prune must be one of {', '.join(PRUNERS)}, got {prune!r}")


def _sampler(space: Space, number: int = 0):
    """The space's sampler for trial ``number``: a seeded space seeds it with ``seed + number``, so
    that workers of one study never draw the same values from the same seed, and one worker's study
    draws the same values on every rerun."""
    optuna = _optuna()
    seed = None if space.seed is None else (space.seed + number) % 2**32
    if space.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _suggest(trial, p: Param):
    if p.kind == "categorical":
        return trial.suggest_categorical(p.key, list(p.choices))
    if p.kind == "int":
        return trial.suggest_int(p.key, p.low, p.high, step=p.step or 1, log=p.log)
    assert p.low is not None and p.high is not None  # (a float range has both ends)
    return trial.suggest_float(p.key, float(p.low), float(p.high), step=p.step, log=p.log)


# ----------------------------------------------------------------------------------------------
# The pruning callback
# ----------------------------------------------------------------------------------------------
def _reporter(trial, metric: str):
    from .callbacks import Callback

    class ReportToTrial(Callback):
        """Report ``metric`` after each epoch to the Optuna trial; stop when its pruner says so (before
        the last epoch: a trial that trained all its epochs is complete, whatever the pruner says)."""

        def __init__(self) -> None:
            self.pruned: dict | None = None

        def check(self, held_out: str, cfg) -> None:
            if held_out != "val_":
                raise ConfigError("a tuning trial needs a validation split (data.validation above 0)")

        def on_epoch_end(self, trainer, epoch: int, row: dict) -> None:
            if metric not in row:
                known = ", ".join(k for k in row if k.startswith("val_"))
                raise ConfigError(
                    f"--metric {metric} is not a column of this run's epochs; its validation columns: {known}"
                )
            value = float(row[metric])
            trial.report(value, epoch)
            # after the last epoch there is nothing left to save: the trial is COMPLETE with its value
            if epoch < trainer.epochs and trial.should_prune():
                self.pruned = {"epoch": epoch, "metric": metric, "value": value}
                trainer.stop_training = True
                trainer.stop_reason = f"pruned by the study's pruner after epoch {epoch} ({metric} {value:.6g})"

    return ReportToTrial()


# ----------------------------------------------------------------------------------------------
# Taking a trial: one worker at a time
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _claim_lock(storage, where: str, study: str):
    """Serialise "count the trials, then ask for one" across every worker of ``study``; yields
    whether it does (not on SQLite, which has no lock to take: one machine, one worker)."""
    if not _is_url(where):
        import fcntl

        with open(str(Path(where).expanduser()) + ".claim", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released by the kernel if this process dies
            try:
                yield True
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return
    engine = getattr(storage, "engine", None)
    dialect = getattr(getattr(engine, "dialect", None), "name", "")
    if dialect not in ("postgresql", "mysql"):
        yield False  # SQLite: one file, one machine; see the README for why a journal file is better
        return
    from sqlalchemy import text

    assert engine is not None  # (it has a dialect)
    key = int.from_bytes(hashlib.sha256(f"layerlab-tune:{study}".encode()).digest()[:8], "big", signed=True)
    with engine.connect() as conn:
        if dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        else:
            conn.execute(text("SELECT GET_LOCK(:k, -1)"), {"k": str(key)})
        try:
            yield True
        finally:
            if dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            else:
                conn.execute(text("SELECT RELEASE_LOCK(:k)"), {"k": str(key)})
            conn.commit()


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (field 22 of /proc/PID/stat), to tell a reused pid from the worker."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def _worker_id() -> dict:
    return {"host": platform.node(), "pid": os.getpid(), "start": _process_start(os.getpid())}


def _worker_gone(worker) -> bool:
    """Whether the worker a trial names is known to have ended (only a worker of this machine can be checked)."""
    if not isinstance(worker, dict) or worker.get("host") != platform.node():
        return False
    pid = worker.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    start = _process_start(pid)
    return start is not None and worker.get("start") is not None and start != worker["start"]


def _fail_stale(study, storage, locked: bool) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker died (their run directories ``failed``); the numbers.
    Called under the claim lock: a RUNNING trial that names no worker was asked for by a worker that
    died before it could say who it was (every other worker waits for the lock to ask)."""
    optuna = _optuna()
    from optuna.trial import TrialState

    failed = []
    if hasattr(storage, "is_heartbeat_enabled") and storage.is_heartbeat_enabled():
        failed += [t.number for t in optuna.storages.fail_stale_trials(study) or []]
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if (worker is None and locked) or (worker is not None and _worker_gone(worker)):
            try:
                ok = storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except RuntimeError:  # finished meanwhile
                ok = False
            if ok:
                failed.append(t.number)
                _mark_run_failed(t.user_attrs.get("run_dir"), worker)
    return failed


def _mark_run_failed(run_dir, worker) -> None:
    if not isinstance(run_dir, str) or not Path(run_dir, "run.json").is_file():
        return
    from .rundir import RunDir

    run = RunDir(run_dir)
    try:
        run.acquire_lock()  # a dead worker's lock is stale: taken over
    except LayerlabError:
        return
    try:
        if run.info().get("status") == "running":
            pid = worker.get("pid") if isinstance(worker, dict) else None
            run.finish("failed", error=f"the tuning worker (process {pid}) ended in the middle of this trial")
    except LayerlabError as e:
        log.warning("%s: could not record the trial as failed: %s", run_dir, e)
    finally:
        run.release_lock()


def _counts(study) -> dict:
    from optuna.trial import TrialState

    counts = {s: 0 for s in ("COMPLETE", "PRUNED", "RUNNING", "FAIL", "WAITING")}
    for t in study.get_trials(deepcopy=False):
        counts[TrialState(t.state).name] = counts.get(TrialState(t.state).name, 0) + 1
    return counts


def _claim(study, storage, where: str, name: str, n: int, space: Space):
    """A new trial for this worker, or None once ``n`` trials are COMPLETE or PRUNED. While the rest
    are running elsewhere it waits: one of them may fail, and then its place is this worker's."""
    while True:
        with _claim_lock(storage, where, name) as locked:
            _fail_stale(study, storage, locked=locked)
            c = _counts(study)
            done = c["COMPLETE"] + c["PRUNED"]
            if done >= n:
                return None
            if c["FAIL"] >= max(n, MAX_FAILED):  # a space whose values cannot train: never an endless search
                raise TrainingError(
                    f"study {name!r}: {c['FAIL']} trials failed and {done} of {n} are done; the trials' run "
                    f"directories (run.json's error) say why"
                )
            if done + c["RUNNING"] < n:
                if space.seed is not None:
                    study.sampler = _sampler(space, sum(c.values()))  # the number the next trial gets
                trial = study.ask()
                trial.set_user_attr("worker", _worker_id())
                return trial
        time.sleep(WAIT_SECONDS)


@contextlib.contextmanager
def _heartbeat(storage, trial):
    """Record the trial's heartbeat while it trains (a database storage; Optuna's optimize does the same)."""
    if not (hasattr(storage, "is_heartbeat_enabled") and storage.is_heartbeat_enabled()):
        yield
        return
    stop = threading.Event()

    def beat():
        while not stop.is_set():
            with contextlib.suppress(Exception):
                storage.record_heartbeat(trial._trial_id)
            stop.wait(storage.get_heartbeat_interval() or HEARTBEAT_SECONDS)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# ----------------------------------------------------------------------------------------------
# One worker
# ----------------------------------------------------------------------------------------------
@dataclass
class _Job:
    """What every worker of one ``tune`` call needs (picklable: worker processes get a copy)."""

    config: dict
    space: Space
    trials: int
    storage: str
    study: str
    prune: object
    metric: str
    out: str
    threads: int | None = None
    on_trial: Callable[[dict], None] | None = None  # a module-level function (picklable)


def _trial_summary(t, metric: str) -> dict:
    from optuna.trial import TrialState

    return {
        "number": t.number,
        "state": TrialState(t.state).name,
        "value": t.value if t.values else None,
        "metric": metric,
        "params": dict(t.params),
        "run_dir": t.user_attrs.get("run_dir"),
        "seconds": round(t.duration.total_seconds(), 2) if t.duration else None,
    }


def _work(job: _Job) -> int:
    """Take and train trials until the study has ``job.trials`` COMPLETE or PRUNED; the number trained here."""
    optuna = _optuna()
    from optuna.trial import TrialState

    from . import api

    base = RunConfig.from_dict(job.config, "the study's base config")
    storage = open_storage(job.storage)
    study = optuna.load_study(
        study_name=job.study, storage=storage, sampler=_sampler(job.space), pruner=_pruner(job.prune, base.train.epochs)
    )
    datasets: dict = {}
    if not any(p.key.startswith("data.") for p in job.space.params):  # bad data: an error before any trial
        _dataset(api, base, datasets)
    done = 0
    while True:
        trial = _claim(study, storage, job.storage, job.study, job.trials, job.space)
        if trial is None:
            return done
        with _heartbeat(storage, trial):
            state, value = _run_trial(api, job, base, study, trial, datasets)
        if state == TrialState.COMPLETE:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
        done += 1
        if job.on_trial is not None:
            job.on_trial(_trial_summary(storage.get_trial(trial._trial_id), job.metric))


def _dataset(api, cfg: RunConfig, datasets: dict):
    """The data of ``cfg``, loaded once for every trial on the same data and split (what
    :func:`layerlab.api.prepare_data` reads: the data config, the seed that splits it, the model's kind)."""
    key = (repr(sorted(cfg.data.__dict__.items())), cfg.train.seed, cfg.model.name, cfg.model.global_pool)
    if key not in datasets:
        datasets.clear()
        datasets[key] = api.prepare_data(cfg)
    return datasets[key]


def _run_trial(api, job: _Job, base: RunConfig, study, trial, datasets: dict):
    from optuna.trial import TrialState

    values = job.space.sample(lambda p: _suggest(trial, p), base)
    cfg = apply(base, values, f"trial {trial.number}")
    if job.threads and base.train.threads is None:
        cfg.train.threads = job.threads
    path = Path(job.out) / f"trial-{trial.number:04d}"
    trial.set_user_attr("run_dir", str(path.resolve()))
    trial.set_user_attr("seed", cfg.train.seed)
    record = {
        "tune": {
            "study": job.study,
            "trial": trial.number,
            "params": values,
            "metric": job.metric,
            "seed": cfg.train.seed,
            "storage": describe_storage(job.storage),
        }
    }
    reporter = _reporter(trial, job.metric)
    try:
        ds = _dataset(api, cfg, datasets)
        run, result = api.train(cfg, path, dataset=ds, callbacks=[reporter], record=record)
    except TrainingError as e:  # a diverging trial (a loss of NaN) is an outcome of the search
        trial.set_user_attr("error", str(e))
        log.warning("trial %d failed: %s", trial.number, e)
        return TrialState.FAIL, None
    except BaseException as e:
        with contextlib.suppress(Exception):
            trial.set_user_attr("error", str(e) or type(e).__name__)
            study.tell(trial, state=TrialState.FAIL)
        raise
    if reporter.pruned is not None:
        run.update_info(status="pruned", pruned=reporter.pruned)
        return TrialState.PRUNED, None
    value = float(result.history[-1][job.metric])
    if not math.isfinite(value):
        trial.set_user_attr("error", f"{job.metric} is {value}")
        return TrialState.FAIL, None
    return TrialState.COMPLETE, value


def _worker_main(job: _Job) -> None:
    """A worker process of ``tune(workers=K)``: exit 2 with one sentence for bad input, as the CLI does."""
    import sys

    _quiet_optuna()
    try:
        _work(job)
    except LayerlabError as e:
        print(f"layerlab: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _quiet_optuna() -> None:
    if not log.isEnabledFor(logging.INFO):
        _optuna().logging.set_verbosity(_optuna().logging.WARNING)


# ----------------------------------------------------------------------------------------------
# The front door
# ----------------------------------------------------------------------------------------------
@dataclass
class TuneResult:
    """A study after :func:`tune`: its name, storage, folder of runs, the count of trials by state,
    its trials (dicts: number, state, value, params, run_dir, seconds), the best of them and the
    ``top`` few, and the parameter importances (or a note saying why there are none)."""

    study: str
    storage: str
    out: str
    metric: str
    direction: str
    counts: dict
    trials: list[dict]
    best: dict | None
    top: list[dict] = dataclasses.field(default_factory=list)
    importances: dict | None = None
    importances_note: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _load_config(config) -> RunConfig:
    if isinstance(config, RunConfig):
        return RunConfig.from_dict(config.to_dict(), "config")
    from .presets import resolve

    return RunConfig.from_toml(resolve(config))


def check_study(cfg: RunConfig, space: Space, metric: str, where: str = "config") -> None:
    """Everything a study refuses, before it is created: a base config without a validation split,
    a metric that is not a validation column, a model field its model does not take."""
    check_metric(metric)
    cfg.validate(where)
    if not cfg.data.validation:
        raise ConfigError(
            f"{where} holds out no validation split (data.validation = 0); a study is measured on validation "
            f"data, never on the test set: set validation = 0.1 in its [data], or pass --validation 0.1"
        )
    from .config import check_model_options

    check_model_options(cfg.model, where)
    check_models(space, cfg)


def tune(
    config: RunConfig | str | Path,
    space: Space | str | Path,
    trials: int,
    *,
    storage: str | None = None,
    study: str | None = None,
    workers: int = 1,
    prune: Any = "median",
    metric: str = "val_loss",
    out: str | Path | None = None,
    validation: float | None = None,
    on_trial: Callable[[dict], None] | None = None,
) -> TuneResult:
    """Search hyperparameters with Optuna: train trials of ``config`` (a RunConfig, a config file or
    a preset name) with values from ``space`` (a :class:`~layerlab.space.Space` or a TOML file) until
    the study has ``trials`` COMPLETE or PRUNED trials (those already in the study count: a second
    call, or a restarted worker, continues it).

    Args:
        storage: a database URL Optuna takes (``postgresql://user@host/db``), or a journal file
            path; default ``OUT/optuna.journal``.
        study: the study's name (default: the space file's name, or ``study``).
        workers: worker processes on this machine sharing the storage (each gets ``cores // workers``
            threads unless the config sets ``threads``).
        prune: ``median``, ``hyperband``, ``none`` or an Optuna pruner.
        metric: the validation column to optimise (``val_loss`` is minimised, ``val_accuracy``
            maximised), of the last epoch.
        out: the folder of the trials' run directories (default ``runs/tune/STUDY``).
        validation: the fraction of the training set to hold out, over the config's ``data.validation``
            (the presets hold out none).
        on_trial: a function called with a summary dict after each trial a worker finishes (with
            ``workers`` > 1 it runs in the worker process: a module-level function).

    Returns:
        The study's report (:class:`TuneResult`, as :func:`show` gives it): its trials, the best
        ones and where their run directories are.

    Raises:
        ConfigError: a bad argument, a space that does not fit the config, a base config without a
            validation split, or a storage that cannot be opened, before any trial runs.
        LayerlabError: a worker process failed.
    """
    optuna = _optuna()
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"--trials must be a whole number of at least 1, got {trials!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be a whole number of at least 1, got {workers!r}")
    where = str(config) if not isinstance(config, RunConfig) else "config"
    cfg = _load_config(config)
    if validation is not None:
        cfg.data.validation = validation
    if not isinstance(space, Space):
        study = study or Path(space).stem
        space = read_space(space)
    study = study or "study"
    check_study(cfg, space, metric, where)
    _pruner(prune, cfg.train.epochs)  # a bad --prune before the study exists
    out = Path(out) if out is not None else DEFAULT_ROOT / study
    storage = str(storage) if storage else str(default_journal(out))
    threads = None
    if workers > 1 and cfg.train.threads is None:
        threads = max(1, (os.cpu_count() or 1) // workers)
    job = _Job(cfg.to_dict(), space, trials, storage, study, prune, metric, str(out), threads, on_trial)
    if workers > 1:
        try:
            pickle.dumps(job)
        except Exception as e:  # a lambda or a local function cannot reach a worker process
            raise ConfigError(
                f"with workers > 1, on_trial and prune go to worker processes and must be picklable "
                f"(a module-level function, an Optuna pruner): {type(e).__name__}: {e}"
            ) from None
    out.mkdir(parents=True, exist_ok=True)
    _quiet_optuna()
    _open_study(optuna, open_storage(storage), storage, study, cfg, space, metric)
    if workers == 1:
        _work(job)
    else:
        _spawn(job, workers)
    return show(study, storage=storage, out=out, importances=False)  # seconds of fANOVA: --show computes them


def _open_study(optuna, handle, storage: str, study: str, cfg: RunConfig, space: Space, metric: str) -> None:
    """Create the study, or check that the one there was started with this config, space and metric
    (workers of one study must all search the same thing)."""
    s = optuna.create_study(study_name=study, storage=handle, direction=direction(metric), load_if_exists=True)
    mine = {"config": cfg.to_dict(), "space": space.to_dict(), "metric": metric}
    theirs = s.user_attrs.get("layerlab")
    if theirs is None:
        s.set_user_attr("layerlab", mine)
        return
    for what in ("metric", "space", "config"):
        if theirs.get(what) != mine[what]:
            raise ConfigError(
                f"study {study!r} in {describe_storage(storage)} was started with another {what}; "
                f"give a new --study name, or the same {what} to continue it"
            )


def _spawn(job: _Job, workers: int) -> None:
    ctx = multiprocessing.get_context("spawn")  # no forked torch or Optuna state in the children
    procs = [ctx.Process(target=_worker_main, args=(job,), name=f"tune-worker-{i}") for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join()  # each got the Ctrl-C too, and records its trial as failed
        raise
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise LayerlabError(f"{len(bad)} of {workers} tuning workers failed (exit codes {bad}); see the messages above")


# ----------------------------------------------------------------------------------------------
# A study's report
# ----------------------------------------------------------------------------------------------
def show(
    study: str, *, storage: str | None = None, out: str | Path | None = None, top: int = 5, importances: bool = True
) -> TuneResult:
    """A study's trials, its best ``top`` and, with ``importances``, the parameter importances
    (Optuna's fANOVA; a note instead where there are too few completed trials)."""
    optuna = _optuna()
    from optuna.trial import TrialState

    if not storage:
        storage = str(default_journal(Path(out) if out else DEFAULT_ROOT / study))
        if not Path(storage).is_file():
            raise ConfigError(f"no study {study!r} at {storage}; pass --storage (or --out) as tune was given")
    _quiet_optuna()
    handle = open_storage(storage)
    try:
        s = optuna.load_study(study_name=study, storage=handle)
    except KeyError:
        names = [x.study_name for x in optuna.get_all_study_summaries(handle)]
        raise ConfigError(
            f"no study {study!r} in {describe_storage(storage)}; it holds {', '.join(names) or 'no study'}"
        ) from None
    attrs = s.user_attrs.get("layerlab", {})
    metric = attrs.get("metric", "value")
    trials = [_trial_summary(t, metric) for t in s.get_trials(deepcopy=False)]
    done = [t for t in trials if t["state"] == "COMPLETE"]
    sign = -1 if s.direction == optuna.study.StudyDirection.MAXIMIZE else 1
    ranked = sorted(done, key=lambda t: sign * t["value"])
    weights, note = None, None
    if not importances:
        note = f"`layerlab tune --show {study}` computes them"
    elif len(done) < 2:
        note = f"none: they need at least 2 completed trials, the study has {len(done)}"
    else:
        try:
            completed = s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not any(t.params for t in completed):
                note = "none: no parameter was sampled"
            else:
                weights = {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(s).items()}
        except (ValueError, RuntimeError, ZeroDivisionError) as e:
            note = f"none: they could not be computed ({' '.join(str(e).split())[:200]})"
    counts = {k: v for k, v in _counts(s).items() if v}
    first = next((t["run_dir"] for t in trials if t["run_dir"]), None)
    return TuneResult(
        study=study,
        storage=describe_storage(storage),
        out=str(out) if out else (str(Path(first).parent) if first else ""),
        metric=metric,
        direction=s.direction.name.lower(),
        counts=counts,
        trials=trials,
        best=ranked[0] if ranked else None,
        top=ranked[:top],
        importances=weights,
        importances_note=note,
    )
