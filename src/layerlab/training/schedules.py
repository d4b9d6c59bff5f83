"""Learning-rate schedules: one per-step ``LambdaLR``, built from the config."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .. import choices
from ..config import TrainConfig


def _cos_anneal(start: float, end: float, pct: float) -> float:
    """From ``start`` (pct 0) to ``end`` (pct 1) along half a cosine, as torch's OneCycleLR."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def check_schedule(cfg: TrainConfig) -> None:
    """The schedule fields that only make sense together; a ConfigError naming them otherwise."""
    choices.check_schedule(cfg.schedule, cfg.lr, cfg.min_lr)


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The schedule as a function of the run's step ``s`` (0-based, across epochs): the factor of
    ``cfg.lr`` that step ``s`` trains with. With ``N = epochs * steps_per_epoch`` steps and
    ``W = round(warmup_epochs * steps_per_epoch)`` warm-up steps:

    - warm-up (every schedule but onecycle): ``s / W`` for ``s < W`` (linear from 0), then
    - ``constant``: 1;
    - ``step``: ``gamma ** (epoch // step_size)``, ``epoch = s // steps_per_epoch`` (0-based);
    - ``cosine``: ``m + (1 - m) (1 + cos(pi p)) / 2``, ``p = (s - W) / (N - W)``, ``m = min_lr / lr``
      (so the step after the last would train at ``min_lr``, as torch's CosineAnnealingLR);
    - ``onecycle``: torch's OneCycleLR (``anneal_strategy="cos"``, ``div_factor=25``,
      ``final_div_factor=1e4``; its momentum cycling is not done): from ``lr/25`` up to ``lr`` over
      the first ``pct = W / N`` of the steps (0.3 without warm-up), then down to ``lr/25/1e4``.

    The curve is over ``schedule_epochs`` (default ``epochs``); the steps after it train at
    ``extend_lr`` (a constant rate: how a finished run is extended with ``--resume --epochs N
    --extend-lr LR``, never by restarting the curve), or at the curve's last rate without one.
    """
    check_schedule(cfg)
    spe = max(1, steps_per_epoch)
    total = max(1, (cfg.schedule_epochs or cfg.epochs) * spe)
    curve = _curve(cfg, spe, total)
    extend = cfg.extend_lr / cfg.lr if cfg.extend_lr is not None and cfg.lr > 0 else None
    if extend is None or not cfg.schedule_epochs:
        return curve

    def extended(s: int) -> float:
        return extend if s >= total else curve(s)

    return extended


def _curve(cfg: TrainConfig, spe: int, total: int) -> Callable[[int], float]:
    warm = round(cfg.warmup_epochs * spe)
    kind = cfg.schedule
    floor = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0

    if kind == "onecycle":
        pct = warm / total if warm else 0.3
        end1 = min(pct, 1.0) * total - 1  # torch's phase ends: pct*N - 1, then N - 1
        end2 = total - 1
        lo, peak, last = 1 / 25, 1.0, 1 / 25 / 1e4

        def onecycle(s: int) -> float:
            if end1 > 0 and s <= end1:
                return _cos_anneal(lo, peak, s / end1)
            start = max(end1, 0.0)
            span = end2 - start
            return _cos_anneal(peak, last, min(1.0, (s - start) / span) if span > 0 else 1.0)

        return onecycle

    def after_warmup(s: int) -> float:
        if kind == "step":
            return cfg.gamma ** ((s // spe) // cfg.step_size)
        if kind == "cosine":
            p = min(1.0, (s - warm) / max(1, total - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))
        return 1.0

    def factor(s: int) -> float:
        if s < warm:
            return s / warm
        return after_warmup(s)

    return factor


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    steps_per_epoch: int,
    *,
    state: dict | None = None,
    global_step: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The config's schedule as a per-step ``LambdaLR`` on ``optimizer`` (stepped after every
    optimizer step). A resumed run passes the ``state`` its checkpoint saved, or (a checkpoint from
    before schedules) the ``global_step`` it resumes at: the rate is then exactly what the
    uninterrupted run had at that step."""
    factor = lr_factor(cfg, steps_per_epoch)
    # the constructor takes one step (factor(0)) and records initial_lr (kept from a loaded optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if state is None and not global_step:
        return scheduler
    if state is not None:
        scheduler.load_state_dict(state)
    else:
        scheduler.last_epoch = global_step
    # the rate of the next step from the curve itself (base * factor, LambdaLR's own expression): the
    # same float the uninterrupted run has, and on the new curve when --epochs extended the run
    lrs = [base * factor(scheduler.last_epoch) for base in scheduler.base_lrs]
    scheduler._last_lr = lrs
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        if torch.is_tensor(group["lr"]):  # a captured step reads the rate from this tensor
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr
    return scheduler
