import pickle

import numpy as np
import pytest
import torch

from datagen import make_idx_dir, save_png
from layerlab.data import iterate_batches, load_dataset, split_validation
from layerlab.data.catalog import availability
from layerlab.data.formats.cifar import load_cifar10_dir
from layerlab.data.formats.folder import read_image
from layerlab.errors import DataError


def test_named_set_found_in_data_dir_first(tmp_path, monkeypatch):
    make_idx_dir(tmp_path / "given" / "fashion-mnist", n_train=20, n_test=10)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path / "given")
    assert ds.name == "fashion-mnist" and len(ds.train) == 20
    assert ds.classes[0] == "T-shirt/top" and ds.source.endswith("fashion-mnist")


def test_named_set_from_environment_then_cache(tmp_path, monkeypatch):
    make_idx_dir(tmp_path / "env", n_train=12, n_test=10)
    make_idx_dir(tmp_path / "cache" / "mnist", n_train=14, n_test=10)
    monkeypatch.setenv("LAYERLAB_CACHE_DIR", str(tmp_path / "cache"))
    assert len(load_dataset("mnist").train) == 14
    monkeypatch.setenv("LAYERLAB_DATA_DIR", str(tmp_path / "env"))
    assert len(load_dataset("mnist").train) == 12


def test_offline_and_missing_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLAB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError) as e:
        load_dataset("kmnist", data_dir=tmp_path / "nowhere")
    msg = str(e.value)
    assert "dataset 'kmnist' not found" in msg
    for place in (str(tmp_path / "nowhere"), str(tmp_path / "cache" / "kmnist"), "/usr/share/datasets/kmnist"):
        assert place in msg
    assert "downloading is switched off" in msg and "--data-dir" in msg and "\n" not in msg


def test_unknown_dataset_name():
    with pytest.raises(DataError, match="unknown dataset 'imagenet-22k'"):
        load_dataset("imagenet-22k")


def test_availability_reports_where(tmp_path):
    make_idx_dir(tmp_path / "mnist", n_train=10, n_test=10)
    rows = {r["name"]: r for r in availability(tmp_path)}
    assert rows["mnist"]["available"] and rows["mnist"]["path"] == str(tmp_path / "mnist")
    assert not rows["kmnist"]["available"] and rows["kmnist"]["download"].startswith("http")


def _cifar_batch(n, rng):
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}


def test_cifar10_python_batches(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for i in range(1, 6):
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(_cifar_batch(4, rng)))
    (d / "test_batch").write_bytes(pickle.dumps(_cifar_batch(3, rng)))
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a%d" % i for i in range(10)]}))
    ds = load_dataset(str(tmp_path))
    assert ds.train.x.shape == (20, 3, 32, 32) and ds.test.x.shape == (3, 3, 32, 32)
    assert ds.classes[3] == "a3"


def test_cifar_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    d = tmp_path / "c"
    d.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (d / name).write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(DataError, match="not a CIFAR-10 python batch"):
        load_cifar10_dir(d)


def test_image_folder_with_split(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        for i in range(5):
            save_png(tmp_path / "pets" / cls / f"{i}.png", rng.integers(0, 256, (12, 10, 3)))
    ds = load_dataset(str(tmp_path / "pets"))
    assert ds.classes == ["cat", "dog"] and ds.input_shape == (3, 12, 10)
    assert len(ds.train) == 8 and len(ds.test) == 2
    assert sorted(ds.test.y.tolist()) == [0, 1]  # stratified


def test_image_folder_without_classes(tmp_path):
    (tmp_path / "flat").mkdir()
    save_png(tmp_path / "flat" / "a.png", np.zeros((4, 4)))
    with pytest.raises(DataError, match="one subfolder per class"):
        load_dataset(str(tmp_path / "flat"))


def test_read_image_converts_and_notes(tmp_path):
    p = save_png(tmp_path / "rgb.png", np.full((40, 30, 3), 128))
    x, notes = read_image(p, channels=1, size=(28, 28))
    assert x.shape == (1, 28, 28)
    assert any("RGB to L" in n for n in notes) and any("resized from 30x40 to 28x28" in n for n in notes)


def test_read_image_rejects_non_images(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("not really a png")
    with pytest.raises(DataError, match=r"notes\.png: not an image"):
        read_image(p)


def test_batches_are_index_slices_and_cover_everything(idx_dir):
    from layerlab.data import Split

    ds = load_dataset(str(idx_dir))
    n = len(ds.train)
    assert n % 32 == 12  # 300 samples: 9 full batches and a last one of 12
    # each sample's target is its own index, so the batches show which samples they hold
    indexed = Split(ds.train.x, torch.arange(n))
    for shuffle in (False, True):
        batches = list(iterate_batches(indexed, 32, shuffle=shuffle, generator=torch.Generator().manual_seed(1)))
        assert [len(b) for b in batches] == [32] * 9 + [12]
        seen = torch.cat([b.y for b in batches])
        assert sorted(seen.tolist()) == list(range(n))  # every index exactly once
        assert all(torch.equal(b.x, ds.train.x[b.y]) for b in batches)  # inputs travel with their index
        if not shuffle:
            assert seen.tolist() == list(range(n))  # unshuffled: consecutive slices, in order
        else:
            assert seen.tolist() != list(range(n))


def test_validation_split_keeps_test_unseen(idx_dir):
    ds = load_dataset(str(idx_dir))
    v = split_validation(ds, 0.2, seed=0)
    assert len(v.train) + len(v.test) == len(ds.train)
    with pytest.raises(DataError):
        split_validation(ds, 1.5, seed=0)


def test_image_loaders_set_the_image_spec(tmp_path, idx_dir):
    from layerlab.data.transforms import PIXEL_SCALE, InputSpec

    idx = load_dataset(str(idx_dir))
    assert idx.spec == InputSpec("image", (1, 28, 28), pixel_scale=PIXEL_SCALE, image_shape=(1, 28, 28))
    assert idx.meta == {} and split_validation(idx, 0.2, seed=0).spec == idx.spec
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        for i in range(3):
            save_png(tmp_path / "pets" / cls / f"{i}.png", rng.integers(0, 256, (6, 5, 3)))
    pets = load_dataset(str(tmp_path / "pets"))
    assert pets.spec == InputSpec("image", (3, 6, 5), pixel_scale=PIXEL_SCALE, image_shape=(3, 6, 5))
    d = tmp_path / "cifar"
    d.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (d / name).write_bytes(pickle.dumps(_cifar_batch(2, rng)))
    assert load_dataset(str(d)).spec == InputSpec(
        "image", (3, 32, 32), pixel_scale=PIXEL_SCALE, image_shape=(3, 32, 32)
    )


def test_a_broken_loader_module_fails_loudly(monkeypatch):
    """A module of the data package that cannot be imported is an ImportError, not a dataset that
    silently disappears ("unknown dataset")."""
    import sys

    import layerlab.data as data

    monkeypatch.delattr(data, "catalog", raising=False)
    monkeypatch.setitem(sys.modules, "layerlab.data.catalog", None)
    with pytest.raises(ImportError):
        load_dataset("adding")
    with pytest.raises(ImportError):
        data.known_datasets()
