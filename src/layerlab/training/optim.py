"""The optimizer a config names."""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn

from ..choices import OPTIMIZERS
from ..config import TrainConfig
from ..errors import ConfigError
from ..recipe import parse_args

#: The optimizers whose ``eps`` and ``betas`` are the config's Adam fields (Keras's epsilon).
_ADAM_FAMILY = ("adam", "adamw", "nadam", "radam", "adamax")


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The ``torch.optim`` class of a lower-case name (:data:`layerlab.choices.OPTIMIZERS`)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    found = {k.lower(): v for k, v in vars(torch.optim).items() if isinstance(v, type)}
    if name not in found:
        raise ConfigError(f"this torch ({torch.__version__}) has no optimizer {name!r}")
    return found[name]


def optimizer_kwargs(cfg: TrainConfig, device: torch.device) -> dict:
    """The keyword arguments ``cfg`` gives its optimizer: ``lr``; the Adam fields (``betas``, Keras's
    ``eps``) for the Adam family; ``momentum`` where it takes one; ``weight_decay`` where it takes
    one (AdamW keeps its own default 0.01 unless ``--weight-decay`` is above 0); then
    ``--optimizer-arg``, checked against the optimizer's signature."""
    cls = optimizer_class(cfg.optimizer)
    takes = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params")]
    kw: dict = {"lr": cfg.lr}
    if cfg.optimizer in _ADAM_FAMILY:
        kw.update(betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    if "momentum" in takes and cfg.optimizer in ("sgd", "rmsprop"):
        kw["momentum"] = cfg.momentum
    if "weight_decay" in takes and (cfg.weight_decay > 0 or cfg.optimizer in ("adam", "sgd")):
        kw["weight_decay"] = cfg.weight_decay
    if cfg.optimizer == "adam":  # fused Adam is one kernel for all parameters: faster per step at batch 32
        kw["fused"] = device.type in ("cpu", "cuda")
    args = parse_args(cfg.optimizer_args)
    for key in args:
        if key == "lr":
            raise ConfigError("--optimizer-arg lr: the learning rate is --lr (and --schedule)")
        if key not in takes:
            raise ConfigError(
                f"--optimizer-arg {key}: {cls.__name__} takes no option {key!r}; it takes "
                f"{', '.join(t for t in takes if t != 'lr')}"
            )
    if "betas" in args and isinstance(args["betas"], list):
        args["betas"] = tuple(args["betas"])
    return {**kw, **args}


def check_optimizer(cfg: TrainConfig, device: torch.device) -> None:
    """One sentence, before anything is made, for an optimizer option its constructor refuses
    (an unknown name, a value out of range): the optimizer is built once on a stand-in parameter."""
    kw = optimizer_kwargs(cfg, device)
    probe = torch.zeros(1, device=device, requires_grad=True)
    try:
        optimizer_class(cfg.optimizer)([probe], **kw)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"--optimizer {cfg.optimizer}: {' '.join(str(e).split())}") from None


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer ``cfg`` names, from ``torch.optim``, over the trainable parameters
    (:func:`optimizer_kwargs` says with which options)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return optimizer_class(cfg.optimizer)(params, **optimizer_kwargs(cfg, device))


def host_lr(optimizer: torch.optim.Optimizer, scheduler) -> float:
    """The rate the next optimizer step uses, as a host float without a device sync (a captured
    step keeps it in a device tensor; the schedule knows it on the host)."""
    lr = optimizer.param_groups[0]["lr"]
    if not torch.is_tensor(lr):
        return lr
    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        return float(scheduler.base_lrs[0]) * scheduler.lr_lambdas[0](scheduler.last_epoch)
    return float(lr)
