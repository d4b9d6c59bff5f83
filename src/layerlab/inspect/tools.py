"""The inspection commands as functions: each reads a run directory (or builds a registered model
fresh), computes its view, writes PNG figures with the CSV of every number behind them, and returns
a plain dict for the CLI to print. ``layerlab inspect ...``, ``compare-cells`` and ``report`` call these.
"""
from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path

import torch

from .. import plots
from ..errors import LayerlabError

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------
def write_csv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Write dict rows as CSV (columns: the given ones, else the union in first-seen order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return path


def save_figure(fig, out: Path, stem: str, rows: list[dict], columns: list[str] | None = None) -> dict:
    """``out/stem.png`` and ``out/stem.csv``; returns both paths."""
    png = plots.save(fig, out / f"{stem}.png")
    data = write_csv(out / f"{stem}.csv", rows, columns)
    return {"png": str(png), "csv": str(data)}


def is_run_dir(target: str | Path) -> bool:
    return Path(target).is_dir() or os.sep in str(target) or (Path(target) / "run.json").exists()


def _check_model_name(name: str) -> None:
    from ..models import list_models

    if name not in list_models():
        raise LayerlabError(f"{name!r} is neither a run directory nor a registered model "
                            f"(known models: {', '.join(list_models())})")


def _dataset_for(data: str, *, length: int | None = None, sequence: str | None = None, n: int | None = None,
                 seed: int = 0, data_dir: str | None = None):
    """A dataset by name for a model built fresh; only a few test samples are needed."""
    from ..api import prepare_data
    from ..config import RunConfig

    cfg = RunConfig()
    cfg.data.name = data
    cfg.data.data_dir = data_dir
    cfg.data.length = length
    cfg.data.sequence = sequence
    cfg.train.seed = seed
    if n is not None:
        cfg.data.n_test = n
        cfg.data.n_train = max(n, 1)
    return prepare_data(cfg)


def _run_dataset(run, data: str | None = None):
    """The test split of a run's own data (no validation hold-out), or of ``data``."""
    from ..api import prepare_data

    cfg = run.config()
    cfg.data.validation = 0.0
    if data:
        cfg.data.name = data
    return prepare_data(cfg)


def initial_model(run):
    """The run's model as it was before training: rebuilt from the run's seed, as ``train`` built it."""
    from ..api import _model_options, build_model
    from ..engine import seed_everything

    info, cfg = run.info(), run.config()
    seed_everything(cfg.train.seed)
    ds = info["dataset"]
    options = {**_model_options(cfg), **_head(ds.get("meta"))}
    return build_model(info["model"]["name"], tuple(ds["input_shape"]), ds["num_outputs"], **options)


def _head(meta: dict | None) -> dict:
    return {"head": meta["head"]} if meta and meta.get("head") else {}


def _default_out(target: str, kind: str) -> Path:
    if is_run_dir(target):
        return Path(target) / "inspect"
    return Path(f"inspect-{target}") / kind


# ----------------------------------------------------------------------------------------------
# Gradient flow
# ----------------------------------------------------------------------------------------------
def gradflow(target: str, *, data: str | None = None, length: int | None = None, sequence: str | None = None,
             hidden: int | None = None, layers: int | None = None, samples: int = 32, probes: int | None = None,
             weights: str = "best", seed: int = 0, out: str | Path | None = None, data_dir: str | None = None) -> dict:
    """Gradient flow through time of a run (at its initialisation and with its trained weights) or
    of a registered recurrent model built fresh (at initialisation; needs ``data`` for the shapes).

    Writes ``gradflow.csv`` (weights, layer, t, grad_norm, jacobian_norm, jacobian_spectral), ``gradflow_fit.csv``
    (decay factor per step) and ``gradflow.png`` under ``out``.
    """
    from ..engine import seed_everything
    from ..models import create_model
    from .gradflow import gradient_flow, has_states

    out = Path(out) if out else _default_out(target, "gradflow")
    flows = []
    if is_run_dir(target):
        from ..api import load_run

        model, run, info = load_run(target, weights)
        if not has_states(model):
            raise LayerlabError(f"{run.path}: the model {info['model']['name']} is not recurrent; gradient flow "
                                f"through time applies to rnn, lstm, gru, residual and article-lstm runs")
        ds = _run_dataset(run, data)
        if tuple(ds.input_shape) != tuple(info["dataset"]["input_shape"]):
            raise LayerlabError(f"{ds.name} has samples of shape {tuple(ds.input_shape)}, the model of {run.path} "
                                f"was trained on {tuple(info['dataset']['input_shape'])}")
        x, y = ds.test.x[:samples], ds.test.y[:samples]
        lengths = None if ds.test.lengths is None else ds.test.lengths[:samples]
        flows.append(gradient_flow(initial_model(run), x, y, task=ds.task, lengths=lengths, probes=probes,
                                   label="init", seed=seed))
        flows.append(gradient_flow(model, x, y, task=ds.task, lengths=lengths, probes=probes,
                                   label=f"trained ({info['weights_used']})", seed=seed))
        title = f"{run.path.name}: {info['model']['name']} on {info['dataset']['name']}"
    else:
        _check_model_name(target)
        if not data:
            raise LayerlabError(f"a fresh model ({target}) needs --data to know the input shape, "
                                f"e.g. --data adding --length 100")
        ds = _dataset_for(data, length=length, sequence=sequence, n=samples, seed=seed, data_dir=data_dir)
        seed_everything(seed)
        model = create_model(target, ds.input_shape, ds.num_outputs, hidden=hidden, layers=layers,
                             **_head(ds.meta))
        if not has_states(model):
            raise LayerlabError(f"{target} is not a recurrent model; gradient flow through time applies to "
                                f"rnn, lstm, gru, residual and article-lstm")
        x, y = ds.test.x[:samples], ds.test.y[:samples]
        lengths = None if ds.test.lengths is None else ds.test.lengths[:samples]
        flows.append(gradient_flow(model, x, y, task=ds.task, lengths=lengths, probes=probes, label="init",
                                   seed=seed))
        title = f"{target} (fresh, seed {seed}) on {ds.name}, T={ds.input_shape[0]}"
    files = write_gradflow(flows, out, title)
    return {"flows": flows, "files": files, "title": title}


def write_gradflow(flows: list, out: Path, title: str, stem: str = "gradflow") -> dict:
    rows = [r for f in flows for r in f.rows()]
    files = save_figure(plots.gradient_flow(flows, title), out, stem, rows)
    files["fit_csv"] = str(write_csv(out / f"{stem}_fit.csv", [r for f in flows for r in f.fit_rows()]))
    return files


# ----------------------------------------------------------------------------------------------
# Convolutional views and the summary
# ----------------------------------------------------------------------------------------------
def filters_view(run_dir: str, *, layer: str | None = None, weights: str = "best", out: str | Path | None = None,
                 model=None) -> dict:
    """The filters of one conv layer (default: the first) as an image grid and a CSV of weights."""
    from ..api import load_run
    from .conv import filters

    if model is None:
        model, run, _ = load_run(run_dir, weights)
    out = Path(out) if out else Path(run_dir) / "inspect"
    name, alias, w = filters(model, layer)
    rows = [{"layer": name, "filter": o, "input_channel": i, "row": r, "col": c, "weight": float(w[o, i, r, c])}
            for o in range(w.shape[0]) for i in range(w.shape[1]) for r in range(w.shape[2]) for c in range(w.shape[3])]
    title = f"{alias} ({name}): {w.shape[0]} filters of {w.shape[1]}x{w.shape[2]}x{w.shape[3]}"
    files = save_figure(plots.conv_filters(w, title), out, f"filters_{alias}", rows)
    return {"layer": name, "alias": alias, "shape": tuple(w.shape), "files": files}


def features_view(run_dir: str, image: str | Path | torch.Tensor, *, weights: str = "best",
                  out: str | Path | None = None, model=None, info=None) -> dict:
    """Feature maps of every conv/pool layer for one image (a file, read as ``predict`` reads it)."""
    from ..api import load_run
    from .conv import feature_maps, load_image_for

    if model is None:
        model, _, info = load_run(run_dir, weights)
    out = Path(out) if out else Path(run_dir) / "inspect"
    notes: list[str] = []
    if isinstance(image, torch.Tensor):
        x = image
    else:
        x, notes = load_image_for(tuple(info["dataset"]["input_shape"]), image)
    maps = feature_maps(model, x)
    layers = []
    c, h, w = x.shape
    files = {"input": save_figure(plots.feature_maps(x, "input image"), out, "features_input",
                                  [{"channel": ch, "row": r, "col": q, "value": float(x[ch, r, q])}
                                   for ch in range(c) for r in range(h) for q in range(w)])}
    for fm in maps:
        m = fm.maps
        rows = [{"layer": fm.name, "channel": ch, "row": r, "col": q, "value": round(float(m[ch, r, q]), 6)}
                for ch in range(m.shape[0]) for r in range(m.shape[1]) for q in range(m.shape[2])]
        files[fm.alias] = save_figure(plots.feature_maps(m, fm.label, image=x), out, f"features_{fm.alias}", rows)
        layers.append({"layer": fm.name, "alias": fm.alias, "label": fm.label, "shape": tuple(m.shape)})
    return {"layers": layers, "files": files, "notes": notes, "image": x}


def summary_view(target: str, *, input_shape: tuple | None = None, outputs: int | None = None,
                 data: str | None = None, length: int | None = None, hidden: int | None = None,
                 layers: int | None = None, out: str | Path | None = None, write: bool = True) -> dict:
    """The model summary of a run or of a registered model (built for ``input_shape`` or ``data``)."""
    from ..models import create_model
    from .summary import summarize

    if is_run_dir(target):
        from ..api import load_run

        model, run, info = load_run(target)
        shape = tuple(info["dataset"]["input_shape"])
        name = info["model"]["name"]
        out = Path(out) if out else run.path / "inspect"
    else:
        _check_model_name(target)
        head = {}
        if input_shape is None and data:
            ds = _dataset_for(data, length=length, n=2)
            input_shape, outputs, head = ds.input_shape, outputs or ds.num_outputs, _head(ds.meta)
        shape = tuple(input_shape) if input_shape else (1, 28, 28)   # the article's input
        model = create_model(target, shape, outputs or 10, hidden=hidden, layers=layers, **head)
        name = target
        out = Path(out) if out else None
    s = summarize(model, shape, name)
    files = {}
    if write and out is not None:
        files = save_figure(plots.layer_elements(s), out, "summary", s.csv_rows())
    return {"summary": s, "files": files}


# ----------------------------------------------------------------------------------------------
# Training and error views
# ----------------------------------------------------------------------------------------------
CURVE_COLUMNS = ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy"]


def curves_view(run_dir: str, *, out: str | Path | None = None) -> dict:
    from ..rundir import RunDir
    from .evaluation import curve_rows

    run = RunDir(run_dir)
    run.info()
    rows = curve_rows(run)
    out = Path(out) if out else run.path / "inspect"
    cols = [c for c in CURVE_COLUMNS if any(r.get(c) is not None for r in rows)]
    return {"rows": rows, "files": save_figure(plots.training_curves(rows, run.path.name), out, "curves", rows, cols)}


def errors_view(run_dir: str, *, weights: str = "best", out: str | Path | None = None, k: int = 16,
                model=None, ds=None) -> dict:
    """Confusion matrix, per-class precision/recall and the most confidently wrong test samples."""
    from ..api import load_run
    from ..rundir import RunDir
    from .evaluation import classification_views, predict_test

    if model is None:
        model, run, _ = load_run(run_dir, weights)
    else:
        run = RunDir(run_dir)
    ds = ds if ds is not None else _run_dataset(run)
    pred = predict_test(model, ds)
    views = classification_views(pred)
    out = Path(out) if out else run.path / "inspect"
    classes = pred.classes
    cm, sc = views["confusion"], views["scores"]
    files = {"confusion": save_figure(plots.confusion(cm, classes), out, "confusion",
                                      [{"true": classes[i], **{classes[j]: int(cm[i, j]) for j in range(len(classes))}}
                                       for i in range(len(classes))], ["true"] + classes)}
    score_rows = [{"class": classes[i], "precision": round(float(sc["precision"][i]), 6),
                   "recall": round(float(sc["recall"][i]), 6), "f1": round(float(sc["f1"][i]), 6),
                   "support": int(sc["support"][i])} for i in range(len(classes))]
    files["scores"] = save_figure(plots.class_scores(sc, classes), out, "class_scores", score_rows)
    ms = views["mistakes"][:k]
    if ms:
        samples = [pred.x[m["index"]] for m in ms]
        rows = [{"rank": r + 1, "test_index": m["index"], "true": classes[m["true"]],
                 "predicted": classes[m["predicted"]], "confidence": round(m["confidence"], 6),
                 "p_true": round(m["p_true"], 6)} for r, m in enumerate(ms)]
        files["mistakes"] = save_figure(plots.mistakes(samples, ms, classes), out, "mistakes", rows)
    return {"accuracy": views["accuracy"], "n": views["n"], "scores": score_rows, "mistakes": ms, "files": files,
            "confusion": cm, "classes": classes}


# ----------------------------------------------------------------------------------------------
# compare-cells: the article's section 6.2 as one figure
# ----------------------------------------------------------------------------------------------
def load_task(task: str, *, length: int, n_train: int, n_test: int, seed: int):
    """A synthetic task (``adding``, ``copy``) through the dataset registry."""
    from ..data import load_dataset

    if task not in ("adding", "copy"):
        raise LayerlabError(f"unknown task {task!r} for compare-cells; expected adding or copy")
    try:
        return load_dataset(task, length=length, n_train=n_train, n_test=n_test, seed=seed)
    except LayerlabError:
        from ..data import synthetic  # the registry may not route synthetic tasks yet

        return synthetic.load(task, length=length, n_train=n_train, n_test=n_test, seed=seed)


def compare_cells(task: str, length: int, cells: list[str], *, hidden: int = 64, layers: int = 1,
                  epochs: int = 2, n_train: int = 5000, n_test: int = 500, batch_size: int = 64,
                  lr: float = 1e-3, clip: float | None = 1.0, seed: int = 0, samples: int = 32,
                  probes: int | None = None, out: str | Path = "compare-cells", threads: int | None = None,
                  on_cell=None) -> dict:
    """Train each cell briefly under one seed and budget on ``task`` and measure its gradient flow
    at initialisation and after training. Writes ``compare_cells.png`` (curves and table),
    ``compare_cells.csv`` (the table), ``compare_cells_curves.csv`` and ``compare_cells_fit.csv``."""
    from ..config import TrainConfig
    from ..engine import fit, seed_everything
    from ..models import create_model
    from .gradflow import gradient_flow, has_states

    if threads:
        torch.set_num_threads(threads)
    ds = load_task(task, length=length, n_train=n_train, n_test=n_test, seed=seed)
    metric = "mse" if ds.task == "regression" else "accuracy"
    x, y = ds.test.x[:samples], ds.test.y[:samples]
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, clip=clip, seed=seed, device="cpu",
                      channels_last=False)
    results = []
    for cell in cells:
        _check_model_name(cell)
        seed_everything(seed)
        model = create_model(cell, ds.input_shape, ds.num_outputs, hidden=hidden, layers=layers, **_head(ds.meta))
        if not has_states(model):
            raise LayerlabError(f"{cell} is not a recurrent model; compare-cells compares recurrent cells")
        init = gradient_flow(model, x, y, task=ds.task, probes=probes, label="init", seed=seed)
        t0 = time.perf_counter()
        hist = fit(model, ds, cfg).history
        seconds = time.perf_counter() - t0
        trained = gradient_flow(model, x, y, task=ds.task, probes=probes, label="trained", seed=seed)
        last = hist[-1]
        final = last["test_loss"] if metric == "mse" else last["test_accuracy"]
        jf_i, jf_t = init.layers[0].jacobian_fit, trained.layers[0].jacobian_fit
        r = {"cell": cell, "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
             "seconds": seconds,
             "metric": metric, "final": final, "final_test_loss": last["test_loss"],
             "decay_init": jf_i.factor if jf_i else None, "decay_trained": jf_t.factor if jf_t else None,
             "steps_per_10x_init": jf_i.steps_per_10x if jf_i else None,
             "steps_per_10x_trained": jf_t.steps_per_10x if jf_t else None,
             # how much arrives at step 1 of what the last step gets, end to end (no fit involved)
             "grad_reach_init": _reach(init.layers[0].grad_norm),
             "grad_reach_trained": _reach(trained.layers[0].grad_norm),
             "jacobian_reach_init": float(init.layers[0].jacobian_norm[0]),
             "jacobian_reach_trained": float(trained.layers[0].jacobian_norm[0]),
             "spectral_decay_init": _factor(init.layers[0].spectral_fit),
             "spectral_decay_trained": _factor(trained.layers[0].spectral_fit),
             "grad_decay_init": init.layers[0].grad_fit.factor if init.layers[0].grad_fit else None,
             "grad_decay_trained": trained.layers[0].grad_fit.factor if trained.layers[0].grad_fit else None,
             "history": hist, "flows": {"init": init, "trained": trained}}
        results.append(r)
        log.info("compare-cells %s: %s %.4g in %.1fs, decay/step %s -> %s", cell, metric, final, seconds,
                 r["decay_init"], r["decay_trained"])
        if on_cell:
            on_cell(r)
    out = Path(out)
    title = (f"{task} task, T={length}: {', '.join(cells)} trained under one budget (hidden {hidden}, {epochs} "
             f"epochs of {n_train:,} samples, batch {batch_size}, Adam lr {lr}, clip {clip}, seed {seed})\n"
             f"curves averaged over {samples} test sequences; legend: fitted factor per step back in time "
             f"(< 1 vanishing, > 1 growing)")
    files = save_figure(plots.compare_cells(results, title), out, "compare_cells", table_rows(results))
    curves = []
    fits = []
    for r in results:
        for f in r["flows"].values():
            curves += [{"cell": r["cell"], **row} for row in f.rows()]
            fits += [{"cell": r["cell"], **row} for row in f.fit_rows()]
    files["curves_csv"] = str(write_csv(out / "compare_cells_curves.csv", curves))
    files["fit_csv"] = str(write_csv(out / "compare_cells_fit.csv", fits))
    files["history_csv"] = str(write_csv(out / "compare_cells_history.csv",
                                         [{"cell": r["cell"], **h} for r in results for h in r["history"]]))
    return {"results": results, "files": files, "task": task, "length": length, "metric": metric,
            "baseline": ds.meta.get("baseline_mse") if ds.meta else None}


def table_rows(results: list[dict]) -> list[dict]:
    return [{"cell": r["cell"], "parameters": r["parameters"], "seconds": round(r["seconds"], 2),
             f"final_test_{r['metric']}": round(r["final"], 6),
             "decay_per_step_init": _r(r["decay_init"]), "decay_per_step_trained": _r(r["decay_trained"]),
             "steps_per_10x_init": _r(r["steps_per_10x_init"]), "steps_per_10x_trained": _r(r["steps_per_10x_trained"]),
             "spectral_decay_per_step_init": _r(r["spectral_decay_init"]),
             "spectral_decay_per_step_trained": _r(r["spectral_decay_trained"]),
             "grad_decay_per_step_init": _r(r["grad_decay_init"]),
             "grad_decay_per_step_trained": _r(r["grad_decay_trained"]),
             "grad_ratio_t1_to_tT_init": _g(r["grad_reach_init"]),
             "grad_ratio_t1_to_tT_trained": _g(r["grad_reach_trained"]),
             "jacobian_rms_t1_init": _g(r["jacobian_reach_init"]),
             "jacobian_rms_t1_trained": _g(r["jacobian_reach_trained"])} for r in results]


def _g(v, digits: int = 6):
    """Significant digits (these ratios span 1e-10..10)."""
    return None if v is None else float(f"{float(v):.{digits}g}")


def _reach(norms) -> float | None:
    """``norm(t=1) / norm(t=T)``."""
    return float(norms[0] / norms[-1]) if norms[-1] > 0 else None


def _factor(fit):
    return fit.factor if fit is not None else None


def _r(v, digits: int = 5):
    return None if v is None else round(float(v), digits)
