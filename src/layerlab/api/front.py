"""The Keras-style front door: :func:`fit`, :func:`evaluate` and :func:`predict` take arrays (NumPy,
tensors, PIL images) as Keras's ``model.fit`` does, and :func:`build_model` builds a registered
model. No state is kept between calls: how a fitted model reads its input travels with the
:class:`History` that :func:`fit` returns.
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .. import engine, finetune
from ..config import ModelConfig, RunConfig, TrainConfig
from ..data import Dataset, Split, arrays
from ..data.inputs import read_inputs
from ..data.transforms import InputSpec
from ..errors import ConfigError, DataError, LayerlabError
from ..modelargs import format_model_args
from ..models import (
    contract,
    create_model,
    model_options,
    our_model,
    required_options,
    sequence_model,
    takes_any_option,
    trust_module,
)
from ..preflight import check_runtime_options
from ..rundir import RunDir, build_model_for
from .after import decode, evaluate_run
from .training import _callbacks_kw, _fit_and_record, _setup_threads, check_callbacks, run_info

log = logging.getLogger(__name__)


def build_model(
    name: str, input_shape: tuple[int, ...] | None = None, num_outputs: int | None = None, **options: Any
) -> nn.Module:
    """Build a registered model (see ``layerlab models``) for samples of ``input_shape``.

    Args:
        name: a registered name, or ``package.module:factory`` (given here, it is the user's, so its
            module may be imported: :func:`layerlab.models.trust_module`).
        input_shape: one sample's shape, ``(C, H, W)`` or ``(T, F)``; without shapes the article's
            models get the article's (28x28 grey images, 10 classes).
        num_outputs: classes or regression values.
        **options: the model's options (``channels``, ``hidden``, ``layers``, ...).

    Returns:
        The ``nn.Module``.

    Raises:
        ConfigError: an unknown name, or an option the model does not take.
    """
    if isinstance(name, str):
        trust_module(name)
    model = create_model(name, input_shape, num_outputs, **options)
    # how it was built, so a run fit() makes of it records a name that rebuilds it (checked there)
    model.__dict__["_layerlab_builder"] = (name, {k: v for k, v in options.items() if v is not None})
    return model


def _builder_config(model: nn.Module, ds: Dataset) -> ModelConfig | None:
    """The model config that rebuilds ``model`` for ``ds``: the name and options :func:`build_model`
    made it from, when that rebuilds the same layers and shapes (a head the user replaced by another
    kind of layer does not); else None, and the run records the object's class."""
    builder = model.__dict__.get("_layerlab_builder")
    if builder is None:
        return None
    name, options = builder
    cfg = ModelConfig(name=name)
    own = {f.name for f in fields(ModelConfig)} - {"name", "args"}
    try:
        for k, v in options.items():
            if k in own:
                setattr(cfg, k, v)
        cfg.args = format_model_args({k: v for k, v in options.items() if k not in own})
        with torch.random.fork_rng(devices=[]):  # the user's seeds are untouched
            again = build_model_for(cfg, ds.spec, ds.num_outputs)
    except LayerlabError:
        return None
    ours, theirs = model.state_dict(), again.state_dict()
    same = ours.keys() == theirs.keys() and all(ours[k].shape == theirs[k].shape for k in ours)
    return cfg if same and type(again) is type(model) else None


def check_model_fits(model: nn.Module, ds: Dataset) -> None:
    """One sentence, before anything is written, for a model object that cannot train on ``ds``:
    no trainable parameters, an error on the data's samples (a wrong input size), or outputs that
    do not match the data's classes or targets. Runs the model in eval mode on two training
    samples, with no gradient (no weight, buffer or random stream changes)."""
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"the model ({type(model).__name__}) has no trainable parameters; fit has nothing to train")
    was_training = model.training
    probe = ds.train.subset(torch.arange(min(2, len(ds.train))))
    try:
        out = engine.predict_logits(model, probe, batch_size=2, device=next(model.parameters()).device)
    except LayerlabError:
        raise
    except Exception as e:
        raise DataError(
            f"the model ({type(model).__name__}) cannot read the training samples of shape {tuple(ds.spec.shape)} "
            f"({type(e).__name__}: {' '.join(str(e).split())})"
        ) from None
    finally:
        model.train(was_training)
    if ds.task == "regression":
        got = out[0].numel()
        if got != ds.num_outputs:
            raise ConfigError(
                f"the model gives {got} value(s) per sample, the targets have {ds.num_outputs}; give it "
                f"{ds.num_outputs} output(s)"
            )
        return
    rows = ds.train.y.dim() == 1 or ds.train.y.is_floating_point()  # one target or one row per sample
    if out.shape[-1] != ds.num_outputs or out.dim() != (2 if rows else 3):
        raise ConfigError(
            f"the model gives outputs of shape {tuple(out.shape[1:])} per sample, the data has {ds.num_outputs} "
            f"classes; give it a head of {ds.num_outputs} outputs"
        )


_TRAIN_OPTIONS = [f.name for f in fields(TrainConfig)]
_MODEL_OPTIONS = [f.name for f in fields(ModelConfig) if f.name not in ("name", "args")]


@dataclass
class History:
    """What :func:`fit` returns, as Keras's ``History``.

    Attributes:
        history: per metric a list with one value per epoch: ``loss`` and ``accuracy`` (the running
            mean over each training epoch), ``val_loss`` and ``val_accuracy`` (with validation data);
            ``accuracy`` is absent for regression.
        epoch: the epochs, counted from 0 as Keras does (run directories count from 1).
        model: the trained ``nn.Module`` (its last weights).
        run: the :class:`~layerlab.rundir.RunDir` when ``fit`` was given ``run_dir``, else None.
        rows: the full per-epoch rows as ``metrics.csv`` holds them (timings, learning rate, ...).
        best_epoch: the epoch (from 1) of lowest validation loss, 0 without validation.
        spec, task, classes, num_outputs: how the model reads its input and what it predicts, which
            :func:`evaluate` and :func:`predict` use when given this History (given ``history.model``
            alone, they read arrays as :func:`fit` would and take the task from ``y``).
        model_name, model_options: what built the model (a registered name or
            ``package.module:factory`` and its options), which :func:`layerlab.save` records.
    """

    history: dict[str, list[float]]
    epoch: list[int]
    model: nn.Module
    run: RunDir | None = None
    rows: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    spec: InputSpec | None = None
    task: str | None = None
    classes: list[str] | None = None
    num_outputs: int | None = None
    model_name: str | None = None
    model_options: dict | None = None


def _reads_sequences(model: nn.Module) -> bool:
    """Whether a model object reads sequences (a recurrent one): then uint8 images are read as rows."""
    if contract.input_kind(model) in contract.INPUT_KINDS:  # our recurrent models, and any that says so
        return True
    return any(isinstance(m, nn.RNNBase) for m in model.modules())


def _split_options(options: dict, name: str | None = None) -> tuple[dict, dict, dict]:
    """Training options, model options with a config field, and the factory's own keyword options
    (``fit("pkg.mod:factory", width=8)``): any other keyword the model ``name`` takes."""
    train, model, factory = {}, {}, {}
    takes, any_option = ([], False) if name is None else (model_options(name), takes_any_option(name))
    for k, v in options.items():
        if k in _TRAIN_OPTIONS:
            train[k] = v
        elif k in _MODEL_OPTIONS:
            model[k] = v
        elif name is not None and (k in takes or any_option):
            factory[k] = v
        else:
            if name is not None and not our_model(name):
                raise ConfigError(
                    f"fit() got the unknown option {k!r}: not a training option, and model {name} takes "
                    f"{', '.join(takes) or 'no options'}"
                )
            raise ConfigError(
                f"fit() got the unknown option {k!r}; it takes training options ({', '.join(_TRAIN_OPTIONS)}) "
                f"and model options ({', '.join(_MODEL_OPTIONS)})"
            )
    return train, model, factory


def fit(
    model_or_name: str | nn.Module,
    x: Any,
    y: Any = None,
    *,
    validation_data: tuple | None = None,
    validation_split: float = 0.0,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    callbacks: list | None = None,
    run_dir: str | Path | None = None,
    verbose: int = 1,
    seed: int = 0,
    augment: str | dict | None = None,
    workers: int | None = None,
    x_column: str | None = None,
    y_column: str | None = None,
    **train_options: Any,
) -> History:
    """Train a model on arrays, as Keras's ``model.fit(x, y, ...)``; returns a :class:`History`.

    Args:
        model_or_name: a registered model name (``article-cnn``, ``lstm``, ``package.module:factory``,
            or the factory function or class itself), built for the data's shapes and classes from
            ``seed`` with the factory's own keyword options among ``train_options`` (``width=8``),
            which the run keeps; or an ``nn.Module`` (a run then records its class, and
            ``evaluate(run, model=...)`` takes a module built the same way to load its weights into).
        x: ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` images for an image model; ``(N, T, F)``
            sequences (or uint8 images, read as rows) for a recurrent one. A NumPy array, a torch
            tensor, or a list of arrays or PIL images. uint8 is scaled by 1/255, floats kept as float32.
            Or, with no ``y``, a torch ``Dataset`` of ``(x, y)`` samples, a ``DataLoader`` (its dataset
            is read in the run's own order), a Hugging Face ``datasets.Dataset`` (its ``x_column`` and
            ``y_column``, by default the first of ``image``, ``img``, ``pixel_values``... and ``label``,
            ``labels``...) or an iterable of ``(x, y)`` batches (:mod:`layerlab.data.python`).
        y: ``(N,)`` integer class ids (``K`` outputs; other labels than ``0..K-1`` are mapped, with a
            notice), one-hot rows ``(N, K)``, probability rows ``(N, K)`` (soft-target cross-entropy),
            0/1 multi-label rows ``(N, K)`` (a sigmoid per label, binary cross-entropy), or float
            regression targets ``(N,)`` or ``(N, D)`` (2-D ones with a notice).
        validation_data: ``(x_val, y_val)`` evaluated after every epoch (``val_*`` metrics; ``best``
            weights chosen on it).
        validation_split: hold out this fraction of ``x`` instead (stratified by class, from
            ``seed``). With neither, nothing is held out.
        epochs: passes over the training data.
        batch_size: samples per step.
        lr: the learning rate.
        callbacks: :mod:`layerlab.callbacks` objects (``EarlyStopping``, ``TensorBoard``, ...).
        verbose: 0 silent, 1 a progress bar, 2 one line per epoch (adds a ``ProgressBar``).
        seed: seeds the initialisation, the shuffling, the split and the augmentation.
        augment: training augmentation (``"crop=4,flip"`` or ``{"crop": 4, "flip": True}``, see
            :mod:`layerlab.augmentspec`).
        workers: processes reading a torch Dataset's samples.
        **train_options: any other training option (``optimizer``, ``clip``, ``device``,
            ``threads``, ...) or model option (``channels``, ``hidden``, ...), as ``layerlab train``.
        run_dir: also keep everything ``layerlab train`` keeps there (config, run.json, metrics,
            checkpoints, the arrays as ``arrays.npz``), so ``layerlab evaluate RUN_DIR`` and every
            other command work on it. A model object is recorded by the name and options that built it
            when :func:`build_model` did (and they rebuild its layers); any other module's run records
            its class, and is evaluated from Python with a module built the same way
            (``evaluate(run_dir, model=MyNet(...))``), not by the command line, which cannot rebuild it.
        x_column: the input column of a ``datasets.Dataset`` (detected when None).
        y_column: its label column (detected when None).

    Returns:
        The :class:`History`: per-epoch metrics, the trained model and how it reads its input.

    Raises:
        ConfigError: an unknown option or a bad value, before training starts.
        DataError: arrays the model cannot read (shapes, values, labels).
        TrainingError: the loss became NaN or infinite.
    """
    if callable(model_or_name) and not isinstance(model_or_name, (str, nn.Module)):
        model_or_name = _factory_name(model_or_name)  # a factory function or class: the run records its path
    if isinstance(model_or_name, str):
        trust_module(model_or_name)  # named in Python by the user: its module may be imported
    train_opts, model_opts, factory_opts = _split_options(
        train_options, model_or_name if isinstance(model_or_name, str) else None
    )
    train_opts = _recipe_text(train_opts)
    if callbacks is not None:
        check_callbacks(callbacks)  # before any work: a callback the loop cannot call fails in the middle
    cfg = RunConfig()
    cfg.data.name = "arrays"
    for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, **train_opts}.items():
        setattr(cfg.train, k, v)
    if isinstance(model_or_name, str):
        cfg.model.name = model_or_name
        for k, v in model_opts.items():
            setattr(cfg.model, k, v)
        cfg.model.args = format_model_args(factory_opts, "fit() model option")  # kept in the run's config
        cfg.validate("fit()")
        takes = model_options(cfg.model.name)  # before the data is read, as train checks its flags
        wrong = [] if takes_any_option(cfg.model.name) else [k for k in cfg.model.options() if k not in takes]
        if wrong:
            raise ConfigError(
                f"model {cfg.model.name} does not take {', '.join(wrong)}; it takes {', '.join(takes) or 'no options'}"
            )
        missing = [k for k in required_options(cfg.model.name) if k not in cfg.model.options()]
        if missing:
            raise ConfigError(
                f"model {cfg.model.name} needs the option {', '.join(missing)} (its factory has no default for it); "
                f"give it to fit() as {missing[0]}=VALUE"
            )
        sequence = sequence_model(cfg.model.name)
    elif isinstance(model_or_name, nn.Module):
        if model_opts:
            raise ConfigError(f"model options ({', '.join(model_opts)}) need a model name, not a model object")
        cfg.validate("fit()")
        sequence = _reads_sequences(model_or_name)
    else:
        raise ConfigError(f"fit() takes a model name or a torch.nn.Module, got {type(model_or_name).__name__}")
    out = Path(run_dir) if run_dir is not None else None
    if out is not None:
        RunDir.check_new(out)  # before any work
    ds, in_memory = _fit_data(x, y, sequence, validation_data, validation_split, seed, workers, (x_column, y_column))
    if augment:
        from ..augmentspec import canonical, parse
        from ..data.augment import Augment

        cfg.data.augment = canonical(parse(augment, "fit(augment=...)"))
        ds.augment = Augment.from_config(cfg.data.augment, ds.spec, "fit(augment=...)")
    _setup_threads(cfg.train.threads)
    device = engine.resolve_device(cfg.train.device)
    check_runtime_options(cfg.train, device)  # a refused option leaves no run directory
    engine.seed_everything(cfg.train.seed)
    if isinstance(model_or_name, str):
        model = build_model_for(cfg.model, ds.spec, ds.num_outputs)
    else:
        model = model_or_name
        rebuilt = _builder_config(model, ds)  # a model build_model made records that name and options
        if rebuilt is not None:
            cfg.model = rebuilt
        else:
            cfg.model.name = _object_name(model)
    started = finetune.prepare(model, cfg.train)  # init_from, head, freeze
    if not isinstance(model_or_name, str):
        check_model_fits(model, ds)  # a head the user replaced trains, if it fits the data
    model = model.to(device)
    cbs = list(callbacks or [])
    if verbose:
        from ..callbacks import ProgressBar

        cbs.append(ProgressBar(verbose))
    engine.check_training(cfg.train, ds, cbs, device=device)  # a refused callback leaves no run directory
    run = None
    if out is None:
        result = engine.fit(model, ds, cfg.train, **_callbacks_kw(cbs))
    elif not in_memory:  # a Dataset object: the run keeps no copy, and says what the CLI can do with it
        from ..data.python import PYTHON_PREFIX, rereads

        cfg.data.name = PYTHON_PREFIX + ds.name
        info = run_info(cfg, model, ds, device)
        info["dataset"]["data_note"] = rereads(ds)
        run = RunDir.create(out, cfg, info)
        result = _fit_and_record(run, model, ds, cfg, None, **_callbacks_kw(cbs))
    else:
        cfg.data.name = arrays.RUN_FILE  # relative to the run: a copied or moved run reads its own copy
        info = run_info(cfg, model, ds, device)
        info["dataset"]["name"] = "arrays"
        if started:
            info["init_from"] = started  # where its weights came from
        run = RunDir.create(out, cfg, info)  # takes the run's lock
        try:
            arrays.save_arrays(out / arrays.RUN_FILE, ds)
        except BaseException:
            run.release_lock()
            raise
        result = _fit_and_record(run, model, ds, cfg, None, **_callbacks_kw(cbs))
    return History(
        _keras_history(result.history),
        [r["epoch"] - 1 for r in result.history],
        model,
        run,
        result.history,
        result.best_epoch,
        ds.spec,
        ds.task,
        ds.classes,
        ds.num_outputs,
        cfg.model.name,
        cfg.model.options() if not cfg.model.name.startswith("<object ") else {},
    )


def _recipe_text(opts: dict) -> dict:
    """Python's forms of the open recipe (a dict of optimizer options, a list or dict of class weights,
    a list of metric names) as the text a config keeps (:mod:`layerlab.recipe`)."""
    from .. import recipe

    convert = {
        "optimizer_args": recipe.format_args,
        "class_weight": recipe.format_class_weight,
        "metrics": recipe.format_metrics,
    }
    return {k: convert[k](v) if k in convert else v for k, v in opts.items()}


def _fit_data(x, y, sequence: bool, validation_data, validation_split: float, seed: int, workers, columns) -> tuple:
    """The dataset :func:`fit` trains on, and whether it is in memory (arrays the run can keep)."""
    from ..data.python import dataset_from_python, is_python_data, mapped_images

    if mapped_images(x) and y is not None:  # read a batch at a time from its file, never loaded whole
        return dataset_from_python(
            (x, y),
            sequence=sequence,
            validation_data=validation_data,
            validation_split=validation_split,
            seed=seed,
            workers=workers,
        )
    if is_python_data(x):
        if y is not None:
            raise DataError("a Dataset, DataLoader or iterable of batches carries its targets; give no y")
        return dataset_from_python(
            x,
            sequence=sequence,
            validation_data=validation_data,
            validation_split=validation_split,
            seed=seed,
            workers=workers,
            x_column=columns[0],
            y_column=columns[1],
        )
    if y is None:
        raise DataError("fit() needs y beside arrays x (only a Dataset, DataLoader or iterable of batches carries it)")
    ds = arrays.dataset_from_arrays(
        x, y, sequence=sequence, validation_data=validation_data, validation_split=validation_split, seed=seed
    )
    return ds, True


def _factory_name(factory) -> str:
    """``package.module:factory`` for a factory function or class given to :func:`fit`, so the run
    records how to rebuild its model; one sentence for one no other process could import."""
    module, qualname = getattr(factory, "__module__", None), getattr(factory, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        what = getattr(factory, "__name__", type(factory).__name__)
        raise ConfigError(
            f"fit() takes a model factory from an importable module (package.module:factory), and {what} is "
            f"defined in {'a function' if qualname and '<' in qualname else 'this script or notebook'}; move it "
            f"into a module, or pass the model object itself ({what}(...))"
        )
    return f"{module}:{qualname}"


def _object_name(model: nn.Module) -> str:
    """The name a run records for a model object: one no command can rebuild, which says what
    happened (a name or ``package.module:factory`` given to :func:`fit` records one that can)."""
    cls = type(model)
    return f"<object {cls.__module__}.{cls.__qualname__}>"


#: Columns of a row that are timings or settings, not metrics (Keras's History holds metrics).
_NOT_METRICS = {"epoch", "train_seconds", "eval_seconds", "samples_per_second", "lr", "lr_start"}


def _keras_history(rows: list[dict]) -> dict[str, list[float]]:
    """Keras's names: ``train_X`` as ``X``, ``val_X`` as it is (metrics by name too), and any other
    number every row holds (what a callback added, ``grad_norm_mean``); the held-out columns only when
    they are validation: without it they are the training data again (``train_eval_``), or a test set."""
    out: dict[str, list[float]] = {}
    if not rows:
        return out
    for key in rows[0]:
        if key in _NOT_METRICS or key.startswith(("test_", "train_eval_")) or key.endswith("_n"):
            continue
        if not all(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) for r in rows):
            continue
        name = key[len("train_") :] if key.startswith("train_") else key
        out[name] = [float(r[key]) for r in rows]
    return out


@dataclass
class _Target:
    """What evaluate and predict use: a model in eval mode and how it reads input (None: unknown)."""

    model: nn.Module
    spec: InputSpec | None
    task: str | None
    classes: list[str] | None
    num_outputs: int | None
    run: RunDir | None = None


def _target(model_or_run, which: str | None, device: str, module: nn.Module | None = None) -> _Target:
    if isinstance(model_or_run, History):
        h = model_or_run
        return _Target(h.model, h.spec, h.task, h.classes, h.num_outputs)
    if isinstance(model_or_run, nn.Module):  # how it reads input is unknown: as fit reads arrays
        return _Target(model_or_run, None, None, None, None)
    if isinstance(model_or_run, (str, Path, RunDir)):
        run = model_or_run if isinstance(model_or_run, RunDir) else RunDir(model_or_run)
        info = run.info()
        model = run.model(which, device, module)
        ds = info["dataset"]
        return _Target(model, run.spec, ds["task"], run.classes, ds["num_outputs"], run)
    raise ConfigError(f"expected a model, a History or a run directory, got {type(model_or_run).__name__}")


def _module_for_run(model_or_run, model: nn.Module | None) -> nn.Module | None:
    """``model=``: only beside a run directory, whose weights it receives."""
    if model is None:
        return None
    if not isinstance(model_or_run, (str, Path, RunDir)):
        raise ConfigError("model= goes with a run directory (its weights are loaded into it), not with a model")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model= takes a torch.nn.Module built as the run's was, got {type(model).__name__}")
    return model


def _inputs(target: _Target, x, columns=(None, None), need_y: bool = False):
    """``x`` as a batch for the target's model (files through the run's reader, arrays through its
    spec) and, for Python data that carries them (a Dataset, DataLoader, iterable of batches), its
    raw targets: ``(Split or batch source, targets or None)``."""
    from ..data.python import is_python_data, python_inputs

    if is_python_data(x):
        return python_inputs(
            x,
            target.spec,
            sequence=_reads_sequences(target.model),
            x_column=columns[0],
            y_column=columns[1],
            need_y=need_y,
        )
    is_path = isinstance(x, (str, Path)) or (
        isinstance(x, (list, tuple)) and x and all(isinstance(v, (str, Path)) for v in x)
    )
    if is_path:
        if target.spec is None:
            raise ConfigError("reading files needs a run directory or a model trained by layerlab.fit")
        files = [x] if isinstance(x, (str, Path)) else list(x)
        tokens = target.num_outputs if target.spec.kind == "tokens" else None
        inputs = read_inputs(files, target.spec, num_tokens=tokens)
        assert inputs is not None  # (None for no files; there is at least one)
        return Split(inputs.x, torch.zeros(len(inputs)), inputs.lengths), None
    if target.spec is not None:
        xt = arrays.inputs_from_arrays(x, target.spec)
    else:
        xt, _, _ = arrays.model_inputs(x, sequence=_reads_sequences(target.model))
    return Split(xt, torch.zeros(len(xt))), None


def _outputs(target: _Target, batch, batch_size: int, tta: str | None = None) -> torch.Tensor:
    from .after import check_tta, flip_averaged

    first = next(target.model.parameters(), None)  # a module without parameters runs on the CPU
    device = first.device if first is not None else torch.device("cpu")
    model = target.model
    if tta:
        check_tta(tta, target.spec, target.task, len(batch.x.shape) - 1, "evaluate()")
        model = flip_averaged(model)
    return engine.predict_logits(model, batch, batch_size=batch_size, device=device)


def evaluate(
    model_or_run: nn.Module | History | str | Path | RunDir,
    x: Any = None,
    y: Any = None,
    *,
    which: str | None = None,
    device: str = "cpu",
    batch_size: int = 1000,
    metrics: list[str] | str | None = None,
    tta: str | None = None,
    x_column: str | None = None,
    y_column: str | None = None,
    model: nn.Module | None = None,
) -> dict:
    """Loss and metrics of a model on arrays ``x``, ``y`` (read as :func:`fit` reads them), by
    :func:`layerlab.engine.compute_metrics`, the numbers ``fit`` and ``layerlab evaluate`` report.

    Args:
        model_or_run: a model :func:`fit` trained (or its History), a run directory (path or
            RunDir; ``which`` weights, see :func:`load_run`), or any ``nn.Module`` (its inputs then
            read as ``fit`` would read them, and its task taken from ``y``).
        x: inputs, as :func:`fit` takes them (a Dataset, DataLoader, ``datasets.Dataset`` or
            iterable of batches carries its targets: no ``y``). Without ``x`` and ``y``, a run is
            evaluated on its own test set (:func:`evaluate_run`); a run :func:`fit` made without test
            data has none, and its result names the split it used (``validation`` or ``training``)
            with a ``note``.
        y: targets, as :func:`fit` takes them.
        which: a run's weights (see :func:`load_run`).
        device: where a run's model is put.
        batch_size: samples per forward pass.
        metrics: more metrics by name (``["f1_macro", "top5_accuracy", "auroc"]``).
        tta: ``"flip"``: each image's class probabilities are the mean of the softmax of the image
            and of its left-right mirror (test-time augmentation; images only); the result says ``tta``.
        x_column: the input column of a ``datasets.Dataset`` (as for :func:`fit`).
        y_column: its label column.
        model: with a run directory that :func:`fit` trained from a module object (which its files
            cannot rebuild), a module built the same way: the run's weights are loaded into it.
    Returns:
        ``loss``, ``n`` and, for classification, ``accuracy``, ``per_class_accuracy`` (class name
        to accuracy, classes present in ``y``) and ``confusion`` (``K x K`` lists, row = true class);
        ``metrics`` by name (``["f1_macro", "top5_accuracy", "auroc"]``) each under its name.

    Raises:
        ConfigError: a model object without ``x`` and ``y``, only one of them, or an unknown metric.
        DataError: arrays that do not fit the model.
    """
    from .. import recipe

    module = _module_for_run(model_or_run, model)
    names = recipe.format_metrics(metrics)
    recipe.metric_names(names, "metrics")
    from ..data.python import is_python_data

    if x is None and y is None:
        if isinstance(model_or_run, (str, Path, RunDir)):
            return evaluate_run(
                model_or_run.path if isinstance(model_or_run, RunDir) else model_or_run,
                which=which,
                device=device,
                tta=tta,
                model=module,
            )
        raise ConfigError("evaluate() needs x and y for a model object (only a run directory has a test set)")
    carried = is_python_data(x)
    if carried and y is not None:
        raise DataError("a Dataset, DataLoader or iterable of batches carries its targets; give no y")
    if x is None or (y is None and not carried):
        raise ConfigError("evaluate() needs both x and y")
    target = _target(model_or_run, which, device, module)
    batch, carried_y = _inputs(target, x, (x_column, y_column), need_y=True)
    yt, task, k = arrays.targets(
        carried_y if carried else y,
        len(batch),
        task=target.task,
        num_outputs=target.num_outputs,
        classes=target.classes,
    )
    out = _outputs(target, batch, batch_size, tta)
    if task != "regression" and out.dim() == 2 and yt.dim() == 1 and int(yt.max()) >= out.shape[-1]:
        raise DataError(f"y holds the label {int(yt.max())}; the model gives {out.shape[-1]} classes")
    k = out.shape[-1] if task != "regression" else k
    m = engine.compute_metrics(task, out, yt, k if task != "regression" else None, metrics=names)
    result = {"loss": m["loss"], "n": m["n"], **{n: m[n] for n in recipe.metric_names(names) if n in m}}
    if "accuracy" in m:
        classes = target.classes or [str(i) for i in range(k)]
        result["accuracy"] = m["accuracy"]
        result["per_class_accuracy"] = {
            c: a for c, a in zip(classes, m["per_class_accuracy"], strict=True) if a is not None
        }
        if "confusion" in m:
            result["confusion"] = m["confusion"].tolist()
    for key in ("exact_match", "f1_micro", "f1_macro"):  # multi-label
        if key in m:
            result[key] = m[key]
    if tta:
        result["tta"] = tta
    return result


def predict(
    model_or_run: nn.Module | History | str | Path | RunDir,
    x: Any,
    *,
    top_k: int | None = None,
    which: str | None = None,
    device: str = "cpu",
    batch_size: int = 1000,
    x_column: str | None = None,
    model: nn.Module | None = None,
) -> np.ndarray | list[dict]:
    """Predictions of a model for ``x``, as Keras's ``model.predict``: a NumPy array with one row
    per sample: class probabilities ``(N, K)`` (``(N, T, K)`` with one class per step), or the
    values ``(N, D)`` of a regression model.

    Args:
        model_or_run: as :func:`evaluate` takes it (a model object layerlab did not fit is taken for
            a classifier: its outputs go through a softmax).
        x: arrays, tensors or PIL images as :func:`fit` takes them (one image without the batch axis
            too: a batch of one), or image, sequence or text files (a path or a list of paths) as
            ``layerlab predict`` reads them, or a torch Dataset, DataLoader, ``datasets.Dataset``
            (its ``x_column``, see :func:`fit`) or iterable of batches (their inputs; targets unread).
        top_k: instead of the array, one dict per sample as ``layerlab predict --json`` gives
            (``index``, ``label``, ``probability`` and the ``top_k`` likeliest classes).
        which: a run's weights (see :func:`load_run`).
        device: where a run's model is put.
        batch_size: samples per forward pass.
        x_column: the input column of a ``datasets.Dataset`` (as for :func:`fit`).
        model: as :func:`evaluate` takes it (a module for a run trained from a module object).

    Returns:
        A NumPy array (probabilities, or values for regression), or with ``top_k`` a list of dicts.

    Raises:
        ConfigError: ``top_k`` below 1, or files given for a model object that has no input spec.
        DataError: inputs that do not fit the model.
    """
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1):
        raise ConfigError(f"top_k must be at least 1 (a whole number), got {top_k!r}")
    target = _target(model_or_run, which, device, _module_for_run(model_or_run, model))
    batch, _ = _inputs(target, x, (x_column, None))
    out = _outputs(target, batch, batch_size)
    task = target.task or "classification"
    if top_k is not None:
        spec = target.spec or InputSpec("image", (1,))
        classes = target.classes or [str(i) for i in range(out.shape[-1])]
        n = len(batch)
        lengths = [int(batch.x.shape[1]) if batch.lengths is None else int(batch.lengths[i]) for i in range(n)]
        return [decode(out, i, lengths[i], task=task, spec=spec, classes=classes, k=top_k) for i in range(n)]
    if task == "regression":
        return out.reshape(len(out), -1).numpy()
    if task == "multilabel":  # one probability per label
        return torch.sigmoid(out).numpy()
    return torch.softmax(out, -1).numpy()
