"""Training progress on the terminal: the library only logs, the command line draws."""

from __future__ import annotations

import time


class RichProgress:
    """A progress bar per epoch (loss, accuracy, samples/s, ETA) and a line per finished epoch.

    ``callbacks`` is the :class:`layerlab.engine.Progress` to hand to ``api.train``/``api.resume``.
    The bar goes to stderr and only on a terminal; the epoch lines go to stdout unless ``quiet``, or
    to stderr with ``to_stderr`` (``--json`` keeps stdout for the JSON alone).
    """

    def __init__(self, quiet: bool = False, to_stderr: bool = False):
        from rich.console import Console

        from ..engine import Progress

        self.out = Console(highlight=False, stderr=to_stderr)
        self.err = Console(stderr=True)
        self.quiet = quiet
        self.bar = None
        self.task = None
        self.t0 = 0.0
        self.callbacks = Progress(self.start, self.steps, self.end)

    def start(self, epoch: int, epochs: int, steps: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.t0 = time.perf_counter()
        if self.quiet or not self.err.is_terminal:
            return
        self.bar = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=self.err,
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task("train", total=steps, stats="")

    def steps(self, steps_done: int, samples_done: int, m: dict) -> None:
        if self.bar is None:
            return
        rate = samples_done / max(time.perf_counter() - self.t0, 1e-9)
        stats = f"loss {m['loss']:.4f}" + (f" acc {m['accuracy']:.4f}" if "accuracy" in m else "") + f" {rate:,.0f}/s"
        self.bar.update(self.task, completed=steps_done, stats=stats)

    def end(self, epoch: int, row: dict) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        if self.quiet:
            return
        parts = [f"epoch {epoch}", f"loss {row['train_loss']:.4f}"]
        if "train_accuracy" in row:
            parts.append(f"acc {row['train_accuracy']:.4f}")
        split = "val" if "val_loss" in row else "test"  # a validation split is named as such, never "test"
        parts.append(f"{split}_loss {row[f'{split}_loss']:.4f}")
        if f"{split}_accuracy" in row:
            parts.append(f"{split}_acc {row[f'{split}_accuracy']:.4f}")
        if "grad_norm_max" in row:
            parts.append(f"grad_norm max {row['grad_norm_max']:.3g} clipped {row['clipped_fraction']:.0%}")
        parts.append(f"{row['train_seconds']:.1f}s ({row['samples_per_second']:,.0f} samples/s)")
        self.out.print(" | ".join(parts))
