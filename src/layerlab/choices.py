"""Every list of choices layerlab accepts, in one torch-free home: the config, the command line, the
run record, the readers and the models import them from here (``import layerlab.cli`` loads no torch,
so none of these may live in a module that does)."""

from __future__ import annotations

from .errors import ConfigError

#: which weights of a run to use: ``auto`` is ``best`` for a run trained with --validation (lowest
#: validation loss), else ``last`` (nothing is chosen on the test set); ``init`` is the model as
#: initialised, rebuilt from the run's seed
WEIGHTS = ("auto", "best", "last", "init")
#: what a dataset's targets mean (``run.json``'s ``dataset.task``), and so the loss and metric
TASKS = ("classification", "regression", "sequence-classification", "multilabel")
#: the synthetic tasks ``compare-cells`` measures recurrent cells on
COMPARE_TASKS = ("adding", "copy")
#: where to train or run a model (``auto``: cuda when there is a GPU; ``mps``: Apple's GPU)
DEVICES = ("cpu", "cuda", "auto", "mps")
#: the optimizers of ``torch.optim`` a run can train with, by their lower-case names (LBFGS needs a
#: closure, SparseAdam sparse gradients and Muon 2-D parameters only: none trains every model here)
OPTIMIZERS = (
    "adam",
    "adamw",
    "sgd",
    "rmsprop",
    "nadam",
    "radam",
    "adamax",
    "adagrad",
    "adadelta",
    "asgd",
    "rprop",
    "adafactor",
)
#: learning-rate schedules (see :mod:`layerlab.training.schedules`)
SCHEDULES = ("constant", "step", "cosine", "onecycle")
#: how images are read as sequences: rows (H steps of W*C), pixels (H*W steps of C), permuted pixels
SEQUENCE_MODES = ("rows", "pixels", "permuted")
#: a recurrent model's head: one output per sequence, or one per step
HEADS = ("last", "step")
#: the recurrent cells (:mod:`layerlab.models.cells`)
CELLS = ("rnn", "lstm", "gru", "residual")
#: a CNN's conv padding, and the global pools that may end its feature extractor
PADDINGS = ("valid", "same")
GLOBAL_POOLS = ("avg", "max")
#: the ONNX exporters of torch that ``layerlab export`` drives
EXPORTERS = ("torchscript", "dynamo")


def check_schedule(schedule: str, lr: float, min_lr: float) -> None:
    """A ConfigError unless ``schedule`` is known and, for ``cosine``, ``min_lr`` is at most ``lr``
    (the fields that only make sense together)."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}; expected {and_list(SCHEDULES, 'or')}")
    if schedule == "cosine" and min_lr > lr:
        raise ConfigError(f"--min-lr {min_lr} is above --lr {lr}; a cosine schedule goes down to min_lr")


def and_list(names, word: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c``: names as a sentence lists them (``word``: and, or)."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {word} {names[-1]}"


#: the LSTM's forget-gate bias at initialisation: a number, or chrono initialisation (Tallec & Ollivier 2018)
CHRONO = "chrono"


def parse_forget_bias(value, where: str = "--forget-bias") -> tuple[str, float | None]:
    """``--forget-bias``: ``("value", b)`` for a finite number ``b``, ``("chrono", None)`` for ``chrono``
    (T_max the sequence length) and ``("chrono", T)`` for ``chrono:T`` (T at least 3, so that
    U(1, T - 1) is an interval). ConfigError, one sentence, otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a number or chrono, got {value!r}")
    if isinstance(value, (int, float)):
        b = float(value)
    else:
        text = str(value).strip()
        name, _, t_max = text.partition(":")
        if name == CHRONO:
            if not _:
                return CHRONO, None
            try:
                t = int(t_max)
            except ValueError:
                raise ConfigError(f"{where} {text}: chrono:T takes a whole number of steps T, got {t_max!r}") from None
            if t < 3:
                raise ConfigError(f"{where} {text}: chrono:T needs T of at least 3 (b_f = log U(1, T - 1))")
            return CHRONO, float(t)
        try:
            b = float(text)
        except ValueError:
            raise ConfigError(f"{where} must be a number or chrono (or chrono:T), got {text!r}") from None
    if b != b or b in (float("inf"), float("-inf")):
        raise ConfigError(f"{where} must be a finite number or chrono, got {value!r}")
    return "value", b
