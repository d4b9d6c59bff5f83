"""No code runs from a run directory's files: a ``package.module:factory`` name read from a run's
config is imported only when the user named its module (``--model`` typed on the command line, a
name given in Python, ``LAYERLAB_PLUGINS``), never from the working directory by default, never from
Python's standard library, and only a factory that returns an ``nn.Module``; broken plugins are one
sentence."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from layerlab import models
from layerlab.errors import ConfigError

EVIL = textwrap.dedent(
    """
    from pathlib import Path
    Path({marker!r}).write_text("imported")


    def factory(input_shape, num_outputs):
        Path({marker!r}).write_text("called")
        import torch.nn as nn
        return nn.Flatten()
    """
)


def cli(*argv, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "layerlab", *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def one_sentence(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    return r.stderr


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A run of a registered model made by fit, whose config a hostile user then rewrites."""
    import layerlab

    rng = np.random.default_rng(0)
    x = rng.random((40, 8), dtype=np.float32)[:, None, :, None].repeat(8, axis=3)
    y = np.arange(40) % 2
    run = tmp_path_factory.mktemp("trust") / "run"
    layerlab.fit("mlp", x, y, epochs=1, verbose=0, run_dir=run)
    return run


def _poison(run: Path, name: str) -> None:
    cfg = run / "config.toml"
    cfg.write_text(re.sub(r'(?m)^name = "mlp"$', f'name = "{name}"', cfg.read_text()))
    info = run / "run.json"
    info.write_text(info.read_text().replace('"name": "mlp"', f'"name": "{name}"'))
    assert name in cfg.read_text()


@pytest.mark.slow
def test_a_run_naming_a_module_in_the_working_directory_imports_nothing(small_run, tmp_path):
    """The attack: config.toml names evilmod:factory and evilmod.py waits in the working directory
    (where ``python -m`` looks first). evaluate and report refuse it and never import it."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    _poison(run, "evilmod:factory")
    marker = tmp_path / "marker"
    (run / "evilmod.py").write_text(EVIL.format(marker=str(marker)))
    (tmp_path / "evilmod.py").write_text(EVIL.format(marker=str(marker)))
    commands = [(("evaluate", "."), run), (("report", "run"), tmp_path)]
    commands.append((("train", "--resume", "run", "--epochs", "2"), tmp_path))
    for argv, cwd in commands:
        err = one_sentence(cli(*argv, cwd=cwd))
        assert "LAYERLAB_PLUGINS=evilmod" in err
        assert not marker.exists(), argv
    # and in Python: the run's name is not the user's
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ConfigError, match="imports only modules you name"):
            models.create_model("evilmod:factory", (1, 8, 8), 2)
        assert "evilmod" not in sys.modules
        assert not marker.exists()
    finally:
        sys.path.remove(str(tmp_path))


@pytest.mark.slow
def test_the_user_names_the_plugin_to_open_such_a_run(small_run, tmp_path):
    """With LAYERLAB_PLUGINS naming the module (on PYTHONPATH), the same run is opened: the trust is
    the user's, not the file's."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    src = tmp_path / "src"
    src.mkdir()
    (src / "goodmod_trust.py").write_text(
        "import torch.nn as nn\n\n"
        "def factory(input_shape, num_outputs):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, num_outputs))\n"
    )
    _poison(run, "goodmod_trust:factory")
    env = {"PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    assert "LAYERLAB_PLUGINS=goodmod_trust" in one_sentence(cli("evaluate", run, env=env))
    r = cli("evaluate", run, "--weights", "init", env={**env, "LAYERLAB_PLUGINS": "goodmod_trust"})
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", ["os:system", "builtins:print", "subprocess:call", "shutil:rmtree"])
def test_standard_library_callables_are_no_factories_on_the_command_line(tmp_path, name):
    r = cli("train", "--model", name, "--data", "no-such-data", "--out", tmp_path / "run")
    assert "standard library" in one_sentence(r)
    assert not (tmp_path / "run").exists()


def test_only_a_factory_of_the_named_module_is_called(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "mixedmod_trust.py").write_text(
        "from os import system\n"
        "import torch.nn as nn\n\n"
        "def not_a_model(input_shape, num_outputs):\n"
        "    return 42\n\n"
        "def no_args():\n"
        "    return nn.Flatten()\n\n"
        "def boom(input_shape, num_outputs):\n"
        "    raise RuntimeError('no\\nway')\n"
    )
    monkeypatch.syspath_prepend(str(src))
    models.trust_module("mixedmod_trust")
    try:
        cases = {
            "system": "standard library",  # os.system imported into the user's module is still os.system
            "not_a_model": "returned a int, not a torch.nn.Module",
            "no_args": r"does not take \(input_shape, num_outputs",
            "boom": "its factory failed .RuntimeError: no way.",
        }
        for attr, message in cases.items():
            with pytest.raises(ConfigError, match=message) as e:
                models.create_model(f"mixedmod_trust:{attr}", (1, 8, 8), 2)
            assert "\n" not in str(e.value)
    finally:
        models._TRUSTED.discard("mixedmod_trust")
        sys.modules.pop("mixedmod_trust", None)
        for key in [k for k in models._REGISTRY if k.startswith("mixedmod_trust")]:
            models._REGISTRY.pop(key)


@pytest.mark.parametrize(
    "source, message",
    [
        (
            "from layerlab import register_model\n\n@register_model('cnn', 'mine')\ndef f(s, n):\n    pass\n",
            r"model 'cnn' is registered twice \(by layerlab.models.cnn and by badplugin_trust\)",
        ),
        ("def f(:\n    pass\n", r"importing module badplugin_trust failed \(SyntaxError: "),
        ("raise RuntimeError('broken\\nplugin')\n", r"failed \(RuntimeError: broken plugin\)"),
    ],
)
def test_a_broken_plugin_is_one_sentence(tmp_path, monkeypatch, source, message):
    (tmp_path / "badplugin_trust.py").write_text(source)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    r = cli("models", env={**env, "LAYERLAB_PLUGINS": "badplugin_trust"})
    assert re.search(message, one_sentence(r)), r.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ConfigError, match=message):
            models.load_plugins("badplugin_trust")
    finally:
        sys.modules.pop("badplugin_trust", None)
        models._TRUSTED.discard("badplugin_trust")
