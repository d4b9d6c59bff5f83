"""Run configuration: dataclasses owned by the code they configure, defaults that reproduce the
article (section 4: Adam lr 1e-3, eps 1e-7, batch 32, 10 epochs). Presets are TOML files with
``[data]``, ``[model]`` and ``[train]`` tables; every run writes its resolved config back as TOML.

Each field is declared once, here, with its help text (and choices) in ``field(metadata=...)``;
the command line's flags are generated from these declarations by :func:`add_config_flags`.
That takes plain ``dataclasses.fields()`` and argparse: jsonargparse or tyro would do it too, but a
dependency heavier than the ~60 lines it replaces.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import stat
import tomllib
import types
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import tomli_w

from .choices import (
    CELLS,
    DEVICES,
    GLOBAL_POOLS,
    OPTIMIZERS,
    PADDINGS,
    SCHEDULES,
    SEQUENCE_MODES,
    and_list,
    check_schedule,
    parse_forget_bias,
)
from .errors import ConfigError
from .recipe import LOSSES, check_args, check_class_weight, check_metrics


def _opt(default, help: str, **meta):
    """A config field: its default, its help text and, in ``meta``, ``choices``, ``flag`` (when the
    flag is not ``--field-name``), ``metavar``, ``default_text`` (shown when the default is None) and
    the range a value must be in: ``ge``/``gt`` (at least / above), ``lt`` (below); ``check``, a
    function ``(value, where)`` raising ConfigError, checks what a type and range cannot (a list)."""
    return field(default=default, metadata={"help": help, **meta})


def check_range(value, where: str, *, ge=None, gt=None, lt=None) -> None:
    """Raise ConfigError unless ``value`` is a finite number at least ``ge``, above ``gt`` and below
    ``lt`` (each where given); ``where`` names it (a flag, or a config key)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    if ge is not None and value < ge:
        raise ConfigError(f"{where} must be at least {ge}, got {value!r}")
    if gt is not None and value <= gt:
        raise ConfigError(f"{where} must be above {gt}, got {value!r}")
    if lt is not None and value >= lt:
        raise ConfigError(f"{where} must be below {lt}, got {value!r}")


def split_list(text: str, where: str) -> list[str]:
    """The items of a comma list, stripped; ConfigError for an empty list or an empty item
    (``32,,64``, a trailing comma), which is a typo more often than not."""
    items = [s.strip() for s in text.split(",")]
    if not any(items):
        raise ConfigError(f"{where} needs at least one item, got {text!r}")
    if not all(items):
        raise ConfigError(f"{where} has an empty item in {text!r}; separate the items by single commas")
    return items


def check_channels(value: str, where: str) -> None:
    """``--channels``: conv widths (whole numbers from 1) and ``M`` (a 2x2 pool), by commas."""
    for item in split_list(value, where):
        if item.upper() == "M":
            continue
        if not item.isdigit() or int(item) < 1:
            raise ConfigError(
                f"{where} must be conv widths (whole numbers from 1) and M for a pool, by commas, "
                f"such as 32,M,64,M; got {item!r} in {value!r}"
            )


_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def check_regular_file(path: str | Path, expected: str = "a file") -> None:
    """ConfigError when ``path`` exists but is not a regular file (a directory, a FIFO, a device, a
    socket), found from its metadata without opening it: reading a FIFO or a device can block
    forever. A path that does not exist is left to the reader, which says so."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise ConfigError(f"{path}: {kind}, where {expected} is expected")


def _check_augment(value, where: str) -> None:
    from .augmentspec import check

    check(value, where)


def _augment_table(value, where: str):
    from .augmentspec import from_table

    return from_table(value, where)


def _check_forget_bias(value, where: str) -> None:
    parse_forget_bias(value, where)


def _check_size(value, where: str) -> None:
    from .augmentspec import check_size

    check_size(value, where)


@dataclass
class DataConfig:
    name: str = _opt(
        "fashion-mnist",
        "dataset name (see `layerlab data list`) or a file or folder path",
        flag="--data",
        metavar="NAME|PATH",
    )
    data_dir: str | None = _opt(None, "directory to look in first for named datasets", metavar="DIR")
    validation: float = _opt(
        0.0,
        "hold out this fraction of the training set to evaluate on each epoch; 0 evaluates on the test set",
        metavar="FRACTION",
        ge=0.0,
        lt=1.0,
    )
    sequence: str | None = _opt(
        None,
        "read images as sequences: rows (H steps of W*C), pixels (H*W steps of C), "
        "permuted (pixels in a fixed random order)",
        choices=SEQUENCE_MODES,
        default_text="images stay images; rows for a recurrent model",
    )
    length: int | None = _opt(
        None,
        "sequence length T of a synthetic task, or characters per training sequence of a text file",
        default_text="the task's",
        ge=1,
    )
    n_train: int | None = _opt(
        None, "training samples of a synthetic task, or the first N of a sequence dataset", default_text="all", ge=1
    )
    n_test: int | None = _opt(
        None, "test samples of a synthetic task, or the first N of a sequence dataset", default_text="all", ge=1
    )
    label_column: str | None = _opt(
        None,
        "one CSV/TSV with a header row: the column holding the labels (every other column a numeric feature); "
        "needs --test-split",
        metavar="NAME",
    )
    test_split: float | None = _opt(
        None,
        "with --label-column: hold out this fraction of the rows as the test set (stratified by class, from --seed)",
        metavar="FRACTION",
        gt=0.0,
        lt=1.0,
    )

    augment: str | None = _opt(
        None,
        "training augmentation, drawn per sample from (seed, epoch, index): images crop=P,flip,rotate=D,zoom=F,"
        "erase=P,color=F; sequences noise=S,scale=F,window=F ([data.augment] table in a preset)",
        metavar="LIST",
        default_text="none",
        check=_check_augment,
        table=_augment_table,
    )
    workers: int | None = _opt(
        None,
        "processes decoding streamed data (image folders, packed shards); 0 reads in the training process",
        default_text="up to 4, one core left free; small image folders load into memory",
        ge=0,
    )
    image_size: str | None = _opt(
        None,
        "image folders: read every image at H,W",
        metavar="H,W",
        default_text="the most common size",
        check=_check_size,
    )
    channels: int | None = _opt(
        None,
        "image folders: read every image as 1 (grey) or 3 (RGB) channels",
        flag="--image-channels",
        choices=(1, 3),
        default_text="the most common mode",
    )


# ----------------------------------------------------------------------------------------------
# Model options, declared per family
# ----------------------------------------------------------------------------------------------
# Each family of models declares its options with the models that take them; ``ModelConfig``
# composes them into the one flat ``[model]`` table of a preset (an option several families take,
# such as --hidden, is one key there and one flag). The declarations live here, not beside the
# models, because the config and the command line load without torch.


@dataclass
class RecurrentOptions:
    """The recurrent models' options (:mod:`layerlab.models.rnn`); ``head`` is not one: the data decides it."""

    TITLE: ClassVar[str] = "recurrent models"
    MODELS: ClassVar[tuple[str, ...]] = CELLS

    hidden: int | None = _opt(None, "hidden units per layer", default_text="the model's", ge=1)
    layers: int | None = _opt(None, "stacked layers", default_text="the model's", ge=1)
    bidirectional: bool | None = _opt(None, "read each sequence in both directions", default_text="the model's")
    dropout: float | None = _opt(None, "dropout between stacked layers", default_text="the model's", ge=0.0, lt=1.0)


@dataclass
class CNNOptions:
    """The configurable CNN's options (:mod:`layerlab.models.cnn`)."""

    TITLE: ClassVar[str] = "cnn"
    MODELS: ClassVar[tuple[str, ...]] = ("cnn",)

    channels: str | None = _opt(
        None,
        "conv and pool layers such as 32,M,64,M (3x3 convs, 2x2 pools)",
        metavar="LIST",
        default_text="the model's",
        check=check_channels,
    )
    padding: str | None = _opt(
        None,
        "conv padding, valid (each conv shrinks its input, Keras's default) or same (keeps the size)",
        choices=PADDINGS,
        default_text="valid",
    )
    batch_norm: bool | None = _opt(
        None, "batch normalisation after each conv (the conv then has no bias)", default_text="off"
    )
    dropout: float | None = _opt(None, "dropout before the Dense head", default_text="the model's", ge=0.0, lt=1.0)
    residual: bool | None = _opt(
        None,
        "residual blocks ReLU(x + conv(x)) on every conv that keeps its input's shape "
        "(--padding same, as many filters as the layer before)",
        default_text="off",
    )
    global_pool: str | None = _opt(
        None,
        "end with global avg or max pooling instead of Flatten, so the model takes any size",
        choices=GLOBAL_POOLS,
        default_text="Flatten",
    )


@dataclass
class MLPOptions:
    """The multilayer perceptron's options (:mod:`layerlab.models.mlp`)."""

    TITLE: ClassVar[str] = "mlp"
    MODELS: ClassVar[tuple[str, ...]] = ("mlp",)

    hidden: int | None = _opt(None, "hidden units per layer", default_text="the model's", ge=1)
    layers: int | None = _opt(None, "hidden layers", default_text="the model's", ge=1)
    dropout: float | None = _opt(None, "dropout after each hidden layer", default_text="the model's", ge=0.0, lt=1.0)


@dataclass
class LSTMOptions:
    """The LSTM's own option (:func:`layerlab.models.rnn.lstm`): its forget-gate bias at initialisation."""

    TITLE: ClassVar[str] = "lstm"
    MODELS: ClassVar[tuple[str, ...]] = ("lstm",)

    forget_bias: str | None = _opt(
        None,
        "the forget-gate bias at initialisation, a number or chrono (Tallec & Ollivier 2018: "
        "b_f = log U(1, T_max - 1), input-gate bias -b_f; T_max the sequence length, or chrono:T)",
        metavar="chrono|VALUE",
        default_text="1, Keras's",
        check=_check_forget_bias,
    )


#: every family's options, in the order their flags are listed
ModelFamily = type[RecurrentOptions] | type[CNNOptions] | type[MLPOptions] | type[LSTMOptions]
MODEL_FAMILIES: tuple[ModelFamily, ...] = (RecurrentOptions, CNNOptions, MLPOptions, LSTMOptions)


def merged_options(families: tuple[ModelFamily, ...]) -> dict[str, dataclasses.Field]:
    """Each model option of ``families`` once, in order of first declaration, with each family's help:
    the first family's, then another's where it differs ("stacked layers; mlp: hidden layers"). An
    option several families declare must agree on its type, default, choices and range (TypeError)."""
    merged: dict[str, tuple[dataclasses.Field, list[tuple[str, str]]]] = {}
    for family in families:
        for f in fields(family):
            first, helps = merged.setdefault(f.name, (f, []))
            same = (first.type, first.default, {k: v for k, v in first.metadata.items() if k != "help"})
            if same != (f.type, f.default, {k: v for k, v in f.metadata.items() if k != "help"}):
                raise TypeError(f"model option {f.name} is declared differently by {family.__name__}")
            helps.append((family.TITLE, f.metadata["help"]))
    out = {}
    for name, (f, helps) in merged.items():
        text = "; ".join([helps[0][1], *(f"{title}: {h}" for title, h in helps[1:] if h != helps[0][1])])
        g = copy.copy(f)
        g.metadata = types.MappingProxyType({**f.metadata, "help": text, "families": tuple(t for t, _ in helps)})
        out[name] = g
    return out


def _check_model_args(value: str, where: str) -> None:
    """``--model-arg``: KEY=VALUE pairs, none of them an option with a flag of its own (``--channels``)."""
    from .modelargs import parse_model_args

    own = {f.name for f in fields(ModelConfig)} - {"name", "args"}
    for key in parse_model_args(value, where):
        if key in own:
            raise ConfigError(f"{where} {key}: that option has its own flag, {flag('model.' + key)} ([model] {key})")


def _model_args_table(value: dict, where: str):
    from .modelargs import model_args_table

    return model_args_table(value, where)


@dataclass
class _ModelName:
    name: str = _opt("article-cnn", "model name (see `layerlab models`)", flag="--model", metavar="NAME")


@dataclass
class ModelConfig(LSTMOptions, MLPOptions, CNNOptions, RecurrentOptions, _ModelName):
    """The ``[model]`` table: the model's ``name`` and every family's options (each a keyword option
    of the model factories, under the same name), composed from :data:`MODEL_FAMILIES`: ``hidden``,
    ``layers``, ``bidirectional``, ``dropout``, ``channels``, ``padding``, ``batch_norm``,
    ``residual``, ``global_pool``, ``forget_bias``. An option no one sets is None (the model's default)."""

    TITLE: ClassVar[str] = "model"
    MODELS: ClassVar[tuple[str, ...]] = ()
    # last, so the [model] keys of presets and old runs keep their order
    args: str | None = _opt(
        None,
        "a keyword option of the model's factory (a package.module:factory of your own), KEY=VALUE: a number, "
        "true/false, a JSON literal ([16, 32]) or text; checked against its signature and kept in the run, so "
        "evaluate, resume and predict rebuild the same model; repeat the flag for more",
        flag="--model-arg",
        metavar="KEY=VALUE",
        check=_check_model_args,
        table=_model_args_table,
        append=True,
    )

    @property
    def any_size(self) -> bool:
        """True when the model takes inputs of any size (a global pool ends its feature extractor)."""
        return self.global_pool in GLOBAL_POOLS

    def options(self) -> dict:
        """The factory keyword options this config sets (a None field is not set), ``--model-arg``'s too."""
        from .modelargs import parse_model_args

        own = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("name", "args") and getattr(self, f.name) is not None
        }
        return {**own, **parse_model_args(self.args, "[model] args")}


# an option several families take is one field of ModelConfig (dataclass inheritance keeps the last
# family's declaration): give it every family's help
ModelConfig.__dataclass_fields__.update(merged_options(MODEL_FAMILIES))


@dataclass
class TrainConfig:
    epochs: int = _opt(10, "passes over the training set", ge=1)
    batch_size: int = _opt(32, "training samples per step", ge=1)
    lr: float = _opt(1e-3, "learning rate (0 trains nothing: a check that a run starts from its init)", ge=0.0)
    optimizer: str = _opt("adam", "optimizer, from torch.optim (--optimizer-arg sets its options)", choices=OPTIMIZERS)
    # Keras's epsilon, the article's; torch's default is 1e-8, which changes early Adam steps.
    eps: float = _opt(1e-7, "Adam's epsilon (Keras's default; torch's is 1e-8)", gt=0.0)
    beta1: float = _opt(0.9, "Adam's decay rate of the first moment", ge=0.0, lt=1.0)
    beta2: float = _opt(0.999, "Adam's decay rate of the second moment", ge=0.0, lt=1.0)
    momentum: float = _opt(0.0, "SGD momentum", ge=0.0)
    weight_decay: float = _opt(0.0, "L2 penalty the optimizer adds to the gradient", ge=0.0)
    label_smoothing: float = _opt(
        0.0,
        "classification: train against targets smoothed by this much (0: the article's cross-entropy; "
        "evaluation always reports the plain one)",
        metavar="X",
        ge=0.0,
        lt=1.0,
    )
    clip: float | None = _opt(None, "clip gradients to this global L2 norm", default_text="no clipping", gt=0.0)
    seed: int = _opt(0, "seed of the initialisation, the shuffling and dropout", ge=0, lt=2**63)
    device: str = _opt("auto", "where to train (auto: cuda when there is a GPU; mps: Apple's GPU)", choices=DEVICES)
    amp: bool = _opt(
        False, "bf16 autocast on CUDA, or on a CPU with bf16 in hardware (AVX512-BF16, AMX); fp32 on other CPUs"
    )
    compile: bool = _opt(False, "torch.compile the model")
    cuda_graph: bool = _opt(
        False,
        "capture the training step (forward, backward, Adam) in one CUDA graph and replay it: "
        "no per-step launch overhead (CUDA, Adam, batches of one shape)",
    )
    channels_last: bool = _opt(True, "NHWC memory layout for convolutions: faster with oneDNN and cuDNN")
    threads: int | None = _opt(None, "CPU threads (torch.set_num_threads)", default_text="torch's", ge=1)
    eval_batch_size: int = _opt(1000, "samples per step when evaluating", ge=1)
    checkpoint_every: int | None = _opt(
        None,
        "also checkpoint every N training steps, so a kill loses at most N steps (resume is exact mid-epoch)",
        default_text="at the end of each epoch only",
        metavar="N",
        ge=1,
    )
    schedule: str = _opt(
        "constant",
        "learning-rate schedule, per step: constant; step (times --gamma every --step-size epochs); "
        "cosine (down to --min-lr); onecycle (torch's OneCycleLR shape, peaking at --lr)",
        choices=SCHEDULES,
    )
    warmup_epochs: float = _opt(
        0.0,
        "raise the learning rate linearly from 0 over this many epochs (counted in steps; "
        "for onecycle, the rising part)",
        metavar="EPOCHS",
        ge=0.0,
    )
    step_size: int = _opt(1, "step schedule: epochs between two decays of the learning rate", metavar="EPOCHS", ge=1)
    gamma: float = _opt(0.1, "step schedule: factor of each decay", gt=0.0)
    min_lr: float = _opt(0.0, "cosine schedule: the learning rate it anneals to", ge=0.0)
    tensorboard: str | None = _opt(None, "write TensorBoard scalars to this folder", metavar="DIR")
    extend_lr: float | None = _opt(
        None,
        "with --resume and more --epochs: train the added epochs at this constant learning rate (a cosine or "
        "onecycle curve spans the epochs it was started with; extending one needs a rate for the rest)",
        default_text="none: extending a cosine or onecycle run is refused",
        metavar="LR",
        gt=0.0,
    )
    schedule_epochs: int | None = _opt(
        None,
        "the epochs a cosine or onecycle curve spans (later epochs train at --extend-lr); set by --resume --extend-lr",
        default_text="--epochs",
        metavar="EPOCHS",
        ge=1,
    )
    optimizer_args: str | None = _opt(
        None,
        "an option of the optimizer, KEY=VALUE (a TOML value: nesterov=true, betas=[0.9, 0.95]), checked "
        "against its signature; repeat the flag for more (a config holds them by commas)",
        flag="--optimizer-arg",
        metavar="KEY=VALUE",
        check=check_args,
        append=True,
    )
    loss: str | None = _opt(
        None,
        "training loss: cross-entropy (with --label-smoothing, --class-weight), bce (binary cross-entropy on "
        "logits), mse, huber; evaluation reports the task's own loss",
        choices=LOSSES,
        default_text="the task's: cross-entropy, bce for multi-label, mse for regression",
    )
    class_weight: str | None = _opt(
        None,
        "weigh the loss per class: balanced (n / (K * count) over the training labels), a JSON file (class -> "
        "weight, or a list) or one weight per class by commas; the run's config keeps the weights used",
        metavar="balanced|FILE|W0,W1,...",
        check=check_class_weight,
    )
    metrics: str | None = _opt(
        None,
        "more metrics of the evaluated split each epoch, by commas: top5_accuracy (any K), precision_macro, "
        "recall_macro, f1_macro (and _weighted), auroc (torchmetrics: pip install 'layerlab[metrics]')",
        metavar="NAMES",
        check=check_metrics,
    )
    early_stopping: int | None = _opt(
        None,
        "stop when --monitor has not improved for this many epochs (needs --validation)",
        metavar="PATIENCE",
        ge=1,
    )
    monitor: str = _opt(
        "val_loss",
        "what --early-stopping watches: a column of metrics.csv (val_loss, val_accuracy, val_f1_macro)",
        metavar="COLUMN",
    )
    init_from: str | None = _opt(
        None,
        "fine-tune: start from this run's weights (best, else last), copied by name; the model defaults to that run's",
        metavar="RUN",
    )
    freeze: str | None = _opt(
        None,
        "fine-tune: train only the layers after this one (a module name such as features.3; body: all but the head)",
        metavar="UNTIL_LAYER",
    )
    head: str | None = _opt(
        None,
        "with --init-from: keep the run's head (same classes) or a new one for the new data's classes",
        choices=("keep", "new"),
        default_text="keep",
    )


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        def clean(d):
            return {k: v for k, v in d.items() if v is not None}

        return {
            "data": clean(dataclasses.asdict(self.data)),
            "model": clean(dataclasses.asdict(self.model)),
            "train": clean(dataclasses.asdict(self.train)),
        }

    def validate(self, where: str = "config") -> RunConfig:
        """Check every field's type, choices and range (a config built in Python skips the checks
        that TOML presets and flags get); returns self."""
        for section, cls in SECTIONS.items():
            obj = getattr(self, section)
            for f in fields(cls):
                setattr(obj, f.name, _coerce(getattr(obj, f.name), f, f"{where} [{section}] {f.name}"))
        t = self.train
        check_schedule(t.schedule, t.lr, t.min_lr)  # fields that only make sense together
        return self

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> RunConfig:
        cfg = cls()
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected tables [data], [model], [train], got {type(d).__name__}")
        unknown = set(d) - set(SECTIONS)
        if unknown:
            raise ConfigError(f"{source}: unknown table(s) {sorted(unknown)}; expected [data], [model], [train]")
        for section in SECTIONS:
            values = d.get(section, {})
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: [{section}] must be a table of keys, got {values!r}")
            update(getattr(cfg, section), values, f"{source} [{section}]")
        return cfg

    @classmethod
    def from_toml(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        check_regular_file(path, "a config file")  # a FIFO or a device would block the read, or never end
        try:
            d = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: a directory, not a config file") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text (byte {e.start} cannot be decoded); a config is TOML") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot be read ({e.strerror})") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML ({e})") from None
        except RecursionError:  # tomllib parses nested arrays and tables recursively
            raise ConfigError(f"{path}: not valid TOML (nested too deeply)") from None
        return cls.from_dict(d, str(path))


def _base_type(f: dataclasses.Field) -> str:
    """``int``, ``float``, ``bool`` or ``str``: the field's annotation (a string, under PEP 563) less None."""
    return f.type.replace(" | None", "")


def _coerce(value, f: dataclasses.Field, where: str):
    """Check a TOML/flag value against the field's annotation and choices."""
    if value is None:
        return None
    if isinstance(value, dict) and "table" in f.metadata:  # a TOML table, such as [data.augment]
        value = f.metadata["table"](value, where)
    base = _base_type(f)
    ok = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
    }[base]
    if not ok(value):
        raise ConfigError(f"{where} must be {base}, got {value!r}")
    if base == "str" and not value.strip():  # `--data ""`: an unset shell variable, not a value
        raise ConfigError(f"{where} must not be empty")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(str, choices))}, got {value!r}")
    if base in ("int", "float"):
        check_range(value, where, **limits(f))
    check = f.metadata.get("check")
    if check is not None:
        check(value, where)
    return float(value) if base == "float" else value


def limits(f: dataclasses.Field) -> dict:
    """The range a field's value must be in, as :func:`check_range` takes it (``ge``, ``gt``, ``lt``)."""
    return {k: f.metadata[k] for k in ("ge", "gt", "lt") if k in f.metadata}


def update(obj, values: dict, where: str) -> None:
    """Set fields of a config dataclass from a dict, rejecting unknown keys and wrong types."""
    names = {f.name: f for f in fields(obj)}
    for k, v in values.items():
        key = k.replace("-", "_")
        if key not in names:
            raise ConfigError(f"{where}: unknown key {k!r}; known keys: {', '.join(sorted(names))}")
        setattr(obj, key, _coerce(v, names[key], f"{where} {k}"))


# ----------------------------------------------------------------------------------------------
# Flags generated from the fields
# ----------------------------------------------------------------------------------------------
_TYPES = {"int": int, "float": float, "str": str}
_METAVARS = {"int": "N", "float": "X", "str": "TEXT"}

#: What ``train --resume`` may change: none of them changes the numbers a run computes.
RESUME_FLAGS = (
    "train.epochs",
    "train.threads",
    "train.checkpoint_every",
    "data.data_dir",
    "train.extend_lr",
    "data.workers",  # how many processes read streamed data: the batches are the same for any count
)


def _field(key: str) -> dataclasses.Field:
    section, name = key.split(".")
    return next(f for f in fields(SECTIONS[section]) if f.name == name)


def flag(key: str) -> str:
    """The command-line flag of a config field, from its ``"section.field"`` key: ``--batch-size``."""
    f = _field(key)
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _help(f: dataclasses.Field) -> str:
    default = f.default
    shown: object
    if isinstance(default, bool):
        shown = "on" if default else "off"
    elif default is None:
        shown = f.metadata.get("default_text")
    else:
        shown = default
    text = f.metadata["help"] + (f" (default: {shown})" if shown is not None else "")
    return text.replace("%", "%%")  # argparse %-formats help strings


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per config field, in a group per section: ``--batch-size N``, ``--amp/--no-amp``.

    A flag the user does not type leaves no attribute on the parsed namespace (``SUPPRESS``), so
    :func:`config_from_flags` can tell a typed value from a default, and a preset keeps its values.
    """
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{section} ([{section}] in a --config preset)")
        groups = {}
        if cls is ModelConfig:  # the model's options in a group per family, each flag in the first that takes it
            for family in MODEL_FAMILIES:
                named = "" if family.MODELS == (family.TITLE,) else f" ({', '.join(family.MODELS)})"
                title = f"model: {family.TITLE}{named}"
                shared = [f.name for f in fields(family) if f.name in groups]
                also = f"also {and_list([flag('model.' + n) for n in shared])} (above)" if shared else None
                g = parser.add_argument_group(title, also)
                groups.update({f.name: g for f in fields(family) if f.name not in groups})
        for f in fields(cls):
            key = f"{section}.{f.name}"
            target = groups.get(f.name, group)  # a family's option in its group, others in the section's
            kw: dict[str, Any] = {"dest": key, "default": argparse.SUPPRESS, "help": _help(f)}
            if _base_type(f) == "bool":
                target.add_argument(flag(key), action=argparse.BooleanOptionalAction, **kw)
                continue
            choices = f.metadata.get("choices")
            metavar = None if choices else f.metadata.get("metavar", _METAVARS[_base_type(f)])
            if f.metadata.get("append"):  # a repeatable flag: its values joined by commas
                kw["action"] = "append"
            target.add_argument(flag(key), type=_TYPES[_base_type(f)], choices=choices, metavar=metavar, **kw)


def config_from_flags(args: argparse.Namespace, base: RunConfig) -> tuple[RunConfig, dict]:
    """``base`` (a preset, or the defaults) with the flags the user typed applied, and those flags
    as ``{"section.field": value}`` in the order they were typed."""
    given = {k: v for k, v in vars(args).items() if "." in k and k.split(".")[0] in SECTIONS}
    given = {k: ",".join(v) if isinstance(v, list) else v for k, v in given.items()}  # repeated flags
    cfg = copy.deepcopy(base)
    for key, value in given.items():
        section, name = key.split(".")
        setattr(getattr(cfg, section), name, _coerce(value, _field(key), flag(key)))
    return cfg, given


def resume_conflicts(cfg: RunConfig, given: dict) -> list[str]:
    """The flags in ``given`` that would change the run whose config is ``cfg``, as the user wrote them.

    Resuming continues a run exactly; only ``RESUME_FLAGS`` may differ from its config. A flag that
    repeats the run's value is no conflict (re-running the original command with ``--resume`` works).
    """
    conflicts = []
    for key, value in given.items():
        section, name = key.split(".")
        if key not in RESUME_FLAGS and getattr(getattr(cfg, section), name) != value:
            conflicts.append(flag(key))
    return conflicts


def check_model_options(model_cfg: ModelConfig, where: str = "config", flags: dict | None = None) -> None:
    """Raise ConfigError if ``model_cfg`` sets an option its model does not take, or leaves out one its
    factory has no default for, before any data loads.

    Each option is named as the user wrote it: ``--hidden`` or ``--model-arg width`` when it is in
    ``flags`` (the ``given`` of :func:`config_from_flags`), else ``[model] hidden`` of ``where`` (a preset's path).
    """
    from .modelargs import parse_model_args
    from .models import model_options, our_model, required_options, takes_any_option  # torch: not for the parser

    takes = model_options(model_cfg.name)
    options = model_cfg.options()
    flags = flags or {}
    from_args = set(parse_model_args(model_cfg.args, f"{where}: [model] args"))

    def named(n: str) -> tuple[str, bool]:
        if n in from_args:
            return ("--model-arg " + n, True) if "model.args" in flags else (f"[model] args {n}", False)
        return (flag(f"model.{n}"), True) if f"model.{n}" in flags else (f"[model] {n}", False)

    wrong = [] if takes_any_option(model_cfg.name) else [name for name in options if name not in takes]
    missing = [n for n in required_options(model_cfg.name) if n not in options]
    if not wrong and not missing:
        return
    if missing:
        typed = "model.args" in flags or not model_cfg.args
        prefix = "" if typed else f"{where}: "
        needs = and_list([f"--model-arg {n}=VALUE" for n in missing])
        raise ConfigError(
            f"{prefix}model {model_cfg.name} needs {needs} (its factory has no default for "
            f"{'it' if len(missing) == 1 else 'them'})"
        )
    pairs = [named(n) for n in wrong]
    names = tuple(n for n, _ in pairs)
    typed_flags = [t for _, t in pairs]
    if any(typed_flags) and not all(typed_flags):  # say which file the keys come from
        names = tuple(n if t else f"{n} ({where})" for n, t in pairs)
    prefix = "" if any(typed_flags) else f"{where}: "
    listed = and_list(list(names))
    own = {f.name for f in fields(ModelConfig)}
    settable = [o for o in takes if o in own or not our_model(model_cfg.name)]  # not head: the data decides it
    raise ConfigError(
        f"{prefix}model {model_cfg.name} does not take {listed}; it takes "
        f"{', '.join(settable) if settable else 'no options'}"
    )
