"""The training step as a CUDA graph (``--cuda-graph``): captured once, replayed for every full batch."""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from ..config import TrainConfig
from ..data import Split
from ..errors import ConfigError
from . import runtime
from .evaluation import forward
from .metrics import batch_stats, compute_loss


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
        with runtime.autocast(self.device, cfg.amp, cache=False):
            out = forward(self.model, Split(self.x, self.y), cfg.channels_last)
        loss = compute_loss(self.task, out, self.y, cfg.label_smoothing, cfg.loss, cfg.class_weight)
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
        assert self.out is not None and self.loss is not None  # captured with the graph
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
