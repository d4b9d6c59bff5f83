"""The public API, one function per job; the CLI only parses arguments, calls these and renders
what they return. Three modules, by job:

- :mod:`~layerlab.api.training`: the training life cycle (:func:`train`, :func:`resume`, on one
  process or under ``torchrun``), recording how each run ended;
- :mod:`~layerlab.api.after`: use after training, each reading a run directory
  (:func:`evaluate_run`, :func:`predict_files`, :func:`generate`, :func:`load_run`, :func:`decode`);
- :mod:`~layerlab.api.front`: the Keras-style front door on arrays (:func:`fit`, :func:`evaluate`,
  :func:`predict`, :func:`build_model`).
"""

from ..rundir import RunDir
from .after import decode, evaluate_run, generate, load_run, per_sample_predictions, predict_files, top_k
from .front import History, build_model, check_model_fits, evaluate, fit, predict
from .training import (
    check_callbacks,
    check_sizes,
    count_parameters,
    dataset_info,
    prepare_data,
    resume,
    run_info,
    train,
)

__all__ = [
    "History",
    "RunDir",
    "build_model",
    "check_callbacks",
    "check_model_fits",
    "check_sizes",
    "count_parameters",
    "dataset_info",
    "decode",
    "evaluate",
    "evaluate_run",
    "fit",
    "generate",
    "load_run",
    "per_sample_predictions",
    "predict",
    "predict_files",
    "prepare_data",
    "resume",
    "run_info",
    "top_k",
    "train",
]
