"""Writing the run directory as training goes, as a callback (Keras's ``ModelCheckpoint``): the
loop itself writes nothing."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..callbacks import Callback, Trainer, callback_states
from ..checkpoint import pause_point


@dataclass
class EpochPosition:
    """Where a run is inside an epoch: ``step`` batches of the (seed, epoch) shuffle order done, with
    the running train statistics (summed loss, correct, count) and gradient norms so far. Saved in a
    mid-epoch checkpoint so that resuming gives bit for bit what the uninterrupted epoch gives."""

    step: int = 0
    stats: torch.Tensor | None = None
    grad_norms: list[torch.Tensor] = field(default_factory=list)


class RunCheckpoint(Callback):
    """Keep a run directory (:class:`~layerlab.rundir.RunDir`) as training goes: a checkpoint after
    every epoch (and, mid-epoch, at each :meth:`save_position` the loop asks for) with the state of
    ``callbacks``; the ``best`` weights (lowest ``val_loss``) when ``validated``; metrics.csv; and in
    run.json whether a callback stopped training early. Called after every other callback, so what
    they add to a row, and a stop they ask for, are in the checkpoint."""

    def __init__(self, run, *, validated: bool, callbacks: list[Callback]):
        self.run, self.validated, self.callbacks = run, validated, callbacks
        self.best = math.inf

    def on_train_begin(self, trainer: Trainer) -> None:
        self.best = min((r.get("val_loss", math.inf) for r in trainer.history), default=math.inf)
        if trainer.global_step > 0:  # a run that stopped early and is resumed trains on: it no longer stopped there
            self.run.record_stop(None)

    def _save(self, trainer: Trainer, *, epoch: int, best: str, pos: EpochPosition | None = None) -> None:
        kw = {"step": pos.step, "train_stats": pos.stats, "grad_norms": pos.grad_norms} if pos is not None else {}
        states = callback_states(self.callbacks)
        self.run.save_checkpoint(
            trainer.model,
            trainer.optimizer,
            trainer.history,
            epoch=epoch,
            best=best,
            scheduler=trainer.scheduler,
            **kw,
            **({"callbacks": states} if states else {}),
        )

    def save_position(self, trainer: Trainer, pos: EpochPosition) -> None:
        """A mid-epoch checkpoint: ``pos.step`` steps of epoch ``trainer.epoch`` done."""
        self._save(trainer, epoch=trainer.epoch - 1, best="keep" if self.validated else "none", pos=pos)

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict) -> None:
        improved = self.validated and row["val_loss"] < self.best
        if improved:
            self.best = row["val_loss"]
        self._save(trainer, epoch=epoch, best="this" if improved else ("keep" if self.validated else "none"))
        pause_point("after-epoch")
        if trainer.stop_training and epoch < trainer.epochs:  # a stop asked at the last epoch stops nothing
            self.run.record_stop(stopped_early(trainer, epoch))


def stopped_early(trainer: Trainer, epoch: int) -> dict:
    """What run.json and the result record of a stop a callback asked for after ``epoch``."""
    return {"epoch": epoch, "reason": trainer.stop_reason or "a callback set stop_training"}
