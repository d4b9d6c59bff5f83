"""ONNX export of a run's model, checked with onnxruntime.

``export_run(RUN_DIR)`` writes ``model.onnx`` (input ``input``, output ``logits``): one
self-contained file whose ``metadata_props`` hold the run's input spec (and for permuted-pixel runs
the permutation itself), its class names, the task and how the outputs are decoded, the model's
name and options, the weights used, the layerlab version and the export's check
(:func:`layerlab.deploy.metadata_props` lists the keys). ``layerlab predict --onnx model.onnx
FILES`` (:mod:`layerlab.deploy`) needs nothing else, and neither torch: onnxruntime, NumPy and
Pillow. No JSON file is written beside it any more: nothing read it, and a copy beside the model
could go stale. The export is checked at once: the same samples of the run's data go through torch
and onnxruntime and the largest difference is recorded.

Axes: the batch is always dynamic; so are the spatial axes of a CNN with a global pool (it takes
any size) and the time axis of a recurrent model (it takes any length). A CNN with a Flatten head
is fixed to the size it was built for.

Exporter: torch's TorchScript-based exporter (``dynamo=False``) by default. The torch.export-based
one (``exporter="dynamo"``, torch's default since 2.9, needs ``onnxscript``) is there too, but with
torch 2.13 it fixes the length of a 1-D CNN's input at the example's (``MaxPool1d`` specialises it)
and takes 2-15 s per model against well under one; the TorchScript one exports every layerlab model
(CNNs 1-D/2-D/3-D, ``rnn``, ``lstm``, ``gru``, ``residual``) with the axes above.

Not exported: ``lengths``. The ONNX model reads whole batches, so sequences of different lengths
are run one length at a time (``predict --onnx`` does so), never padded, which a masked CNN or a
packed RNN would have left out.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .choices import EXPORTERS
from .decoding import decode_kind
from .deploy import metadata_props
from .errors import ConfigError, LayerlabError
from .models import contract
from .rundir import RunDir

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17  # onnxruntime 1.17+ runs it; both exporters write it
CHECK_SAMPLES = 16


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise LayerlabError(
            f"ONNX export needs {' and '.join(missing)}, which is not installed; "
            f"pip install 'layerlab[onnx]' (or pip install {' '.join(missing)})"
        )


def dynamic_axes(model: torch.nn.Module, ndim: int) -> dict[int, str]:
    """The input axes (of ``ndim``, batch included) that may change size: the batch; the spatial
    axes of a CNN ending in a global pool; the time axis of a recurrent model on torch's fused layers
    (not the residual cell's loop, which the exporter unrolls)."""
    axes = {0: "batch"}
    if contract.any_size(model):  # a CNN ending in a global pool
        spatial = [1] if contract.steps_first(model) else list(range(2, ndim))
        axes.update({i: f"size{i}" for i in spatial})
    elif contract.input_kind(model) in contract.INPUT_KINDS and not contract.loops_in_python(model):
        # a recurrent model on torch's fused layers: any length (a cell of ours runs a Python loop that
        # the exporter unrolls for the example's T, so its time axis stays fixed)
        axes[1] = "time"
    return axes


def preprocess_text(spec) -> str:
    """How raw input becomes the ONNX model's input, in words (the metadata's ``preprocess``)."""
    if spec.kind in ("image", "volume"):
        axes = "(N, C, H, W)" if spec.kind == "image" else "(N, C, D, H, W)"
        if spec.pixel_scale is not None:
            scale = f"each 8-bit value times {spec.pixel_scale:g} (x / 255: values in [0, 1])"
        else:
            scale = "values as the training arrays held them"
        size = "the largest training size" if spec.variable_size else "the size"
        return f"{spec.kind}s as float32 {axes}, channels first, {scale}; {size}: {list(spec.shape)}"
    if spec.kind == "tokens":
        return "int64 token ids (N, T); character i of `input_spec.vocab` is id i"
    text = "float32 sequences (N, T, F), steps first"
    if spec.image_shape is not None and spec.sequence:
        text = (
            f"images read as sequences ({spec.sequence}): the image (C, H, W) in [0, 1] (x / 255) as "
            f"{'its rows (H, W*C)' if spec.sequence == 'rows' else 'its pixels (H*W, C)'}"
            + (", in the fixed order the metadata's permutation holds" if spec.sequence == "permuted" else "")
            + "; float32 (N, T, F)"
        )
    if spec.feature_mean is not None:
        text += (
            "; each feature standardised as (x - input_spec.feature_mean) / input_spec.feature_std, missing values 0"
        )
    if spec.variable_length:
        text += "; sequences of different lengths one at a time (the ONNX model takes no lengths)"
    return text


def _check_inputs(run: RunDir, spec, model: torch.nn.Module) -> tuple[torch.Tensor, str]:
    """Up to :data:`CHECK_SAMPLES` samples of the run's test data (the model's input as the run
    prepares it), or random ones of the spec's shape when the data cannot be read here."""
    try:
        x = run.dataset().test.x[:CHECK_SAMPLES]
        return x, "test data"
    except LayerlabError as e:
        log.warning("checking the export on random inputs: the run's data cannot be read (%s)", e)
    g = torch.Generator().manual_seed(0)
    if spec.kind == "tokens":
        n = int(run.info()["dataset"]["num_outputs"])
        return torch.randint(0, n, (4, *spec.shape), generator=g), "random inputs"
    return torch.rand(4, *spec.shape, generator=g), "random inputs"


def export_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    which: str | None = None,
    opset: int | None = None,
    *,
    exporter: str = "torchscript",
) -> dict:
    """Write the run's model as ONNX (``out``, default ``RUN_DIR/model.onnx``), its metadata inside
    it (see the module docstring); check it with onnxruntime on samples of the run's data.

    Args:
        run_dir: a run directory.
        out: the ``.onnx`` file to write.
        which: weights, ``auto`` (default), ``best``, ``last`` or ``init``.
        opset: the ONNX opset (default :data:`DEFAULT_OPSET`).
        exporter: ``torchscript`` (default) or ``dynamo`` (see the module's docstring).

    Returns:
        What the file's metadata holds (unencoded), plus ``format``, ``file``, ``opset`` and
        ``onnx`` (the path written).

    Raises:
        ConfigError: an unknown exporter, a bad ``out`` or ``opset``.
        LayerlabError: onnx or onnxruntime not installed, a model the exporter cannot export, or
            outputs onnxruntime does not reproduce; no file is left behind.
    """
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown exporter {exporter!r}; expected torchscript or dynamo")
    _require("onnx", "onnxruntime", *(["onnxscript"] if exporter == "dynamo" else []))
    import onnx
    import onnxruntime as ort

    run = RunDir(run_dir)
    used = run.resolve_weights(which)
    model = run.model(used).float().eval()
    spec = run.spec
    info = run.info()
    out = Path(out) if out is not None else run.path / "model.onnx"
    if out.suffix != ".onnx":
        raise ConfigError(f"--out {out}: an ONNX file is named *.onnx")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist")
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if not 9 <= opset <= onnx.defs.onnx_opset_version():
        raise ConfigError(f"--opset must be between 9 and {onnx.defs.onnx_opset_version()}, got {opset}")

    x, source = _check_inputs(run, spec, model)
    axes = dynamic_axes(model, x.dim())
    example = x[:2] if len(x) >= 2 else torch.cat([x, x])  # a batch of 1 would be fixed at 1
    cfg = run.config()
    task = info["dataset"].get("task")
    record = {
        "layerlab_version": __version__,
        "model": cfg.model.name,
        "model_options": cfg.model.options(),
        "weights": used,
        "task": task,
        "decode": decode_kind(task, spec.head, spec.vocab),
        "classes": run.classes,
        "num_outputs": int(info["dataset"]["num_outputs"]),
        "input_spec": spec.to_dict(),
        # torch's randperm is not NumPy's: the order itself, so that a reader needs no torch
        "permutation": None if spec.permutation is None else [int(i) for i in spec.permutation],
        "input": {
            "name": "input",
            "dtype": "int64" if spec.kind == "tokens" else "float32",
            "shape": [axes.get(i, int(s)) for i, s in enumerate(x.shape)],
        },
        "output": {"name": "logits", "meaning": _output_text(task, spec)},
        "preprocess": preprocess_text(spec),
        "min_size": contract.min_size(model) if len(axes) > 1 and spec.kind != "sequence" else None,
        "exporter": exporter,
        "torch": torch.__version__,
    }
    tmp = out.with_name(out.name + ".tmp")
    try:
        _export(model, example, tmp, opset, axes, exporter)
        _set_metadata(onnx, tmp, record)
        onnx.checker.check_model(str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            want = model(x).numpy()
        diff = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
        record["check"] = {
            "samples": int(x.shape[0]),
            "on": source,
            "max_abs_diff": diff,
            "onnxruntime": ort.__version__,
        }
        _set_metadata(onnx, tmp, {"check": record["check"]})  # a metadata string more: the graph is as checked
    except LayerlabError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as e:  # the exporter's and onnxruntime's own errors, as one sentence
        tmp.unlink(missing_ok=True)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise LayerlabError(
            f"{run.path}: {info['model']['name'] if isinstance(info.get('model'), dict) else 'the model'} "
            f"could not be exported to ONNX with the {exporter} exporter ({type(e).__name__}: {first})"
        ) from None
    tmp.replace(out)  # a complete file or none: the check ran on what is now in place
    _remove_old_sidecar(out)
    log.info("exported %s to %s (max abs diff %.3g on %d samples)", run.path, out, diff, x.shape[0])
    return {**record, "format": "onnx", "file": out.name, "opset": opset, "onnx": str(out)}


def _set_metadata(onnx, path: Path, values: dict) -> None:
    """Add (or replace) ``values`` in the ``metadata_props`` of the ONNX file ``path``, in place."""
    m = onnx.load(str(path))
    props = {p.key: p.value for p in m.metadata_props}
    props.update(metadata_props(values))
    del m.metadata_props[:]
    onnx.helper.set_model_props(m, props)
    onnx.save(m, str(path))


def _remove_old_sidecar(out: Path) -> None:
    """Remove the ``model.json`` an earlier layerlab wrote beside ``out`` (it would now be stale);
    only a file that says it describes ``out`` is removed."""
    old = out.with_suffix(".json")
    try:
        record = json.loads(old.read_text())
    except (OSError, ValueError):
        return
    if isinstance(record, dict) and record.get("format") == "onnx" and record.get("file") == out.name:
        old.unlink(missing_ok=True)


def _output_text(task: str | None, spec) -> str:
    per = "per step (N, T, K)" if spec.head == "step" else "(N, K)"
    if task == "regression":
        return f"predicted values {per}"
    return f"logits {per}; softmax gives probabilities, output i is classes[i]"


def _export(model, example: torch.Tensor, path: Path, opset: int, axes: dict[int, str], exporter: str) -> None:
    out_axes = {0: "batch"}
    if contract.head(model) == "step" and 1 in axes:
        out_axes[1] = axes[1]
    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        # the TorchScript exporter warns that it is the legacy one on every call: a known choice here
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # torch warns that a GRU/LSTM exported at batch 2 may fail at other sizes: the check runs 16
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        # the two exporters name the dynamic axes differently; everything else is the same call
        dynamic: dict[str, Any]
        if exporter == "torchscript":
            dynamic = {"dynamic_axes": {"input": axes, "logits": out_axes}, "dynamo": False}
        else:
            from torch.export import Dim

            dynamic = {"dynamic_shapes": ({i: Dim.DYNAMIC for i in axes},), "dynamo": True, "external_data": False}
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            opset_version=opset,
            **dynamic,
        )
