"""``inspect errors`` names the file (or the row of a file) each wrong test sample came from, beside
its index, when the data has files: an image folder, one CSV with a label column, UCR-style CSV pairs
and ``.ts`` files; the names follow the samples through every shuffle and subset."""

from __future__ import annotations

import csv

import numpy as np
import torch

from datagen import save_png
from layerlab.cli import main
from layerlab.data import Split, load_dataset


def _rows(path):
    return list(csv.DictReader(open(path, encoding="utf-8")))


def _image_folder(root, n=20, seed=0):
    """Two classes told apart by brightness, but each holding a few images of the other's look, so a
    trained model makes mistakes; the file name says which look it has."""
    rng = np.random.default_rng(seed)
    for k, cls in enumerate(["dark", "light"]):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            look = k if i >= 6 else 1 - k
            save_png(root / cls / f"{cls}_{i:02d}_looks_{look}.png", rng.integers(0, 40, (8, 8)) + 200 * look)
    return root


def test_split_names_follow_subsets_and_masks():
    s = Split(torch.arange(5.0), torch.arange(5), names=list("abcde"))
    assert s.subset(torch.tensor([4, 0])).names == ["e", "a"]
    assert s.subset(torch.tensor([True, False, True, False, False])).names == ["a", "c"]
    assert Split(torch.arange(2.0), torch.arange(2)).subset(torch.tensor([1])).names is None


def test_an_image_folder_keeps_each_samples_file_through_its_shuffled_split(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    ds = load_dataset(str(root), seed=3)
    for split in (ds.train, ds.test):
        assert len(split.names) == len(split)
        for name, x, y in zip(split.names, split.x, split.y, strict=True):
            cls = ds.classes[int(y)]
            assert f"/{cls}/" in name  # its label is its folder
            look = int(name.split("_looks_")[1][0])
            assert (float(x.mean()) > 0.5) == bool(look)  # and its pixels are that file's
    assert sorted(ds.train.names + ds.test.names) == sorted(str(p) for p in root.glob("*/*.png"))


def test_mistakes_csv_names_the_image_file(tmp_path, capsys):
    root = _image_folder(tmp_path / "imgs")
    run = tmp_path / "run"
    flags = ["--model", "mlp", "--hidden", "8", "--epochs", "30", "--lr", "0.05", "--threads", "1", "--quiet"]
    assert main(["train", "--data", str(root), *flags, "--out", str(run)]) == 0
    assert main(["inspect", "errors", str(run), "--out", str(tmp_path / "v")]) == 0
    rows = _rows(tmp_path / "v" / "mistakes.csv")
    assert rows, "the folder holds images of the other class's look: some must be wrong"
    ds = load_dataset(str(root), seed=0)
    for r in rows:
        assert r["source"] == ds.test.names[int(r["test_index"])]  # beside the index, the same sample
        assert r["source"].endswith(".png") and f"/{r['true']}/" in r["source"]
    assert "(" + rows[0]["source"] + ")" in capsys.readouterr().out


def test_mistakes_csv_names_the_row_of_a_csv(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "table.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "label"])
        for i in range(60):
            k = i % 2
            w.writerow([f"{rng.normal(k * 0.5, 1):.4f}", f"{rng.normal(0, 1):.4f}", ["no", "yes"][k]])
    run = tmp_path / "run"
    argv = ["train", "--data", str(path), "--label-column", "label", "--test-split", "0.5", "--model", "mlp"]
    assert main([*argv, "--epochs", "2", "--threads", "1", "--quiet", "--out", str(run)]) == 0
    assert main(["inspect", "errors", str(run), "--out", str(tmp_path / "v")]) == 0
    rows = _rows(tmp_path / "v" / "mistakes.csv")
    assert rows
    lines = list(csv.reader(open(path)))
    for r in rows:
        assert r["source"].startswith("table.csv row ")
        row = int(r["source"].rsplit(" ", 1)[1])
        assert lines[row][2] == r["true"]  # that row of the file holds this sample's label


def test_a_packed_dataset_keeps_the_files_its_samples_came_from(tmp_path):
    import json

    import pytest

    from layerlab.data.pack import pack
    from layerlab.errors import DataError

    root = _image_folder(tmp_path / "imgs")
    ds = load_dataset(str(root))
    pack(ds, tmp_path / "packed")
    again = load_dataset(str(tmp_path / "packed"))
    assert again.test.names == ds.test.names and again.train.names == ds.train.names
    pick = torch.tensor([3, 0, 5])
    assert again.test.subset(pick).names == [ds.test.names[i] for i in pick.tolist()]
    (tmp_path / "packed" / "test-names.json").write_text(json.dumps(["one"]))
    with pytest.raises(DataError, match=r"test-names\.json: the sample names must be a list of 8 texts"):
        load_dataset(str(tmp_path / "packed"))
    index = json.loads((tmp_path / "packed" / "layerlab-pack.json").read_text())
    index["splits"]["test"]["names"] = {"file": "../outside.json"}
    (tmp_path / "packed" / "layerlab-pack.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match=r"splits\.test\.names must name a plain \.json file"):
        load_dataset(str(tmp_path / "packed"))
