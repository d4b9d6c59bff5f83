"""Strong defaults for ``layerlab train --data X`` with nothing else: a model chosen for the input's
kind and a recipe that adapts to the data, as fastai's defaults do, where the bare config reproduces
the article (``article-cnn``, 10 epochs at a constant rate) and would do poorly on a user's own data.

They apply when ``--data`` is given with no ``--model`` (nor any model option), no ``--config`` and
no ``--init-from``. Every flag the user typed wins over the default it names. The choice:

- images and volumes: ``cnn`` with batch norm and a global average pool (3x3 convs 32,M,64,M,128,
  'same' padding), which takes images of any size;
- sequences (a UCR/UEA set, a CSV of series): ``fcn`` (Wang et al. 2017's fully convolutional
  baseline for time series classification);
- one table with ``--label-column``: ``mlp`` (its columns are features, not steps of a series);
- token ids (text): ``lstm`` of 2 x 256, the ``text`` preset's;

and for all of them Adam with a one-cycle rate peaking at ``LR``, a stratified validation split of
``VALIDATION``, and epochs chosen by early stopping on the validation loss (a quarter of the cap,
at least ``MIN_PATIENCE`` epochs, without improvement) under a cap of about ``TARGET_STEPS``
training steps (``MIN_EPOCHS`` to ``MAX_EPOCHS``); the best epoch's weights are the run's ``best``.
The batch is 32, or a tenth of the training samples for small data (at least 8), as Wang et al.
take ``min(N / 10, 16)``.

The choice is printed in one line and recorded in the run's config (the values) and ``run.json``
(``defaults``: what was chosen, and which of it the user's flags replaced). Torch-free.
"""

from __future__ import annotations

import math

from .config import flag

#: the validation fraction and the one-cycle peak rate
VALIDATION = 0.2
LR = 1e-3
#: the epoch cap: enough epochs for about this many steps, within [MIN_EPOCHS, MAX_EPOCHS]
TARGET_STEPS = 800
MIN_EPOCHS, MAX_EPOCHS = 20, 100
#: early stopping's patience: a quarter of the cap (the one-cycle peak is noisy), at least this
MIN_PATIENCE = 10
#: the batch: a tenth of the training samples, within [MIN_BATCH, MAX_BATCH]
MIN_BATCH, MAX_BATCH = 8, 32

#: the model chosen for each kind of input (``table``: one CSV with --label-column)
MODELS: dict[str, dict[str, object]] = {
    "image": {"name": "cnn", "channels": "32,M,64,M,128", "padding": "same", "batch_norm": True, "global_pool": "avg"},
    "sequence": {"name": "fcn"},
    "table": {"name": "mlp", "hidden": 128, "layers": 2},
    "tokens": {"name": "lstm", "hidden": 256, "layers": 2},
}
MODELS["volume"] = MODELS["image"]
KIND_WORDS = {
    "image": "images",
    "volume": "volumes",
    "sequence": "series",
    "table": "a table",
    "tokens": "token sequences",
}


def applies(config: str | None, given: dict) -> bool:
    """True when ``train`` was given ``--data`` and nothing that names a model or a recipe file:
    no ``--config``, no ``--model`` or model option, no ``--init-from``."""
    if config or "data.name" not in given or "train.init_from" in given:
        return False
    return not any(k.startswith("model.") for k in given)


def prepare(cfg, given: dict) -> None:
    """Before the data loads: what reading it depends on. A stand-in model that takes any size (so
    an image folder of mixed sizes keeps them) and the validation split, unless given."""
    cfg.model = type(cfg.model)(**{**MODELS["image"]})
    if "data.validation" not in given:
        cfg.data.validation = VALIDATION


def kind_of(ds, label_column: str | None) -> str:
    """The input's kind, as the defaults read it: the spec's, or ``table`` for one labelled CSV."""
    return "table" if label_column is not None else ds.spec.kind


def choose(cfg, given: dict, ds) -> dict:
    """Set ``cfg``'s model and recipe for the loaded dataset ``ds``, leaving what ``given`` (the
    flags typed) set. Returns the record for ``run.json``: ``kind``, ``model``, ``train`` (the values
    chosen) and ``kept`` (the flags that replaced a default)."""
    kind = kind_of(ds, cfg.data.label_column)
    options = MODELS.get(kind, MODELS["sequence"])
    cfg.model = type(cfg.model)(**options)
    n_train = len(ds.train)
    train: dict = {"schedule": "onecycle", "lr": LR, "monitor": "val_loss"}
    train["batch_size"] = max(MIN_BATCH, min(MAX_BATCH, n_train // 10))
    batch = given.get("train.batch_size", train["batch_size"])
    steps = max(1, math.ceil(n_train / batch))
    train["epochs"] = max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(TARGET_STEPS / steps)))
    train["early_stopping"] = max(MIN_PATIENCE, given.get("train.epochs", train["epochs"]) // 4)
    if kind == "tokens":
        train["clip"] = 1.0  # the text preset's: a recurrent model's gradients explode now and then
    kept = sorted(f"train.{k}" for k in train if f"train.{k}" in given)
    if "data.validation" in given:
        kept.append("data.validation")
    for key, value in train.items():
        if f"train.{key}" not in given:
            setattr(cfg.train, key, value)
    if not cfg.data.validation:  # --validation 0: nothing to stop on, so the cap is the run's length
        cfg.train.early_stopping = None if "train.early_stopping" not in given else cfg.train.early_stopping
    chosen = {k: getattr(cfg.train, k) for k in train}
    return {"kind": kind, "model": dict(options), "train": chosen, "validation": cfg.data.validation, "kept": kept}


def describe(record: dict) -> str:
    """One line saying what the defaults chose (the ``train`` command prints it)."""
    m, t = record["model"], record["train"]
    model = m["name"] + (" (batch norm, global average pool)" if m.get("batch_norm") else "")
    stop = (
        f"early stopping after {t['early_stopping']} epochs without a better {t['monitor']} on a "
        f"{record['validation']:g} validation split"
        if t.get("early_stopping") and record["validation"]
        else "no early stopping (no validation split)"
    )
    kept = f"; your {', '.join(flag(k) for k in record['kept'])} kept" if record["kept"] else ""
    return (
        f"defaults for {KIND_WORDS.get(record['kind'], record['kind'])}: {model}, {t['schedule']} to lr "
        f"{t['lr']:g}, batch {t['batch_size']}, up to {t['epochs']} epoch{'s' * (t['epochs'] != 1)}, {stop}{kept} "
        f"(--model or --config chooses otherwise)"
    )
