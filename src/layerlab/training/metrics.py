"""Losses and metrics per task: the loss a step trains on, the statistics an epoch accumulates on
the device, and :func:`compute_metrics`, the one place an evaluation's numbers are computed."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def compute_loss(task: str, out: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean loss of a batch. Classification: softmax cross-entropy on logits (B, K) or per step
    (B, T, K) against (B, T) targets (-100 = ignore), against targets smoothed by
    ``label_smoothing`` (training only: evaluation reports the plain cross-entropy); regression:
    mean squared error; multi-label: binary cross-entropy on logits against ``(B, K)`` 0/1 targets.
    Probability targets ``(B, K)`` (float rows summing to 1) train with the soft-target
    cross-entropy."""
    if task == "regression":
        return F.mse_loss(out.float().reshape(y.shape), y)
    if task == "multilabel":  # (B, K) of 0/1: one sigmoid per label
        return F.binary_cross_entropy_with_logits(out.float(), y.float())
    if out.dim() == 3:
        return F.cross_entropy(
            out.float().reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=-100, label_smoothing=label_smoothing
        )
    return F.cross_entropy(out.float(), y, label_smoothing=label_smoothing)


def batch_stats(task: str, out: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
    """(summed loss, correct, count) of a batch as one device tensor, so nothing syncs per step."""
    with torch.no_grad():
        if task == "regression":
            n = torch.full((), float(y.numel()), device=y.device)  # a fill kernel, not a host copy
            return torch.stack([loss.detach() * n, torch.zeros((), device=y.device), n])
        if task == "multilabel":  # the fraction of labels right, per sample (Keras's binary accuracy)
            n = torch.full((), float(y.shape[0]), device=y.device)
            correct = ((out > 0) == (y > 0.5)).float().mean(-1).sum()
        elif y.is_floating_point():  # probability targets: the likeliest class is the label
            n = torch.full((), float(y.shape[0]), device=y.device)
            correct = (out.argmax(-1) == y.argmax(-1)).sum().float()
        elif out.dim() == 3:
            mask = y != -100
            n = mask.sum().float()
            correct = ((out.argmax(-1) == y) & mask).sum().float()
        else:
            n = torch.full((), float(y.shape[0]), device=y.device)
            correct = (out.argmax(-1) == y).sum().float()
        return torch.stack([loss.detach().float() * n, correct, n])


def metrics_from(task: str, stats: torch.Tensor, prefix: str) -> dict:
    loss_sum, correct, n = (float(v) for v in stats.cpu())
    n = max(n, 1.0)
    out = {f"{prefix}loss": loss_sum / n}
    if task != "regression":
        out[f"{prefix}accuracy"] = correct / n
    return out


@torch.no_grad()
def compute_metrics(task: str, out: torch.Tensor, y: torch.Tensor, num_classes: int | None = None) -> dict:
    """Every number an evaluation reports, from a model's outputs on a split: the one place they
    are computed, so fit, ``evaluate``, the report and the inspection views cannot disagree.

    Args:
        out: logits ``(N, K)`` or ``(N, T, K)``; regression outputs ``(N, ...)``.
        y: class targets ``(N,)`` or ``(N, T)`` (-100 = not counted); regression targets.
    Returns:
        ``loss`` (mean cross-entropy, or mean squared error), ``n`` (samples) and ``targets``
        (targets counted); for classification also ``accuracy``, ``confusion`` (``(K, K)`` int64
        tensor, row = true class, column = predicted) and ``per_class_accuracy`` (recall of each
        class, None for a class with no target); for regression ``mse``; for multi-label
        ``accuracy`` (the fraction of labels right), ``exact_match`` (samples with every label
        right), ``f1_micro``, ``f1_macro`` and ``per_class_accuracy`` (per label).
    """
    m = {"loss": float(compute_loss(task, out, y)), "n": int(out.shape[0])}
    if task == "regression":
        m["targets"] = int(y.numel())
        m["mse"] = m["loss"]
        return m
    if task == "multilabel":
        return _multilabel_metrics(m, out, y)
    K = int(num_classes or out.shape[-1])
    pred = out.argmax(-1).reshape(-1)
    if y.is_floating_point() and y.dim() == 2:  # probability targets: their likeliest class
        y = y.argmax(-1)
    yv = y.reshape(-1).to(pred.device)
    keep = yv != -100
    yv, pred = yv[keep].long(), pred[keep].long()
    cm = torch.bincount(yv * K + pred, minlength=K * K).reshape(K, K).cpu()
    support = cm.sum(1)
    n = int(support.sum())
    m["targets"] = n
    m["accuracy"] = float(cm.diagonal().sum()) / max(n, 1)
    m["confusion"] = cm
    m["per_class_accuracy"] = [float(cm[k, k]) / int(support[k]) if support[k] else None for k in range(K)]
    return m


def _multilabel_metrics(m: dict, out: torch.Tensor, y: torch.Tensor) -> dict:
    """The numbers of a multi-label evaluation (a label is predicted where its logit is above 0)."""
    pred, truth = out > 0, y.to(out.device) > 0.5
    right = pred == truth
    tp = (pred & truth).sum(0).double()
    fp = (pred & ~truth).sum(0).double()
    fn = (~pred & truth).sum(0).double()
    f1 = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
    m["targets"] = int(y.numel())
    m["accuracy"] = float(right.float().mean())
    m["exact_match"] = float(right.all(-1).float().mean())
    m["f1_micro"] = float(2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()).clamp(min=1))
    m["f1_macro"] = float(f1.mean())
    m["per_class_accuracy"] = [float(v) for v in right.float().mean(0).cpu()]
    return m
