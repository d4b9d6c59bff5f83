"""A small model registry: ``register_model``, ``create_model``, ``list_models``.

Each factory takes the shape of one input sample, the number of outputs and its own keyword
options. ``create_model`` checks the options against the factory's signature: one a model does not
take is an error, never silently dropped (``hidden`` on a CNN would otherwise train a model the
user did not ask for). An option whose value is None counts as not given.

Models of your own need no edit here: a name ``package.module:factory`` is imported on first use and
registered under that name for the process (so a run records the name that rebuilds it), and the
modules ``$LAYERLAB_PLUGINS`` lists (``mod1,mod2``) are imported when the registry loads, to call
:func:`register_model` themselves.

A run directory is untrusted input, so a name read from one never imports code by itself: a
``package.module:factory`` is imported only when its module is one the user named (:func:`trust_module`):
``--model`` typed on the command line, a name given to ``build_model``/``fit`` in Python, or a module
``$LAYERLAB_PLUGINS`` lists (how a run of ``mymod:fn`` is opened again: ``LAYERLAB_PLUGINS=mymod``).
Nothing is imported from the working directory unless it is on ``sys.path`` anyway, nothing from
Python's standard library, and only a factory: a function or class of the named module, called with
``(input_shape, num_outputs)``, whose result must be an ``nn.Module``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import operator
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch.nn as nn

from ..choices import and_list as _and
from ..errors import ConfigError, LayerlabError


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    description: str
    default_input: tuple[int, ...] | None  # the article's models know their article's shapes
    default_outputs: int | None
    sequence: bool  # reads sequences (images are read as rows)


_REGISTRY: dict[str, _Entry] = {}

#: Modules the user named (plugins, ``--model`` on the command line, names given in Python): the only
#: ones a ``package.module:factory`` name may import. A run's files never add to it.
_TRUSTED: set[str] = set()


def trust_module(name: str) -> None:
    """Let the module of ``name`` (``package.module:factory`` or a module name) and its submodules be
    imported for a model factory in this process. Call it only for a name the user gave (a flag typed
    on the command line, an argument in Python), never for one read from a file."""
    module_name = name.partition(":")[0].strip()
    if module_name and not name.startswith("<object "):
        _TRUSTED.add(module_name)


def _trusted(module_name: str) -> bool:
    return any(module_name == t or module_name.startswith(t + ".") for t in _TRUSTED)


def _stdlib(module_name: str | None) -> bool:
    top = (module_name or "").split(".")[0]
    return top in sys.stdlib_module_names or top in ("builtins", "__main__")


_Factory = TypeVar("_Factory", bound=Callable[..., nn.Module])


def register_model(
    name: str,
    description: str = "",
    default_input: tuple[int, ...] | None = None,
    default_outputs: int | None = None,
    *,
    sequence: bool = False,
) -> Callable[[_Factory], _Factory]:
    """Decorator: make ``fn(input_shape, num_outputs, **options) -> nn.Module`` available as ``name``.

    Args:
        name: the name ``create_model``, ``fit`` and ``--model`` know it by.
        description: one line for ``layerlab models`` (default: the first line of ``fn``'s docstring).
        default_input: the sample shape ``create_model(name)`` builds it for without shapes.
        default_outputs: the outputs it gets without shapes.
        sequence: it reads sequences, so image data is read as sequences for it.

    Returns:
        The decorator, which registers ``fn`` and returns it unchanged.

    Raises:
        ConfigError: ``name`` is registered already (when the decorator is applied).
    """

    def deco(fn: _Factory) -> _Factory:
        if name in _REGISTRY:
            first = getattr(_REGISTRY[name].factory, "__module__", "?")
            raise ConfigError(
                f"model {name!r} is registered twice (by {first} and by {getattr(fn, '__module__', '?')}); "
                f"give the second one another name"
            )
        desc = description or (fn.__doc__ or "").strip().splitlines()[0]
        shape = tuple(default_input) if default_input is not None else None
        _REGISTRY[name] = _Entry(fn, desc, shape, default_outputs, sequence)
        return fn

    return deco


def list_models() -> dict[str, str]:
    """The registered model names, sorted, each with its one-line description."""
    return {name: e.description for name, e in sorted(_REGISTRY.items())}


def _options(name: str) -> list[inspect.Parameter]:
    """The factory's keyword parameters after the two it is called with, ``(input_shape, num_outputs)``."""
    params = list(inspect.signature(_get(name).factory).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:2]
    return [
        p
        for p in params
        if p not in positional
        and p.name not in ("input_shape", "num_outputs")
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def model_options(name: str) -> list[str]:
    """The keyword options the factory of ``name`` accepts, in the order of its signature."""
    return [p.name for p in _options(name)]


def required_options(name: str) -> list[str]:
    """The keyword options the factory of ``name`` has no default for (a model of your own may have some)."""
    return [p.name for p in _options(name) if p.default is inspect.Parameter.empty]


def takes_any_option(name: str) -> bool:
    """True when the factory of ``name`` takes ``**options``: any keyword is passed on to it."""
    params = inspect.signature(_get(name).factory).parameters.values()
    return any(p.kind is p.VAR_KEYWORD for p in params)


def our_model(name: str) -> bool:
    """True for a model layerlab registers itself (not a plugin's or a ``package.module:factory``)."""
    return getattr(_get(name).factory, "__module__", "").startswith("layerlab.")


def has_default_input(name: str) -> bool:
    """True for a model that ``create_model(name)`` builds without shapes (the article's models)."""
    return _get(name).default_input is not None


def sequence_model(name: str) -> bool:
    """True for a model that reads sequences (a recurrent one): image data is read as rows for it."""
    return _get(name).sequence


def _get(name: str) -> _Entry:
    if name.startswith("<object "):  # what layerlab.fit records for a module it was handed
        short = name[8:-1].rpartition(".")[2]
        raise ConfigError(
            f"the run's model was given to layerlab.fit as a Python object ({name[8:-1]}), which no command can "
            f"rebuild from the run's files: pass one built the same way from Python, layerlab.evaluate(RUN, "
            f"model={short}(...)) (predict and load_run take model= too), or train a package.module:factory, "
            f"whose run records it with its options"
        )
    if name not in _REGISTRY and ":" in name:
        _import_factory(name)
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}, or "
            f"package.module:factory for a model of your own"
        )
    return _REGISTRY[name]


def _import_factory(name: str) -> None:
    """Register ``package.module:factory`` under that name, importing the module, when the user named
    it (:func:`trust_module`): the factory is a callable ``(input_shape, num_outputs, **options) ->
    nn.Module`` (a function or a class) of that module, not of Python's standard library."""
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"model {name!r}: a model of your own is named package.module:factory")
    if _stdlib(module_name):
        raise ConfigError(f"model {name!r}: {module_name} is part of Python's standard library, not a model factory")
    if not _trusted(module_name):
        # a name read from a run's config.toml or a preset: importing it would run code from a file
        raise ConfigError(
            f"model {name!r} is not a registered model, and layerlab imports only modules you name: give "
            f"--model {name} on the command line to train it, or name its module as a plugin "
            f"(LAYERLAB_PLUGINS={module_name}) to open a run that records it"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"model {name!r}: cannot import module {module_name} ({e}); put it on PYTHONPATH") from None
    except LayerlabError as e:
        raise ConfigError(f"model {name!r}: importing module {module_name} failed: {e}") from None
    except Exception as e:  # a syntax error, or any error the module raises as it runs
        raise ConfigError(
            f"model {name!r}: importing module {module_name} failed ({type(e).__name__}: {_line(e)})"
        ) from None
    factory: Any = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
    if factory is None:
        raise ConfigError(f"model {name!r}: module {module_name} has no attribute {attr}")
    if not callable(factory):
        raise ConfigError(
            f"model {name!r}: {attr} in {module_name} is a {type(factory).__name__}, not a callable "
            f"(input_shape, num_outputs, **options) -> nn.Module"
        )
    inner = factory.func if isinstance(factory, functools.partial) else factory
    builtin = isinstance(inner, (types.BuiltinFunctionType, types.BuiltinMethodType))
    if builtin or _stdlib(getattr(inner, "__module__", None)):
        raise ConfigError(
            f"model {name!r}: {attr} is a built-in or a function of Python's standard library, not a model factory "
            f"(input_shape, num_outputs, **options) -> nn.Module"
        )
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        raise ConfigError(f"model {name!r}: the signature of {attr} cannot be read; wrap it in a function") from None
    try:
        signature.bind_partial((1,), 1)  # options without a default are checked when the model is built
    except TypeError:
        raise ConfigError(
            f"model {name!r}: {attr}{signature} does not take (input_shape, num_outputs, **options)"
        ) from None
    desc = (getattr(factory, "__doc__", None) or "").strip().splitlines()
    _REGISTRY[name] = _Entry(factory, desc[0] if desc else f"{attr} from {module_name}", None, None, False)


def load_plugins(names: str | None = None) -> list[str]:
    """Import the modules ``names`` (default ``$LAYERLAB_PLUGINS``) lists, comma-separated; each
    registers its models with :func:`register_model` as it is imported, and ``module:factory`` names
    of those modules may be imported (:func:`trust_module`). Returns the modules imported."""
    names = os.environ.get("LAYERLAB_PLUGINS", "") if names is None else names
    done = []
    for module_name in (n.strip() for n in names.split(",")):
        if not module_name:
            continue
        trust_module(module_name)
        try:
            importlib.import_module(module_name)
        except ImportError as e:
            raise ConfigError(f"LAYERLAB_PLUGINS: cannot import module {module_name} ({e})") from None
        except LayerlabError as e:
            raise ConfigError(f"LAYERLAB_PLUGINS: importing module {module_name} failed: {e}") from None
        except Exception as e:  # a syntax error, or any error the plugin raises as it runs
            raise ConfigError(
                f"LAYERLAB_PLUGINS: importing module {module_name} failed ({type(e).__name__}: {_line(e)})"
            ) from None
        done.append(module_name)
    return done


def _line(e: BaseException) -> str:
    """An exception's message on one line (a sentence, not a traceback)."""
    return " ".join(str(e).split())


def create_model(
    name: str, input_shape: tuple[int, ...] | None = None, num_outputs: int | None = None, **options: Any
) -> nn.Module:
    """Build the registered model ``name`` for samples of ``input_shape`` and ``num_outputs`` outputs.

    Args:
        name: a registered name (or a trusted ``package.module:factory``).
        input_shape: one sample's shape; without shapes, a model registered with defaults gets them
            (``article-cnn``: ``(1, 28, 28)`` and 10 classes, Fashion-MNIST's).
        num_outputs: classes or regression values.
        **options: the model's options (None values are left out: the factory's defaults apply).

    Returns:
        The ``nn.Module``.

    Raises:
        ConfigError: an unknown name, an option the model does not take, or no shapes for a model
            registered without defaults.
    """
    entry = _get(name)
    accepted = model_options(name)
    options = {k: v for k, v in options.items() if v is not None}
    unknown = [] if takes_any_option(name) else [k for k in options if k not in accepted]
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
    # checked here, so a wrong value is one sentence now, not torch's IndexError inside training
    given = num_outputs
    try:
        num_outputs = None if isinstance(given, bool) else operator.index(given)  # NumPy ints too, never 2.5
    except TypeError:
        num_outputs = None
    if num_outputs is None or num_outputs < 1:
        raise ConfigError(f"num_outputs must be at least 1, got {given!r}")
    try:
        input_shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ConfigError(f"input_shape must be a tuple of sizes such as (1, 28, 28), got {input_shape!r}") from None
    if not input_shape or any(s < 1 for s in input_shape):
        raise ConfigError(f"input_shape must be a tuple of positive sizes such as (1, 28, 28), got {input_shape}")
    missing = [k for k in required_options(name) if k not in options]
    if missing:
        raise ConfigError(f"model {name} needs the option {_and(missing)} (its factory has no default for it)")
    if getattr(entry.factory, "__module__", "").startswith("layerlab."):
        model = entry.factory(input_shape, num_outputs, **options)
    else:  # a factory of the user's: its own error, as one sentence
        try:
            model = entry.factory(input_shape, num_outputs, **options)
        except LayerlabError:
            raise
        except Exception as e:
            raise ConfigError(f"model {name}: its factory failed ({type(e).__name__}: {_line(e)})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model {name} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


# Populate the registry on import: ours, then the plugins the environment names.
from . import cnn, mlp, rnn, tsc  # noqa: E402,F401

load_plugins()
