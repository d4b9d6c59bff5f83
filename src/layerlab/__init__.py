"""layerlab: build, train, evaluate, predict with and look inside CNNs and RNNs.

The public API is small::

    from layerlab import load_dataset, build_model, train, evaluate_run, predict_files, generate
    from layerlab import fit, evaluate, predict, History   # arrays in, arrays out (Keras-like)
    from layerlab import RunDir      # a run directory: its model, input spec and data
    from layerlab import save, load  # one safetensors file: weights and how to rebuild and read them

``fit``, ``evaluate`` and ``predict`` are :func:`layerlab.api.fit` & co. (arrays, as Keras's);
the training loop itself is :func:`layerlab.engine.fit`.

Names are imported on first use, so ``import layerlab.reference`` (NumPy only) never loads torch.
"""

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "build_model": "api",
    "count_parameters": "api",
    "evaluate": "api",
    "evaluate_run": "api",
    "fit": "api",
    "History": "api",
    "predict": "api",
    "generate": "api",
    "load_run": "api",
    "predict_files": "api",
    "prepare_data": "api",
    "resume": "api",
    "train": "api",
    "save": "saving",
    "load": "saving",
    "lr_find": "lrfind",
    "DataConfig": "config",
    "ModelConfig": "config",
    "RunConfig": "config",
    "TrainConfig": "config",
    "Dataset": "data",
    "Split": "data",
    "load_dataset": "data",
    "InputSpec": "data.transforms",
    "RunDir": "rundir",
    "compute_metrics": "engine",
    "LayerlabError": "errors",
    "create_model": "models",
    "list_models": "models",
    "register_model": "models",
    "tune": "tuning",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # the same names for type checkers, editors and the API reference (never run);
    # `name as name` marks a re-export (PEP 484); tests/project/test_docs.py checks these match _EXPORTS
    from .api import (
        History as History,
    )
    from .api import (
        build_model as build_model,
    )
    from .api import (
        count_parameters as count_parameters,
    )
    from .api import (
        evaluate as evaluate,
    )
    from .api import (
        evaluate_run as evaluate_run,
    )
    from .api import (
        fit as fit,
    )
    from .api import (
        generate as generate,
    )
    from .api import (
        load_run as load_run,
    )
    from .api import (
        predict as predict,
    )
    from .api import (
        predict_files as predict_files,
    )
    from .api import (
        prepare_data as prepare_data,
    )
    from .api import (
        resume as resume,
    )
    from .api import (
        train as train,
    )
    from .config import (
        DataConfig as DataConfig,
    )
    from .config import (
        ModelConfig as ModelConfig,
    )
    from .config import (
        RunConfig as RunConfig,
    )
    from .config import (
        TrainConfig as TrainConfig,
    )
    from .data import (
        Dataset as Dataset,
    )
    from .data import (
        Split as Split,
    )
    from .data import (
        load_dataset as load_dataset,
    )
    from .data.transforms import (
        InputSpec as InputSpec,
    )
    from .engine import (
        compute_metrics as compute_metrics,
    )
    from .errors import (
        LayerlabError as LayerlabError,
    )
    from .lrfind import (
        lr_find as lr_find,
    )
    from .models import (
        create_model as create_model,
    )
    from .models import (
        list_models as list_models,
    )
    from .models import (
        register_model as register_model,
    )
    from .rundir import (
        RunDir as RunDir,
    )
    from .saving import (
        load as load,
    )
    from .saving import (
        save as save,
    )
    from .tuning import (
        tune as tune,
    )


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'layerlab' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
