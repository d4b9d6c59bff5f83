"""A small model registry: ``register_model``, ``create_model``, ``list_models``.

Each factory takes the shape of one input sample, the number of outputs and its own keyword
options; ``create_model`` passes it only the options its signature names, so one config can
describe every model without each factory accepting everything.
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch.nn as nn

from ..errors import ConfigError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, description: str = ""):
    """Decorator: make ``fn(input_shape, num_outputs, **options) -> nn.Module`` available as ``name``."""

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().splitlines()[0]
        return fn

    return deco


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description, sorted by name."""
    return dict(sorted(_DESCRIPTIONS.items()))


def model_options(name: str) -> list[str]:
    """The keyword options the factory of ``name`` accepts."""
    fn = _get(name)
    params = inspect.signature(fn).parameters
    return [p for p in params if p not in ("input_shape", "num_outputs")]


def _get(name: str):
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown model {name!r}; known models: {known}")
    return _REGISTRY[name]


def create_model(name: str, input_shape: tuple[int, ...], num_outputs: int, **options) -> nn.Module:
    """Build the registered model ``name`` for samples of ``input_shape`` and ``num_outputs`` outputs.

    Options the factory does not take are ignored (a CNN has no ``hidden`` size), so callers can
    pass a whole model config.
    """
    fn = _get(name)
    accepted = model_options(name)
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    return fn(tuple(input_shape), int(num_outputs), **kwargs)


# Populate the registry on import.
from . import cnn  # noqa: E402,F401
from . import rnn  # noqa: E402,F401
