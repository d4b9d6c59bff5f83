"""A run directory is untrusted input: read commands delete nothing, a pointer never names a path out
of the run, hand-edited files give one sentence (exit 2) and never a traceback, and a full disk leaves
a consistent run. Each test here failed on the code before these guarantees."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from datagen import make_idx_dir, save_png
from layerlab import api, checkpoint
from layerlab.cli import main
from layerlab.config import RunConfig
from layerlab.errors import LayerlabError, TrainingError
from layerlab.rundir import RunDir


def _cfg(data: Path, epochs: int = 1) -> RunConfig:
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.train.epochs = epochs
    cfg.train.batch_size = 16
    cfg.train.threads = 1
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny trained run (1 epoch), copied by each test that changes it."""
    root = tmp_path_factory.mktemp("untrusted")
    data = make_idx_dir(root / "data", n_train=32, n_test=16)
    run, _ = api.train(_cfg(data), root / "run")
    save_png(root / "x.png", np.zeros((28, 28), dtype=np.uint8))
    return run.path


def tree_hash(path: Path) -> str:
    """A sha256 of every name and file's bytes under ``path``."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
    return h.hexdigest()


def copy_run(trained: Path, dest: Path) -> Path:
    shutil.copytree(trained, dest)
    return dest


def one_sentence(capsys, code: int) -> str:
    """The error of a command that exited ``code``: exit 2 with one line on stderr and no traceback."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("layerlab: error: ") and err.count("\n") == 1, err
    return err


def _pointer(run: Path) -> Path:
    return run / "checkpoints" / "current.json"


def _ckpts(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("ckpt-"))


# --- point 1: read commands delete nothing; resume refuses a run whose pointer it cannot trust
POINTER_CASES = {
    "missing": None,
    "empty list": "[]",
    "names a missing directory": json.dumps({"dir": "ckpt-gone", "epoch": 1, "step": 0}),
}


@pytest.mark.parametrize("case", POINTER_CASES)
def test_evaluate_and_resume_delete_no_checkpoint_without_a_valid_pointer(trained, tmp_path, capsys, case):
    """Old code: evaluate answered "no checkpoint yet" after deleting every ckpt-*, and resume
    deleted them and trained again from the seed with exit 0."""
    run = copy_run(trained, tmp_path / "run")
    ckpts = _ckpts(run)
    if POINTER_CASES[case] is None:
        _pointer(run).unlink()
    else:
        _pointer(run).write_text(POINTER_CASES[case])
    before = tree_hash(run)
    err = one_sentence(capsys, main(["evaluate", str(run)]))
    assert "current.json" in err and ckpts[0] in err
    for argv in (["predict", str(run), str(trained.parent / "x.png")], ["export", str(run)]):
        one_sentence(capsys, main(argv))
    for view in ("summary", "filters", "errors"):
        one_sentence(capsys, main(["inspect", view, str(run)]))
    err = one_sentence(capsys, main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]))
    assert "current.json" in err and ckpts[0] in err and "nothing was deleted" in err
    assert tree_hash(run) == before and _ckpts(run) == ckpts
    assert RunDir(run).info()["status"] == "completed"  # resume wrote nothing


def test_a_run_without_a_checkpoint_yet_resumes_from_its_seed_and_cleans_a_killed_write(trained, tmp_path):
    """The pointer a run gets when it is made says "no checkpoint yet": a ckpt-* beside it is the
    leftover of a write killed before its swap, removed by the writer (and only by it)."""
    run = copy_run(trained, tmp_path / "run")
    name = _ckpts(run)[0]
    _pointer(run).write_text(json.dumps(checkpoint.NO_CHECKPOINT))
    with pytest.raises(LayerlabError, match="no checkpoint yet"):
        api.evaluate_run(run)
    assert _ckpts(run) == [name]  # evaluate deleted nothing
    resumed, _ = api.resume(run)
    assert name not in _ckpts(run) and len(_ckpts(run)) == 1 and resumed.info()["resumed_from_epoch"] == 0


def test_a_new_run_has_a_pointer_saying_no_checkpoint(tmp_path, trained):
    cfg = RunConfig.from_toml(trained / "config.toml")
    run = RunDir.create(tmp_path / "new", cfg, json.loads((trained / "run.json").read_text()))
    try:
        assert json.loads(_pointer(run.path).read_text()) == checkpoint.NO_CHECKPOINT
        assert not run.has_checkpoint() and run.kept() == "no checkpoint was written"
    finally:
        run.release_lock()


# --- point 2: a pointer is a plain ckpt-* name inside the run, never a path
def _attack_pointers(victim: Path) -> list[str]:
    name = _ckpts(victim)[0]
    return [
        f"../../victim/checkpoints/{name}",
        str((victim / "checkpoints" / name).resolve()),
        "ckpt-x/../../../victim/checkpoints/" + name,
        "..",
        "ckpt-link",
    ]


@pytest.mark.parametrize("which", range(5))
def test_a_pointer_out_of_the_run_neither_reads_nor_deletes_the_victim(trained, tmp_path, capsys, which):
    """Old code: resume deleted the victim's checkpoint (exit 0) and evaluate loaded its weights."""
    victim = copy_run(trained, tmp_path / "victim")
    attack = copy_run(trained, tmp_path / "attack")
    for p in (attack / "checkpoints").glob("ckpt-*"):
        shutil.rmtree(p)
    (attack / "checkpoints" / "ckpt-link").symlink_to((victim / "checkpoints" / _ckpts(victim)[0]).resolve())
    _pointer(attack).write_text(json.dumps({"dir": _attack_pointers(victim)[which], "epoch": 1, "step": 0}))
    victim_before, attack_before = tree_hash(victim), tree_hash(attack)
    one_sentence(capsys, main(["evaluate", str(attack)]))
    one_sentence(capsys, main(["train", "--resume", str(attack), "--epochs", "2", "--quiet"]))
    one_sentence(capsys, main(["predict", str(attack), str(trained.parent / "x.png")]))
    with pytest.raises(LayerlabError, match=r"corrupt checkpoint pointer|a link, not a checkpoint directory"):
        RunDir(attack).weights("last")
    with pytest.raises(LayerlabError, match=r"corrupt checkpoint pointer|a link, not a checkpoint directory"):
        RunDir(attack).training_state()
    assert tree_hash(victim) == victim_before and tree_hash(attack) == attack_before


def test_write_checkpoint_removes_no_old_checkpoint_a_bad_pointer_names(trained, tmp_path):
    """Old code: ``rmtree(ckpt_dir / old["dir"])`` after the swap removed whatever the pointer named."""
    victim = copy_run(trained, tmp_path / "victim")
    attack = copy_run(trained, tmp_path / "attack")
    name = _ckpts(victim)[0]
    _pointer(attack).write_text(json.dumps({"dir": f"../../victim/checkpoints/{name}", "epoch": 1, "step": 0}))
    before = tree_hash(victim)
    model = RunDir(trained).model("last")
    new = checkpoint.write_checkpoint(attack / "checkpoints", model, {"epoch": 2, "step": 0}, best="none")
    assert tree_hash(victim) == before
    assert json.loads(_pointer(attack).read_text())["dir"] == new


# --- point 10: hand-edited run files give one sentence
def _state(run: Path) -> Path:
    return run / "checkpoints" / _ckpts(run)[0] / "state.pt"


def _edit_state(**change):
    def edit(run: Path) -> None:
        st = torch.load(_state(run), weights_only=True)
        for k, v in change.items():
            if v is None:
                st.pop(k)
            else:
                st[k] = v
        torch.save(st, _state(run))

    return edit


def _write(name: str, content: bytes):
    return lambda run: (run / name).write_bytes(content)


def _edit_json(path: Path, **fields) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


DEEP = b"[" * 100_000 + b"]" * 100_000
EDITS = {
    "pointer []": _write("checkpoints/current.json", b"[]"),
    'pointer "x"': _write("checkpoints/current.json", b'"x"'),
    "pointer without dir": _write("checkpoints/current.json", b'{"epoch": 1}'),
    "pointer not UTF-8": _write("checkpoints/current.json", b'{"dir": "\xff\xfe"}'),
    "pointer deep": _write("checkpoints/current.json", DEEP),
    "pointer epoch -1": lambda run: _pointer(run).write_text(json.dumps({"dir": _ckpts(run)[0], "epoch": -1})),
    "run.json deep": _write("run.json", DEEP),
    "run.json not UTF-8": _write("run.json", b"\xff\x00\x01"),
    "run.json fingerprint": lambda run: _edit_json(run / "run.json", data_fingerprint={"train": 1}),
    "run.json wall seconds": lambda run: _edit_json(run / "run.json", train_wall_seconds="1"),
    "run.json parameters": lambda run: _edit_json(run / "run.json", model={"name": "article-cnn", "parameters": "x"}),
    "config.toml garbage": _write("config.toml", b"[model\nname = = 3\x00"),
    "config.toml deep": _write("config.toml", b"a = " + b"[" * 100_000 + b"]" * 100_000),
    "config.toml not UTF-8": _write("config.toml", b"\xff\xfe[model]"),
    "state.pt garbage": lambda run: _state(run).write_bytes(b"not a torch file"),
    "state.pt without optimizer": _edit_state(optimizer=None),
    "state.pt without history": _edit_state(history=None),
    "state.pt bad torch rng": _edit_state(torch_rng=torch.zeros(10, dtype=torch.uint8)),
    "state.pt bad numpy rng": _edit_state(numpy_rng='["MT19937", [1, 2], 0, 0, 0.0]'),
    "state.pt bad python rng": _edit_state(python_rng='"x"'),
    "state.pt history not JSON": _edit_state(history="{"),
    "state.pt epoch a string": _edit_state(epoch="1"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_hand_edited_run_files_give_one_sentence(trained, tmp_path, capsys, edit):
    """Old code: tracebacks (TypeError, KeyError, RecursionError, UnicodeDecodeError, RuntimeError)."""
    run = copy_run(trained, tmp_path / "run")
    EDITS[edit](run)
    before = tree_hash(run)
    reads = edit.startswith(("pointer", "run.json", "config.toml"))  # what evaluate reads; it ignores state.pt
    code = main(["evaluate", str(run)])
    if reads:
        one_sentence(capsys, code)
    else:
        assert code == 0, capsys.readouterr().err
        capsys.readouterr()
    one_sentence(capsys, main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]))
    assert tree_hash(run) == before


@pytest.mark.parametrize("content", [b"\x00\xff\x10binary", b"epoch,train_loss\n1,abc\n", b"epoch\nx\n", b"a,b\n1\n"])
def test_a_hand_edited_metrics_csv_is_one_error(trained, tmp_path, content):
    """Old code: UnicodeDecodeError or ValueError from RunDir.metrics (used by report and inspect)."""
    run = copy_run(trained, tmp_path / "run")
    (run / "metrics.csv").write_bytes(content)
    with pytest.raises(LayerlabError, match=r"metrics\.csv: not a metrics table"):
        RunDir(run).metrics()


@pytest.mark.parametrize("content", ["[1,2,3]", '{"pid": "abc", "host": "h"}', "", "\xff", '{"pid": 1e400}'])
def test_a_hand_edited_lock_is_taken_over_as_stale(trained, tmp_path, caplog, content):
    """A lock file that names no process is nobody's (its writer would hold the file's flock):
    taken over with a warning. Old code: ValueError from int("abc"), TypeError for a list."""
    run = copy_run(trained, tmp_path / "run")
    (run / "lock").write_text(content)
    caplog.set_level("WARNING")
    api.resume(run, epochs=2)
    assert RunDir(run).info()["status"] == "completed" and not (run / "lock").exists()


# --- disk full
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_during_training_leaves_a_failed_run_and_its_checkpoint(trained, tmp_path, monkeypatch, capsys):
    """Old code: a traceback, and run.json said ``running``."""
    data = trained.parent / "data"
    real, calls = checkpoint.save_file, []

    def full_on_second(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            _enospc()
        return real(*a, **kw)

    monkeypatch.setattr(checkpoint, "save_file", full_on_second)
    out = tmp_path / "run"
    argv = ["train", "--model", "article-cnn", "--data", str(data), "--epochs", "2", "--batch-size", "16"]
    argv += ["--threads", "1", "--quiet"]  # the model named: --data alone chooses a recipe with a validation split
    err = one_sentence(capsys, main([*argv, "--out", str(out)]))
    assert "the disk is full" in err and "the checkpoint of epoch 1 is kept" in err
    info = RunDir(out).info()
    assert info["status"] == "failed" and "the disk is full" in info["error"]
    assert not (out / "lock").exists()
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    assert RunDir(out).training_state()["epoch"] == 1 and len(_ckpts(out)) == 1
    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert RunDir(out).info()["status"] == "completed"


@pytest.mark.parametrize("target", ["atomic_write_json", "atomic_write_text"])
def test_disk_full_at_creation_leaves_nothing(trained, tmp_path, monkeypatch, capsys, target):
    """Old code: a traceback, and a config and a lock with no run.json."""
    import layerlab.rundir as rundir

    monkeypatch.setattr(rundir, target, _enospc)
    out = tmp_path / "run"
    data = trained.parent / "data"
    argv = ["train", "--data", str(data), "--epochs", "1", "--batch-size", "16", "--threads", "1", "--quiet"]
    err = one_sentence(capsys, main([*argv, "--out", str(out)]))
    assert "the disk is full" in err
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))


def test_disk_full_writing_metrics_is_one_error(trained, tmp_path, monkeypatch):
    import layerlab.rundir as rundir

    run = copy_run(trained, tmp_path / "run")
    monkeypatch.setattr(rundir, "atomic_write_text", _enospc)
    with pytest.raises(LayerlabError, match=r"metrics\.csv \(the disk is full\)"):
        RunDir(run).write_metrics([{"epoch": 1}])


def test_a_failed_checkpoint_write_removes_what_it_made(trained, tmp_path, monkeypatch):
    run = copy_run(trained, tmp_path / "run")
    before = tree_hash(run)
    monkeypatch.setattr(checkpoint, "atomic_write_json", _enospc)  # the pointer swap fails
    model = RunDir(run).model("last")
    with pytest.raises(OSError):
        checkpoint.write_checkpoint(run / "checkpoints", model, {"epoch": 2, "step": 0}, best="none")
    assert tree_hash(run) == before
    monkeypatch.undo()
    state = RunDir(run).training_state()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainingError, match=r"cannot write a checkpoint .*the disk is full"):
        monkeypatch.setattr(checkpoint, "save_file", _enospc)
        RunDir(run).save_checkpoint(model, opt, state["history"], epoch=2)
    assert tree_hash(run) == before
