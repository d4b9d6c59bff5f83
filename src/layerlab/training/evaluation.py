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
    model: nn.Module, source: BatchSource, batch_size: int, device, amp: bool, channels_last: bool, to_cpu: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and targets of every sample of ``source``, in the source's order."""
    model.eval()
    device = device or next(model.parameters()).device
    outs, ys, order = [], [], []
    for batch, index in source.ordered(batch_size):
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
) -> dict:
    """Loss and accuracy (classification) or loss (MSE, regression) over ``split``, plus ``n``: the
    per-epoch numbers of :func:`~layerlab.training.fit`, by :func:`compute_metrics`; ``metrics``:
    more by name (``f1_macro,auroc``), each a key of the row."""
    source = as_source(split)
    out, y = _outputs(model, source, batch_size, device, amp, channels_last, to_cpu=False)
    m = compute_metrics(task, out, y.to(out.device), metrics=metrics)
    row = {f"{prefix}loss": m["loss"]}
    if "accuracy" in m:
        row[f"{prefix}accuracy"] = m["accuracy"]
    for name in metric_names(metrics):  # metrics by name, as ``val_f1_macro``
        row[f"{prefix}{name}"] = m[name]
    row[f"{prefix}n"] = len(source)
    return row
