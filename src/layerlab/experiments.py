"""Experiments built on the API: each trains models under one stated budget and seed and writes a
figure with the CSV of every number behind it.

- :func:`compare_cells`: the article's section 6.2 in one figure: rnn, lstm, gru and the residual
  cell trained on a long-range task, with their gradient flow through time at initialisation and
  after training (``layerlab compare-cells``).
- :func:`run_adding`, :func:`run_copy` (:func:`run_task`): one recurrent model on the adding problem
  or the copy task under one budget, the numbers ``layerlab train`` gives for the same flags
  (``benchmarks/adding_table.py`` runs the same budgets through the CLI: ``adding.md``, ``copy.md``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import torch

from . import plots
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig, check_range
from .data import load_dataset
from .engine import fit, seed_everything, seeded
from .errors import LayerlabError
from .inspect.gradflow import gradient_flow, has_states
from .inspect.views import save_figure, write_csv
from .models import list_models, sequence_model
from .rundir import build_model_for

log = logging.getLogger(__name__)

TASKS = ("adding", "copy")

#: The budget of ``benchmarks/results/adding.md``: one for every cell (12 epochs of 200 steps).
ADDING_BUDGET = {
    "hidden": 64,
    "n_train": 10_000,
    "n_test": 1000,
    "epochs": 12,
    "batch_size": 50,
    "lr": 0.01,
    "clip": 1.0,
    "seed": 0,
    "threads": 1,
}
#: The budget of ``benchmarks/results/copy.md``: the adding problem's.
COPY_BUDGET = dict(ADDING_BUDGET)
#: Solved: test MSE below this (adding; always answering 1 scores 1/6), or per-step accuracy on the
#: recalled symbols at least this (copy; chance 1/8).
SOLVED = {"adding": 0.01, "copy": 0.99}


def _check_options(cfg: TrainConfig, length, cells, hidden, layers, n_train, n_test, samples, probes, threads) -> None:
    """compare_cells' options by the rules of the config fields they match (and of the CLI's flags),
    before any data is made: one sentence for the first that is out of range."""
    if not cells:
        raise LayerlabError("compare_cells needs at least one cell name, e.g. rnn,lstm,gru,residual")
    data = DataConfig(name="compare-cells", length=length, n_train=n_train, n_test=n_test)
    RunConfig(data=data, model=ModelConfig(hidden=hidden, layers=layers), train=cfg).validate("compare_cells()")
    for name, value, bounds in (("samples", samples, {"ge": 1}), ("probes", probes, {"ge": 0})):
        if value is not None:
            check_range(value, f"compare_cells() {name}", **bounds)
    if threads is not None:
        check_range(threads, "compare_cells() threads", ge=1)


def compare_cells(
    task: str,
    length: int,
    cells: list[str],
    *,
    hidden: int = 64,
    layers: int = 1,
    epochs: int = 2,
    n_train: int = 5000,
    n_test: int = 500,
    batch_size: int = 64,
    lr: float = 1e-3,
    clip: float | None = 1.0,
    seed: int = 0,
    samples: int = 32,
    probes: int | None = None,
    out: str | Path = "compare-cells",
    threads: int | None = None,
    on_cell=None,
) -> dict:
    """Train each cell briefly under one seed and budget on ``task`` and measure its gradient flow
    at initialisation and after training. Every cell is warmed up once, untimed, before any is timed
    (:func:`warm_up`), so ``seconds`` compares the cells, not which one ran first. Writes
    ``compare_cells.png`` (curves and table), ``compare_cells.csv`` (the table),
    ``compare_cells_curves.csv`` and ``compare_cells_fit.csv``."""
    if task not in TASKS:
        raise LayerlabError(f"unknown task {task!r} for compare-cells; expected {' or '.join(TASKS)}")
    cfg = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, clip=clip, seed=seed, device="cpu", channels_last=False
    )
    _check_options(cfg, length, cells, hidden, layers, n_train, n_test, samples, probes, threads)
    if threads:
        torch.set_num_threads(threads)
    ds = load_dataset(task, length=length, n_train=n_train, n_test=n_test, seed=seed)
    metric = "mse" if ds.task == "regression" else "accuracy"
    x, y = ds.test.x[:samples], ds.test.y[:samples]
    models = {}
    for cell in cells:  # every name checked before minutes of training, not after the first cell
        if cell not in list_models():
            raise LayerlabError(f"unknown model {cell!r}; known models: {', '.join(list_models())}")
        if not sequence_model(cell):
            raise LayerlabError(f"{cell} is not a recurrent model; compare-cells compares recurrent cells")
        models[cell] = ModelConfig(name=cell, hidden=hidden, layers=layers)
    warmup_seconds = warm_up(list(models.values()), ds, cfg)
    results = []
    for cell in cells:
        seed_everything(seed)
        model = build_model_for(models[cell], ds.spec, ds.num_outputs)
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
        r = {
            "cell": cell,
            "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "seconds": seconds,
            "metric": metric,
            "final": final,
            "final_test_loss": last["test_loss"],
            "decay_init": jf_i.factor if jf_i else None,
            "decay_trained": jf_t.factor if jf_t else None,
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
            "history": hist,
            "flows": {"init": init, "trained": trained},
        }
        results.append(r)
        log.info(
            "compare-cells %s: %s %.4g in %.1fs, decay/step %s -> %s",
            cell,
            metric,
            final,
            seconds,
            r["decay_init"],
            r["decay_trained"],
        )
        if on_cell:
            on_cell(r)
    out = Path(out)
    title = (
        f"{task} task, T={length}: {', '.join(cells)} trained under one budget (hidden {hidden}, {epochs} "
        f"epochs of {n_train:,} samples, batch {batch_size}, Adam lr {lr}, clip {clip}, seed {seed})\n"
        f"curves averaged over {samples} test sequences; legend: fitted factor per step back in time "
        f"(< 1 vanishing, > 1 growing)"
    )
    files = save_figure(plots.compare_cells(results, title), out, "compare_cells", table_rows(results))
    curves = []
    fits = []
    for r in results:
        for f in r["flows"].values():
            curves += [{"cell": r["cell"], **row} for row in f.rows()]
            fits += [{"cell": r["cell"], **row} for row in f.fit_rows()]
    files["curves_csv"] = str(write_csv(out / "compare_cells_curves.csv", curves))
    files["fit_csv"] = str(write_csv(out / "compare_cells_fit.csv", fits))
    files["history_csv"] = str(
        write_csv(out / "compare_cells_history.csv", [{"cell": r["cell"], **h} for r in results for h in r["history"]])
    )
    return {
        "results": results,
        "files": files,
        "task": task,
        "length": length,
        "metric": metric,
        "baseline": ds.meta.get("baseline_mse") if ds.meta else None,
        "warmup_seconds": warmup_seconds,
    }


def run_task(
    task: str,
    model: str,
    length: int,
    *,
    hidden: int = 64,
    layers: int = 1,
    epochs: int = 12,
    n_train: int = 10_000,
    n_test: int = 1000,
    batch_size: int = 50,
    lr: float = 0.01,
    clip: float | None = 1.0,
    seed: int = 0,
    threads: int | None = 1,
) -> dict:
    """Train recurrent ``model`` on the synthetic ``task`` (``adding`` or ``copy``) with T = ``length``
    and evaluate it on the test set after every epoch, as ``layerlab train --model MODEL --data TASK
    --length T --hidden ... --threads THREADS`` does (the same seeding, data, initialisation and
    numbers), without a run directory. The caller's random state and thread count are left as they
    were.

    Returns a dict: ``task``, ``model``, ``length``, ``layers``, ``budget`` (the arguments),
    ``metric`` (``mse`` for adding, ``accuracy`` for copy: per-step accuracy on the 10 recalled
    symbols, the only steps with targets), ``per_epoch`` (that metric after each epoch), ``final``
    (the last epoch's: nothing is chosen on the test set), ``best`` and ``best_epoch``,
    ``solved_epoch`` (the first epoch meeting :data:`SOLVED`, or None), ``baseline`` (1/6 MSE, or
    chance 1/8), ``parameters``, ``seconds`` (training, without evaluation), ``grad_norm_max`` and
    ``clipped_fraction`` (the largest over epochs; None without ``clip``) and ``history`` (the rows
    ``metrics.csv`` would hold).
    """
    if task not in TASKS:
        raise LayerlabError(f"unknown task {task!r}; expected {' or '.join(TASKS)}")
    if model not in list_models() or not sequence_model(model):
        raise LayerlabError(f"{model!r} is not a recurrent model; expected one of rnn, lstm, gru, residual")
    budget = {
        "hidden": hidden,
        "layers": layers,
        "epochs": epochs,
        "n_train": n_train,
        "n_test": n_test,
        "batch_size": batch_size,
        "lr": lr,
        "clip": clip,
        "seed": seed,
        "threads": threads,
    }
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        clip=clip,
        seed=seed,
        threads=threads,
        device="cpu",
        channels_last=False,
    )
    with seeded(seed, threads):  # as `layerlab train`: threads, seed, data, model, fit
        ds = load_dataset(task, length=length, n_train=n_train, n_test=n_test, seed=seed)
        net = build_model_for(ModelConfig(name=model, hidden=hidden, layers=layers), ds.spec, ds.num_outputs)
        hist = fit(net, ds, cfg).history
    metric = "mse" if task == "adding" else "accuracy"
    per_epoch = [r["test_loss"] if metric == "mse" else r["test_accuracy"] for r in hist]
    better = min if metric == "mse" else max
    best = better(per_epoch)
    solved = next(
        (i + 1 for i, v in enumerate(per_epoch) if (v < SOLVED[task] if metric == "mse" else v >= SOLVED[task])),
        None,
    )
    return {
        "task": task,
        "model": model,
        "length": length,
        "layers": layers,
        "budget": budget,
        "metric": metric,
        "per_epoch": per_epoch,
        "final": per_epoch[-1],
        "best": best,
        "best_epoch": per_epoch.index(best) + 1,
        "solved_epoch": solved,
        "baseline": ds.meta.get("baseline_mse") if metric == "mse" else ds.meta.get("chance_accuracy"),
        "parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "seconds": sum(r.get("train_seconds", 0.0) for r in hist),
        "grad_norm_max": max((r["grad_norm_max"] for r in hist if "grad_norm_max" in r), default=None),
        "clipped_fraction": max((r["clipped_fraction"] for r in hist if "clipped_fraction" in r), default=None),
        "history": hist,
    }


def run_adding(model: str, length: int, **budget) -> dict:
    """:func:`run_task` on the adding problem, :data:`ADDING_BUDGET` unless ``budget`` overrides it
    (e.g. ``run_adding("gru", 150, epochs=2, n_train=2000)``)."""
    return run_task("adding", model, length, **{**ADDING_BUDGET, **budget})


def run_copy(model: str, length: int, **budget) -> dict:
    """:func:`run_task` on the copy task, :data:`COPY_BUDGET` unless ``budget`` overrides it."""
    return run_task("copy", model, length, **{**COPY_BUDGET, **budget})


def warm_up(models: list[ModelConfig], ds, cfg: TrainConfig) -> float:
    """Train a throwaway copy of each model for one epoch of one batch, untimed, and return the
    seconds it took. The first training in a process pays for thread pools, kernel selection and
    allocator growth; without this the first cell of a comparison was charged for all of it."""
    t0 = time.perf_counter()
    n = min(cfg.batch_size, len(ds.train), len(ds.test))
    tiny = dataclasses.replace(ds, train=ds.train.subset(torch.arange(n)), test=ds.test.subset(torch.arange(n)))
    for model_cfg in models:
        model = build_model_for(model_cfg, ds.spec, ds.num_outputs)
        fit(model, tiny, dataclasses.replace(cfg, epochs=1))
    seconds = time.perf_counter() - t0
    log.info("compare-cells: warmed up %d model(s) in %.2fs, untimed", len(models), seconds)
    return seconds


def table_rows(results: list[dict]) -> list[dict]:
    return [
        {
            "cell": r["cell"],
            "parameters": r["parameters"],
            "seconds": round(r["seconds"], 2),
            f"final_test_{r['metric']}": round(r["final"], 6),
            "decay_per_step_init": _r(r["decay_init"]),
            "decay_per_step_trained": _r(r["decay_trained"]),
            "steps_per_10x_init": _r(r["steps_per_10x_init"]),
            "steps_per_10x_trained": _r(r["steps_per_10x_trained"]),
            "spectral_decay_per_step_init": _r(r["spectral_decay_init"]),
            "spectral_decay_per_step_trained": _r(r["spectral_decay_trained"]),
            "grad_decay_per_step_init": _r(r["grad_decay_init"]),
            "grad_decay_per_step_trained": _r(r["grad_decay_trained"]),
            "grad_ratio_t1_to_tT_init": _g(r["grad_reach_init"]),
            "grad_ratio_t1_to_tT_trained": _g(r["grad_reach_trained"]),
            "jacobian_rms_t1_init": _g(r["jacobian_reach_init"]),
            "jacobian_rms_t1_trained": _g(r["jacobian_reach_trained"]),
        }
        for r in results
    ]


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
