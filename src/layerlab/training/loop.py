"""The training loop as plain named functions: :func:`train_one_epoch` and :func:`fit`.

A batch comes from a :class:`~layerlab.training.sources.BatchSource` (in memory: an index slice of
tensors on the training device). Per-step work is kept to the minimum: metrics accumulate on the
device and are read back every ``log_every`` steps, so a CUDA run never waits on the host for a
progress bar. The loop writes nothing itself: the run directory is kept by a callback
(:class:`~layerlab.training.checkpoints.RunCheckpoint`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .. import distributed
from ..callbacks import Callback, EarlyStopping, TensorBoard, Trainer, load_callback_states, log_interval
from ..checkpoint import pause_point
from ..config import TrainConfig
from ..data import Dataset, Split
from ..errors import ConfigError, TrainingError
from . import runtime
from .checkpoints import EpochPosition, RunCheckpoint, stopped_early
from .evaluation import evaluate, forward
from .graphs import GraphStep, check_cuda_graph, make_capturable
from .metrics import batch_stats, check_recipe, compute_loss, metrics_from
from .optim import host_lr, make_optimizer
from .schedules import lr_factor, make_scheduler
from .sources import BatchSource, TensorSource, as_source, tail_floor, with_min_batch

log = logging.getLogger(__name__)


@dataclass
class TrainStep:
    """What every step of a run trains with.

    Attributes:
        model: the model as it is stepped (under DDP or ``torch.compile`` when the run asks for them).
        optimizer, scheduler: its optimizer, and the schedule stepped after every optimizer step.
        cfg: the :class:`~layerlab.config.TrainConfig`; ``task``: the dataset's task; ``device``.
        dist: this process's place in a torchrun job (:func:`layerlab.distributed.context`), or None.
        graph: the step captured as a CUDA graph (:class:`~layerlab.training.graphs.GraphStep`;
            ``model`` and ``optimizer`` are the ones it captured), or None.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    cfg: TrainConfig
    task: str
    device: torch.device
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    dist: distributed.DistContext | None = None
    graph: GraphStep | None = None


@dataclass
class EpochHooks:
    """Where an epoch starts, and what it calls as it goes.

    Attributes:
        start: continue the epoch from a mid-epoch checkpoint (its first ``start.step`` batches of
            the same order are skipped).
        steps_before: steps of the run before this epoch.
        checkpoint: called with the position after every ``cfg.checkpoint_every``-th step of the run,
            except the epoch's last (the epoch's own checkpoint follows).
        on_log: ``on_log(steps_done, logs)`` after every ``log_every``-th step of the run and after
            the epoch's last (see :meth:`layerlab.callbacks.Callback.on_step_end`).
    """

    log_every: int = 20
    start: EpochPosition | None = None
    steps_before: int = 0
    checkpoint: Callable[[EpochPosition], None] | None = None
    on_log: Callable[[int, dict], None] | None = None


@dataclass
class Resume:
    """Where an interrupted run continues (see :func:`layerlab.api.resume`): its optimizer,
    ``start_epoch`` epochs and ``history`` done, the ``position`` inside the next epoch, and the
    learning-rate schedule's and callbacks' saved state (read from the run's checkpoint when None)."""

    optimizer: torch.optim.Optimizer | None = None
    start_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    position: EpochPosition | None = None
    scheduler_state: dict | None = None
    callback_state: dict | None = None


@dataclass
class FitResult:
    """``best_epoch`` is the epoch of lowest validation loss, 0 when nothing was chosen (no validation
    split). ``stopped_early`` is ``{"epoch", "reason"}`` when a callback ended training before ``epochs``."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    wall_seconds: float = 0.0
    stopped_early: dict | None = None
    graph_capture_seconds: float | None = None  # --cuda-graph: warm-up and capture, before epoch 1
    amp: bool = False  # whether bf16 autocast ran (--amp on a CPU without bf16 hardware trains in fp32)


def held_out_prefix(dataset: Dataset) -> str:
    """What the split evaluated after each epoch is, as the prefix of its metrics: ``val_`` a
    validation split held out of the training set (it then chooses the ``best`` weights),
    ``train_eval_`` the training data itself (arrays fitted with no held-out data: a name that does
    not pass it off as a test), else ``test_`` (the test set: reported, never chosen on)."""
    if "validation_fraction" in dataset.meta:
        return "val_"
    return "train_eval_" if dataset.meta.get("held_out") == "training" else "test_"


# ----------------------------------------------------------------------------------------------
# One epoch
# ----------------------------------------------------------------------------------------------
def train_one_epoch(step: TrainStep, source: BatchSource | Split, epoch: int, hooks: EpochHooks | None = None) -> dict:
    """One pass over ``source`` (epoch ``epoch``, 0-based: its order is the source's for
    ``(cfg.seed, epoch)``) in batches of ``cfg.batch_size``; returns train metrics and ``lr``, the
    learning rate the epoch's last step used. With ``step.graph`` each step is its replay.

    With ``step.dist`` (a torchrun job; ``step.model`` is DDP-wrapped) ``cfg.batch_size`` is the
    global batch: this rank trains on its share of each, and the metrics, logs and checkpointed
    statistics are sums over all ranks (``hooks.start.stats`` is taken as such a sum, so only rank 0
    starts from it).
    """
    hooks = hooks or EpochHooks()
    model, optimizer, cfg, task, device = step.model, step.optimizer, step.cfg, step.task, step.device
    scheduler, dist, graph = step.scheduler, step.dist, step.graph
    source = as_source(source)
    model.train()
    start = hooks.start or EpochPosition()
    main = dist is None or dist.is_main
    stats = start.stats.to(device) if start.stats is not None and main else torch.zeros(3, device=device)
    if graph is not None:  # the captured step adds to its own buffer
        stats = graph.stats.copy_(stats)
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)

    def total(t: torch.Tensor) -> torch.Tensor:  # every rank calls it at the same steps: a collective
        return distributed.all_sum(t) if dist is not None else t

    grad_norms: list[torch.Tensor] = [g.to(device) for g in start.grad_norms]
    n_steps, n_samples = source.steps(cfg.batch_size), len(source)
    every = getattr(cfg, "checkpoint_every", None) if hooks.checkpoint is not None else None
    steps = start.step
    lr = host_lr(optimizer, scheduler)
    loss = None
    logged = start.step

    def log_now(m: dict) -> None:
        if hooks.on_log is None:
            return
        logs = {**m, "lr": lr, "epoch_step": steps, "samples": min(steps * cfg.batch_size, n_samples)}
        if loss is not None:
            logs["batch_loss"] = float(loss.detach())
        hooks.on_log(steps, logs)

    order = source.epoch(cfg.batch_size, seed=cfg.seed, epoch=epoch, rank=rank, world_size=world, start=start.step)
    for batch, global_n in order:  # global_n: the step's whole batch, over all ranks
        lr = host_lr(optimizer, scheduler)  # the rate this step trains with
        if graph is not None:
            out, loss = graph(batch)
            if cfg.clip:
                grad_norms.append(graph.norm.clone())
            if scheduler is not None:
                scheduler.step()
        else:
            optimizer.zero_grad(set_to_none=True)
            with runtime.autocast(device, cfg.amp):
                out = forward(model, batch, cfg.channels_last)
            loss = compute_loss(task, out, batch.y, cfg.label_smoothing, cfg.loss, cfg.class_weight)
            if dist is not None:
                # DDP averages the ranks' gradients; an epoch's last batch may split unevenly, and this
                # weight (1 for equal shards, so those keep their bits) makes the average the batch mean
                weight = len(batch) * dist.world_size / global_n
                (loss * weight if weight != 1 else loss).backward()
            else:
                loss.backward()
            if cfg.clip:
                grad_norms.append(nn.utils.clip_grad_norm_(model.parameters(), cfg.clip))
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            stats += batch_stats(task, out, batch.y, loss)
        steps += 1
        pause_point("step")
        due = every and (hooks.steps_before + steps) % every == 0 and steps < n_steps
        # the run's steps: every_n_steps means the same each epoch
        log_due = (hooks.steps_before + steps) % hooks.log_every == 0
        if log_due or due:
            summed = total(stats)
            m = metrics_from(task, summed, "")
            if not math.isfinite(m["loss"]):  # never checkpoint a poisoned model
                raise TrainingError(f"the training loss became {m['loss']} by step {steps}; lower --lr or set --clip")
            if log_due:
                log_now(m)
                logged = steps
            if due and hooks.checkpoint is not None:  # (due only when a checkpoint hook is set)
                hooks.checkpoint(EpochPosition(steps, summed.detach().clone(), list(grad_norms)))
    m = metrics_from(task, total(stats), "train_")
    if not math.isfinite(m["train_loss"]):
        raise TrainingError(f"the training loss became {m['train_loss']}; lower --lr or set --clip")
    if logged != steps:  # the epoch's last steps, unless just logged
        log_now({k[6:]: v for k, v in m.items()})
    if grad_norms:
        g = torch.stack(grad_norms).float()
        m["grad_norm_mean"] = float(g.mean())
        m["grad_norm_max"] = float(g.max())
        m["clipped_fraction"] = float((g > (cfg.clip or 0.0)).float().mean())  # (norms are kept with a clip)
    m["lr"] = lr
    return m


# ----------------------------------------------------------------------------------------------
# fit
# ----------------------------------------------------------------------------------------------
def check_training(
    cfg: TrainConfig,
    dataset: Dataset,
    callbacks: list[Callback] | None = None,
    *,
    device: torch.device | None = None,
    dist: distributed.DistContext | None = None,
) -> None:
    """What :func:`fit` refuses, checked before anything is made (call it before creating a run
    directory, so a refused setting leaves none): the settings a captured step cannot take on
    ``device``, a ``cfg.tensorboard`` folder that cannot be made, and what each callback's
    :meth:`~layerlab.callbacks.Callback.check` refuses for this data."""
    if cfg.cuda_graph and device is not None:
        check_cuda_graph(cfg, device, dist)
    check_recipe(cfg, dataset)  # the loss, class weights and metrics fit the task
    if cfg.cuda_graph and not isinstance(dataset.train, Split):
        raise ConfigError(
            "--cuda-graph needs the training data in memory; this data is streamed (packed shards, an image folder "
            "read by workers or a Dataset object): train without --cuda-graph"
        )
    held = held_out_prefix(dataset)
    for cb in [*(callbacks or []), *_config_callbacks(cfg, dist)]:
        if callable(getattr(cb, "check", None)):  # a duck-typed callback may have no check
            cb.check(held, cfg)


def _config_callbacks(cfg: TrainConfig, dist) -> list[Callback]:
    """The callbacks the config asks for: ``cfg.tensorboard`` (written by rank 0 alone, as the run) and
    ``cfg.early_stopping`` (an :class:`~layerlab.callbacks.EarlyStopping` on ``cfg.monitor``)."""
    cbs: list[Callback] = []
    if cfg.early_stopping:
        cbs.append(EarlyStopping(monitor=cfg.monitor, patience=cfg.early_stopping))
    if cfg.tensorboard and (dist is None or dist.is_main):
        cbs.append(TensorBoard(cfg.tensorboard))
    return cbs


def fit(
    model: nn.Module,
    dataset: Dataset,
    cfg: TrainConfig,
    *,
    run=None,
    progress: Callback | None = None,
    callbacks: list[Callback] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    start_epoch: int = 0,
    history: list[dict] | None = None,
    position: EpochPosition | None = None,
    scheduler_state: dict | None = None,
    callback_state: dict | None = None,
    log_every: int | None = None,
    dist: distributed.DistContext | None = None,
) -> FitResult:
    """Train ``model`` on ``dataset.train`` for ``cfg.epochs`` epochs, evaluating on ``dataset.test``
    after each (a validation split when one was held out: rows have ``val_*`` columns, and the
    lowest ``val_loss`` is the ``best``; on the test set rows have ``test_*`` and nothing is chosen).
    With a :class:`~layerlab.rundir.RunDir`, metrics and checkpoints are written as it goes (by a
    :class:`~layerlab.training.checkpoints.RunCheckpoint` called after the other callbacks).

    Args:
        callbacks: :class:`~layerlab.callbacks.Callback` objects, called in order; one that sets
            ``trainer.stop_training`` ends training after the current epoch (recorded as
            ``stopped_early`` in the result and in ``run.json``). ``cfg.tensorboard`` adds a
            :class:`~layerlab.callbacks.TensorBoard` writing there. A callback's ``state_dict()``
            is saved with every checkpoint and given back to it on resume.
        progress: one more callback (the CLI's progress bar).
        optimizer, start_epoch, history, position: continue an interrupted run, at an epoch
            boundary or mid-epoch (see :func:`layerlab.api.resume`).
        scheduler_state, callback_state: the learning-rate schedule's and the callbacks' saved
            state; a resumed run without them reads them from ``run``'s checkpoint.
        log_every: steps between per-step callback calls (default 20, or what the callbacks ask for).
        dist: this process's place in a torchrun job (:func:`layerlab.distributed.context`): the
            model is trained under DistributedDataParallel, ``cfg.batch_size`` is the global batch,
            ``run`` is given to rank 0 only, and each rank evaluates its share of the held-out split
            (every sample once; the sums are added over the ranks).

    The learning rate follows ``cfg.schedule`` (see :func:`~layerlab.training.schedules.lr_factor`),
    stepped after every optimizer step; each row's ``lr`` is the rate its last step used. A NaN or
    infinite loss raises :class:`~layerlab.errors.TrainingError` saying which checkpoint is kept.
    """
    if progress is not None and not isinstance(progress, Callback):
        raise ConfigError(f"progress= takes a layerlab.callbacks.Callback, got {type(progress).__name__}")
    given = [*(callbacks or []), *([progress] if progress is not None else [])]
    check_training(cfg, dataset, given, device=next(model.parameters()).device, dist=dist)
    cbs = list(callbacks or []) + _config_callbacks(cfg, dist) + ([progress] if progress is not None else [])
    resume = Resume(optimizer, start_epoch, list(history or []), position, scheduler_state, callback_state)
    try:
        return _fit(model, dataset, cfg, run, cbs, resume, log_every or log_interval(cbs), dist)
    except TrainingError as e:
        kept = run.kept() if run is not None else "no checkpoint is written without a run directory"
        raise TrainingError(f"{e}; {kept}") from None
    finally:
        for cb in cbs:  # files and live displays are released however training ended
            cb.close()


def _saved_state(run, dist, resume: Resume, resuming: bool) -> tuple[dict | None, dict | None]:
    """The schedule's and the callbacks' state a resumed run continues with: as given, or read from
    the run's checkpoint (on rank 0 of a torchrun job, which gives the callbacks' to every rank)."""
    sched, cbs = resume.scheduler_state, resume.callback_state
    if not resuming or (sched is not None and cbs is not None):
        return sched, cbs
    if dist is None:
        saved = run.training_state() if run is not None else {}
        sched = sched if sched is not None else saved.get("scheduler")
        return sched, (cbs if cbs is not None else saved.get("callbacks"))
    # a torchrun job: the ranks without the run derive the schedule from the step, and rank 0 reads the
    # callbacks' state inside the collective, so a read that fails stops every rank with its sentence
    if sched is None and run is not None:
        sched = run.training_state().get("scheduler")
    if cbs is None:
        cbs = distributed.from_main(dist, lambda: run.training_state().get("callbacks"))
    return sched, cbs


def _stepped_models(model: nn.Module, cfg: TrainConfig, device, dist) -> tuple[nn.Module, nn.Module]:
    """``model`` as each training step runs it (under DDP in a torchrun job; compiled with
    ``cfg.compile``) and as evaluation runs it."""
    if dist is None:
        step_model = torch.compile(model) if cfg.compile else model
        return step_model, step_model  # type: ignore[return-value]  # torch.compile(module) is a module
    step_model = distributed.wrap(model, device)
    step_model = torch.compile(step_model) if cfg.compile else step_model
    # evaluated without the DDP wrapper: its forward would broadcast buffers, a collective per batch
    return step_model, (torch.compile(model) if cfg.compile else model)  # type: ignore[return-value]


def _fit(model, dataset, cfg, run, callbacks: list[Callback], resume: Resume, log_every: int, dist) -> FitResult:
    device = next(model.parameters()).device
    if device.type == "cpu":
        runtime.keep_cpu_memory()
        if cfg.amp and not runtime.cpu_bf16_native():
            log.warning(
                "--amp: this CPU has no bf16 in hardware (AVX512-BF16 or AMX), where bf16 runs emulated and "
                "slower than fp32; training in fp32"
            )
            cfg = dataclasses.replace(cfg, amp=False)
    if cfg.channels_last and device.type in ("cpu", "cuda") and any(p.dim() == 4 for p in model.parameters()):
        model = model.to(memory_format=torch.channels_last)
    optimizer = resume.optimizer or make_optimizer(model, cfg, device)
    if cfg.cuda_graph:
        make_capturable(optimizer, device)
    train = as_source(dataset.train, device)
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        train = with_min_batch(train, tail_floor(cfg.batch_size))  # no batch of one through batch norm
    held_out = as_source(dataset.test, device)
    if dist is not None:
        distributed.check_batch(cfg.batch_size, len(train), dist.world_size)
    step_model, eval_model = _stepped_models(model, cfg, device, dist)
    result = FitResult(history=resume.history, amp=cfg.amp)
    held = held_out_prefix(dataset)
    validated = held == "val_"
    t_start = time.perf_counter()
    steps = train.steps(cfg.batch_size)
    done_steps = resume.start_epoch * steps + (resume.position.step if resume.position is not None else 0)
    scheduler_state, callback_state = _saved_state(run, dist, resume, done_steps > 0)
    scheduler = make_scheduler(optimizer, cfg, steps, state=scheduler_state, global_step=done_steps)
    factor = lr_factor(cfg, steps)
    graph = None
    if cfg.cuda_graph:
        if not isinstance(train, TensorSource):
            raise ConfigError("--cuda-graph needs the training data in memory")
        t_graph = time.perf_counter()
        model.train()
        graph = GraphStep(model, optimizer, cfg, dataset.task, device, train.split)
        torch.cuda.synchronize()
        result.graph_capture_seconds = time.perf_counter() - t_graph
        log.info("captured the training step in a CUDA graph in %.2fs", result.graph_capture_seconds)
    if getattr(dataset, "augment", None) is not None:  # the training batches only: evaluation reads them as they are
        train = dataset.augment.source(train)
    trainer = Trainer(
        model=model,
        optimizer=optimizer,
        history=result.history,
        cfg=cfg,
        run=run,
        scheduler=scheduler,
        held_out=held,
        epochs=cfg.epochs,
        steps_per_epoch=steps,
        n_train=len(train),
        start_epoch=resume.start_epoch,
        global_step=done_steps,
        lr_at=lambda s: float(scheduler.base_lrs[0]) * factor(s),  # (a float: layerlab sets no tensor lr)
    )
    load_callback_states(callbacks, callback_state)
    writer = RunCheckpoint(run, validated=validated, callbacks=callbacks) if run is not None else None
    everyone = [*callbacks, writer] if writer is not None else callbacks
    save_position: Callable[[EpochPosition], None] | None
    if writer is not None:
        save_position = lambda pos: writer.save_position(trainer, pos)  # noqa: E731
    else:  # ranks without the run still reach each checkpoint's sum of statistics (a collective)
        save_position = _no_checkpoint if dist is not None else None
    step = TrainStep(step_model, optimizer, cfg, dataset.task, device, scheduler, dist, graph)
    for cb in everyone:
        cb.on_train_begin(trainer)
    for epoch in range(resume.start_epoch, cfg.epochs):
        trainer.epoch = epoch + 1
        for cb in callbacks:
            cb.on_epoch_begin(trainer, epoch + 1)
        t0 = time.perf_counter()
        row: dict[str, float] = {"epoch": epoch + 1}

        def on_log(epoch_step: int, logs: dict, epoch=epoch) -> None:
            trainer.global_step = epoch * steps + epoch_step
            logs["epoch"] = epoch + 1
            for cb in callbacks:
                cb.on_step_end(trainer, trainer.global_step, logs)

        hooks = EpochHooks(
            log_every=log_every,
            start=resume.position if epoch == resume.start_epoch else None,
            steps_before=epoch * steps,
            checkpoint=save_position,
            on_log=on_log if callbacks else None,
        )
        row.update(train_one_epoch(step, train, epoch, hooks))
        lr_used = row.pop("lr")
        trainer.global_step = (epoch + 1) * steps
        if device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        row.update(
            evaluate(
                eval_model,
                held_out,
                task=dataset.task,
                batch_size=cfg.eval_batch_size,
                device=device,
                amp=cfg.amp,
                channels_last=cfg.channels_last,
                prefix=held,
                metrics=cfg.metrics,
                dist=dist,
            )
        )
        if not math.isfinite(row[f"{held}loss"]):
            split = "validation" if validated else "test"
            raise TrainingError(
                f"the {split} loss became {row[f'{held}loss']} after epoch {epoch + 1} (the model gives NaN or "
                f"infinite outputs, or the {split} data holds them)"
            )
        t2 = time.perf_counter()
        row["train_seconds"] = round(t1 - t0, 3)
        row["eval_seconds"] = round(t2 - t1, 3)
        row["samples_per_second"] = round(len(train) / max(t1 - t0, 1e-9), 1)
        row["lr"] = lr_used
        result.history.append(row)
        # the run's checkpoint last, so what callbacks add to the row, and a stop, are in it
        for cb in everyone:
            cb.on_epoch_end(trainer, epoch + 1, row)
        log.info("epoch %d/%d %s", epoch + 1, cfg.epochs, {k: v for k, v in row.items() if k != "epoch"})
        if trainer.stop_training:
            if epoch + 1 < cfg.epochs:  # a stop asked at the last epoch stops nothing
                result.stopped_early = stopped_early(trainer, epoch + 1)
                log.info("training stopped early after epoch %d: %s", epoch + 1, result.stopped_early["reason"])
            break
    result.wall_seconds = time.perf_counter() - t_start
    if result.history and validated:
        result.best_epoch = min(result.history, key=lambda r: r["val_loss"])["epoch"]
    for cb in callbacks:
        cb.on_train_end(trainer, result.history)
    return result


def _no_checkpoint(pos: EpochPosition) -> None:
    """What a rank other than rank 0 does at a checkpoint: nothing (rank 0 alone writes the run)."""
