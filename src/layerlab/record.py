"""A run's record, read without torch: ``run.json``, ``config.toml`` and ``metrics.csv`` read once
into a typed :class:`RunRecord`, and :func:`list_runs` for pages and commands that list many runs.

Everything here treats a run directory as untrusted input: a file that is missing, not UTF-8,
nested too deeply, of the wrong shape or with fields of the wrong type gives one LayerlabError
naming the file and the problem. Rebuilding a run's model and data (torch) is
:class:`layerlab.rundir.RunDir`'s job; it reads its record through this module.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .choices import WEIGHTS  # noqa: F401  (rundir reads it from here)
from .config import RunConfig
from .errors import ConfigError, LayerlabError, RunError

log = logging.getLogger(__name__)

#: ``auto`` is ``best`` for a run that chose its weights on a validation split, else ``last``.
#: The loss and accuracy columns of metrics.csv, per split (what the curves plot).
CURVE_COLUMNS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
    "train_eval_loss",
    "train_eval_accuracy",
]
METRIC_COLUMNS = [
    *CURVE_COLUMNS,
    "train_seconds",
    "eval_seconds",
    "samples_per_second",
    "lr",
    "grad_norm_mean",
    "grad_norm_max",
    "clipped_fraction",
]
#: run.json's ``status`` values (``pruned``: a tuning trial its study's pruner stopped, see layerlab.tuning).
STATUSES = ("running", "completed", "failed", "interrupted", "pruned")


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def record_problem(info) -> str | None:
    """What is wrong with a parsed ``run.json``, or None: the fields everything after training reads
    must be there with the right types (a hand-edited or truncated record gives one sentence, not a
    KeyError deep inside a command). The input spec's fields are checked by
    :meth:`layerlab.rundir.RunDir.info`, which has the spec's class (it imports torch)."""
    if not isinstance(info, dict):
        return f"expected a JSON object, got {type(info).__name__}"
    if not isinstance(info.get("status"), str):
        return "no status"
    ds, model = info.get("dataset"), info.get("model")
    if not isinstance(ds, dict) or not isinstance(model, dict):
        return "no dataset or model record"
    if not isinstance(model.get("name"), str):
        return "model.name must be a string"
    if not isinstance(ds.get("task"), str):
        return "dataset.task must be a string"
    n = ds.get("num_outputs")
    if not _positive_int(n):
        return "dataset.num_outputs must be a positive integer"
    shape = ds.get("input_shape")
    if not isinstance(shape, list) or not all(_positive_int(v) for v in shape):
        return "dataset.input_shape must be a list of positive integers"
    classes = ds.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        return "dataset.classes must be a list of names"
    if classes is not None and len(classes) != n and ds.get("task") != "regression":
        return f"{len(classes)} class names for {n} outputs"
    spec = info.get("input_spec")
    if spec is not None and not isinstance(spec, dict):
        return "input_spec must be an object"
    selection = info.get("selection")
    if selection is not None and not isinstance(selection, str):
        return "selection must be a string"
    # optional fields that commands read: when present, of the type they are read as
    for where, key, ok, what in (
        (ds, "name", lambda v: isinstance(v, str), "dataset.name must be a string"),
        (ds, "n_train", _count, "dataset.n_train must be a non-negative integer"),
        (ds, "n_test", _count, "dataset.n_test must be a non-negative integer"),
        (model, "parameters", _count, "model.parameters must be a non-negative integer"),
        (info, "train_wall_seconds", _seconds, "train_wall_seconds must be a non-negative number"),
        (info, "environment", lambda v: isinstance(v, dict), "environment must be an object"),
        (info, "test_set", lambda v: isinstance(v, bool), "test_set must be true or false"),
        (info, "init_from", lambda v: isinstance(v, dict), "init_from must be an object"),
        (info, "data_fingerprint", _fingerprint, "data_fingerprint must map splits to their n, shapes and sha256"),
    ):
        if key in where and not ok(where[key]):
            return what
    return None


def held_out_split(ds) -> str:
    """What a run's evaluated split is: ``test`` (a held-out test set), ``validation`` (arrays fitted
    with ``validation_split`` or ``validation_data``: the split that chose the ``best`` weights and
    stopped training early, so not a test set) or ``training`` (arrays fitted with neither)."""
    held = ds.meta.get("held_out")
    if held == "training":
        return "training"
    if held in ("validation_split", "validation_data"):
        return "validation"
    return "test"


def no_test_set_note(split: str, weights: str) -> str:
    """The sentence evaluate and report give for a run without a test set."""
    if split == "validation":
        chose = "which chose these weights" if weights == "best" else "which chose the run's best weights"
        what = f"these numbers are on the validation split, {chose}"
    else:
        what = "these numbers are on the data it trained on"
    return f"the run has no test set: {what}; evaluate on held-out data with --data FILE (evaluate(run, x, y))"


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _seconds(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf")


def _fingerprint(v) -> bool:
    """``{split: {"n", "x_shape", "y_shape", "sha256"}}`` as :func:`layerlab.rundir.split_fingerprint` writes it."""
    return isinstance(v, dict) and all(
        isinstance(f, dict)
        and _count(f.get("n"))
        and all(isinstance(f.get(k), list) and all(_count(d) for d in f[k]) for k in ("x_shape", "y_shape"))
        and isinstance(f.get("sha256"), str)
        for f in v.values()
    )


def read_info(path: str | Path) -> dict:
    """The validated ``run.json`` of the run directory ``path``."""
    path = Path(path)
    p = path / "run.json"
    if not path.is_dir():
        what = "not a run directory (a run is a directory)" if path.exists() else "no such run directory"
        raise RunError(f"{path}: {what}")
    if not p.is_file():
        raise RunError(f"{path}: not a run directory (no run.json); give the --out of a layerlab train")
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{p}: corrupt run record ({str(e)[:200]})") from None
    except RecursionError:
        raise RunError(f"{p}: corrupt run record (nested too deeply)") from None
    except OSError as e:
        raise RunError(f"{p}: cannot be read ({e.strerror or e})") from None
    problem = record_problem(info)
    if problem:
        raise RunError(f"{p}: corrupt run record ({problem})")
    return info


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a run's metrics.csv (``epoch`` an int, the rest floats or None; none without the
    file); a file that is not such a table (hand-edited, binary) is one LayerlabError."""
    p = Path(path) / "metrics.csv"
    if not p.is_file():
        return []
    rows = []
    try:
        with open(p, encoding="utf-8", newline="") as f:
            for i, r in enumerate(csv.DictReader(f), start=2):
                if None in r or None in r.values():
                    raise ValueError(f"row {i} has a different number of fields than the header")
                row = {k: (int(v) if k == "epoch" else (float(v) if v != "" else None)) for k, v in r.items()}
                if not isinstance(row.get("epoch"), int):
                    raise ValueError(f"row {i} has no epoch")
                rows.append(row)
    except (UnicodeDecodeError, ValueError, csv.Error) as e:
        raise RunError(f"{p}: not a metrics table ({str(e)[:200]})") from None
    except OSError as e:
        raise RunError(f"{p}: cannot be read ({e.strerror or e})") from None
    return rows


def read_config(path: str | Path) -> RunConfig:
    """The resolved configuration of the run directory ``path`` (``config.toml``)."""
    return RunConfig.from_toml(Path(path) / "config.toml")


@dataclass(frozen=True)
class RunRecord:
    """What a run directory says about its run, read once: run.json's fields that everything after
    training reads (typed), the resolved config and the metrics per epoch. ``info`` is run.json
    whole (versions, timings, fingerprints and the fields this class does not name)."""

    path: Path
    status: str
    model: str
    task: str
    num_outputs: int
    input_shape: tuple[int, ...]
    classes: tuple[str, ...]
    selection: str | None
    input_spec: dict | None
    info: dict = field(repr=False)
    config: RunConfig = field(repr=False)
    metrics: list[dict] = field(repr=False)

    @property
    def epochs_done(self) -> int:
        return len(self.metrics)

    @property
    def final(self) -> dict:
        """The last row of metrics.csv (empty before the first epoch)."""
        return self.metrics[-1] if self.metrics else {}


def read_record(path: str | Path) -> RunRecord:
    """Read what a run directory says about its run, without importing torch.

    Args:
        path: the run directory.

    Returns:
        Its :class:`RunRecord`.

    Raises:
        LayerlabError: one sentence naming the first file that is missing or wrong.
    """
    path = Path(path)
    info = read_info(path)
    ds = info["dataset"]
    return RunRecord(
        path=path,
        status=info["status"],
        model=info["model"]["name"],
        task=ds["task"],
        num_outputs=ds["num_outputs"],
        input_shape=tuple(ds["input_shape"]),
        classes=tuple(ds.get("classes") or [str(i) for i in range(ds["num_outputs"])]),
        selection=info.get("selection"),
        input_spec=info.get("input_spec"),
        info=info,
        config=read_config(path),
        metrics=read_metrics(path),
    )


def list_runs(folder: str | Path, *, problems: dict[Path, str] | None = None) -> list[RunRecord]:
    """The records of every run directory under ``folder``, without importing torch.

    A run directory is a directory holding ``run.json`` (``folder`` itself may be one). Symbolic
    links are not followed: a listing stays inside ``folder``.

    Args:
        folder: where to look.
        problems: a dict to put the one-sentence error of each run directory that cannot be read
            in, by path (such runs are left out of the list).

    Returns:
        The records, sorted by path.

    Raises:
        ConfigError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder")
    records = []
    for root, dirs, files in os.walk(folder):
        if "run.json" not in files:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            continue
        dirs[:] = []  # a run's own folders (checkpoints, report) hold no runs
        try:
            records.append(read_record(root))
        except LayerlabError as e:
            if problems is not None:
                problems[Path(root)] = str(e)
            log.info("%s", e)
    return sorted(records, key=lambda r: str(r.path))
