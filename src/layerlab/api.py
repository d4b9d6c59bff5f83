"""The public API: train, resume, evaluate, predict and generate, one function each. The CLI only
parses arguments, calls these and renders what they return. For notebooks, :func:`fit`,
:func:`evaluate` and :func:`predict` take arrays, as Keras's ``model.fit`` does.

Everything after training reads the run directory (:class:`~layerlab.rundir.RunDir`): its model,
its input spec and its data, so no function here rebuilds them.
"""

from __future__ import annotations

import copy
import logging
import numbers
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import torch.nn as nn

from . import decoding, distributed, engine
from .checkpoint import atomic_write_text
from .config import ModelConfig, RunConfig, TrainConfig, check_model_options
from .data import Dataset, Split, arrays, known_datasets
from .data.inputs import read_inputs
from .data.transforms import InputSpec
from .errors import ConfigError, DataError, LayerlabError
from .models import contract, create_model, model_options, sequence_model, trust_module
from .preflight import check_runtime_options, checked_resume_threads
from .rundir import RunDir, build_model_for, check_fingerprint, data_fingerprint, default_run_path

log = logging.getLogger(__name__)


def build_model(
    name: str, input_shape: tuple[int, ...] | None = None, num_outputs: int | None = None, **options
) -> nn.Module:
    """A registered model (see ``layerlab models``) for samples of ``input_shape``; without shapes,
    the article's models get the article's (28x28 grey images, 10 classes). A ``package.module:factory``
    name given here is the user's, so its module may be imported (:func:`layerlab.models.trust_module`)."""
    if isinstance(name, str):
        trust_module(name)
    return create_model(name, input_shape, num_outputs, **options)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (a frozen bias, like the LSTM's second one, is not counted: Keras has none)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def prepare_data(cfg: RunConfig) -> Dataset:
    """Load the dataset a config names (read as sequences for a recurrent model), with the
    validation split it asks for."""
    from .data.inputs import prepare_data as _prepare

    return _prepare(
        cfg.data, seed=cfg.train.seed, sequence_model=sequence_model(cfg.model.name), any_size=cfg.model.any_size
    )


def dataset_info(ds: Dataset) -> dict:
    return {
        "name": ds.name,
        "task": ds.task,
        "classes": ds.classes,
        "num_outputs": ds.num_outputs,
        "input_shape": list(ds.input_shape),
        "n_train": len(ds.train),
        "n_test": len(ds.test),
        "source": ds.source,
        **({"meta": ds.meta} if ds.meta else {}),
    }


def _setup_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def train(
    cfg: RunConfig,
    out: str | Path | None = None,
    *,
    progress: engine.Progress | None = None,
    dataset: Dataset | None = None,
    overwrite: bool = False,
    callbacks: list | None = None,
) -> tuple[RunDir, engine.FitResult]:
    """Build the model and data a config names, train it, and keep everything in a run directory.
    ``callbacks`` (:mod:`layerlab.callbacks`) go to :func:`layerlab.engine.fit`.

    Under ``torchrun`` with several processes (:mod:`layerlab.distributed`) every rank calls this;
    rank 0 alone writes ``out`` and the others return ``(None, result)``."""
    cfg.validate()
    check_model_options(cfg.model)  # before minutes of data loading, not after
    if cfg.data.name not in known_datasets() and Path(cfg.data.name).expanduser().exists():
        cfg.data.name = str(Path(cfg.data.name).expanduser().resolve())  # so the run finds it from any directory
    out = Path(out) if out else default_run_path(cfg.model.name, cfg.data.name)
    ctx = distributed.context()
    if not overwrite and (ctx is None or ctx.is_main):
        RunDir.check_new(out)
    if ctx is None:
        return _train(cfg, out, None, progress, dataset, overwrite, callbacks)
    distributed.start(ctx)
    try:
        return _train(cfg, out, ctx, progress, dataset, overwrite, callbacks)
    finally:
        distributed.stop()


def run_info(cfg: RunConfig, model: nn.Module, ds: Dataset, device) -> dict:
    """What ``run.json`` records of a new run (``train`` and ``fit`` with a ``run_dir`` alike)."""
    return {
        "model": {"name": cfg.model.name, "options": cfg.model.options(), "parameters": count_parameters(model)},
        "dataset": dataset_info(ds),
        "input_spec": ds.spec.to_dict(),
        "seed": cfg.train.seed,
        "device": str(device),
        # which split chose the `best` weights: a validation split, or none (never the test set)
        "selection": "validation" if engine.held_out_prefix(ds) == "val_" else None,
        "data_fingerprint": data_fingerprint(ds),
    }


def check_sizes(model: nn.Module, split: Split, name: Callable[[int], str]) -> None:
    """An error naming the first sample of ``split`` smaller than ``model`` reads (a CNN's
    ``min_size`` on each side; models without one take what they were built for)."""
    need = contract.min_size(model)
    if need is None or split.x.dim() < 4:
        return
    sizes = split.sizes if split.sizes is not None else torch.tensor([list(split.x.shape[2:])] * len(split))
    small = (sizes < need).any(dim=1)
    if bool(small.any()):
        i = int(torch.nonzero(small)[0])
        size = "x".join(str(v) for v in sizes[i].tolist())
        raise DataError(f"{name(i)} is {size}; this model needs at least {need} on each side (its convs and pools)")


def _train(cfg: RunConfig, out: Path, ctx, progress, dataset, overwrite, callbacks):
    _setup_threads(cfg.train.threads)
    device = engine.resolve_device(cfg.train.device)
    if ctx is not None:
        device = distributed.rank_device(ctx, device)
    check_runtime_options(cfg.train, device, ctx)  # a refused option leaves no run directory
    engine.seed_everything(cfg.train.seed)
    ds = dataset if dataset is not None else prepare_data(cfg)
    if ctx is not None:  # before the run directory exists: a bad batch leaves nothing half-made
        distributed.check_batch(cfg.train.batch_size, len(ds.train), ctx.world_size)
    model = build_model_for(cfg.model, ds.spec, ds.num_outputs).to(device)
    for part, split in (("training", ds.train), ("test", ds.test)):
        if split.sizes is not None:
            check_sizes(model, split, lambda i, part=part: f"{ds.source or ds.name}: {part} image {i}")
    info = run_info(cfg, model, ds, device)
    if ctx is None:
        run = RunDir.create(out, cfg, info, overwrite=overwrite)  # takes the run's lock
        return run, _fit_and_record(run, model, ds, cfg, progress, **_callbacks_kw(callbacks))
    info["distributed"] = distributed.record(ctx, device, info["data_fingerprint"])
    made: list[RunDir] = []
    distributed.from_main(ctx, lambda: made.append(RunDir.create(out, cfg, info, overwrite=overwrite)))
    run = made[0] if made else None
    return run, _fit_and_record(run, model, ds, cfg, progress, dist=ctx, **_callbacks_kw(callbacks))


_HOOKS = ("on_train_begin", "on_epoch_begin", "on_step_end", "on_epoch_end", "on_train_end", "close")


def _callbacks_kw(callbacks: list | None) -> dict:
    # only when there are some: engine.fit without them is the same fit
    if callbacks:
        check_callbacks(callbacks)
    return {"callbacks": list(callbacks)} if callbacks else {}


def check_callbacks(callbacks) -> None:
    """One sentence, before training, for a callback the loop could not call: one that is not a
    :class:`~layerlab.callbacks.Callback` and lacks a hook or ``every_n_steps`` (an AttributeError
    in the middle of training would hide what stopped it, a Ctrl-C included), or whose
    ``every_n_steps`` is not a whole number of at least 1 (or None)."""
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        raise ConfigError(f"callbacks must be a list of callbacks, got {type(callbacks).__name__}")
    for i, cb in enumerate(callbacks):
        name = type(cb).__name__
        missing = [h for h in (*_HOOKS, "every_n_steps") if not hasattr(cb, h)]
        if missing:
            raise ConfigError(
                f"callbacks[{i}] ({name}) has no {', '.join(missing)}; subclass layerlab.callbacks.Callback, "
                f"whose hooks do nothing unless overridden"
            )
        uncallable = [h for h in _HOOKS if not callable(getattr(cb, h))]
        if uncallable:
            raise ConfigError(f"callbacks[{i}] ({name}): {', '.join(uncallable)} is not a method")
        n = cb.every_n_steps
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
            raise ConfigError(
                f"callbacks[{i}] ({name}): every_n_steps must be a whole number of at least 1 or None, got {n!r}"
            )


def check_model_fits(model: nn.Module, ds: Dataset) -> None:
    """One sentence, before anything is written, for a model object that cannot train on ``ds``:
    no trainable parameters, an error on the data's samples (a wrong input size), or outputs that
    do not match the data's classes or targets. Runs the model in eval mode on two training
    samples, with no gradient (no weight, buffer or random stream changes)."""
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"the model ({type(model).__name__}) has no trainable parameters; fit has nothing to train")
    was_training = model.training
    probe = ds.train.subset(torch.arange(min(2, len(ds.train))))
    try:
        out = engine.predict_logits(model, probe, batch_size=2, device=next(model.parameters()).device)
    except LayerlabError:
        raise
    except Exception as e:
        raise DataError(
            f"the model ({type(model).__name__}) cannot read the training samples of shape {tuple(ds.spec.shape)} "
            f"({type(e).__name__}: {' '.join(str(e).split())})"
        ) from None
    finally:
        model.train(was_training)
    if ds.task == "regression":
        got = out[0].numel()
        if got != ds.num_outputs:
            raise ConfigError(
                f"the model gives {got} value(s) per sample, the targets have {ds.num_outputs}; give it "
                f"{ds.num_outputs} output(s)"
            )
        return
    if out.shape[-1] != ds.num_outputs or out.dim() != (2 if ds.train.y.dim() == 1 else 3):
        raise ConfigError(
            f"the model gives outputs of shape {tuple(out.shape[1:])} per sample, the data has {ds.num_outputs} "
            f"classes; give it a head of {ds.num_outputs} outputs"
        )


def resume(
    run_dir: str | Path,
    *,
    epochs: int | None = None,
    threads: int | None = None,
    data_dir: str | None = None,
    checkpoint_every: int | None = None,
    progress: engine.Progress | None = None,
    dataset: Dataset | None = None,
) -> tuple[RunDir, engine.FitResult]:
    """Continue a run from its last checkpoint, exactly: same weights, optimizer moments, RNG
    streams and shuffle order (mid-epoch too) as if it had never stopped. Only what does not change
    the result may differ: more ``epochs``, ``threads`` (on a CPU run only its own count), where the data is found
    (``data_dir``), how often it is saved (``checkpoint_every``). The run is locked while it trains;
    a run another live process writes is an error, and so is data that differs from the data it was
    trained on (its fingerprint).

    Under ``torchrun`` with several processes every rank calls this: rank 0 locks and reads the run
    and gives the others its config and training state (the weights follow with DDP's first
    broadcast); they never open the run directory and return ``(None, result)``. Any world size may
    resume any run (see README, "Training on several processes or machines")."""
    ctx = distributed.context()
    if ctx is None:
        run = RunDir(run_dir)
        info = run.info()
        run.acquire_lock()
        try:
            cfg, state = _read_for_resume(run, info, epochs, threads, data_dir, checkpoint_every)
            return _resume_locked(run, info, cfg, state, progress, dataset, None)
        finally:
            run.release_lock()
    distributed.start(ctx)
    run = RunDir(run_dir) if ctx.is_main else None
    locked = False
    try:

        def read():
            nonlocal locked
            info = run.info()
            run.acquire_lock()
            locked = True
            return (info, *_read_for_resume(run, info, epochs, threads, data_dir, checkpoint_every))

        info, cfg, state = distributed.from_main(ctx, read)
        return _resume_locked(run, info, cfg, state, progress, dataset, ctx)
    finally:
        if locked:
            run.release_lock()
        distributed.stop()


def _read_for_resume(run: RunDir, info: dict, epochs, threads, data_dir, checkpoint_every):
    """The config to continue with (the allowed overrides applied) and the checkpoint's training
    state (None: no checkpoint yet), read under the run's lock."""
    run.clean_leftovers(locked=True)
    cfg = run.config()
    if checkpoint_every is not None:
        cfg.train.checkpoint_every = checkpoint_every
    if epochs is not None:
        cfg.train.epochs = epochs
    if threads is not None:
        cfg.train.threads = checked_resume_threads(cfg.train, info, threads)
    if data_dir is not None:
        cfg.data.data_dir = data_dir
    if not run.has_checkpoint():
        return cfg, None
    state = run.training_state()
    # a run killed after its last checkpoint but before it recorded the end resumes to record it
    done = state["epoch"] > cfg.train.epochs or (
        state["epoch"] == cfg.train.epochs and info.get("status") == "completed"
    )
    if done:
        raise ConfigError(
            f"{run.path} already trained {state['epoch']} epochs; pass --epochs N with N > {state['epoch']}"
        )
    return cfg, state


def _resume_locked(run: RunDir | None, info: dict, cfg: RunConfig, state: dict | None, progress, dataset, ctx):
    """Continue from ``state``; ``run`` is None on the ranks other than rank 0 of a torchrun job."""
    _setup_threads(cfg.train.threads)
    device = engine.resolve_device(cfg.train.device)
    if ctx is not None:
        device = distributed.rank_device(ctx, device)
    check_runtime_options(cfg.train, device, ctx)  # refused before the run is marked running
    if state is None:  # killed before its first checkpoint: train again from the seed, as train did
        return run, _restart(run, info, cfg, device, progress, dataset, ctx)
    ds = dataset if dataset is not None else prepare_data(cfg)
    fields = _check_resumed_data(run, info, cfg, ds, device, ctx)
    if run is None:  # DDP broadcasts rank 0's weights when it wraps the model: these are placeholders
        model = build_model_for(cfg.model, ds.spec, ds.num_outputs).to(device).train()
    else:
        run.write_metrics(state["history"])  # metrics.csv says what the checkpoint holds, nothing newer
        model = run.model("last", device).train()
    if cfg.train.channels_last and any(p.dim() == 4 for p in model.parameters()):
        model = model.to(memory_format=torch.channels_last)
    optimizer = engine.make_optimizer(model, cfg.train, device)
    optimizer.load_state_dict(state["optimizer"])
    RunDir.restore_rng(state)
    position = None
    if state["step"]:
        position = engine.EpochPosition(state["step"], state["train_stats"], list(state["grad_norms"]))
    fields["resumed_from_epoch"] = state["epoch"]
    if state["step"]:
        fields["resumed_from_step"] = state["step"]
    if run is not None:
        _write_config(run, cfg)
        run.update_info(status="running", **fields)
    return run, _fit_and_record(
        run,
        model,
        ds,
        cfg,
        progress,
        optimizer=optimizer,
        start_epoch=state["epoch"],
        history=state["history"],
        position=position,
        prior_seconds=info.get("train_wall_seconds", 0.0),
        **({"dist": ctx} if ctx is not None else {}),
    )


def _write_config(run: RunDir, cfg: RunConfig) -> None:
    """Write the config a resumed run goes on with; its own arrays stay named relative to the run."""
    saved = copy.deepcopy(cfg)
    saved.data.name = arrays.run_relative(run.path, cfg.data.name)
    atomic_write_text(run.path / "config.toml", saved.to_toml())


def _check_resumed_data(run: RunDir | None, info: dict, cfg: RunConfig, ds: Dataset, device, ctx) -> dict:
    """Check that the data is what the run was trained on (on every rank of a torchrun job: each
    against rank 0, rank 0 against the record) and return run.json's new ``distributed`` field."""
    fingerprint = data_fingerprint(ds)
    fields: dict = {}
    if ctx is not None:
        distributed.check_batch(cfg.train.batch_size, len(ds.train), ctx.world_size)
        fields["distributed"] = distributed.record(ctx, device, fingerprint)
    elif "distributed" in info:  # a DDP run continued by one process
        fields["distributed"] = None

    def check() -> None:
        if "data_fingerprint" in info:  # runs of older layerlab versions have none to check
            check_fingerprint(run.path, info["data_fingerprint"], fingerprint)

    if ctx is None:
        check()
    else:  # every rank stops with rank 0's sentence, none waits in a collective
        distributed.from_main(ctx, check)
    return fields


def _restart(run: RunDir | None, info: dict, cfg: RunConfig, device, progress, dataset, ctx) -> engine.FitResult:
    """Train a run that has no checkpoint yet from the start, exactly as :func:`train` would have."""
    engine.seed_everything(cfg.train.seed)
    ds = dataset if dataset is not None else prepare_data(cfg)
    fields = _check_resumed_data(run, info, cfg, ds, device, ctx)
    model = build_model_for(cfg.model, ds.spec, ds.num_outputs).to(device)
    fields["resumed_from_epoch"] = 0
    if run is not None:
        _write_config(run, cfg)
        (run.path / "metrics.csv").unlink(missing_ok=True)
        run.update_info(status="running", **fields)
    return _fit_and_record(run, model, ds, cfg, progress, **({"dist": ctx} if ctx is not None else {}))


def _fit_and_record(run: RunDir | None, model, ds, cfg, progress, prior_seconds: float = 0.0, **kw) -> engine.FitResult:
    """Fit, then record how it ended in run.json: ``completed``, ``interrupted`` (Ctrl-C, SIGTERM) or
    ``failed`` (with the error), so ``status`` never stays ``running``; the lock goes either way.
    Without a run (a rank other than rank 0 of a torchrun job) it only fits."""
    if run is None:
        return engine.fit(model, ds, cfg.train, run=None, progress=progress, **kw)
    t0 = time.perf_counter()
    try:
        try:
            result = engine.fit(model, ds, cfg.train, run=run, progress=progress, **kw)
        except KeyboardInterrupt as e:
            run.finish("interrupted", train_wall_seconds=prior_seconds + time.perf_counter() - t0)
            e.run_note = f"{run.kept()} in {run.path}"  # for the CLI's message
            raise
        except BaseException as e:
            run.finish("failed", error=str(e), train_wall_seconds=prior_seconds + time.perf_counter() - t0)
            raise
        wall = prior_seconds + time.perf_counter() - t0
        last = result.history[-1] if result.history else {}
        summary = {"epochs": len(result.history), "wall_seconds": round(wall, 2), "final": last}
        if cfg.train.amp:  # asked for; whether it ran (a CPU without bf16 hardware trains in fp32)
            summary["amp_in_effect"] = result.amp
        if result.graph_capture_seconds is not None:  # --cuda-graph: before epoch 1, outside its seconds
            summary["graph_capture_seconds"] = round(result.graph_capture_seconds, 3)
        if result.best_epoch:  # chosen on the validation split; without one nothing is chosen
            summary["best_epoch"] = result.best_epoch
            summary["best"] = next((r for r in result.history if r["epoch"] == result.best_epoch), {})
        run.write_summary(summary)
        run.finish("completed", train_wall_seconds=round(wall, 2))
        return result
    finally:
        run.release_lock()


# ----------------------------------------------------------------------------------------------
# After training: everything reads a run directory
# ----------------------------------------------------------------------------------------------
def load_run(run_dir: str | Path, which: str | None = None, device: str = "cpu") -> tuple[nn.Module, RunDir, dict]:
    """The trained model of a run (``best``, ``last`` or ``init`` weights; None or ``auto``: ``best``
    when a validation split chose it, else ``last``), its RunDir and run.json (with ``weights_used``)."""
    run = RunDir(run_dir)
    info = run.info()
    info["weights_used"] = run.resolve_weights(which)
    return run.model(which, device), run, info


def evaluate_run(
    run_dir: str | Path,
    *,
    data: str | None = None,
    data_dir: str | None = None,
    which: str | None = None,
    device: str = "cpu",
    per_sample: bool = False,
) -> dict:
    """Test-set loss, accuracy, per-class accuracy and confusion matrix of a run's model (on
    ``data`` if given), by :func:`layerlab.engine.compute_metrics`. With ``per_sample``, also
    ``predictions``: per test sample its index, true and predicted class and the probability of
    the predicted class. ``which`` weights: see :func:`load_run`."""
    run = RunDir(run_dir)  # read only: leftovers are the next writer's to clean, under its lock
    used = run.resolve_weights(which)
    model = run.model(which, device)
    ds = run.dataset(data, data_dir)
    t0 = time.perf_counter()
    out = engine.predict_logits(model, ds.test, device=next(model.parameters()).device)
    m = engine.compute_metrics(ds.task, out, ds.test.y, ds.num_outputs if ds.task != "regression" else None)
    # arrays fitted without held-out data have no test set: say that the numbers are on the training data
    split = "training" if ds.meta.get("held_out") == "training" else "test"
    result = {"run": str(run.path), "data": ds.name, "split": split, "weights": used, "n": len(ds.test)}
    result["loss"] = m["loss"]
    if "accuracy" in m:
        classes = ds.classes or [str(i) for i in range(ds.num_outputs)]
        result["accuracy"] = m["accuracy"]
        result["per_class_accuracy"] = {
            c: a for c, a in zip(classes, m["per_class_accuracy"], strict=True) if a is not None
        }
        result["confusion"] = m["confusion"].tolist()
    if per_sample:
        classes = ds.classes or [str(i) for i in range(ds.num_outputs)]
        result["predictions"] = per_sample_predictions(out, ds.test.y, task=ds.task, classes=classes)
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def per_sample_predictions(out: torch.Tensor, y: torch.Tensor, *, task: str, classes: list[str]) -> list[dict]:
    """Per test sample: ``index``, ``true`` and ``predicted`` (class names; with the ``probability``
    of the predicted class when there is one class per sample; lists over the counted steps when
    there is one per step; numbers for regression)."""
    rows = []
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
    run_dir: str | Path, files: list[str | Path], *, top_k: int = 3, which: str | None = None, device: str = "cpu"
) -> list[dict]:
    """Predictions of a run's model for image files (converted to its channels and size), sequence
    files (``.npy``, ``.csv``, ``.tsv``, ``.ts``, standardised as in training) or text files (a
    character model: the next character). One flow for all: read, apply the run's input spec,
    model, decode.

    Each result has ``file`` (``path[i]`` for the i-th sequence of a file), ``notes`` (what had to be
    converted) and what :func:`decode` gives; ``true_label`` where the file carries labels.
    """
    if top_k < 1:
        raise LayerlabError(f"--top-k must be at least 1, got {top_k}")
    run = RunDir(run_dir)
    info, spec = run.info(), run.spec
    any_size = run.config().model.any_size and spec.sequence is None
    num_tokens = info["dataset"]["num_outputs"] if spec.kind == "tokens" else None
    inputs = read_inputs(files, spec, num_tokens=num_tokens, any_size=any_size)
    if inputs is None:
        return []
    model = run.model(which, device)
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
    """Sample ``length`` characters from a character-level language model run, after ``prompt``.

    ``temperature`` divides the logits before the softmax: below 1 is more conservative, above 1
    more varied, 0 picks the most likely character every time. Returns ``{"prompt", "text",
    "sample", "seed", "temperature", "run"}`` where ``text = prompt + sample``.
    """
    from .data.formats.text import Vocabulary

    if length < 0:
        raise LayerlabError(f"--length must be 0 or more, got {length}")
    if not temperature >= 0:  # NaN too
        raise LayerlabError(f"--temperature must be 0 or more, got {temperature}")
    run = RunDir(run_dir)
    spec = run.spec
    if spec.vocab is None:
        raise LayerlabError(
            f"{run.path} is not a character-level language model (it was trained on "
            f"{run.info()['dataset']['name']}); generate needs a recurrent run trained on a text file"
        )
    model = run.model(which, device)
    if contract.bidirectional(model):
        raise LayerlabError(
            f"{run.path} holds a bidirectional model, which reads whole sequences; it cannot "
            f"generate one character at a time"
        )
    vocab = Vocabulary(spec.vocab)
    dev = next(model.parameters()).device
    if prompt:
        ids = vocab.encode(prompt, "prompt")
    else:  # start after a line break, or any character
        ids = torch.tensor([vocab.index.get("\n", 0)])
    g = torch.Generator().manual_seed(seed)
    logits, state = model.step_logits(ids[None].to(dev))
    last = logits[0, -1].float().cpu()
    sample = []
    for _ in range(length):
        if temperature == 0:
            nxt = int(last.argmax())
        else:
            nxt = int(torch.multinomial(torch.softmax(last / temperature, -1), 1, generator=g))
        sample.append(nxt)
        logits, state = model.step_logits(torch.tensor([[nxt]], device=dev), state)
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


# ----------------------------------------------------------------------------------------------
# Arrays in, arrays out: fit, evaluate and predict as a notebook (or Keras) expects them
# ----------------------------------------------------------------------------------------------
#: How each model :func:`fit` trained reads its input (spec, task, classes), for predict and
#: evaluate on that model object in this process; weak, so it never keeps a model alive.
_FITTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

_TRAIN_OPTIONS = [f.name for f in fields(TrainConfig)]
_MODEL_OPTIONS = [f.name for f in fields(ModelConfig) if f.name != "name"]


@dataclass
class History:
    """What :func:`fit` returns, as Keras's ``History``.

    Attributes:
        history: per metric a list with one value per epoch: ``loss`` and ``accuracy`` (the running
            mean over each training epoch), ``val_loss`` and ``val_accuracy`` (with validation data);
            ``accuracy`` is absent for regression.
        epoch: the epochs, counted from 0 as Keras does (run directories count from 1).
        model: the trained ``nn.Module`` (its last weights).
        run: the :class:`~layerlab.rundir.RunDir` when ``fit`` was given ``run_dir``, else None.
        rows: the full per-epoch rows as ``metrics.csv`` holds them (timings, learning rate, ...).
        best_epoch: the epoch (from 1) of lowest validation loss, 0 without validation.
    """

    history: dict[str, list[float]]
    epoch: list[int]
    model: nn.Module
    run: RunDir | None = None
    rows: list[dict] = field(default_factory=list)
    best_epoch: int = 0


def _reads_sequences(model: nn.Module) -> bool:
    """Whether a model object reads sequences (a recurrent one): then uint8 images are read as rows."""
    if hasattr(model, "step_logits"):  # our recurrent models
        return True
    return any(isinstance(m, nn.RNNBase) for m in model.modules())


def _split_options(options: dict) -> tuple[dict, dict]:
    train, model = {}, {}
    for k, v in options.items():
        if k in _TRAIN_OPTIONS:
            train[k] = v
        elif k in _MODEL_OPTIONS:
            model[k] = v
        else:
            raise ConfigError(
                f"fit() got the unknown option {k!r}; it takes training options ({', '.join(_TRAIN_OPTIONS)}) "
                f"and model options ({', '.join(_MODEL_OPTIONS)})"
            )
    return train, model


def fit(
    model_or_name: str | nn.Module,
    x,
    y,
    *,
    validation_data: tuple | None = None,
    validation_split: float = 0.0,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    callbacks: list | None = None,
    run_dir: str | Path | None = None,
    verbose: int = 1,
    seed: int = 0,
    **train_options,
) -> History:
    """Train a model on arrays, as Keras's ``model.fit(x, y, ...)``; returns a :class:`History`.

    Args:
        model_or_name: a registered model name (``article-cnn``, ``lstm``, ``package.module:factory``),
            built for the data's shapes and classes from ``seed``, or an ``nn.Module``.
        x: ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` images for an image model; ``(N, T, F)``
            sequences (or uint8 images, read as rows) for a recurrent one. A NumPy array, a torch
            tensor, or a list of arrays or PIL images. uint8 is scaled by 1/255, floats kept as float32.
        y: ``(N,)`` integer class ids ``0..K-1`` (``K`` outputs), or float regression targets ``(N,)``
            or ``(N, D)``.
        validation_data: ``(x_val, y_val)`` evaluated after every epoch (``val_*`` metrics; ``best``
            weights chosen on it). ``validation_split``: hold out this fraction of ``x`` instead
            (stratified by class, from ``seed``). With neither, nothing is held out.
        epochs, batch_size, lr, seed: as ``layerlab train``; ``train_options``: any other training
            option (``optimizer``, ``clip``, ``device``, ``threads``, ...) or model option
            (``channels``, ``hidden``, ...).
        callbacks: :mod:`layerlab.callbacks` objects (``EarlyStopping``, ``TensorBoard``, ...);
            ``verbose`` (0 silent, 1 a progress bar, 2 one line per epoch) adds a ``ProgressBar``.
        run_dir: also keep everything ``layerlab train`` keeps there (config, run.json, metrics,
            checkpoints, the arrays as ``arrays.npz``), so ``layerlab evaluate RUN_DIR`` and every
            other command work on it. A model object is recorded by the name that built it when
            :func:`build_model` did; any other module's run can be evaluated from Python
            (``evaluate(history.model, x, y)``) but not by the command line, which cannot rebuild it.
    """
    train_opts, model_opts = _split_options(train_options)
    if callbacks is not None:
        check_callbacks(callbacks)  # before any work: a callback the loop cannot call fails in the middle
    cfg = RunConfig()
    cfg.data.name = "arrays"
    for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, **train_opts}.items():
        setattr(cfg.train, k, v)
    if isinstance(model_or_name, str):
        trust_module(model_or_name)  # named in Python by the user: its module may be imported
        cfg.model.name = model_or_name
        for k, v in model_opts.items():
            setattr(cfg.model, k, v)
        cfg.validate("fit()")
        takes = model_options(cfg.model.name)  # before the data is read, as train checks its flags
        wrong = [k for k in cfg.model.options() if k not in takes]
        if wrong:
            raise ConfigError(
                f"model {cfg.model.name} does not take {', '.join(wrong)}; it takes {', '.join(takes) or 'no options'}"
            )
        sequence = sequence_model(cfg.model.name)
    elif isinstance(model_or_name, nn.Module):
        if model_opts:
            raise ConfigError(f"model options ({', '.join(model_opts)}) need a model name, not a model object")
        cfg.validate("fit()")
        sequence = _reads_sequences(model_or_name)
    else:
        raise ConfigError(f"fit() takes a model name or a torch.nn.Module, got {type(model_or_name).__name__}")
    out = Path(run_dir) if run_dir is not None else None
    if out is not None:
        RunDir.check_new(out)  # before any work
    ds = arrays.dataset_from_arrays(
        x, y, sequence=sequence, validation_data=validation_data, validation_split=validation_split, seed=seed
    )
    _setup_threads(cfg.train.threads)
    device = engine.resolve_device(cfg.train.device)
    check_runtime_options(cfg.train, device)  # a refused option leaves no run directory
    engine.seed_everything(cfg.train.seed)
    if isinstance(model_or_name, str):
        model = build_model_for(cfg.model, ds.spec, ds.num_outputs)
    else:
        model = model_or_name
        check_model_fits(model, ds)
        cfg.model.name = _record_model_object(model, ds)
        for k, v in getattr(model, "_layerlab_build", {}).get("options", {}).items():
            if k in _MODEL_OPTIONS:
                setattr(cfg.model, k, v)
    model = model.to(device)
    cbs = list(callbacks or [])
    if verbose:
        from .callbacks import ProgressBar

        cbs.append(ProgressBar(verbose))
    run = None
    if out is None:
        result = engine.fit(model, ds, cfg.train, **_callbacks_kw(cbs))
    else:
        cfg.data.name = arrays.RUN_FILE  # relative to the run: a copied or moved run reads its own copy
        info = run_info(cfg, model, ds, device)
        info["dataset"]["name"] = "arrays"
        run = RunDir.create(out, cfg, info)  # takes the run's lock
        try:
            arrays.save_arrays(out / arrays.RUN_FILE, ds)
        except BaseException:
            run.release_lock()
            raise
        result = _fit_and_record(run, model, ds, cfg, None, **_callbacks_kw(cbs))
    _FITTED[model] = {"spec": ds.spec, "task": ds.task, "classes": ds.classes, "num_outputs": ds.num_outputs}
    return History(
        _keras_history(result.history),
        [r["epoch"] - 1 for r in result.history],
        model,
        run,
        result.history,
        result.best_epoch,
    )


def _record_model_object(model: nn.Module, ds: Dataset) -> str:
    """The name a run records for a model object: the name :func:`build_model` built it by, when it
    was built for these shapes; else a name no command can rebuild, which says what happened."""
    build = getattr(model, "_layerlab_build", None)
    if build is not None:
        if tuple(build["input_shape"]) != tuple(ds.spec.shape) or build["num_outputs"] != ds.num_outputs:
            raise ConfigError(
                f"the model was built for samples of shape {tuple(build['input_shape'])} and "
                f"{build['num_outputs']} outputs, the data has {tuple(ds.spec.shape)} and {ds.num_outputs}"
            )
        unrecordable = sorted(set(build["options"]) - set(_MODEL_OPTIONS))
        if not unrecordable:
            return build["name"]
        # a config holds only the options ModelConfig declares: others could not rebuild this model
        log.warning(
            "%s was built with option(s) %s, which a run's config cannot record; the command line will not "
            "rebuild this run's model",
            build["name"],
            ", ".join(unrecordable),
        )
    cls = type(model)
    return f"<object {cls.__module__}.{cls.__qualname__}>"


def _keras_history(rows: list[dict]) -> dict[str, list[float]]:
    # the held-out columns only when they are validation: without it they are the training data again
    names = {"train_loss": "loss", "train_accuracy": "accuracy", "val_loss": "val_loss", "val_accuracy": "val_accuracy"}
    out: dict[str, list[float]] = {}
    for ours, keras in names.items():
        if rows and all(ours in r for r in rows):
            out[keras] = [float(r[ours]) for r in rows]
    return out


@dataclass
class _Target:
    """What evaluate and predict use: a model in eval mode and how it reads input (None: unknown)."""

    model: nn.Module
    spec: InputSpec | None
    task: str | None
    classes: list[str] | None
    num_outputs: int | None
    run: RunDir | None = None


def _target(model_or_run, which: str | None, device: str) -> _Target:
    if isinstance(model_or_run, History):
        model_or_run = model_or_run.model
    if isinstance(model_or_run, nn.Module):
        known = _FITTED.get(model_or_run, {})
        return _Target(
            model_or_run, known.get("spec"), known.get("task"), known.get("classes"), known.get("num_outputs")
        )
    if isinstance(model_or_run, (str, Path, RunDir)):
        run = model_or_run if isinstance(model_or_run, RunDir) else RunDir(model_or_run)
        info = run.info()
        model = run.model(which, device)
        ds = info["dataset"]
        return _Target(model, run.spec, ds["task"], run.classes, ds["num_outputs"], run)
    raise LayerlabError(f"expected a model, a History or a run directory, got {type(model_or_run).__name__}")


def _inputs(target: _Target, x) -> Split:
    """``x`` as a batch for the target's model: files through the run's reader, arrays through its spec."""
    is_path = isinstance(x, (str, Path)) or (
        isinstance(x, (list, tuple)) and x and all(isinstance(v, (str, Path)) for v in x)
    )
    if is_path:
        if target.spec is None:
            raise LayerlabError("reading files needs a run directory or a model trained by layerlab.fit")
        files = [x] if isinstance(x, (str, Path)) else list(x)
        tokens = target.num_outputs if target.spec.kind == "tokens" else None
        inputs = read_inputs(files, target.spec, num_tokens=tokens)
        return Split(inputs.x, torch.zeros(len(inputs)), inputs.lengths)
    if target.spec is not None:
        xt = arrays.inputs_from_arrays(x, target.spec)
    else:
        xt, _, _ = arrays.model_inputs(x, sequence=_reads_sequences(target.model))
    return Split(xt, torch.zeros(len(xt)))


def _outputs(target: _Target, batch: Split, batch_size: int) -> torch.Tensor:
    first = next(target.model.parameters(), None)  # a module without parameters runs on the CPU
    device = first.device if first is not None else torch.device("cpu")
    return engine.predict_logits(target.model, batch, batch_size=batch_size, device=device)


def evaluate(
    model_or_run,
    x=None,
    y=None,
    *,
    which: str | None = None,
    device: str = "cpu",
    batch_size: int = 1000,
) -> dict:
    """Loss and metrics of a model on arrays ``x``, ``y`` (read as :func:`fit` reads them), by
    :func:`layerlab.engine.compute_metrics`, the numbers ``fit`` and ``layerlab evaluate`` report.

    Args:
        model_or_run: a model :func:`fit` trained (or its History), a run directory (path or
            RunDir; ``which`` weights, see :func:`load_run`), or any ``nn.Module`` (its inputs then
            read as ``fit`` would read them, and its task taken from ``y``).
        x, y: as :func:`fit` takes them. Without both, a run is evaluated on its own test set
            (:func:`evaluate_run`).
    Returns:
        ``loss``, ``n`` and, for classification, ``accuracy``, ``per_class_accuracy`` (class name
        to accuracy, classes present in ``y``) and ``confusion`` (``K x K`` lists, row = true class).
    """
    if x is None and y is None:
        if isinstance(model_or_run, (str, Path, RunDir)):
            return evaluate_run(
                model_or_run.path if isinstance(model_or_run, RunDir) else model_or_run, which=which, device=device
            )
        raise LayerlabError("evaluate() needs x and y for a model object (only a run directory has a test set)")
    if x is None or y is None:
        raise LayerlabError("evaluate() needs both x and y")
    target = _target(model_or_run, which, device)
    batch = _inputs(target, x)
    yt, task, k = arrays.targets(
        y, len(batch), task=target.task, num_outputs=target.num_outputs, classes=target.classes
    )
    out = _outputs(target, batch, batch_size)
    if task != "regression" and out.dim() == 2 and yt.dim() == 1 and int(yt.max()) >= out.shape[-1]:
        raise LayerlabError(f"y holds the label {int(yt.max())}; the model gives {out.shape[-1]} classes")
    k = out.shape[-1] if task != "regression" else k
    m = engine.compute_metrics(task, out, yt, k if task != "regression" else None)
    result = {"loss": m["loss"], "n": m["n"]}
    if "accuracy" in m:
        classes = target.classes or [str(i) for i in range(k)]
        result["accuracy"] = m["accuracy"]
        result["per_class_accuracy"] = {
            c: a for c, a in zip(classes, m["per_class_accuracy"], strict=True) if a is not None
        }
        result["confusion"] = m["confusion"].tolist()
    return result


def predict(
    model_or_run,
    x,
    *,
    top_k: int | None = None,
    which: str | None = None,
    device: str = "cpu",
    batch_size: int = 1000,
):
    """Predictions of a model for ``x``, as Keras's ``model.predict``: a NumPy array with one row
    per sample: class probabilities ``(N, K)`` (``(N, T, K)`` with one class per step), or the
    values ``(N, D)`` of a regression model.

    Args:
        model_or_run: as :func:`evaluate` takes it (a model object layerlab did not fit is taken for
            a classifier: its outputs go through a softmax).
        x: arrays, tensors or PIL images as :func:`fit` takes them (one image without the batch axis
            too: a batch of one), or image, sequence or text files (a path or a list of paths) as
            ``layerlab predict`` reads them.
        top_k: instead of the array, one dict per sample as ``layerlab predict --json`` gives
            (``index``, ``label``, ``probability`` and the ``top_k`` likeliest classes).
    """
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1):
        raise LayerlabError(f"top_k must be at least 1 (a whole number), got {top_k!r}")
    target = _target(model_or_run, which, device)
    batch = _inputs(target, x)
    out = _outputs(target, batch, batch_size)
    task = target.task or "classification"
    if top_k is not None:
        spec = target.spec or InputSpec("image", (1,))
        classes = target.classes or [str(i) for i in range(out.shape[-1])]
        n = len(batch)
        lengths = [int(batch.x.shape[1]) if batch.lengths is None else int(batch.lengths[i]) for i in range(n)]
        return [decode(out, i, lengths[i], task=task, spec=spec, classes=classes, k=top_k) for i in range(n)]
    if task == "regression":
        return out.reshape(len(out), -1).numpy()
    return torch.softmax(out, -1).numpy()
