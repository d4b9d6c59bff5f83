"""The explorer's listing (torch-free): the runs table's rows, ids, curves and step logs, from
hand-written run records."""

from __future__ import annotations

import os

import pytest

from explore_runs import write_record
from layerlab.errors import LayerlabError
from layerlab.explore.listing import STEP_POINTS, RunIndex, curves, row, step_curves


def test_rows_hold_what_the_table_shows(tmp_path):
    write_record(tmp_path / "a", val_loss=(2.0, 0.5, 0.9), config_extra="batch_size = 64\n")
    write_record(tmp_path / "b", model="mlp", val_loss=(1.0,))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{not json")
    index = RunIndex([tmp_path])
    rows = {r["name"]: r for r in index.rows()}
    assert set(rows) == {"a", "b"}
    a = rows["a"]
    assert (a["model"], a["data"], a["epochs"], a["status"], a["params"]) == ("linear", "bars", 3, "completed", 7850)
    assert a["final_val_loss"] == 0.9 and a["best_val_loss"] == 0.5 and a["best_epoch"] == 2
    assert a["config"]["train.batch_size"] == 64 and a["config"]["model.name"] == "linear"
    assert a["final_test_loss"] is None and a["family"] == "other"
    # the unreadable run is reported by its name and the reason, without the folder's path
    assert list(index.problems) == ["broken"]
    assert "corrupt run record" in index.problems["broken"] and str(tmp_path) not in index.problems["broken"]


def test_ids_are_stable_and_unique(tmp_path):
    for name in ("x", "y", "z/deep"):
        write_record(tmp_path / name)
    first = {e.name: e.id for e in RunIndex([tmp_path]).entries()}
    again = {e.name: e.id for e in RunIndex([tmp_path]).entries()}
    assert first == again and len(set(first.values())) == 3
    with pytest.raises(KeyError):
        RunIndex([tmp_path]).get("x")


def test_a_missing_folder_is_one_sentence(tmp_path):
    with pytest.raises(LayerlabError, match="no such folder"):
        RunIndex([tmp_path / "nope"])
    with pytest.raises(LayerlabError, match="at least one"):
        RunIndex([])


def test_curves_are_the_metrics_columns(tmp_path):
    index = RunIndex([write_record(tmp_path / "a", val_loss=(2.0, 1.5))])
    c = curves(index.entries()[0])
    assert c["epoch"] == [1, 2] and c["val_loss"] == [2.0, 1.5] and c["lr"] == [0.001, 0.001]


def test_step_log_thinned_and_kept_inside_the_run(tmp_path):
    run = write_record(tmp_path / "a")
    entry = RunIndex([run]).entries()[0]
    assert step_curves(entry) is None
    n = 5000
    lines = ["step,epoch,epoch_step,loss,accuracy,batch_loss,lr"]
    lines += [f"{s},1,{s},{1 / s},0.5,{2 / s},0.001" for s in range(1, n + 1)]
    (run / "steps.csv").write_text("\n".join(lines) + "\n")
    s = step_curves(entry)
    assert len(s["step"]) == STEP_POINTS and s["step"][0] == 1 and s["step"][-1] == n
    assert s["loss"][-1] == pytest.approx(1 / n) and "epoch" not in s
    (run / "steps.csv").write_text("step,loss\n1,abc\n")
    assert "not a step log" in step_curves(entry)["error"]
    # a step log that is a link (to a system file) is not read
    (run / "steps.csv").unlink()
    os.symlink("/etc/passwd", run / "steps.csv")
    assert step_curves(entry) is None


def test_row_of_a_run_without_metrics(tmp_path):
    run = write_record(tmp_path / "a")
    (run / "metrics.csv").unlink()
    r = row(RunIndex([run]).entries()[0])
    assert r["epochs"] == 0 and r["final_val_loss"] is None and r["best_val_loss"] is None
