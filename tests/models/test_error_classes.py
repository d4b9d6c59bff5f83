"""One error hierarchy: models, inspection views, export and experiments raise the LayerlabError
subclass that says what is wrong (DataError for data, ConfigError for a value or a request that does
not fit, RunError for a run directory), never ValueError and, where the kind is plain, not the bare base."""

import re
from pathlib import Path

import pytest
import torch

import layerlab
from layerlab.errors import ConfigError, DataError, LayerlabError, RunError
from layerlab.inspect.conv import feature_maps, find_layer
from layerlab.inspect.evaluation import curve_rows
from layerlab.inspect.summary import summarize
from layerlab.inspect.views import owned_out
from layerlab.models import create_model

SRC = Path(layerlab.__file__).parent


def test_the_subclasses_are_layerlab_errors():
    for cls in (ConfigError, DataError, RunError):
        assert issubclass(cls, LayerlabError)


def test_a_conv_view_of_a_layer_that_is_not_there_is_a_config_error():
    model = create_model("cnn", (1, 8, 8), 3, channels="4")
    with pytest.raises(ConfigError, match="no conv layer named 'conv9'"):
        find_layer(model, "conv9")
    with pytest.raises(ConfigError, match="not a convolutional model"):
        find_layer(create_model("mlp", (4, 2), 3), None)
    with pytest.raises(DataError, match="feature maps need one sample"):
        feature_maps(model, torch.zeros(8))


def test_a_summary_of_samples_the_model_cannot_read_is_a_data_error():
    with pytest.raises(DataError, match=r"does not take samples of shape \(1, 9, 9\)"):
        summarize(create_model("article-cnn"), (1, 9, 9), "article-cnn")


def test_an_out_folder_that_is_a_file_is_a_config_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="--out names a file"), owned_out(f):
        pass


def test_a_run_without_metrics_is_a_run_error(tmp_path):
    class NoMetrics:
        path = tmp_path

        def metrics(self):
            return []

    with pytest.raises(RunError, match=r"no metrics\.csv yet"):
        curve_rows(NoMetrics())


def test_compare_cells_of_an_unknown_task_is_a_config_error():
    from layerlab.experiments import compare_cells

    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        compare_cells("nope", 10, ["rnn"])


def test_models_and_views_raise_no_value_error_nor_the_bare_base():
    """A grep, so a new ``raise ValueError`` in a model (a traceback at the command line) fails here."""
    pattern = re.compile(r"raise (ValueError|LayerlabError)\(")
    found = [
        f"{p.relative_to(SRC)}:{i}"
        for folder in ("models", "inspect")
        for p in (SRC / folder).rglob("*.py")
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, found


def test_a_run_locked_twice_is_a_run_error(tmp_path):
    from layerlab import lock

    lock.acquire(tmp_path)
    try:
        with pytest.raises(RunError, match="already locked by this process"):
            lock.acquire(tmp_path)
    finally:
        lock.release(tmp_path)


def test_callbacks_given_wrong_settings_are_config_errors():
    from layerlab.callbacks import EarlyStopping, ProgressBar, StepLogger

    with pytest.raises(ConfigError, match="mode must be auto, min or max"):
        EarlyStopping(mode="up")
    with pytest.raises(ConfigError, match="would choose on the test set"):
        EarlyStopping(monitor="test_loss")
    with pytest.raises(ConfigError, match="every_n_steps must be at least 1"):
        StepLogger("steps.csv", every_n_steps=0)
    with pytest.raises(ConfigError, match="verbose must be 0, 1 or 2"):
        ProgressBar(verbose=3)


def test_an_onnx_file_without_layerlabs_metadata_is_a_data_error(tmp_path):
    from layerlab import deploy

    with pytest.raises(DataError, match="without layerlab's metadata"):
        deploy.read_metadata({}, tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="--top-k must be at least 1"):
        deploy.predict_files(tmp_path / "m.onnx", [], top_k=0)


def test_a_folder_that_is_no_run_is_a_run_error(tmp_path):
    from layerlab.record import list_runs, read_info

    with pytest.raises(RunError, match=r"no run\.json"):
        read_info(tmp_path)
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(RunError, match="corrupt run record"):
        read_info(tmp_path)
    with pytest.raises(ConfigError, match="no such folder"):
        list_runs(tmp_path / "absent")


def test_generate_with_a_model_without_step_logits_is_one_sentence(tmp_path, monkeypatch):
    """generate reads ``step_logits`` through the model contract: a model without it (a plugin's) is a
    ConfigError naming what is missing, not an AttributeError."""
    from layerlab.api import generate
    from layerlab.cli import main
    from layerlab.rundir import RunDir

    book = tmp_path / "book.txt"
    book.write_text("to be or not to be, that is the question.\n" * 20)
    run = tmp_path / "lm"
    tiny = ["--epochs", "1", "--hidden", "4", "--batch-size", "16", "--quiet", "--threads", "1"]
    assert main(["train", "--model", "lstm", "--data", str(book), "--length", "10", "--out", str(run), *tiny]) == 0
    assert generate(run, "to be", 3)["sample"]
    monkeypatch.setattr(RunDir, "model", lambda self, *a, **k: torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="no step_logits"):
        generate(run, "to be", 3)


def test_a_run_asked_for_what_it_has_not_is_a_run_or_config_error(trained_run, tmp_path):
    from layerlab.checkpoint import load_training_state, load_weights
    from layerlab.rundir import RunDir

    run = RunDir(trained_run)
    with pytest.raises(ConfigError, match="unknown weights 'newest'"):
        run.resolve_weights("newest")
    with pytest.raises(ConfigError, match="trained without --validation"):
        run.resolve_weights("best")
    with pytest.raises(RunError, match="checkpoint not found"):
        load_weights(tmp_path / "absent.safetensors", torch.nn.Linear(2, 2))
    with pytest.raises(RunError, match="training state not found"):
        load_training_state(tmp_path / "absent.pt")


def test_the_python_front_door_says_config_error_for_wrong_arguments():
    from layerlab.api import evaluate, predict

    model = create_model("mlp", (1, 2, 3), 3)
    x = torch.zeros(2, 1, 2, 3).numpy()
    with pytest.raises(ConfigError, match="needs x and y for a model object"):
        evaluate(model)
    with pytest.raises(ConfigError, match="top_k must be at least 1"):
        predict(model, x, top_k=0)
    with pytest.raises(DataError, match="holds the label 7"):
        evaluate(model, x, torch.tensor([0, 7]).numpy())
