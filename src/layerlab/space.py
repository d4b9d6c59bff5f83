"""A hyperparameter search space, read from TOML (torch-free, Optuna-free): what ``layerlab tune`` samples.

The file has the tables of a config (``[data]``, ``[model]``, ``[train]``) and, under each, one
table per field to search, which is exactly one of::

    [train.lr]
    float = [1e-4, 1e-2]        # low, high; log = true samples on a log scale (low > 0), step = X a grid
    log = true

    [train.batch_size]
    int = [16, 128]             # whole numbers from low to high; step = N, log = true as for float

    [train.optimizer]
    choices = ["adam", "sgd"]   # one of these values (strings, numbers or booleans)

and, for a field that only some models take, ``when = { "model.name" = ["mlp"] }``: the field is
sampled only when the config's ``model.name`` (sampled too, or the base config's) is one of those.
An optional ``[search]`` table sets ``sampler`` (``tpe``, the default, or ``random``) and ``seed``.

Every value is checked against the config field it sets (its type, choices and range) when the file
is read, so a bad space is one sentence before any trial starts, never a failed trial later.
``data.validation`` cannot be searched: the validation split is what every trial is measured on.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from .config import SECTIONS, RunConfig, _base_type, _coerce, check_regular_file, update
from .errors import ConfigError

KINDS = ("float", "int", "choices")
OPTIONS = ("log", "step", "when")
SAMPLERS = ("tpe", "random")
#: fields a search may not set: what measures the trials, or where the data is (no change to a result)
FIXED = ("data.validation", "data.data_dir", "train.device", "train.threads", "train.tensorboard")


@dataclass(frozen=True)
class Param:
    """One searched field: ``key`` is ``section.field``; ``kind`` float, int or categorical."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()
    when: tuple[tuple[str, tuple], ...] = ()  # (key, allowed values) pairs, all must hold

    def applies(self, values: dict) -> bool:
        """Whether this field is sampled, given the values of the fields so far (sampled or base)."""
        return all(values.get(key) in allowed for key, allowed in self.when)

    def to_dict(self) -> dict:
        d: dict = {"choices": list(self.choices)} if self.kind == "categorical" else {self.kind: [self.low, self.high]}
        if self.log:
            d["log"] = True
        if self.step is not None:
            d["step"] = self.step
        if self.when:
            d["when"] = {k: list(v) for k, v in self.when}
        return d


@dataclass(frozen=True)
class Space:
    params: tuple[Param, ...]
    sampler: str = "tpe"
    seed: int | None = None

    def to_dict(self) -> dict:
        """The space as TOML's tables (what a study records, to check that every worker searches the same one)."""
        d: dict = {}
        for p in self.params:
            section, name = p.key.split(".")
            d.setdefault(section, {})[name] = p.to_dict()
        search = {"sampler": self.sampler, **({"seed": self.seed} if self.seed is not None else {})}
        return {**d, "search": search}

    def ordered(self) -> list[Param]:
        """Unconditional fields first (a condition reads them), then the conditional ones, each in file order."""
        return [p for p in self.params if not p.when] + [p for p in self.params if p.when]

    def sample(self, suggest, base: RunConfig) -> dict:
        """The values of one trial: ``suggest(param)`` gives a sampled value (an Optuna trial's
        ``suggest_*``); a conditional field whose condition fails is left out."""
        current = {f"{s}.{f.name}": getattr(getattr(base, s), f.name) for s in SECTIONS for f in fields(SECTIONS[s])}
        values: dict = {}
        for p in self.ordered():
            if p.applies(current):
                values[p.key] = current[p.key] = suggest(p)
        return values


def apply(base: RunConfig, values: dict, where: str = "trial") -> RunConfig:
    """A copy of ``base`` with ``values`` (``section.field`` to value) set, each checked as a config's."""
    cfg = RunConfig.from_dict(base.to_dict(), where)
    for key, value in values.items():
        section, name = key.split(".")
        update(getattr(cfg, section), {name: value}, f"{where} [{section}]")
    return cfg


def read_space(path: str | Path) -> Space:
    """The search space of a TOML file; a ConfigError naming the file and the field for anything wrong."""
    path = Path(path)
    check_regular_file(path, "a search space file")
    try:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such search space file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {e.start} cannot be decoded); a search space is TOML"
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML (nested too deeply)") from None
    return parse_space(d, str(path))


def _field(key: str):
    section, _, name = key.partition(".")
    cls = SECTIONS.get(section)
    return next((f for f in fields(cls) if f.name == name), None) if cls else None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_space(d, source: str = "space") -> Space:
    """A :class:`Space` from the parsed TOML ``d`` (see the module's docstring for the schema)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected tables [data], [model], [train], got {type(d).__name__}")
    unknown = sorted(set(d) - set(SECTIONS) - {"search"})
    if unknown:
        raise ConfigError(f"{source}: unknown table(s) {unknown}; expected [data], [model], [train] and [search]")
    sampler, seed = _search(d.get("search", {}), source)
    params = []
    for section in SECTIONS:
        table = d.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table of fields, got {table!r}")
        for name, spec in table.items():
            params.append(_param(f"{section}.{name}", spec, source))
    if not params:
        raise ConfigError(f"{source}: no field to search; add a table such as [train.lr] with float = [1e-4, 1e-2]")
    keys = {p.key for p in params}
    for p in params:
        for key, _ in p.when:
            if key == p.key:
                raise ConfigError(f"{source} [{p.key}]: when names the field itself")
            cond = next((q for q in params if q.key == key), None)
            if cond is not None and cond.when:
                raise ConfigError(
                    f"{source} [{p.key}]: when names {key}, which is itself conditional; a condition may name a "
                    f"field searched without one, or one of the base config"
                )
    assert len(keys) == len(params)  # TOML refuses a table defined twice
    return Space(tuple(params), sampler, seed)


def _search(table, source: str) -> tuple[str, int | None]:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [search] must be a table, got {table!r}")
    extra = sorted(set(table) - {"sampler", "seed"})
    if extra:
        raise ConfigError(f"{source} [search]: unknown key(s) {extra}; known keys: sampler, seed")
    sampler = table.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise ConfigError(f"{source} [search] sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    seed = table.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32):
        raise ConfigError(f"{source} [search] seed must be a whole number from 0 to 2**32-1, got {seed!r}")
    return sampler, seed


def _param(key: str, spec, source: str) -> Param:
    where = f"{source} [{key}]"
    f = _field(key)
    if f is None:
        section, name = key.split(".", 1)
        known = ", ".join(sorted(x.name for x in fields(SECTIONS[section])))
        raise ConfigError(f"{source}: [{section}] has no field {name!r}; known fields: {known}")
    if key in FIXED:
        why = "every trial is measured on it" if key == "data.validation" else "it changes no result"
        raise ConfigError(f"{where} cannot be searched ({why}); set it in the base config")
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{where} must be a table with one of float = [low, high], int = [low, high], choices = [...]"
        )
    extra = sorted(set(spec) - set(KINDS) - set(OPTIONS))
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {extra}; known keys: {', '.join(KINDS + OPTIONS)}")
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        raise ConfigError(f"{where} needs exactly one of float = [low, high], int = [low, high], choices = [...]")
    kind = kinds[0]
    when = _when(spec.get("when"), where)
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise ConfigError(f"{where} log must be true or false, got {log!r}")
    base = _base_type(f)
    if kind == "choices":
        if "log" in spec or "step" in spec:
            raise ConfigError(f"{where}: log and step apply to float and int ranges, not to choices")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where} choices must be a non-empty list, got {choices!r}")
        for c in choices:
            if not isinstance(c, (str, int, float, bool)):
                raise ConfigError(f"{where} choices must be strings, numbers or booleans, got {c!r}")
            _coerce(c, f, f"{where} choice")  # the field's type, choices and range
        if len({(type(c), c) for c in choices}) != len(choices):
            raise ConfigError(f"{where} choices has a value twice: {choices!r}")
        return Param(key, "categorical", choices=tuple(choices), when=when)
    if base not in ("int", "float") or (kind == "float" and base == "int"):
        use = "int = [low, high] or choices = [...]" if base == "int" else "choices = [...]"
        raise ConfigError(f"{where}: the field is {base}, so {kind} = [low, high] cannot set it; use {use}")
    rng = spec[kind]
    ok = (lambda v: isinstance(v, int) and not isinstance(v, bool)) if kind == "int" else _is_number
    if not isinstance(rng, list) or len(rng) != 2 or not all(ok(v) for v in rng):
        noun = "whole numbers" if kind == "int" else "finite numbers"
        raise ConfigError(f"{where} {kind} must be [low, high], two {noun}, got {rng!r}")
    low, high = rng
    if not low < high:
        raise ConfigError(
            f"{where} {kind}: low must be below high, got [{low}, {high}] (a fixed value belongs in the base config)"
        )
    for v in (low, high):
        _coerce(v, f, f"{where} {kind} bound")  # the field's range (lr >= 0, dropout < 1, ...)
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low above 0, got {low}")
    if step is not None:
        good = (isinstance(step, int) and not isinstance(step, bool)) if kind == "int" else _is_number(step)
        if not good or step <= 0:
            raise ConfigError(
                f"{where} step must be a {'whole' if kind == 'int' else 'finite'} number above 0, got {step!r}"
            )
        if log:
            raise ConfigError(f"{where}: log and step cannot be used together")
        span = high - low
        if abs(round(span / step) * step - span) > 1e-9 * max(1.0, abs(span)):
            raise ConfigError(f"{where}: high - low ({span:g}) must be a whole number of steps of {step:g}")
    return Param(key, kind, low=low, high=high, log=log, step=step, when=when)


def _when(when, where: str) -> tuple:
    if when is None:
        return ()
    if not isinstance(when, dict) or not when:
        raise ConfigError(f'{where} when must be a table such as {{ "model.name" = ["mlp"] }}, got {when!r}')
    out = []
    for key, allowed in when.items():
        f = _field(key)
        if f is None:
            raise ConfigError(f"{where} when: {key!r} is not a config field (section.field, such as model.name)")
        allowed = allowed if isinstance(allowed, list) else [allowed]
        if not allowed:
            raise ConfigError(f"{where} when: {key} needs at least one value")
        for v in allowed:
            if not isinstance(v, (str, int, float, bool)):
                raise ConfigError(f"{where} when: {key} values must be strings, numbers or booleans, got {v!r}")
            _coerce(v, f, f"{where} when {key}")
        out.append((key, tuple(allowed)))
    return tuple(out)


def check_models(space: Space, base: RunConfig, source: str = "space") -> None:
    """One sentence, before any trial, for a model field set on a model that does not take it: for
    each model a trial can train (the base config's, or each of ``model.name``'s choices), every
    ``model.*`` field that applies to it must be one of its options (``when`` restricts a field)."""
    from .models import model_options  # imports torch; reading a space does not

    name_param = next((p for p in space.params if p.key == "model.name"), None)
    names = list(name_param.choices) if name_param and name_param.kind == "categorical" else [base.model.name]
    for name in names:
        takes = model_options(name)
        for option in base.model.options():
            if option not in takes:
                raise ConfigError(
                    f"{source}: the base config sets [model] {option}, which model {name} does not take; "
                    f'search it with when = {{ "model.name" = [...] }} instead'
                )
        for p in space.params:
            if not p.key.startswith("model.") or p.key == "model.name":
                continue
            # a condition on another field may hold: only one on model.name rules a model out
            if all(name in allowed for k, allowed in p.when if k == "model.name") and p.key[6:] not in takes:
                raise ConfigError(
                    f"{source} [{p.key}]: model {name} does not take {p.key[6:]}; restrict the field "
                    f'with when = {{ "model.name" = [...] }} to the models that do'
                )
