"""Each model family declares its options (config.RecurrentOptions, CNNOptions, MLPOptions); ModelConfig
composes them into the one [model] table, and `train --help` lists the model's flags per family. Every
list of choices has one home, layerlab.choices."""

import dataclasses
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from layerlab import choices, config
from layerlab.config import MODEL_FAMILIES, ModelConfig, RunConfig
from layerlab.errors import ConfigError


def _names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_each_family_declares_exactly_what_its_models_take():
    """A model option added to a factory (or removed) without its family's declaration fails here."""
    from layerlab.models import list_models, model_options

    families_of: dict[str, set[str]] = {}
    for family in MODEL_FAMILIES:
        for model in family.MODELS:
            assert model in list_models(), f"{family.__name__} names {model}, which is not registered"
            families_of.setdefault(model, set()).update(_names(family))
    for model in list_models():
        takes = set(model_options(model)) - {"head"}  # head: the data decides it, never a flag
        assert families_of.get(model, set()) == takes, model


def test_model_config_composes_the_families_in_the_old_order():
    """The [model] table keeps its keys and their order: presets and old runs' config.toml read unchanged."""
    assert [f.name for f in dataclasses.fields(ModelConfig)] == [
        "name",
        "hidden",
        "layers",
        "bidirectional",
        "dropout",
        "channels",
        "padding",
        "batch_norm",
        "residual",
        "global_pool",
        "forget_bias",
        "args",  # --model-arg: a factory's own options, added last
    ]
    assert set().union(*map(_names, MODEL_FAMILIES)) == _names(ModelConfig) - {"name", "args"}
    cfg = RunConfig.from_dict({"model": {"name": "lstm", "hidden": 8, "dropout": 0.25}})
    assert cfg.model.options() == {"hidden": 8, "dropout": 0.25}
    assert RunConfig.from_dict(cfg.to_dict()).model == cfg.model
    with pytest.raises(ConfigError, match="padding must be one of valid, same"):
        RunConfig.from_dict({"model": {"name": "cnn", "padding": "full"}})


def test_a_shared_option_keeps_each_familys_help():
    dropout = next(f for f in dataclasses.fields(ModelConfig) if f.name == "dropout")
    assert dropout.metadata["families"] == ("recurrent models", "cnn", "mlp")
    assert "between stacked layers" in dropout.metadata["help"]
    assert "cnn: dropout before the Dense head" in dropout.metadata["help"]


def test_families_that_declare_one_option_differently_are_refused():
    @dataclasses.dataclass
    class Odd:
        TITLE = "odd"
        MODELS = ("odd",)
        hidden: int | None = config._opt(None, "hidden units", ge=0)  # the others say ge=1

    with pytest.raises(TypeError, match="hidden is declared differently by Odd"):
        config.merged_options((*MODEL_FAMILIES, Odd))


def test_train_help_lists_model_flags_per_family():
    out = subprocess.run(
        [sys.executable, "-m", "layerlab", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    recurrent = out.index("model: recurrent models (rnn, lstm, gru, residual):")
    cnn = out.index("model: cnn:")
    mlp = out.index("model: mlp:")
    listed = out[out.index("\noptions:") :]  # the help, past the usage line
    assert recurrent < out.index("--hidden N", recurrent) < out.index("--bidirectional", recurrent) < cnn
    assert cnn < out.index("--channels LIST", cnn) < out.index("--global-pool", cnn) < mlp
    assert "also --hidden, --layers and --dropout (above)" in out[mlp:]
    assert listed.count("--dropout X") == 1


def test_the_choices_have_one_home():
    from layerlab import data, deploy, experiments, inputspec, readers, record
    from layerlab.models import cells, cnn

    assert tuple(cells.CELLS) == choices.CELLS
    assert readers.SEQUENCE_MODES is choices.SEQUENCE_MODES and inputspec.HEADS is choices.HEADS
    assert record.WEIGHTS is choices.WEIGHTS
    assert data.TASKS is choices.TASKS and deploy.TASKS is choices.TASKS
    assert experiments.TASKS is choices.COMPARE_TASKS
    assert cnn.PADDINGS is choices.PADDINGS and cnn.GLOBAL_POOLS is choices.GLOBAL_POOLS
    fields = {f.name: f for f in dataclasses.fields(config.TrainConfig)}
    assert fields["schedule"].metadata["choices"] is choices.SCHEDULES
    assert fields["device"].metadata["choices"] is choices.DEVICES


def test_the_min_lr_check_is_one_rule():
    from layerlab.training.schedules import check_schedule

    cfg = RunConfig()
    cfg.train.schedule, cfg.train.lr, cfg.train.min_lr = "cosine", 0.01, 0.1
    for check in (cfg.validate, lambda: check_schedule(cfg.train)):
        with pytest.raises(ConfigError, match=r"--min-lr 0\.1 is above --lr 0\.01"):
            check()
    with pytest.raises(ConfigError, match="expected constant, step, cosine or onecycle"):
        choices.check_schedule("linear", 0.1, 0.0)


@given(st.lists(st.text(alphabet="abc", min_size=1, max_size=3), min_size=1, max_size=6))
def test_and_list_names_each_in_order(names):
    text = choices.and_list(names)
    assert text.count(" and ") == (len(names) > 1)
    if len(names) > 1:
        head, _, last = text.rpartition(" and ")
        assert last == names[-1] and head.split(", ") == names[:-1]
    else:
        assert text == names[0]
