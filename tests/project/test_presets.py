"""The presets that ship with the package: ``--config NAME`` finds them from any directory, a path
still works (and wins over a preset of the same name), an unknown name is one sentence listing them,
``layerlab presets`` describes each in one line; and no top-level ``configs/`` copy is left behind."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from datagen import make_idx_dir
from layerlab.cli import main
from layerlab.config import RunConfig
from layerlab.errors import ConfigError
from layerlab.presets import list_presets, resolve
from test_cli import assert_bad_input, run_cli

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "adding",
    "article_cnn",
    "article_cnn_fast",
    "article_lstm",
    "article_lstm_fast",
    "copy",
    "fashion_best",
    "permuted_mnist",
    "text",
    "ucr",
    "ucr_fcn",
}


def test_every_preset_is_listed_with_one_line_and_loads():
    presets = list_presets()
    assert set(presets) == EXPECTED
    for name, desc in presets.items():
        assert desc and "\n" not in desc and len(desc) < 110, (name, desc)
        RunConfig.from_toml(resolve(name)).validate()  # every preset is a valid config as shipped


@pytest.mark.parametrize("given", ["article_cnn", "article_cnn.toml"])
def test_a_name_resolves_to_the_packaged_preset_from_any_directory(given, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = resolve(given)
    assert path.name == "article_cnn.toml" and path.parent.name == "presets" and path.is_file()
    cfg = RunConfig.from_toml(path)
    assert (cfg.model.name, cfg.data.name, cfg.train.epochs, cfg.train.eps) == (
        "article-cnn",
        "fashion-mnist",
        10,
        1e-7,
    )


def test_an_existing_path_wins_over_a_preset_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "article_cnn.toml").write_text("[train]\nepochs = 2\n")
    assert resolve("article_cnn.toml") == Path("article_cnn.toml")
    assert RunConfig.from_toml(resolve("article_cnn.toml")).train.epochs == 2
    assert resolve("article_cnn").parent.name == "presets"  # no file called article_cnn: the preset
    other = tmp_path / "mine.toml"
    other.write_text("[train]\nepochs = 3\n")
    assert resolve(str(other)) == other


def test_unknown_name_or_missing_path_is_one_sentence_listing_the_presets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        resolve("article_rnn")
    msg = str(e.value)
    assert msg.startswith("'article_rnn' is neither a config file nor a preset") and "\n" not in msg
    assert all(name in msg for name in EXPECTED) and "layerlab presets" in msg
    with pytest.raises(ConfigError, match=r"^configs/article_cnn.toml: no such config file; the packaged presets"):
        resolve("configs/article_cnn.toml")


def test_train_with_a_preset_name_and_flags_over_it(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the name alone must find it
    data = make_idx_dir(tmp_path / "bars", n_train=64, n_test=32)
    args = ["train", "--config", "article_cnn", "--data", data, "--epochs", "1", "--out", tmp_path / "r"]
    code, out, _ = run_cli(capsys, *args, "--json", "--quiet")
    assert code == 0 and json.loads(out)["model"] == "article-cnn"
    saved = tomllib.loads((tmp_path / "r" / "config.toml").read_text())
    assert saved["train"]["epochs"] == 1 and saved["train"]["eps"] == 1e-7 and saved["train"]["batch_size"] == 32


def test_train_with_an_unknown_preset_is_bad_input(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--config", "article_cnnn", "--out", tmp_path / "r")
    listed = "article_cnn, article_cnn_fast, article_lstm, article_lstm_fast"
    assert_bad_input(code, err, "'article_cnnn' is neither a config file nor a preset", listed)
    assert not (tmp_path / "r").exists()


def test_presets_command_text_and_json(capsys):
    code, out, _ = run_cli(capsys, "presets")
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(EXPECTED)
    assert any(line.startswith("article_cnn ") and "CNN" in line for line in lines)
    code, out, _ = run_cli(capsys, "presets", "--json")
    assert code == 0 and json.loads(out) == list_presets()


def test_train_help_names_presets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "layerlab presets" in capsys.readouterr().out


def test_no_top_level_configs_folder_and_no_stale_references():
    """The presets live only in the package: a second copy would drift from it."""
    assert not (ROOT / "configs").exists()
    files = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("scripts/*.sh"), ROOT / "benchmarks" / "peer.sh"]
    files += [ROOT / "benchmarks" / "README.md", *ROOT.glob("benchmarks/*.py"), *ROOT.glob("src/layerlab/**/*.py")]
    stale = [str(f.relative_to(ROOT)) for f in files if "configs/" in f.read_text(encoding="utf-8")]
    assert not stale, f"still naming configs/: {stale}"
