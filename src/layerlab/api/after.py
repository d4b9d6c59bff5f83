"""Use after training: everything reads a run directory (:class:`~layerlab.rundir.RunDir`): its
model, its input spec and its data, so nothing here rebuilds them. Evaluate a run on its test set,
predict for files, generate text, and the one decoder of model outputs.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn as nn

from .. import decoding, engine
from ..data import Split
from ..data.inputs import read_inputs
from ..data.transforms import InputSpec
from ..errors import ConfigError
from ..models import contract
from ..recipe import metric_names
from ..record import held_out_split, no_test_set_note
from ..rundir import RunDir
from .training import check_sizes


def load_run(
    run_dir: str | Path, which: str | None = None, device: str = "cpu", *, model: nn.Module | None = None
) -> tuple[nn.Module, RunDir, dict]:
    """The trained model of a run, with its run directory and record.

    Args:
        run_dir: the run directory.
        which: ``best``, ``last`` or ``init`` weights; None or ``auto``: ``best`` when a validation
            split chose it, else ``last``.
        device: where the model is put (``cpu``, ``cuda``, ...).
        model: for a run :func:`layerlab.fit` trained from a module object (which the run's files
            cannot rebuild), a module built the same way, into which the run's weights are loaded.

    Returns:
        ``(model, run, info)``: the ``nn.Module`` in eval mode, its :class:`~layerlab.RunDir` and
        run.json as a dict, with ``weights_used``.

    Raises:
        RunError: not a run directory, a damaged record, or no such weights.
    """
    run = RunDir(run_dir)
    info = run.info()
    info["weights_used"] = run.resolve_weights(which)
    return run.model(which, device, model), run, info


def evaluate_run(
    run_dir: str | Path,
    *,
    data: str | None = None,
    data_dir: str | None = None,
    which: str | None = None,
    device: str = "cpu",
    per_sample: bool = False,
    tta: str | None = None,
    model: nn.Module | None = None,
) -> dict:
    """Evaluate a run's model on its test set (or on ``data``), as ``layerlab evaluate`` does.

    Args:
        run_dir: the run directory.
        data: another dataset (a name or path) read the way the run read its own.
        data_dir: where to look for named datasets first.
        which: the weights (see :func:`load_run`).
        device: where to evaluate.
        per_sample: also return ``predictions``: per test sample its index, true and predicted
            class and the probability of the predicted class.
        tta: ``"flip"``: each image's probabilities are the mean of the softmax of the image and of
            its left-right mirror (see :func:`flip_averaged`); the result then says ``tta``.
        model: a module built as the run's was (see :func:`load_run`).

    Returns:
        ``loss``, ``n`` and, for classification, ``accuracy``, ``per_class_accuracy`` and
        ``confusion`` (by :func:`layerlab.engine.compute_metrics`), the run's metrics by name, and
        ``run``, ``data``, ``split`` and ``weights`` saying what was measured.

    Raises:
        RunError: not a run directory, or no such weights.
        DataError: ``data`` does not fit the run's model (its shape, task or outputs).
        ConfigError: ``tta`` for data it does not apply to (sequences, text, regression).
    """
    run = RunDir(run_dir)  # read only: leftovers are the next writer's to clean, under its lock
    if tta:
        info = run.info()["dataset"]
        check_tta(tta, run.spec, info["task"], len(run.spec.shape), f"--tta for {run.path}")
    used = run.resolve_weights(which)
    model = run.model(which, device, model)
    if tta:
        model = flip_averaged(model)
    ds = run.dataset(data, data_dir)
    t0 = time.perf_counter()
    out = engine.predict_logits(model, ds.test, device=next(model.parameters()).device)
    names = run.config().train.metrics  # the metrics by name the run was trained with
    m = engine.compute_metrics(
        ds.task, out, ds.test.y, ds.num_outputs if ds.task != "regression" else None, metrics=names
    )
    split = held_out_split(ds)
    result = {"run": str(run.path), "data": ds.name, "split": split, "weights": used, "n": len(ds.test)}
    if tta:
        result["tta"] = tta
    if split != "test":  # never passed off as a test set: say what the numbers are on
        result["chose_weights"] = split == "validation" and used == "best"
        result["note"] = no_test_set_note(split, used)
    result["loss"] = m["loss"]
    if "accuracy" in m:
        classes = ds.classes or [str(i) for i in range(ds.num_outputs)]
        result["accuracy"] = m["accuracy"]
        result["per_class_accuracy"] = {
            c: a for c, a in zip(classes, m["per_class_accuracy"], strict=True) if a is not None
        }
        if "confusion" in m:
            result["confusion"] = m["confusion"].tolist()
    for key in ("exact_match", "f1_micro", "f1_macro", *metric_names(names)):  # multi-label; by name
        if key in m:
            result[key] = m[key]
    if per_sample:
        classes = ds.classes or [str(i) for i in range(ds.num_outputs)]
        result["predictions"] = per_sample_predictions(out, ds.test.y, task=ds.task, classes=classes)
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


#: Test-time augmentations ``evaluate`` takes.
TTA = ("flip",)


def check_tta(tta: str, spec: InputSpec | None, task: str | None, sample_dims: int, where: str) -> None:
    """One sentence for a test-time augmentation that is unknown or does not fit the model's inputs
    (``spec``, or ``sample_dims`` for a model that has none: 3 for ``(C, H, W)`` images) or task."""
    if tta not in TTA:
        raise ConfigError(f"{where}: unknown test-time augmentation {tta!r}; expected one of {', '.join(TTA)}")
    kind = spec.kind if spec is not None else ("image" if sample_dims == 3 else "sequence")
    if kind not in ("image", "volume"):
        raise ConfigError(
            f"{where}: flip mirrors images left to right, and this model reads {kind} inputs, which have no "
            f"left and right to mirror"
        )
    if task not in (None, "classification"):
        raise ConfigError(f"{where}: flip averages class probabilities, and this model's task is {task}")


class _FlipAveraged(nn.Module):
    """A classifier whose outputs are ``log((softmax(f(x)) + softmax(f(flip(x)))) / 2)``: their
    softmax is the mean of the two probability vectors, so the loss and accuracy computed from them
    are those of the averaged probabilities."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, *rest):
        p = torch.softmax(self.model(x, *rest).float(), -1)  # (B, K)
        q = torch.softmax(self.model(x.flip(-1), *rest).float(), -1)  # the left-right mirror, W the last axis
        return torch.log((p + q) / 2)


def flip_averaged(model: nn.Module) -> nn.Module:
    """``model`` with flip test-time augmentation (:class:`_FlipAveraged`), in eval mode."""
    return _FlipAveraged(model).eval()


def per_sample_predictions(out: torch.Tensor, y: torch.Tensor, *, task: str, classes: list[str]) -> list[dict]:
    """Per test sample: ``index``, ``true`` and ``predicted`` (class names; with the ``probability``
    of the predicted class when there is one class per sample; lists over the counted steps when
    there is one per step; numbers for regression)."""
    rows = []
    if task == "multilabel":  # the labels set in the targets and those above probability 0.5
        for i in range(len(y)):
            rows.append(
                {
                    "index": i,
                    "true": [c for c, v in zip(classes, y[i].tolist(), strict=True) if v > 0.5],
                    "predicted": [c for c, v in zip(classes, out[i].tolist(), strict=True) if v > 0],
                }
            )
        return rows
    if y.is_floating_point() and y.dim() == 2:  # probability targets: their likeliest class is the truth
        y = y.argmax(-1)
    if task == "regression":
        for i in range(len(y)):
            rows.append({"index": i, "true": y[i].tolist(), "predicted": out[i].reshape(y[i].shape).tolist()})
    elif out.dim() == 2:
        for i in range(len(y)):
            top = top_k(torch.softmax(out[i], -1), classes, 1)[0]
            rows.append(
                {"index": i, "true": classes[int(y[i])], "predicted": top["label"], "probability": top["probability"]}
            )
    else:  # one class per step: the steps that count (-100 marks the others)
        pred = out.argmax(-1)
        for i in range(len(y)):
            keep = y[i] != -100
            rows.append(
                {
                    "index": i,
                    "true": [classes[int(t)] for t in y[i][keep]],
                    "predicted": [classes[int(k)] for k in pred[i][keep]],
                }
            )
    return rows


def top_k(probs: torch.Tensor, classes: list[str], k: int) -> list[dict]:
    """The ``k`` likeliest classes of one probability vector ``(K,)``, likeliest first: the one
    top-k builder (predict and evaluate's per-sample view show these)."""
    k = max(1, min(k, len(classes)))
    vals, idx = probs.topk(k)
    return [
        {"index": int(j), "label": classes[int(j)], "probability": float(v)} for v, j in zip(vals, idx, strict=True)
    ]


def decode(
    out: torch.Tensor, i: int, length: int, *, task: str, spec: InputSpec, classes: list[str], k: int = 3
) -> dict:
    """The prediction for sample ``i`` of a batch of model outputs: :func:`layerlab.decoding.decode`."""
    return decoding.decode(out[i].float().cpu().numpy(), length, task=task, classes=classes, vocab=spec.vocab, k=k)


def predict_files(
    run_dir: str | Path,
    files: list[str | Path],
    *,
    top_k: int = 3,
    which: str | None = None,
    device: str = "cpu",
    model: nn.Module | None = None,
) -> list[dict]:
    """Predict files with a run's model: read, apply the run's input spec, model, decode.

    Args:
        run_dir: the run directory.
        files: image files (converted to the run's channels and size), sequence files (``.npy``,
            ``.csv``, ``.tsv``, ``.ts``, standardised as in training) or text files (a character
            model: the next character).
        top_k: how many of the likeliest classes each result lists.
        which: the weights (see :func:`load_run`).
        device: where to predict.
        model: a module built as the run's was (see :func:`load_run`).

    Returns:
        One dict per input: ``file`` (``path[i]`` for the i-th sequence of a file), ``notes`` (what
        had to be converted), ``label``, ``probability`` and the ``top_k`` classes (or the values
        of a regression), and ``true_label`` where the file carries labels.

    Raises:
        ConfigError: ``top_k`` below 1.
        DataError: a file that cannot be read, or does not fit the run's inputs.
    """
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    run = RunDir(run_dir)
    info, spec = run.info(), run.spec
    any_size = run.config().model.any_size and spec.sequence is None
    num_tokens = info["dataset"]["num_outputs"] if spec.kind == "tokens" else None
    inputs = read_inputs(files, spec, num_tokens=num_tokens, any_size=any_size)
    if inputs is None:
        return []
    model = run.model(which, device, model)
    split = Split(inputs.x, torch.zeros(len(inputs)), inputs.lengths, inputs.sizes)
    if any_size:
        check_sizes(model, split, lambda i: inputs.names[i])
    out = engine.predict_logits(model, split, device=next(model.parameters()).device)
    results = []
    for i, name in enumerate(inputs.names):
        r = {
            "file": name,
            "notes": inputs.notes[i],
            **decode(out, i, inputs.length(i), task=info["dataset"]["task"], spec=spec, classes=run.classes, k=top_k),
        }
        truth = inputs.truths[i]
        if truth is not None:
            r["true_label"] = truth if isinstance(truth, str) else float(truth)
        results.append(r)
    return results


@torch.no_grad()
def generate(
    run_dir: str | Path,
    prompt: str = "",
    length: int = 200,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    which: str | None = None,
    device: str = "cpu",
) -> dict:
    """Sample text from a character-level language model run.

    Args:
        run_dir: a run trained on a text file.
        prompt: the text the sample continues (characters the model knows).
        length: how many characters to sample.
        temperature: divides the logits before the softmax: below 1 is more conservative, above 1
            more varied, 0 picks the most likely character every time.
        seed: seeds the sampling.
        which: the weights (see :func:`load_run`).
        device: where to run the model.

    Returns:
        ``{"prompt", "text", "sample", "seed", "temperature", "run"}``, where ``text = prompt + sample``.

    Raises:
        ConfigError: a negative ``length`` or ``temperature``, or a run that is not a one-way
            character model.
        DataError: a prompt with characters the model does not know.
    """
    from ..data.formats.text import Vocabulary

    if length < 0:
        raise ConfigError(f"--length must be 0 or more, got {length}")
    if not temperature >= 0:  # NaN too
        raise ConfigError(f"--temperature must be 0 or more, got {temperature}")
    run = RunDir(run_dir)
    spec = run.spec
    if spec.vocab is None:
        raise ConfigError(
            f"{run.path} is not a character-level language model (it was trained on "
            f"{run.info()['dataset']['name']}); generate needs a recurrent run trained on a text file"
        )
    model = run.model(which, device)
    if contract.bidirectional(model):
        raise ConfigError(
            f"{run.path} holds a bidirectional model, which reads whole sequences; it cannot "
            f"generate one character at a time"
        )
    step_logits = contract.step_logits(model)
    if step_logits is None:
        raise ConfigError(f"{run.path}: its model has no step_logits(x, state), which generating text needs")
    vocab = Vocabulary(spec.vocab)
    dev = next(model.parameters()).device
    if prompt:
        ids = vocab.encode(prompt, "prompt")
    else:  # start after a line break, or any character
        ids = torch.tensor([vocab.index.get("\n", 0)])
    g = torch.Generator().manual_seed(seed)
    logits, state = step_logits(ids[None].to(dev))
    last = logits[0, -1].float().cpu()
    sample = []
    for _ in range(length):
        if temperature == 0:
            nxt = int(last.argmax())
        else:
            nxt = int(torch.multinomial(torch.softmax(last / temperature, -1), 1, generator=g))
        sample.append(nxt)
        logits, state = step_logits(torch.tensor([[nxt]], device=dev), state)
        last = logits[0, -1].float().cpu()
    text = vocab.decode(sample)
    return {
        "prompt": prompt,
        "sample": text,
        "text": prompt + text,
        "seed": seed,
        "temperature": temperature,
        "run": str(run.path),
    }
