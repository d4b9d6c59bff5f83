"""Fully connected models on any sample shape, flattened: an MLP and, with no hidden layer,
logistic (softmax) regression, the baselines of benchmarks such as MNIST-1D.

``mlp``: Flatten > ``layers`` x (Dense(``hidden``) > ReLU [> Dropout]) > Dense(num_outputs);
``linear``: Flatten > Dense(num_outputs). Outputs are logits (softmax lives in the loss). Weights
start as torch's defaults. A flattened input fixes the sample size: images must have the shape the
model was built for; sequences of ``(T, F)`` may be shorter than the built ``T`` (they are padded
with zeros, the training mean of standardised features) and, with ``lengths``, the steps past
each sequence's length are zeroed, so a sequence gets the same logits in any batch and alone.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from . import register_model
from .cnn import MAX_PARAMETERS


class MLP(nn.Module):
    """Flatten > ``layers`` hidden Dense(``hidden``) > ReLU (> Dropout) > Dense(``num_outputs``);
    ``layers=0`` is logistic regression. Attributes: ``input_shape``, ``net`` (the layers after Flatten)."""

    def __init__(
        self, input_shape: tuple[int, ...], num_outputs: int, hidden: int = 100, layers: int = 2, dropout: float = 0.0
    ):
        super().__init__()
        shape = tuple(int(s) for s in input_shape)
        if len(shape) == 1:
            raise ConfigError(
                f"an MLP takes float samples such as (T, F) sequences or (C, H, W) images, got {shape}: "
                f"token ids, which it does not read; train a recurrent model (rnn, lstm, gru) on text and token tasks"
            )
        hidden, layers = int(hidden), int(layers)
        if hidden < 1 or layers < 0:
            raise ConfigError(f"an MLP needs --hidden of at least 1 and --layers of at least 0, got {hidden}, {layers}")
        try:
            dropout = float(dropout)
        except (TypeError, ValueError):
            raise ConfigError(f"--dropout must be a number in [0, 1), got {dropout!r}") from None
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {dropout}")
        n_in = math.prod(shape)
        widths = [n_in] + [hidden] * layers
        params = sum(a * b + b for a, b in zip(widths, widths[1:] + [num_outputs], strict=True))
        if params > MAX_PARAMETERS:
            raise ConfigError(
                f"an MLP on samples of shape {shape} with {layers} layers of {hidden} would have {params:,} "
                f"parameters; at most {MAX_PARAMETERS:,} are built"
            )
        net: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            net += [nn.Linear(a, b), nn.ReLU(inplace=True)]
            if dropout:
                net.append(nn.Dropout(dropout))
        net.append(nn.Linear(widths[-1], num_outputs))
        self.input_shape = shape
        self.hidden = hidden
        self.layers = layers
        self.net = nn.Sequential(*net)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, K)`` of ``x`` ``(B, *input_shape)``; a sequence batch ``(B, T, F)`` may be
        shorter than the built ``T``, and ``lengths`` ``(B,)`` masks each sequence's padding."""
        if len(self.input_shape) == 2 and x.dim() == 3:
            T, built = x.shape[1], self.input_shape[0]
            if T > built:
                raise DataError(f"this MLP reads sequences of at most {built} steps (it was built for them), got {T}")
            if lengths is not None:
                lengths = torch.as_tensor(lengths, device=x.device).long()
                if lengths.shape != (x.shape[0],):
                    raise DataError(f"lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
                keep = torch.arange(T, device=x.device)[None, :] < lengths[:, None]  # (B, T)
                x = x * keep[:, :, None].to(x.dtype)
            if T < built:
                x = F.pad(x, (0, 0, 0, built - T))
        if tuple(x.shape[1:]) != self.input_shape:
            raise DataError(f"this MLP takes samples of shape {self.input_shape}, got {tuple(x.shape[1:])}")
        return self.net(x.flatten(1))

    def extra_repr(self) -> str:
        return f"input={self.input_shape}, hidden={self.hidden}, layers={self.layers}"


@register_model("mlp", "A multilayer perceptron on the flattened sample: --hidden (100) --layers (2) --dropout")
def mlp(input_shape, num_outputs, hidden: int = 100, layers: int = 2, dropout: float = 0.0):
    """Flatten > ``layers`` x Dense(``hidden``, ReLU) > Dense(num_outputs), for samples of any shape."""
    return MLP(input_shape, num_outputs, hidden=hidden, layers=layers, dropout=dropout)


@register_model("linear", "Logistic (softmax) regression: Flatten > Dense, no hidden layer")
def linear(input_shape, num_outputs):
    """Flatten > Dense(num_outputs): logistic regression on the flattened sample (an MLP of 0 layers)."""
    return MLP(input_shape, num_outputs, layers=0)
