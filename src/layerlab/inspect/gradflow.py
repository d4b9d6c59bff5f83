"""Gradient flow through time (article 3.2.3 and 6.2.1), measured on a real model.

Backpropagation through time multiplies one Jacobian per step::

    dL/dh_t = dL/dh_T (dh_T/dh_{T-1}) ... (dh_{t+1}/dh_t),     dh_t/dh_{t-1} = diag(1 - h_t^2) U

(for a tanh RNN with the loss on the last state). We measure two curves per recurrent layer, each
averaged over a batch of samples:

``grad_norm[t]``
    ``||dL/dh_t||``, the total gradient of the loss with respect to the hidden state at step t
    (through every later step and every output that reads it). The loss is the engine's mean loss
    times the batch size, so each sample's gradient is the gradient of its own loss and the
    numbers do not depend on the batch size.
``jacobian_norm[t]``
    ``||dh_T/dh_t||_F / sqrt(H)``: the Frobenius norm of the Jacobian from the state at step t to
    the last state of the same layer, divided by ``sqrt(H)`` (the root-mean-square singular value,
    so it is 1 at ``t = T`` and ``a^{T-t}`` when every factor is ``a I``). It is computed from
    vector-Jacobian products of ``h_T``: with ``probes=0`` exactly, one product per basis vector
    ``e_i`` (H backward passes, each giving row i of every ``dh_T/dh_t`` at once); with
    ``probes=K`` estimated from K random unit vectors v per sample, using
    ``E ||v^T J||^2 = ||J||_F^2 / H``. For an LSTM the derivative is taken with respect to
    ``h_t`` alone (the cell state ``c_t`` held fixed), which is what flows through ``h_t``.

``jacobian_spectral[t]``
    ``||dh_T/dh_t||_2``, the largest singular value: the gain of the direction of ``h_t`` that
    reaches ``h_T`` best (a memory can live in a few such directions while the rest decays, which
    the Frobenius mean hides). Only in exact mode, from the full Jacobians the H products build.

A geometric decay ``norm(t) ~ A rho^(T-t)`` is fitted by least squares on ``log norm``; ``rho``
(the *decay factor per step*, < 1 vanishing, > 1 exploding) and ``steps_per_10x`` (how many
steps back the norm takes to shrink tenfold) are reported.

The model must expose ``forward_with_states(x, lengths=None) -> (out, states)``, ``states`` a
list over layers of lists over time of ``(B, H)`` tensors (the recurrent models of
:mod:`layerlab.models.rnn` do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
import torch.nn as nn

from ..errors import ConfigError
from ..models import contract

#: Hidden sizes up to this get the exact Jacobian norm by default; larger ones K random probes.
EXACT_MAX_HIDDEN = 64
DEFAULT_PROBES = 32
#: Vector-Jacobian products computed together (one vmapped backward pass each chunk).
PROBE_CHUNK = 64


@dataclass
class DecayFit:
    """``norm(t) ~ A * factor^(T-t)`` fitted on ``log norm`` over the steps ``first..last`` (1-based)."""

    factor: float
    r2: float
    first: int
    last: int

    @property
    def rate(self) -> float:
        """``-ln(factor)``: nats lost per step back in time (> 0 vanishing)."""
        return -math.log(self.factor) if self.factor > 0 else math.inf

    @property
    def steps_per_10x(self) -> float:
        """Steps back for a tenfold shrink (negative: tenfold growth); inf when flat."""
        r = self.rate
        return math.log(10) / r if r != 0 else math.inf


@dataclass
class LayerFlow:
    """Curves of one recurrent layer, index ``t-1`` for step ``t = 1..T``."""

    layer: int
    hidden: int
    grad_norm: np.ndarray  # (T,) mean over the batch of ||dL/dh_t||
    jacobian_norm: np.ndarray  # (T,) mean over the batch of ||dh_T/dh_t||_F / sqrt(H)
    jacobian_spectral: np.ndarray | None = None  # (T,) mean of ||dh_T/dh_t||_2 (exact mode only)
    grad_fit: DecayFit | None = None
    jacobian_fit: DecayFit | None = None
    spectral_fit: DecayFit | None = None


@dataclass
class GradFlow:
    """Gradient flow of one model (one set of weights) on one batch."""

    label: str  # e.g. "init", "trained"
    loss: float
    samples: int
    method: str  # how the Jacobian norm was obtained
    layers: list[LayerFlow] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.layers[0].grad_norm) if self.layers else 0

    def rows(self) -> list[dict]:
        """Long format for CSV: one row per (layer, t)."""
        out = []
        for lf in self.layers:
            for t in range(len(lf.grad_norm)):
                out.append(
                    {
                        "weights": self.label,
                        "layer": lf.layer,
                        "t": t + 1,
                        "grad_norm": float(lf.grad_norm[t]),
                        "jacobian_norm": float(lf.jacobian_norm[t]),
                        "jacobian_spectral": None if lf.jacobian_spectral is None else float(lf.jacobian_spectral[t]),
                    }
                )
        return out

    def fit_rows(self) -> list[dict]:
        out = []
        for lf in self.layers:
            for measure, fit in (
                ("grad_norm", lf.grad_fit),
                ("jacobian_norm", lf.jacobian_fit),
                ("jacobian_spectral", lf.spectral_fit),
            ):
                if fit is None:
                    continue
                out.append(
                    {
                        "weights": self.label,
                        "layer": lf.layer,
                        "measure": measure,
                        "decay_factor": fit.factor,
                        "rate_per_step": fit.rate,
                        "steps_per_10x": fit.steps_per_10x,
                        "r2": fit.r2,
                        "first_t": fit.first,
                        "last_t": fit.last,
                    }
                )
        return out


def fit_decay(norms: np.ndarray, *, floor: float = 1e-30) -> DecayFit | None:
    """Least-squares fit of ``log norm(t) = a + (T - t) log(factor)`` over the finite steps above
    ``floor`` (float32 gradients underflow after a long enough decay). None with < 2 such steps."""
    norms = np.asarray(norms, dtype=np.float64)
    t = np.arange(1, len(norms) + 1, dtype=np.float64)
    ok = np.isfinite(norms) & (norms > floor)
    if ok.sum() < 2:
        return None
    tt, y = t[ok], np.log(norms[ok])
    slope, intercept = np.polyfit(tt, y, 1)
    pred = intercept + slope * tt
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    # norm(t) = A factor^(T-t)  =>  d log norm / dt = -log factor
    return DecayFit(factor=float(math.exp(-slope)), r2=r2, first=int(tt[0]), last=int(tt[-1]))


def has_states(model: nn.Module) -> bool:
    return contract.states_forward(model) is not None


def _loss(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from ..engine import compute_loss

    return compute_loss(task, out, y)


def gradient_flow(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    task: str,
    lengths: torch.Tensor | None = None,
    probes: int | None = None,
    label: str = "",
    seed: int = 0,
) -> GradFlow:
    """Measure ``||dL/dh_t||`` and ``||dh_T/dh_t||`` for every layer and step (see the module docs).

    Args:
        model: a recurrent model with ``forward_with_states``.
        x: inputs ``(B, T, F)``; y: targets as the engine's loss takes them; ``task`` its task.
        lengths: ``(B,)`` for padded sequences (the curves still run to the last step).
        probes: 0 for the exact Jacobian norm (H backward passes), K > 0 for K random unit probes;
            None picks exact up to :data:`EXACT_MAX_HIDDEN` hidden units, else :data:`DEFAULT_PROBES`.
        label: a name for these weights (``init``, ``trained``).
    """
    if not has_states(model):
        raise ConfigError(
            f"{type(model).__name__} does not expose its hidden states (forward_with_states); "
            f"gradient flow through time applies to the recurrent models"
        )
    was_training = model.training
    model.eval()  # no dropout: the curves describe the weights, not a random mask
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    if lengths is not None:
        lengths = lengths.to(device)
    try:
        with torch.enable_grad():
            out, states = cast(Any, model).forward_with_states(x, lengths)  # (the recurrent models')
            if not states or not states[0]:
                raise ConfigError(f"{type(model).__name__}.forward_with_states returned no hidden states")
            batch = x.shape[0]
            loss = _loss(task, out, y) * batch
            flat = [h for layer in states for h in layer]
            grads = torch.autograd.grad(loss, flat, retain_graph=True, allow_unused=True)
            result = GradFlow(label=label, loss=float(loss.detach()) / batch, samples=batch, method="")
            g_iter = iter(grads)
            gen = torch.Generator(device=device).manual_seed(seed)
            methods = set()
            for li, layer in enumerate(states):
                g_layer = [next(g_iter) for _ in layer]
                gnorm = torch.stack(
                    [
                        (g if g is not None else torch.zeros_like(h)).detach().double().flatten(1).norm(dim=1).mean()
                        for g, h in zip(g_layer, layer, strict=True)
                    ]
                )
                jnorm, spectral, method = _jacobian_norms(layer, probes, gen)
                methods.add(method)
                lf = LayerFlow(
                    layer=li + 1,
                    hidden=int(layer[-1].shape[-1]),
                    grad_norm=gnorm.cpu().numpy(),
                    jacobian_norm=jnorm,
                    jacobian_spectral=spectral,
                )
                lf.grad_fit = fit_decay(lf.grad_norm)
                lf.jacobian_fit = fit_decay(lf.jacobian_norm)
                lf.spectral_fit = fit_decay(spectral) if spectral is not None else None
                result.layers.append(lf)
            result.method = "; ".join(sorted(methods))
    finally:
        model.train(was_training)
    return result


def _jacobian_norms(
    layer: list[torch.Tensor], probes: int | None, gen: torch.Generator
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Mean over the batch of ``||dh_T/dh_t||_F / sqrt(H)`` for every t of one layer, and (exact
    mode only) of the spectral norm ``||dh_T/dh_t||_2``, the gain of the best-kept direction."""
    h_T = layer[-1]  # (B, H)
    B, H = h_T.shape[0], h_T[0].numel()
    if probes is None:
        probes = 0 if H <= EXACT_MAX_HIDDEN else DEFAULT_PROBES
    sq = torch.zeros(B, len(layer), dtype=torch.float64, device=h_T.device)  # (B, T) sum of ||v^T J_t||^2
    J = None
    if probes == 0:
        J = torch.zeros(B, len(layer), H, H, dtype=torch.float64, device=h_T.device)  # (B, T, H, H) dh_T/dh_t
        vectors = torch.eye(H, dtype=h_T.dtype, device=h_T.device).reshape(H, 1, *h_T.shape[1:])
        vectors = vectors.expand(H, *h_T.shape)  # (H, B, H): e_i for every sample
        scale, method = 1.0, "exact Frobenius norm (one vector-Jacobian product per hidden unit)"
    else:
        v = torch.randn((probes, *h_T.shape), generator=gen, device=h_T.device, dtype=torch.float64)
        v = v / v.flatten(2).norm(dim=2).clamp_min(1e-30).reshape(probes, B, *[1] * (h_T.dim() - 1))
        vectors = v.to(h_T.dtype)  # (K, B, H) unit rows
        scale, method = H / probes, f"Frobenius norm estimated from {probes} random unit probes"
    for start in range(0, vectors.shape[0], PROBE_CHUNK):
        chunk = vectors[start : start + PROBE_CHUNK]
        for rows, t in _vjps(h_T, layer, chunk):
            rows = rows.detach().double().flatten(2)  # (K, B, H)
            sq[:, t] += rows.pow(2).sum(2).sum(0)
            if J is not None:
                J[:, t, start : start + rows.shape[0]] = rows.transpose(0, 1)  # rows i of dh_T/dh_t
    fro = (sq * scale).sqrt() / math.sqrt(H)  # (B, T)
    spectral = None
    if J is not None:
        spectral = torch.linalg.matrix_norm(J, ord=2).mean(0).cpu().numpy()  # (T,) largest singular value
        method += "; spectral norm from the full Jacobians"
    return fro.mean(0).cpu().numpy(), spectral, method


def _vjps(h_T: torch.Tensor, layer: list[torch.Tensor], vectors: torch.Tensor):
    """Yield ``(v^T dh_T/dh_t for every v, t)``, ``(K, B, H)`` each, for the K vectors ``(K, B, H)``:
    one vmapped backward pass (``is_grads_batched``), or K plain ones where vmap cannot run a op."""
    try:
        grads = torch.autograd.grad(
            h_T, layer, grad_outputs=vectors, retain_graph=True, allow_unused=True, is_grads_batched=True
        )
        for t, g in enumerate(grads):
            if g is not None:
                yield g, t
        return
    except (RuntimeError, NotImplementedError):  # an op without a batching rule
        pass
    for v in vectors:
        grads = torch.autograd.grad(h_T, layer, grad_outputs=v, retain_graph=True, allow_unused=True)
        for t, g in enumerate(grads):
            if g is not None:
                yield g[None], t
