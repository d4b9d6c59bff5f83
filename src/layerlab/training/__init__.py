"""Training as plain named functions (``train_one_epoch``, ``evaluate``, ``fit``), in modules by job:

- :mod:`~layerlab.training.runtime`: the device, seeds, CPU threads, glibc's memory reuse, bf16;
- :mod:`~layerlab.training.optim` and :mod:`~layerlab.training.schedules`: the optimizer and the
  per-step learning-rate schedule a config names;
- :mod:`~layerlab.training.metrics`: losses and metrics per task (the one metrics function);
- :mod:`~layerlab.training.sources`: the batch source protocol the loop and evaluation read from,
  and its in-memory implementation;
- :mod:`~layerlab.training.graphs`: the training step as a CUDA graph;
- :mod:`~layerlab.training.evaluation`: outputs and per-epoch evaluation;
- :mod:`~layerlab.training.checkpoints`: writing the run directory, as a callback;
- :mod:`~layerlab.training.loop`: ``train_one_epoch`` and ``fit``.

The package imports neither :mod:`layerlab.api` nor :mod:`layerlab.cli` (an import-linter contract).
"""

from ..callbacks import Trainer
from .checkpoints import EpochPosition, RunCheckpoint
from .evaluation import evaluate, forward, predict_logits
from .graphs import GraphStep, check_cuda_graph, make_capturable
from .loop import EpochHooks, FitResult, Resume, TrainStep, check_training, fit, held_out_prefix, train_one_epoch
from .metrics import batch_stats, compute_loss, compute_metrics, metrics_from
from .optim import host_lr, make_optimizer
from .runtime import autocast, cpu_bf16_native, keep_cpu_memory, resolve_device, seed_everything, seeded
from .schedules import check_schedule, lr_factor, make_scheduler
from .sources import BatchSource, Chunk, Step, TensorSource, as_source, epoch_generator, tensor_fingerprint

__all__ = [
    "BatchSource",
    "Chunk",
    "EpochHooks",
    "EpochPosition",
    "FitResult",
    "GraphStep",
    "Resume",
    "RunCheckpoint",
    "Step",
    "TensorSource",
    "TrainStep",
    "Trainer",
    "as_source",
    "autocast",
    "batch_stats",
    "check_cuda_graph",
    "check_schedule",
    "check_training",
    "compute_loss",
    "compute_metrics",
    "cpu_bf16_native",
    "epoch_generator",
    "evaluate",
    "fit",
    "forward",
    "held_out_prefix",
    "host_lr",
    "keep_cpu_memory",
    "lr_factor",
    "make_capturable",
    "make_optimizer",
    "make_scheduler",
    "metrics_from",
    "predict_logits",
    "resolve_device",
    "seed_everything",
    "seeded",
    "tensor_fingerprint",
    "train_one_epoch",
]
