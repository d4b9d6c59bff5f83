"""Training and error views: learning curves from ``metrics.csv``, the confusion matrix and
per-class precision/recall on the test set, and the most confidently wrong test samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, RunError


def curve_rows(run) -> list[dict]:
    """The per-epoch metrics of a run (``metrics.csv``); an error when it has none yet."""
    rows = run.metrics()
    if not rows:
        raise RunError(f"{run.path}: no metrics.csv yet (no epoch has finished)")
    return rows


@dataclass
class Predictions:
    """Model outputs on a test split: ``logits`` (N, K), ``y`` (N,), ``x`` the inputs."""

    x: torch.Tensor
    y: torch.Tensor
    logits: torch.Tensor
    classes: list[str]
    task: str

    @property
    def probabilities(self) -> torch.Tensor:
        return torch.softmax(self.logits.float(), -1)

    @property
    def predicted(self) -> torch.Tensor:
        return self.logits.argmax(-1)


def predict_test(model, ds) -> Predictions:
    """Outputs of ``model`` on ``ds.test`` (via :func:`layerlab.engine.predict_logits`)."""
    from ..engine import predict_logits

    logits = predict_logits(model, ds.test, device=next(model.parameters()).device)
    classes = ds.classes or [str(i) for i in range(ds.num_outputs or logits.shape[-1])]
    y = ds.test.y
    if ds.task == "classification" and y.is_floating_point() and y.dim() == 2:  # probability targets
        y = y.argmax(-1)  # the likeliest class is the one the views count
    return Predictions(ds.test.x, y, logits, classes, ds.task)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(0).astype(np.float64)
    support = cm.sum(1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def confident_mistakes(pred: Predictions, k: int = 16) -> list[dict]:
    """The ``k`` wrong test samples the model was surest of, most confident first.

    Each: ``index`` into the test split, ``true``/``predicted`` class indices, ``confidence`` (the
    softmax probability of the predicted class) and ``p_true`` (that of the true class).
    """
    if pred.logits.dim() != 2:
        return []
    probs = pred.probabilities
    conf, guess = probs.max(-1)
    wrong = (guess != pred.y).nonzero().flatten()
    if len(wrong) == 0:
        return []
    order = wrong[conf[wrong].argsort(descending=True)][:k]
    return [
        {
            "index": int(i),
            "true": int(pred.y[i]),
            "predicted": int(guess[i]),
            "confidence": float(conf[i]),
            "p_true": float(probs[i, pred.y[i]]),
        }
        for i in order
    ]


def classification_views(pred: Predictions) -> dict:
    """Everything the error views show, as plain numbers (accuracy and confusion matrix from
    :func:`layerlab.engine.compute_metrics`, as every evaluation computes them)."""
    from ..engine import compute_metrics

    if pred.task == "regression":
        raise ConfigError("confusion matrices apply to classification runs; this run is a regression")
    if pred.task == "multilabel":
        raise ConfigError(
            "confusion matrices apply to one class per sample; this run is multi-label (layerlab evaluate gives its "
            "per-label accuracy, exact match and F1)"
        )
    m = compute_metrics(pred.task, pred.logits, pred.y, pred.logits.shape[-1])
    cm = m["confusion"].numpy()
    return {
        "confusion": cm,
        "scores": per_class_scores(cm),
        "accuracy": m["accuracy"],
        "n": m["targets"],
        "mistakes": confident_mistakes(pred),
    }
