"""The torch-free run record: run.json, config.toml and metrics.csv read once into a typed record,
and a listing of the runs under a folder that never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from layerlab.config import RunConfig
from layerlab.errors import LayerlabError
from layerlab.record import RunRecord, list_runs, read_record

INFO = {
    "status": "completed",
    "model": {"name": "article-cnn"},
    "dataset": {"task": "classification", "num_outputs": 3, "input_shape": [1, 28, 28], "classes": ["a", "b", "c"]},
    "selection": None,
}


def make_runs(folder: Path, n: int) -> list[Path]:
    """``n`` run directories (run.json, config.toml, metrics.csv; no weights) under ``folder``,
    some nested one level deeper, as a listing finds them."""
    toml = RunConfig().to_toml()
    paths = []
    for i in range(n):
        run = folder / (f"group{i % 7}" if i % 2 else "") / f"run{i:04d}"
        (run / "checkpoints").mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({**INFO, "status": ["completed", "failed"][i % 2]}))
        (run / "config.toml").write_text(toml)
        (run / "metrics.csv").write_text("epoch,train_loss,test_accuracy\n1,0.5,0.9\n2,0.25,\n")
        paths.append(run)
    return paths


def test_a_record_is_typed_and_read_once(tmp_path):
    (run,) = make_runs(tmp_path, 1)
    rec = read_record(run)
    assert isinstance(rec, RunRecord) and rec.path == run
    assert (rec.status, rec.model, rec.task, rec.num_outputs) == ("completed", "article-cnn", "classification", 3)
    assert rec.input_shape == (1, 28, 28) and rec.classes == ("a", "b", "c") and rec.selection is None
    assert rec.config.model.name == RunConfig().model.name
    assert rec.metrics == [
        {"epoch": 1, "train_loss": 0.5, "test_accuracy": 0.9},
        {"epoch": 2, "train_loss": 0.25, "test_accuracy": None},
    ]
    assert rec.epochs_done == 2 and rec.final["train_loss"] == 0.25


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("run.json", b"[" * 100_000, "nested too deeply"),
        ("run.json", b'{"status": 3}', "no status"),
        ("run.json", b"\xff", "corrupt run record"),
        ("metrics.csv", b"\x00\xff", "not a metrics table"),
        ("config.toml", b"[model\n", "not valid TOML"),
    ],
)
def test_a_bad_file_is_one_error_naming_it(tmp_path, name, content, match):
    (run,) = make_runs(tmp_path, 1)
    (run / name).write_bytes(content)
    with pytest.raises(LayerlabError, match=match) as e:
        read_record(run)
    assert name in str(e.value)


def test_list_runs_finds_every_run_and_leaves_out_broken_ones(tmp_path):
    paths = make_runs(tmp_path / "runs", 500)
    (paths[3] / "run.json").write_text("{")
    problems: dict = {}
    records = list_runs(tmp_path / "runs", problems=problems)
    assert [r.path for r in records] == sorted((p for p in paths if p != paths[3]), key=str)
    assert list(problems) == [paths[3]] and "corrupt run record" in problems[paths[3]]
    assert {r.status for r in records} == {"completed", "failed"}
    assert list_runs(paths[0])[0].path == paths[0]  # a run directory is its own listing
    with pytest.raises(LayerlabError, match="no such folder"):
        list_runs(tmp_path / "missing")


def test_listing_runs_imports_no_torch(tmp_path):
    make_runs(tmp_path, 20)
    code = f"import layerlab.record as r; assert len(r.list_runs({str(tmp_path)!r})) == 20"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line]
    assert "layerlab.record" in imported
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]
