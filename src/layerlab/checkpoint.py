"""Checkpoints: safetensors weights plus a small training-state file, written as one unit.

A checkpoint is a directory ``checkpoints/ckpt-XXXX/`` holding ``last.safetensors``, ``state.pt``
(optimizer, RNG streams, history, position in the epoch) and, once a run has one,
``best.safetensors``. It is filled under a temporary name (``checkpoints/.tmp-XXXX/``), renamed,
and only then named by the pointer file ``checkpoints/current.json``, itself replaced atomically:
whatever instant a process dies at, the pointer names either the old or the new checkpoint, each
whole, so resume never mixes the weights of one epoch with the optimizer state of another.
Directories the pointer does not name are leftovers of a killed write, removed at the next start.

Set ``LAYERLAB_TEST_PAUSE_AT=NAME`` (or ``NAME:K``, the K-th time) to make a process print
``LAYERLAB_PAUSED NAME`` on stderr and sleep at the named point (see :func:`pause_point`): the kill
tests use it to SIGKILL a run inside a checkpoint write.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import LayerlabError


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(tmp_path)`` then rename the result to ``path`` (same filesystem, so atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


_PAUSES: dict[str, int] = {}


def pause_point(name: str) -> None:
    """A named point where a test may stop this process: with ``LAYERLAB_TEST_PAUSE_AT=NAME`` (or
    ``NAME:K`` for the K-th time the point is reached) print ``LAYERLAB_PAUSED NAME`` on stderr and
    sleep, so that the test can SIGKILL the process exactly there. Costs one dict lookup otherwise."""
    want = os.environ.get("LAYERLAB_TEST_PAUSE_AT")
    if not want:
        return
    target, _, k = want.partition(":")
    if target != name:
        return
    _PAUSES[name] = _PAUSES.get(name, 0) + 1
    if _PAUSES[name] != int(k or 1):
        return
    print(f"LAYERLAB_PAUSED {name}", file=sys.stderr, flush=True)
    time.sleep(600)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module under ``torch.compile`` and DistributedDataParallel wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def save_weights(path: str | Path, model: torch.nn.Module) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in unwrap(model).state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp))


def load_weights(path: str | Path, model: torch.nn.Module) -> None:
    path = Path(path)
    if not path.is_file():
        raise LayerlabError(f"{path}: checkpoint not found")
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise LayerlabError(f"{path}: not a readable safetensors checkpoint ({e})") from None
    target = unwrap(model)
    missing, unexpected = [], []
    own = target.state_dict()
    for k in own:
        if k not in state:
            missing.append(k)
    for k, v in state.items():
        if k not in own:
            unexpected.append(k)
        elif own[k].shape != v.shape:
            raise LayerlabError(
                f"{path}: weight {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
            )
    if missing or unexpected:
        raise LayerlabError(
            f"{path}: checkpoint does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    target.load_state_dict(state)


def save_training_state(path: str | Path, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


#: The pointer file that names the current checkpoint directory.
POINTER = "current.json"


def read_pointer(ckpt_dir: Path) -> dict | None:
    """What ``checkpoints/current.json`` says (``dir``, ``epoch``, ``step``), or None before the first checkpoint."""
    p = Path(ckpt_dir) / POINTER
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise LayerlabError(f"{p}: corrupt checkpoint pointer ({e})") from None


def write_checkpoint(ckpt_dir: Path, model: torch.nn.Module, state: dict, *, best: str) -> str:
    """Write one checkpoint as a unit and make it the current one; returns its directory name.

    ``best`` says where the checkpoint's ``best.safetensors`` comes from: ``"this"`` (these weights
    are the best so far), ``"keep"`` (the current checkpoint's, hard-linked) or ``"none"``.
    The old checkpoint is removed only after the pointer names the new one.
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    old = read_pointer(ckpt_dir)
    tmp = Path(tempfile.mkdtemp(dir=ckpt_dir, prefix=".tmp-"))
    weights = {k: v.detach().contiguous().cpu() for k, v in unwrap(model).state_dict().items()}
    save_file(weights, tmp / "last.safetensors")
    pause_point("after-weights")
    torch.save(state, tmp / "state.pt")
    pause_point("after-state")
    if best == "this":
        os.link(tmp / "last.safetensors", tmp / "best.safetensors")
    elif best == "keep" and old and (ckpt_dir / old["dir"] / "best.safetensors").is_file():
        try:
            os.link(ckpt_dir / old["dir"] / "best.safetensors", tmp / "best.safetensors")
        except OSError:  # a filesystem without hard links
            shutil.copyfile(ckpt_dir / old["dir"] / "best.safetensors", tmp / "best.safetensors")
    for f in tmp.iterdir():
        _fsync_file(f)
    _fsync_dir(tmp)
    name = "ckpt-" + tmp.name[len(".tmp-") :]
    os.rename(tmp, ckpt_dir / name)
    _fsync_dir(ckpt_dir)
    pause_point("before-swap")
    atomic_write_json(ckpt_dir / POINTER, {"dir": name, "epoch": state["epoch"], "step": state.get("step", 0)})
    _fsync_dir(ckpt_dir)
    pause_point("after-swap")
    if old and old["dir"] != name:
        shutil.rmtree(ckpt_dir / old["dir"], ignore_errors=True)
    return name


def clean_checkpoints(ckpt_dir: Path) -> list[str]:
    """Remove what killed writes left in ``checkpoints/``: temporary directories and files, and
    checkpoint directories the pointer does not name. Returns the names removed. Call it only
    while no other process writes the run (under its lock, or when no live process holds it)."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    current = (read_pointer(ckpt_dir) or {}).get("dir")
    removed = []
    for p in sorted(ckpt_dir.iterdir()):
        stale_dir = p.is_dir() and (p.name.startswith(".tmp-") or (p.name.startswith("ckpt-") and p.name != current))
        if stale_dir:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
        elif p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def load_training_state(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise LayerlabError(f"{path}: training state not found; cannot resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise LayerlabError(f"{path}: corrupt training state ({e})") from None
