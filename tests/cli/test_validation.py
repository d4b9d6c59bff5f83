"""Bad data is one sentence naming the file (and row or sample), found when the dataset is built,
before anything trains; each test here failed before its fix (issue "Training you can trust")."""

from __future__ import annotations

import csv
import pickle

import numpy as np
import pytest
import torch

from datagen import make_idx_dir, save_png, write_idx
from layerlab.cli import main
from layerlab.data import load_dataset
from layerlab.data.formats.folder import read_image
from layerlab.data.formats.tabular import read_sequence_file
from layerlab.errors import DataError


def one_sentence(e, *fragments):
    msg = str(e.value)
    assert "\n" not in msg and msg.strip() == msg, msg
    for f in fragments:
        assert f in msg, (f, msg)


def image_folder(root, classes=("a", "b"), n=3, size=8):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            save_png(root / c / f"{i}.png", rng.integers(0, 256, (size, size)))
    return root


# ----------------------------------------------------------------------------------------------
# 1. 16-bit, 32-bit and float images keep their range
# ----------------------------------------------------------------------------------------------
def test_16_bit_grey_png_is_scaled_by_65535(tmp_path):
    from PIL import Image

    a = (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)
    Image.fromarray(a).save(tmp_path / "a.png")
    x, notes = read_image(tmp_path / "a.png")
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0].numpy(), a / 65535, rtol=1e-6)
    assert any("65535" in n for n in notes)
    x3, _ = read_image(tmp_path / "a.png", channels=3, size=(4, 4))
    assert x3.shape == (3, 4, 4) and 0 < float(x3.max()) < 1


def test_32_bit_and_float_images(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((4, 4), 30000, dtype=np.int32)).save(tmp_path / "i.tif")
    x, _ = read_image(tmp_path / "i.tif")
    np.testing.assert_allclose(x.numpy(), 30000 / 65535, rtol=1e-6)
    Image.fromarray(np.full((4, 4), 0.25, dtype=np.float32)).save(tmp_path / "f.tif")
    np.testing.assert_allclose(read_image(tmp_path / "f.tif")[0].numpy(), 0.25)


# ----------------------------------------------------------------------------------------------
# 2, 3. IDX: float labels, scaling by type, negative labels, labels beyond the class names
# ----------------------------------------------------------------------------------------------
def _idx(dtype_code: int, arr: np.ndarray) -> bytes:
    types = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    head = bytes([0, 0, dtype_code, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return head + arr.astype(types[dtype_code]).tobytes()


def test_idx_float_labels_must_be_whole(tmp_path):
    d = make_idx_dir(tmp_path / "d", n_train=20, n_test=10, gz=False)
    (d / "train-labels-idx1-ubyte").write_bytes(_idx(0x0D, np.linspace(0, 9.5, 20)))
    with pytest.raises(DataError) as e:
        load_dataset(str(d))
    one_sentence(e, "train-labels-idx1-ubyte", "whole numbers")


def test_idx_images_scaled_by_their_type(tmp_path):
    d = make_idx_dir(tmp_path / "d", n_train=20, n_test=10, gz=False)
    for name, n in (("train-images-idx3-ubyte", 20), ("t10k-images-idx3-ubyte", 10)):
        (d / name).write_bytes(_idx(0x0D, np.full((n, 4, 4), 0.5)))  # floats: as they are
    ds = load_dataset(str(d))
    assert float(ds.train.x.max()) == 0.5
    for name, n in (("train-images-idx3-ubyte", 20), ("t10k-images-idx3-ubyte", 10)):
        (d / name).write_bytes(_idx(0x0B, np.full((n, 4, 4), 32767)))  # int16: by its largest value
    assert float(load_dataset(str(d)).train.x.max()) == 1.0


def test_idx_negative_label(tmp_path):
    d = make_idx_dir(tmp_path / "d", n_train=20, n_test=10, gz=False)
    y = np.arange(20) % 10
    y[3] = -1
    (d / "train-labels-idx1-ubyte").write_bytes(_idx(0x09, y))
    with pytest.raises(DataError) as e:
        load_dataset(str(d))
    one_sentence(e, "train-labels-idx1-ubyte", "label 3 is -1")


def test_idx_label_beyond_the_named_classes(tmp_path):
    d = make_idx_dir(tmp_path / "mnist", n_train=20, n_test=10, gz=False)
    write_idx(d / "t10k-labels-idx1-ubyte", np.full(10, 57))
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=tmp_path)
    one_sentence(e, "t10k-labels-idx1-ubyte", "label 57", "10 class names")


def test_idx_inf_image(tmp_path):
    d = make_idx_dir(tmp_path / "d", n_train=20, n_test=10, gz=False)
    x = np.zeros((20, 4, 4))
    x[7, 1, 1] = np.inf
    (d / "train-images-idx3-ubyte").write_bytes(_idx(0x0D, x))
    (d / "t10k-images-idx3-ubyte").write_bytes(_idx(0x0D, np.zeros((10, 4, 4))))
    with pytest.raises(DataError) as e:
        load_dataset(str(d))
    one_sentence(e, "train-images-idx3-ubyte", "image 7")


def _cifar_dir(root, labels_test, names=None):
    rng = np.random.default_rng(0)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i in range(1, 6):
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    batch = {b"data": rng.integers(0, 256, (len(labels_test), 3072), dtype=np.uint8), b"labels": labels_test}
    (d / "test_batch").write_bytes(pickle.dumps(batch))
    if names is not None:
        (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    return d


def test_cifar_label_beyond_the_class_names(tmp_path):
    _cifar_dir(tmp_path, [0, 57])
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path))
    one_sentence(e, "test_batch", "label 57", "10 class names")
    _cifar_dir(tmp_path / "few", [0, 3], names=[b"cat", b"dog"])
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "few"))
    one_sentence(e, "label 3", "2 class names")


# ----------------------------------------------------------------------------------------------
# 4, 5. classes missing from training, one class, empty splits
# ----------------------------------------------------------------------------------------------
def _csv(path, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_csv_test_class_missing_from_training(tmp_path):
    tr = _csv(tmp_path / "X_TRAIN.csv", [[1, 0.1, 0.2], [2, 0.3, 0.1], [1, 0.5, 0.5]])
    _csv(tmp_path / "X_TEST.csv", [[1, 0.1, 0.2], [3, 0.3, 0.1]])
    with pytest.raises(DataError) as e:
        load_dataset(str(tr))
    one_sentence(e, "class(es) 3", "no training case")


def test_one_class_is_not_a_classification(tmp_path):
    tr = _csv(tmp_path / "X_TRAIN.csv", [[1, 0.1, 0.2], [1, 0.3, 0.1]])
    _csv(tmp_path / "X_TEST.csv", [[1, 0.1, 0.2]])
    with pytest.raises(DataError) as e:
        load_dataset(str(tr))
    one_sentence(e, "at least two classes")
    image_folder(tmp_path / "one", classes=("only",))
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "one"))
    one_sentence(e, "only one class folder", "at least two")


def test_folder_test_class_missing_from_training(tmp_path):
    image_folder(tmp_path / "f" / "train", classes=("a", "b"))
    image_folder(tmp_path / "f" / "test", classes=("a", "b", "c"))
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "f"))
    one_sentence(e, "c have test images but no training images")


def test_npz_empty_split_and_shape_mismatch(tmp_path):
    p = tmp_path / "e.npz"
    np.savez(p, x_train=np.zeros((0, 5)), y_train=np.zeros(0, int), x_test=np.zeros((2, 5)), y_test=[0, 1])
    with pytest.raises(DataError) as e:
        load_dataset(str(p))
    one_sentence(e, str(p), "x_train holds no sequences")
    d = make_idx_dir(tmp_path / "d", n_train=20, n_test=10, gz=False)
    write_idx(d / "t10k-images-idx3-ubyte", np.zeros((10, 14, 14)))
    with pytest.raises(DataError) as e:
        load_dataset(str(d))
    one_sentence(e, "training images are (28, 28), test images (14, 14)")


# ----------------------------------------------------------------------------------------------
# 6, 7. NPZ of strings or objects; infinite values
# ----------------------------------------------------------------------------------------------
def test_npz_of_strings_or_objects(tmp_path):
    p = tmp_path / "s.npz"
    np.savez(p, x_train=np.array([["a", "b"]] * 2), y_train=[0, 1], x_test=np.zeros((2, 2)), y_test=[0, 1])
    with pytest.raises(DataError) as e:
        load_dataset(str(p))
    one_sentence(e, str(p), "x_train holds <U1 values")
    o = tmp_path / "o.npz"
    objs = np.array([None, {}], dtype=object)
    np.savez(o, x_train=np.zeros((2, 2)), y_train=objs, x_test=np.zeros((2, 2)), y_test=[0, 1])
    with pytest.raises(DataError) as e:
        load_dataset(str(o))
    one_sentence(e, str(o), "y_train holds Python objects")


def test_infinite_values_name_the_row(tmp_path):
    tr = _csv(tmp_path / "X_TRAIN.csv", [[1, 0.1, 0.2], [2, "inf", 0.1]])
    _csv(tmp_path / "X_TEST.csv", [[1, 0.1, 0.2], [2, 0.3, ""]])
    with pytest.raises(DataError) as e:
        load_dataset(str(tr))
    one_sentence(e, "X_TRAIN.csv, row 2", "infinite")
    p = tmp_path / "i.npz"
    x = np.zeros((3, 4))
    x[2, 1] = np.inf
    np.savez(p, x_train=x, y_train=[0, 1, 0], x_test=np.zeros((2, 4)), y_test=[0, 1])
    with pytest.raises(DataError) as e:
        load_dataset(str(p))
    one_sentence(e, str(p), "x_train[2]")


def test_ts_infinite_value_names_the_line(tmp_path):
    head = "@problemName X\n@classLabel true a b\n@data\n"
    (tmp_path / "X_TRAIN.ts").write_text(head + "1,2:a\n1,1e999:b\n")
    (tmp_path / "X_TEST.ts").write_text(head + "1,2:a\n")
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "X_TRAIN.ts"))
    one_sentence(e, "X_TRAIN.ts, line 5", "infinite")


# ----------------------------------------------------------------------------------------------
# 8, 9. huge images; a single image given as the data
# ----------------------------------------------------------------------------------------------
def test_decompression_bomb_is_one_sentence(tmp_path, monkeypatch):
    from layerlab import readers
    from layerlab.data.formats import folder

    save_png(tmp_path / "big.png", np.zeros((40, 40)))
    assert folder.MAX_PIXELS > 80_000_000  # Pillow's own limit, documented
    monkeypatch.setattr(readers, "MAX_PIXELS", 100)  # the limit the one image reader reads
    with pytest.raises(DataError) as e:
        read_image(tmp_path / "big.png")
    one_sentence(e, "big.png", "40x40", "larger than")


def test_a_single_image_is_not_a_dataset(tmp_path):
    p = save_png(tmp_path / "x.png", np.zeros((4, 4)))
    with pytest.raises(DataError) as e:
        load_dataset(str(p))
    one_sentence(e, str(p), "a single image is not a dataset", "folder")
    (tmp_path / "notes.xyz").write_text("hello")
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "notes.xyz"))
    one_sentence(e, "exists but is not a dataset")


# ----------------------------------------------------------------------------------------------
# 10. --n-train on every dataset; --length where there is no length
# ----------------------------------------------------------------------------------------------
def test_n_train_applies_to_image_sets(tmp_path):
    d = make_idx_dir(tmp_path / "d", n_train=60, n_test=20)
    ds = load_dataset(str(d), n_train=50, n_test=7)
    assert len(ds.train) == 50 and len(ds.test) == 7
    image_folder(tmp_path / "f", n=10)
    ds = load_dataset(str(tmp_path / "f"), n_train=5)
    assert len(ds.train) == 5


def test_length_on_data_without_length(tmp_path):
    d = make_idx_dir(tmp_path / "d", n_train=20, n_test=10)
    with pytest.raises(DataError) as e:
        load_dataset(str(d), length=30)
    one_sentence(e, "--length", str(d), "no length")


def test_cli_bad_data_exits_2_and_writes_no_run(tmp_path, capsys):
    p = save_png(tmp_path / "x.png", np.zeros((4, 4)))
    run = tmp_path / "run"
    assert main(["train", "--data", str(p), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "a single image is not a dataset" in err and err.count("\n") == 1
    assert not run.exists()


# ----------------------------------------------------------------------------------------------
# 11. predict on a UCR-layout CSV
# ----------------------------------------------------------------------------------------------
def test_ucr_layout_csv_reads_the_label(tmp_path):
    p = _csv(tmp_path / "p.csv", [[3, 0.1, 0.2, 0.3], [1, 0.4, 0.5, 0.6]])
    seqs, _, labels = read_sequence_file(p, 1, length=3)
    assert labels == ["3", "1"] and [s[:, 0].tolist() for s in seqs] == [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]
    seqs, _, labels = read_sequence_file(p, 1, length=4)  # rows of T values: no label column
    assert labels == [] and len(seqs[0]) == 4
    seqs, _, labels = read_sequence_file(p, 1)  # a variable-length run: never guessed
    assert labels == [] and len(seqs[0]) == 4


# ----------------------------------------------------------------------------------------------
# 12, 13, 14. confusion.csv header, $ in class names, --out of a user's
# ----------------------------------------------------------------------------------------------
def test_class_names_that_break_csv_and_mathtext(tmp_path):
    from layerlab.inspect import views
    from layerlab.plots import class_scores, confusion, mistakes, png_bytes

    classes = ["true", "$5", "$10", "true"]
    cm = np.arange(16).reshape(4, 4)
    png_bytes(confusion(cm, classes))
    png_bytes(class_scores({"precision": [1, 0.5, 0, 1], "recall": [1, 0.5, 0, 1]}, classes))
    png_bytes(mistakes([np.zeros((1, 4, 4))], [{"true": 1, "predicted": 2, "confidence": 0.9}], classes))
    rows = [[classes[i], *cm[i].tolist()] for i in range(4)]
    path = views.write_table(tmp_path / "c.csv", [views.CONFUSION_CORNER, *classes], rows)
    got = list(csv.reader(open(path)))
    assert got[0] == ["true \\ predicted", "true", "$5", "$10", "true"]
    assert [int(v) for r in got[1:] for v in r[1:]] == list(range(16))


def test_inspect_out_refuses_a_users_folder(tmp_path, capsys, trained_run):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    assert main(["inspect", "curves", str(trained_run), "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert str(mine) in err and "did not write" in err
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    new = tmp_path / "new"
    assert main(["inspect", "curves", str(trained_run), "--out", str(new)]) == 0
    assert (new / ".layerlab-inspect").is_file() and (new / "curves.csv").is_file()
    assert main(["inspect", "curves", str(trained_run), "--out", str(new)]) == 0  # ours: again is fine
