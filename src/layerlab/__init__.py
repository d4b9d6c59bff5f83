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
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'layerlab' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
