"""A factory's own keyword options (``fit("pkg.mod:factory", width=8)``, ``--model-arg KEY=VALUE``),
checked against its signature and kept in the run, so every command rebuilds the same model; and a
run trained from a module object: recorded by the name that built it when it can be, otherwise one
sentence that says what to pass (``evaluate(run, model=...)``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given
from hypothesis import strategies as st

import layerlab
from layerlab import models
from layerlab.errors import ConfigError
from layerlab.modelargs import format_model_args, parse_model_args, parse_value
from user_modules import user_module as write_user_module

MODULE = textwrap.dedent(
    '''
    """A user's models, outside layerlab."""
    import torch.nn as nn


    def wide(input_shape, num_outputs, *, width, act="relu", sizes=(4,)):
        """One hidden layer of width units (the option has no default), then more of sizes."""
        n = 1
        for s in input_shape:
            n *= s
        layers = [nn.Flatten(), nn.Linear(n, width), {"relu": nn.ReLU(), "tanh": nn.Tanh()}[act]]
        prev = width
        for s in sizes:
            layers += [nn.Linear(prev, s), nn.ReLU()]
            prev = s
        return nn.Sequential(*layers, nn.Linear(prev, num_outputs))


    def anything(input_shape, num_outputs, **options):
        """Takes any option, and keeps them."""
        n = 1
        for s in input_shape:
            n *= s
        model = nn.Sequential(nn.Flatten(), nn.Linear(n, num_outputs))
        model.options = options
        return model


    class Net(nn.Module):
        """A class of the user's, built from its own arguments (not a factory)."""

        def __init__(self, hidden=6):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU())
            self.head = nn.Linear(hidden, 3)

        def forward(self, x):
            return self.head(self.body(x))
    '''
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's on sys.path (and on the subprocesses' PYTHONPATH), a unique name per test."""
    monkeypatch.delenv("LAYERLAB_PLUGINS", raising=False)
    with write_user_module(tmp_path, monkeypatch, "mynets", MODULE) as name:
        yield name


def data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8)).astype(np.float32), np.arange(n) % 3


def cli(*argv, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "layerlab", *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def one_sentence(r: subprocess.CompletedProcess, text: str) -> None:
    assert r.returncode == 2, r.stderr
    assert text in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr


# ----------------------------------------------------------------------------------------------
# the values
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value",
    [
        ("8", 8),
        ("0.5", 0.5),
        ("-3", -3),
        ("true", True),
        ("False", False),
        ("relu", "relu"),
        ('"8"', "8"),
        ("[16, 32]", [16, 32]),
        ('{"a": 1}', {"a": 1}),
        ("null", None),
        (" tanh ", "tanh"),
    ],
)
def test_a_value_is_a_json_literal_a_bool_or_the_text(text, value):
    got = parse_value(text)
    assert got == value and type(got) is type(value)


def test_pairs_split_at_top_level_commas_and_bad_pairs_are_one_sentence():
    assert parse_model_args('width=8,sizes=[16, 32],act=relu,tag="a,b"') == {
        "width": 8,
        "sizes": [16, 32],
        "act": "relu",
        "tag": "a,b",
    }
    for bad, message in [("width", "takes KEY=VALUE"), ("2x=1", "takes KEY=VALUE"), ("a=1,a=2", "a is given twice")]:
        with pytest.raises(ConfigError, match=message):
            parse_model_args(bad)
    with pytest.raises(ConfigError, match="cannot be kept in the run's config"):
        format_model_args({"act": nn.ReLU()})


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), _values, max_size=4))
def test_options_survive_the_config_text(options):
    """What fit keeps in config.toml reads back as the same options (a text that looks like a number
    stays a text, a float stays a float)."""
    back = parse_model_args(format_model_args(options))
    assert back == options
    assert json.dumps(back, sort_keys=True) == json.dumps(options, sort_keys=True)


# ----------------------------------------------------------------------------------------------
# fit() in Python
# ----------------------------------------------------------------------------------------------
def test_fit_passes_a_factorys_own_options_and_the_run_rebuilds_the_same_model(tmp_path, user_module):
    x, y = data()
    name = f"{user_module}:wide"
    h = layerlab.fit(
        name, x, y, width=5, act="tanh", sizes=[7], epochs=1, verbose=0, run_dir=tmp_path / "run", threads=1
    )
    assert h.model[1].out_features == 5 and isinstance(h.model[2], nn.Tanh) and h.model[3].out_features == 7
    assert h.model_options == {"width": 5, "act": "tanh", "sizes": [7]}
    assert 'args = "width=5,act=\\"tanh\\",sizes=[7]"' in (tmp_path / "run" / "config.toml").read_text()
    assert h.run.info()["model"]["options"] == {"width": 5, "act": "tanh", "sizes": [7]}
    again = layerlab.load_run(tmp_path / "run")[0]  # rebuilt from the run's files alone
    assert [type(m) for m in again] == [type(m) for m in h.model]
    with torch.no_grad():
        torch.testing.assert_close(again(torch.from_numpy(x[:, None])), h.model.eval()(torch.from_numpy(x[:, None])))
    path = layerlab.save(h, tmp_path / "m.safetensors")  # and save/load keep them too
    assert layerlab.load(path).model[1].out_features == 5


def test_fit_takes_the_factory_itself_and_records_its_import_path(tmp_path, user_module):
    import importlib

    x, y = data()
    factory = importlib.import_module(user_module).wide
    h = layerlab.fit(factory, x, y, width=3, epochs=1, verbose=0, run_dir=tmp_path / "run")
    assert h.run.info()["model"]["name"] == f"{user_module}:wide"
    assert layerlab.evaluate(tmp_path / "run")["n"] == 60


def test_fit_refuses_unknown_and_missing_factory_options_before_any_work(tmp_path, user_module):
    x, y = data()
    name = f"{user_module}:wide"
    with pytest.raises(ConfigError, match=r"unknown option 'depth': not a training option, and model .* takes width"):
        layerlab.fit(name, x, y, width=3, depth=2, run_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match=r"needs the option width \(its factory has no default"):
        layerlab.fit(name, x, y, run_dir=tmp_path / "b")
    with pytest.raises(ConfigError, match="cannot be kept in the run's config"):
        layerlab.fit(name, x, y, width=3, act=nn.Tanh(), run_dir=tmp_path / "c")

    def local(input_shape, num_outputs):
        return nn.Linear(64, num_outputs)

    with pytest.raises(ConfigError, match=r"from an importable module .* defined in a function"):
        layerlab.fit(local, x, y)
    assert not any((tmp_path / n).exists() for n in "abc")
    # a registered model of ours refuses what is none of its options, as before
    with pytest.raises(ConfigError, match="fit\\(\\) got the unknown option 'width'; it takes training options"):
        layerlab.fit("cnn", x, y, width=3)


def test_a_factory_that_takes_any_option_gets_them(tmp_path, user_module):
    x, y = data()
    h = layerlab.fit(f"{user_module}:anything", x, y, colour="red", n=2, epochs=1, verbose=0)
    assert h.model.options == {"colour": "red", "n": 2}


# ----------------------------------------------------------------------------------------------
# a module object
# ----------------------------------------------------------------------------------------------
def test_a_run_of_a_module_object_takes_a_module_built_the_same_way(tmp_path, user_module):
    import importlib

    net = importlib.import_module(user_module).Net
    x, y = data()
    h = layerlab.fit(net(hidden=5), x, y, epochs=1, verbose=0, run_dir=tmp_path / "run")
    assert h.run.info()["model"]["name"] == f"<object {user_module}.Net>"  # its class, recorded
    with pytest.raises(ConfigError) as e:
        layerlab.evaluate(tmp_path / "run")
    message = str(e.value)
    assert "given to layerlab.fit as a Python object" in message and "layerlab.evaluate(RUN, model=Net(...))" in message
    assert "\n" not in message
    mine = layerlab.evaluate(tmp_path / "run", model=net(hidden=5))  # the run's weights loaded into it
    theirs = layerlab.evaluate(h, x, y)
    assert mine["n"] == theirs["n"] == 60 and mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
    assert layerlab.predict(tmp_path / "run", x[:4], model=net(hidden=5)) == pytest.approx(layerlab.predict(h, x[:4]))
    assert layerlab.load_run(tmp_path / "run", model=net(hidden=5))[0].head.out_features == 3
    with pytest.raises(layerlab.LayerlabError, match=r"weight body\.1\.(weight|bias) has shape"):
        layerlab.evaluate(tmp_path / "run", model=net(hidden=4))  # not built the same way: one sentence
    with pytest.raises(ConfigError, match="model= goes with a run directory"):
        layerlab.evaluate(h, x, y, model=net())


def test_a_module_build_model_made_is_recorded_by_its_name_unless_its_layers_changed(tmp_path):
    x, y = data()
    model = layerlab.build_model("cnn", (1, 8, 8), 3, channels="4,M", padding="same")
    h = layerlab.fit(model, x, y, epochs=1, verbose=0, run_dir=tmp_path / "run")
    assert h.model_name == "cnn" and h.model_options == {"channels": "4,M", "padding": "same"}
    again = layerlab.load_run(tmp_path / "run")[0]
    with torch.no_grad():
        torch.testing.assert_close(again(torch.from_numpy(x[:, None])), h.model.eval()(torch.from_numpy(x[:, None])))
    # a head replaced by another kind of layer: the name no longer rebuilds it, so the object is recorded
    other = layerlab.build_model("cnn", (1, 8, 8), 10, channels="4,M", padding="same")
    other.classifier = nn.Sequential(nn.Linear(other.classifier.in_features, 8), nn.ReLU(), nn.Linear(8, 3))
    h2 = layerlab.fit(other, x, y, epochs=1, verbose=0, run_dir=tmp_path / "run2")
    assert h2.model_name.startswith("<object ")


# ----------------------------------------------------------------------------------------------
# the command line
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_model_arg_on_the_command_line_trains_evaluates_resumes_and_predicts(tmp_path, user_module):
    x, y = data(80)
    np.savez(tmp_path / "d.npz", x_train=x[:60], y_train=y[:60], x_test=x[60:], y_test=y[60:])
    name = f"{user_module}:wide"
    run = tmp_path / "run"
    common = ["--data", tmp_path / "d.npz", "--threads", "1", "--quiet"]
    r = cli("train", "--model", name, "--model-arg", "width=5", "--model-arg", "act=tanh", "--model-arg", "sizes=[3]",
            *common, "--epochs", "1", "--out", run)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert 'args = "width=5,act=tanh,sizes=[3]"' in (run / "config.toml").read_text()
    assert json.loads((run / "run.json").read_text())["model"]["options"] == {"width": 5, "act": "tanh", "sizes": [3]}
    plugin = {"LAYERLAB_PLUGINS": user_module}
    r = cli("evaluate", run, "--json", **plugin)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n"] == 20
    np.save(tmp_path / "one.npy", x[0][None])  # one (1, 8, 8) image
    r = cli("predict", run, tmp_path / "one.npy", "--json", **plugin)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["label"] in {"0", "1", "2"}
    r = cli("train", "--resume", run, "--epochs", "2", "--quiet", **plugin)
    assert r.returncode == 0, r.stderr
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 3
    models.trust_module(name)  # in this process too, as LAYERLAB_PLUGINS does for the commands
    model = layerlab.load_run(run)[0]
    assert model[1].out_features == 5 and isinstance(model[2], nn.Tanh) and model[3].out_features == 3


@pytest.mark.slow
def test_model_arg_mistakes_are_one_sentence_and_exit_2(tmp_path, user_module):
    x, y = data(40)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    name = f"{user_module}:wide"
    common = ["--data", tmp_path / "d.npz", "--epochs", "1", "--out", tmp_path / "run"]
    one_sentence(cli("train", "--model", name, *common), f"model {name} needs --model-arg width=VALUE")
    one_sentence(
        cli("train", "--model", name, "--model-arg", "width=3", "--model-arg", "depth=2", *common),
        f"model {name} does not take --model-arg depth; it takes width, act, sizes",
    )
    one_sentence(
        cli("train", "--model", "cnn", "--model-arg", "channels=8", *common),
        "--model-arg channels: that option has its own flag, --channels",
    )
    one_sentence(cli("train", "--model", name, "--model-arg", "width", *common), "--model-arg takes KEY=VALUE")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_cli_on_a_run_of_a_module_object_says_what_to_pass(tmp_path, user_module):
    import importlib

    x, y = data()
    layerlab.fit(importlib.import_module(user_module).Net(), x, y, epochs=1, verbose=0, run_dir=tmp_path / "run")
    r = cli("evaluate", tmp_path / "run")
    one_sentence(r, "no command can rebuild from the run's files: pass one built the same way from Python")
    assert "layerlab.evaluate(RUN, model=Net(...))" in r.stderr
