"""A small model registry: ``register_model``, ``create_model``, ``list_models``.

Each factory takes the shape of one input sample, the number of outputs and its own keyword
options. ``create_model`` checks the options against the factory's signature: one a model does not
take is an error, never silently dropped (``hidden`` on a CNN would otherwise train a model the
user did not ask for). An option whose value is None counts as not given.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from ..errors import ConfigError


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    description: str
    default_input: tuple[int, ...] | None  # the article's models know their article's shapes
    default_outputs: int | None
    sequence: bool  # reads sequences (images are read as rows)


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str,
    description: str = "",
    default_input: tuple[int, ...] | None = None,
    default_outputs: int | None = None,
    *,
    sequence: bool = False,
):
    """Decorator: make ``fn(input_shape, num_outputs, **options) -> nn.Module`` available as ``name``.

    ``default_input``/``default_outputs`` let ``create_model(name)`` build it without shapes;
    ``sequence`` marks a model that reads sequences, so image data is read as sequences for it.
    """

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        desc = description or (fn.__doc__ or "").strip().splitlines()[0]
        shape = tuple(default_input) if default_input is not None else None
        _REGISTRY[name] = _Entry(fn, desc, shape, default_outputs, sequence)
        return fn

    return deco


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description, sorted by name."""
    return {name: e.description for name, e in sorted(_REGISTRY.items())}


def model_options(name: str) -> list[str]:
    """The keyword options the factory of ``name`` accepts, in the order of its signature."""
    params = inspect.signature(_get(name).factory).parameters.values()
    return [
        p.name
        for p in params
        if p.name not in ("input_shape", "num_outputs") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def has_default_input(name: str) -> bool:
    """True for a model that ``create_model(name)`` builds without shapes (the article's models)."""
    return _get(name).default_input is not None


def sequence_model(name: str) -> bool:
    """True for a model that reads sequences (a recurrent one): image data is read as rows for it."""
    return _get(name).sequence


def _get(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def create_model(
    name: str, input_shape: tuple[int, ...] | None = None, num_outputs: int | None = None, **options
) -> nn.Module:
    """Build the registered model ``name`` for samples of ``input_shape`` and ``num_outputs`` outputs.

    Without shapes, a model registered with defaults gets them (``article-cnn``: ``(1, 28, 28)`` and
    10 classes, Fashion-MNIST's). Raises ConfigError naming any option the model does not take.
    """
    entry = _get(name)
    accepted = model_options(name)
    options = {k: v for k, v in options.items() if v is not None}
    unknown = [k for k in options if k not in accepted]
    if unknown:
        takes = ", ".join(accepted) if accepted else "no options"
        raise ConfigError(f"model {name} does not take {_and(unknown)}; it takes {takes}")
    input_shape = entry.default_input if input_shape is None else input_shape
    num_outputs = entry.default_outputs if num_outputs is None else num_outputs
    if input_shape is None or num_outputs is None:
        with_defaults = [n for n, e in sorted(_REGISTRY.items()) if e.default_input is not None]
        raise ConfigError(
            f"model {name} needs an input shape and a number of outputs (only "
            f"{_and(with_defaults) if with_defaults else 'none'} have defaults)"
        )
    return entry.factory(tuple(input_shape), int(num_outputs), **options)


# Populate the registry on import.
from . import cnn, rnn  # noqa: E402,F401
