"""Run configuration: dataclasses owned by the code they configure, defaults that reproduce the
article (section 4: Adam lr 1e-3, eps 1e-7, batch 32, 10 epochs). Presets are TOML files with
``[data]``, ``[model]`` and ``[train]`` tables; every run writes its resolved config back as TOML.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import tomli_w

from .errors import ConfigError


@dataclass
class DataConfig:
    name: str = "fashion-mnist"          # a dataset name or a path
    data_dir: str | None = None          # where to look first for named sets
    validation: float = 0.0              # >0: hold out this fraction of train for evaluation
    sequence: str | None = None          # images as sequences: rows | pixels | permuted
    length: int | None = None            # synthetic tasks: sequence length T
    n_train: int | None = None           # synthetic tasks / subsets: number of training samples
    n_test: int | None = None


@dataclass
class ModelConfig:
    name: str = "article-cnn"
    hidden: int | None = None            # recurrent models: hidden size
    layers: int | None = None            # recurrent models: stacked layers
    bidirectional: bool | None = None
    dropout: float | None = None         # between stacked layers
    channels: str | None = None          # cnn: e.g. "32,M,64,M"


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"              # adam | sgd
    eps: float = 1e-7                    # Adam's epsilon, Keras's default (torch's is 1e-8)
    beta1: float = 0.9
    beta2: float = 0.999
    momentum: float = 0.0                # sgd only
    weight_decay: float = 0.0
    clip: float | None = None            # clip gradients to this global L2 norm
    seed: int = 0
    device: str = "auto"                 # cpu | cuda | auto
    amp: bool = False                    # bf16 autocast (CUDA, or CPUs with bf16 support)
    compile: bool = False                # torch.compile the model
    channels_last: bool = True           # NHWC convolutions: faster with oneDNN and cuDNN
    threads: int | None = None           # CPU threads (torch.set_num_threads); None: torch's default
    eval_batch_size: int = 1000


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        def clean(d):
            return {k: v for k, v in d.items() if v is not None}

        return {"data": clean(dataclasses.asdict(self.data)), "model": clean(dataclasses.asdict(self.model)),
                "train": clean(dataclasses.asdict(self.train))}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "RunConfig":
        cfg = cls()
        unknown = set(d) - {"data", "model", "train"}
        if unknown:
            raise ConfigError(f"{source}: unknown table(s) {sorted(unknown)}; expected [data], [model], [train]")
        for section in ("data", "model", "train"):
            update(getattr(cfg, section), d.get(section, {}), f"{source} [{section}]")
        return cfg

    @classmethod
    def from_toml(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        try:
            d = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML ({e})") from None
        return cls.from_dict(d, str(path))


def _coerce(value, typ: str, where: str):
    """Check a TOML/flag value against the field's annotation (a string, under PEP 563)."""
    base = typ.replace(" | None", "")
    if value is None:
        return None
    ok = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "bool": lambda v: isinstance(v, bool),
          "str": lambda v: isinstance(v, str)}[base]
    if not ok(value):
        raise ConfigError(f"{where} must be {base}, got {value!r}")
    return float(value) if base == "float" else value


def update(obj, values: dict, where: str) -> None:
    """Set fields of a config dataclass from a dict, rejecting unknown keys and wrong types."""
    names = {f.name: f for f in fields(obj)}
    for k, v in values.items():
        key = k.replace("-", "_")
        if key not in names:
            raise ConfigError(f"{where}: unknown key {k!r}; known keys: {', '.join(sorted(names))}")
        setattr(obj, key, _coerce(v, names[key].type, f"{where} {k}"))
