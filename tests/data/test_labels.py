"""One rule for class labels wherever they enter (layerlab.labels): fit's arrays, one-hot rows, an
``.npz``, IDX files and ``--n-train`` subsets give the same class set, refuse the same things in one
sentence, and map labels that are not 0..K-1 with a notice, keeping the original labels as names."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datagen import bar_images, write_idx
from layerlab import labels
from layerlab.errors import DataError


# ----------------------------------------------------------------------------------------------
# The rule itself (NumPy only)
# ----------------------------------------------------------------------------------------------
def test_labels_0_to_k_minus_1_are_classes_as_they_are():
    cs = labels.class_set(np.array([0, 1, 2, 1]))
    assert (cs.k, cs.names, cs.notice) == (3, ["0", "1", "2"], None)
    assert cs.encode(np.array([2, 0])).tolist() == [2, 0]


@pytest.mark.parametrize(
    "y, names, notice",
    [
        (np.arange(1, 11).repeat(2), [str(i) for i in range(1, 11)], "the labels 1..10 are read as classes 0..9"),
        (np.array([0, 5, 5, 0]), ["0", "5"], "the labels {0, 5} are read as classes {0, 1}"),
        (np.array([-1, 1, 1]), ["-1", "1"], "the labels {-1, 1} are read as classes {0, 1}"),
    ],
)
def test_other_labels_are_mapped_with_a_notice(y, names, notice):
    cs = labels.class_set(y, where="y")
    assert cs.names == names and cs.k == len(names)
    assert notice in cs.notice
    assert [cs.names[i] for i in cs.encode(y)] == [str(v) for v in y]  # decoding names the original labels


@pytest.mark.parametrize(
    "y, held, message",
    [
        (np.zeros(5, np.int64), [], "every training label is 0; classification needs at least two classes"),
        (np.array([0, 1]), [("the test set", np.array([0, 2]))], "the test set holds the class 2, which no training"),
    ],
)
def test_what_is_refused(y, held, message):
    with pytest.raises(DataError, match=message):
        labels.class_set(y, held)


def test_labels_that_are_not_class_ids_are_refused_before_anything_is_allocated():
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="the label 1000000000, which cannot be a class id"):
        labels.class_ids(np.array([0, 1, 10**9]))
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(DataError, match=r"y\[1\] is 0.5, not a whole class id"):
        labels.class_ids(np.array([0.0, 0.5]))
    assert labels.class_ids(np.array([0.0, 3.0])).tolist() == [0, 3]


def test_one_hot_rows_are_class_ids():
    y = np.array([3, 0, 9, 1])
    assert labels.one_hot(np.eye(10)[y]).tolist() == y.tolist()
    assert labels.one_hot(np.eye(10, dtype=np.uint8)[y]).tolist() == y.tolist()
    assert labels.one_hot(np.array([[0.2, 0.8], [1.0, 0.0]])) is None  # probabilities: not one-hot
    assert labels.one_hot(np.array([[1, 1], [1, 0]])) is None  # two 1s in a row: multi-label
    assert labels.one_hot(np.array([[1], [0]])) is None  # one column: a 0/1 label


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=2, max_size=40).filter(lambda v: len(set(v)) >= 2))
def test_any_integer_labels_map_to_0_to_k_minus_1_and_decode_back(values):
    y = np.array(values)
    cs = labels.class_set(y)
    ids = cs.encode(y)
    assert cs.k == len(set(values))
    assert ids.min() == 0 and ids.max() == cs.k - 1
    assert [cs.names[i] for i in ids] == [str(v) for v in values]
    assert (cs.notice is None) == (sorted(set(values)) == list(range(cs.k)))


# ----------------------------------------------------------------------------------------------
# fit: the same rule as files
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_class():
    x, y = bar_images(60, np.random.default_rng(0), classes=2)
    return x, y


def test_fit_with_labels_0_and_5_builds_two_outputs_and_decodes_them(two_class, tmp_path, caplog):
    import layerlab

    x, y = two_class
    y5 = np.where(y == 1, 5, 0)
    h = layerlab.fit("cnn", x, y5, epochs=1, verbose=0, channels="4,M", run_dir=tmp_path / "run")
    assert "the labels {0, 5} are read as classes {0, 1}" in caplog.text
    assert layerlab.predict(h, x[:3]).shape == (3, 2)  # two outputs, not six
    assert json.loads((tmp_path / "run" / "run.json").read_text())["dataset"]["classes"] == ["0", "5"]
    top = layerlab.predict(tmp_path / "run", x[:4], top_k=1)
    assert {t["label"] for t in top} <= {"0", "5"}
    assert layerlab.evaluate(h, x, y5)["n"] == 60  # evaluated in the labels it was trained on
    with pytest.raises(DataError, match="the label 1, which the model does not know"):
        layerlab.evaluate(h, x, y)


def test_fit_with_labels_1_to_10_builds_ten_outputs(tmp_path, caplog):
    import layerlab

    x, y = bar_images(80, np.random.default_rng(1), cover=True)
    h = layerlab.fit("cnn", x, y.astype(np.int64) + 1, epochs=1, verbose=0, channels="4,M")
    assert layerlab.predict(h, x[:2]).shape == (2, 10)
    assert "the labels 1..10 are read as classes 0..9" in caplog.text  # mapped with a notice, not silently
    assert h.classes == [str(i) for i in range(1, 11)]  # and decoded back to the labels given


def test_fit_with_one_hot_labels_trains_a_classifier(two_class, caplog):
    import layerlab

    x, y = two_class
    h = layerlab.fit("cnn", x, np.eye(2)[y], epochs=1, verbose=0, channels="4,M")
    assert set(h.history) == {"loss", "accuracy"}  # a classifier, not MSE regression
    assert "is one-hot: read as class ids 0..1" in caplog.text
    assert layerlab.evaluate(h, x, np.eye(2)[y])["accuracy"] == layerlab.evaluate(h, x, y)["accuracy"]


def test_fit_refuses_a_label_of_a_billion_at_once(two_class):
    import layerlab

    x, y = two_class
    y = y.astype(np.int64)
    y[0] = 10**9
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="cannot be a class id"):
        layerlab.fit("cnn", x, y, epochs=1, verbose=0)
    assert time.perf_counter() - t0 < 5


def test_fit_refuses_a_validation_class_missing_from_training(two_class):
    import layerlab

    x, y = two_class
    with pytest.raises(DataError, match="validation_data y holds the class 7, which no training sample has"):
        layerlab.fit("cnn", x, y, validation_data=(x[:4], np.array([0, 1, 7, 0])), epochs=1, verbose=0)


# ----------------------------------------------------------------------------------------------
# Files: IDX labels, --n-train subsets, .npz
# ----------------------------------------------------------------------------------------------
def _idx(root, ytr, yte):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte", (rng.random((len(ytr), 8, 8)) * 255).astype(np.uint8))
    write_idx(root / "train-labels-idx1-ubyte", np.asarray(ytr, np.uint8))
    write_idx(root / "t10k-images-idx3-ubyte", (rng.random((len(yte), 8, 8)) * 255).astype(np.uint8))
    write_idx(root / "t10k-labels-idx1-ubyte", np.asarray(yte, np.uint8))
    return root


def _prepare(name, **data):
    from layerlab.config import DataConfig
    from layerlab.data.inputs import prepare_data

    return prepare_data(DataConfig(name=str(name), **data))


def test_an_idx_label_byte_255_is_a_class_with_a_notice_not_256_outputs(tmp_path):
    root = _idx(tmp_path / "idx", [0, 1, 2, 255] * 5, [0, 1, 2, 255])
    ds = _prepare(root)
    assert ds.num_outputs == 4 and ds.classes == ["0", "1", "2", "255"]
    assert "the labels {0, 1, 2, 255} are read as classes 0..3" in ds.meta["labels"]
    assert ds.train.y.max() == 3


def test_idx_test_labels_missing_from_training_are_refused(tmp_path):
    root = _idx(tmp_path / "idx", [0, 1] * 5, [0, 1, 9])
    with pytest.raises(DataError, match="the test set holds the class 9, which no training sample has"):
        _prepare(root)


def test_an_n_train_subset_of_one_class_is_refused(tmp_path):
    root = _idx(tmp_path / "idx", [0] * 6 + list(range(10)) * 2, list(range(10)))
    with pytest.raises(DataError, match="every training label is 0; classification needs at least two"):
        _prepare(root, n_train=5)
    with pytest.raises(DataError, match="the test set holds the class 2, which no training sample has"):
        _prepare(root, n_train=8)  # 0s and one 1 against ten test classes


def test_an_npz_and_fit_give_one_class_set_for_labels_0_and_7(tmp_path, two_class):
    import layerlab

    x, y = two_class
    y7 = np.where(y == 1, 7, 0)
    path = tmp_path / "sevens.npz"
    np.savez(path, x_train=x[:, None], y_train=y7, x_test=x[:10, None], y_test=y7[:10])
    ds = _prepare(path)
    assert (ds.num_outputs, ds.classes) == (2, ["0", "7"])
    assert "the labels {0, 7} are read as classes {0, 1}" in ds.meta["labels"]
    h = layerlab.fit("cnn", x, y7, epochs=1, verbose=0, channels="4,M")
    assert layerlab.predict(h, x[:1]).shape == (1, 2)


def test_the_rule_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, layerlab.labels; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr
