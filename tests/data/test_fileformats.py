"""The format registry: one module per format, walked by the catalogue, ``predict RUN_DIR`` and
``predict --onnx``. A toy format registered from this test module is picked up by all three; the
``.npz`` format removed from the registry is gone from all; the registry and every format module
import no torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from datagen import save_png
from layerlab import api, fileformats
from layerlab.cli import main
from layerlab.config import RunConfig
from layerlab.data import load_dataset
from layerlab.errors import DataError

T = 10


# --- a toy format: sequences as JSON ------------------------------------------------------------
def _load(path: Path, **_options):
    from layerlab.data.formats import build_sequence_dataset

    d = json.loads(path.read_text())
    seqs = {p: [np.asarray(s, dtype=np.float64)[:, None] for s in d[f"x_{p}"]] for p in ("train", "test")}
    labels = {p: [str(v) for v in d[f"y_{p}"]] for p in ("train", "test")}
    return build_sequence_dataset(
        path.stem, (seqs["train"], labels["train"]), (seqs["test"], labels["test"]), source=str(path)
    )


def _read(path: Path, request: fileformats.Request) -> fileformats.Read:
    xs = [np.asarray(s, dtype=np.float64)[:, None] for s in json.loads(path.read_text())["x"]]
    return fileformats.Read("sequences", xs, fileformats.named(path, len(xs)))


TOY = fileformats.Format(
    "toyjson", (".toyjson",), describe=".toyjson", load=_load, read=_read, reads=lambda s: s.kind == "sequence"
)


@pytest.fixture
def toy():
    fileformats.register(TOY)
    yield TOY
    fileformats.unregister("toyjson")


def _waves(rng, y):
    t = np.linspace(0, 1, T)
    return (np.sin(2 * np.pi * (np.asarray(y)[:, None] + 1) * t) + 0.1 * rng.standard_normal((len(y), T))).tolist()


def test_a_format_registered_in_one_place_reaches_catalogue_and_both_predict_paths(toy, tmp_path, capsys):
    rng = np.random.default_rng(0)
    ytr, yte = [int(v) for v in rng.integers(0, 2, 24)], [0, 1, 0, 1]
    data = tmp_path / "waves.toyjson"
    data.write_text(
        json.dumps({"x_train": _waves(rng, ytr), "y_train": ytr, "x_test": _waves(rng, yte), "y_test": yte})
    )
    ds = load_dataset(str(data))  # the catalogue
    assert ds.spec.kind == "sequence" and ds.classes == ["0", "1"] and len(ds.train) == 24
    assert fileformats.for_path(data) is TOY and ".toyjson" in fileformats.dataset_suffixes()
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.model.name = "cnn"
    cfg.model.channels = "4"
    cfg.train.epochs = 1
    cfg.train.batch_size = 8
    run, _ = api.train(cfg, tmp_path / "run")
    inputs = tmp_path / "two.toyjson"
    inputs.write_text(json.dumps({"x": _waves(rng, [0, 1])}))
    assert main(["predict", str(run.path), str(inputs), "--json"]) == 0  # predict RUN_DIR
    torch_says = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in torch_says] == [f"{inputs}[0]", f"{inputs}[1]"]
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from layerlab.export import export_run

    onnx = export_run(run.path)["onnx"]
    assert main(["predict", "--onnx", str(onnx), str(inputs), "--json"]) == 0  # predict --onnx
    onnx_says = json.loads(capsys.readouterr().out)
    assert [r["index"] for r in onnx_says] == [r["index"] for r in torch_says]
    np.testing.assert_allclose([r["probability"] for r in onnx_says], [r["probability"] for r in torch_says], atol=1e-4)


def test_a_suffix_claimed_twice_is_refused(toy):
    with pytest.raises(DataError, match=r"format 'other': \.toyjson is already 'toyjson'"):
        fileformats.register(fileformats.Format("other", (".toyjson",)))


def test_npz_lives_in_one_module(tmp_path):
    """Without its registry entry (its module, fileformats/npz.py), an .npz is no dataset anywhere."""
    y = np.array([0, 1] * 4)
    np.savez(tmp_path / "s.npz", x_train=np.ones((8, 5)), y_train=y, x_test=np.ones((8, 5)), y_test=y)
    assert load_dataset(str(tmp_path / "s.npz")).spec.kind == "sequence"
    npz = fileformats.for_path(tmp_path / "s.npz")
    assert npz.name == "npz" and npz.load.__module__ == "layerlab.fileformats.npz"
    fileformats.unregister("npz")
    try:
        with pytest.raises(DataError, match="the file exists but is not a dataset layerlab reads"):
            load_dataset(str(tmp_path / "s.npz"))
        assert ".npz" not in fileformats.dataset_suffixes()
    finally:
        fileformats.register(npz)


BLOCK_TORCH = textwrap.dedent(
    """
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
            return None

    sys.meta_path.insert(0, NoTorch())
    from layerlab import fileformats
    from layerlab.inputspec import InputSpec

    names = sorted(f.name for f in fileformats.formats())
    image = InputSpec("image", (1, 4, 4), pixel_scale=1 / 255, image_shape=(1, 4, 4))
    seq = InputSpec("sequence", (3, 2), feature_mean=(0.0, 0.0), feature_std=(1.0, 1.0))
    read = fileformats.read_files([sys.argv[1], sys.argv[2]], image)
    assert len(image.samples(read)) == 2
    read = fileformats.read_files([sys.argv[3]], seq)
    assert seq.samples(read)[0].shape == (3, 2)
    assert "torch" not in sys.modules, "torch was imported"
    print(" ".join(names))
    """
)


def test_registry_and_every_format_import_no_torch(tmp_path):
    png = save_png(tmp_path / "a.png", np.zeros((4, 4)))
    np.save(tmp_path / "b.npy", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "c.csv").write_text("1,2\n3,4\n5,6\n")
    r = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH, str(png), str(tmp_path / "b.npy"), str(tmp_path / "c.csv")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cifar10", "csv", "idx", "image", "image-folder", "npy", "npz", "packed", "text", "ts"]


def test_a_directory_format_is_routed_by_rank(toy, tmp_path):
    """A directory format registered from here is tried in rank order, before the image folder."""
    rng = np.random.default_rng(1)
    d = tmp_path / "set"
    (d / "a").mkdir(parents=True)  # also an image folder's shape, which ranks last
    y = [0, 1] * 6
    (d / "data.toyjson").write_text(
        json.dumps({"x_train": _waves(rng, y), "y_train": y, "x_test": _waves(rng, y), "y_test": y})
    )
    fileformats.register(
        fileformats.Format("toydir", (), load=_load, directory=lambda p: next(iter(p.glob("*.toyjson")), None), rank=50)
    )
    try:
        assert fileformats.for_directory(d, before_names=False)[0].name == "toydir"
        assert load_dataset(str(d)).spec.kind == "sequence"
    finally:
        fileformats.unregister("toydir")
    assert fileformats.for_directory(d, before_names=False)[0].name == "image-folder"


def test_an_unknown_input_spec_field_is_named_on_one_line():
    """A key of a damaged record holding a line break: the sentence stays one line (found by
    tests/data/test_formats_hypothesis.py; before, the key was printed as it was)."""
    from layerlab.inputspec import InputSpec

    with pytest.raises(DataError) as e:
        InputSpec.from_dict({"kind": "image", "shape": [1, 4, 4], "a\nb": 1})
    assert "\n" not in str(e.value) and "'a\\nb'" in str(e.value)
