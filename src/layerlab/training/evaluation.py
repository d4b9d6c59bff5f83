"""A model's outputs on a split, and the per-epoch evaluation of :func:`~layerlab.training.fit`."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..data import Split
from ..recipe import metric_names
from . import runtime
from .metrics import compute_metrics
from .sources import BatchSource, as_source


def forward(model: nn.Module, batch: Split, channels_last: bool) -> torch.Tensor:
    """``model`` on ``batch`` (with its sequence lengths, when it has them)."""
    x = batch.x
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    if batch.lengths is not None:
        return model(x, batch.lengths)
    return model(x)


def _outputs(
    model: nn.Module,
    source: BatchSource,
    batch_size: int,
    device,
    amp: bool,
    channels_last: bool,
    to_cpu: bool,
    share: tuple[int, int] = (0, 1),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and targets of every sample of ``source`` (of this rank's ``share``, (rank, world
    size), in a torchrun job), in the source's order."""
    model.eval()
    device = device or next(model.parameters()).device
    outs, ys, order = [], [], []
    chunks = (
        source.ordered(batch_size, rank=share[0], world_size=share[1]) if share[1] > 1 else source.ordered(batch_size)
    )
    for batch, index in chunks:
        if len(batch) == 0:
            continue
        ys.append(batch.y)
        if index is not None:
            order.append(index)
        batch = Split(batch.x.to(device), batch.y, None if batch.lengths is None else batch.lengths.to(device))
        with runtime.autocast(device, amp):
            out = forward(model, batch, channels_last).float()
        outs.append(out.cpu() if to_cpu else out)
    out, y = torch.cat(outs), torch.cat(ys)
    if order:  # batched by size: put every output back in the source's order
        where = torch.cat(order)
        if share[1] > 1:  # indices of the whole source: this rank's come in order, so place them by rank
            where = torch.argsort(torch.argsort(where))
        out = torch.empty_like(out).index_copy_(0, where.to(out.device), out)
        y = torch.empty_like(y).index_copy_(0, where.to(y.device), y)
    return out, y


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    split: Split | BatchSource,
    *,
    batch_size: int = 1000,
    device: torch.device | None = None,
    amp: bool = False,
    channels_last: bool = True,
    to_cpu: bool = True,
) -> torch.Tensor:
    """Model outputs for every sample of ``split``, concatenated (on the CPU unless ``to_cpu=False``)."""
    return _outputs(model, as_source(split), batch_size, device, amp, channels_last, to_cpu)[0]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split | BatchSource,
    *,
    task: str = "classification",
    batch_size: int = 1000,
    device: torch.device | None = None,
    amp: bool = False,
    channels_last: bool = True,
    prefix: str = "",
    metrics: str | None = None,
    dist=None,
) -> dict:
    """Loss and accuracy (classification) or loss (MSE, regression) over ``split``, plus ``n``: the
    per-epoch numbers of :func:`~layerlab.training.fit`, by :func:`compute_metrics`; ``metrics``:
    more by name (``f1_macro,auroc``), each a key of the row.

    With ``dist`` (a torchrun job) each rank evaluates its share of the samples
    (``source.ordered(rank, world_size)``: every sample exactly once, none padded or repeated) and
    the sums (loss, correct, targets) are added over the ranks: the accuracy and ``n`` are exactly
    the single process's, the loss equal up to the order of the additions."""
    source = as_source(split)
    if dist is not None and dist.world_size > 1:
        return _evaluate_shared(model, source, task, batch_size, device, amp, channels_last, prefix, dist, metrics)
    out, y = _outputs(model, source, batch_size, device, amp, channels_last, to_cpu=False)
    m = compute_metrics(task, out, y.to(out.device), metrics=metrics)
    row = {f"{prefix}loss": m["loss"]}
    if "accuracy" in m:
        row[f"{prefix}accuracy"] = m["accuracy"]
    for name in metric_names(metrics):  # metrics by name, as ``val_f1_macro``
        row[f"{prefix}{name}"] = m[name]
    row[f"{prefix}n"] = len(source)
    return row


def _evaluate_shared(model, source, task, batch_size, device, amp, channels_last, prefix, dist, metrics=None) -> dict:
    from .. import distributed

    device = device or next(model.parameters()).device
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss summed, correct, targets
    out = y = None
    if len(torch.tensor_split(torch.arange(len(source)), dist.world_size)[dist.rank]):  # a share may be empty
        out, y = _outputs(model, source, batch_size, device, amp, channels_last, False, (dist.rank, dist.world_size))
        m = compute_metrics(task, out, y.to(out.device))
        targets = m["targets"]
        sums[0] = m["loss"] * targets
        if "confusion" in m:  # a whole count: the ranks' counts add up exactly
            sums[1] = int(m["confusion"].diagonal().sum())
        sums[2] = targets
    loss_sum, correct, targets = (float(v) for v in distributed.all_sum(sums).cpu())
    row = {f"{prefix}loss": loss_sum / max(targets, 1.0)}
    if task != "regression":
        row[f"{prefix}accuracy"] = correct / max(targets, 1.0)
    names = metric_names(metrics)
    if names:  # ranked and averaged metrics (AUROC, macro F1) do not add up over shares: every rank
        # takes every share's outputs, in rank order (the order of the whole split), and computes them
        shares = distributed.gather(None if out is None or y is None else (out.float().cpu(), y.cpu()))
        whole = [s for s in shares if s is not None]
        out_all, y_all = torch.cat([o for o, _ in whole]), torch.cat([t for _, t in whole])
        m = compute_metrics(task, out_all.to(device), y_all.to(device), metrics=metrics)
        for name in names:
            row[f"{prefix}{name}"] = m[name]
    row[f"{prefix}n"] = len(source)
    return row
