"""Arrays in, arrays out: ``layerlab.fit``, ``evaluate`` and ``predict`` on NumPy arrays, tensors and
PIL images, as Keras users hand them over; the checks the CLI makes, as one sentence each; a run
directory from Python that every command reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import layerlab
from datagen import bar_images, save_png
from layerlab import api
from layerlab.callbacks import Callback
from layerlab.data import arrays
from layerlab.errors import LayerlabError, TrainingInterrupted


@pytest.fixture(scope="module")
def bars():
    rng = np.random.default_rng(0)
    x, y = bar_images(240, rng)  # (N, 28, 28) uint8, (N,) uint8: keras.datasets' types
    xv, yv = bar_images(80, rng)
    return x, y, xv, yv


@pytest.fixture(scope="module")
def fitted(bars, tmp_path_factory):
    x, y, xv, yv = bars
    run_dir = tmp_path_factory.mktemp("arrays") / "run"
    return layerlab.fit("article-cnn", x, y, validation_data=(xv, yv), epochs=2, verbose=0, run_dir=run_dir)


def test_the_package_exports_the_array_api():
    assert layerlab.fit is api.fit
    assert layerlab.evaluate is api.evaluate
    assert layerlab.predict is api.predict
    assert layerlab.History is api.History


@pytest.mark.slow
def test_history_is_keras_like(fitted):
    h = fitted
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in h.history.values())
    assert h.epoch == [0, 1]
    assert h.best_epoch in (1, 2)
    assert [r["epoch"] for r in h.rows] == [1, 2]
    assert isinstance(h.model, torch.nn.Module)
    assert h.history["val_accuracy"][-1] > 0.5  # bars are learnable in two epochs


def test_evaluate_and_predict_agree_with_the_run_and_the_cli(fitted, bars, capsys):
    from layerlab.cli import main

    _, _, xv, yv = bars
    on_model = layerlab.evaluate(fitted, xv, yv)
    assert on_model["n"] == 80
    assert set(on_model) >= {"loss", "accuracy", "per_class_accuracy", "confusion"}
    # the run's auto weights are best (chosen on validation_data); the object holds the last
    last = layerlab.evaluate(fitted.run.path, xv, yv, which="last")
    assert last["accuracy"] == pytest.approx(on_model["accuracy"])
    assert last["loss"] == pytest.approx(on_model["loss"], rel=1e-5)
    # the CLI evaluates the run on its held-out split: the validation data
    assert main(["evaluate", str(fitted.run.path), "--weights", "last", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["n"] == 80 and cli["accuracy"] == pytest.approx(on_model["accuracy"])
    assert layerlab.evaluate(fitted.run.path)["n"] == 80  # a run without x, y: its own held-out split
    probs = layerlab.predict(fitted, xv)
    assert probs.shape == (80, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == yv).mean() == pytest.approx(on_model["accuracy"])


def test_every_input_form_gives_the_same_prediction(fitted, bars, tmp_path):
    from PIL import Image

    _, _, xv, _ = bars
    want = layerlab.predict(fitted, xv[:3])
    forms = {
        "HWC": xv[:3, :, :, None],
        "CHW": xv[:3, None],
        "float in [0, 1]": xv[:3].astype(np.float64) / 255,
        "tensor": torch.from_numpy(xv[:3]),
        "list of arrays": list(xv[:3]),
        "PIL images": [Image.fromarray(a) for a in xv[:3]],
        "files": [save_png(tmp_path / f"{i}.png", a) for i, a in enumerate(xv[:3])],
    }
    for what, x in forms.items():
        got = layerlab.predict(fitted, x)
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=what)
    one = layerlab.predict(fitted.run.path, Image.fromarray(xv[0]), which="last")  # one image: a batch of one
    np.testing.assert_allclose(one, want[:1], atol=1e-5)
    tops = layerlab.predict(fitted, xv[:2], top_k=3)
    assert len(tops) == 2 and len(tops[0]["top_k"]) == 3
    assert tops[0]["index"] == int(want[0].argmax())


def test_image_layouts_and_types_are_read_as_documented():
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    a, spec, pixels = arrays.model_inputs(grey, sequence=False)
    assert a.shape == (4, 1, 28, 28) and a.dtype == torch.float32 and pixels
    assert float(a.max()) <= 1.0 and spec.shape == (1, 28, 28)
    torch.testing.assert_close(a[:, 0], torch.from_numpy(grey).float() / 255)
    rgb = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)  # keras.datasets.cifar10's layout
    b, spec, _ = arrays.model_inputs(rgb, sequence=False)
    assert b.shape == (2, 3, 32, 32)
    torch.testing.assert_close(b[1, 2], torch.from_numpy(rgb[1, :, :, 2]).float() / 255)
    f64 = rng.normal(size=(3, 2, 8, 8))  # float64, channels-first, kept as they are
    c, _, pixels = arrays.model_inputs(f64, sequence=False)
    assert c.dtype == torch.float32 and c.shape == (3, 2, 8, 8) and not pixels
    torch.testing.assert_close(c, torch.from_numpy(f64).float())
    seq, spec, _ = arrays.model_inputs(rng.normal(size=(5, 7)), sequence=True)
    assert seq.shape == (5, 7, 1) and spec.kind == "sequence"


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros(10, np.uint8), np.arange(10) % 2, "is not a batch of images"),
        (np.full((4, 8, 8), np.nan), [0, 1, 0, 1], "x\\[0\\] holds a NaN or infinite value"),
        (np.zeros((4, 8, 8), np.uint8), [0, 1, 0], "x holds 4 samples and y 3 targets"),
        (np.zeros((4, 8, 8), np.uint8), [0, 1, 10**9, 1], "the label 1000000000, which cannot be a class id"),
        (np.zeros((4, 8, 8), np.uint8), [1, 1, 1, 1], "classification needs at least two classes"),
        (np.zeros((4, 8, 8), np.uint8), ["a", "b", "a", "b"], "give integer class ids"),
        (np.zeros((4, 8, 8), np.int64), [0, 1, 0, 1], "give uint8 pixels"),
        (np.zeros((4, 8, 8), np.uint8), [0.0, np.inf, 0.0, 1.0], "y\\[1\\] is NaN or infinite"),
        (np.zeros((0, 8, 8), np.uint8), [], "holds no samples"),
    ],
)
def test_bad_arrays_are_one_sentence(x, y, message):
    with pytest.raises(LayerlabError, match=message) as e:
        layerlab.fit("cnn", x, y, epochs=1, verbose=0)
    assert "\n" not in str(e.value)


def test_bad_calls_are_one_sentence(fitted, bars, tmp_path):
    x, y, xv, yv = bars
    with pytest.raises(LayerlabError, match="not a whole class id"):
        layerlab.evaluate(fitted, xv, yv + 0.5)
    with pytest.raises(LayerlabError, match=r"is the label 1\d, which the model does not know .it knows 10 classes"):
        layerlab.evaluate(fitted, xv, yv.astype(np.int64) + 5)
    with pytest.raises(LayerlabError, match="does not fit the model, which takes images of 28x28"):
        layerlab.predict(fitted, np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(LayerlabError, match="validation_data or validation_split, not both"):
        layerlab.fit("cnn", x, y, validation_data=(xv, yv), validation_split=0.1, verbose=0)
    with pytest.raises(LayerlabError, match="unknown option 'hiden'"):
        layerlab.fit("lstm", x, y, hiden=8, verbose=0)
    with pytest.raises(LayerlabError, match="model cnn does not take hidden"):
        layerlab.fit("cnn", x, y, hidden=8, verbose=0)
    with pytest.raises(LayerlabError, match="epochs must be at least 1"):
        layerlab.fit("cnn", x, y, epochs=0, verbose=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("")
    with pytest.raises(LayerlabError, match="already exists and is not empty"):
        layerlab.fit("cnn", x, y, verbose=0, run_dir=tmp_path / "full")
    with pytest.raises(LayerlabError, match="top_k must be at least 1"):
        layerlab.predict(fitted, xv, top_k=0)


def test_validation_split_regression_and_options(bars):
    x, y, _, _ = bars
    h = layerlab.fit("cnn", x, y, validation_split=0.25, epochs=1, verbose=0, channels="4,M", optimizer="sgd", lr=0.1)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    none = layerlab.fit("cnn", x[:64], y[:64], epochs=1, verbose=0, channels="4,M")
    assert set(none.history) == {"loss", "accuracy"}  # nothing held out: no val_*, and no test_* on training data
    target = (y.astype(np.float64) / 9.0)[:, None]  # float y: regression with one output
    reg = layerlab.fit("cnn", x, target, epochs=1, verbose=0, channels="4,M", validation_split=0.2)
    assert set(reg.history) == {"loss", "val_loss"}
    values = layerlab.predict(reg, x[:5])
    assert values.shape == (5, 1)
    assert set(layerlab.evaluate(reg, x[:5], target[:5])) == {"loss", "n"}


def test_a_recurrent_model_reads_uint8_images_as_rows(bars, tmp_path):
    x, y, xv, yv = bars
    h = layerlab.fit("lstm", x, y, epochs=1, verbose=0, hidden=8, run_dir=tmp_path / "run")
    spec = h.run.spec
    assert spec.kind == "sequence" and spec.sequence == "rows" and spec.shape == (28, 28)
    p = layerlab.predict(h.run.path, [save_png(tmp_path / "a.png", xv[0])])  # a file, read as rows too
    np.testing.assert_allclose(p, layerlab.predict(h, xv[:1]), atol=1e-5)
    assert layerlab.evaluate(h, xv, yv)["n"] == 80


@pytest.mark.slow
def test_a_run_from_arrays_resumes_exactly(bars, tmp_path):
    x, y, _, _ = bars
    a = layerlab.fit("cnn", x, y, validation_split=0.2, epochs=2, verbose=0, channels="4,M", run_dir=tmp_path / "a")
    b = layerlab.fit("cnn", x, y, validation_split=0.2, epochs=1, verbose=0, channels="4,M", run_dir=tmp_path / "b")
    assert (tmp_path / "b" / "arrays.npz").is_file()
    _, result = api.resume(tmp_path / "b", epochs=2)  # the kept arrays pass the data fingerprint
    assert result.history[-1]["val_loss"] == pytest.approx(a.history["val_loss"][-1], rel=1e-6)
    assert len(b.history["loss"]) == 1


class Recorder(Callback):
    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, trainer, epoch, row):
        self.epochs.append(epoch)


def test_callbacks_reach_the_training_loop(bars, tmp_path, idx_dir):
    x, y, _, _ = bars
    rec = Recorder()
    layerlab.fit("cnn", x[:64], y[:64], epochs=2, verbose=0, channels="4,M", callbacks=[rec])
    assert rec.epochs == [1, 2]
    from layerlab.config import RunConfig

    cfg = RunConfig()
    cfg.data.name, cfg.model.name, cfg.model.channels, cfg.train.epochs = str(idx_dir), "cnn", "4,M", 1
    rec2 = Recorder()
    api.train(cfg, tmp_path / "run", callbacks=[rec2])
    assert rec2.epochs == [1]


def test_verbose_draws_epoch_lines(bars, capsys):
    x, y, _, _ = bars
    layerlab.fit("cnn", x[:64], y[:64], epochs=1, verbose=2, channels="4,M")
    assert "1" in capsys.readouterr().out  # ProgressBar(2): one line per epoch


@pytest.mark.slow
def test_a_copied_or_moved_run_reads_its_own_arrays(bars, tmp_path):
    """fit(run_dir=A), A copied to B: B's config names its arrays relative to the run, so B reads its
    own arrays.npz after A's data is replaced and after A is gone, and resumes from them."""
    import shutil
    import subprocess
    import sys

    x, y, xv, yv = bars
    a = tmp_path / "a"
    layerlab.fit("cnn", x, y, validation_data=(xv, yv), epochs=1, verbose=0, channels="4,M", run_dir=a)
    assert 'name = "arrays.npz"' in (a / "config.toml").read_text()
    before = api.evaluate_run(a)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    # A's data replaced by other arrays (of another size): B still reads its own
    layerlab.fit("cnn", x[:50], y[:50], validation_data=(xv[:30], yv[:30]), epochs=1, verbose=0, run_dir=tmp_path / "c")
    shutil.copy(tmp_path / "c" / "arrays.npz", a / "arrays.npz")
    assert api.evaluate_run(a)["n"] == 30
    copied = api.evaluate_run(b)
    assert (copied["n"], copied["loss"], copied["accuracy"]) == (80, before["loss"], before["accuracy"])
    shutil.rmtree(a)
    moved = tmp_path / "moved"
    b.rename(moved)
    r = subprocess.run(
        [sys.executable, "-m", "layerlab", "evaluate", str(moved), "--json"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n"] == 80
    assert json.loads(r.stdout)["accuracy"] == before["accuracy"]
    _, result = api.resume(moved, epochs=2)  # the kept arrays pass the data fingerprint
    assert len(result.history) == 2
    assert 'name = "arrays.npz"' in (moved / "config.toml").read_text()


def test_a_run_of_an_earlier_version_with_an_absolute_path_reads_its_own_arrays(bars, tmp_path):
    x, y, xv, yv = bars
    a = tmp_path / "a"
    layerlab.fit("cnn", x, y, validation_data=(xv, yv), epochs=1, verbose=0, channels="4,M", run_dir=a)
    other = tmp_path / "other"
    layerlab.fit("cnn", x[:50], y[:50], validation_data=(xv[:30], yv[:30]), epochs=1, verbose=0, run_dir=other)
    cfg = a / "config.toml"  # as earlier versions wrote it, copied: the absolute path of the original's arrays
    cfg.write_text(cfg.read_text().replace('name = "arrays.npz"', f'name = "{other.resolve() / "arrays.npz"}"'))
    assert api.evaluate_run(a)["n"] == 80


# ----------------------------------------------------------------------------------------------
# Python calls that used to end in a traceback: one layerlab error each, before anything is written
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    x = (np.random.default_rng(0).random((40, 8, 8)) * 255).astype(np.uint8)
    return x, np.arange(40) % 10


def _fit_refused(tmp_path, message, *args, **kw):
    with pytest.raises(LayerlabError, match=message) as e:
        layerlab.fit(*args, epochs=1, verbose=0, run_dir=tmp_path / "run", **kw)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


def test_fit_on_a_single_number_is_one_sentence(small, tmp_path):
    _fit_refused(tmp_path, r"x is a single number \(3.0\)", "cnn", np.float32(3), small[1])


def test_a_module_with_3_outputs_for_10_classes_is_one_sentence(small, tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    _fit_refused(tmp_path, r"outputs of shape \(3,\) per sample, the data has 10 classes", model, *small)


def test_a_module_for_another_input_size_is_one_sentence(small, tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(60, 10))
    _fit_refused(tmp_path, r"cannot read the training samples of shape \(1, 8, 8\) \(RuntimeError: ", model, *small)


def test_a_module_without_parameters_is_one_sentence(small, tmp_path):
    _fit_refused(tmp_path, "has no trainable parameters", torch.nn.Flatten(), *small)
    probs = layerlab.predict(torch.nn.Flatten(), np.zeros((2, 1, 1, 2), np.float32))  # predict needs none
    assert probs.shape == (2, 2)


class _Duck:
    """A callback by duck typing, without every_n_steps (and without close)."""

    def on_train_begin(self, trainer):
        pass

    def on_epoch_begin(self, trainer, epoch):
        raise KeyboardInterrupt  # with no close, the loop's clean-up raised AttributeError over this

    def on_step_end(self, trainer, step, logs):
        pass

    def on_epoch_end(self, trainer, epoch, row):
        pass

    def on_train_end(self, trainer, history):
        pass


def test_a_duck_typed_callback_without_every_n_steps_is_one_sentence(small, tmp_path):
    _fit_refused(
        tmp_path, r"callbacks\[0\] \(_Duck\) has no close, every_n_steps; subclass", "cnn", *small, callbacks=[_Duck()]
    )


def test_every_n_steps_2_5_is_one_sentence(small, tmp_path):
    class Half(Callback):
        every_n_steps = 2.5

    _fit_refused(
        tmp_path,
        "every_n_steps must be a whole number of at least 1 or None, got 2.5",
        "cnn",
        *small,
        callbacks=[Half()],
    )


def test_a_ctrl_c_in_a_callback_is_not_hidden(small, tmp_path):
    class Stop(Callback):
        def on_epoch_begin(self, trainer, epoch):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as e:
        layerlab.fit("cnn", *small, epochs=1, verbose=0, channels="4,M", callbacks=[Stop()], run_dir=tmp_path / "r")
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "interrupted"
    # a typed interruption says where the run is and what it kept, instead of attributes stuck on the exception
    assert isinstance(e.value, TrainingInterrupted) and type(e.value.__cause__) is KeyboardInterrupt
    assert e.value.run_dir == str(tmp_path / "r") and e.value.has_checkpoint is False
    assert str(tmp_path / "r") in e.value.note


def test_a_model_whose_head_the_user_replaced_trains_on_three_classes(tmp_path):
    x, y = bar_images(60, np.random.default_rng(0), classes=3)
    model = layerlab.build_model("cnn", (1, 28, 28), 10, channels="4,M")
    heads = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    parent, _, attr = heads[-1].rpartition(".")
    old = model.get_submodule(heads[-1])
    setattr(model.get_submodule(parent) if parent else model, attr, torch.nn.Linear(old.in_features, 3))
    h = layerlab.fit(model, x, y, epochs=1, verbose=0, run_dir=tmp_path / "run")
    assert layerlab.predict(h, x[:2]).shape == (2, 3)
    assert h.run.info()["dataset"]["num_outputs"] == 3
    assert not hasattr(model, "_layerlab_build")  # nothing stuck on the model
    assert layerlab.evaluate(h.model, x, y)["n"] == 60  # the bare module too, read as fit reads arrays


@pytest.mark.parametrize("top_k", ["3", 2.5, True, 0])
def test_predict_top_k_that_is_not_a_whole_number_is_one_sentence(small, top_k):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with pytest.raises(LayerlabError, match=r"top_k must be at least 1 \(a whole number\), got"):
        layerlab.predict(model, small[0], top_k=top_k)


def test_a_ctrl_c_stays_a_ctrl_c_when_the_note_about_the_checkpoint_fails(small, tmp_path, monkeypatch):
    from layerlab.rundir import RunDir

    class Stop(Callback):
        def on_epoch_begin(self, trainer, epoch):
            raise KeyboardInterrupt

    def broken(self):
        raise LayerlabError("checkpoints/current.json cannot be read")

    monkeypatch.setattr(RunDir, "kept", broken)
    with pytest.raises(TrainingInterrupted) as e:
        layerlab.fit("cnn", *small, epochs=1, verbose=0, channels="4,M", callbacks=[Stop()], run_dir=tmp_path / "r")
    assert e.value.note == f"the run is {tmp_path / 'r'}"
