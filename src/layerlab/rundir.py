"""The run directory: the unit users keep, and the single source of truth after ``train``.

Evaluate, predict, generate, inspect and the report ask a :class:`RunDir` for its model
(:meth:`RunDir.model`: ``best``, ``last`` or ``init`` weights), its input spec
(:attr:`RunDir.spec`: how raw input becomes a sample) and its data (:meth:`RunDir.dataset`);
none of them rebuilds these.

    RUN/config.toml            resolved configuration (data, model, train)
    RUN/run.json               status, versions, seed, device, dataset and model description, timings
    RUN/metrics.csv            one row per epoch
    RUN/checkpoints/last.safetensors, last.state.pt    weights and training state after the last epoch
    RUN/checkpoints/best.safetensors                   weights with the lowest test loss so far
    RUN/summary.json           final metrics (written when training ends)

Every file is replaced atomically; ``run.json``'s ``status`` says whether training is running,
completed, failed or interrupted.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import platform
import random
import sys
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import (
    atomic_write_json,
    atomic_write_text,
    load_training_state,
    load_weights,
    save_training_state,
    save_weights,
)
from .config import ModelConfig, RunConfig
from .data import Dataset
from .data.transforms import InputSpec
from .errors import ConfigError, LayerlabError

WEIGHTS = ("best", "last", "init")
METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "train_seconds",
    "eval_seconds",
    "samples_per_second",
    "lr",
    "grad_norm_mean",
    "grad_norm_max",
    "clipped_fraction",
]


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


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # --- paths
    @property
    def ckpt_dir(self) -> Path:
        return self.path / "checkpoints"

    def weights(self, which: str = "best") -> Path:
        return self.ckpt_dir / f"{which}.safetensors"

    # --- creation
    @classmethod
    def create(cls, path: str | Path, cfg: RunConfig, info: dict, *, overwrite: bool = False) -> RunDir:
        path = Path(path)
        if not overwrite:
            cls.check_new(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        atomic_write_text(path / "config.toml", cfg.to_toml())
        run.write_info({**info, "status": "running", "started": _now(), "environment": environment()})
        return run

    @staticmethod
    def check_new(path: Path) -> None:
        """Refuse to train into a run directory that already holds something."""
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise LayerlabError(
                f"{path} already exists and is not empty; choose another --out, or --resume it to continue training"
            )

    def write_info(self, info: dict) -> None:
        atomic_write_json(self.path / "run.json", info)

    def info(self) -> dict:
        p = self.path / "run.json"
        if not self.path.is_dir():
            what = "not a run directory (a run is a directory)" if self.path.exists() else "no such run directory"
            raise LayerlabError(f"{self.path}: {what}")
        if not p.is_file():
            raise LayerlabError(f"{self.path}: not a run directory (no run.json); give the --out of a layerlab train")
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise LayerlabError(f"{p}: corrupt run record ({e})") from None

    def update_info(self, **fields) -> None:
        info = self.info()
        info.update(fields)
        self.write_info(info)

    def config(self) -> RunConfig:
        return RunConfig.from_toml(self.path / "config.toml")

    # --- what everything after training asks of a run
    @property
    def spec(self) -> InputSpec:
        """How raw input becomes one of this run's samples, as recorded when it was trained."""
        info = self.info()
        if "input_spec" not in info:
            raise LayerlabError(
                f"{self.path}: run.json has no input_spec (the run was made by an older layerlab); train it again"
            )
        return InputSpec.from_dict(info["input_spec"])

    @property
    def classes(self) -> list[str]:
        ds = self.info()["dataset"]
        return ds.get("classes") or [str(i) for i in range(ds["num_outputs"])]

    def resolve_weights(self, which: str = "best") -> str:
        """The weights ``which`` names that exist: ``best`` falls back to ``last`` (a run stopped in its
        first epoch has no best yet); ``init`` needs no file."""
        self.info()  # a run directory at all, before what it holds
        if which not in WEIGHTS:
            raise LayerlabError(f"unknown weights {which!r}; expected one of {', '.join(WEIGHTS)}")
        for w in [which, "last"] if which == "best" else [which]:
            if w == "init" or self.weights(w).is_file():
                return w
        raise LayerlabError(f"{self.path}: no checkpoint yet (checkpoints/{which}.safetensors is missing)")

    def model(self, which: str = "best", device: str | torch.device = "cpu") -> torch.nn.Module:
        """The run's model in eval mode on ``device``, with its ``best`` or ``last`` weights, or as it was
        before training (``init``: rebuilt from the run's seed exactly as ``train`` built it)."""
        from .engine import resolve_device, seeded

        used = self.resolve_weights(which)
        info, cfg = self.info(), self.config()
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
        ds = prepare_data(cfg.data, seed=cfg.train.seed, sequence_model=spec.sequence is not None)
        if tuple(ds.spec.shape) != tuple(spec.shape) or ds.spec.kind != spec.kind:
            raise LayerlabError(
                f"{cfg.data.name} has samples of shape {tuple(ds.spec.shape)} ({ds.spec.kind}), "
                f"the model of {self.path} was trained on {tuple(spec.shape)} ({spec.kind})"
            )
        trained = self.info()["dataset"]
        if ds.task != trained["task"] or ds.num_outputs != trained["num_outputs"]:
            raise LayerlabError(
                f"{cfg.data.name} is {ds.task} with {ds.num_outputs} outputs, the model of {self.path} was trained "
                f"for {trained['task']} with {trained['num_outputs']} outputs"
            )
        return ds

    # --- during training
    def end_epoch(self, model, optimizer, row: dict, history: list[dict], *, improved: bool, cfg) -> None:
        """Write the epoch's metrics and checkpoints (weights first, then state, then metrics, so a
        crash between them leaves a consistent older state plus at most a newer weights file)."""
        save_weights(self.weights("last"), model)
        if improved:
            save_weights(self.weights("best"), model)
        save_training_state(
            self.ckpt_dir / "last.state.pt",
            {
                "epoch": row["epoch"],
                "optimizer": optimizer.state_dict(),
                "history": json.dumps(history),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy_rng": json.dumps(
                    [v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()]
                ),
                "python_rng": json.dumps(random.getstate()),
            },
        )
        self.write_metrics(history)

    def write_metrics(self, history: list[dict]) -> None:
        cols = [c for c in METRIC_COLUMNS if any(c in r for r in history)]
        cols += sorted({k for r in history for k in r} - set(cols))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        for r in history:
            w.writerow({k: r.get(k, "") for k in cols})
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())

    def metrics(self) -> list[dict]:
        p = self.path / "metrics.csv"
        if not p.is_file():
            return []
        rows = []
        with open(p) as f:
            for r in csv.DictReader(f):
                rows.append(
                    {
                        k: (float(v) if v not in ("", None) and k != "epoch" else (int(v) if k == "epoch" else None))
                        for k, v in r.items()
                    }
                )
        return rows

    def training_state(self) -> dict:
        st = load_training_state(self.ckpt_dir / "last.state.pt")
        st["history"] = json.loads(st["history"])
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

    def finish(self, status: str, **fields) -> None:
        self.update_info(status=status, finished=_now(), **fields)

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.path / "summary.json", summary)


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
