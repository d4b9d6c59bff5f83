"""Config declared once: every field has a flag, typed flags override a preset, an option a model
does not take is an error (named as the user wrote it), and ``--resume`` refuses what would change a run."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields

import pytest

from layerlab.cli import build_parser, main
from layerlab.config import (
    SECTIONS,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    check_model_options,
    config_from_flags,
    flag,
    resume_conflicts,
)
from layerlab.errors import ConfigError
from layerlab.models import create_model, model_options

ALL_KEYS = [f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in fields(cls)]


def parse(*argv):
    """``layerlab train ARGV`` parsed onto the defaults: (config, flags given)."""
    return config_from_flags(build_parser().parse_args(["train", *map(str, argv)]), RunConfig())


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------------------
# Flags generated from the fields
# ----------------------------------------------------------------------------------------------
def test_train_help_lists_a_flag_for_every_field(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    listed = set(re.findall(r"(--[a-z0-9-]+)", text))
    missing = [flag(k) for k in ALL_KEYS if flag(k) not in listed]
    assert not missing, f"no flag in `train --help` for {missing}"
    for new in (
        "--eps",
        "--beta1",
        "--beta2",
        "--momentum",
        "--weight-decay",
        "--eval-batch-size",
        "--channels-last",
        "--no-channels-last",
        "--amp",
        "--no-amp",
    ):
        assert new in listed
    assert "{adam,adamw,sgd,rmsprop," in text and "{cpu,cuda,auto,mps}" in text and "{rows,pixels,permuted}" in text


def test_every_field_has_help_text():
    for cls in (DataConfig, ModelConfig, TrainConfig):
        for f in fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


def test_defaults_reproduce_the_article():
    cfg, given = parse()
    assert given == {} and cfg == RunConfig()
    t = cfg.train
    assert (t.epochs, t.batch_size, t.lr, t.eps, t.optimizer, cfg.model.name) == (
        10,
        32,
        1e-3,
        1e-7,
        "adam",
        "article-cnn",
    )


def test_every_field_round_trips_through_its_flag():
    """A non-default value for every field, written as flags, parses back to the same config."""
    want = RunConfig()
    argv = []
    values = {"str": "x", "int": 7, "float": 0.25}
    choices = {
        "data.sequence": "pixels",
        "train.optimizer": "sgd",
        "train.device": "cpu",
        "train.schedule": "cosine",
        "model.padding": "same",
        "model.global_pool": "max",
        "model.channels": "16,M",  # a layer list is checked: not any text
        "train.loss": "huber",
        "train.optimizer_args": "nesterov=true",
        "model.args": "width=8",
        "train.metrics": "f1_macro",
        "train.head": "new",
        "data.augment": "crop=4,flip=0.5",
        "data.image_size": "16,12",
        "model.forget_bias": "chrono",
        "data.channels": 3,
    }
    for key in ALL_KEYS:
        section, name = key.split(".")
        f = next(f for f in fields(SECTIONS[section]) if f.name == name)
        base = f.type.replace(" | None", "")
        if base == "bool":
            value = not getattr(getattr(want, section), name)
            argv.append(flag(key) if value else "--no-" + flag(key)[2:])
        else:
            value = choices.get(key, values[base])
            argv += [flag(key), value]
        setattr(getattr(want, section), name, value)
    cfg, given = parse(*argv)
    assert cfg == want and set(given) == set(ALL_KEYS)


def test_flags_round_trip_property():
    import hypothesis

    st = hypothesis.strategies

    @hypothesis.settings(max_examples=50, deadline=None, database=None)
    @hypothesis.given(
        epochs=st.integers(1, 10**6),
        lr=st.floats(1e-9, 10, allow_nan=False),
        amp=st.booleans(),
        hidden=st.integers(1, 4096),
        # a valid layer list: widths and M by single commas (an empty item or a stray letter is refused)
        channels=st.lists(st.one_of(st.integers(1, 4096).map(str), st.sampled_from("Mm")), min_size=1).map(",".join),
    )
    def check(epochs, lr, amp, hidden, channels):
        cfg, given = parse(
            "--epochs",
            epochs,
            "--lr",
            repr(lr),
            "--amp" if amp else "--no-amp",
            "--hidden",
            hidden,
            "--channels",
            channels,
        )
        assert (cfg.train.epochs, cfg.train.lr, cfg.train.amp, cfg.model.hidden, cfg.model.channels) == (
            epochs,
            lr,
            amp,
            hidden,
            channels,
        )
        assert list(given) == ["train.epochs", "train.lr", "train.amp", "model.hidden", "model.channels"]
        assert RunConfig.from_dict(tomllib.loads(cfg.to_toml())) == cfg  # and through a run's config.toml

    check()


def test_amp_and_no_amp():
    cfg, given = parse()
    assert cfg.train.amp is False and "train.amp" not in given and cfg.train.channels_last is True
    cfg, given = parse("--amp")
    assert cfg.train.amp is True and given == {"train.amp": True}
    cfg, given = parse("--no-amp", "--no-channels-last")
    assert cfg.train.amp is False and cfg.train.channels_last is False
    assert given == {"train.amp": False, "train.channels_last": False}


def test_flags_override_a_preset_and_untyped_flags_keep_it(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('[model]\nname = "lstm"\nhidden = 64\n[train]\nlr = 0.01\namp = true\nepochs = 3\n')
    args = build_parser().parse_args(["train", "--config", str(preset), "--lr", "0.5", "--no-amp"])
    cfg, given = config_from_flags(args, RunConfig.from_toml(preset))
    assert (cfg.train.lr, cfg.train.amp, cfg.train.epochs, cfg.model.hidden) == (0.5, False, 3, 64)
    assert given == {"train.lr": 0.5, "train.amp": False}


def test_bad_flag_values_are_argparse_errors(capsys):
    for argv in (["--optimizer", "lbfgs"], ["--batch-size", "many"], ["--device", "tpu"]):
        with pytest.raises(SystemExit) as e:
            main(["train", *argv])
        assert e.value.code == 2 and argv[0] in capsys.readouterr().err


def test_preset_values_are_checked_against_choices(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('[train]\noptimizer = "lbfgs"\n')
    with pytest.raises(ConfigError, match=r"optimizer must be one of adam, adamw, sgd, .*, got 'lbfgs'"):
        RunConfig.from_toml(preset)


# ----------------------------------------------------------------------------------------------
# Model options: checked, never dropped
# ----------------------------------------------------------------------------------------------
def test_a_flag_the_model_does_not_take_exits_2_naming_it(capsys, tmp_path):
    # the data does not exist: the option is refused before any data loads
    code = main(
        [
            "train",
            "--model",
            "article-cnn",
            "--hidden",
            "64",
            "--data",
            str(tmp_path / "nothing"),
            "--out",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("layerlab: error: ") and err.count("\n") == 1
    assert "--hidden" in err and "article-cnn" in err and "it takes no options" in err
    assert not (tmp_path / "r").exists()


def test_a_preset_key_the_model_does_not_take_is_named(capsys, tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text("[model]\nhidden = 64\n")
    code = main(["train", "--config", str(preset), "--data", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert code == 2 and "[model] hidden" in err and str(preset) in err and "article-cnn" in err


def test_check_model_options_names_flags_and_keys():
    m = ModelConfig(name="cnn", hidden=8, layers=2)
    with pytest.raises(ConfigError) as e:
        check_model_options(m, "p.toml", flags={"model.hidden": 8})
    msg = str(e.value)
    assert "--hidden and [model] layers (p.toml)" in msg and msg.endswith(
        "it takes channels, padding, batch_norm, dropout, residual, global_pool"
    )
    check_model_options(ModelConfig(name="lstm", hidden=8, layers=2, bidirectional=True, dropout=0.1), "x")
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        check_model_options(ModelConfig(name="nope"), "x")


def test_create_model_with_the_article_shapes():
    assert trainable(create_model("article-cnn")) == 34_826
    assert trainable(create_model("article-lstm")) == 81_674


def test_create_model_refuses_options_it_does_not_take():
    with pytest.raises(ConfigError, match="model article-cnn does not take hidden; it takes no options"):
        create_model("article-cnn", hidden=64)
    with pytest.raises(ConfigError, match=r"model lstm does not take channels and kernel; it takes hidden, layers"):
        create_model("lstm", (5, 2), 3, channels="8,M", kernel=3)
    create_model("article-cnn", hidden=None, layers=None)  # None is not given
    assert model_options("lstm")[:4] == ["hidden", "layers", "bidirectional", "dropout"]


def test_create_model_needs_shapes_without_defaults():
    with pytest.raises(ConfigError, match="model gru needs an input shape and a number of outputs"):
        create_model("gru", hidden=4)
    assert trainable(create_model("gru", (5, 2), 3, hidden=4)) > 0


# ----------------------------------------------------------------------------------------------
# Resume: only what does not change the run
# ----------------------------------------------------------------------------------------------
def test_resume_conflicts_in_the_order_typed():
    run_cfg = RunConfig()
    _, given = parse(
        "--lr", 0.5, "--epochs", 20, "--batch-size", 64, "--threads", 2, "--model", "lstm", "--data-dir", "/data"
    )
    assert resume_conflicts(run_cfg, given) == ["--lr", "--batch-size", "--model"]
    _, same = parse("--lr", 0.001, "--model", "article-cnn", "--no-amp")  # repeats the run's own values
    assert resume_conflicts(run_cfg, same) == []


def test_train_resume_refuses_flags_that_change_the_run(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(RunConfig().to_toml())
    code = main(["train", "--resume", str(run), "--lr", "0.5", "--batch-size", "64", "--model", "lstm"])
    err = capsys.readouterr().err
    assert code == 2 and err == (
        "layerlab: error: --lr, --batch-size and --model would change the run being "
        "resumed; only --epochs, --threads, --checkpoint-every, --data-dir, --extend-lr and --workers may be given "
        "with --resume\n"
    )
    code = main(["train", "--resume", str(run), "--config", str(run / "config.toml")])
    assert code == 2 and "--config would change the run" in capsys.readouterr().err
