"""The search space of ``layerlab tune`` (layerlab.space): the TOML schema, its checks (one
sentence for each mistake, naming the field), conditional fields, and property tests: any table
either parses or is refused with a ConfigError, and a parsed space only ever samples values its
config fields accept."""

from __future__ import annotations

import random
import tomllib

import pytest
import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from layerlab.config import RunConfig
from layerlab.errors import ConfigError
from layerlab.space import Param, Space, apply, check_models, parse_space, read_space

GOOD = """
[search]
sampler = "random"
seed = 3

[train.lr]
float = [1e-4, 1e-2]
log = true

[train.batch_size]
int = [16, 128]
step = 16

[train.optimizer]
choices = ["adam", "sgd"]

[model.name]
choices = ["cnn", "mlp"]

[model.hidden]
int = [8, 64]
when = { "model.name" = ["mlp"] }

[model.channels]
choices = ["32,M,64,M", "16,M,32,M"]
when = { "model.name" = "cnn" }
"""


def test_a_space_file_parses_with_every_kind(tmp_path):
    p = tmp_path / "space.toml"
    p.write_text(GOOD)
    space = read_space(p)
    kinds = {q.key: q.kind for q in space.params}
    assert kinds == {
        "train.lr": "float",
        "train.batch_size": "int",
        "train.optimizer": "categorical",
        "model.name": "categorical",
        "model.hidden": "int",
        "model.channels": "categorical",
    }
    assert space.sampler == "random" and space.seed == 3
    lr = next(q for q in space.params if q.key == "train.lr")
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-2, True)
    # the recorded form reads back as the same space
    assert parse_space(tomllib.loads(tomli_w.dumps(space.to_dict()))) == space


@pytest.mark.parametrize(
    "text, words",
    [
        ("[train.lrr]\nfloat = [0.1, 0.2]", "[train] has no field 'lrr'"),
        ("[optim.lr]\nfloat = [0.1, 0.2]", "unknown table(s) ['optim']"),
        ("[train.lr]\nfloat = [0.2, 0.1]", "low must be below high"),
        ("[train.lr]\nfloat = [0.0, 0.1]\nlog = true", "log scale needs low above 0"),
        ("[train.lr]\nfloat = [-1.0, 0.1]", "at least 0.0"),
        ("[train.lr]\nfloat = [0.1]", "must be [low, high]"),
        ("[train.lr]\nfloat = [0.1, 0.2]\nint = [1, 2]", "exactly one of"),
        ("[train.lr]\nfloat = [0.1, 0.2]\nlgo = true", "unknown key(s) ['lgo']"),
        ("[train.batch_size]\nfloat = [1.0, 8.0]", "the field is int"),
        ("[train.batch_size]\nint = [0, 8]", "at least 1"),
        ("[train.optimizer]\nchoices = ['adam', 'lion']", "must be one of adam, adamw, sgd, rmsprop, nadam"),
        ("[train.optimizer]\nchoices = []", "non-empty list"),
        ("[train.optimizer]\nchoices = ['adam', 'adam']", "a value twice"),
        ("[train.amp]\nint = [0, 1]", "the field is bool"),
        ("[data.validation]\nfloat = [0.1, 0.2]", "cannot be searched"),
        ("[model.hidden]\nint = [8, 16]\nwhen = { 'model.nam' = ['mlp'] }", "not a config field"),
        ("[model.hidden]\nint = [8, 16]\nwhen = { 'model.hidden' = [8] }", "names the field itself"),
        ("[model.hidden]\nint = [8, 16]\nstep = 0", "step must be"),
        ("[model.hidden]\nint = [8, 17]\nstep = 2", "must be a whole number of steps of 2"),
        ("[train.lr]\nfloat = [0.1, 0.25]\nstep = 0.1", "must be a whole number of steps of 0.1"),
        ("[train.lr]\nfloat = [0.1, 0.2]\nlog = true\nstep = 0.01", "log and step cannot"),
        ("[search]\nsampler = 'grid'\n[train.lr]\nfloat = [0.1, 0.2]", "sampler must be one of"),
        ("", "no field to search"),
    ],
)
def test_a_bad_space_is_one_sentence_naming_the_field(tmp_path, text, words):
    p = tmp_path / "space.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        read_space(p)
    msg = str(e.value)
    assert words in msg, msg
    assert "\n" not in msg and str(p) in msg


def test_an_unreadable_space_file_is_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="no such search space file"):
        read_space(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[train.lr\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_space(tmp_path / "bad.toml")


def _suggest_random(rng):
    def suggest(p: Param):
        if p.kind == "categorical":
            return rng.choice(p.choices)
        if p.kind == "int":
            return rng.randint(p.low, p.high)
        return rng.uniform(p.low, p.high)

    return suggest


def test_conditional_fields_follow_the_sampled_model():
    space = parse_space(tomllib.loads(GOOD))
    base = RunConfig()
    rng = random.Random(0)
    seen = set()
    for _ in range(40):
        values = space.sample(_suggest_random(rng), base)
        name = values["model.name"]
        seen.add(name)
        assert ("model.hidden" in values) == (name == "mlp")
        assert ("model.channels" in values) == (name == "cnn")
        cfg = apply(base, values)
        assert cfg.model.name == name and cfg.train.lr == values["train.lr"]
    assert seen == {"mlp", "cnn"}
    check_models(space, base)  # each model gets only the fields it takes


def test_a_model_field_for_a_model_that_does_not_take_it_is_refused_before_any_trial():
    space = parse_space({"model": {"name": {"choices": ["article-cnn", "mlp"]}, "hidden": {"int": [8, 16]}}})
    with pytest.raises(ConfigError, match=r"model article-cnn does not take hidden; restrict the field with when"):
        check_models(space, RunConfig())
    base = RunConfig()
    base.model.channels = "8,M"
    space = parse_space({"model": {"name": {"choices": ["cnn", "mlp"]}}})
    with pytest.raises(ConfigError, match="the base config sets \\[model\\] channels, which model mlp does not take"):
        check_models(space, base)


# --- property tests ---------------------------------------------------------------------------
FIELDS = {
    "train.lr": ("float", 0.0, None),
    "train.weight_decay": ("float", 0.0, None),
    "train.beta1": ("float", 0.0, 1.0),
    "train.batch_size": ("int", 1, None),
    "train.epochs": ("int", 1, None),
    "model.dropout": ("float", 0.0, 1.0),
}


@st.composite
def valid_params(draw):
    key = draw(st.sampled_from(sorted(FIELDS)))
    kind, lo_bound, hi_bound = FIELDS[key]
    if kind == "int":
        low = draw(st.integers(lo_bound, 500))
        high = draw(st.integers(low + 1, 1000))
        spec = {"int": [low, high]}
        if draw(st.booleans()):
            spec["step"] = step = draw(st.integers(1, 5))
            spec["int"] = [low, low + step * max(1, (high - low) // step)]
        elif draw(st.booleans()):
            spec["log"] = True
        return key, spec
    top = 0.99 if hi_bound is not None else 10.0
    a, b = (draw(st.floats(lo_bound, top, allow_nan=False)) for _ in range(2))
    assume(a != b)
    low, high = min(a, b), max(a, b)
    spec = {"float": [low, high]}
    if low > 0 and draw(st.booleans()):
        spec["log"] = True
    return key, spec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_params(), min_size=1, max_size=4, unique_by=lambda kv: kv[0]), st.integers(0, 2**16))
def test_valid_spaces_parse_round_trip_and_sample_what_the_config_accepts(params, seed):
    d: dict = {}
    for key, spec in params:
        section, name = key.split(".")
        d.setdefault(section, {})[name] = spec
    space = parse_space(d)
    assert parse_space(space.to_dict()) == space
    values = space.sample(_suggest_random(random.Random(seed)), RunConfig())
    assert set(values) == {k for k, _ in params}
    for p in space.params:
        assert p.low <= values[p.key] <= p.high
    apply(RunConfig(), values)  # every sampled value is one the config takes


toml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(["train", "model", "data", "search", "other"])
fields_ = st.sampled_from(["lr", "batch_size", "name", "hidden", "optimizer", "validation", "amp", "x", "sampler"])
specs = st.dictionaries(
    st.sampled_from(["float", "int", "choices", "log", "step", "when", "bogus"]), toml_values, max_size=4
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, st.dictionaries(fields_, specs | toml_values, max_size=3) | toml_values, max_size=3))
def test_any_table_parses_or_is_one_config_error(d):
    try:
        space = parse_space(d, "space.toml")
    except ConfigError as e:
        assert str(e).startswith("space.toml") and "\n" not in str(e)
        return
    assert isinstance(space, Space) and space.params


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_params(), min_size=1, max_size=4, unique_by=lambda kv: kv[0]))
def test_optuna_samples_every_valid_space_within_its_bounds(params):
    optuna = pytest.importorskip("optuna")
    from layerlab.tuning import _suggest

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    d: dict = {}
    for key, spec in params:
        section, name = key.split(".")
        d.setdefault(section, {})[name] = spec
    space = parse_space(d)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        values = space.sample(lambda p, trial=trial: _suggest(trial, p), RunConfig())
        for p in space.params:
            assert p.low <= values[p.key] <= p.high
            assert isinstance(values[p.key], int) == (p.kind == "int")
        apply(RunConfig(), values)
        study.tell(trial, 0.0)


def test_the_space_and_the_tuning_front_door_load_without_torch_or_optuna():
    """`layerlab tune --help` and reading a space never load torch or Optuna (they load on the first trial)."""
    import subprocess
    import sys

    code = (
        "import sys, layerlab, layerlab.space, layerlab.tuning, layerlab.cli; "
        "assert layerlab.tune is layerlab.tuning.tune; "
        "print('torch' in sys.modules, 'optuna' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
