"""Sequence data: the .ts reader (valid and malformed), CSV/NPZ, images as sequences, the synthetic
tasks' targets, text windows."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from layerlab.data import (
    Dataset,
    Split,
    catalog,
    images_as_sequences,
    known_datasets,
    load_dataset,
    split_validation,
    synthetic,
)
from layerlab.data.formats.ts import read_ts
from layerlab.data.transforms import PERMUTATION_SEED, InputSpec, Vocabulary
from layerlab.errors import DataError

HEADER = (
    "@problemName Toy\n@timeStamps false\n@univariate {uni}\n{dims}@equalLength {eq}\n@classLabel true a b\n@data\n"
)


def write_ts(path: Path, rows: list[str], uni=True, eq=True, dims=None, header=None) -> Path:
    h = (
        header
        if header is not None
        else HEADER.format(uni=str(uni).lower(), eq=str(eq).lower(), dims=f"@dimensions {dims}\n" if dims else "")
    )
    path.write_text("# a comment\n% an ARFF-style comment\n" + h + "\n".join(rows) + "\n")
    return path


def test_ts_univariate_equal_length(tmp_path):
    ts = read_ts(write_ts(tmp_path / "A_TRAIN.ts", ["1,2,3:a", "4,5,6:b"]))
    assert ts.class_names == ["a", "b"] and ts.labels == ["a", "b"] and not ts.regression
    assert [s.shape for s in ts.series] == [(3, 1), (3, 1)]
    np.testing.assert_array_equal(ts.series[1][:, 0], [4, 5, 6])


def test_ts_multivariate_unequal_with_missing(tmp_path):
    rows = ["1,2,3:10,20,30:a", "4,?:5,6:b", "7,8,9,?:1,2,3,?:a"]  # trailing '?' shortens a case
    ts = read_ts(write_ts(tmp_path / "M_TRAIN.ts", rows, uni=False, eq=False, dims=2))
    assert [s.shape for s in ts.series] == [(3, 2), (2, 2), (3, 2)]
    assert math.isnan(ts.series[1][1, 0]) and ts.series[1][1, 1] == 6
    np.testing.assert_array_equal(ts.series[0][:, 1], [10, 20, 30])


def test_ts_regression_targets(tmp_path):
    header = "@problemName R\n@timeStamps false\n@univariate true\n@targetLabel true\n@data\n"
    ts = read_ts(write_ts(tmp_path / "R_TRAIN.ts", ["1,2:0.5", "3,4:1.25"], header=header))
    assert ts.regression and ts.labels == [0.5, 1.25]


@pytest.mark.parametrize(
    "rows,header,message",
    [
        ([], "@problemName X\n@classLabel true a b\n", "no @data line"),
        (["1,2,3:a"], "@problemName X\n@classLabel true a b\n", "line 5: expected an @-header line or @data"),
        (["1,x,3:a"], None, "line 9: dimension 1 holds 'x', which is not a number"),
        (["1,2,3:c"], None, "class label 'c' is not among the declared labels a b"),
        (["1,2:3,4:a", "1,2:b"], None, "this case has 1 dimensions, the first case has 2"),
        (["1,2,3"], None, "expected the values and then a class label"),
        ([], None, "no cases after @data"),
        (["1,2:a"], "@timeStamps true\n@classLabel true a\n@data\n", "timestamped"),
        (["1,2:a"], "@classLabel maybe a\n@data\n", "@classLabel must be true or false"),
        (["1,2:3,4:a"], "@dimensions 3\n@classLabel true a\n@data\n", "declares 3 dimensions"),
        (["hello"], "this is not a header\n", "expected an @-header line"),
    ],
)
def test_ts_malformed_files_name_the_file(tmp_path, rows, header, message):
    p = write_ts(tmp_path / "Bad_TRAIN.ts", rows, header=header)
    with pytest.raises(DataError, match=message) as e:
        read_ts(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_ts_missing_and_binary_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_ts(tmp_path / "nope.ts")
    b = tmp_path / "bin_TRAIN.ts"
    b.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DataError, match="not a text file"):
        read_ts(b)


def test_ts_pair_loads_as_dataset(tmp_path):
    write_ts(tmp_path / "Toy_TRAIN.ts", ["1,2,3:a", "4,5:b", "0,0,1:a"], eq=False)
    write_ts(tmp_path / "Toy_TEST.ts", ["1,2,3,4:b"], eq=False)
    ds = load_dataset(str(tmp_path / "Toy_TRAIN.ts"))
    assert ds.name == "Toy" and ds.task == "classification" and ds.classes == ["a", "b"]
    assert ds.input_shape == (4, 1)  # padded to the longest of both splits
    assert ds.train.lengths.tolist() == [3, 2, 3] and ds.test.lengths.tolist() == [4]
    assert ds.train.y.tolist() == [0, 1, 0] and ds.test.y.tolist() == [1]
    assert float(ds.train.x[1, 2:].abs().sum()) == 0  # zero padding
    assert ds.spec == InputSpec(
        "sequence", (4, 1), feature_mean=ds.spec.feature_mean, feature_std=ds.spec.feature_std, variable_length=True
    )
    train_values = np.array([1, 2, 3, 4, 5, 0, 0, 1], dtype=np.float64)  # the training cases' values
    np.testing.assert_allclose(ds.spec.feature_mean, [train_values.mean()])
    np.testing.assert_allclose(ds.spec.feature_std, [train_values.std()])
    assert not {"feature_mean", "feature_std", "max_length", "equal_length"} & set(ds.meta)
    assert ds.meta == {"format": "ts", "multivariate": False}
    assert load_dataset(str(tmp_path)).name == "Toy"  # the directory works too


def test_ts_pair_needs_test_beside(tmp_path):
    p = write_ts(tmp_path / "Lone_TRAIN.ts", ["1,2:a"])
    with pytest.raises(DataError, match=r"Lone_TEST\.ts is not beside it"):
        load_dataset(str(p))
    q = write_ts(tmp_path / "weird.ts", ["1,2:a"])
    with pytest.raises(DataError, match="NAME_TRAIN"):
        load_dataset(str(q))


def test_sequence_flag_rejected_for_sequence_data():
    with pytest.raises(DataError, match="already sequence data"):
        load_dataset("adding", sequence="rows")


aeon_root = catalog.bundled_ts_root()


@pytest.mark.skipif(aeon_root is None, reason="aeon (the test extra) is not installed")
@pytest.mark.parametrize("name", ["BasicMotions", "JapaneseVowels", "ArrowHead", "UnitTest", "Covid3Month"])
def test_ts_reader_agrees_with_aeon(name):
    from aeon.datasets import load_from_ts_file

    path = aeon_root / name / f"{name}_TRAIN.ts"
    X, y = load_from_ts_file(str(path))
    ours = read_ts(path)
    if ours.regression:
        np.testing.assert_allclose(ours.labels, np.asarray(y, dtype=float))
    else:
        assert [v.lower() for v in ours.labels] == [str(v).lower() for v in y]  # aeon lower-cases labels
    for a, s in zip(X, ours.series, strict=True):
        np.testing.assert_allclose(s.T, np.asarray(a, dtype=np.float64))  # aeon: (F, T_i)


@pytest.mark.skipif(aeon_root is None, reason="aeon (the test extra) is not installed")
def test_bundled_sets_by_name():
    ds = load_dataset("JapaneseVowels", n_train=30, n_test=20)
    assert ds.input_shape == (29, 12) and ds.num_outputs == 9 and ds.train.lengths is not None
    assert len(ds.train) == 30 and len(ds.test) == 20
    assert "BasicMotions" in known_datasets()
    motions = load_dataset("BasicMotions")
    assert motions.spec.kind == "sequence" and motions.spec.shape == (100, 6) and not motions.spec.variable_length
    assert len(motions.spec.feature_mean) == 6 and motions.meta["multivariate"]


def test_csv_pair_ucr_layout(tmp_path):
    (tmp_path / "C_TRAIN.csv").write_text("1,0.1,0.2,0.3\n2,0.5,0.4,\n1,0.0,0.0,0.1\n")
    (tmp_path / "C_TEST.csv").write_text("2,1,2,3\n")
    ds = load_dataset(str(tmp_path / "C_TRAIN.csv"))
    assert ds.classes == ["1", "2"] and ds.train.lengths.tolist() == [3, 2, 3]
    (tmp_path / "T_TRAIN.tsv").write_text("0.5\t1\t2\n1.5\t3\t4\n")
    (tmp_path / "T_TEST.tsv").write_text("0.25\t1\t1\n")
    reg = load_dataset(str(tmp_path / "T_TRAIN.tsv"))
    assert reg.task == "regression" and reg.train.y.tolist() == [0.5, 1.5]


def test_csv_bad_value(tmp_path):
    (tmp_path / "C_TRAIN.csv").write_text("1,0.1,0.2\n2,0.5,abc\n")
    (tmp_path / "C_TEST.csv").write_text("2,1,2\n")
    with pytest.raises(DataError, match=r"C_TRAIN.csv, row 2: a value that is not a number \('abc'\)"):
        load_dataset(str(tmp_path / "C_TRAIN.csv"))


def test_npz_classification_regression_and_per_step(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "c.npz",
        x_train=rng.random((6, 5, 2)),
        y_train=np.array([0, 1, 2, 0, 1, 2]),
        x_test=rng.random((3, 5, 2)),
        y_test=np.array([0, 1, 2]),
        lengths_train=np.array([5, 4, 3, 5, 5, 1]),
    )
    c = load_dataset(str(tmp_path / "c.npz"))
    assert c.task == "classification" and c.num_outputs == 3 and c.train.lengths.tolist() == [5, 4, 3, 5, 5, 1]
    assert c.test.lengths.tolist() == [5, 5, 5]
    np.savez(
        tmp_path / "r.npz",
        x_train=rng.random((4, 6)),
        y_train=rng.random(4),
        x_test=rng.random((2, 6)),
        y_test=rng.random(2),
    )
    r = load_dataset(str(tmp_path / "r.npz"))
    assert r.task == "regression" and r.input_shape == (6, 1)
    np.savez(
        tmp_path / "s.npz",
        x_train=rng.random((4, 6)),
        y_train=rng.integers(0, 3, (4, 6)),
        x_test=rng.random((2, 6)),
        y_test=rng.integers(0, 3, (2, 6)),
        lengths_train=np.array([6, 3, 6, 6]),
    )
    s = load_dataset(str(tmp_path / "s.npz"))
    assert s.task == "sequence-classification" and s.spec.head == "step" and s.train.y.shape == (4, 6)
    assert s.spec.variable_length and "head" not in s.meta
    assert c.spec.head == "last" and c.spec.shape == (5, 2) and c.spec.variable_length
    assert r.spec.head == "last" and not r.spec.variable_length and r.meta == {"format": "npz"}
    assert s.train.y[1, 3:].tolist() == [-100] * 3
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"bad\.npz: an \.npz dataset needs arrays"):
        load_dataset(str(tmp_path / "bad.npz"))
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"x\.npy: an \.npy array has no targets"):
        load_dataset(str(tmp_path / "x.npy"))


def _images(n=4, c=1, h=3, w=4):
    x = torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w)
    return Dataset(
        "img",
        Split(x, torch.zeros(n, dtype=torch.long)),
        Split(x[:2], torch.zeros(2, dtype=torch.long)),
        classes=["a"],
        num_outputs=1,
    )


def test_images_as_sequences_rows_pixels_permuted():
    ds = _images()
    rows = images_as_sequences(ds, "rows")
    assert rows.input_shape == (3, 4)
    torch.testing.assert_close(rows.train.x[0, 1], ds.train.x[0, 0, 1])  # step t = row t
    pix = images_as_sequences(ds, "pixels")
    assert pix.input_shape == (12, 1)
    torch.testing.assert_close(pix.train.x[0, :, 0], ds.train.x[0].flatten())
    perm = images_as_sequences(ds, "permuted", seed=5)
    perm2 = images_as_sequences(ds, "permuted", seed=9)
    torch.testing.assert_close(perm.train.x, perm2.train.x)  # one fixed permutation
    assert sorted(perm.train.x[0, :, 0].tolist()) == sorted(pix.train.x[0, :, 0].tolist())
    assert not torch.equal(perm.train.x, pix.train.x)
    rgb = images_as_sequences(_images(c=3), "rows")
    assert rgb.input_shape == (3, 12)  # W * C features per row
    with pytest.raises(DataError, match="not images"):
        images_as_sequences(rows, "rows")


@pytest.mark.parametrize("mode", ["rows", "pixels", "permuted"])
def test_images_as_sequences_spec_reads_new_images_as_training_did(mode):
    ds = _images(c=3)
    seq = images_as_sequences(ds, mode, seed=7)
    assert seq.spec == InputSpec(
        "sequence",
        seq.input_shape,
        image_shape=(3, 3, 4),
        sequence=mode,
        permutation_seed=PERMUTATION_SEED if mode == "permuted" else None,
    )
    torch.testing.assert_close(seq.spec.images(ds.test.x), seq.test.x)  # predict's path = training's
    assert InputSpec.from_dict(seq.spec.to_dict()) == seq.spec
    assert split_validation(seq, 0.5, seed=0).spec == seq.spec


def test_adding_problem_targets():
    x, y = synthetic.adding_problem(200, 30, np.random.default_rng(0))
    assert x.shape == (200, 30, 2) and y.shape == (200,)
    m = x[..., 1]
    assert torch.all(m.sum(1) == 2)
    assert torch.all(m[:, :15].sum(1) == 1) and torch.all(m[:, 15:].sum(1) == 1)  # one marker per half
    torch.testing.assert_close(y, (x[..., 0] * m).sum(1))
    big = synthetic.load("adding", length=10, n_train=20000, n_test=10, seed=0)
    assert float(((big.train.y - 1) ** 2).mean()) == pytest.approx(1 / 6, abs=0.01)  # the 0.167 baseline
    again = synthetic.load("adding", length=10, n_train=20000, n_test=10, seed=0)
    assert torch.equal(big.train.x, again.train.x)
    assert big.spec == InputSpec("sequence", (10, 2)) and big.meta["baseline_mse"] == pytest.approx(1 / 6)


def test_copy_task_targets():
    ds = synthetic.load("copy", length=7, n_train=50, n_test=5, seed=1)
    x, y = ds.train.x, ds.train.y
    assert x.shape == (50, 27) and ds.task == "sequence-classification"
    assert ds.spec == InputSpec("tokens", (27,), head="step") and "head" not in ds.meta
    assert torch.all((x[:, :10] >= 1) & (x[:, :10] <= 8))
    assert torch.all(x[:, 10 + 6] == 9) and int((x == 9).sum()) == 50  # delimiter after T-1 blanks
    assert torch.all(x[:, 10:16] == 0) and torch.all(x[:, 17:] == 0)
    assert torch.equal(y[:, -10:], x[:, :10]) and torch.all(y[:, :-10] == -100)


def test_text_windows_and_vocab(tmp_path):
    p = tmp_path / "book.txt"
    p.write_text("abcabcabd\n" * 30)
    ds = load_dataset(str(p), length=8)
    vocab = Vocabulary(ds.spec.vocab)
    assert ds.spec == InputSpec("tokens", (8,), head="step", vocab="\nabcd")
    assert ds.num_outputs == 5 and ds.task == "sequence-classification" and "vocab" not in ds.meta
    assert ds.input_shape == (8,) and ds.train.x.dtype == torch.int64
    torch.testing.assert_close(ds.train.x[0, 1:], ds.train.y[0, :-1])  # targets = inputs shifted
    assert vocab.decode(ds.train.x[0]) == "abcabcab" and vocab.decode(ds.train.y[0]) == "bcabcabd"
    with pytest.raises(DataError, match="too few"):
        load_dataset(str(p), length=1000)
    with pytest.raises(DataError, match="lacks"):
        vocab.encode("xyz", "prompt")
