"""The run directory: the unit users keep, and the single source of truth after ``train``.

Evaluate, predict, generate, inspect and the report ask a :class:`RunDir` for its model
(:meth:`RunDir.model`: ``best``, ``last`` or ``init`` weights), its input spec
(:attr:`RunDir.spec`: how raw input becomes a sample) and its data (:meth:`RunDir.dataset`);
none of them rebuilds these.

    RUN/config.toml            resolved configuration (data, model, train)
    RUN/run.json               status, versions, seed, device, dataset and model description, timings
    RUN/metrics.csv            one row per finished epoch (rewritten from the checkpoint on resume)
    RUN/lock                   pid and host of the process writing the run (while it trains)
    RUN/checkpoints/current.json            names the current checkpoint directory
    RUN/checkpoints/ckpt-XXXX/last.safetensors  weights at the checkpoint (end of an epoch, or
                                                 every --checkpoint-every steps)
    RUN/checkpoints/ckpt-XXXX/state.pt          optimizer, RNG streams, history, position in the epoch
    RUN/checkpoints/ckpt-XXXX/best.safetensors  weights with the lowest validation loss so far
                                                 (only for a run trained with --validation)
    RUN/summary.json           final metrics (written when training ends)

Every file is replaced atomically and a checkpoint is one unit (see :mod:`layerlab.checkpoint`);
``run.json``'s ``status`` says whether training is running, completed, failed or interrupted.
Nothing is chosen on the test set: ``best`` exists only when a validation split chose it.
"""

from __future__ import annotations

import copy
import csv
import datetime as _dt
import errno
import io
import json
import logging
import os
import platform
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from . import lock as _lock
from .checkpoint import (
    atomic_write_json,
    atomic_write_text,
    clean_checkpoints,
    current_checkpoint,
    first_line,
    load_training_state,
    load_weights,
    read_pointer,
    write_checkpoint,
    write_no_checkpoint,
)
from .config import ModelConfig, RunConfig
from .data import Dataset, Split
from .data.transforms import InputSpec
from .errors import ConfigError, DataError, LayerlabError, RunError, TrainingError
from .record import (
    CURVE_COLUMNS,  # noqa: F401 (the choices' torch-free home; re-exported for old imports)
    METRIC_COLUMNS,
    WEIGHTS,
    read_config,
    read_info,
    read_metrics,
    record_problem,
)

log = logging.getLogger(__name__)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def environment() -> dict:
    return {
        "layerlab": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_record_problem(info: Any) -> str | None:
    """What is wrong with a parsed ``run.json``, or None: :func:`layerlab.record.record_problem`, and
    an input spec this layerlab can rebuild."""
    problem = record_problem(info)
    if problem or info.get("input_spec") is None:
        return problem
    try:
        InputSpec.from_dict(info["input_spec"])
    except (LayerlabError, TypeError, ValueError) as e:
        return f"input_spec: {e}"
    return None


class RunDir:
    """Reads and writes one run directory: everything after training gets the run's model
    (:meth:`model`), input spec (:attr:`spec`) and data (:meth:`dataset`) from here.

    Opening one reads nothing; each read validates what it reads (a missing or damaged file is a
    :class:`~layerlab.errors.RunError` naming it).

    Args:
        path: the run directory.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._info: tuple[tuple, dict] | None = None  # run.json as last read, by its stat

    # --- paths
    @property
    def ckpt_dir(self) -> Path:
        return self.path / "checkpoints"

    def weights(self, which: str = "last") -> Path:
        """The file of the current checkpoint's ``best`` or ``last`` weights; a LayerlabError when the
        run has no checkpoint yet or its pointer is missing or invalid (it names a plain ``ckpt-*``
        directory inside the run, never a path)."""
        current = current_checkpoint(self.ckpt_dir)
        if current is None:
            raise RunError(f"{self.path}: no checkpoint yet")
        return current / f"{which}.safetensors"

    # --- creation
    @classmethod
    def create(cls, path: str | Path, cfg: RunConfig, info: dict, *, overwrite: bool = False) -> RunDir:
        path = Path(path)
        if not overwrite:
            cls.check_new(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".write-probe"  # a read-only place or /proc fails here, before training, not after
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise RunError(f"{path}: cannot create the run directory there ({e.strerror or e})") from None
        run = cls(path)
        run.acquire_lock()
        files = [path / "run.json", path / "config.toml", run.ckpt_dir / "current.json"]
        made = [p for p in [*files, run.ckpt_dir] if not p.exists()]
        try:  # run.json first: a directory with a config and no record is no run at all
            atomic_write_json(files[0], {**info, "status": "running", "started": _now(), "environment": environment()})
            atomic_write_text(files[1], cfg.to_toml())
            write_no_checkpoint(run.ckpt_dir)
        except OSError as e:  # a full disk: remove what this call made, the lock last
            for p in made:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            run.release_lock()
            raise RunError(f"{path}: cannot write the run directory ({_reason(e)}); nothing was kept") from None
        return run

    @staticmethod
    def check_new(path: Path) -> None:
        """Refuse to train into a run directory that already holds something."""
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunError(
                f"{path} already exists and is not empty; choose another --out, or --resume it to continue training"
            )

    # --- the lock: one writer at a time (see :mod:`layerlab.lock`)
    @property
    def lock_path(self) -> Path:
        return self.path / "lock"

    def lock_holder(self) -> dict | None:
        """``{"pid", "host"}`` of the process the run's lock names, or None without a lock
        (``{"pid": None, "host": None}`` for a lock file that names no process)."""
        return _lock.read_holder(self.lock_path)

    def acquire_lock(self) -> None:
        """Take ``RUN/lock`` (pid and host, held with flock while this process lives), so two processes
        never write one run; a stale lock is taken over with a warning, by exactly one process."""
        _lock.acquire(self.path)

    def release_lock(self) -> None:
        """Remove the lock if this process holds it."""
        _lock.release(self.path)

    def clean_leftovers(self, *, locked: bool = False) -> list[str]:
        """Remove what a killed write left: temporary files and directories, and checkpoint
        directories a valid pointer does not name. Only the writer cleans: it does nothing unless this
        process holds the run's lock (``locked`` says it means to), so a read command never deletes
        anything; a missing or invalid pointer is an error and nothing is removed."""
        if not (locked and _lock.holds(self.path)):
            return []
        removed = clean_checkpoints(self.ckpt_dir)
        for p in self.path.glob(".*.tmp"):
            if p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                removed.append(p.name)
        if removed:
            log.info("%s: removed leftovers of an interrupted write: %s", self.path, ", ".join(removed))
        return removed

    def write_info(self, info: dict) -> None:
        _write(self.path / "run.json", lambda p: atomic_write_json(p, info))
        self._info = None

    def info(self) -> dict:
        """run.json, validated (see :func:`layerlab.record.read_info`), read again only when the file
        changed (its stat): a command that asks many times parses it once. Each call gets its own copy."""
        try:
            st = (self.path / "run.json").stat()
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None
        if stamp is None or self._info is None or self._info[0] != stamp:
            info = read_info(self.path)
            problem = run_record_problem(info)
            if problem:
                raise RunError(f"{self.path / 'run.json'}: corrupt run record ({problem})")
            self._info = (stamp, info) if stamp is not None else None
            return copy.deepcopy(info)
        return copy.deepcopy(self._info[1])

    def update_info(self, **fields: Any) -> None:
        """Set ``fields`` in run.json (read, updated, written again atomically)."""
        info = self.info()
        info.update(fields)
        self.write_info(info)

    def config(self) -> RunConfig:
        """The run's config; arrays ``layerlab.fit`` kept in the run are read from this run's own copy,
        so a copied or moved run is self-contained."""
        from .data.arrays import own_arrays

        cfg = read_config(self.path)
        cfg.data.name = own_arrays(self.path, cfg.data.name)
        return cfg

    # --- what everything after training asks of a run
    @property
    def spec(self) -> InputSpec:
        """How raw input becomes one of this run's samples, as recorded when it was trained."""
        info = self.info()
        if not isinstance(info.get("input_spec"), dict):
            raise RunError(
                f"{self.path}: run.json has no input_spec (the run was made by an older layerlab); train it again"
            )
        return InputSpec.from_dict(info["input_spec"])

    @property
    def classes(self) -> list[str]:
        ds = self.info()["dataset"]
        return ds.get("classes") or [str(i) for i in range(ds["num_outputs"])]

    @property
    def selected_on(self) -> str | None:
        """The split that chose the run's ``best`` weights: ``validation``, or None (nothing chosen:
        a run without a validation split is never selected on its test set)."""
        return self.info().get("selection")

    def resolve_weights(self, which: str | None = None) -> str:
        """The weights ``which`` names that exist. ``auto`` (or None) is ``best`` when the run chose
        its weights on a validation split, else ``last``; ``best`` falls back to ``last`` before the
        first validated epoch; ``init`` needs no file."""
        self.info()  # a run directory at all, before what it holds
        which = which or "auto"
        if which not in WEIGHTS:
            raise ConfigError(f"unknown weights {which!r}; expected one of {', '.join(WEIGHTS)}")
        validated = self.selected_on == "validation"
        if which == "auto":
            which = "best" if validated else "last"
        elif which == "best" and not validated:
            raise ConfigError(
                f"{self.path} was trained without --validation, so no weights were chosen (nothing is "
                f"chosen on the test set) and it has no best; use --weights last"
            )
        current = None if which == "init" else current_checkpoint(self.ckpt_dir)
        for w in [which, "last"] if which == "best" else [which]:
            if w == "init" or (current is not None and (current / f"{w}.safetensors").is_file()):
                return w
        raise RunError(f"{self.path}: no checkpoint yet ({which} weights are missing)")

    def describe_weights(self, used: str) -> str:
        """What the weights ``used`` are, naming the split that chose them (for reports)."""
        if used == "best":
            return "best: the epoch with the lowest validation loss (chosen on the validation split)"
        if used == "last":
            return "last: the final checkpoint (chosen on no split)"
        return "init: the model as initialised, before training"

    def model(
        self, which: str | None = None, device: str | torch.device = "cpu", module: torch.nn.Module | None = None
    ) -> torch.nn.Module:
        """The run's model, rebuilt from its config and input spec, with its weights.

        Args:
            which: ``best`` or ``last`` weights, or ``init`` (as before training: rebuilt from the
                run's seed exactly as ``train`` built it); None or ``auto``: see :meth:`resolve_weights`.
            device: where the model is put.
            module: a model built as the run's was (one ``layerlab.fit`` was given as an object, which
                the run's files cannot rebuild), into which the run's weights are loaded.

        Returns:
            The ``nn.Module`` in eval mode.

        Raises:
            RunError: no checkpoint yet, or a damaged record.
            ConfigError: unknown weights, or ``best`` for a run trained without a validation split.
        """
        from .engine import resolve_device, seeded

        used = self.resolve_weights(which)
        info, cfg = self.info(), self.config()
        if module is not None:
            if used == "init":
                raise ConfigError(f"{self.path}: the init weights of a model given as an object cannot be rebuilt")
            load_weights(self.weights(used), module)
            return module.to(resolve_device(str(device))).eval()
        if used == "init":
            with seeded(cfg.train.seed, cfg.train.threads):
                model = build_model_for(cfg.model, self.spec, info["dataset"]["num_outputs"])
        else:
            model = build_model_for(cfg.model, self.spec, info["dataset"]["num_outputs"])
            load_weights(self.weights(used), model)
        return model.to(resolve_device(str(device))).eval()

    def dataset(self, data: str | None = None, data_dir: str | None = None) -> Dataset:
        """The run's data with the whole test set (no validation hold-out), or the dataset ``data``
        read the way the run read its own; an error if its samples do not fit the run's model."""
        from .data.inputs import prepare_data

        cfg = self.config()
        cfg.data.validation = 0.0
        if data:
            cfg.data.name = data
        if data_dir:
            cfg.data.data_dir = data_dir
        spec = self.spec
        ds = prepare_data(
            cfg.data, seed=cfg.train.seed, sequence_model=spec.sequence is not None, any_size=cfg.model.any_size
        )
        same = ds.spec.shape[:1] == spec.shape[:1] and len(ds.spec.shape) == len(spec.shape)
        if not (cfg.model.any_size and spec.kind in ("image", "volume") and same) and (
            tuple(ds.spec.shape) != tuple(spec.shape) or ds.spec.kind != spec.kind
        ):
            raise DataError(
                f"{cfg.data.name} has samples of shape {tuple(ds.spec.shape)} ({ds.spec.kind}), "
                f"the model of {self.path} was trained on {tuple(spec.shape)} ({spec.kind})"
            )
        trained = self.info()["dataset"]
        if ds.task != trained["task"] or ds.num_outputs != trained["num_outputs"]:
            raise DataError(
                f"{cfg.data.name} is {ds.task} with {ds.num_outputs} outputs, the model of {self.path} was trained "
                f"for {trained['task']} with {trained['num_outputs']} outputs"
            )
        return ds

    # --- during training
    def save_checkpoint(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        history: list[dict],
        *,
        epoch: int,
        step: int = 0,
        train_stats: torch.Tensor | None = None,
        grad_norms: list[torch.Tensor] | None = None,
        best: str = "keep",
        scheduler: Any = None,
        callbacks: dict | None = None,
    ) -> None:
        """Write a checkpoint as one unit (weights, optimizer, learning-rate schedule, RNG streams,
        history and, mid-epoch, the position in the epoch's shuffle order with the running train
        statistics), then the metrics it holds. ``epoch`` epochs are done and ``step`` batches of the
        next; ``best`` is ``this``, ``keep`` or ``none`` (see :func:`layerlab.checkpoint.write_checkpoint`)."""
        state = {
            "epoch": epoch,
            "step": step,
            "optimizer": optimizer.state_dict(),
            "history": json.dumps(history),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy_rng": json.dumps([v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()]),
            "python_rng": json.dumps(random.getstate()),
        }
        if scheduler is not None:  # plain numbers and lists: loads with weights_only=True
            state["scheduler"] = scheduler.state_dict()
        if callbacks:  # the callbacks' state_dict(), by callback (plain numbers and tensors, like the rest)
            state["callbacks"] = callbacks
        if step:
            assert train_stats is not None  # a mid-epoch checkpoint carries the epoch's running sums
            state["train_stats"] = train_stats.detach().cpu().clone()
            state["grad_norms"] = (
                torch.stack([g.detach().float().cpu() for g in grad_norms]) if grad_norms else torch.zeros(0)
            )
        try:
            write_checkpoint(self.ckpt_dir, model, state, best=best)
            atomic_write_text(self.path / "metrics.csv", _metrics_text(history))
        except OSError as e:  # a full disk: the failed write removed what it made; the old checkpoint stands
            where = e.filename or self.ckpt_dir
            raise TrainingError(f"cannot write a checkpoint in {self.path} ({_reason(e)}: {where})") from None

    def kept(self) -> str:
        """A true sentence about the checkpoint a resume would start from."""
        try:
            pointer = read_pointer(self.ckpt_dir)
        except LayerlabError:
            return "its checkpoint pointer is unreadable"
        if pointer is None or pointer["dir"] is None:
            return "no checkpoint was written"
        if pointer.get("step"):
            return f"the checkpoint after step {pointer['step']} of epoch {pointer['epoch'] + 1} is kept"
        return f"the checkpoint of epoch {pointer['epoch']} is kept"

    def write_metrics(self, history: list[dict]) -> None:
        _write(self.path / "metrics.csv", lambda p: atomic_write_text(p, _metrics_text(history)))

    def metrics(self) -> list[dict]:
        """The rows of metrics.csv (see :func:`layerlab.record.read_metrics`)."""
        return read_metrics(self.path)

    def has_checkpoint(self) -> bool:
        """Whether the run has a checkpoint; a missing or invalid pointer is a LayerlabError."""
        return current_checkpoint(self.ckpt_dir) is not None

    def training_state(self) -> dict:
        """The current checkpoint's training state (``epoch``, ``step``, optimizer, RNG, history),
        checked: a state with missing fields or RNG streams that cannot be restored is one LayerlabError."""
        current = current_checkpoint(self.ckpt_dir)
        if current is None:
            raise RunError(f"{self.path}: no checkpoint yet")
        path = current / "state.pt"
        st = load_training_state(path)
        try:
            st["history"] = json.loads(st["history"])
            if not isinstance(st["history"], list) or not all(isinstance(r, dict) for r in st["history"]):
                raise ValueError("history must be a list of rows")
            saved = _rng_now()
            try:
                self.restore_rng(st)  # the streams must restore, here rather than after the weights load
            finally:
                self.restore_rng(saved)
        except (ValueError, TypeError, KeyError, IndexError, RuntimeError, OverflowError, RecursionError) as e:
            raise RunError(f"{path}: corrupt training state ({first_line(e)})") from None
        st.setdefault("step", 0)
        return st

    @staticmethod
    def restore_rng(state: dict) -> None:
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        np_state = json.loads(state["numpy_rng"])
        np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
        py = json.loads(state["python_rng"])
        random.setstate((py[0], tuple(py[1]), py[2]))

    def finish(self, status: str, **fields: Any) -> None:
        """Record the run's final ``status`` (and ``fields``) with the time it finished."""
        self.update_info(status=status, finished=_now(), **fields)

    def record_stop(self, stopped: dict | None) -> None:
        """Record in run.json that a callback stopped training early (``{"epoch", "reason"}``), or,
        with None, that it did not (a resumed run trains on: an old record is removed)."""
        info = self.info()
        if stopped is None:
            if "stopped_early" not in info:
                return
            info.pop("stopped_early")
        else:
            info["stopped_early"] = stopped
        self.write_info(info)

    def write_summary(self, summary: dict) -> None:
        """Write summary.json; a run that stopped early says so there too (from run.json)."""
        if "stopped_early" not in summary:
            try:
                stopped = self.info().get("stopped_early")
            except LayerlabError:
                stopped = None
            if stopped:
                summary = {**summary, "stopped_early": stopped}
        _write(self.path / "summary.json", lambda p: atomic_write_json(p, summary))


def _rng_now() -> dict:
    """This process's RNG streams in the form a checkpoint keeps them (see :meth:`RunDir.restore_rng`)."""
    return {
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": json.dumps([v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()]),
        "python_rng": json.dumps(random.getstate()),
    }


def _metrics_text(history: list[dict]) -> str:
    cols = [c for c in METRIC_COLUMNS if any(c in r for r in history)]
    cols += sorted({k for r in history for k in r} - set(cols))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in history:
        w.writerow({k: r.get(k, "") for k in cols})
    return buf.getvalue()


def _reason(e: OSError) -> str:
    return "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))


def _write(path: Path, write) -> None:
    """``write(path)``, with an operating-system error (a full disk) as one LayerlabError."""
    try:
        write(path)
    except OSError as e:
        raise RunError(f"cannot write {path} ({_reason(e)})") from None


def split_fingerprint(split: Any) -> dict:
    """Size, shapes and a sha256 of one split's tensors (x, y and lengths): what resume checks."""
    if not isinstance(split, Split) and hasattr(split, "fingerprint"):  # a streamed source hashes its own way
        return split.fingerprint()
    from .training.sources import tensor_fingerprint  # the in-memory source's own fingerprint

    return tensor_fingerprint(split)


def data_fingerprint(ds: Dataset) -> dict:
    """The fingerprint of the splits training reads: ``train`` and the split each epoch is
    evaluated on (``validation`` when one is held out, else ``test``)."""
    held = "validation" if "validation_fraction" in ds.meta else "test"
    return {"train": split_fingerprint(ds.train), held: split_fingerprint(ds.test)}


def check_fingerprint(path: Path, recorded: dict, now: dict) -> None:
    """An error naming the first difference between the data a run was trained on and the data now."""
    for name in sorted(set(recorded) | set(now)):
        a, b = recorded.get(name), now.get(name)
        if a is None or b is None:
            had = "had" if a is not None else "had no"
            raise DataError(f"the data differs from what {path} was trained on: it {had} a {name} split")
        if a["n"] != b["n"] or a["x_shape"] != b["x_shape"] or a["y_shape"] != b["y_shape"]:
            raise DataError(
                f"the data differs from what {path} was trained on: the {name} split has {b['n']} samples of shape "
                f"{tuple(b['x_shape'])}, the run recorded {a['n']} of shape {tuple(a['x_shape'])}"
            )
        if a["sha256"] != b["sha256"]:
            raise DataError(
                f"the data differs from what {path} was trained on: the {name} split has the same size but "
                f"other content (sha256 {b['sha256'][:12]}, the run recorded {a['sha256'][:12]})"
            )


def build_model_for(model: ModelConfig, spec: InputSpec, num_outputs: int) -> torch.nn.Module:
    """The model a config names, for the samples an input spec describes: the one place a run's model is
    built (train, resume and everything after them). The data decides the head: a per-step target
    needs a model that takes ``head``."""
    from .models import create_model, model_options

    options = model.options()
    if spec.head != "last":
        if "head" not in model_options(model.name):
            raise ConfigError(
                f"the data has one target per step, and {model.name} gives one output per sample; "
                f"use a recurrent model that takes a per-step head (rnn, lstm, gru, residual)"
            )
        options["head"] = spec.head
    return create_model(model.name, spec.shape, num_outputs, **options)


def default_run_path(model: str, data: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    data_name = Path(data).stem if os.sep in data or "." in data else data
    return Path("runs") / f"{model}-{data_name}-{stamp}"
