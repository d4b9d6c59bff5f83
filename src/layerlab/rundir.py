"""The run directory: the unit users keep. Everything after ``train`` reads one.

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
from .checkpoint import (atomic_write_json, atomic_write_text, load_training_state, load_weights,
                         save_training_state, save_weights)
from .config import RunConfig
from .errors import LayerlabError

METRIC_COLUMNS = ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "train_seconds",
                  "eval_seconds", "samples_per_second", "lr", "grad_norm_mean", "grad_norm_max", "clipped_fraction"]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def environment() -> dict:
    return {"layerlab": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(),
            "cpu_threads": torch.get_num_threads(),
            "cuda": torch.version.cuda if torch.cuda.is_available() else None,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


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
    def create(cls, path: str | Path, cfg: RunConfig, info: dict, *, overwrite: bool = False) -> "RunDir":
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
            raise LayerlabError(f"{path} already exists and is not empty; choose another --out, "
                                f"or --resume it to continue training")

    def write_info(self, info: dict) -> None:
        atomic_write_json(self.path / "run.json", info)

    def info(self) -> dict:
        p = self.path / "run.json"
        if not self.path.is_dir():
            raise LayerlabError(f"{self.path}: no such run directory")
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

    # --- during training
    def end_epoch(self, model, optimizer, row: dict, history: list[dict], *, improved: bool, cfg) -> None:
        """Write the epoch's metrics and checkpoints (weights first, then state, then metrics, so a
        crash between them leaves a consistent older state plus at most a newer weights file)."""
        save_weights(self.weights("last"), model)
        if improved:
            save_weights(self.weights("best"), model)
        save_training_state(self.ckpt_dir / "last.state.pt", {
            "epoch": row["epoch"],
            "optimizer": optimizer.state_dict(),
            "history": json.dumps(history),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy_rng": json.dumps([v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()]),
            "python_rng": json.dumps(random.getstate()),
        })
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
                rows.append({k: (float(v) if v not in ("", None) and k != "epoch" else (int(v) if k == "epoch" else None))
                             for k, v in r.items()})
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

    def load_model_weights(self, model, which: str = "best") -> str:
        """Load ``best`` weights (falling back to ``last``); returns which file was used."""
        for w in ([which, "last"] if which == "best" else [which]):
            if self.weights(w).is_file():
                load_weights(self.weights(w), model)
                return w
        raise LayerlabError(f"{self.path}: no checkpoint yet (checkpoints/{which}.safetensors is missing)")

    def finish(self, status: str, **fields) -> None:
        self.update_info(status=status, finished=_now(), **fields)

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.path / "summary.json", summary)


def default_run_path(model: str, data: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    data_name = Path(data).stem if os.sep in data or "." in data else data
    return Path("runs") / f"{model}-{data_name}-{stamp}"
