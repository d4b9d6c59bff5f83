"""Losses and metrics per task: the loss a step trains on, the statistics an epoch accumulates on
the device, and :func:`compute_metrics`, the one place an evaluation's numbers are computed."""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..recipe import metric_names, resolve_class_weight, top_k


@functools.lru_cache(maxsize=8)
def _class_weights(text: str, device: torch.device) -> torch.Tensor:
    """The weights a config keeps as ``W0,W1,...`` as a device tensor, made once per run and device."""
    try:
        return torch.tensor([float(w) for w in text.split(",")], dtype=torch.float32, device=device)
    except ValueError:
        raise ConfigError(
            f"class weights {text!r} are not resolved to numbers; layerlab.train and layerlab.fit resolve "
            f"balanced and files against the data"
        ) from None


def _resolved(text: str) -> bool:
    try:
        [float(w) for w in text.split(",")]
    except ValueError:
        return False
    return True


def check_recipe(cfg, dataset) -> None:
    """One sentence, before anything is made, for a loss, class weights or metrics that do not fit the
    data's task (``cfg`` a TrainConfig). Class weights given as ``balanced`` or a file are resolved
    here, against the training labels, to one number per class in ``cfg.class_weight``: the run's
    config keeps the numbers it trained with, so a resumed run trains with the same."""
    task, loss = dataset.task, cfg.loss
    # a batch source need not hold its targets as one tensor (streamed data): what needs them is skipped
    y_all = getattr(dataset.train, "y", None)
    fits = {
        "cross-entropy": task == "classification",
        "bce": task in ("classification", "multilabel") and (y_all is None or y_all.dim() <= 2),
        "mse": task == "regression",
        "huber": task == "regression",
    }
    if loss is not None and not fits[loss]:
        kind = {"classification": "a classifier", "multilabel": "a multi-label model", "regression": "regression"}
        raise ConfigError(f"--loss {loss} does not train {kind.get(task, task)}; leave --loss out for the task's own")
    if cfg.class_weight and task == "regression":
        raise ConfigError("--class-weight weighs classes; this data is regression")
    if cfg.class_weight and task == "classification" and y_all is not None and y_all.is_floating_point():
        raise ConfigError("--class-weight needs class labels; these targets are probability rows")
    names = metric_names(cfg.metrics)
    if names and task == "regression":
        raise ConfigError(f"--metrics {cfg.metrics}: these are classification metrics; this data is regression")
    for name in names:
        k = top_k(name)
        if k is not None and (task == "multilabel" or k > dataset.num_outputs):
            raise ConfigError(
                f"--metrics {name}: the data has {dataset.num_outputs} "
                f"{'labels (multi-label: top-k does not apply)' if task == 'multilabel' else 'classes'}"
            )
    if cfg.class_weight and not _resolved(cfg.class_weight):  # balanced or a file: the numbers, once
        y = y_all
        if y is None:
            raise ConfigError("--class-weight balanced needs the training labels in memory; give the weights")
        if task == "multilabel":  # balanced: pos_weight = negatives / positives of each label
            pos = (y > 0.5).sum(0)
            counts = [int(c) for c in pos]
            if cfg.class_weight == "balanced":
                cfg.class_weight = ",".join(repr((len(y) - p) / max(p, 1)) for p in counts)
                return
        else:
            keep = y[y != -100]
            counts = [int(c) for c in torch.bincount(keep.long(), minlength=dataset.num_outputs)]
        classes = dataset.classes or [str(i) for i in range(dataset.num_outputs)]
        cfg.class_weight = resolve_class_weight(cfg.class_weight, classes, counts)
    elif cfg.class_weight and len(cfg.class_weight.split(",")) != dataset.num_outputs:
        raise ConfigError(
            f"--class-weight gives {len(cfg.class_weight.split(','))} weights for {dataset.num_outputs} classes; "
            f"give one per class"
        )


def check_metrics_available(text: str | None) -> None:
    """Metrics by name are torchmetrics': one sentence when it is not installed."""
    if metric_names(text):
        try:
            import torchmetrics  # noqa: F401
        except ImportError:
            raise ConfigError(f"--metrics {text} needs torchmetrics: pip install 'layerlab[metrics]'") from None


def compute_loss(
    task: str,
    out: torch.Tensor,
    y: torch.Tensor,
    label_smoothing: float = 0.0,
    loss: str | None = None,
    class_weight: str | None = None,
) -> torch.Tensor:
    """Mean loss of a batch. Classification: softmax cross-entropy on logits (B, K) or per step
    (B, T, K) against (B, T) targets (-100 = ignore), against targets smoothed by
    ``label_smoothing`` (training only: evaluation reports the plain cross-entropy); regression:
    mean squared error (``loss="huber"``: the Huber loss, delta 1); ``class_weight``: a weight per
    class (``W0,W1,...``) of the cross-entropy (``pos_weight`` of the binary one); ``loss="bce"``: a
    classifier's class ids as one-hot rows under one sigmoid per class; multi-label: binary
    cross-entropy on logits against ``(B, K)`` 0/1 targets. Probability targets ``(B, K)`` (float
    rows summing to 1) train with the soft-target cross-entropy."""
    if task == "regression":
        if loss == "huber":
            return F.huber_loss(out.float().reshape(y.shape), y)
        return F.mse_loss(out.float().reshape(y.shape), y)
    weight = _class_weights(class_weight, out.device) if class_weight else None
    if task == "multilabel" or loss == "bce":  # one sigmoid per label (a class id is its one-hot row)
        target = y.float() if task == "multilabel" else F.one_hot(y, out.shape[-1]).float()
        return F.binary_cross_entropy_with_logits(out.float(), target, pos_weight=weight)
    if out.dim() == 3:
        return F.cross_entropy(
            out.float().reshape(-1, out.shape[-1]),
            y.reshape(-1),
            weight=weight,
            ignore_index=-100,
            label_smoothing=label_smoothing,
        )
    return F.cross_entropy(out.float(), y, weight=weight, label_smoothing=label_smoothing)


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
def named_metrics(task: str, out: torch.Tensor, y: torch.Tensor, names: list[str]) -> dict[str, float]:
    """Metrics by name (:data:`layerlab.recipe.METRICS`, ``top{K}_accuracy``) by torchmetrics, on
    the device the outputs are on: ``out`` logits ``(N, K)``, ``y`` class ids ``(N,)`` (probability
    rows: their likeliest class) or multi-label rows ``(N, K)``."""
    if not names:
        return {}
    if task == "regression":
        raise ConfigError(f"{', '.join(names)}: metrics by name are classification metrics; this is regression")
    check_metrics_available(",".join(names))
    from torchmetrics.functional import classification as C

    K = out.shape[-1]
    out = out.float()
    if task == "multilabel":
        probs, target = torch.sigmoid(out), (y > 0.5).long()
    else:
        probs = torch.softmax(out.reshape(-1, K), -1)
        target = (y.argmax(-1) if y.is_floating_point() and y.dim() == 2 else y).reshape(-1).long()
        keep = target != -100  # steps that count
        probs, target = probs[keep], target[keep]
    result = {}
    for name in names:
        k = top_k(name)
        if k is not None:
            v = C.multiclass_accuracy(probs, target, num_classes=K, top_k=k, average="micro")
        else:
            what, _, average = name.partition("_")
            average = average or "macro"
            fn: Any  # a torchmetrics function
            if task == "multilabel":
                fn = {
                    "precision": C.multilabel_precision,
                    "recall": C.multilabel_recall,
                    "f1": C.multilabel_f1_score,
                    "auroc": C.multilabel_auroc,
                }[what]
                v = fn(probs, target, num_labels=K, average=average)
            else:
                fn = {
                    "precision": C.multiclass_precision,
                    "recall": C.multiclass_recall,
                    "f1": C.multiclass_f1_score,
                    "auroc": C.multiclass_auroc,
                }[what]
                v = fn(probs, target, num_classes=K, average=average)
        result[name] = float(v)
    return result


@torch.no_grad()
def compute_metrics(
    task: str, out: torch.Tensor, y: torch.Tensor, num_classes: int | None = None, metrics: str | None = None
) -> dict:
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
    m: dict[str, Any] = {"loss": float(compute_loss(task, out, y)), "n": int(out.shape[0])}
    m.update(named_metrics(task, out, y, metric_names(metrics)))  # metrics by name (``metrics="f1_macro,..."``)
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
