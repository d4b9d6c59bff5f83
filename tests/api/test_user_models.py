"""Models of your own everywhere: ``--model package.module:factory`` in every command (as
subprocesses with PYTHONPATH, and in-process), ``LAYERLAB_PLUGINS``, and one-sentence errors from
the registry instead of torch's. A run's file never names code by itself: the commands that open a
run of ``mymod:fn`` import ``mymod`` only when the user names it (``LAYERLAB_PLUGINS=mymod``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from datagen import make_idx_dir
from layerlab import models
from layerlab.errors import ConfigError
from user_modules import user_module as write_user_module

MODULE = textwrap.dedent(
    '''
    """A user's models, outside layerlab."""
    import torch.nn as nn

    from layerlab import register_model


    def tiny_cnn(input_shape, num_outputs, width=4):
        """A tiny CNN of my own."""
        c, h, w = input_shape
        return nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(width * (h // 2) * (w // 2), num_outputs),
        )


    not_callable = 42


    @register_model("plugin-mlp", "an MLP a plugin registers")
    def plugin_mlp(input_shape, num_outputs):
        n = 1
        for s in input_shape:
            n *= s
        return nn.Sequential(nn.Flatten(), nn.Linear(n, num_outputs))
    '''
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``mymodels`` (a unique module name per test, so imports do not leak between tests) on sys.path."""
    with write_user_module(tmp_path, monkeypatch, "mymodels", MODULE, also=("plugin-mlp",)) as name:
        yield name


def cli(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layerlab", *map(str, argv)], capture_output=True, text=True)


@pytest.mark.slow
def test_every_command_on_a_run_of_a_user_model_as_subprocesses(tmp_path, user_module, monkeypatch):
    monkeypatch.delenv("LAYERLAB_PLUGINS", raising=False)
    data = make_idx_dir(tmp_path / "bars", n_train=200, n_test=60)
    run = tmp_path / "run"
    name = f"{user_module}:tiny_cnn"
    r = cli("train", "--model", name, "--data", data, "--epochs", "1", "--out", run, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"] == name
    assert json.loads((run / "run.json").read_text())["model"]["name"] == name
    assert f'name = "{name}"' in (run / "config.toml").read_text()
    # the run's config names the module, which is no reason to import it: the user names it
    r = cli("evaluate", run, "--json")
    assert r.returncode == 2
    assert f"LAYERLAB_PLUGINS={user_module}" in r.stderr
    monkeypatch.setenv("LAYERLAB_PLUGINS", user_module)
    r = cli("evaluate", run, "--json")
    assert r.returncode == 0, r.stderr
    assert 0.0 <= json.loads(r.stdout)["accuracy"] <= 1.0
    r = cli("report", run)
    assert r.returncode == 0, r.stderr
    assert (run / "report.html").is_file()
    r = cli("inspect", "summary", run)
    assert r.returncode == 0, r.stderr
    assert "Conv2d" in r.stdout


def test_user_model_in_process_through_the_api(tmp_path, user_module):
    from layerlab import api
    from layerlab.config import RunConfig

    cfg = RunConfig()
    cfg.data.name = str(make_idx_dir(tmp_path / "bars", n_train=200, n_test=60))
    cfg.model.name = f"{user_module}:tiny_cnn"
    cfg.train.epochs = 1
    models.load_plugins(user_module)  # a config names no code by itself; the user names the module
    run, result = api.train(cfg, tmp_path / "run")
    assert result.history
    assert models.model_options(cfg.model.name) == ["width"]
    assert not models.sequence_model(cfg.model.name)
    again = api.evaluate_run(run.path)
    assert again["n"] == 60
    assert type(run.model()).__name__ == "Sequential"


@pytest.mark.slow
def test_user_model_in_fit_on_arrays_and_the_cli_reads_the_run(tmp_path, user_module, monkeypatch):
    monkeypatch.delenv("LAYERLAB_PLUGINS", raising=False)
    import numpy as np

    import layerlab
    from datagen import bar_images

    x, y = bar_images(120, np.random.default_rng(0))
    name = f"{user_module}:tiny_cnn"
    h = layerlab.fit(name, x, y, epochs=1, verbose=0, run_dir=tmp_path / "run")
    assert h.run.info()["model"]["name"] == name
    monkeypatch.setenv("LAYERLAB_PLUGINS", user_module)  # for the commands that open the run
    r = cli("evaluate", tmp_path / "run", "--json")
    assert r.returncode == 0, r.stderr
    # a module object build_model made is recorded by its name and options, which rebuild it: the CLI
    # evaluates that run too
    model = layerlab.build_model(name, (1, 28, 28), 10, width=2)
    h3 = layerlab.fit(model, x, y, epochs=1, verbose=0, run_dir=tmp_path / "run3")
    assert h3.run.info()["model"] | {"parameters": 0} == {"name": name, "options": {"width": 2}, "parameters": 0}
    assert layerlab.evaluate(h3, x, y)["n"] == 120
    r = cli("evaluate", tmp_path / "run3", "--json")
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_plugins_register_their_models(tmp_path, user_module, monkeypatch):
    monkeypatch.setenv("LAYERLAB_PLUGINS", f" {user_module} ,")
    r = cli("models")
    assert r.returncode == 0, r.stderr
    assert "plugin-mlp" in r.stdout
    assert models.load_plugins(user_module) == [user_module]
    assert "plugin-mlp" in models.list_models()
    data = make_idx_dir(tmp_path / "bars", n_train=100, n_test=40)
    r = cli("train", "--model", "plugin-mlp", "--data", data, "--epochs", "1", "--out", tmp_path / "run", "--quiet")
    assert r.returncode == 0, r.stderr
    r = cli("evaluate", tmp_path / "run", "--json")
    assert r.returncode == 0, r.stderr
    with pytest.raises(ConfigError, match="LAYERLAB_PLUGINS: cannot import module no_such_plugin_module"):
        models.load_plugins("no_such_plugin_module")


@pytest.mark.parametrize(
    "name, message",
    [
        ("no_such_module_xyz:factory", "cannot import module no_such_module_xyz.*put it on PYTHONPATH"),
        ("{mod}:missing", "has no attribute missing"),
        ("{mod}:not_callable", "is a int, not a callable"),
        ("{mod}:", "a model of your own is named package.module:factory"),
    ],
)
def test_user_model_names_that_cannot_be_used_are_one_sentence(user_module, name, message):
    name = name.format(mod=user_module)
    models.trust_module(name)  # as build_model and --model do for a name the user gives
    try:
        with pytest.raises(ConfigError, match=message) as e:
            models.create_model(name, (1, 28, 28), 10)
    finally:
        models._TRUSTED.discard("no_such_module_xyz")
    assert "\n" not in str(e.value)


def test_a_bad_user_model_is_one_sentence_from_the_cli(tmp_path, user_module):
    data = make_idx_dir(tmp_path / "bars", n_train=50, n_test=20)
    r = cli("train", "--model", f"{user_module}:nothing", "--data", data, "--out", tmp_path / "run")
    assert r.returncode == 2
    assert "has no attribute nothing" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("num_outputs", [0, -1, 2.5, True, "10"])
def test_num_outputs_is_checked_by_the_registry(num_outputs):
    import layerlab

    with pytest.raises(ConfigError, match="num_outputs must be at least 1"):
        layerlab.build_model("cnn", (1, 28, 28), num_outputs)


def test_forgetting_num_outputs_is_one_sentence():
    import layerlab

    with pytest.raises(ConfigError, match="needs an input shape and a number of outputs"):
        layerlab.build_model("cnn", (1, 28, 28))
    with pytest.raises(ConfigError, match="input_shape must be"):
        layerlab.build_model("cnn", (1, 0, 28), 10)


def test_a_run_of_a_model_object_says_the_cli_cannot_rebuild_it(tmp_path):
    import numpy as np
    import torch.nn as nn

    import layerlab
    from datagen import bar_images

    x, y = bar_images(60, np.random.default_rng(0))
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    h = layerlab.fit(model, x, y, epochs=1, verbose=0, run_dir=tmp_path / "run")
    assert layerlab.evaluate(h.model, x, y)["n"] == 60  # from Python, with the object
    r = cli("evaluate", tmp_path / "run")
    assert r.returncode == 2
    assert "given to layerlab.fit as a Python object" in r.stderr
