"""The public API. The CLI only parses arguments and calls these functions."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
import torch.nn as nn

from . import engine
from .config import RunConfig
from .data import Dataset, Split, load_dataset, split_validation
from .errors import ConfigError, LayerlabError
from .models import create_model
from .rundir import RunDir, default_run_path

log = logging.getLogger(__name__)


def build_model(name: str, input_shape: tuple[int, ...], num_outputs: int, **options) -> nn.Module:
    """A registered model (see ``layerlab models``) for samples of ``input_shape``."""
    return create_model(name, input_shape, num_outputs, **options)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (a frozen bias, like the LSTM's second one, is not counted: Keras has none)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def prepare_data(cfg: RunConfig) -> Dataset:
    """Load the dataset a config names, and hold out a validation split if it asks for one."""
    d = cfg.data
    ds = load_dataset(d.name, data_dir=d.data_dir, seed=cfg.train.seed, sequence=d.sequence, length=d.length,
                      n_train=d.n_train, n_test=d.n_test)
    if d.sequence and ds.train.x.dim() == 4:
        from .data.sequences import images_as_sequences

        ds = images_as_sequences(ds, d.sequence, seed=cfg.train.seed)
    if d.validation:
        ds = split_validation(ds, d.validation, cfg.train.seed)
    return ds


def _model_options(cfg: RunConfig) -> dict:
    m = cfg.model
    return {"hidden": m.hidden, "layers": m.layers, "bidirectional": m.bidirectional, "dropout": m.dropout,
            "channels": m.channels}


def _data_model_options(meta: dict | None) -> dict:
    """Model options the data decides: recurrent models output one prediction per step when the
    targets are per step (the data loader sets ``meta["head"] = "step"``: copy task, text)."""
    head = (meta or {}).get("head")
    return {"head": head} if head else {}


def dataset_info(ds: Dataset) -> dict:
    return {"name": ds.name, "task": ds.task, "classes": ds.classes, "num_outputs": ds.num_outputs,
            "input_shape": list(ds.input_shape), "n_train": len(ds.train), "n_test": len(ds.test),
            "source": ds.source, **({"meta": ds.meta} if ds.meta else {})}


def _setup_threads(cfg: RunConfig) -> None:
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)


def train(cfg: RunConfig, out: str | Path | None = None, *, progress: engine.Progress | None = None,
          dataset: Dataset | None = None, overwrite: bool = False) -> tuple[RunDir, engine.FitResult]:
    """Build the model and data a config names, train it, and keep everything in a run directory."""
    out = Path(out) if out else default_run_path(cfg.model.name, cfg.data.name)
    if not overwrite:
        RunDir.check_new(out)
    _setup_threads(cfg)
    device = engine.resolve_device(cfg.train.device)
    engine.seed_everything(cfg.train.seed)
    ds = dataset if dataset is not None else prepare_data(cfg)
    model = build_model(cfg.model.name, ds.input_shape, ds.num_outputs, **_model_options(cfg),
                        **_data_model_options(ds.meta)).to(device)
    info = {"model": {"name": cfg.model.name, "options": {k: v for k, v in _model_options(cfg).items() if v is not None},
                      "parameters": count_parameters(model)},
            "dataset": dataset_info(ds), "seed": cfg.train.seed, "device": str(device)}
    run = RunDir.create(out, cfg, info, overwrite=overwrite)
    return run, _fit_and_record(run, model, ds, cfg, progress)


def resume(run_dir: str | Path, *, epochs: int | None = None, progress: engine.Progress | None = None,
           dataset: Dataset | None = None) -> tuple[RunDir, engine.FitResult]:
    """Continue a run from its last checkpoint, exactly: same weights, optimizer moments, RNG
    streams and shuffle order as if it had never stopped."""
    run = RunDir(run_dir)
    info = run.info()
    cfg = run.config()
    if epochs is not None:
        cfg.train.epochs = epochs
    _setup_threads(cfg)
    device = engine.resolve_device(cfg.train.device)
    ds = dataset if dataset is not None else prepare_data(cfg)
    model = build_model(cfg.model.name, ds.input_shape, ds.num_outputs, **_model_options(cfg),
                        **_data_model_options(ds.meta)).to(device)
    run.load_model_weights(model, "last")
    state = run.training_state()
    if state["epoch"] >= cfg.train.epochs:
        raise ConfigError(f"{run.path} already trained {state['epoch']} epochs; pass --epochs N with N > {state['epoch']}")
    if cfg.train.channels_last and any(p.dim() == 4 for p in model.parameters()):
        model = model.to(memory_format=torch.channels_last)
    optimizer = engine.make_optimizer(model, cfg.train, device)
    optimizer.load_state_dict(state["optimizer"])
    RunDir.restore_rng(state)
    from .checkpoint import atomic_write_text

    atomic_write_text(run.path / "config.toml", cfg.to_toml())
    run.update_info(status="running", resumed_from_epoch=state["epoch"])
    return run, _fit_and_record(run, model, ds, cfg, progress, optimizer=optimizer, start_epoch=state["epoch"],
                                history=state["history"], prior_seconds=info.get("train_wall_seconds", 0.0))


def _fit_and_record(run: RunDir, model, ds, cfg, progress, prior_seconds: float = 0.0, **kw) -> engine.FitResult:
    t0 = time.perf_counter()
    try:
        result = engine.fit(model, ds, cfg.train, run=run, progress=progress, **kw)
    except KeyboardInterrupt:
        run.finish("interrupted", train_wall_seconds=prior_seconds + time.perf_counter() - t0)
        raise
    except Exception as e:
        run.finish("failed", error=str(e), train_wall_seconds=prior_seconds + time.perf_counter() - t0)
        raise
    wall = prior_seconds + time.perf_counter() - t0
    last = result.history[-1] if result.history else {}
    summary = {"epochs": len(result.history), "best_epoch": result.best_epoch, "wall_seconds": round(wall, 2),
               "final": last,
               "best": next((r for r in result.history if r["epoch"] == result.best_epoch), {})}
    run.write_summary(summary)
    run.finish("completed", train_wall_seconds=round(wall, 2))
    return result


# ----------------------------------------------------------------------------------------------
# After training: everything reads a run directory
# ----------------------------------------------------------------------------------------------
def load_run(run_dir: str | Path, which: str = "best", device: str = "cpu") -> tuple[nn.Module, RunDir, dict]:
    """The trained model of a run (``best`` or ``last`` weights), its RunDir and run.json."""
    run = RunDir(run_dir)
    info = run.info()
    cfg = run.config()
    ds = info["dataset"]
    model = build_model(info["model"]["name"], tuple(ds["input_shape"]), ds["num_outputs"], **_model_options(cfg),
                        **_data_model_options(ds.get("meta")))
    used = run.load_model_weights(model, which)
    info["weights_used"] = used
    model.to(engine.resolve_device(device)).eval()
    return model, run, info


def evaluate_run(run_dir: str | Path, *, data: str | None = None, data_dir: str | None = None,
                 which: str = "best", device: str = "cpu") -> dict:
    """Test-set loss, accuracy and per-class accuracy of a run's model (on ``data`` if given)."""
    model, run, info = load_run(run_dir, which, device)
    cfg = run.config()
    if data:
        cfg.data.name = data
    if data_dir:
        cfg.data.data_dir = data_dir
    cfg.data.validation = 0.0
    ds = prepare_data(cfg)
    if tuple(ds.input_shape) != tuple(info["dataset"]["input_shape"]):
        raise LayerlabError(f"{cfg.data.name} has samples of shape {ds.input_shape}, the model of {run.path} "
                            f"was trained on {tuple(info['dataset']['input_shape'])}")
    t0 = time.perf_counter()
    out = engine.predict_logits(model, ds.test, device=next(model.parameters()).device)
    y = ds.test.y
    result = {"run": str(run.path), "data": ds.name, "weights": info["weights_used"], "n": len(ds.test)}
    loss = engine.compute_loss(ds.task, out, y)
    result["loss"] = float(loss)
    if ds.task != "regression":
        pred = out.argmax(-1)
        mask = y != -100
        result["accuracy"] = float(((pred == y) & mask).sum() / mask.sum())
        if out.dim() == 2 and ds.classes:
            per = {}
            for k, name in enumerate(ds.classes):
                sel = y == k
                if sel.any():
                    per[name] = float((pred[sel] == k).float().mean())
            result["per_class_accuracy"] = per
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def predict_files(run_dir: str | Path, files: list[str | Path], *, top_k: int = 3, which: str = "best",
                  device: str = "cpu") -> list[dict]:
    """Top-k classes with probabilities for image files, converted to the model's channels and size."""
    from .data.images import read_image

    if len(RunDir(run_dir).info()["dataset"]["input_shape"]) != 3:
        # a recurrent model's run: sequence files (and images read as sequences); it loads the model
        from .sequence_predict import predict_sequence_files

        return predict_sequence_files(run_dir, files, top_k=top_k, which=which, device=device)
    model, run, info = load_run(run_dir, which, device)
    ds = info["dataset"]
    shape = tuple(ds["input_shape"])
    classes = ds["classes"] or [str(i) for i in range(ds["num_outputs"])]
    top_k = max(1, min(top_k, len(classes)))
    results = []
    xs, notes = [], []
    for f in files:
        x, n = read_image(Path(f), channels=shape[0], size=shape[1:])
        xs.append(x)
        notes.append(n)
    if not xs:
        return []
    probs = torch.softmax(engine.predict_logits(model, Split(torch.stack(xs), torch.zeros(len(xs)))), -1)
    for f, p, n in zip(files, probs, notes):
        vals, idx = p.topk(top_k)
        top = [{"index": int(i), "label": classes[int(i)], "probability": float(v)} for v, i in zip(vals, idx)]
        results.append({"file": str(f), "index": top[0]["index"], "label": top[0]["label"],
                        "probability": top[0]["probability"], "top_k": top, "notes": n})
    return results
