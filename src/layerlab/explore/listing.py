"""The runs the explorer shows, read without torch (:func:`layerlab.record.list_runs`).

Each run gets an id derived from its place in the listing (a hash of its path relative to the folder
it was found under, with the folder's position); requests name runs by that id only. The table rows
hold what the runs table shows: model, data, parameters, epochs, the config's values, the final and
best validation metrics and the final test metrics, the status.
"""

from __future__ import annotations

import csv
import hashlib
import math
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import LayerlabError
from ..record import RunRecord, list_runs

#: Models whose views are the recurrent ones (hidden states, gates, gradient through time).
RECURRENT = ("rnn", "lstm", "gru", "residual", "article-lstm")
#: Models whose views are the convolutional ones (feature maps, kernels, filters).
CONVOLUTIONAL = ("cnn", "article-cnn", "fcn", "resnet1d")
METRICS = ("loss", "accuracy")


@dataclass(frozen=True)
class Entry:
    """One listed run: the id the server gave it, its path (never sent to the page) and its record."""

    id: str
    path: Path
    name: str
    record: RunRecord


def family(rec: RunRecord) -> str:
    """``cnn``, ``recurrent`` or ``other``: which views a run gets."""
    if rec.model in RECURRENT:
        return "recurrent"
    if rec.model in CONVOLUTIONAL and (rec.input_spec or {}).get("kind") in ("image", "volume", "sequence"):
        return "cnn"
    return "other"


def _finite(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _scalar(v):
    if isinstance(v, bool) or isinstance(v, str):
        return v
    return _finite(v)


def row(entry: Entry) -> dict:
    """The runs table's row of one run (JSON-ready; every string is data, escaped by the page)."""
    rec = entry.record
    info = rec.info
    config = {}
    for section, values in rec.config.to_dict().items():
        for k, v in values.items():
            if _scalar(v) is not None:
                config[f"{section}.{k}"] = _scalar(v)
    final = rec.final
    validated = [r for r in rec.metrics if _finite(r.get("val_loss")) is not None]
    best = min(validated, key=lambda r: r["val_loss"]) if validated else {}
    out = {
        "id": entry.id,
        "name": entry.name,
        "model": rec.model,
        "family": family(rec),
        "data": str((info.get("dataset") or {}).get("name", "")),
        "task": rec.task,
        "params": _finite((info.get("model") or {}).get("parameters")),
        "epochs": rec.epochs_done,
        "status": rec.status,
        "config": config,
    }
    for split in ("val", "test"):
        for m in METRICS:
            out[f"final_{split}_{m}"] = _finite(final.get(f"{split}_{m}"))
    for m in METRICS:
        out[f"best_val_{m}"] = _finite(best.get(f"val_{m}"))
    out["best_epoch"] = best.get("epoch")
    return out


def curves(entry: Entry) -> dict:
    """metrics.csv as columns: ``{"epoch": [...], "train_loss": [...], ...}`` (None where not logged)."""
    rows = entry.record.metrics
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    return {c: [_finite(r.get(c)) for r in rows] for c in cols}


#: The step log a run may hold (:class:`layerlab.callbacks.StepLogger` pointed at ``RUN/steps.csv``).
STEP_LOG = "steps.csv"
STEP_COLUMNS = ("step", "loss", "accuracy", "batch_loss", "lr")
#: Points per step curve sent to the page (a longer log is thinned evenly, the last step kept).
STEP_POINTS = 2000
MAX_STEP_LOG = 64 * 2**20


def step_curves(entry: Entry) -> dict | None:
    """The run's ``steps.csv`` as columns (thinned to :data:`STEP_POINTS` rows), None without one; a
    file that is not such a table (or is larger than 64 MiB) gives ``{"error": sentence}``."""
    p = entry.path / STEP_LOG
    if not p.is_file() or p.is_symlink():
        return None
    try:
        if p.stat().st_size > MAX_STEP_LOG:
            return {"error": f"{STEP_LOG} is larger than {MAX_STEP_LOG // 2**20} MiB"}
        with open(p, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        cols: dict[str, list] = {c: [] for c in STEP_COLUMNS}
        for r in rows:
            for c in STEP_COLUMNS:
                v = r.get(c)
                cols[c].append(_finite(float(v)) if v not in (None, "") else None)
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as e:
        return {"error": f"{STEP_LOG} is not a step log ({str(e)[:120]})"}
    n = len(rows)
    if n > STEP_POINTS:
        keep = sorted({round(i * (n - 1) / (STEP_POINTS - 1)) for i in range(STEP_POINTS)})
        cols = {c: [v[i] for i in keep] for c, v in cols.items()}
    return {c: v for c, v in cols.items() if any(x is not None for x in v)}


class RunIndex:
    """The runs under the folders given, by id; :meth:`refresh` lists them again."""

    def __init__(self, folders: list[str | Path]):
        if not folders:
            raise LayerlabError("give at least one run directory or folder of runs")
        self.folders = [Path(f).resolve() for f in folders]
        for f in self.folders:
            if not f.is_dir():
                raise LayerlabError(f"{f}: no such folder")
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self.problems: dict[str, str] = {}
        self.refresh()

    def refresh(self) -> None:
        entries, problems = {}, {}
        for i, folder in enumerate(self.folders):
            found: dict[Path, str] = {}
            for rec in list_runs(folder, problems=found):
                rel = rec.path.resolve().relative_to(folder) if rec.path.resolve() != folder else Path(".")
                name = folder.name if str(rel) == "." else str(rel)
                rid = hashlib.sha256(f"{i}\0{rel}".encode()).hexdigest()[:12]
                entries[rid] = Entry(rid, rec.path.resolve(), name, rec)
            for p, why in found.items():
                problems[str(Path(p).resolve().relative_to(folder)) if Path(p).resolve() != folder else folder.name] = (
                    why.replace(str(folder), folder.name)
                )
        with self._lock:
            self._entries, self.problems = entries, problems

    def get(self, rid: str) -> Entry:
        with self._lock:
            entry = self._entries.get(rid)
        if entry is None:
            raise KeyError(rid)
        return entry

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def rows(self) -> list[dict]:
        return [row(e) for e in self.entries()]
