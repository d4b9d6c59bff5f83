"""Runs for the ``layerlab explore`` tests: two tiny trained runs (a CNN and an LSTM on the bar
images of :mod:`datagen`), and hand-written run records (no training, no torch) for the listing and
safety tests."""

from __future__ import annotations

import json
from pathlib import Path

from datagen import make_idx_dir

CLASSES = [str(i) for i in range(10)]


def train_runs(root: Path) -> dict[str, Path]:
    """``{"cnn": RUN, "lstm": RUN}`` under ``root/runs``, trained for 2 epochs on 200 bar images."""
    import torch

    from layerlab import api
    from layerlab.config import RunConfig

    data = make_idx_dir(root / "bars", n_train=200, n_test=60)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for name, model in (("cnn", "cnn"), ("lstm", "lstm")):
            cfg = RunConfig()
            cfg.data.name = str(data)
            cfg.data.validation = 0.2
            cfg.model.name = model
            if model == "cnn":
                cfg.model.channels = "4,M,8,M"
            else:
                cfg.data.sequence = "rows"
                cfg.model.hidden = 8
            cfg.train.epochs = 2
            cfg.train.threads = 1
            cfg.train.lr = 3e-3 if model == "cnn" else 1e-2
            api.train(cfg, root / "runs" / name)
            out[name] = root / "runs" / name
    finally:
        torch.set_num_threads(threads)
    return out


def write_record(
    path: Path,
    *,
    model: str = "linear",
    classes: list[str] | None = None,
    data: str = "bars",
    val_loss: tuple[float, ...] = (2.0, 1.5),
    config_extra: str = "",
) -> Path:
    """A run directory with run.json, config.toml and metrics.csv as training writes them (no weights)."""
    classes = classes if classes is not None else CLASSES
    path.mkdir(parents=True, exist_ok=True)
    info = {
        "status": "completed",
        "model": {"name": model, "options": {}, "parameters": 7850},
        "dataset": {
            "name": data,
            "task": "classification",
            "classes": classes,
            "num_outputs": len(classes),
            "input_shape": [1, 28, 28],
        },
        "input_spec": {"kind": "image", "shape": [1, 28, 28], "head": "last", "pixel_scale": 1 / 255},
        "selection": "validation",
    }
    (path / "run.json").write_text(json.dumps(info))
    (path / "config.toml").write_text(
        f'[data]\nname = {json.dumps(data)}\nvalidation = 0.2\n\n[model]\nname = "{model}"\n\n'
        f"[train]\nepochs = {len(val_loss)}\nlr = 0.001\n{config_extra}"
    )
    rows = ["epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr"]
    for e, v in enumerate(val_loss, start=1):
        rows.append(f"{e},{v + 0.1},{0.5 + 0.01 * e},{v},{0.4 + 0.02 * e},0.001")
    (path / "metrics.csv").write_text("\n".join(rows) + "\n")
    return path
