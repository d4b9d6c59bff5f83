"""The training life cycle: :func:`train` a config into a new run directory, :func:`resume` a run
exactly from its last checkpoint, on one process or under ``torchrun`` (DDP), and record how it
ended (``completed``, ``interrupted`` or ``failed``) in its run.json.
"""

from __future__ import annotations

import copy
import logging
import numbers
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from .. import distributed, engine, finetune
from ..callbacks import Callback
from ..checkpoint import atomic_write_text
from ..config import RunConfig, check_model_options
from ..data import Dataset, Split, arrays, known_datasets
from ..errors import ConfigError, DataError, TrainingInterrupted
from ..models import contract, sequence_model
from ..preflight import check_runtime_options, checked_resume_threads
from ..rundir import RunDir, build_model_for, check_fingerprint, data_fingerprint, default_run_path

log = logging.getLogger(__name__)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters of ``model``.

    A frozen bias, like the LSTM's second one, is not counted (Keras has none).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def prepare_data(cfg: RunConfig) -> Dataset:
    """Load the dataset a config names, as ``train`` reads it.

    Args:
        cfg: the run's config: its ``data`` section names the dataset and how to read it.

    Returns:
        The :class:`~layerlab.Dataset` (read as sequences for a recurrent model), with the
        validation split ``cfg.data.validation`` asks for.

    Raises:
        DataError: a dataset that is not found or cannot be read.
    """
    from ..data.inputs import prepare_data as _prepare

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
    progress: Callback | None = None,
    dataset: Dataset | None = None,
    overwrite: bool = False,
    callbacks: list | None = None,
    record: dict | None = None,
) -> tuple[RunDir | None, engine.FitResult]:
    """Build the model and data a config names, train it, and keep everything in a run directory.

    Under ``torchrun`` with several processes (:mod:`layerlab.distributed`) every rank calls this;
    rank 0 alone writes ``out``.

    Args:
        cfg: the run's config (data, model, training).
        out: the run directory to make (default ``runs/MODEL-DATA-TIME``); it must not exist
            unless ``overwrite``.
        progress: a callback that shows progress (the command line's).
        dataset: data already loaded, used instead of the one ``cfg`` names.
        overwrite: replace ``out`` if it exists.
        callbacks: :mod:`layerlab.callbacks` objects, given to :func:`layerlab.engine.fit`.
        record: more fields for ``run.json`` (a tuning trial's ``tune``: its study, number and
            parameters).

    Returns:
        ``(run, result)``: the :class:`~layerlab.RunDir` (None on ranks other than 0) and the
        training's :class:`~layerlab.training.loop.FitResult` (history, best epoch, how it stopped).

    Raises:
        ConfigError: a bad option or combination, or an ``out`` that exists; checked before any
            file is written.
        DataError: data that cannot be read or does not fit the model.
        TrainingError: the loss became NaN or infinite.
    """
    cfg.validate()
    check_model_options(cfg.model)  # before minutes of data loading, not after
    if cfg.data.name not in known_datasets() and Path(cfg.data.name).expanduser().exists():
        cfg.data.name = str(Path(cfg.data.name).expanduser().resolve())  # so the run finds it from any directory
    out = Path(out) if out else default_run_path(cfg.model.name, cfg.data.name)
    ctx = distributed.context()
    if not overwrite and (ctx is None or ctx.is_main):
        RunDir.check_new(out)
    if ctx is None:
        return _train(cfg, out, None, progress, dataset, overwrite, callbacks, record)
    distributed.start(ctx)
    finished = False
    try:
        result = _train(cfg, out, ctx, progress, dataset, overwrite, callbacks, record)
        finished = True
        return result
    finally:
        distributed.stop(finished)


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
        # whether the run has a held-out test set (arrays fitted with a validation split have none)
        "test_set": ds.meta.get("held_out") is None,
        "data_fingerprint": data_fingerprint(ds),
        **({"augment": ds.augment.to_dict()} if ds.augment is not None else {}),
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


def _train(cfg: RunConfig, out: Path, ctx, progress, dataset, overwrite, callbacks, record=None):
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
    started = finetune.prepare(model, cfg.train)  # --init-from, --head, --freeze: before the run exists
    for part, split in (("training", ds.train), ("test", ds.test)):
        if split.sizes is not None:

            def name(i: int, part: str = part) -> str:
                return f"{ds.source or ds.name}: {part} image {i}"

            check_sizes(model, split, name)
    engine.check_training(cfg.train, ds, callbacks, device=device, dist=ctx)  # before the run directory exists
    info = {**run_info(cfg, model, ds, device), **(record or {})}
    if started:
        info["init_from"] = started  # where its weights came from
    run: RunDir | None
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


def resume(
    run_dir: str | Path,
    *,
    epochs: int | None = None,
    threads: int | None = None,
    data_dir: str | None = None,
    checkpoint_every: int | None = None,
    progress: Callback | None = None,
    dataset: Dataset | None = None,
    extend_lr: float | None = None,
    callbacks: list | None = None,
    verbose: int = 0,
    workers: int | None = None,
) -> tuple[RunDir | None, engine.FitResult]:
    """Continue a run from its last checkpoint, exactly: same weights, optimizer moments, RNG
    streams and shuffle order (mid-epoch too) as if it had never stopped. Only what does not change
    the result may differ (more epochs, threads, where the data is found, checkpointing, workers).
    The run is locked while it trains.

    Under ``torchrun`` with several processes every rank calls this: rank 0 locks and reads the run
    and gives the others its config and training state (the weights follow with DDP's first
    broadcast); they never open the run directory. Any world size may resume any run.

    Args:
        run_dir: the run directory.
        epochs: train to this many epochs in all (more than it was started with).
        threads: CPU threads (a CPU run's own count changes the order of its sums).
        data_dir: where to find the run's named dataset now.
        checkpoint_every: also checkpoint every this many steps.
        progress: a callback that shows progress (the command line's).
        dataset: data already loaded, used instead of the run's (it must have the same fingerprint).
        extend_lr: the constant learning rate of added epochs, which a cosine or onecycle run
            needs (its curve spans the epochs it was started with).
        callbacks: :mod:`layerlab.callbacks` objects to train on with (one that saved its state in
            the checkpoint, as ``EarlyStopping``, continues from it).
        verbose: 1 a progress bar, 2 a line per epoch (as :func:`layerlab.fit`).
        workers: processes reading streamed data (packed shards, an image folder read lazily); a
            run that read its data in memory refuses it.

    Returns:
        ``(run, result)``, as :func:`train` returns them.

    Raises:
        RunError: not a run directory, or a run another live process writes (its lock).
        ConfigError: an option that would change the result.
        DataError: data that differs from the data the run was trained on (its fingerprint).
    """
    if callbacks is not None:
        check_callbacks(callbacks)  # before the run is locked: a callback the loop cannot call
    callbacks = list(callbacks or [])
    if verbose:
        from ..callbacks import ProgressBar

        callbacks.append(ProgressBar(verbose))
    ctx = distributed.context()
    run: RunDir | None
    if ctx is None:
        run = RunDir(run_dir)
        info = run.info()
        run.acquire_lock()
        try:
            cfg, state = _read_for_resume(run, info, epochs, threads, data_dir, checkpoint_every, extend_lr, workers)
            return _resume_locked(run, info, cfg, state, progress, dataset, None, callbacks)
        finally:
            run.release_lock()
    distributed.start(ctx)
    run = RunDir(run_dir) if ctx.is_main else None
    locked = finished = False
    try:

        def read():
            nonlocal locked
            info = run.info()
            run.acquire_lock()
            locked = True
            return (info, *_read_for_resume(run, info, epochs, threads, data_dir, checkpoint_every, extend_lr, workers))

        info, cfg, state = distributed.from_main(ctx, read)
        result = _resume_locked(run, info, cfg, state, progress, dataset, ctx, callbacks)
        finished = True
        return result
    finally:
        if locked and run is not None:  # (only rank 0 holds the run and its lock)
            run.release_lock()
        distributed.stop(finished)


def _read_for_resume(
    run: RunDir, info: dict, epochs, threads, data_dir, checkpoint_every, extend_lr=None, workers=None
):
    """The config to continue with (the allowed overrides applied) and the checkpoint's training
    state (None: no checkpoint yet), read under the run's lock."""
    run.clean_leftovers(locked=True)
    cfg = run.config()
    if checkpoint_every is not None:
        cfg.train.checkpoint_every = checkpoint_every
    if epochs is not None:
        extend_schedule(cfg, epochs, extend_lr, run.path)
        cfg.train.epochs = epochs
    elif extend_lr is not None and extend_lr != cfg.train.extend_lr:
        raise ConfigError("--extend-lr is the rate of added epochs; give it with --epochs N")
    if threads is not None:
        cfg.train.threads = checked_resume_threads(cfg.train, info, threads)
    if data_dir is not None:
        cfg.data.data_dir = data_dir
    if workers is not None and workers != cfg.data.workers:
        cfg.data.workers = checked_resume_workers(cfg, info, workers, run.path)
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


def checked_resume_workers(cfg: RunConfig, info: dict, workers: int, path) -> int:
    """``workers`` for a resumed run: any count reads the same batches of streamed data, but a run
    that read its data in memory (a small image folder trained without ``--workers``) would stream
    it with them, and its data would then no longer be the data it recorded."""
    meta = info.get("dataset", {}).get("meta") or {}
    if cfg.data.workers is None and not (meta.get("streamed") or meta.get("packed")):
        raise ConfigError(
            f"--workers: {path} read its data in memory (trained without --workers), so there are no files for "
            f"workers to read; resume it without --workers"
        )
    return workers


def extend_schedule(cfg: RunConfig, epochs: int, extend_lr: float | None, path) -> None:
    """Apply ``extend_lr`` to a run extended to ``epochs``: the curve keeps spanning the epochs it had
    (``schedule_epochs``) and the added ones train at ``extend_lr``. Extending a cosine or onecycle
    run without a rate is one sentence saying how to continue: its curve is over its epochs, and
    stretching or restarting it would raise the rate of a run that annealed it to nearly zero."""
    t = cfg.train
    if extend_lr is not None and t.extend_lr is not None and extend_lr != t.extend_lr:
        raise ConfigError(
            f"{path} was already extended at the constant rate {t.extend_lr:g}; its added epochs go on at that rate"
        )
    if epochs <= t.epochs:
        return
    if extend_lr is None and t.extend_lr is None:
        if t.schedule in ("cosine", "onecycle"):
            end = t.min_lr if t.schedule == "cosine" else t.lr / 25 / 1e4
            raise ConfigError(
                f"{path} trained a {t.schedule} schedule over its {t.epochs} epochs, which ends at the rate "
                f"{end:.3g}; to train to epoch {epochs} give the added epochs a constant rate: --resume {path} "
                f"--epochs {epochs} --extend-lr LR (layerlab.resume(run, epochs={epochs}, extend_lr=LR)), "
                f"or train a new run with the schedule you want"
            )
        return
    if not t.schedule_epochs:
        t.schedule_epochs = t.epochs
    if extend_lr is not None:
        t.extend_lr = extend_lr


def _resume_locked(
    run: RunDir | None, info: dict, cfg: RunConfig, state: dict | None, progress, dataset, ctx, callbacks=None
):
    """Continue from ``state``; ``run`` is None on the ranks other than rank 0 of a torchrun job."""
    _setup_threads(cfg.train.threads)
    device = engine.resolve_device(cfg.train.device)
    if ctx is not None:
        device = distributed.rank_device(ctx, device)
    check_runtime_options(cfg.train, device, ctx)  # refused before the run is marked running
    if state is None:  # killed before its first checkpoint: train again from the seed, as train did
        return run, _restart(run, info, cfg, device, progress, dataset, ctx, callbacks)
    ds = dataset if dataset is not None else prepare_data(cfg)
    fields = _check_resumed_data(run, info, cfg, ds, device, ctx)
    engine.check_training(cfg.train, ds, callbacks, device=device, dist=ctx)  # before the run is marked running
    if run is None:  # DDP broadcasts rank 0's weights when it wraps the model: these are placeholders
        model = build_model_for(cfg.model, ds.spec, ds.num_outputs).to(device).train()
    else:
        run.write_metrics(state["history"])  # metrics.csv says what the checkpoint holds, nothing newer
        model = run.model("last", device).train()
    if cfg.train.freeze:  # the frozen layers stay frozen: the optimizer holds the others only
        finetune.freeze(model, cfg.train.freeze)
    if cfg.train.channels_last and any(p.dim() == 4 for p in model.parameters()):
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (not in torch's stubs)
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
        **_callbacks_kw(callbacks),
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

    def check() -> None:  # on rank 0, which holds the run
        assert run is not None
        if "data_fingerprint" in info:  # runs of older layerlab versions have none to check
            check_fingerprint(run.path, info["data_fingerprint"], fingerprint)

    if ctx is None:
        check()
    else:  # every rank stops with rank 0's sentence, none waits in a collective
        distributed.from_main(ctx, check)
    return fields


def _restart(
    run: RunDir | None, info: dict, cfg: RunConfig, device, progress, dataset, ctx, callbacks=None
) -> engine.FitResult:
    """Train a run that has no checkpoint yet from the start, exactly as :func:`train` would have."""
    engine.seed_everything(cfg.train.seed)
    ds = dataset if dataset is not None else prepare_data(cfg)
    fields = _check_resumed_data(run, info, cfg, ds, device, ctx)
    model = build_model_for(cfg.model, ds.spec, ds.num_outputs).to(device)
    finetune.prepare(model, cfg.train)  # as train started it
    fields["resumed_from_epoch"] = 0
    if run is not None:
        _write_config(run, cfg)
        (run.path / "metrics.csv").unlink(missing_ok=True)
        run.update_info(status="running", **fields)
    return _fit_and_record(
        run, model, ds, cfg, progress, **({"dist": ctx} if ctx is not None else {}), **_callbacks_kw(callbacks)
    )


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
            try:
                kept, has_checkpoint = f"{run.kept()} in {run.path}", run.has_checkpoint()
            except Exception:  # what the note says must never hide the interruption itself
                kept, has_checkpoint = f"the run is {run.path}", True
            raise TrainingInterrupted(str(run.path), kept, has_checkpoint) from e
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
