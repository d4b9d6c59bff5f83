"""The learning-rate range test (Smith 2017, "Cyclical learning rates for training neural networks";
fastai's and Lightning's ``lr_find``): train for ``num_iter`` steps while the rate grows
exponentially from ``start_lr`` to ``end_lr``, record the loss of each step (smoothed by an
exponential moving average, bias-corrected), stop once it diverges (four times its lowest), and
suggest the rate where the smoothed loss falls fastest (the steepest negative slope against
``log10(lr)``). The model's weights, and the random streams, are restored afterwards: finding a rate
trains nothing.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .data import Split
from .errors import ConfigError


def range_test(
    model: nn.Module,
    train: Split,
    cfg,
    task: str,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    smooth: float = 0.98,
    device: torch.device | None = None,
) -> dict:
    """The range test of ``model`` on ``train`` with the optimizer and batch size of ``cfg`` (a
    TrainConfig). Returns ``lrs`` and ``losses`` (smoothed) per step, ``raw_losses``, ``suggestion``
    (a rate) and ``stopped`` (the step at which the loss diverged, or None)."""
    from .training.evaluation import forward
    from .training.metrics import compute_loss
    from .training.optim import make_optimizer

    if not 0 < start_lr < end_lr:
        raise ConfigError(f"the range test needs 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_iter < 5:
        raise ConfigError(f"the range test needs at least 5 steps, got {num_iter}")
    if train.sizes is not None:
        raise ConfigError("the range test takes samples of one size; this data holds images of several sizes")
    device = device or next(model.parameters()).device
    saved = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    run_cfg = copy.copy(cfg)
    run_cfg.lr = start_lr
    optimizer = make_optimizer(model, run_cfg, device)
    gamma = (end_lr / start_lr) ** (1 / (num_iter - 1))
    g = torch.Generator().manual_seed(cfg.seed)
    lrs, raw, smoothed = [], [], []
    avg, best, stopped = 0.0, math.inf, None
    model.train()
    order = torch.randperm(len(train), generator=g)
    pos = 0
    try:
        for i in range(num_iter):
            lr = start_lr * gamma**i
            for group in optimizer.param_groups:
                group["lr"] = lr
            if pos + cfg.batch_size > len(order):
                order, pos = torch.randperm(len(train), generator=g), 0
            idx = order[pos : pos + cfg.batch_size]
            pos += cfg.batch_size
            batch = train.subset(idx)
            lengths = None if batch.lengths is None else batch.lengths.to(device)
            batch = Split(batch.x.to(device), batch.y.to(device), lengths)
            out = forward(model, batch, cfg.channels_last)
            loss = compute_loss(task, out, batch.y, cfg.label_smoothing, cfg.loss, cfg.class_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            lrs.append(lr)
            raw.append(value)
            avg = smooth * avg + (1 - smooth) * value
            smoothed.append(avg / (1 - smooth ** (i + 1)))
            best = min(best, smoothed[-1])
            if not math.isfinite(value) or smoothed[-1] > 4 * best:
                stopped = i + 1
                break
    finally:
        model.load_state_dict(saved)
        torch.set_rng_state(rng)
    return {
        "lrs": lrs,
        "losses": smoothed,
        "raw_losses": raw,
        "suggestion": suggest(lrs, smoothed),
        "stopped": stopped,
    }


def suggest(lrs: list[float], losses: list[float]) -> float | None:
    """The rate of steepest descent of the smoothed loss against ``log10(lr)`` (the last tenth,
    where it diverges, and the first few noisy steps are left out), or None with too few steps."""
    n = len(losses)
    if n < 5:
        return None
    lo, hi = max(1, n // 10), max(2, n - n // 10)
    best_i, best_slope = None, 0.0
    for i in range(lo, hi):
        slope = (losses[i] - losses[i - 1]) / (math.log10(lrs[i]) - math.log10(lrs[i - 1]))
        if slope < best_slope:
            best_i, best_slope = i, slope
    return lrs[best_i] if best_i is not None else None


def write(result: dict, out: str | Path, title: str = "learning-rate range test") -> dict[str, Path]:
    """``lr_find.png`` (loss against rate, log scale, the suggestion marked) and ``lr_find.csv``
    (``step, lr, loss, raw_loss``) in the folder ``out``; returns their paths."""
    import csv

    from .plots import new_figure, save  # no pyplot: switching its backend would stop a notebook's plots showing

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "lr_find.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "lr", "loss", "raw_loss"])
        for i, (lr, s, r) in enumerate(zip(result["lrs"], result["losses"], result["raw_losses"], strict=True)):
            w.writerow([i + 1, f"{lr:.6g}", f"{s:.6g}", f"{r:.6g}"])
    fig = new_figure(6, 4)
    ax = fig.subplots()
    ax.plot(result["lrs"], result["losses"], label="loss (smoothed)")
    if result["suggestion"] is not None:
        ax.axvline(result["suggestion"], color="tab:red", linestyle="--", label=f"suggested {result['suggestion']:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.legend()
    save(fig, out / "lr_find.png")
    return {"plot": out / "lr_find.png", "csv": out / "lr_find.csv"}


def lr_find(
    model_or_name: str | nn.Module,
    x: Any,
    y: Any,
    *,
    batch_size: int = 32,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    out: str | Path | None = None,
    seed: int = 0,
    **options: Any,
) -> dict:
    """The learning-rate range test on arrays: train with a rate rising from ``start_lr`` to
    ``end_lr`` and record the loss at each step.

    Args:
        model_or_name: a registered model name, built for the data from ``seed``, or an
            ``nn.Module`` (its weights are restored afterwards).
        x: inputs, as :func:`layerlab.fit` takes them.
        y: targets, as :func:`layerlab.fit` takes them.
        batch_size: samples per step.
        start_lr: the first step's rate.
        end_lr: the last step's rate (the test stops early when the loss diverges).
        num_iter: steps, on a geometric scale of rates.
        out: a folder to write the plot and its CSV to.
        seed: seeds the model and the batches.
        **options: training options (``optimizer``, ``optimizer_args``, ``device``, ...) and model
            options (``channels``, ...).

    Returns:
        ``lrs``, ``losses`` (smoothed), ``raw_losses``, ``suggestion`` (a rate to train with) and
        ``stopped`` (the step at which the loss diverged, or None); with ``out``, also ``plot`` and ``csv``.

    Raises:
        ConfigError: a bad option or range.
        DataError: arrays the model cannot read.
    """
    from . import engine
    from .api.front import _reads_sequences, _recipe_text, _split_options
    from .config import RunConfig
    from .data import arrays
    from .modelargs import format_model_args
    from .models import sequence_model, trust_module
    from .preflight import check_runtime_options
    from .rundir import build_model_for

    if isinstance(model_or_name, str):
        trust_module(model_or_name)
    name = model_or_name if isinstance(model_or_name, str) else None
    train_opts, model_opts, factory_opts = _split_options(options, name)  # a factory's own options too
    cfg = RunConfig()
    for k, v in {"batch_size": batch_size, "seed": seed, **_recipe_text(train_opts)}.items():
        setattr(cfg.train, k, v)
    if isinstance(model_or_name, str):
        cfg.model.name = model_or_name
        for k, v in model_opts.items():
            setattr(cfg.model, k, v)
        cfg.model.args = format_model_args(factory_opts, "lr_find() model option")
        sequence = sequence_model(model_or_name)
    elif isinstance(model_or_name, nn.Module):
        if model_opts:
            raise ConfigError(f"model options ({', '.join(model_opts)}) need a model name, not a model object")
        sequence = _reads_sequences(model_or_name)
    else:
        raise ConfigError(f"lr_find() takes a model name or a torch.nn.Module, got {type(model_or_name).__name__}")
    cfg.validate("lr_find()")
    ds = arrays.dataset_from_arrays(x, y, sequence=sequence, seed=seed)
    device = engine.resolve_device(cfg.train.device)
    check_runtime_options(cfg.train, device)
    engine.seed_everything(seed)
    if isinstance(model_or_name, str):
        assert ds.spec is not None  # every dataset made from arrays carries its input spec
        model = build_model_for(cfg.model, ds.spec, ds.num_outputs).to(device)
    else:
        model = model_or_name.to(device)
    result = range_test(
        model, ds.train, cfg.train, ds.task, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter, device=device
    )
    if out is not None:
        result.update(write(result, out))
    return result
