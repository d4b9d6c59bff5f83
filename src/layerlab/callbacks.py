"""Callbacks: code of yours that :func:`layerlab.training.fit` calls as training goes (Keras's protocol).

Subclass :class:`Callback` and override the hooks you need; each gets the :class:`Trainer`, a small
object with the model, optimizer, history, config and run directory, and ``stop_training``: set it
(with ``stop_reason``) and training ends cleanly after the current epoch, its checkpoint, metrics
and run record whole (``run.json`` then says ``stopped_early``).

Shipped: :class:`EarlyStopping`, :class:`LearningRateMonitor`, :class:`TensorBoard`,
:class:`StepLogger`, :class:`ProgressBar` (the command line's progress display; it works in a
terminal and in a Jupyter notebook). The library itself never prints: only ``ProgressBar`` draws.

Hooks run in the order of the list. Per-step hooks run every ``log_every`` steps (20, or the
``every_n_steps`` a callback asks for), never per step unless asked: reading a loss back syncs a
GPU with the host.

A callback that holds state across epochs returns it from :meth:`Callback.state_dict` (plain
numbers, strings, lists, dicts and tensors: the checkpoint loads with ``weights_only=True``); it is
saved with every checkpoint and handed back to :meth:`Callback.load_state_dict` when the run resumes,
before ``on_train_begin``, so a resumed run continues as if it had never stopped.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import torch

from .checkpoint import unwrap
from .errors import ConfigError, LayerlabError

if TYPE_CHECKING:
    from rich.console import Console

    from .config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Trainer:
    """What callbacks see of a training run.

    Attributes:
        model: the model being trained (not the ``torch.compile`` wrapper).
        optimizer: its optimizer; ``optimizer.param_groups[0]["lr"]`` is the learning rate the next
            step uses.
        history: the rows of finished epochs (the list :class:`~layerlab.training.FitResult` returns).
        cfg: the :class:`~layerlab.config.TrainConfig`.
        run: the :class:`~layerlab.rundir.RunDir` written to, or None.
        stop_training: set True to end training after the current epoch; ``stop_reason`` says why
            (recorded in ``run.json``'s ``stopped_early``).
        held_out: ``"val_"`` when rows are evaluated on a validation split, ``"test_"`` on the test set.
        epochs, steps_per_epoch, n_train: the run's length, steps in an epoch, training samples.
        start_epoch: epochs done before this call (a resumed run); ``epoch``: the current epoch (1-based).
        global_step: optimizer steps taken in the whole run so far.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    history: list[dict]
    cfg: TrainConfig
    run: Any = None
    scheduler: Any = None
    stop_training: bool = False
    stop_reason: str | None = None
    held_out: str = "test_"
    epochs: int = 0
    steps_per_epoch: int = 0
    n_train: int = 0
    start_epoch: int = 0
    epoch: int = 0
    global_step: int = 0
    # global step -> lr of that step (the schedule's closed form)
    lr_at: Callable[[int], float] | None = field(default=None, repr=False)


class Callback:
    """Override the hooks you need; each is a no-op here. ``every_n_steps`` (None: no wish) asks
    :func:`~layerlab.training.fit` to call :meth:`on_step_end` at least that often."""

    every_n_steps: int | None = None

    def check(self, held_out: str, cfg: TrainConfig) -> None:
        """Before anything is made (no run directory yet): raise a :class:`~layerlab.errors.LayerlabError`
        for what this callback cannot do on this run. ``held_out`` is the prefix of the split each
        epoch is evaluated on (``val_``, ``test_`` or ``train_eval_``); ``cfg`` the training config."""

    def state_dict(self) -> dict:
        """What this callback must keep across a resume (empty: nothing); saved in every checkpoint."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Take back what :meth:`state_dict` gave, when a run resumes (before :meth:`on_train_begin`)."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first epoch (of this call: a resumed run has ``trainer.history`` already)."""

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        """Before epoch ``epoch`` (1-based) trains."""

    def on_step_end(self, trainer: Trainer, step: int, logs: dict) -> None:
        """Every ``log_every`` steps and after an epoch's last step. ``step`` counts the run's optimizer
        steps (1-based, across epochs); ``logs``: ``loss`` and ``accuracy`` (running means over the
        epoch so far; no accuracy for regression), ``batch_loss`` (the latest batch), ``lr`` (the
        rate the latest step used), ``epoch``, ``epoch_step`` (steps done in the epoch), ``samples``
        (samples done in the epoch)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict) -> None:
        """After epoch ``epoch`` is evaluated, before its checkpoint: ``row`` is its metrics (``train_*``,
        ``val_*`` or ``test_*``, ``lr``, timings); keys added here go to the history and metrics.csv."""

    def on_train_end(self, trainer: Trainer, history: list[dict]) -> None:
        """After the last epoch (or the one a callback stopped at); not called when training fails."""

    def close(self) -> None:
        """Called last whether training ended, failed or was interrupted: release files and displays."""


def _state_keys(callbacks: list[Callback]) -> list[str]:
    """Each callback's key in a checkpoint: its class name, with ``#2``, ``#3``... for the second and
    further callbacks of one class (in the order of the list)."""
    seen: dict[str, int] = {}
    keys = []
    for cb in callbacks:
        name = type(cb).__name__
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


def callback_states(callbacks: list[Callback]) -> dict[str, dict]:
    """The state of every callback that has some, by its key (what a checkpoint saves); a duck-typed
    callback without ``state_dict`` has none."""
    states = {
        key: cb.state_dict()
        for key, cb in zip(_state_keys(callbacks), callbacks, strict=True)
        if callable(getattr(cb, "state_dict", None))
    }
    return {k: v for k, v in states.items() if v}


def load_callback_states(callbacks: list[Callback], states: dict | None) -> None:
    """Give each callback the state a checkpoint saved for it (by the same key); others get nothing."""
    if not states:
        return
    for key, cb in zip(_state_keys(callbacks), callbacks, strict=True):
        if key in states and callable(getattr(cb, "load_state_dict", None)):
            cb.load_state_dict(states[key])


def log_interval(callbacks: list[Callback], default: int = 20) -> int:
    """Steps between :meth:`Callback.on_step_end` calls: ``default``, or the greatest common divisor of
    the ``every_n_steps`` the callbacks ask for, so each gets every step it wants."""
    wanted = [cb.every_n_steps for cb in callbacks if cb.every_n_steps]
    return math.gcd(*wanted) if wanted else default


# ----------------------------------------------------------------------------------------------
# Early stopping
# ----------------------------------------------------------------------------------------------
#: Words in a metric's name that mean higher is better (EarlyStopping's ``mode="auto"``).
HIGHER_IS_BETTER = ("acc", "f1", "precision", "recall", "auroc", "exact_match")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs after its best.

    Args:
        monitor: a column of the epoch rows: ``val_loss`` (default), ``val_accuracy``,
            ``train_loss``, ... Never ``test_*``: that would choose the number of epochs on the
            test set (hold out a validation split, ``validation=F``, and monitor ``val_*``).
        patience: epochs without improvement to wait; 0 stops at the first epoch that does not improve.
        min_delta: an improvement must exceed this much.
        mode: ``min``, ``max`` or ``auto`` (``max`` for a name with ``acc``, ``f1``, ``precision``,
            ``recall``, ``auroc`` or ``exact_match`` in it, else ``min``).
        restore_best: at the end of training load the weights of the best epoch, kept in memory,
            into the model. Only the model object changes: the run directory's ``last`` stays the
            epoch training stopped at, and its ``best`` is the lowest ``val_loss`` (written only
            with a validation split).

    Its state (best value and epoch, the epochs waited, and with ``restore_best`` the best weights)
    is saved with each checkpoint, so a run killed and resumed stops at the epoch an uninterrupted
    run stops at, with the same weights restored. A resumed run also replays the history it has, so
    patience counts the epochs before the resume even from a checkpoint without this callback's
    state; the best weights are then not known, and the model is left as it is (with a warning).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = False,
    ):
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"EarlyStopping mode must be auto, min or max, got {mode!r}")
        if monitor.startswith("test_"):  # refused where it is written, before any run exists
            raise ConfigError(
                f"EarlyStopping on {monitor} would choose on the test set; hold out a validation split "
                f"(validation=F) and monitor val_{monitor[5:]}"
            )
        if patience < 0 or min_delta < 0:
            raise ConfigError(f"EarlyStopping patience and min_delta must be at least 0, got {patience}, {min_delta}")
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, patience, min_delta, restore_best
        self.mode = mode if mode != "auto" else ("max" if any(w in monitor for w in HIGHER_IS_BETTER) else "min")
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights: dict | None = None
        self._saved: dict | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def _value(self, row: dict) -> float:
        if self.monitor not in row:
            have = ", ".join(k for k in row if k != "epoch")
            raise ConfigError(f"EarlyStopping monitors {self.monitor}, which the epoch rows do not have ({have})")
        return float(row[self.monitor])

    def _see(self, epoch: int, row: dict) -> bool:
        """Update best/wait with one epoch's row; True when it improved."""
        value = self._value(row)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True
        self.wait += 1
        return False

    def check(self, held_out: str, cfg: TrainConfig) -> None:
        if self.monitor.startswith("val_") and held_out != "val_":
            raise ConfigError(
                f"EarlyStopping monitors {self.monitor}, but the run has no validation split; set validation=F "
                f"(--validation F) or monitor a train_ column"
            )

    def state_dict(self) -> dict:
        state = {"monitor": self.monitor, "best_epoch": self.best_epoch, "wait": self.wait}
        if self.best is not None:
            state["best"] = float(self.best)
        if self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state: dict) -> None:
        self._saved = state

    def on_train_begin(self, trainer: Trainer) -> None:
        self.best, self.best_epoch, self.wait, self.best_weights = None, 0, 0, None
        for row in trainer.history:  # a resumed run: the epochs before count
            self._see(int(row["epoch"]), row)
        saved, self._saved = self._saved, None
        # the history decides best and patience; the checkpoint adds the weights, when they are of that epoch
        if saved and saved.get("monitor") == self.monitor and saved.get("best_epoch") == self.best_epoch:
            self.best_weights = saved.get("best_weights") if self.restore_best else None

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict) -> None:
        if self._see(epoch, row):
            if self.restore_best:  # a CPU copy: the device keeps only the weights being trained
                self.best_weights = {k: v.detach().cpu().clone() for k, v in unwrap(trainer.model).state_dict().items()}
            return
        if self.wait >= self.patience:  # Keras's count: patience epochs without improvement, at least one
            self.stopped_epoch = epoch
            trainer.stop_training = True
            trainer.stop_reason = (
                f"{self.monitor} did not improve for {self.wait} epoch{'s' * (self.wait != 1)} "
                f"(best {self.best:.6g} at epoch {self.best_epoch})"
            )

    def on_train_end(self, trainer: Trainer, history: list[dict]) -> None:
        if not self.restore_best or self.best_epoch == 0:
            return
        if self.best_weights is None:
            log.warning(
                "EarlyStopping: the best epoch (%d) was trained before this run was resumed; its weights are "
                "not in memory, so the model keeps the weights of its last epoch",
                self.best_epoch,
            )
            return
        unwrap(trainer.model).load_state_dict(self.best_weights)
        log.info("EarlyStopping: restored the weights of epoch %d (%s %.6g)", self.best_epoch, self.monitor, self.best)


# ----------------------------------------------------------------------------------------------
# The learning rate
# ----------------------------------------------------------------------------------------------
class LearningRateMonitor(Callback):
    """Record the learning rate actually used.

    Each history row (and metrics.csv) gets ``lr_start``, the rate of the epoch's first step, beside
    the engine's ``lr`` (the rate of its last step). ``steps`` collects ``(step, lr)`` at every call
    of :meth:`on_step_end`.

    Args:
        every_n_steps: record the rate every this many steps (None: every ``log_every``).
    """

    def __init__(self, every_n_steps: int | None = None):
        self.every_n_steps = every_n_steps
        self.steps: list[tuple[int, float]] = []

    def on_step_end(self, trainer: Trainer, step: int, logs: dict) -> None:
        if self.every_n_steps and step % self.every_n_steps:
            return
        self.steps.append((step, logs["lr"]))

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict) -> None:
        first = (epoch - 1) * trainer.steps_per_epoch  # 0-based global index of the epoch's first step
        row["lr_start"] = trainer.lr_at(first) if trainer.lr_at else row.get("lr")


# ----------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------
def _scalars(row: dict) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in row.items()
        if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


class TensorBoard(Callback):
    """Write scalars for TensorBoard (``tensorboard --logdir DIR``): every numeric column of each
    epoch's row as ``epoch/<name>`` at step = epoch, and with ``every_n_steps`` the running
    ``loss``/``accuracy``, ``batch_loss`` and ``lr`` as ``step/<name>`` at the run's global step.

    A resumed run appends a new event file to the same folder; TensorBoard shows both.

    Args:
        log_dir: the folder to write event files to (made before training starts).
        every_n_steps: also write the step scalars every this many steps (None: epochs only).

    Raises:
        LayerlabError: the ``tensorboard`` package is not installed (``pip install
            'layerlab[tensorboard]'``), or ``log_dir`` cannot be written.
    """

    def __init__(self, log_dir: str | Path, every_n_steps: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (checked here, before training)
        except ImportError:
            raise LayerlabError(
                "TensorBoard logging needs the tensorboard package; install it with "
                "pip install 'layerlab[tensorboard]' (or pip install tensorboard)"
            ) from None
        self.log_dir = Path(log_dir)
        self.every_n_steps = every_n_steps
        self.writer: Any = None  # a SummaryWriter while training

    def check(self, held_out: str, cfg: TrainConfig) -> None:
        try:  # before the run directory exists: a folder that cannot be made leaves none behind
            self.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LayerlabError(f"{self.log_dir}: cannot write TensorBoard files there ({e.strerror or e})") from None

    def on_train_begin(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        try:
            self.writer = SummaryWriter(log_dir=str(self.log_dir))
        except OSError as e:
            raise LayerlabError(f"{self.log_dir}: cannot write TensorBoard files there ({e.strerror or e})") from None

    def on_step_end(self, trainer: Trainer, step: int, logs: dict) -> None:
        if not self.every_n_steps or step % self.every_n_steps or self.writer is None:
            return
        for k in ("loss", "accuracy", "batch_loss", "lr"):
            if k in logs:
                self.writer.add_scalar(f"step/{k}", float(logs[k]), step)

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict) -> None:
        if self.writer is None:
            return
        for k, v in _scalars(row).items():
            self.writer.add_scalar(f"epoch/{k}", v, epoch)
        self.writer.flush()  # an epoch's scalars are on disk before the next one starts

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class StepLogger(Callback):
    """Write one CSV row per logged step to ``path``: ``step`` (the run's), ``epoch``, ``epoch_step``,
    ``loss`` and ``accuracy`` (running means over the epoch), ``batch_loss``, ``lr``.

    Rows are flushed as written, so a killed run leaves every row it logged.

    Args:
        path: the CSV file.
        every_n_steps: write a row every this many steps (each row reads a loss back from the
            device, so on a GPU every step costs a sync: pass 20 to avoid it).
        append: append to ``path`` (a resumed run) instead of replacing it at the start of training.

    Raises:
        ConfigError: ``every_n_steps`` below 1.
        LayerlabError: ``path`` cannot be written (when training starts).
    """

    COLUMNS = ("step", "epoch", "epoch_step", "loss", "accuracy", "batch_loss", "lr")

    def __init__(self, path: str | Path, every_n_steps: int = 1, append: bool = False):
        if every_n_steps < 1:
            raise ConfigError(f"StepLogger every_n_steps must be at least 1, got {every_n_steps}")
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self.append = append
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        keep = self.append and self.path.is_file() and self.path.stat().st_size > 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a" if keep else "w", newline="")
        except OSError as e:
            raise LayerlabError(f"{self.path}: cannot write the step log there ({e.strerror or e})") from None
        self._writer = csv.DictWriter(self._file, fieldnames=self.COLUMNS, extrasaction="ignore")
        if not keep:
            self._writer.writeheader()

    def on_step_end(self, trainer: Trainer, step: int, logs: dict) -> None:
        if self._writer is None or self._file is None or step % (self.every_n_steps or 1):  # (at least 1)
            return
        self._writer.writerow({"step": step, **{k: logs.get(k, "") for k in self.COLUMNS if k != "step"}})
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None


# ----------------------------------------------------------------------------------------------
# Progress display
# ----------------------------------------------------------------------------------------------
#: What the split evaluated after each epoch is (see :func:`layerlab.training.held_out_prefix`).
HELD_OUT_PREFIXES = ("val_", "test_", "train_eval_")


def row_prefix(row: dict) -> str:
    """The held-out prefix of a metrics row: ``val_``, ``test_`` or ``train_eval_``."""
    return next((p for p in HELD_OUT_PREFIXES if f"{p}loss" in row), "test_")


def epoch_line(epoch: int, row: dict) -> str:
    """The one-line summary of a finished epoch that ``ProgressBar`` prints."""
    parts = [f"epoch {epoch}", f"loss {row['train_loss']:.4f}"]
    if "train_accuracy" in row:
        parts.append(f"acc {row['train_accuracy']:.4f}")
    p = row_prefix(row)  # val_, test_ or train_eval_: each split named as what it is
    if f"{p}loss" in row:
        parts.append(f"{p}loss {row[f'{p}loss']:.4f}")
    if f"{p}accuracy" in row:
        parts.append(f"{p}acc {row[f'{p}accuracy']:.4f}")
    for k, v in row.items():  # metrics by name (val_f1_macro, ...)
        if k.startswith(p) and k[len(p) :] not in ("loss", "accuracy", "n") and isinstance(v, float):
            parts.append(f"{k} {v:.4f}")
    if "grad_norm_max" in row:
        parts.append(f"grad_norm max {row['grad_norm_max']:.3g} clipped {row['clipped_fraction']:.0%}")
    parts.append(f"{row['train_seconds']:.1f}s ({row['samples_per_second']:,.0f} samples/s)")
    return " | ".join(parts)


def _jupyter_bar_possible(console) -> bool:
    """rich draws a live bar in Jupyter through ipywidgets; without it, it would only warn."""
    if not console.is_jupyter:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class ProgressBar(Callback):
    """Training progress as Keras's ``verbose`` draws it, with rich (in a terminal or a Jupyter notebook).

    Args:
        verbose: 0 silent; 1 a bar per epoch (loss, accuracy, samples/s, ETA) and a line per
            finished epoch; 2 only the line per epoch.
        console: a ``rich.console.Console`` for the epoch lines (default: stdout, or stderr with
            ``to_stderr``).
        bar_console: the console the bar is drawn on (default: stderr). The bar is drawn only where
            it can be: a terminal, or a notebook with ipywidgets; elsewhere (a pipe, a log file)
            verbose 1 prints the epoch lines alone.
        to_stderr: epoch lines to stderr (so stdout carries only what a program reads, e.g. JSON).
        refresh_seconds: in a notebook, the bar is redrawn by time, at most this often (it reads the
            running loss after every step there, instead of every 20), and it is left in its final
            state at the end of each epoch, so a saved notebook shows where each epoch ended.
    """

    def __init__(
        self,
        verbose: int = 1,
        *,
        console: Console | None = None,
        bar_console: Console | None = None,
        to_stderr: bool = False,
        refresh_seconds: float = 0.25,
    ):
        from rich.console import Console

        if verbose not in (0, 1, 2):
            raise ConfigError(f"ProgressBar verbose must be 0, 1 or 2, got {verbose!r}")
        self.verbose = verbose
        self.out = console if console is not None else Console(highlight=False, stderr=to_stderr)
        self.err = bar_console if bar_console is not None else Console(stderr=True)
        self.bar: Any = None  # a rich Progress while an epoch trains
        self.task: Any = None
        self.t0 = 0.0
        self.refresh_seconds = refresh_seconds
        self.last_draw = 0.0
        # a notebook has no terminal that redraws itself: updates follow time, so every step is seen
        self.notebook = verbose == 1 and _jupyter_bar_possible(self.err)
        if self.notebook:
            self.every_n_steps = 1

    def _can_draw(self) -> bool:
        return self.err.is_terminal or _jupyter_bar_possible(self.err)

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.t0 = time.perf_counter()
        if self.verbose != 1 or not self._can_draw():
            return
        self.bar = Progress(
            TextColumn(f"epoch {epoch}/{trainer.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=self.err,
            transient=not self.notebook,  # a notebook keeps each epoch's final bar, not an empty widget
            auto_refresh=not self.notebook,  # a notebook's bar is redrawn by time, in on_step_end
        )
        self.bar.start()
        self.task = self.bar.add_task("train", total=trainer.steps_per_epoch, stats="")
        self.last_draw = time.perf_counter()

    def on_step_end(self, trainer: Trainer, step: int, logs: dict) -> None:
        if self.bar is None:
            return
        rate = logs["samples"] / max(time.perf_counter() - self.t0, 1e-9)
        m = logs
        stats = f"loss {m['loss']:.4f}" + (f" acc {m['accuracy']:.4f}" if "accuracy" in m else "") + f" {rate:,.0f}/s"
        self.bar.update(self.task, completed=logs["epoch_step"], stats=stats)
        now = time.perf_counter()
        if self.notebook and now - self.last_draw >= self.refresh_seconds:
            self.bar.refresh()
            self.last_draw = now

    def _stop_bar(self) -> None:
        if self.bar is not None:
            if self.notebook:  # the final state, drawn once more before the widget is left
                self.bar.refresh()
                # rich's stop would print an empty output beside the widget (its cursor codes): keep it out
                quiet, self.err.quiet = self.err.quiet, True
                try:
                    self.bar.stop()
                finally:
                    self.err.quiet = quiet
            else:
                self.bar.stop()
            self.bar = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict) -> None:
        self._stop_bar()
        if self.verbose:
            self.out.print(epoch_line(epoch, row))

    def close(self) -> None:
        self._stop_bar()  # a failed or interrupted run must not leave the terminal in a live display
