"""ONNX export of a run: the file, the metadata inside it, and onnxruntime agreeing with torch."""

import json
import sys

import numpy as np
import pytest
import torch

from datagen import make_idx_dir
from layerlab import api
from layerlab.config import RunConfig
from layerlab.errors import LayerlabError
from layerlab.models import create_model
from layerlab.rundir import RunDir

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'layerlab[onnx]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'layerlab[onnx]')")

from layerlab.export import _export, dynamic_axes, export_run  # noqa: E402


def _train(data, out, model="article-cnn", **model_options):
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.model.name = model
    for k, v in model_options.items():
        setattr(cfg.model, k, v)
    cfg.train.epochs = 1
    cfg.train.batch_size = 16
    run, _ = api.train(cfg, out)
    return run


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return _train(make_idx_dir(root / "data", n_train=64, n_test=24), root / "run")


@pytest.fixture(scope="module")
def sequence_data(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("seq") / "waves.npz"
    y_train, y_test = rng.integers(0, 3, 60), rng.integers(0, 3, 20)

    def waves(y):
        t = np.linspace(0, 1, 30)
        x = np.sin(2 * np.pi * (y[:, None] + 1) * t)[:, :, None] + 0.1 * rng.standard_normal((len(y), 30, 2))
        return x.astype(np.float32)

    np.savez(path, x_train=waves(y_train), y_train=y_train, x_test=waves(y_test), y_test=y_test)
    return path


def _run_onnx(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


def _metadata(path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_export_article_cnn_matches_torch(image_run, tmp_path):
    r = export_run(image_run.path, out=tmp_path / "cnn.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["cnn.onnx"]  # one self-contained file
    assert r["check"]["on"] == "test data" and r["check"]["samples"] == 16
    assert r["check"]["max_abs_diff"] < 1e-4
    run = RunDir(image_run.path)
    # everything a deployed model needs is in the file's metadata_props
    meta = _metadata(tmp_path / "cnn.onnx")
    assert json.loads(meta["input_spec"]) == run.spec.to_dict() == r["input_spec"]
    assert json.loads(meta["classes"]) == run.classes
    assert (meta["model"], meta["task"], meta["decode"], meta["weights"]) == (
        "article-cnn",
        "classification",
        "class",
        "last",
    )
    import layerlab

    assert meta["layerlab_version"] == layerlab.__version__ and meta["layerlab_format"] == "1"
    assert json.loads(meta["input"])["shape"] == ["batch", 1, 28, 28] == r["input"]["shape"]
    assert "x / 255" in meta["preprocess"] and json.loads(meta["check"])["max_abs_diff"] < 1e-4
    assert "permutation" not in meta
    # read back as predict --onnx reads it, with onnxruntime alone
    from layerlab.deploy import OnnxModel

    m = OnnxModel(tmp_path / "cnn.onnx").meta
    assert (m.spec.to_dict(), m.classes, m.task, m.decode) == (
        run.spec.to_dict(),
        run.classes,
        "classification",
        "class",
    )
    # any batch size, the same numbers as torch on the run's own test samples
    model = run.model()
    x = run.dataset().test.x[:7]
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(_run_onnx(tmp_path / "cnn.onnx", x), want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(_run_onnx(tmp_path / "cnn.onnx", x[:1]), want[:1], atol=1e-4, rtol=0)


def test_export_default_path_is_in_the_run(image_run):
    # a model.json an earlier layerlab wrote beside the file would go stale: it is removed
    old = image_run.path / "model.json"
    old.write_text(json.dumps({"format": "onnx", "file": "model.onnx"}))
    r = export_run(image_run.path, which="last", opset=18)
    assert r["onnx"] == str(image_run.path / "model.onnx") and r["opset"] == 18
    assert not old.exists()


def test_export_sequence_cnn_and_gru(sequence_data, tmp_path):
    for model in ("cnn", "gru"):
        run = _train(sequence_data, tmp_path / model, model=model, **({"channels": "8,M,8"} if model == "cnn" else {}))
        r = export_run(run.path)
        assert r["check"]["max_abs_diff"] < 1e-4
        assert r["input"]["shape"][0] == "batch" and r["input"]["shape"][2] == 2
        assert "standardised" in r["preprocess"]
        assert json.loads(_metadata(r["onnx"])["input_spec"])["feature_mean"] == r["input_spec"]["feature_mean"]
        torch_model = RunDir(run.path).model()
        if model == "gru":  # a recurrent model takes any length
            assert r["input"]["shape"][1] == "time"
            x = torch.randn(3, 45, 2)
            with torch.no_grad():
                np.testing.assert_allclose(_run_onnx(r["onnx"], x), torch_model(x).numpy(), atol=1e-4, rtol=0)
        else:  # a Flatten head is built for T = 30
            assert r["input"]["shape"][1] == 30


@pytest.mark.parametrize(
    "shape, other", [((30, 3), (52, 3)), ((1, 20, 20), (1, 33, 27)), ((2, 10, 12, 12), (2, 14, 11, 16))]
)
def test_global_pool_cnn_exports_with_dynamic_sizes(shape, other, tmp_path):
    torch.manual_seed(0)
    model = create_model(
        "cnn", shape, 4, channels="8,M,8", global_pool="avg", padding="same", batch_norm=True, residual=True
    ).eval()
    axes = dynamic_axes(model, len(shape) + 1)
    assert len(axes) == 1 + (1 if len(shape) == 2 else len(shape) - 1)
    _export(model, torch.randn(2, *shape), tmp_path / "m.onnx", 17, axes, "torchscript")
    for s in (shape, other):
        x = torch.randn(3, *s)
        with torch.no_grad():
            np.testing.assert_allclose(_run_onnx(tmp_path / "m.onnx", x), model(x).numpy(), atol=1e-4, rtol=0)


def test_missing_onnxruntime_is_one_sentence(image_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # find_spec then says: not installed
    with pytest.raises(LayerlabError, match=r"ONNX export needs onnxruntime, which is not installed; pip install"):
        export_run(image_run.path)


def test_bad_arguments(image_run, tmp_path):
    with pytest.raises(LayerlabError, match=r"\*\.onnx"):
        export_run(image_run.path, out=tmp_path / "model.bin")
    with pytest.raises(LayerlabError, match="does not exist"):
        export_run(image_run.path, out=tmp_path / "nowhere" / "m.onnx")
    with pytest.raises(LayerlabError, match="--opset must be between"):
        export_run(image_run.path, out=tmp_path / "m.onnx", opset=3)
    with pytest.raises(LayerlabError, match="no best"):
        export_run(image_run.path, out=tmp_path / "m.onnx", which="best")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_cli_export(image_run, tmp_path, capsys):
    from layerlab.cli import main

    assert main(["export", str(image_run.path), "--out", str(tmp_path / "m.onnx"), "--opset", "17"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "max abs diff" in out
    assert main(["export", str(image_run.path), "--out", str(tmp_path / "m.txt")]) == 2
    assert "*.onnx" in capsys.readouterr().err
