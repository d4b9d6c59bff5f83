"""layerlab.fit with data handed over in Python: a torch Dataset, a DataLoader, an iterable of
(x, y) batches; the runs they leave say what the command line can re-read, and do what they say."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import layerlab
from datagen import bar_images
from layerlab.data.python import TorchDatasetSource
from layerlab.errors import DataError
from layerlab.rundir import RunDir


class Bars(torch.utils.data.Dataset):
    """uint8 images (H, W) with integer labels, read one at a time (counted)."""

    def __init__(self, n=40, seed=0, with_targets=False):
        self.x, self.y = bar_images(n, np.random.default_rng(seed), classes=4, cover=True)
        self.reads = 0
        if with_targets:
            self.targets = torch.from_numpy(self.y.astype(np.int64))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.reads += 1
        return torch.from_numpy(self.x[i]), int(self.y[i])


def _arrays_history(tmp_path, **kw):
    ds = Bars()
    return layerlab.fit("article-cnn", ds.x, ds.y, epochs=1, batch_size=8, verbose=0, threads=1, **kw)


def test_a_torch_dataset_trains_as_its_arrays_do(tmp_path):
    ds = Bars(with_targets=True)
    h = layerlab.fit("article-cnn", ds, epochs=1, batch_size=8, verbose=0, threads=1)
    ref = _arrays_history(tmp_path)
    assert h.history["loss"] == pytest.approx(ref.history["loss"], abs=1e-6)
    assert h.classes == ref.classes and tuple(h.spec.shape) == (1, 28, 28)


def test_a_dataloader_is_read_through_its_dataset_in_the_runs_order():
    ds = Bars()
    loader = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True)
    h = layerlab.fit("article-cnn", loader, epochs=1, batch_size=8, verbose=0, threads=1)
    ref = _arrays_history(None)
    assert h.history["loss"] == pytest.approx(ref.history["loss"], abs=1e-6)


def test_an_iterable_of_batches_is_read_once_and_kept_in_the_run(tmp_path):
    ds = Bars()
    batches = ((ds.x[i : i + 10], ds.y[i : i + 10]) for i in range(0, 40, 10))
    h = layerlab.fit("article-cnn", batches, epochs=1, batch_size=8, verbose=0, threads=1, run_dir=tmp_path / "r")
    assert h.run.info()["dataset"]["name"] == "arrays"  # arrays.npz in the run: the CLI re-reads it
    r = subprocess.run(
        [sys.executable, "-m", "layerlab", "evaluate", str(tmp_path / "r"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr


def test_a_dataset_run_says_what_the_cli_can_reread_and_it_does(tmp_path):
    ds = Bars()
    layerlab.fit("article-cnn", ds, epochs=1, batch_size=8, verbose=0, threads=1, run_dir=tmp_path / "r")
    note = RunDir(tmp_path / "r").info()["dataset"]["data_note"]
    assert "keeps no copy" in note and "cannot resume" in note
    r = subprocess.run(
        [sys.executable, "-m", "layerlab", "evaluate", str(tmp_path / "r")], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "given in Python" in r.stderr and "Traceback" not in r.stderr
    np.save(tmp_path / "one.npy", ds.x[:1])
    r = subprocess.run(
        [sys.executable, "-m", "layerlab", "predict", str(tmp_path / "r"), str(tmp_path / "one.npy"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 1


def test_samples_are_read_a_batch_at_a_time_by_workers():
    ds = Bars(with_targets=True)
    h = layerlab.fit("article-cnn", ds, epochs=1, batch_size=8, eval_batch_size=8, verbose=0, threads=1, workers=2)
    assert ds.reads == 1  # the first sample, for its shape: the workers read the batches in their own copies
    assert len(h.history["loss"]) == 1


def test_dict_samples_and_validation_split():
    class Dicts(Bars):
        def __getitem__(self, i):
            return {"image": self.x[i], "label": int(self.y[i])}

    h = layerlab.fit("article-cnn", Dicts(), validation_split=0.25, epochs=1, batch_size=8, verbose=0, threads=1)
    assert "val_loss" in h.history


def test_a_dataset_with_y_or_arrays_without_it_is_one_sentence():
    with pytest.raises(DataError, match="carries its targets"):
        layerlab.fit("article-cnn", Bars(), np.zeros(40), epochs=1, verbose=0)
    with pytest.raises(DataError, match="needs y"):
        layerlab.fit("article-cnn", np.zeros((4, 28, 28), np.uint8), epochs=1, verbose=0)


def test_fit_takes_augmentation_and_records_it(tmp_path):
    ds = Bars()
    h = layerlab.fit(
        "article-cnn",
        ds.x,
        ds.y,
        epochs=1,
        batch_size=8,
        verbose=0,
        threads=1,
        run_dir=tmp_path / "r",
        augment={"crop": 2, "flip": True},
    )
    assert RunDir(tmp_path / "r").config().data.augment == "crop=2,flip=0.5"
    assert h.run.info()["augment"]["ops"] == {"crop": 2.0, "flip": 0.5}
    assert h.history["loss"] != _arrays_history(None).history["loss"]


def test_the_source_reads_what_the_dataset_holds():
    ds = Bars()
    h = layerlab.fit("article-cnn", ds, epochs=1, batch_size=8, verbose=0, threads=1)
    src = TorchDatasetSource(ds, torch.zeros(40, dtype=torch.long), h.spec, workers=0)
    x, _ = src.read(np.array([3, 0]))
    assert torch.equal(x, torch.from_numpy(ds.x[[3, 0]]).float()[:, None] / 255)


def test_a_memory_mapped_array_is_read_a_batch_at_a_time(tmp_path):
    """np.load(mmap_mode="r") images train as the same arrays in memory do, without being loaded."""
    ds = Bars()
    np.save(tmp_path / "x.npy", ds.x[:, None])  # (N, 1, 28, 28) uint8
    x = np.load(tmp_path / "x.npy", mmap_mode="r")
    h = layerlab.fit("article-cnn", x, ds.y, epochs=1, batch_size=8, verbose=0, threads=1, run_dir=tmp_path / "r")
    from layerlab.data.sources import ArraySource

    ref = _arrays_history(None)
    assert h.history["loss"] == ref.history["loss"]  # the same bits: uint8 divided by 255 either way
    assert "memory-mapped" in RunDir(tmp_path / "r").info()["dataset"]["data_note"]
    assert isinstance(ArraySource.from_memmap(x, torch.zeros(40)), ArraySource)


def test_a_dataloader_run_says_why_the_cli_cannot_evaluate_it_and_python_can(tmp_path):
    ds = Bars(with_targets=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True)
    h = layerlab.fit("article-cnn", loader, epochs=1, batch_size=8, verbose=0, threads=1, run_dir=tmp_path / "r")
    note = RunDir(tmp_path / "r").info()["dataset"]["data_note"]
    assert "DataLoader" in note and "keeps no copy" in note
    r = subprocess.run(
        [sys.executable, "-m", "layerlab", "evaluate", str(tmp_path / "r")], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "given in Python" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1  # one sentence
    # evaluate and predict take the loader (and the Dataset) themselves, as its arrays
    a = layerlab.evaluate(h, loader)
    b = layerlab.evaluate(h, ds.x, ds.y)
    assert a["n"] == 40 and a["accuracy"] == b["accuracy"] and a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    assert layerlab.evaluate(str(tmp_path / "r"), ds)["accuracy"] == b["accuracy"]
    np.testing.assert_allclose(layerlab.predict(h, ds), layerlab.predict(h, ds.x), atol=1e-6)
