"""The inspection views: each takes a run directory (its model, data and input spec come from
:class:`~layerlab.rundir.RunDir`) or a registered model built fresh (:func:`fresh`), computes its
view, writes PNG figures with the CSV of every number behind them, and returns a plain dict for the
CLI to print. ``layerlab inspect ...`` and ``layerlab report`` call these.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.nn as nn

from .. import plots
from ..config import DataConfig, ModelConfig, check_range
from ..data import Dataset
from ..errors import ConfigError
from ..models import contract
from ..rundir import CURVE_COLUMNS, RunDir, build_model_for
from ..tables import save_figure, write_csv, write_table  # noqa: F401  (write_table: the views' tables)

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------
#: Written into every ``--out`` folder the inspect commands write to, so that a later call may
#: write there again; a non-empty folder without it is a user's and is never written to.
OUT_MARKER = ".layerlab-inspect"


@contextmanager
def owned_out(out: str | Path | None) -> Iterator[None]:
    """Guard a user-given ``--out`` folder around a view: it must be new, empty, or one an inspect
    command wrote before (it holds :data:`OUT_MARKER`), else one sentence naming it and nothing is
    written; a folder that cannot be made is one sentence too. Afterwards the folder, if it now
    exists, is marked (or removed, when it was made for a view that failed before writing anything).
    ``None`` (the default folder inside the run) is not guarded."""
    if out is None:
        yield
        return
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{p}: --out names a file; give a new or empty directory")
    if p.is_dir() and not (p / OUT_MARKER).is_file() and any(p.iterdir()):
        raise ConfigError(
            f"{p}: --out already holds files that layerlab inspect did not write; give a new or empty "
            f"directory, so none of yours is overwritten"
        )
    made = not p.exists()
    if made:  # made now, so that a folder that cannot be made is one sentence before any work
        try:
            p.mkdir(parents=True)
        except OSError as e:
            raise ConfigError(f"{p}: --out cannot be made ({e.strerror or e})") from None
    done = False
    try:
        yield
        done = True
    finally:
        if not done and made and p.is_dir() and not any(p.iterdir()):
            p.rmdir()  # the view failed before writing anything: leave nothing behind
        elif p.is_dir() and not (p / OUT_MARKER).is_file():
            (p / OUT_MARKER).write_text("written by layerlab inspect; it may write here again\n")


def is_run_dir(target: str | Path) -> bool:
    """A run directory is a directory with a ``run.json``; nothing else is taken for one."""
    return (Path(target) / "run.json").is_file()


def check_target(target: str) -> None:
    """A run directory or a registered model name, else one sentence saying which it is not."""
    from ..models import list_models

    if is_run_dir(target):
        return
    if Path(target).exists():
        RunDir(target).info()  # says why it is not a run: not a directory, or no run.json in it
    if target not in list_models():
        raise ConfigError(
            f"{target!r} is neither a run directory nor a registered model (known models: {', '.join(list_models())})"
        )


@dataclass
class Fresh:
    """A registered model built fresh for a dataset (seeded), for the views that also take models."""

    model: nn.Module
    dataset: Dataset
    name: str


def fresh(
    name: str,
    data: str,
    *,
    length: int | None = None,
    sequence: str | None = None,
    hidden: int | None = None,
    layers: int | None = None,
    n: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
) -> Fresh:
    """The registered model ``name`` at its initialisation (seed ``seed``), built by the same function
    a run's model is built by, for the dataset ``data`` (only ``n`` test samples are loaded)."""
    from ..data.inputs import prepare_data
    from ..engine import seeded
    from ..models import sequence_model

    check_target(name)
    cfg = DataConfig(
        name=data,
        data_dir=data_dir,
        length=length,
        sequence=sequence,
        n_train=None if n is None else max(n, 1),
        n_test=n,
    )
    ds = prepare_data(cfg, seed=seed, sequence_model=sequence_model(name))
    with seeded(seed):
        model = build_model_for(ModelConfig(name=name, hidden=hidden, layers=layers), ds.spec, ds.num_outputs)
    return Fresh(model, ds, name)


def check_flow_options(samples: int, probes: int | None) -> None:
    """The gradient flow's ``samples`` (at least 1) and ``probes`` (0: exact, or at least 1), as the
    flags say them, before any model or data is built."""
    check_range(samples, "--samples", ge=1)
    if probes is not None:
        check_range(probes, "--probes", ge=0)


_T = TypeVar("_T")


def _out(out: str | Path | None, run: RunDir) -> Path:
    return Path(out) if out else run.path / "inspect"


def _folder(out: str | Path | None) -> Path:
    """The output folder a view without a run was given (its first check made sure)."""
    assert out is not None
    return Path(out)


def _given(value: _T | None) -> _T:
    """``value``, which the view's first check made sure was given (no run: a model and a folder)."""
    assert value is not None
    return value


# ----------------------------------------------------------------------------------------------
# Gradient flow
# ----------------------------------------------------------------------------------------------
def gradflow(
    target: str,
    *,
    data: str | None = None,
    length: int | None = None,
    sequence: str | None = None,
    hidden: int | None = None,
    layers: int | None = None,
    samples: int = 32,
    probes: int | None = None,
    weights: str | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    data_dir: str | None = None,
    run: RunDir | None = None,
    model: nn.Module | None = None,
    dataset: Dataset | None = None,
) -> dict:
    """Gradient flow through time of a run (at its initialisation and with its ``weights``) or of a
    registered recurrent model built fresh (at initialisation; needs ``data`` for the shapes).

    A caller that already holds the run's ``model`` and ``dataset`` (the report) passes them with
    ``run``. Writes ``gradflow.csv`` (weights, layer, t, grad_norm, jacobian_norm,
    jacobian_spectral), ``gradflow_fit.csv`` (decay factor per step) and ``gradflow.png`` under ``out``.
    """
    from .gradflow import gradient_flow, has_states

    check_flow_options(samples, probes)
    if run is None:
        check_target(target)
    if run is not None or is_run_dir(target):
        given = [
            f
            for f, v in (("--length", length), ("--sequence", sequence), ("--hidden", hidden), ("--layers", layers))
            if v is not None
        ]
        if given:  # a run's model and data are the run's: these options build a fresh model
            raise ConfigError(f"{' and '.join(given)} apply to a fresh MODEL, not to a run directory")
        run = run or RunDir(target)
        info = run.info()
        model = model if model is not None else run.model(weights)
        if not has_states(model):
            raise ConfigError(
                f"{run.path}: the model {info['model']['name']} is not recurrent; gradient flow "
                f"through time applies to rnn, lstm, gru, residual and article-lstm runs"
            )
        ds = dataset if dataset is not None else run.dataset(data, data_dir)
        x, y = ds.test.x[:samples], ds.test.y[:samples]
        lengths = None if ds.test.lengths is None else ds.test.lengths[:samples]
        flows = [
            gradient_flow(
                run.model("init"), x, y, task=ds.task, lengths=lengths, probes=probes, label="init", seed=seed
            ),
            gradient_flow(
                model,
                x,
                y,
                task=ds.task,
                lengths=lengths,
                probes=probes,
                label=f"trained ({run.resolve_weights(weights)})",
                seed=seed,
            ),
        ]
        title = f"{run.path.name}: {info['model']['name']} on {info['dataset']['name']}"
        out = _out(out, run)
    else:
        if not data:
            raise ConfigError(
                f"a fresh model ({target}) needs --data to know the input shape, e.g. --data adding --length 100"
            )
        f = fresh(
            target,
            data,
            length=length,
            sequence=sequence,
            hidden=hidden,
            layers=layers,
            n=samples,
            seed=seed,
            data_dir=data_dir,
        )
        if not has_states(f.model):
            raise ConfigError(
                f"{target} is not a recurrent model; gradient flow through time applies to "
                f"rnn, lstm, gru, residual and article-lstm"
            )
        ds = f.dataset
        x, y = ds.test.x[:samples], ds.test.y[:samples]
        lengths = None if ds.test.lengths is None else ds.test.lengths[:samples]
        flows = [gradient_flow(f.model, x, y, task=ds.task, lengths=lengths, probes=probes, label="init", seed=seed)]
        title = f"{target} (fresh, seed {seed}) on {ds.name}, T={ds.input_shape[0]}"
        out = Path(out) if out else Path(f"inspect-{target}") / "gradflow"
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
def _kernel_rows(name: str, w: torch.Tensor) -> list[dict]:
    """One CSV row per weight of a conv layer's kernels ``(C_out, C_in, *kernel)``: ``filter``,
    ``input_channel`` and the position in the kernel (``tap``; ``row``, ``col``; ``depth``, ``row``,
    ``col``)."""
    axes = {1: ("tap",), 2: ("row", "col"), 3: ("depth", "row", "col")}[w.dim() - 2]
    a = w.numpy()
    rows = []
    for idx in np.ndindex(*a.shape):
        r = {"layer": name, "filter": idx[0], "input_channel": idx[1]}
        r.update(zip(axes, idx[2:], strict=True))
        r["weight"] = float(a[idx])
        rows.append(r)
    return rows


def filters_view(
    run_dir: str | None,
    *,
    layer: str | None = None,
    weights: str | None = None,
    out: str | Path | None = None,
    model: nn.Module | None = None,
) -> dict:
    """The filters of one conv layer (default: the first) as a figure and a CSV of weights.

    A Conv2d's kernels are an image grid; a Conv1d's a small line plot per filter (a heatmap of
    input channel against tap when more than three channels come in); a Conv3d's a grid of filters
    against depth slices. ``run_dir`` None draws ``model`` (then ``out`` is needed)."""
    from .conv import filters

    if run_dir is None and (model is None or out is None):
        raise ConfigError("filters of a model that is not a run need the model and an output folder")
    run = RunDir(run_dir) if run_dir is not None else None
    model = model if model is not None else _given(run).model(weights)
    name, alias, w = filters(model, layer)
    title = f"{alias} ({name}): {w.shape[0]} filters of {'x'.join(map(str, w.shape[1:]))}"
    if w.dim() == 4:
        fig = plots.conv_filters(w, title)
    elif w.dim() == 3:
        fig = plots.conv_filters_1d(w, f"{title} (input channels x taps)")
    else:
        fig = plots.conv_filters_3d(w, f"{title} (input channels x depth x height x width)")
    files = save_figure(fig, _folder(out) if run is None else _out(out, run), f"filters_{alias}", _kernel_rows(name, w))
    return {
        "layer": name,
        "alias": alias,
        "shape": tuple(w.shape),
        "panels": plots.filter_panels(w.shape),
        "files": files,
    }


def _map_rows(layer: str | None, m: torch.Tensor, digits: int | None = 6) -> list[dict]:
    """One CSV row per value of maps ``(C, *S)``: ``channel``, the position (``step``; ``row``,
    ``col``; ``depth``, ``row``, ``col``) and ``value``; ``layer`` first unless None (the input)."""
    axes = {1: ("step",), 2: ("row", "col"), 3: ("depth", "row", "col")}[m.dim() - 1]
    a = m.numpy()
    rows = []
    for idx in np.ndindex(*a.shape):
        r: dict[str, object] = {} if layer is None else {"layer": layer}
        r["channel"] = idx[0]
        r.update(zip(axes, idx[1:], strict=True))
        v = float(a[idx])
        r["value"] = round(v, digits) if digits is not None else v
        rows.append(r)
    return rows


def _sample(run: RunDir, model: nn.Module, image, data_dir: str | None) -> tuple[torch.Tensor, list[str], str]:
    """The one input of a features view: a tensor as given; a file read as ``predict`` reads it
    (an image, or a sequence file for a sequence model); None: the first sample of the run's test
    data. Returns the sample, the notes on what reading it converted, and what it is in words."""
    from ..data.inputs import read_inputs

    if isinstance(image, torch.Tensor):
        return image, [], "the given input"
    spec = run.spec
    if spec.kind == "tokens":
        raise ConfigError(
            f"the model of {run.path} takes token ids of shape {spec.shape}; feature maps apply to "
            f"convolutional models of images, volumes and sequences"
        )
    if image is None:
        ds = run.dataset(data_dir=data_dir)
        return ds.test.sample(0), [], "the first test sample"
    inputs = _given(read_inputs([image], spec))  # (one file: never None)
    x = inputs.x[0]
    if inputs.lengths is not None:
        x = x[: inputs.length(0)]
    return x, inputs.notes[0], str(image)


def features_view(
    run_dir: str | None,
    image: str | Path | torch.Tensor | None = None,
    *,
    weights: str | None = None,
    out: str | Path | None = None,
    model: nn.Module | None = None,
    data_dir: str | None = None,
) -> dict:
    """Feature maps of every conv/pool layer for one input: an image file (read as ``predict``
    reads it: through the run's input spec), a sequence file for a sequence model, a tensor (one
    sample as the model takes it), or None: the first sample of the run's test data.

    2-D maps are drawn as an image mosaic per layer; 1-D maps as a heatmap of channel against
    time step; 3-D maps as a grid of channels against depth slices. ``run_dir`` None draws
    ``model`` for the tensor ``image`` (then ``out`` is needed)."""
    from .conv import conv_layers, feature_maps

    if run_dir is None and (model is None or out is None or not isinstance(image, torch.Tensor)):
        raise ConfigError("feature maps of a model that is not a run need the model, an input tensor and a folder")
    run = RunDir(run_dir) if run_dir is not None else None
    model = model if model is not None else _given(run).model(weights)
    if not conv_layers(model):
        where = f"the model of {run.path}" if run is not None else type(model).__name__
        raise ConfigError(
            f"{where} has no conv layer (it is not a convolutional model); feature maps apply to cnn and article-cnn"
        )
    out = _folder(out) if run is None else _out(out, run)
    x, notes, what = (
        _sample(run, model, image, data_dir) if run is not None else (cast(torch.Tensor, image), [], "the given input")
    )
    maps = feature_maps(model, x)
    # the input as its maps are drawn, channels first: layerlab's sequence CNN reads (T, F) as F channels
    shown = x.transpose(0, 1) if x.dim() == 2 and contract.steps_first(model) else x
    shown = shown.detach().float().cpu()
    if shown.dim() == 3:
        fig = plots.feature_maps(shown, "input image")
    elif shown.dim() == 2:
        fig = plots.feature_maps_1d(shown, "input sequence")
    else:
        fig = plots.feature_maps_3d(shown, "input volume")
    files = {"input": save_figure(fig, out, "features_input", _map_rows(None, shown, None))}
    layers = []
    for fm in maps:
        m = fm.maps
        if m.dim() == 3:
            fig = plots.feature_maps(m, fm.label, image=shown)
        elif m.dim() == 2:
            fig = plots.feature_maps_1d(m, fm.label, sequence=shown)
        else:
            fig = plots.feature_maps_3d(m, fm.label)
        files[fm.alias] = save_figure(fig, out, f"features_{fm.alias}", _map_rows(fm.name, m))
        layers.append(
            {
                "layer": fm.name,
                "alias": fm.alias,
                "label": fm.label,
                "shape": tuple(m.shape),
                "panels": plots.map_panels(m.shape),
            }
        )
    return {"layers": layers, "files": files, "notes": notes, "image": x, "input": what}


def summary_view(
    target: str,
    *,
    input_shape: tuple | None = None,
    outputs: int | None = None,
    data: str | None = None,
    length: int | None = None,
    hidden: int | None = None,
    layers: int | None = None,
    out: str | Path | None = None,
    write: bool = True,
    model: nn.Module | None = None,
) -> dict:
    """The model summary of a run or of a registered model (built for ``data``, for
    ``input_shape``, or for the article's input when the model has it)."""
    from ..models import create_model, has_default_input
    from .summary import summarize

    check_target(target)
    if is_run_dir(target):
        run = RunDir(target)
        model = model if model is not None else run.model()
        shape = tuple(run.spec.shape)
        name = run.info()["model"]["name"]
        out = _out(out, run)
    else:
        if data:
            f = fresh(target, data, length=length, hidden=hidden, layers=layers, n=2)
            model, shape = f.model, tuple(f.dataset.input_shape)
        else:
            options: dict[str, Any] = {k: v for k, v in (("hidden", hidden), ("layers", layers)) if v is not None}
            if input_shape is None and outputs is None:
                if has_default_input(target):
                    model = create_model(target, **options)  # the article's models know the article's input
                else:
                    raise ConfigError(
                        f"{target} has no default input shape; give --input-shape (such as "
                        f"28,28 for a recurrent model) or --data NAME"
                    )
            else:
                model = create_model(target, input_shape or (1, 28, 28), outputs or 10, **options)
            shape = _given(contract.input_shape(model, tuple(input_shape or (1, 28, 28))))  # (a default given)
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
CONFUSION_CORNER = "true \\ predicted"  # confusion.csv's first header cell: rows are true classes


def curves_view(run_dir: str, *, out: str | Path | None = None) -> dict:
    from .evaluation import curve_rows

    run = RunDir(run_dir)
    run.info()
    rows = curve_rows(run)
    cols = [c for c in CURVE_COLUMNS if any(r.get(c) is not None for r in rows)]
    files = save_figure(plots.training_curves(rows, run.path.name), _out(out, run), "curves", rows, cols)
    return {"rows": rows, "files": files}


def errors_view(
    run_dir: str,
    *,
    weights: str | None = None,
    out: str | Path | None = None,
    k: int = 16,
    model: nn.Module | None = None,
    ds: Dataset | None = None,
) -> dict:
    """Confusion matrix, per-class precision/recall and the most confidently wrong test samples."""
    from .evaluation import classification_views, predict_test

    run = RunDir(run_dir)
    model = model if model is not None else run.model(weights)
    ds = ds if ds is not None else run.dataset()
    pred = predict_test(model, ds)
    views = classification_views(pred)
    out = _out(out, run)
    classes = pred.classes
    cm, sc = views["confusion"], views["scores"]
    files = {
        "confusion": save_figure(
            plots.confusion(cm, classes),
            out,
            "confusion",
            # one row per true class, one column per predicted class (by position, so a class may
            # be called "true" or share a name with another)
            [[classes[i], *(int(cm[i, j]) for j in range(len(classes)))] for i in range(len(classes))],
            [CONFUSION_CORNER, *classes],
        )
    }
    score_rows = [
        {
            "class": classes[i],
            "precision": round(float(sc["precision"][i]), 6),
            "recall": round(float(sc["recall"][i]), 6),
            "f1": round(float(sc["f1"][i]), 6),
            "support": int(sc["support"][i]),
        }
        for i in range(len(classes))
    ]
    files["scores"] = save_figure(plots.class_scores(sc, classes), out, "class_scores", score_rows)
    ms = views["mistakes"][:k]
    names = getattr(ds.test, "names", None)
    if names is not None and len(names) == len(pred.y):  # the file (or row of one) each sample came from
        for m in ms:
            m["source"] = str(names[m["index"]])
    if ms:
        samples = [pred.x[m["index"]] for m in ms]
        rows = [
            {
                "rank": r + 1,
                "test_index": m["index"],
                **({"source": m["source"]} if "source" in m else {}),
                "true": classes[m["true"]],
                "predicted": classes[m["predicted"]],
                "confidence": round(m["confidence"], 6),
                "p_true": round(m["p_true"], 6),
            }
            for r, m in enumerate(ms)
        ]
        files["mistakes"] = save_figure(plots.mistakes(samples, ms, classes), out, "mistakes", rows)
    return {
        "accuracy": views["accuracy"],
        "n": views["n"],
        "scores": score_rows,
        "mistakes": ms,
        "files": files,
        "confusion": cm,
        "classes": classes,
    }
