"""Fine-tuning: start a model from another run's weights (``--init-from RUN``), with a new head for
a new task (``--head new``), and train only the layers after some (``--freeze UNTIL_LAYER``).

The head is the model's last ``nn.Linear`` (the CNN's ``classifier``, a recurrent model's ``out``,
the MLP's last layer). Weights are copied by name where the shapes agree; a head that does not fit
the new data's classes without ``--head new``, or a layer that differs elsewhere, is one sentence.
What was copied and frozen is recorded in the new run's ``run.json`` (``init_from``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .errors import ConfigError

#: ``--head``: ``keep`` copies the source run's head too (same classes), ``new`` leaves the new
#: model's freshly initialised head.
HEADS = ("keep", "new")


def head_name(model: nn.Module) -> str:
    """The name of the model's head: its last ``nn.Linear`` module."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ConfigError(f"{type(model).__name__} has no Linear layer to use as a head")
    return names[-1]


def layer_names(model: nn.Module) -> list[str]:
    """The names of the modules that hold parameters directly, in order (what ``--freeze`` names)."""
    return [name for name, m in model.named_modules() if name and any(True for _ in m.parameters(recurse=False))]


def init_from(model: nn.Module, source: str | Path, *, head: str = "keep", which: str | None = None) -> dict:
    """Copy the weights of the run ``source`` (its ``which`` weights: best when a validation split
    chose them, else last) into ``model`` by name; with ``head="new"`` the head keeps its fresh
    initialisation. Returns what run.json records: ``run``, ``weights``, ``copied`` and ``head``."""
    from .rundir import RunDir

    if head not in HEADS:
        raise ConfigError(f"--head must be one of {', '.join(HEADS)}, got {head!r}")
    run = RunDir(source)
    used = run.resolve_weights(which)
    theirs = run.model(used, "cpu").state_dict()
    ours = model.state_dict()
    skip = head_name(model) + "." if head == "new" else None
    copied = 0
    for name, value in ours.items():
        if skip and name.startswith(skip):
            continue
        if name not in theirs:
            raise ConfigError(
                f"--init-from {source}: its model has no {name}; fine-tuning needs the same architecture "
                f"(model and options) up to the head"
            )
        if theirs[name].shape != value.shape:
            head = head_name(model)
            if name.startswith(head + "."):
                raise ConfigError(
                    f"--init-from {source}: its head {head} has shape {tuple(theirs[name].shape)}, this data needs "
                    f"{tuple(value.shape)} (other classes); pass --head new for a new head"
                )
            raise ConfigError(
                f"--init-from {source}: {name} has shape {tuple(theirs[name].shape)} there and {tuple(value.shape)} "
                f"here; fine-tuning needs the same architecture and input size up to the head"
            )
        with torch.no_grad():
            value.copy_(theirs[name].to(value.device, value.dtype))
        copied += 1
    return {"run": str(run.path), "weights": used, "copied": copied, "head": head}


def freeze(model: nn.Module, until: str) -> int:
    """Freeze the parameters of every layer up to and including ``until`` (a module name of
    :func:`layer_names`, such as ``features.3``; ``body`` freezes everything but the head); returns
    how many parameter tensors were frozen."""
    names = layer_names(model)
    if until == "body":
        head = head_name(model)
        last = max(i for i, n in enumerate(names) if not (n == head or n.startswith(head + "."))) if names else -1
    else:
        matches = [i for i, n in enumerate(names) if n == until or n.startswith(until + ".")]
        if not matches:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise ConfigError(f"--freeze {until}: the model has no such layer; its layers are {shown} (or body)")
        last = max(matches)
    frozen = 0
    modules = dict(model.named_modules())
    for name in names[: last + 1]:
        for p in modules[name].parameters(recurse=False):
            p.requires_grad_(False)
            frozen += 1
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"--freeze {until} freezes every layer; nothing would train")
    return frozen


def prepare(model: nn.Module, cfg) -> dict | None:
    """Apply a TrainConfig's ``init_from``, ``head`` and ``freeze`` to a newly built model; returns
    run.json's ``init_from`` record (None when the config asks for neither)."""
    record = None
    if cfg.init_from:
        record = init_from(model, cfg.init_from, head=cfg.head or "keep")
    elif cfg.head == "new":
        raise ConfigError("--head new replaces the head of a model started from another run; give --init-from RUN")
    if cfg.freeze:
        n = freeze(model, cfg.freeze)
        record = {**(record or {}), "frozen": cfg.freeze, "frozen_tensors": n}
    return record
