"""Convolutional models, the article's first among them (section 4), for 1-D, 2-D and 3-D data.

Architectures are data (timm's ``vgg.py`` style): an int is a 3x3 ReLU conv with that many
filters (no padding, like Keras's default ``padding='valid'``), ``'M'`` a 2x2 max pool.

The sample shape picks the dimensionality:

- ``(T, F)``: a sequence, ``F`` features over ``T`` steps (every sequence in layerlab, and Keras's
  ``Conv1D`` input, is steps first); the model reads it as ``F`` channels of length ``T`` (Conv1d);
- ``(C, H, W)``: an image (Conv2d);
- ``(C, D, H, W)``: a volume or a clip of frames (Conv3d).

Options beyond the article: ``padding`` ('valid' or 'same'), ``batch_norm``, ``dropout`` before the
Dense head, ``residual`` blocks and a ``global_pool`` in place of Flatten, so one model takes inputs
of any size (and sequences of any length, their padding masked out when ``lengths`` are given).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules import module as _module

from ..choices import GLOBAL_POOLS, PADDINGS
from ..errors import ConfigError, DataError
from . import register_model

ARTICLE_CNN = [32, "M", 64, "M"]

CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
MAX_POOLS = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
BATCH_NORMS = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_MaxPools = tuple(MAX_POOLS.values())
_SHAPES = "(T, F) sequences, (C, H, W) images or (C, D, H, W) volumes"


def keras_init_(module: nn.Module) -> nn.Module:
    """Keras's defaults for Conv1D/2D/3D and Dense: glorot-uniform kernels, zero biases (in place)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


#: A model past this many parameters is refused before any memory is allocated (a typo such as
#: ``--channels 100000000`` would otherwise ask for terabytes).
MAX_PARAMETERS = 2_000_000_000


def _residual_here(residual: bool, padding: str, c_in: int, n: int) -> bool:
    """The one rule for where a residual connection goes: a conv whose output has its input's shape
    ('same' padding, as many filters as channels come in), so ``x + conv(x)`` needs no projection."""
    return residual and padding == "same" and c_in == n


def plan_check(
    input_shape: tuple[int, ...],
    num_outputs: int,
    layers,
    kernel_size: int = 3,
    *,
    padding: str = "valid",
    batch_norm: bool = False,
    global_pool: str | None = None,
) -> int:
    """The parameter count of a layer plan on ``input_shape`` ``(C, *spatial)``, checked before
    building it: every size positive, the input large enough for the layers, at most
    :data:`MAX_PARAMETERS` parameters."""
    c, *size = (int(v) for v in input_shape)
    dims = len(size)
    k = kernel_size**dims
    params = 0
    for spec in layers:
        if spec == "M":
            size = [s // 2 for s in size]
        else:
            n = int(spec)
            if n < 1:
                raise ConfigError(f"a conv layer needs at least 1 filter, got {n} in {layers}")
            # batch norm's shift does the bias's work, so a conv before it has none (Keras's habit)
            params += c * n * k + (2 * n if batch_norm else n)
            if padding == "valid":
                size = [s - kernel_size + 1 for s in size]
            c = n
        if min(size) < 1:
            raise ConfigError(f"input {tuple(input_shape)} is too small for layers {layers}")
    flat = c
    if global_pool is None:
        for s in size:
            flat *= s
    params += flat * num_outputs + num_outputs
    if params > MAX_PARAMETERS:
        raise ConfigError(
            f"layers {layers} on input {tuple(input_shape)} would have {params:,} parameters "
            f"({params * 4 / 2**30:,.0f} GiB of float32); at most {MAX_PARAMETERS:,} are built"
        )
    return params


class Residual(nn.Module):
    """A conv block with an identity shortcut, ``y = ReLU(x + BN(conv(x)))`` (He et al. 2016's
    addition before the activation, one conv per block): ``(B, C, *S) -> (B, C, *S)``."""

    def __init__(self, conv: nn.Module, norm: nn.Module | None):
        super().__init__()
        self.conv = conv
        self.norm = norm
        self.act = nn.ReLU(inplace=True)  # in place on the sum, a fresh tensor: x is never touched

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.norm is not None:
            y = self.norm(y)
        return self.act(x + y)


class GlobalPool(nn.Module):
    """The mean or the max of each channel over all positions: ``(B, C, *S) -> (B, C)``, whatever
    ``S``. With ``mask`` ``(B, L)`` (1-D only) the positions where it is False are left out."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(2)  # (B, C, L)
        if mask is None:
            return x.mean(-1) if self.mode == "avg" else x.amax(-1)
        m = mask[:, None, :]  # (B, 1, L)
        if self.mode == "avg":
            return (x * m).sum(-1) / m.sum(-1).clamp_min(1)
        return x.masked_fill(~m, float("-inf")).amax(-1)

    def extra_repr(self) -> str:
        return self.mode


class ConvNet(nn.Module):
    """Conv/pool feature extractor from a layer list, then Flatten (or a global pool) > Dense(num_outputs).

    With Flatten the Dense head fixes the input size (the article's 6.1.2 drawback): the model is
    built for one ``(C, H, W)`` (or ``(T, F)``, ``(C, D, H, W)``). A global pool ('avg' or 'max')
    ends the extractor with one number per channel instead, so the model takes any size at least
    as large as its layers need. Outputs are logits; softmax lives in the loss, as in every
    numerically careful port of Keras's ``Dense(10, activation='softmax')`` + sparse categorical
    cross-entropy.

    Layers: each int ``n`` is Conv(n, 3) > [BatchNorm] > ReLU, or with ``residual`` and a shape it
    keeps ('same' padding and ``n`` equal to the channels coming in) a :class:`Residual` block
    ``ReLU(x + BN(conv(x)))``; each ``'M'`` is a 2x2 (2, 2x2x2) max pool. ``dropout`` drops the
    head's inputs while training.

    Attributes read by the inspection tools: ``features``, ``flatten``, ``classifier``,
    ``input_shape`` (as given), ``dims`` (1, 2 or 3), ``steps_first`` (True for ``(T, F)``);
    ``min_size``: the smallest side (length, height, width, depth) an input may have.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        layers=ARTICLE_CNN,
        kernel_size: int = 3,
        *,
        padding: str = "valid",
        batch_norm: bool = False,
        dropout: float = 0.0,
        residual: bool = False,
        global_pool: str | None = None,
    ):
        super().__init__()
        shape = tuple(int(s) for s in input_shape)
        if len(shape) == 1:
            raise ConfigError(
                f"a CNN takes {_SHAPES}, got {shape}: token ids, which it does not read; "
                f"train a recurrent model (rnn, lstm, gru) on text and token tasks"
            )
        if len(shape) not in (2, 3, 4):
            raise ConfigError(f"a CNN takes {_SHAPES}, got samples of shape {shape}")
        if padding not in PADDINGS:
            raise ConfigError(f"--padding must be 'valid' or 'same', got {padding!r}")
        if padding == "same" and kernel_size % 2 == 0:
            raise ConfigError(f"'same' padding needs an odd kernel size, got {kernel_size}")
        if global_pool not in (None, *GLOBAL_POOLS):
            raise ConfigError(f"--global-pool must be 'avg' or 'max' (or none), got {global_pool!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {dropout}")
        # a sequence (T, F) is F channels along T: the conv runs on (F, T), Keras's Conv1D reading
        self.steps_first = len(shape) == 2
        conv_shape = (shape[1], shape[0]) if self.steps_first else shape
        plan_check(
            conv_shape,
            num_outputs,
            layers,
            kernel_size,
            padding=padding,
            batch_norm=batch_norm,
            global_pool=global_pool,
        )
        dims = len(conv_shape) - 1
        Conv, Pool, Norm = CONVS[dims], MAX_POOLS[dims], BATCH_NORMS[dims]
        pad = (kernel_size - 1) // 2 if padding == "same" else 0
        c, size = conv_shape[0], list(conv_shape[1:])
        feats: list[nn.Module] = []
        blocks = 0
        for spec in layers:
            if spec == "M":
                feats.append(Pool(2))
                size = [s // 2 for s in size]
                continue
            n = int(spec)
            conv = Conv(c, n, kernel_size, padding=pad, bias=not batch_norm)
            norm = Norm(n) if batch_norm else None
            if _residual_here(residual, padding, c, n):
                feats.append(Residual(conv, norm))
                blocks += 1
            else:
                feats += [conv, *([norm] if norm is not None else []), nn.ReLU(inplace=True)]
            c = n
            if padding == "valid":
                size = [s - kernel_size + 1 for s in size]
        if residual and not blocks:
            raise ConfigError(
                f"--residual adds x to conv(x) where a conv keeps its input's shape, and no layer of {layers} "
                f"with padding {padding!r} does; use --padding same and repeat a width, e.g. 32,32,M,64,64"
            )
        self.input_shape = shape
        self.dims = dims
        self.kernel_size = kernel_size
        self.padding = padding
        self.residual_blocks = blocks
        self._size = tuple(size)  # spatial size after the extractor, at the built input size
        need = 1  # the smallest input side whose feature maps keep at least one position
        for spec in reversed(layers):
            need = 2 * need if spec == "M" else max(1, need - 2 * pad + kernel_size - 1)
        self.min_size = need
        self.features = nn.Sequential(*feats)
        self.pool = GlobalPool(global_pool) if global_pool else None
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(float(dropout)) if dropout else None
        flat = c
        if self.pool is None:
            for s in size:
                flat *= s
        self.classifier = nn.Linear(flat, num_outputs)
        keras_init_(self)
        self._plan = self._pool_first_plan(list(self.features))

    @property
    def global_pool(self) -> str | None:
        return None if self.pool is None else self.pool.mode

    @property
    def any_size(self) -> bool:
        """True when a global pool ends the extractor: the spatial (or time) axes may change size."""
        return self.pool is not None

    @staticmethod
    def _pool_first_plan(layers: list[nn.Module]) -> list[nn.Module]:
        """The same layers with every ReLU > MaxPool pair swapped to MaxPool > ReLU: max commutes
        with a monotone ReLU, and the ReLU then touches a quarter (2-D) of the values."""
        plan, i = [], 0
        while i < len(layers):
            if i + 1 < len(layers) and isinstance(layers[i], nn.ReLU) and isinstance(layers[i + 1], _MaxPools):
                plan += [layers[i + 1], layers[i]]
                i += 2
            else:
                plan.append(layers[i])
                i += 1
        return plan

    def _observed(self) -> bool:
        """True when a forward hook watches the layers: then run them literally, in order."""
        if _module._global_forward_hooks or _module._global_forward_pre_hooks:
            return True
        return any(m._forward_hooks or m._forward_pre_hooks for m in self.features)

    def _channels(self, x: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A sequence batch ``(B, T, F)`` as ``(B, F, T)``. Without a global pool, shorter sequences
        are right-padded to the built ``T`` and given their lengths, so a sequence read alone is
        masked exactly as in a padded batch."""
        if x.dim() != 3:
            raise DataError(f"expected a batch of sequences (B, T, F), got shape {tuple(x.shape)}")
        x = x.transpose(1, 2)  # (B, F, T)
        if self.pool is None:
            T, built = x.shape[-1], self.input_shape[0]
            if T > built:
                raise DataError(
                    f"this CNN reads sequences of at most {built} steps (its Dense head is built for them), "
                    f"got {T}; a global pool (--global-pool avg) takes any length"
                )
            if T < built:
                if lengths is None:
                    lengths = torch.full((x.shape[0],), T, device=x.device)
                x = F.pad(x, (0, built - T))
        return x, lengths

    def _out_lengths(self, layer: nn.Module, lengths: torch.Tensor) -> torch.Tensor:
        """Valid lengths after ``layer`` (1-D): a conv keeps ``l + 2p - k + 1``, a pool ``(l - k) // s + 1``.
        At least 1: a sequence shorter than the layers' reach is read with its zero padding."""
        if isinstance(layer, nn.Conv1d):  # (built with a number for padding, never 'same')
            lengths = lengths + 2 * cast(tuple[int], layer.padding)[0] - layer.kernel_size[0] + 1
        elif isinstance(layer, nn.MaxPool1d):
            kernel, stride = cast(int, layer.kernel_size), cast(int, layer.stride)
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths.clamp_min(1)

    def _masked_features(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The extractor on padded sequences ``(B, F, T)``: every map is zeroed past each sequence's
        valid length, so a 'same' conv reads zeros there exactly as on the sequence alone, and the
        result does not depend on the padding. Returns the maps and the mask ``(B, L)`` of valid steps."""
        lengths = torch.as_tensor(lengths, device=x.device).long()
        if lengths.shape != (x.shape[0],):
            raise DataError(f"lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")

        def mask_of(t: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
            return torch.arange(t.shape[-1], device=t.device)[None, :] < n[:, None]  # (B, L)

        x = x * mask_of(x, lengths)[:, None, :].to(x.dtype)
        for layer in self.features:
            x = layer(x)
            lengths = self._out_lengths(layer, lengths)
            x = x * mask_of(x, lengths)[:, None, :].to(x.dtype)
        return x, mask_of(x, lengths)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, K)`` of ``x`` ``(B, T, F)``, ``(B, C, H, W)`` or ``(B, C, D, H, W)``.

        ``lengths`` ``(B,)``: sequences right-padded to ``T``. The feature maps are zeroed past each
        sequence's valid length and, with a global pool, those steps are left out of the pool: a
        sequence gets the same logits in any batch, with any padding, and alone.
        """
        mask = None
        if self.steps_first:
            x, lengths = self._channels(x, lengths)
        elif self.pool is None and tuple(x.shape[2:]) != self.input_shape[1:]:
            size, built = ("x".join(map(str, s)) for s in (tuple(x.shape[2:]), self.input_shape[1:]))
            raise DataError(
                f"this CNN takes inputs of {built} (its Dense head is built for that size), got {size}; "
                f"a global pool (--global-pool avg) takes any size"
            )
        if lengths is not None and self.dims == 1:
            x, mask = self._masked_features(x, lengths)
        elif self._observed():
            x = self.features(x)
        else:
            for layer in self._plan:
                x = layer(x)
        if self.pool is not None:
            x = self.pool(x, mask) if mask is not None else self.pool(x)
        x = self.flatten(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.classifier(x)


@register_model(
    "article-cnn",
    "The article's CNN: Conv(32,3x3) > Pool > Conv(64,3x3) > Pool > Dense",
    default_input=(1, 28, 28),
    default_outputs=10,
)
def article_cnn(input_shape, num_outputs):
    """The article's CNN: Conv2D(32,3x3,relu) > MaxPool(2) > Conv2D(64,3x3,relu) > MaxPool(2) > Flatten > Dense."""
    if len(input_shape) != 3:
        # the article's model is a 2-D one; `cnn` takes sequences and volumes
        raise ConfigError(
            f"the article's CNN needs image samples of shape (channels, height, width), got {tuple(input_shape)}; "
            f"--model cnn takes (T, F) sequences and (C, D, H, W) volumes too"
        )
    return ConvNet(input_shape, num_outputs, ARTICLE_CNN)


def parse_channels(channels: str | list | None) -> list:
    """``"32,M,64,M"`` (or a list) as a layer list ``[32, 'M', 64, 'M']``; None: the article's."""
    if channels is None:
        return list(ARTICLE_CNN)
    if not isinstance(channels, str):
        return ["M" if str(s).upper() == "M" else int(s) for s in channels]
    try:
        layers = [s.strip() if s.strip().upper() == "M" else int(s) for s in channels.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--channels must be a comma list of integers and M, got {channels!r}") from None
    return ["M" if s == "m" else s for s in layers]


@register_model(
    "cnn",
    "A configurable VGG-style CNN for sequences, images and volumes: --channels 32,M,64,M (3x3 convs, 2x2 pools)",
)
def cnn(
    input_shape,
    num_outputs,
    channels: str | list | None = None,
    padding: str = "valid",
    batch_norm: bool = False,
    dropout: float = 0.0,
    residual: bool = False,
    global_pool: str | None = None,
):
    """A configurable CNN; ``channels`` like ``"32,M,64,M"``; Conv1d/2d/3d from the sample shape
    ``(T, F)``/``(C, H, W)``/``(C, D, H, W)``. ``global_pool`` 'avg' or 'max' ('none': Flatten)."""
    if isinstance(global_pool, str) and global_pool.lower() in ("none", "flatten", ""):
        global_pool = None
    try:
        dropout = float(dropout)
    except (TypeError, ValueError):
        raise ConfigError(f"--dropout must be a number in [0, 1), got {dropout!r}") from None
    return ConvNet(
        input_shape,
        num_outputs,
        parse_channels(channels),
        padding=padding,
        batch_norm=bool(batch_norm),
        dropout=dropout,
        residual=bool(residual),
        global_pool=global_pool,
    )
