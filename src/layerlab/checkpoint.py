"""Checkpoints: safetensors weights plus a small training-state file, written as one unit.

A checkpoint is a directory ``checkpoints/ckpt-XXXX/`` holding ``last.safetensors``, ``state.pt``
(optimizer, RNG streams, history, position in the epoch) and, once a run has one,
``best.safetensors``. It is filled under a temporary name (``checkpoints/.tmp-XXXX/``), renamed,
and only then named by the pointer file ``checkpoints/current.json``, itself replaced atomically:
whatever instant a process dies at, the pointer names either the old or the new checkpoint, each
whole, so resume never mixes the weights of one epoch with the optimizer state of another.
A run gets its pointer when it is made (``{"dir": null}``: no checkpoint yet), so under a valid pointer
a directory it does not name is provably the leftover of a killed write, removed by the next writer
(under the run's lock); a missing or invalid pointer is never a reason to delete anything.

A run directory is untrusted input (users copy, share and download them): the pointer must name a
plain ``ckpt-*`` directory inside ``checkpoints/``, never a path, or it is refused in one sentence.

Set ``LAYERLAB_TEST_PAUSE_AT=NAME`` (or ``NAME:K``, the K-th time) to make a process print
``LAYERLAB_PAUSED NAME`` on stderr and sleep at the named point (see :func:`pause_point`): the kill
tests use it to SIGKILL a run inside a checkpoint write.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import torch
from safetensors.torch import load_file, save_file

from .errors import LayerlabError, RunError


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(tmp_path)`` then rename the result to ``path`` (same filesystem, so atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        _fsync_file(Path(tmp))  # the bytes are on disk before the name is: a crash leaves old or new, whole
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
            model = cast(torch.nn.Module, model._orig_mod)
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def load_weights(path: str | Path, model: torch.nn.Module) -> None:
    path = Path(path)
    if path.is_symlink() or not path.is_file():  # a link could read weights from outside the run
        raise RunError(f"{path}: checkpoint not found")
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise RunError(f"{path}: not a readable safetensors checkpoint ({e})") from None
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
            raise RunError(f"{path}: weight {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}")
    if missing or unexpected:
        raise RunError(
            f"{path}: checkpoint does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    target.load_state_dict(state)


#: The pointer file that names the current checkpoint directory.
POINTER = "current.json"
#: What a checkpoint directory is called: ``ckpt-`` and the characters of a temporary name, nothing
#: that could be a path (no ``/``, no ``..``).
CKPT_NAME = re.compile(r"ckpt-[A-Za-z0-9_]{1,64}")
#: The pointer of a run that has no checkpoint yet (written when the run is made).
NO_CHECKPOINT = {"dir": None, "epoch": 0, "step": 0}


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_pointer(ckpt_dir: Path) -> dict | None:
    """What ``checkpoints/current.json`` says (``dir``: a ``ckpt-*`` name or None before the first
    checkpoint, ``epoch``, ``step``), or None without a pointer file. A pointer that is not such an
    object, or names anything but a plain ``ckpt-*`` directory in ``ckpt_dir``, is a LayerlabError."""
    p = Path(ckpt_dir) / POINTER
    if not p.exists():
        return None
    try:
        pointer = json.loads(p.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise RunError(_corrupt(p, _short(e))) from None
    except OSError as e:
        raise RunError(f"{p}: the checkpoint pointer cannot be read ({e.strerror or e})") from None
    problem = _pointer_problem(pointer)
    if problem:
        raise RunError(_corrupt(p, problem))
    name = pointer["dir"]
    if name is not None:
        target = Path(ckpt_dir) / name
        if target.is_symlink() or not target.is_dir():
            what = "a link, not a checkpoint directory" if target.is_symlink() else "which does not exist"
            raise RunError(
                f"{p} names {name}, {what} (checkpoint directories here: {_listing(ckpt_dir)}); nothing was deleted"
            )
    return pointer


def _corrupt(p: Path, problem: str) -> str:
    return (
        f"{p}: corrupt checkpoint pointer ({problem}; checkpoint directories here: {_listing(p.parent)}); "
        f"nothing was deleted"
    )


def _short(e: BaseException) -> str:
    return "nested too deeply" if isinstance(e, RecursionError) else first_line(e)


def first_line(e: BaseException) -> str:
    """An exception's message cut to one short line, for a one-sentence error."""
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _pointer_problem(pointer) -> str | None:
    if not isinstance(pointer, dict):
        return f"expected a JSON object, got {type(pointer).__name__}"
    name = pointer.get("dir", ...)
    if name is ...:
        return "no dir"
    if name is not None and (not isinstance(name, str) or not CKPT_NAME.fullmatch(name)):
        return f"dir must name a ckpt-* directory inside checkpoints/, got {str(name)[:80]!r}"
    if not _count(pointer.get("epoch")) or not _count(pointer.get("step", 0)):
        return "epoch and step must be non-negative integers"
    return None


def checkpoint_dirs(ckpt_dir: Path) -> list[str]:
    """The names of the ``ckpt-*`` entries in ``ckpt_dir``, sorted."""
    try:
        return sorted(p.name for p in Path(ckpt_dir).iterdir() if p.name.startswith("ckpt-"))
    except OSError:
        return []


def _listing(ckpt_dir: Path) -> str:
    names = checkpoint_dirs(ckpt_dir)
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "") if names else "none"


def current_checkpoint(ckpt_dir: Path) -> Path | None:
    """The current checkpoint directory, or None when the run has none yet. A missing pointer beside
    ``ckpt-*`` directories (removed or lost by hand: which of them is current cannot be known) and
    any invalid pointer are LayerlabErrors, so nothing reads or deletes a checkpoint on a guess."""
    ckpt_dir = Path(ckpt_dir)
    pointer = read_pointer(ckpt_dir)
    if pointer is None:
        names = checkpoint_dirs(ckpt_dir)
        if names:
            raise RunError(
                f"{ckpt_dir / POINTER} is missing, so which checkpoint is current is unknown (checkpoint "
                f"directories here: {_listing(ckpt_dir)}); nothing was deleted: write the pointer back as "
                f'{{"dir": "NAME", "epoch": N, "step": 0}} or train again'
            )
        return None
    return None if pointer["dir"] is None else ckpt_dir / pointer["dir"]


def _own_old(ckpt_dir: Path) -> str | None:
    """The checkpoint a valid pointer names before a write (None: none, or no valid pointer, and
    then nothing is removed after the write)."""
    try:
        pointer = read_pointer(ckpt_dir)
    except LayerlabError:
        return None
    return pointer["dir"] if pointer else None


def write_checkpoint(ckpt_dir: Path, model: torch.nn.Module, state: dict, *, best: str) -> str:
    """Write one checkpoint as a unit and make it the current one; returns its directory name.

    ``best`` says where the checkpoint's ``best.safetensors`` comes from: ``"this"`` (these weights
    are the best so far), ``"keep"`` (the current checkpoint's, hard-linked) or ``"none"``.
    The old checkpoint is removed only after the pointer names the new one, and only when a valid
    pointer named it. A write that fails (a full disk) removes what it made and leaves the old
    checkpoint current.
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    old = _own_old(ckpt_dir)
    tmp = Path(tempfile.mkdtemp(dir=ckpt_dir, prefix=".tmp-"))
    name = "ckpt-" + tmp.name[len(".tmp-") :]
    made, pointed = tmp, False
    try:
        weights = {k: v.detach().contiguous().cpu() for k, v in unwrap(model).state_dict().items()}
        save_file(weights, tmp / "last.safetensors")
        pause_point("after-weights")
        torch.save(state, tmp / "state.pt")
        pause_point("after-state")
        if best == "this":
            os.link(tmp / "last.safetensors", tmp / "best.safetensors")
        elif best == "keep" and old and (ckpt_dir / old / "best.safetensors").is_file():
            try:
                os.link(ckpt_dir / old / "best.safetensors", tmp / "best.safetensors")
            except OSError:  # a filesystem without hard links
                shutil.copyfile(ckpt_dir / old / "best.safetensors", tmp / "best.safetensors")
        for f in tmp.iterdir():
            _fsync_file(f)
        _fsync_dir(tmp)
        os.rename(tmp, ckpt_dir / name)
        made = ckpt_dir / name
        _fsync_dir(ckpt_dir)
        pause_point("before-swap")
        atomic_write_json(ckpt_dir / POINTER, {"dir": name, "epoch": state["epoch"], "step": state.get("step", 0)})
        pointed = True
    finally:
        if not pointed:  # our own unfinished write: the old checkpoint stays current
            shutil.rmtree(made, ignore_errors=True)
    _fsync_dir(ckpt_dir)
    pause_point("after-swap")
    if old and old != name:
        shutil.rmtree(ckpt_dir / old, ignore_errors=True)
    return name


def write_no_checkpoint(ckpt_dir: Path) -> None:
    """Give a new run its pointer saying it has no checkpoint yet."""
    atomic_write_json(Path(ckpt_dir) / POINTER, NO_CHECKPOINT)


def clean_checkpoints(ckpt_dir: Path) -> list[str]:
    """Remove what killed writes left in ``checkpoints/``: temporary directories and files, and
    checkpoint directories a valid pointer does not name. Returns the names removed. A missing
    pointer beside checkpoint directories, or an invalid one, is a LayerlabError and nothing is
    removed. Call it only while this process holds the run's lock."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir() or ckpt_dir.is_symlink():
        return []
    current = current_checkpoint(ckpt_dir)  # raises on a missing or invalid pointer
    removed = []
    for p in sorted(ckpt_dir.iterdir()):
        if p.is_symlink():
            continue
        ours = p.name.startswith(".tmp-") or (CKPT_NAME.fullmatch(p.name) and (current is None or p != current))
        if p.is_dir() and ours:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
        elif p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def load_training_state(path: str | Path) -> dict:
    """A checkpoint's ``state.pt``, read without running code (``weights_only``) and checked: the
    fields resume reads must be there with the right types, or one LayerlabError names the first
    that is not."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise RunError(f"{path}: training state not found; cannot resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RunError(f"{path}: corrupt training state ({first_line(e)})") from None
    problem = _state_problem(state)
    if problem:
        raise RunError(f"{path}: corrupt training state ({problem})")
    return state


def _state_problem(state) -> str | None:
    if not isinstance(state, dict):
        return f"expected a dict, got {type(state).__name__}"
    for key in ("epoch", "step"):
        if not _count(state.get(key, 0 if key == "step" else None)):
            return f"{key} must be a non-negative integer"
    opt = state.get("optimizer")
    if not (
        isinstance(opt, dict)
        and isinstance(opt.get("state"), dict)
        and isinstance(opt.get("param_groups"), list)
        and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in opt["param_groups"])
    ):
        return "no optimizer state"
    for key in ("history", "numpy_rng", "python_rng"):
        if not isinstance(state.get(key), str):
            return f"no {key}"
    rng = state.get("torch_rng")
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
        return "no torch_rng"
    if state.get("step"):
        stats, norms = state.get("train_stats"), state.get("grad_norms")
        if not isinstance(stats, torch.Tensor) or not isinstance(norms, torch.Tensor):
            return "a mid-epoch checkpoint without its train_stats and grad_norms"
    return None
