"""layerlab.fit, evaluate and predict on a Hugging Face ``datasets.Dataset``: its label column read
through Arrow, its images a batch at a time; the run it leaves says what the command line can do."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import layerlab
from datagen import bar_images
from layerlab.data.python import X_KEYS, Y_KEYS, HFDatasetSource, hf_columns
from layerlab.errors import DataError
from layerlab.rundir import RunDir

datasets = pytest.importorskip("datasets")

NAMES = ["top", "middle", "low", "bottom"]


def _arrays(n=40, seed=0):
    return bar_images(n, np.random.default_rng(seed), classes=4, cover=True)


def _hf(n=40, seed=0, image="image", label="label", pil=True):
    """A generated datasets.Dataset: PIL images (an ``Image`` feature) and ``ClassLabel`` labels."""
    from PIL import Image

    x, y = _arrays(n, seed)
    feats = {
        image: datasets.Image() if pil else datasets.Array2D((28, 28), "uint8"),
        label: datasets.ClassLabel(names=NAMES),
    }
    col = [Image.fromarray(a) for a in x] if pil else list(x)
    return datasets.Dataset.from_dict({image: col, label: y.tolist()}, features=datasets.Features(feats))


def _fit(data, y=None, **kw):
    return layerlab.fit("article-cnn", data, y, epochs=1, batch_size=8, verbose=0, threads=1, **kw)


def test_a_hf_dataset_trains_as_its_arrays_do_with_its_class_names():
    x, y = _arrays()
    h = _fit(_hf())
    ref = _fit(x, y)
    assert h.history["loss"] == pytest.approx(ref.history["loss"], abs=1e-6)
    assert h.classes == NAMES  # the ClassLabel's names, not 0..3
    assert tuple(h.spec.shape) == (1, 28, 28)


def test_the_labels_are_read_through_arrow_and_images_a_batch_at_a_time(monkeypatch):
    ds = _hf()
    read = []
    real = HFDatasetSource.read_rows

    def counted(self, rows):
        read.append(len(rows))
        return real(self, rows)

    monkeypatch.setattr(HFDatasetSource, "read_rows", counted)
    _fit(ds, eval_batch_size=8)
    assert read and max(read) <= 8  # never more rows than a batch: the set is never read whole


def test_the_source_reads_the_rows_it_is_asked_for():
    x, _ = _arrays()
    h = _fit(_hf())
    src = HFDatasetSource(_hf(), "image", torch.zeros(40), h.spec, workers=0)
    got, _ = src.read(np.array([5, 0, 17]))
    assert torch.equal(got, torch.from_numpy(x[[5, 0, 17]]).float()[:, None] / 255)


def test_columns_by_name_array_features_and_workers():
    x, y = _arrays()
    h = _fit(_hf(image="pic", label="kind", pil=False), x_column="pic", y_column="kind", workers=2)
    ref = _fit(x, y)
    assert h.history["loss"] == pytest.approx(ref.history["loss"], abs=1e-6)


def test_a_missing_column_is_one_sentence():
    with pytest.raises(DataError, match=r"columns \['pic', 'kind'\].*x_column="):
        _fit(_hf(image="pic", label="kind"))
    with pytest.raises(DataError, match="no column 'photo'"):
        _fit(_hf(), x_column="photo")


def test_images_of_different_shapes_are_one_sentence():
    from PIL import Image

    imgs = [Image.new("L", (28, 28)), Image.new("L", (20, 20))] * 4
    ds = datasets.Dataset.from_dict(
        {"image": imgs, "label": [0, 1] * 4},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}),
    )
    with pytest.raises(DataError, match="different shapes"):
        _fit(ds)


def test_evaluate_and_predict_take_the_hf_dataset_as_its_arrays():
    h = _fit(_hf())
    tx, ty = _arrays(24, seed=1)
    test = _hf(24, seed=1)
    a = layerlab.evaluate(h, test)
    b = layerlab.evaluate(h, tx, ty)
    assert a["n"] == 24 and a["accuracy"] == b["accuracy"] and a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    assert set(a["per_class_accuracy"]) <= set(NAMES)
    np.testing.assert_allclose(layerlab.predict(h, test), layerlab.predict(h, tx), atol=1e-6)
    with pytest.raises(DataError, match="carries its targets"):
        layerlab.evaluate(h, test, ty)


def test_a_hf_run_says_why_the_cli_cannot_evaluate_it(tmp_path):
    _fit(_hf(), run_dir=tmp_path / "r")
    info = RunDir(tmp_path / "r").info()["dataset"]
    assert "datasets.Dataset" in info["data_note"] and "keeps no copy" in info["data_note"]
    r = subprocess.run(
        [sys.executable, "-m", "layerlab", "evaluate", str(tmp_path / "r")], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "given in Python" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # and the Python API evaluates it from the run directory, on the dataset object
    assert layerlab.evaluate(str(tmp_path / "r"), _hf(24, seed=1))["n"] == 24


def test_a_streaming_iterable_dataset_is_one_sentence():
    it = _hf().to_iterable_dataset()
    with pytest.raises(DataError, match="streaming"):
        _fit(it)


NAMES_SEEN = [*X_KEYS, *Y_KEYS, "pic", "kind", "id"]


@settings(max_examples=200, deadline=None)
@given(
    cols=st.lists(st.sampled_from(NAMES_SEEN), unique=True, max_size=6),
    x=st.none() | st.sampled_from(NAMES_SEEN),
    y=st.none() | st.sampled_from(NAMES_SEEN),
)
def test_columns_are_the_named_or_the_first_known_or_one_sentence(cols, x, y):
    try:
        xc, yc = hf_columns(SimpleNamespace(column_names=cols), x, y)
    except DataError as e:
        assert "column" in str(e) and "\n" not in str(e)
        assert (
            (x is not None and x not in cols)
            or (y is not None and y not in cols)
            or (x is None and not set(X_KEYS) & set(cols))
            or (y is None and not set(Y_KEYS) & set(cols))
        )
    else:
        assert xc == (x if x is not None else next(k for k in X_KEYS if k in cols))
        assert yc == (y if y is not None else next(k for k in Y_KEYS if k in cols))


def test_validation_data_and_an_unlabelled_set_to_predict_on():
    h = _fit(_hf(), validation_data=_hf(16, seed=2))
    assert "val_loss" in h.history and h.rows[-1]["val_n"] == 16
    tx, _ = _arrays(8, seed=3)
    unlabelled = _hf(8, seed=3).remove_columns(["label"])
    np.testing.assert_allclose(layerlab.predict(h, unlabelled), layerlab.predict(h, tx), atol=1e-6)
