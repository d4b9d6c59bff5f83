"""Values predict cannot honestly answer for, on both predict paths alike: an input beyond float32
once standardised, non-finite model outputs, cells that are not plain numbers; and strict JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layerlab import api
from layerlab.cli import main
from layerlab.config import RunConfig
from layerlab.decoding import decode
from layerlab.errors import DataError
from layerlab.readers import cell_value, standardise

T, F = 12, 2


def _predict(capsys, *argv):
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _one_sentence(code, out, err, message):
    assert code == 2 and message in err, err
    assert out == "" and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.fixture(scope="module")
def seq_run(tmp_path_factory):
    """A small sequence CNN on two features (spread about 0.7 each), exported when onnx is here."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("values")

    def make(y):
        t = np.linspace(0, 1, T)
        return (
            np.sin(2 * np.pi * (y[:, None] + 1) * t)[:, :, None] + 0.1 * rng.standard_normal((len(y), T, F))
        ).astype(np.float32)

    y_train, y_test = rng.integers(0, 2, 32), rng.integers(0, 2, 8)
    np.savez(root / "w.npz", x_train=make(y_train), y_train=y_train, x_test=make(y_test), y_test=y_test)
    cfg = RunConfig()
    cfg.data.name = str(root / "w.npz")
    cfg.model.name = "cnn"
    cfg.model.channels = "4"
    cfg.train.epochs = 1
    cfg.train.batch_size = 16
    run, _ = api.train(cfg, root / "run")
    onnx = None
    try:
        import onnx as _onnx  # noqa: F401
        import onnxruntime  # noqa: F401

        from layerlab.export import export_run

        onnx = export_run(run.path)["onnx"]
    except ImportError:
        pass
    good = make(np.array([1]))[0].astype(np.float64)
    return root, run.path, onnx, good


def _paths(seq_run):
    _, run, onnx, _ = seq_run
    return [[run]] + ([["--onnx", onnx]] if onnx else [])


def _csv(path, rows: list[list[str]]) -> str:
    path.write_text("".join(",".join(r) + "\n" for r in rows))
    return str(path)


def test_value_beyond_float32_once_standardised_is_refused_on_both_paths(seq_run, capsys):
    root, _, _, good = seq_run
    rows = [[repr(float(v)) for v in r] for r in good]
    rows[3][1] = "3e38"  # finite as read, beyond float32 once divided by a spread below 1
    f = _csv(root / "huge.csv", rows)
    errs = []
    for path in _paths(seq_run):
        for extra in ([], ["--json"]):  # before: "8 (nan)" and NaN in the JSON, exit 0
            code, out, err = _predict(capsys, *path, f, *extra)
            _one_sentence(code, out, err, "the value 3e+38 at step 4, feature 2 is beyond float32's range")
            errs.append(err)
    assert len(set(errs)) == 1  # the same sentence, torch or onnxruntime


def test_standardise_checks_after_the_transform():
    s = np.array([[1.0, np.nan], [2.0, 3.0]])
    out, missing = standardise([s], [0.0, 0.0], [1.0, 1.0])
    assert missing == 1 and out[0].tolist() == [[1.0, 0.0], [2.0, 3.0]]
    with pytest.raises(DataError, match=r"x.csv: the value 1e\+38 at step 2, feature 1 is beyond"):
        standardise([np.array([[0.0], [1e38]])], [0.0], [1e-3], ["x.csv"])


@pytest.mark.parametrize(
    "out, task",
    [(np.array([0.1, np.nan]), "classification"), (np.array([np.inf]), "regression"), (np.full((3, 2), np.nan), "x")],
)
def test_non_finite_outputs_are_refused_not_decoded(out, task):
    with pytest.raises(DataError, match="the model's outputs for this input are not finite"):
        decode(out, 3, task=task, classes=["a", "b"])


def test_predictions_are_strict_json(seq_run, tmp_path, capsys):
    _, _, _, good = seq_run
    f = _csv(tmp_path / "ok.csv", [[repr(float(v)) for v in r] for r in good])

    def no_constants(name):
        raise AssertionError(f"{name} in the JSON")

    for path in _paths(seq_run):
        code, out, _ = _predict(capsys, *path, f, "--json")
        assert code == 0 and json.loads(out, parse_constant=no_constants)[0]["kind"] == "class"


@pytest.mark.parametrize("cell", ["0x10", "1_000", "'1.5'", "1.5.2", "ten"])
def test_cells_that_are_not_plain_numbers_are_refused_on_both_paths(seq_run, cell, capsys):
    """Before, a hexadecimal or otherwise unreadable cell of a multi-feature file was a missing
    value, filled with the training mean and predicted on with only a note."""
    root, _, _, good = seq_run
    rows = [[repr(float(v)) for v in r] for r in good]
    rows[2][0] = cell
    f = _csv(root / "odd.csv", rows)
    for path in _paths(seq_run):
        code, out, err = _predict(capsys, *path, f)
        _one_sentence(code, out, err, f"row 3: a value that is not a number ({cell!r})")


def test_quoted_numbers_are_numbers_on_both_paths(seq_run, capsys):
    """CSV quoting is only quoting: ``"1.5"`` is 1.5 (before: a missing value on the --onnx path
    and for several features)."""
    root, _, _, good = seq_run
    plain = _csv(root / "plain.csv", [[repr(float(v)) for v in r] for r in good])
    quoted = _csv(root / "quoted.csv", [[f'"{float(v)!r}"' for v in r] for r in good])
    for path in _paths(seq_run):
        want = _predict(capsys, *path, plain, "--json")
        got = _predict(capsys, *path, quoted, "--json")
        assert got[0] == 0 and got[2] == "" and json.loads(got[1])[0]["top_k"] == json.loads(want[1])[0]["top_k"]


def test_training_files_read_cells_by_the_same_rule(tmp_path):
    from layerlab.data import load_dataset

    rows = [["0", "1.0", "2.0", "3.0"], ["1", "3.0", "2.0", "1.0"]]
    _csv(tmp_path / "A_TEST.csv", rows)
    _csv(tmp_path / "A_TRAIN.csv", [["1", '"0x10"', "2", "3"], *rows])  # before: skipped as a header
    with pytest.raises(DataError, match=r"A_TRAIN.csv, row 1: a value that is not a number \('0x10'\)"):
        load_dataset(str(tmp_path / "A_TRAIN.csv"))
    _csv(tmp_path / "A_TRAIN.csv", [["label", "t1", "t2", "t3"], ["1", '"1.5"', "2", "3"], *rows])  # a header
    ds = load_dataset(str(tmp_path / "A_TRAIN.csv"))
    assert len(ds.train) == 3


def test_cell_value():
    assert np.isnan(cell_value(" ? ")) and np.isnan(cell_value("")) and np.isnan(cell_value("NaN"))
    assert cell_value(" -2.5e3 ") == -2500.0 and cell_value(".5") == 0.5 and cell_value("7.") == 7.0
    for bad in ("0x1A", "1_0", "1e", "--1", "1,5", "٣"):
        with pytest.raises(ValueError):
            cell_value(bad)
