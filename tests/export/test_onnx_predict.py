"""``layerlab predict --onnx FILE``: the same predictions as ``layerlab predict RUN_DIR`` on the
same files (images, images read as permuted pixels, sequences of one and of several lengths),
without importing torch, and one sentence for what it cannot read."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from datagen import make_idx_dir, save_png
from layerlab import api
from layerlab.cli import main
from layerlab.config import RunConfig
from layerlab.errors import LayerlabError

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'layerlab[onnx]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'layerlab[onnx]')")

from layerlab import deploy
from layerlab.export import export_run

T, F = 30, 2


def _train(data, out, model="article-cnn", sequence=None, **model_options):
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.data.sequence = sequence
    cfg.model.name = model
    for k, v in model_options.items():
        setattr(cfg.model, k, v)
    cfg.train.epochs = 1
    cfg.train.batch_size = 16
    run, _ = api.train(cfg, out)
    return run.path


def _predict(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _same(capsys, run, onnx, files, top_k=3) -> list[dict]:
    """torch's and onnxruntime's predictions of ``files``: the same classes, labels and notes, the
    same probabilities to 1e-4, and the same printed lines (probabilities to 3 places)."""
    code, out, _ = _predict(capsys, run, *files, "--top-k", top_k, "--json")
    assert code == 0
    want = json.loads(out)
    code, out, _ = _predict(capsys, "--onnx", onnx, *files, "--top-k", top_k, "--json")
    assert code == 0
    got = json.loads(out)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        assert {k: v for k, v in g.items() if k not in ("probability", "top_k")} == {
            k: v for k, v in w.items() if k not in ("probability", "top_k")
        }
        if "top_k" in w:
            assert [t["index"] for t in g["top_k"]] == [t["index"] for t in w["top_k"]]
            np.testing.assert_allclose(
                [t["probability"] for t in g["top_k"]], [t["probability"] for t in w["top_k"]], atol=1e-4, rtol=0
            )
    _, text_torch, err_torch = _predict(capsys, run, *files)
    _, text_onnx, err_onnx = _predict(capsys, "--onnx", onnx, *files)
    assert text_onnx.splitlines()[0].split(":")[0] == text_torch.splitlines()[0].split(":")[0]
    assert err_onnx == err_torch  # the notes on what was converted
    return got


# --- images ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx-images")
    run = _train(make_idx_dir(root / "data", n_train=96, n_test=24), root / "run")
    return run, export_run(run)["onnx"]


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """Grey bar images as the run was trained on, one RGB and one of another size (converted and
    resized, with notes), as PNG files."""
    from datagen import bar_images

    root = tmp_path_factory.mktemp("pngs")
    x, _ = bar_images(6, np.random.default_rng(1))
    files = [save_png(root / f"bar{i}.png", x[i]) for i in range(4)]
    files.append(save_png(root / "rgb.png", np.repeat(x[4][..., None], 3, axis=2)))
    files.append(save_png(root / "big.png", np.kron(x[5], np.ones((2, 1)))))  # 56x28: resized
    return files


def test_images_agree_with_torch(image_run, pngs, capsys):
    run, onnx = image_run
    got = _same(capsys, run, onnx, pngs, top_k=4)
    assert [r["kind"] for r in got] == ["class"] * 6 and len(got[0]["top_k"]) == 4
    assert any("resized" in n for n in got[5]["notes"]) and any("RGB" in n for n in got[4]["notes"])


def test_printed_lines_are_torch_predicts(image_run, pngs, capsys):
    run, onnx = image_run
    _, want, _ = _predict(capsys, run, *pngs[:3])
    _, got, _ = _predict(capsys, "--onnx", onnx, *pngs[:3])
    assert got == want  # at 3 decimals the two agree to the digit on these files


def test_permuted_pixels_read_as_the_run_read_them(tmp_path_factory, pngs, capsys):
    root = tmp_path_factory.mktemp("onnx-permuted")
    run = _train(make_idx_dir(root / "data", n_train=48, n_test=16), root / "run", "lstm", "permuted", hidden=16)
    r = export_run(run)
    assert len(r["permutation"]) == 28 * 28 and sorted(r["permutation"]) == list(range(28 * 28))
    _same(capsys, run, r["onnx"], pngs[:3])


def test_global_pool_cnn_reads_each_image_at_its_own_size(pngs, tmp_path, capsys):
    data = make_idx_dir(tmp_path / "data", n_train=48, n_test=16)
    run = _train(data, tmp_path / "run", "cnn", channels="8,M,8", global_pool="avg")
    r = export_run(run)
    assert r["input"]["shape"] == ["batch", 1, "size2", "size3"]
    # 28x28, RGB 28x28 and 56x28: a model that takes any size reads each as it is, as torch's predict
    _same(capsys, run, r["onnx"], pngs[3:])


# --- text -----------------------------------------------------------------------------------------
def test_character_model_predicts_the_next_character(tmp_path, capsys):
    book = tmp_path / "book.txt"
    book.write_text("the cat sat on the mat. " * 40)
    cfg = RunConfig()
    cfg.data.name, cfg.data.length = str(book), 16
    cfg.model.name, cfg.model.hidden = "lstm", 16
    cfg.train.epochs, cfg.train.batch_size = 1, 16
    run, _ = api.train(cfg, tmp_path / "run")
    r = export_run(run.path)
    assert r["decode"] == "next"
    prompts = [tmp_path / "a.txt", tmp_path / "b.txt"]
    prompts[0].write_text("the ca")
    prompts[1].write_text("on the m")  # two lengths
    got = _same(capsys, run.path, r["onnx"], prompts)
    assert [g["kind"] for g in got] == ["next", "next"]


# --- sequences ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("onnx-waves")

    def make(y, length=T):
        t = np.linspace(0, 1, length)
        x = np.sin(2 * np.pi * (y[:, None] + 1) * t)[:, :, None] + 0.1 * rng.standard_normal((len(y), length, F))
        return x.astype(np.float32)

    y_train, y_test = rng.integers(0, 3, 48), rng.integers(0, 3, 12)
    np.savez(root / "waves.npz", x_train=make(y_train), y_train=y_train, x_test=make(y_test), y_test=y_test)
    np.save(root / "four.npy", make(np.array([0, 1, 2, 1])))  # (4, T, F): four sequences
    np.savetxt(root / "one.csv", make(np.array([2]))[0], delimiter=",")  # a step per row, a feature per column
    np.savetxt(root / "short.csv", make(np.array([0]), 21)[0], delimiter=",")  # 21 steps
    return root


def test_sequence_cnn_agrees_with_torch(waves, tmp_path, capsys):
    run = _train(waves / "waves.npz", tmp_path / "cnn", "cnn", channels="8,M,8")
    onnx = export_run(run)["onnx"]
    got = _same(capsys, run, onnx, [waves / "four.npy", waves / "one.csv"])
    assert [r["file"] for r in got] == [f"{waves / 'four.npy'}[{i}]" for i in range(4)] + [str(waves / "one.csv")]
    # a Flatten head is built for 30 steps: torch pads and masks a shorter sequence, the ONNX model cannot
    code, _, err = _predict(capsys, "--onnx", onnx, waves / "short.csv")
    assert code == 2 and "the ONNX model takes 30x2" in err and len(err.strip().splitlines()) == 1


def test_recurrent_model_reads_each_length_as_torch_does(waves, tmp_path, capsys):
    run = _train(waves / "waves.npz", tmp_path / "gru", "gru", hidden=8)
    onnx = export_run(run)["onnx"]
    # 30, 30, 30, 30, 21 and 30 steps: torch pads and packs them, onnxruntime runs each length alone
    _same(capsys, run, onnx, [waves / "four.npy", waves / "short.csv", waves / "one.csv"])


# --- torch is never imported ----------------------------------------------------------------------
BLOCK_TORCH = textwrap.dedent(
    """
    import json, sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
            return None

    sys.meta_path.insert(0, NoTorch())
    from layerlab.cli import main

    code = main(json.loads(sys.argv[1]))
    assert "torch" not in sys.modules, "torch was imported"
    sys.exit(code)
    """
)


def test_predict_onnx_never_imports_torch(image_run, pngs, capsys):
    run, onnx = image_run
    argv = ["predict", "--onnx", str(onnx), *map(str, pngs), "--json"]
    r = subprocess.run([sys.executable, "-c", BLOCK_TORCH, json.dumps(argv)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    _, out, _ = _predict(capsys, run, *pngs, "--json")
    want = json.loads(out)
    got = json.loads(r.stdout)
    assert [g["index"] for g in got] == [w["index"] for w in want]
    np.testing.assert_allclose([g["probability"] for g in got], [w["probability"] for w in want], atol=1e-4)


# --- one sentence for what it cannot read ---------------------------------------------------------
def _one_sentence(code: int, err: str, message: str) -> None:
    assert code == 2 and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_onnxruntime_is_one_sentence(image_run, pngs, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    code, _, err = _predict(capsys, "--onnx", image_run[1], pngs[0])
    _one_sentence(code, err, "predict --onnx needs onnxruntime, which is not installed; pip install onnxruntime")


def test_files_that_are_not_layerlab_onnx_models(image_run, pngs, tmp_path, capsys):
    import onnx

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all" * 10)
    code, _, err = _predict(capsys, "--onnx", junk, pngs[0])
    _one_sentence(code, err, "not an ONNX model onnxruntime can load")
    bare = tmp_path / "bare.onnx"  # an ONNX model, but not one layerlab wrote: no metadata
    m = onnx.load(str(image_run[1]))
    del m.metadata_props[:]
    onnx.save(m, str(bare))
    code, _, err = _predict(capsys, "--onnx", bare, pngs[0])
    _one_sentence(code, err, "an ONNX model without layerlab's metadata")
    code, _, err = _predict(capsys, "--onnx", tmp_path / "missing.onnx", pngs[0])
    _one_sentence(code, err, "no such file")


def test_bad_arguments_with_onnx(image_run, pngs, waves, capsys):
    run, onnx = image_run
    code, _, err = _predict(capsys, "--onnx", onnx, pngs[0], "--weights", "best")
    _one_sentence(code, err, "--weights apply to a run directory")
    for files, message in (  # sequences for an image model, alone and with an image
        ([waves / "four.npy"], str(waves / "four.npy")),
        ([pngs[0], waves / "one.csv"], "give one kind of input per call"),
    ):
        code, _, err = _predict(capsys, "--onnx", onnx, *files)
        _one_sentence(code, err, message)
        assert _predict(capsys, run, *files)[2] == err  # the sentence torch's predict says
    code, _, err = _predict(capsys, "--onnx", onnx, pngs[0], "--top-k", 0)
    _one_sentence(code, err, "--top-k must be at least 1")
    code, _, err = _predict(capsys, run)
    _one_sentence(code, err, "predict needs files to predict on")
    code, _, err = _predict(capsys, onnx, pngs[0])
    _one_sentence(code, err, f"{onnx} is an ONNX file, not a run directory: layerlab predict --onnx")
    with pytest.raises(LayerlabError, match="without layerlab's metadata"):
        deploy.read_metadata({"producer": "someone else"}, "m.onnx")


# --- integer pixels: one rule on both paths -------------------------------------------------------
@pytest.fixture(scope="module")
def pixel_arrays(tmp_path_factory):
    """The same four images as ``.npy`` of several types: uint8 as trained, and uint16, int16 and
    float32 holding the same relative values, and int64 / uint32 which no rule reads."""
    from datagen import bar_images

    root = tmp_path_factory.mktemp("pixel-arrays")
    x, _ = bar_images(4, np.random.default_rng(3))
    out = {}
    for name, a in (
        ("uint8", x),
        ("uint16", x.astype(np.uint16) * 257),
        ("int16", np.round(x.astype(np.float64) * 32767 / 255).astype(np.int16)),
        ("float32", x.astype(np.float32) / 255),
        ("int64", x.astype(np.int64)),
        ("uint32", x.astype(np.uint32)),
    ):
        np.save(root / f"{name}.npy", a)
        out[name] = root / f"{name}.npy"
    return out


@pytest.mark.parametrize("dtype", ["uint16", "int16"])
def test_integer_npy_pixels_scaled_by_their_type_on_both_paths(image_run, pixel_arrays, dtype, capsys):
    run, onnx = image_run
    want = _same(capsys, run, onnx, [pixel_arrays["uint8"]])
    got = _same(capsys, run, onnx, [pixel_arrays[dtype]])  # before: taken as 0..65535, confidently wrong
    assert [g["index"] for g in got] == [w["index"] for w in want]
    np.testing.assert_allclose([g["probability"] for g in got], [w["probability"] for w in want], atol=2e-3)
    top = np.iinfo(dtype).max
    assert all(g["notes"] == [f"{dtype} pixels divided by {top}"] for g in got)
    assert all(w["notes"] == [] for w in want)  # uint8, as the run was trained: nothing to say


@pytest.mark.parametrize("dtype", ["int64", "uint32"])
def test_wide_integer_npy_pixels_refused_on_both_paths(image_run, pixel_arrays, dtype, capsys):
    run, onnx = image_run
    code, _, err = _predict(capsys, "--onnx", onnx, pixel_arrays[dtype])
    _one_sentence(code, err, f"holds {dtype} values; integer pixels are divided by the largest value")
    assert _predict(capsys, run, pixel_arrays[dtype])[2] == err


def test_float_npy_pixels_taken_as_they_are(image_run, pixel_arrays, capsys):
    run, onnx = image_run
    want = _same(capsys, run, onnx, [pixel_arrays["uint8"]])
    got = _same(capsys, run, onnx, [pixel_arrays["float32"]])
    assert [g["index"] for g in got] == [w["index"] for w in want] and all(g["notes"] == [] for g in got)
