"""Checkpoints: safetensors weights plus a small training-state file, each written atomically
(temporary file in the same directory, then ``os.replace``), so a crash never leaves a torn file."""

from __future__ import annotations

import json
import os
import tempfile
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


def load_training_state(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise LayerlabError(f"{path}: training state not found; cannot resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise LayerlabError(f"{path}: corrupt training state ({e})") from None
