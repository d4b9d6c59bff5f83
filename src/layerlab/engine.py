"""Training as plain named functions: ``train_one_epoch``, ``evaluate``, ``fit``.

Data lives in memory as tensors (on the training device); a batch is an index slice. Per-step
work is kept to the minimum: metrics accumulate on the device and are read back every
``log_every`` steps, so a CUDA run never waits on the host for a progress bar.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import distributed
from .callbacks import Callback, TensorBoard, Trainer, log_interval
from .checkpoint import pause_point
from .config import TrainConfig
from .data import Dataset, Split, batch_indices, iterate_batches, num_batches
from .errors import ConfigError, TrainingError

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Devices, seeds, optimisers
# ----------------------------------------------------------------------------------------------
def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConfigError(f"unknown device {name!r}; expected cpu, cuda or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int, threads: int | None = None):
    """Run the block as training starts (every generator seeded with ``seed``, ``threads`` CPU
    threads: torch's orthogonal initialisation depends on it), then put the caller's random
    states and thread count back: rebuilding a run's initial model must not change what the caller
    draws next."""
    py, nps, n_threads = random.getstate(), np.random.get_state(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        try:
            if threads:
                torch.set_num_threads(threads)
            seed_everything(seed)
            yield
        finally:
            random.setstate(py)
            np.random.set_state(nps)
            torch.set_num_threads(n_threads)


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        # fused Adam is one kernel for all parameters: measurably faster per step at batch 32
        return torch.optim.Adam(
            params,
            lr=cfg.lr,
            betas=(cfg.beta1, cfg.beta2),
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            fused=device.type in ("cpu", "cuda"),
        )
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; expected adam or sgd")


def cpu_bf16_native(cpuinfo: str | None = None) -> bool:
    """True when this CPU computes bf16 in hardware (x86 AVX512-BF16 or AMX; Arm's BF16), read from
    ``/proc/cpuinfo`` (or ``cpuinfo``, for tests). Elsewhere bf16 autocast is emulated by oneDNN
    and slower than fp32, so ``--amp`` on such a CPU trains in fp32 (with a warning)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return bool({"avx512_bf16", "amx_bf16", "bf16"} & set(value.split()))
    return False


_MEMORY_KEPT = False


def keep_cpu_memory() -> bool:
    """Have glibc's malloc keep freed blocks of up to 32 MB for reuse instead of handing them back to
    the kernel (``mallopt``: ``M_MMAP_THRESHOLD`` 32 MB, ``M_TRIM_THRESHOLD`` 1 GB), once per process.

    A CPU training step allocates and frees the same large activation and gradient tensors every
    step (the article CNN's first feature maps are 11 MB at batch 128). With glibc's defaults each
    is a fresh ``mmap`` whose pages fault in on first touch, which made a step up to twice as slow
    in short runs (benchmarks/README.md); tcmalloc and jemalloc, which PyTorch's CPU performance
    guides preload for the same reason, keep such memory too. True when it took effect; False
    elsewhere (not Linux with glibc), where nothing changes."""
    global _MEMORY_KEPT
    if _MEMORY_KEPT:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        _MEMORY_KEPT = bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False
    return _MEMORY_KEPT


# ----------------------------------------------------------------------------------------------
# Learning-rate schedules: one per-step LambdaLR, built from the config
# ----------------------------------------------------------------------------------------------
def _cos_anneal(start: float, end: float, pct: float) -> float:
    """From ``start`` (pct 0) to ``end`` (pct 1) along half a cosine, as torch's OneCycleLR."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def check_schedule(cfg: TrainConfig) -> None:
    """The schedule fields that only make sense together; a ConfigError naming them otherwise."""
    if cfg.schedule not in ("constant", "step", "cosine", "onecycle"):
        raise ConfigError(f"unknown schedule {cfg.schedule!r}; expected constant, step, cosine or onecycle")
    if cfg.schedule == "cosine" and cfg.min_lr > cfg.lr:
        raise ConfigError(f"--min-lr {cfg.min_lr} is above --lr {cfg.lr}; a cosine schedule goes down to min_lr")


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The schedule as a function of the run's step ``s`` (0-based, across epochs): the factor of
    ``cfg.lr`` that step ``s`` trains with. With ``N = epochs * steps_per_epoch`` steps and
    ``W = round(warmup_epochs * steps_per_epoch)`` warm-up steps:

    - warm-up (every schedule but onecycle): ``s / W`` for ``s < W`` (linear from 0), then
    - ``constant``: 1;
    - ``step``: ``gamma ** (epoch // step_size)``, ``epoch = s // steps_per_epoch`` (0-based);
    - ``cosine``: ``m + (1 - m) (1 + cos(pi p)) / 2``, ``p = (s - W) / (N - W)``, ``m = min_lr / lr``
      (so the step after the last would train at ``min_lr``, as torch's CosineAnnealingLR);
    - ``onecycle``: torch's OneCycleLR (``anneal_strategy="cos"``, ``div_factor=25``,
      ``final_div_factor=1e4``; its momentum cycling is not done): from ``lr/25`` up to ``lr`` over
      the first ``pct = W / N`` of the steps (0.3 without warm-up), then down to ``lr/25/1e4``.

    The curve is over the run's current ``epochs``: extending a run with ``--epochs`` on resume
    stretches the rest of a cosine or onecycle curve from the step it resumes at.
    """
    check_schedule(cfg)
    spe = max(1, steps_per_epoch)
    total = max(1, cfg.epochs * spe)
    warm = round(cfg.warmup_epochs * spe)
    kind = cfg.schedule
    floor = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0

    if kind == "onecycle":
        pct = warm / total if warm else 0.3
        end1 = min(pct, 1.0) * total - 1  # torch's phase ends: pct*N - 1, then N - 1
        end2 = total - 1
        lo, peak, last = 1 / 25, 1.0, 1 / 25 / 1e4

        def onecycle(s: int) -> float:
            if end1 > 0 and s <= end1:
                return _cos_anneal(lo, peak, s / end1)
            start = max(end1, 0.0)
            span = end2 - start
            return _cos_anneal(peak, last, min(1.0, (s - start) / span) if span > 0 else 1.0)

        return onecycle

    def after_warmup(s: int) -> float:
        if kind == "step":
            return cfg.gamma ** ((s // spe) // cfg.step_size)
        if kind == "cosine":
            p = min(1.0, (s - warm) / max(1, total - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))
        return 1.0

    def factor(s: int) -> float:
        if s < warm:
            return s / warm
        return after_warmup(s)

    return factor


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    steps_per_epoch: int,
    *,
    state: dict | None = None,
    global_step: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The config's schedule as a per-step ``LambdaLR`` on ``optimizer`` (stepped after every
    optimizer step). A resumed run passes the ``state`` its checkpoint saved, or (a checkpoint from
    before schedules) the ``global_step`` it resumes at: the rate is then exactly what the
    uninterrupted run had at that step."""
    factor = lr_factor(cfg, steps_per_epoch)
    # the constructor takes one step (factor(0)) and records initial_lr (kept from a loaded optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if state is None and not global_step:
        return scheduler
    if state is not None:
        scheduler.load_state_dict(state)
    else:
        scheduler.last_epoch = global_step
    # the rate of the next step from the curve itself (base * factor, LambdaLR's own expression): the
    # same float the uninterrupted run has, and on the new curve when --epochs extended the run
    lrs = [base * factor(scheduler.last_epoch) for base in scheduler.base_lrs]
    scheduler._last_lr = lrs
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        if torch.is_tensor(group["lr"]):  # a captured step reads the rate from this tensor
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr
    return scheduler


# ----------------------------------------------------------------------------------------------
# Losses and metrics per task
# ----------------------------------------------------------------------------------------------
def compute_loss(task: str, out: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean loss of a batch. Classification: softmax cross-entropy on logits (B, K) or per step
    (B, T, K) against (B, T) targets (-100 = ignore), against targets smoothed by
    ``label_smoothing`` (training only: evaluation reports the plain cross-entropy); regression:
    mean squared error."""
    if task == "regression":
        return F.mse_loss(out.float().reshape(y.shape), y)
    if out.dim() == 3:
        return F.cross_entropy(
            out.float().reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=-100, label_smoothing=label_smoothing
        )
    return F.cross_entropy(out.float(), y, label_smoothing=label_smoothing)


def batch_stats(task: str, out: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
    """(summed loss, correct, count) of a batch as one device tensor, so nothing syncs per step."""
    with torch.no_grad():
        if task == "regression":
            n = torch.full((), float(y.numel()), device=y.device)  # a fill kernel, not a host copy
            return torch.stack([loss.detach() * n, torch.zeros((), device=y.device), n])
        if out.dim() == 3:
            mask = y != -100
            n = mask.sum().float()
            correct = ((out.argmax(-1) == y) & mask).sum().float()
        else:
            n = torch.full((), float(y.shape[0]), device=y.device)
            correct = (out.argmax(-1) == y).sum().float()
        return torch.stack([loss.detach().float() * n, correct, n])


def _forward(model: nn.Module, batch: Split, channels_last: bool) -> torch.Tensor:
    x = batch.x
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    if batch.lengths is not None:
        return model(x, batch.lengths)
    return model(x)


def _autocast(device: torch.device, enabled: bool, cache: bool = True):
    if not enabled:
        return contextlib.nullcontext()
    # a CUDA graph must not keep autocast's cast weights from capture: they would go stale
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)


def metrics_from(task: str, stats: torch.Tensor, prefix: str) -> dict:
    loss_sum, correct, n = (float(v) for v in stats.cpu())
    n = max(n, 1.0)
    out = {f"{prefix}loss": loss_sum / n}
    if task != "regression":
        out[f"{prefix}accuracy"] = correct / n
    return out


# ----------------------------------------------------------------------------------------------
# One epoch, evaluation
# ----------------------------------------------------------------------------------------------
@dataclass
class Progress:
    """The older progress hooks (kept for code that passes ``progress=``); a :class:`~layerlab.callbacks.Callback`
    does the same and more. The library itself only logs."""

    on_epoch_start: Callable[[int, int, int], None] = lambda epoch, epochs, steps: None
    on_steps: Callable[[int, int, dict], None] = lambda steps_done, samples_done, metrics: None
    on_epoch_end: Callable[[int, dict], None] = lambda epoch, row: None


class ProgressCallback(Callback):
    """A :class:`Progress` as a callback, so ``fit(progress=...)`` works as it did."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        self.progress.on_epoch_start(epoch, trainer.epochs, trainer.steps_per_epoch)

    def on_step_end(self, trainer: Trainer, step: int, logs: dict) -> None:
        m = {k: logs[k] for k in ("loss", "accuracy") if k in logs}
        self.progress.on_steps(logs["epoch_step"], logs["samples"], m)

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict) -> None:
        self.progress.on_epoch_end(epoch, row)


@dataclass
class EpochPosition:
    """Where a run is inside an epoch: ``step`` batches of the (seed, epoch) shuffle order done, with
    the running train statistics (summed loss, correct, count) and gradient norms so far. Saved in a
    mid-epoch checkpoint so that resuming gives bit for bit what the uninterrupted epoch gives."""

    step: int = 0
    stats: torch.Tensor | None = None
    grad_norms: list[torch.Tensor] = field(default_factory=list)


class GraphStep:
    """The training step captured once in a CUDA graph and replayed for every full batch.

    A replay launches the whole step (forward, loss, backward, clipping, the optimizer and the
    epoch's running statistics) as one graph: no Python, no kernel launches, no host sync per
    step. The batch is copied into fixed input buffers first; a batch of another size (the epoch's
    last) runs the same step eagerly on the same tensors. Capturing needs a few warm-up steps; they
    are undone (weights, buffers and optimizer state restored in place), so a run with the graph
    trains the steps a run without it does (a model with dropout draws other masks: the warm-up
    used the CUDA random stream). ``capture=False`` runs the same buffers and
    warm-up without a graph: how the tests check that logic on a CPU.
    """

    def __init__(self, model, optimizer, cfg, task: str, device: torch.device, example: Split, capture: bool = True):
        if example.lengths is not None or example.sizes is not None:
            raise ConfigError(
                "--cuda-graph needs batches of one shape; this data has samples of several lengths or sizes"
            )
        self.model, self.optimizer, self.cfg, self.task, self.device = model, optimizer, cfg, task, device
        self.batch_size = min(cfg.batch_size, len(example))
        first = example.take(torch.arange(self.batch_size))
        memory = torch.channels_last if cfg.channels_last and first.x.dim() == 4 else torch.contiguous_format
        self.x = first.x.to(device).contiguous(memory_format=memory)
        self.y = first.y.to(device).clone()
        self.stats = torch.zeros(3, device=device)
        self.norm = torch.zeros((), device=device)
        self.out = self.loss = None
        self.graph = None
        params = [p for p in model.parameters() if p.requires_grad]
        saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
        saved_opt = {id(t): t.clone() for st in optimizer.state.values() for t in st.values() if torch.is_tensor(t)}
        side = torch.cuda.Stream() if capture else None
        if side is not None:
            side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
            for _ in range(3):
                self._body(params)
        if side is not None:
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.out, self.loss = self._body(params)
        # undo the warm-up: the same tensors (the graph reads their addresses) get their values back
        with torch.no_grad():
            for k, v in model.state_dict().items():
                v.copy_(saved[k])
            for st in optimizer.state.values():
                for t in st.values():
                    if torch.is_tensor(t):
                        t.copy_(saved_opt[id(t)]) if id(t) in saved_opt else t.zero_()
            for p in params:
                p.grad.zero_()
        self.stats.zero_()
        self._params = params

    def _body(self, params):
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=False)
        with _autocast(self.device, cfg.amp, cache=False):
            out = _forward(self.model, Split(self.x, self.y), cfg.channels_last)
        loss = compute_loss(self.task, out, self.y, cfg.label_smoothing)
        loss.backward()
        if cfg.clip:
            self.norm.copy_(nn.utils.clip_grad_norm_(params, cfg.clip))
        self.optimizer.step()
        self.stats += batch_stats(self.task, out, self.y, loss)
        return out, loss

    def __call__(self, batch: Split) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on ``batch``; returns the step's (outputs, loss); adds its statistics to ``stats``."""
        if len(batch) != self.batch_size:  # the epoch's last, smaller batch: eagerly, on its own tensors
            x, y = self.x, self.y
            self.x, self.y = batch.x, batch.y
            try:
                return self._body(self._params)
            finally:
                self.x, self.y = x, y
        self.x.copy_(batch.x)
        self.y.copy_(batch.y)
        if self.graph is None:
            return self._body(self._params)
        self.graph.replay()
        return self.out, self.loss


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> torch.optim.Optimizer:
    """Adam as a CUDA graph needs it, in place: capturable, its learning rate a device tensor that
    the schedule fills in place (a float would be baked into the graph at capture)."""
    for group in optimizer.param_groups:
        group["capturable"] = True
        # the schedule's base rate as a host float, so it fills the rate tensor without a device read
        # (a resumed run's optimizer state may hold it as a tensor)
        group["initial_lr"] = float(group.get("initial_lr", group["lr"]))
        lr = group["lr"]
        if not (torch.is_tensor(lr) and lr.device == device):  # a checkpoint's rate loads onto the CPU
            group["lr"] = torch.tensor(float(lr), dtype=torch.float32, device=device)
    return optimizer


def _host_lr(optimizer: torch.optim.Optimizer, scheduler) -> float:
    """The rate the next optimizer step uses, as a host float without a device sync (a captured
    step keeps it in a device tensor; the schedule knows it on the host)."""
    lr = optimizer.param_groups[0]["lr"]
    if not torch.is_tensor(lr):
        return lr
    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        return float(scheduler.base_lrs[0]) * scheduler.lr_lambdas[0](scheduler.last_epoch)
    return float(lr)


def check_cuda_graph(cfg: TrainConfig, device: torch.device, dist) -> None:
    """The settings a captured training step cannot take: one sentence each."""
    if device.type != "cuda":
        raise ConfigError(f"--cuda-graph needs a CUDA device (--device cuda); this run trains on {device.type}")
    if dist is not None:
        raise ConfigError("--cuda-graph trains on one GPU; a torchrun job runs without it")
    if cfg.compile:
        raise ConfigError("--cuda-graph and --compile are two ways to cut per-step overhead; choose one")
    if cfg.optimizer != "adam":
        raise ConfigError(f"--cuda-graph needs --optimizer adam (capturable); got {cfg.optimizer}")


def train_one_epoch(
    model: nn.Module,
    split: Split,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    *,
    task: str,
    device: torch.device,
    generator: torch.Generator,
    progress: Progress | None = None,
    log_every: int = 20,
    start: EpochPosition | None = None,
    steps_before: int = 0,
    checkpoint: Callable[[EpochPosition], None] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    on_log: Callable[[int, dict], None] | None = None,
    dist: distributed.DistContext | None = None,
    graph: GraphStep | None = None,
) -> dict:
    """One pass over ``split`` in shuffled batches of ``cfg.batch_size``; returns train metrics and
    ``lr``, the learning rate the epoch's last step used. With ``graph`` each step is its replay
    (see :class:`GraphStep`; ``model`` and ``optimizer`` are the ones it captured).

    With ``dist`` (a torchrun job; ``model`` is DDP-wrapped) ``cfg.batch_size`` is the global batch:
    this rank trains on its shard of each (see :func:`layerlab.data.iterate_batches`), and the
    metrics, logs and checkpointed statistics are sums over all ranks (``start.stats`` is taken as
    such a sum, so only rank 0 starts from it).

    ``start`` continues an epoch from a mid-epoch checkpoint (its first ``start.step`` batches of the
    same shuffle order are skipped). With ``checkpoint`` and ``cfg.checkpoint_every``, ``checkpoint``
    is called with the position after every ``checkpoint_every``-th step of the run (``steps_before``
    steps were taken in earlier epochs), except the epoch's last (the epoch's own checkpoint follows).
    ``scheduler`` is stepped after every optimizer step. ``on_log(steps_done, logs)`` is called after
    every ``log_every``-th step of the run and after the epoch's last (see
    :meth:`layerlab.callbacks.Callback.on_step_end`); ``progress`` is the older form of it.
    """
    model.train()
    start = start or EpochPosition()
    main = dist is None or dist.is_main
    stats = start.stats.to(device) if start.stats is not None and main else torch.zeros(3, device=device)
    if graph is not None:  # the captured step adds to its own buffer
        stats = graph.stats.copy_(stats)
    shard = (dist.rank, dist.world_size) if dist is not None else None

    def total(t: torch.Tensor) -> torch.Tensor:  # every rank calls it at the same steps: a collective
        return distributed.all_sum(t) if dist is not None else t

    grad_norms: list[torch.Tensor] = [g.to(device) for g in start.grad_norms]
    batches = batch_indices(split, cfg.batch_size, shuffle=True, generator=generator)
    # the epoch's order crosses to the GPU once, not per step (mixed-size data reads each batch's
    # size from the CPU by its first index, so its indices stay there)
    if device.type == "cuda" and batches and split.sizes is None:
        batches = list(torch.cat(batches).to(device, non_blocking=True).split([len(b) for b in batches]))
    n_steps = len(batches)
    every = getattr(cfg, "checkpoint_every", None) if checkpoint is not None else None
    steps = 0
    lr = _host_lr(optimizer, scheduler)
    loss = None
    logged = start.step

    def log_now(m: dict) -> None:
        logs = {**m, "lr": lr, "epoch_step": steps, "samples": min(steps * cfg.batch_size, len(split))}
        if loss is not None:
            logs["batch_loss"] = float(loss.detach())
        if progress:
            progress.on_steps(steps, logs["samples"], m)
        if on_log:
            on_log(steps, logs)

    for index in batches:
        if steps < start.step:  # done before the checkpoint this epoch resumes from
            steps += 1
            continue
        global_n = len(index)  # the step's whole batch, over all ranks
        batch = split.take(torch.tensor_split(index, shard[1])[shard[0]] if shard is not None else index)
        lr = _host_lr(optimizer, scheduler)  # the rate this step trains with
        if graph is not None:
            out, loss = graph(batch)
            if cfg.clip:
                grad_norms.append(graph.norm.clone())
            if scheduler is not None:
                scheduler.step()
        else:
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, cfg.amp):
                out = _forward(model, batch, cfg.channels_last)
            loss = compute_loss(task, out, batch.y, cfg.label_smoothing)
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
        due = every and (steps_before + steps) % every == 0 and steps < n_steps
        log_due = (steps_before + steps) % log_every == 0  # the run's steps: every_n_steps means the same each epoch
        if log_due or due:
            summed = total(stats)
            m = metrics_from(task, summed, "")
            if not math.isfinite(m["loss"]):  # never checkpoint a poisoned model
                raise TrainingError(f"the training loss became {m['loss']} by step {steps}; lower --lr or set --clip")
            if log_due:
                log_now(m)
                logged = steps
            if due:
                checkpoint(EpochPosition(steps, summed.detach().clone(), list(grad_norms)))
    m = metrics_from(task, total(stats), "train_")
    if not math.isfinite(m["train_loss"]):
        raise TrainingError(f"the training loss became {m['train_loss']}; lower --lr or set --clip")
    if logged != steps:  # the epoch's last steps, unless just logged
        log_now({k[6:]: v for k, v in m.items()})
    if grad_norms:
        g = torch.stack(grad_norms).float()
        m["grad_norm_mean"] = float(g.mean())
        m["grad_norm_max"] = float(g.max())
        m["clipped_fraction"] = float((g > cfg.clip).float().mean())
    m["lr"] = lr
    return m


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    split: Split,
    *,
    batch_size: int = 1000,
    device: torch.device | None = None,
    amp: bool = False,
    channels_last: bool = True,
    to_cpu: bool = True,
) -> torch.Tensor:
    """Model outputs for every sample of ``split``, concatenated (on the CPU unless ``to_cpu=False``)."""
    model.eval()
    device = device or next(model.parameters()).device
    outs = []
    for batch in iterate_batches(split, batch_size):
        batch = Split(batch.x.to(device), batch.y, None if batch.lengths is None else batch.lengths.to(device))
        with _autocast(device, amp):
            out = _forward(model, batch, channels_last).float()
        outs.append(out.cpu() if to_cpu else out)
    out = torch.cat(outs)
    if split.sizes is not None:  # batched by size: put every output back in the split's order
        order = torch.cat(batch_indices(split, batch_size)).to(out.device)
        out = torch.empty_like(out).index_copy_(0, order, out)
    return out


@torch.no_grad()
def compute_metrics(task: str, out: torch.Tensor, y: torch.Tensor, num_classes: int | None = None) -> dict:
    """Every number an evaluation reports, from a model's outputs on a split: the one place they
    are computed, so fit, ``evaluate``, the report and the inspection views cannot disagree.

    Args:
        out: logits ``(N, K)`` or ``(N, T, K)``; regression outputs ``(N, ...)``.
        y: class targets ``(N,)`` or ``(N, T)`` (-100 = not counted); regression targets.
    Returns:
        ``loss`` (mean cross-entropy, or mean squared error), ``n`` (samples) and ``targets``
        (targets counted); for classification also ``accuracy``, ``confusion`` (``(K, K)`` int64
        tensor, row = true class, column = predicted) and ``per_class_accuracy`` (recall of each
        class, None for a class with no target); for regression ``mse``.
    """
    m = {"loss": float(compute_loss(task, out, y)), "n": int(out.shape[0])}
    if task == "regression":
        m["targets"] = int(y.numel())
        m["mse"] = m["loss"]
        return m
    K = int(num_classes or out.shape[-1])
    pred = out.argmax(-1).reshape(-1)
    yv = y.reshape(-1).to(pred.device)
    keep = yv != -100
    yv, pred = yv[keep].long(), pred[keep].long()
    cm = torch.bincount(yv * K + pred, minlength=K * K).reshape(K, K).cpu()
    support = cm.sum(1)
    n = int(support.sum())
    m["targets"] = n
    m["accuracy"] = float(cm.diagonal().sum()) / max(n, 1)
    m["confusion"] = cm
    m["per_class_accuracy"] = [float(cm[k, k]) / int(support[k]) if support[k] else None for k in range(K)]
    return m


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    *,
    task: str = "classification",
    batch_size: int = 1000,
    device: torch.device | None = None,
    amp: bool = False,
    channels_last: bool = True,
    prefix: str = "",
) -> dict:
    """Loss and accuracy (classification) or loss (MSE, regression) over ``split``, plus ``n``: the
    per-epoch numbers of :func:`fit`, by :func:`compute_metrics`."""
    out = predict_logits(
        model, split, batch_size=batch_size, device=device, amp=amp, channels_last=channels_last, to_cpu=False
    )
    m = compute_metrics(task, out, split.y.to(out.device))
    row = {f"{prefix}loss": m["loss"]}
    if "accuracy" in m:
        row[f"{prefix}accuracy"] = m["accuracy"]
    row[f"{prefix}n"] = len(split)
    return row


# ----------------------------------------------------------------------------------------------
# fit
# ----------------------------------------------------------------------------------------------
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


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffle order of an epoch depends only on (seed, epoch): resuming reproduces it exactly."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def held_out_prefix(dataset: Dataset) -> str:
    """What the split evaluated after each epoch is, as the prefix of its metrics: ``val_`` a
    validation split held out of the training set (it then chooses the ``best`` weights),
    ``train_eval_`` the training data itself (arrays fitted with no held-out data: a name that does
    not pass it off as a test), else ``test_`` (the test set: reported, never chosen on)."""
    if "validation_fraction" in dataset.meta:
        return "val_"
    return "train_eval_" if dataset.meta.get("held_out") == "training" else "test_"


def fit(
    model: nn.Module,
    dataset: Dataset,
    cfg: TrainConfig,
    *,
    run=None,
    progress: Progress | Callback | None = None,
    callbacks: list[Callback] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    start_epoch: int = 0,
    history: list[dict] | None = None,
    position: EpochPosition | None = None,
    scheduler_state: dict | None = None,
    log_every: int | None = None,
    dist: distributed.DistContext | None = None,
) -> FitResult:
    """Train ``model`` on ``dataset.train`` for ``cfg.epochs`` epochs, evaluating on ``dataset.test``
    after each (a validation split when one was held out: rows have ``val_*`` columns, and the
    lowest ``val_loss`` is the ``best``; on the test set rows have ``test_*`` and nothing is chosen).
    With a :class:`~layerlab.rundir.RunDir`, metrics and checkpoints are written as it goes.

    Args:
        callbacks: :class:`~layerlab.callbacks.Callback` objects, called in order; one that sets
            ``trainer.stop_training`` ends training after the current epoch (recorded as
            ``stopped_early`` in the result and in ``run.json``). ``cfg.tensorboard`` adds a
            :class:`~layerlab.callbacks.TensorBoard` writing there.
        progress: a :class:`Progress` (the older hooks), or one more callback (the CLI's progress bar).
        optimizer, start_epoch, history, position: continue an interrupted run, at an epoch
            boundary or mid-epoch (see :func:`layerlab.api.resume`).
        scheduler_state: the learning-rate schedule's saved state; a resumed run without it reads
            it from ``run``'s checkpoint (or, in a checkpoint from before schedules, derives it
            from the step it resumes at).
        log_every: steps between per-step callback calls (default 20, or what the callbacks ask for).
        dist: this process's place in a torchrun job (:func:`layerlab.distributed.context`): the
            model is trained under DistributedDataParallel, ``cfg.batch_size`` is the global batch,
            ``run`` is given to rank 0 only, and every rank evaluates the whole held-out split.

    The learning rate follows ``cfg.schedule`` (see :func:`lr_factor`), stepped after every
    optimizer step; each row's ``lr`` is the rate its last step used. A NaN or infinite loss
    raises :class:`~layerlab.errors.TrainingError` saying which checkpoint is kept.
    """
    cbs = list(callbacks or [])
    if cfg.tensorboard and (dist is None or dist.is_main):  # one writer of the logs, as of the run
        cbs.append(TensorBoard(cfg.tensorboard))
    if isinstance(progress, Callback):
        cbs.append(progress)
    elif progress is not None:
        cbs.append(ProgressCallback(progress))
    try:
        return _fit(
            model,
            dataset,
            cfg,
            run,
            cbs,
            optimizer,
            start_epoch,
            history,
            position,
            scheduler_state,
            log_every or log_interval(cbs),
            dist,
        )
    except TrainingError as e:
        kept = run.kept() if run is not None else "no checkpoint is written without a run directory"
        raise TrainingError(f"{e}; {kept}") from None
    finally:
        for cb in cbs:  # files and live displays are released however training ended
            cb.close()


def _fit(
    model, dataset, cfg, run, callbacks, optimizer, start_epoch, history, position, scheduler_state, log_every, dist
) -> FitResult:
    device = next(model.parameters()).device
    if device.type == "cpu":
        keep_cpu_memory()
        if cfg.amp and not cpu_bf16_native():
            log.warning(
                "--amp: this CPU has no bf16 in hardware (AVX512-BF16 or AMX), where bf16 runs emulated and "
                "slower than fp32; training in fp32"
            )
            cfg = dataclasses.replace(cfg, amp=False)
    if cfg.cuda_graph:
        check_cuda_graph(cfg, device, dist)
    if cfg.channels_last and device.type in ("cpu", "cuda") and any(p.dim() == 4 for p in model.parameters()):
        model = model.to(memory_format=torch.channels_last)
    optimizer = optimizer or make_optimizer(model, cfg, device)
    if cfg.cuda_graph:
        make_capturable(optimizer, device)
    train_split = _to_device(dataset.train, device)
    test_split = _to_device(dataset.test, device)
    if dist is not None:
        distributed.check_batch(cfg.batch_size, len(train_split), dist.world_size)
        step_model = distributed.wrap(model, device)
        step_model = torch.compile(step_model) if cfg.compile else step_model
        # evaluated without the DDP wrapper: its forward would broadcast buffers, a collective per batch
        eval_model = torch.compile(model) if cfg.compile else model
    else:
        step_model = torch.compile(model) if cfg.compile else model
        eval_model = step_model
    result = FitResult(history=list(history or []), amp=cfg.amp)
    held = held_out_prefix(dataset)
    validated = held == "val_"
    best = min((r.get("val_loss", math.inf) for r in result.history), default=math.inf)
    t_start = time.perf_counter()
    steps = num_batches(train_split, cfg.batch_size)
    done_steps = start_epoch * steps + (position.step if position is not None else 0)
    resuming = done_steps > 0
    if resuming and scheduler_state is None and run is not None:
        scheduler_state = run.training_state().get("scheduler")  # None in a checkpoint from before schedules
    scheduler = make_scheduler(optimizer, cfg, steps, state=scheduler_state, global_step=done_steps)
    factor = lr_factor(cfg, steps)
    graph = None
    if cfg.cuda_graph:
        t_graph = time.perf_counter()
        model.train()
        graph = GraphStep(model, optimizer, cfg, dataset.task, device, train_split)
        torch.cuda.synchronize()
        result.graph_capture_seconds = time.perf_counter() - t_graph
        log.info("captured the training step in a CUDA graph in %.2fs", result.graph_capture_seconds)
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
        n_train=len(train_split),
        start_epoch=start_epoch,
        global_step=done_steps,
        lr_at=lambda s: scheduler.base_lrs[0] * factor(s),
    )
    if run is not None and resuming:
        run.record_stop(None)  # a run that stopped early and is resumed trains on: it no longer stopped there
    for cb in callbacks:
        cb.on_train_begin(trainer)
    for epoch in range(start_epoch, cfg.epochs):
        trainer.epoch = epoch + 1
        for cb in callbacks:
            cb.on_epoch_begin(trainer, epoch + 1)
        t0 = time.perf_counter()
        row = {"epoch": epoch + 1}

        def checkpoint(pos: EpochPosition, epoch=epoch) -> None:
            run.save_checkpoint(
                model,
                optimizer,
                result.history,
                epoch=epoch,
                step=pos.step,
                train_stats=pos.stats,
                grad_norms=pos.grad_norms,
                best="keep" if validated else "none",
                scheduler=scheduler,
            )

        def on_log(epoch_step: int, logs: dict, epoch=epoch) -> None:
            trainer.global_step = epoch * steps + epoch_step
            logs["epoch"] = epoch + 1
            for cb in callbacks:
                cb.on_step_end(trainer, trainer.global_step, logs)

        row.update(
            train_one_epoch(
                step_model,
                train_split,
                optimizer,
                cfg,
                task=dataset.task,
                device=device,
                generator=epoch_generator(cfg.seed, epoch),
                log_every=log_every,
                start=position if epoch == start_epoch else None,
                steps_before=epoch * steps,
                # ranks without the run still reach each checkpoint's sum of statistics (a collective)
                checkpoint=checkpoint if run is not None else (_no_checkpoint if dist is not None else None),
                scheduler=scheduler,
                on_log=on_log if callbacks else None,
                dist=dist,
                graph=graph,
            )
        )
        lr_used = row.pop("lr")
        trainer.global_step = (epoch + 1) * steps
        if device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        row.update(
            evaluate(
                eval_model,
                test_split,
                task=dataset.task,
                batch_size=cfg.eval_batch_size,
                device=device,
                amp=cfg.amp,
                channels_last=cfg.channels_last,
                prefix=held,
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
        row["samples_per_second"] = round(len(train_split) / max(t1 - t0, 1e-9), 1)
        row["lr"] = lr_used
        result.history.append(row)
        # before the checkpoint, so what callbacks add to the row, and a stop, are in it
        for cb in callbacks:
            cb.on_epoch_end(trainer, epoch + 1, row)
        improved = validated and row["val_loss"] < best
        if improved:
            best = row["val_loss"]
        if run is not None:
            keep = "keep" if validated else "none"
            run.save_checkpoint(
                model,
                optimizer,
                result.history,
                epoch=epoch + 1,
                best="this" if improved else keep,
                scheduler=scheduler,
            )
            pause_point("after-epoch")
        log.info("epoch %d/%d %s", epoch + 1, cfg.epochs, {k: v for k, v in row.items() if k != "epoch"})
        if trainer.stop_training:
            if epoch + 1 < cfg.epochs:  # a stop asked at the last epoch stops nothing
                reason = trainer.stop_reason or "a callback set stop_training"
                result.stopped_early = {"epoch": epoch + 1, "reason": reason}
                log.info("training stopped early after epoch %d: %s", epoch + 1, reason)
                if run is not None:
                    run.record_stop(result.stopped_early)
            break
    result.wall_seconds = time.perf_counter() - t_start
    if result.history and validated:
        result.best_epoch = min(result.history, key=lambda r: r["val_loss"])["epoch"]
    for cb in callbacks:
        cb.on_train_end(trainer, result.history)
    return result


def _no_checkpoint(pos: EpochPosition) -> None:
    """What a rank other than rank 0 does at a checkpoint: nothing (rank 0 alone writes the run)."""


def _to_device(split: Split, device: torch.device) -> Split:
    return split.to(device)
