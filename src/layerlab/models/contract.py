"""The model contract: what layerlab reads from a model besides calling it.

Any ``torch.nn.Module`` whose ``forward(x)`` (or ``forward(x, lengths)`` for padded sequences)
returns logits trains, evaluates, predicts, exports and is inspected. A model may also declare the
attributes of :class:`ModelContract`; each is optional, and layerlab reads it through the one
helper of the same name below, which gives a plain module the default shown. Code elsewhere reads a
model through these helpers, never with its own ``getattr``, so the list here is the whole contract.

========================  ==========================  ===============================================
attribute                 default for a plain module  read by
========================  ==========================  ===============================================
``input_shape``           None (the caller's shape)   summary: the shape one sample has
``input_kind``            None (float samples)        ``"tokens"``: integer ids ``(B, T)``;
                                                      ``"sequence"``: ``(B, T, F)`` (summary, export)
``steps_first``           False                       a ``(T, F)`` sample read as F channels along T
``min_size``              None (no minimum)           the smallest side an image may have (fit,
                                                      predict, export's metadata)
``any_size``              False                       True: the spatial axes may change size (export)
``head``                  ``"last"``                  ``"step"``: one output per step ``(B, T, K)``
``bidirectional``         False                       True: reads whole sequences (generate refuses)
``forward_with_states``   None                        ``(x, lengths) -> (logits, states)``: the loop
                                                      over time keeping every ``h_t`` (gradient flow,
                                                      summary's operation count)
``step_logits``           None                        ``(x, state) -> (logits, state)``: per-step
                                                      logits from a state (generate samples text)
``fused`` (on a layer)    True                        None: a recurrent layer loops in Python, which
                                                      the ONNX exporter unrolls for one length
========================  ==========================  ===============================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from ..choices import HEADS  # noqa: F401  (the values ``head`` may take)

#: the values ``input_kind`` may take (None: float samples, images or anything else)
INPUT_KINDS = ("tokens", "sequence")


@runtime_checkable
class ModelContract(Protocol):
    """Everything layerlab reads from a model (each member is optional; see the module's table)."""

    input_shape: tuple[int, ...]
    input_kind: str | None
    steps_first: bool
    min_size: int | None
    any_size: bool
    head: str
    bidirectional: bool

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor: ...

    def forward_with_states(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]: ...

    def step_logits(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, object]: ...


def input_shape(model: nn.Module, default: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
    """The shape of one sample the model was built for, else ``default``."""
    shape = getattr(model, "input_shape", None)
    return default if shape is None else tuple(shape)


def input_kind(model: nn.Module) -> str | None:
    """``"tokens"`` (integer ids), ``"sequence"`` (``(B, T, F)``) or None (float samples of any shape)."""
    return getattr(model, "input_kind", None)


def reads_tokens(model: nn.Module) -> bool:
    """True for a model that reads integer token ids (a text or token task)."""
    return input_kind(model) == "tokens"


def steps_first(model: nn.Module) -> bool:
    """True for a model that reads a ``(T, F)`` sample as F channels along T (a sequence CNN)."""
    return bool(getattr(model, "steps_first", False))


def min_size(model: nn.Module) -> int | None:
    """The smallest side (height, width, depth, length) an input may have; None: no minimum."""
    return getattr(model, "min_size", None)


def any_size(model: nn.Module) -> bool:
    """True when the model's spatial (or time) axes may change size (a CNN ending in a global pool)."""
    return bool(getattr(model, "any_size", False))


def head(model: nn.Module) -> str:
    """``"last"`` (one output per sample) or ``"step"`` (one per step of a sequence)."""
    return getattr(model, "head", "last")


def bidirectional(model: nn.Module) -> bool:
    """True for a recurrent model that reads each sequence in both directions (whole sequences only)."""
    return bool(getattr(model, "bidirectional", False))


def states_forward(model: nn.Module) -> Callable | None:
    """The model's ``forward_with_states`` (the loop over time keeping every ``h_t``), or None."""
    fn = getattr(model, "forward_with_states", None)
    return fn if callable(fn) else None


def step_logits(model: nn.Module) -> Callable | None:
    """The model's ``step_logits(x, state)`` (per-step logits continuing from ``state``), or None."""
    fn = getattr(model, "step_logits", None)
    return fn if callable(fn) else None


def loops_in_python(model: nn.Module) -> bool:
    """True when a recurrent layer of the model runs its own loop over time (``fused`` is None)
    rather than torch's fused kernels: the ONNX exporter unrolls it for one length."""
    return any(getattr(m, "fused", True) is None for m in model.modules())
