"""Convolutional models, the article's first among them (section 4).

Architectures are data (timm's ``vgg.py`` style): an int is a 3x3 ReLU conv with that many
filters (no padding, like Keras's default ``padding='valid'``), ``'M'`` a 2x2 max pool.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.modules import module as _module

from ..errors import ConfigError
from . import register_model

ARTICLE_CNN = [32, "M", 64, "M"]


def keras_init_(module: nn.Module) -> nn.Module:
    """Keras's defaults for Conv2D/Dense: glorot-uniform kernels, zero biases (in place)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


#: A model past this many parameters is refused before any memory is allocated (a typo such as
#: ``--channels 100000000`` would otherwise ask for terabytes).
MAX_PARAMETERS = 2_000_000_000


def plan_check(input_shape: tuple[int, ...], num_outputs: int, layers, kernel_size: int = 3) -> int:
    """The parameter count of a layer plan, checked before building it: every size positive, the
    input large enough for the layers, at most :data:`MAX_PARAMETERS` parameters."""
    c, h, w = (int(v) for v in input_shape)
    params = 0
    for spec in layers:
        if spec == "M":
            h, w = h // 2, w // 2
        else:
            n = int(spec)
            if n < 1:
                raise ConfigError(f"a conv layer needs at least 1 filter, got {n} in {layers}")
            params += c * n * kernel_size * kernel_size + n
            c, h, w = n, h - kernel_size + 1, w - kernel_size + 1
        if h < 1 or w < 1:
            raise ConfigError(f"input {tuple(input_shape)} is too small for layers {layers}")
    params += c * h * w * num_outputs + num_outputs
    if params > MAX_PARAMETERS:
        raise ConfigError(
            f"layers {layers} on input {tuple(input_shape)} would have {params:,} parameters "
            f"({params * 4 / 2**30:,.0f} GiB of float32); at most {MAX_PARAMETERS:,} are built"
        )
    return params


class ConvNet(nn.Module):
    """Conv/pool feature extractor from a layer list, then Flatten > Dense(num_outputs).

    The Dense head fixes the input size (the article's 6.1.2 drawback): the model is built for one
    ``(C, H, W)``. Outputs are logits; softmax lives in the loss, as in every numerically careful
    port of Keras's ``Dense(10, activation='softmax')`` + sparse categorical cross-entropy.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_outputs: int, layers=ARTICLE_CNN, kernel_size: int = 3):
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"a CNN needs image samples of shape (channels, height, width), got {tuple(input_shape)}")
        plan_check(input_shape, num_outputs, layers, kernel_size)
        c, h, w = input_shape
        feats: list[nn.Module] = []
        for spec in layers:
            if spec == "M":
                feats.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            else:
                feats += [nn.Conv2d(c, int(spec), kernel_size), nn.ReLU(inplace=True)]
                c, h, w = int(spec), h - kernel_size + 1, w - kernel_size + 1
        self.input_shape = tuple(input_shape)
        self.features = nn.Sequential(*feats)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c * h * w, num_outputs)
        keras_init_(self)
        self._plan = self._pool_first_plan(list(self.features))

    @staticmethod
    def _pool_first_plan(layers: list[nn.Module]) -> list[nn.Module]:
        """The same layers with every ReLU > MaxPool pair swapped to MaxPool > ReLU."""
        plan, i = [], 0
        while i < len(layers):
            if i + 1 < len(layers) and isinstance(layers[i], nn.ReLU) and isinstance(layers[i + 1], nn.MaxPool2d):
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, K)
        if self._observed():
            x = self.features(x)
        else:
            for layer in self._plan:
                x = layer(x)
        return self.classifier(self.flatten(x))


@register_model(
    "article-cnn",
    "The article's CNN: Conv(32,3x3) > Pool > Conv(64,3x3) > Pool > Dense",
    default_input=(1, 28, 28),
    default_outputs=10,
)
def article_cnn(input_shape, num_outputs):
    """The article's CNN: Conv2D(32,3x3,relu) > MaxPool(2) > Conv2D(64,3x3,relu) > MaxPool(2) > Flatten > Dense."""
    return ConvNet(input_shape, num_outputs, ARTICLE_CNN)


@register_model("cnn", "A configurable VGG-style CNN: --channels 32,M,64,M (3x3 convs, 2x2 pools)")
def cnn(input_shape, num_outputs, channels: str | list | None = None):
    """A configurable CNN; ``channels`` like ``"32,M,64,M"``."""
    if channels is None:
        layers = ARTICLE_CNN
    elif isinstance(channels, str):
        try:
            layers = [s.strip() if s.strip().upper() == "M" else int(s) for s in channels.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--channels must be a comma list of integers and M, got {channels!r}") from None
        layers = ["M" if s == "m" else s for s in layers]
    else:
        layers = list(channels)
    return ConvNet(input_shape, num_outputs, layers)
