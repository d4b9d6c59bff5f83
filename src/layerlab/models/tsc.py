"""The time-series classification baselines of Wang, Yan and Oates (2017), "Time series classification
from scratch with deep neural networks: a strong baseline" (IJCNN 2017): a fully convolutional
network (``fcn``) and a residual network (``resnet1d``), trained on the raw series with no
feature crafting.

- ``fcn``: three conv blocks of 128, 256 and 128 filters with kernels 8, 5 and 3, each
  Conv > BatchNorm > ReLU, then a global average pool over time and a Dense softmax layer;
- ``resnet1d``: three residual blocks of 64, 128 and 128 filters; each block is those three convs
  (kernels 8, 5, 3, batch norm, ReLU after the first two) added to a shortcut (a 1x1 conv and batch
  norm where the width changes, batch norm alone where it does not), then ReLU; then the same
  global average pool and Dense layer.

Every conv keeps its input's length ('same' padding; an even kernel pads one more step on the
right), so the models take series of any length. As in layerlab's ``cnn``, a ``(T, F)`` sample is
F channels along T steps (Conv1d); an image ``(C, H, W)`` or a volume ``(C, D, H, W)`` builds the
same network of 2-D or 3-D convs. Outputs are logits (softmax lives in the loss). Padded sequences
given with ``lengths`` are masked: every map is zeroed past each sequence's valid length and the
pool leaves those steps out, so a sequence's logits do not depend on its padding (batch norm's
statistics, while training, still see the padded zeros).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from . import register_model
from .cnn import BATCH_NORMS, CONVS, GlobalPool, keras_init_

#: (filters, kernel) of the FCN's three conv blocks, Wang et al. 2017, figure 1(b)
FCN_BLOCKS = ((128, 8), (256, 5), (128, 3))
#: filters of the ResNet's three residual blocks; each block's convs have kernels 8, 5 and 3
RESNET_WIDTHS = (64, 128, 128)
RESNET_KERNELS = (8, 5, 3)
_SHAPES = "(T, F) sequences, (C, H, W) images or (C, D, H, W) volumes"


class ConvBlock(nn.Module):
    """Conv(``n``, ``k``, 'same') > BatchNorm > [ReLU]: ``(B, C, *S) -> (B, n, *S)``. The conv has no
    bias (batch norm's shift does its work)."""

    def __init__(self, dims: int, c_in: int, n: int, k: int, relu: bool = True):
        super().__init__()
        # 'same' padding, one more step on the right for an even kernel (Keras's and torch's 'same'),
        # written out: torch's padding="same" copies the input on every call (and warns) for an even kernel
        self.pad = (k - 1) // 2, k // 2
        self.conv = CONVS[dims](c_in, n, k, padding=self.pad[0] if k % 2 else 0, bias=False)
        self.norm = BATCH_NORMS[dims](n)
        self.act = nn.ReLU(inplace=True) if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad[0] != self.pad[1]:
            x = F.pad(x, self.pad * (x.dim() - 2))
        x = self.norm(self.conv(x))
        return self.act(x) if self.act is not None else x


class ResidualBlock(nn.Module):
    """Three :class:`ConvBlock` (kernels 8, 5, 3; no ReLU after the third) added to a shortcut, then
    ReLU: ``ReLU(convs(x) + shortcut(x))``; the shortcut is BN(conv1x1(x)) when the width changes,
    BN(x) when it does not (Wang et al. 2017's Keras code)."""

    def __init__(self, dims: int, c_in: int, n: int, kernels=RESNET_KERNELS):
        super().__init__()
        widths = [c_in] + [n] * len(kernels)
        self.convs = nn.ModuleList(
            ConvBlock(dims, a, b, k, relu=i < len(kernels) - 1)
            for i, (a, b, k) in enumerate(zip(widths[:-1], widths[1:], kernels, strict=True))
        )
        project = [CONVS[dims](c_in, n, 1, bias=False)] if c_in != n else []
        self.shortcut = nn.Sequential(*project, BATCH_NORMS[dims](n))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        y = x
        for block in self.convs:
            y = block(y)
            if keep is not None:  # zeros past each sequence's length, as the next 'same' conv reads them alone
                y = y * keep
        return self.act(y + self.shortcut(x))


class TSCNet(nn.Module):
    """A stack of blocks (:class:`ConvBlock` or :class:`ResidualBlock`), a global average pool and
    a Dense layer: Wang et al. 2017's FCN and ResNet. Attributes read by the inspection tools:
    ``features``, ``pool``, ``classifier``, ``input_shape``, ``dims``, ``steps_first``, ``min_size``
    (1: any length), ``any_size`` (True)."""

    any_size = True
    min_size = 1

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, blocks: list[nn.Module], width: int):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.steps_first = len(self.input_shape) == 2
        self.dims = len(self.input_shape) - 1
        self.features = nn.Sequential(*blocks)
        self.pool = GlobalPool("avg")
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(width, num_outputs)
        keras_init_(self)  # the paper's Keras code: glorot-uniform kernels, zero biases

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, K)`` of ``x`` ``(B, T, F)``, ``(B, C, H, W)`` or ``(B, C, D, H, W)``;
        ``lengths`` ``(B,)`` of sequences right-padded to ``T`` masks their padding."""
        if x.dim() != self.dims + 2:
            want = "(B, T, F) sequences" if self.steps_first else f"(B, *{self.input_shape})"
            raise DataError(f"this model takes a batch of {want}, got shape {tuple(x.shape)}")
        if self.steps_first:
            x = x.transpose(1, 2)  # (B, F, T)
        built = self.input_shape[-1] if self.steps_first else self.input_shape[0]
        if x.shape[1] != built:  # its first conv's input channels
            what = "features per step" if self.steps_first else "channels"
            raise DataError(f"this model was built for {built} {what}, got a batch of shape {tuple(x.shape)}")
        mask = None
        if lengths is not None and self.dims == 1:
            lengths = torch.as_tensor(lengths, device=x.device).long()
            if lengths.shape != (x.shape[0],):
                raise DataError(f"lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
            mask = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths.clamp_min(1)[:, None]  # (B, T)
            keep = mask[:, None, :].to(x.dtype)  # (B, 1, T): 'same' convs keep every length
            x = x * keep
            for block in self.features:
                x = (block(x, keep) if isinstance(block, ResidualBlock) else block(x)) * keep
        else:
            x = self.features(x)
        x = self.pool(x, mask) if mask is not None else self.pool(x)
        return self.classifier(self.flatten(x))

    def extra_repr(self) -> str:
        return f"input={self.input_shape}"


def _dims(name: str, input_shape) -> tuple[int, int]:
    """``(dims, channels in)`` of a sample shape: a ``(T, F)`` sequence is F channels along T."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 1:
        raise ConfigError(
            f"{name} takes {_SHAPES}, got {shape}: token ids, which it does not read; "
            f"train a recurrent model (rnn, lstm, gru) on text and token tasks"
        )
    if len(shape) not in (2, 3, 4):
        raise ConfigError(f"{name} takes {_SHAPES}, got samples of shape {shape}")
    return len(shape) - 1, (shape[1] if len(shape) == 2 else shape[0])


@register_model(
    "fcn", "Wang et al. 2017's fully convolutional network for time series: 128-256-128 convs (8,5,3), BN, GAP"
)
def fcn(input_shape, num_outputs):
    """Wang et al. 2017's FCN: 3 x (Conv > BatchNorm > ReLU) of 128, 256, 128 filters with kernels
    8, 5, 3 ('same' padding), global average pooling, Dense(num_outputs)."""
    dims, c = _dims("fcn", input_shape)
    blocks = []
    for n, k in FCN_BLOCKS:
        blocks.append(ConvBlock(dims, c, n, k))
        c = n
    return TSCNet(input_shape, num_outputs, blocks, c)


@register_model(
    "resnet1d", "Wang et al. 2017's residual network for time series: 3 residual blocks of 64-128-128, kernels 8,5,3"
)
def resnet1d(input_shape, num_outputs):
    """Wang et al. 2017's ResNet: 3 residual blocks of 64, 128, 128 filters (each three convs of
    kernels 8, 5, 3 with batch norm, plus a shortcut), global average pooling, Dense(num_outputs)."""
    dims, c = _dims("resnet1d", input_shape)
    blocks = []
    for n in RESNET_WIDTHS:
        blocks.append(ResidualBlock(dims, c, n))
        c = n
    return TSCNet(input_shape, num_outputs, blocks, c)
