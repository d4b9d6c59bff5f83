"""Checks of training options against this machine and the run they continue, made before a run
directory is created or marked ``running``: an option that cannot be honoured is refused in one
sentence and leaves nothing behind (rather than a run directory that ``failed``)."""

from __future__ import annotations

import os
from pathlib import Path

from .callbacks import TensorBoard
from .config import TrainConfig
from .engine import check_cuda_graph
from .errors import ConfigError


def checked_resume_threads(cfg: TrainConfig, info: dict, threads: int) -> int:
    """``threads`` for resuming the run whose training config is ``cfg`` and ``run.json`` is ``info``;
    ConfigError when it differs from the thread count a CPU run was trained with (its ``threads``,
    else the count recorded in its environment): CPU kernels split their sums by thread, so another
    count changes the last bits and the resumed run would not be the one that never stopped."""
    used = cfg.threads
    if used is None:
        env = info.get("environment")
        used = env.get("cpu_threads") if isinstance(env, dict) else None
    on_gpu = str(info.get("device", "cpu")).startswith("cuda")  # its sums do not depend on CPU threads
    if on_gpu or used is None or threads == used:
        return threads
    raise ConfigError(
        f"--threads {threads} differs from the {used} CPU threads this run was trained with, and another "
        f"thread count sums in another order, so the resumed run would not be bit-identical; give "
        f"--threads {used} or leave it out"
    )


def check_runtime_options(cfg: TrainConfig, device, dist=None) -> None:
    """Raise ConfigError for a training option this machine cannot honour (``--cuda-graph`` off a
    GPU, a ``--tensorboard`` folder that cannot be made, TensorBoard not installed), so that the
    run is refused before its run directory exists rather than left behind as ``failed``.
    ``device`` is the torch device training will use; ``dist`` the torchrun context, if any."""
    if cfg.cuda_graph:
        check_cuda_graph(cfg, device, dist)
    if cfg.tensorboard and (dist is None or dist.is_main):
        TensorBoard(cfg.tensorboard)  # says so when the tensorboard package is missing
        check_writable_dir(cfg.tensorboard, "--tensorboard")


def check_writable_dir(path: str | Path, what: str) -> None:
    """Raise ConfigError naming ``what`` (the flag) unless the folder ``path`` exists or can be made,
    and can be written. The check makes the missing folders and removes them again, so it leaves
    nothing behind: the writer makes them when it starts."""
    p = Path(path).expanduser()
    made: list[Path] = []  # deepest first
    try:
        q = p
        while not q.exists() and q != q.parent:
            made.append(q)
            q = q.parent
        p.mkdir(parents=True, exist_ok=True)
        writable = os.access(p, os.W_OK | os.X_OK)
    except FileExistsError:
        raise ConfigError(f"{what} {path}: exists and is not a folder") from None
    except OSError as e:
        raise ConfigError(f"{what} {path}: cannot make this folder ({e.strerror or e})") from None
    finally:
        for d in made:
            try:
                d.rmdir()
            except OSError:
                break  # not made by this check after all, or no longer empty
    if not writable:
        raise ConfigError(f"{what} {path}: this folder cannot be written (permission denied)")
