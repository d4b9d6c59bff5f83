"""Inputs of any size and rank: image folders of mixed sizes (size-bucketed batches), predict at each
image's own size, ``.npz`` images and volumes by the rank of x, ``.npy`` images and volumes for predict."""

import json

import numpy as np
import pytest
import torch

from datagen import save_png
from layerlab import api
from layerlab.api import build_model
from layerlab.cli import main
from layerlab.data import Split, batch_indices, iterate_batches, num_batches
from layerlab.data.formats.folder import load_image_folder
from layerlab.engine import predict_logits
from layerlab.errors import DataError
from layerlab.fileformats.npz import load as load_npz

CLASSES = ("horizontal", "vertical")


def stripes(rng, h: int, w: int, k: int) -> np.ndarray:
    """Class 0: horizontal stripes, class 1: vertical ones, with a random phase and faint noise."""
    a = (rng.random((h, w)) * 50).astype(np.uint8)
    phase = int(rng.integers(0, 4))
    if k == 0:
        a[phase::4, :] = 255
    else:
        a[:, phase::4] = 255
    return a


def mixed_folder(root, rng, n_per_class: int, sizes) -> None:
    for k, cls in enumerate(CLASSES):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            h, w = sizes[int(rng.integers(0, len(sizes)))]
            save_png(root / cls / f"{i}.png", stripes(rng, h, w, k))


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_batches_hold_one_size_and_cover_every_sample_once():
    sizes = torch.tensor([[8, 8], [12, 10], [8, 8], [12, 10], [16, 16]] * 7)
    split = Split(torch.zeros(len(sizes), 1, 16, 16), torch.arange(len(sizes)), sizes=sizes)
    for shuffle in (False, True):
        g = torch.Generator().manual_seed(3)
        batches = batch_indices(split, 4, shuffle=shuffle, generator=g)
        assert len(batches) == num_batches(split, 4) == 2 + 4 + 4  # 7 of 16x16, 14 of each other size
        assert sorted(torch.cat(batches).tolist()) == list(range(len(sizes)))
        for b in batches:
            assert len({tuple(s) for s in sizes[b].tolist()}) == 1
        got = [tuple(batch.x.shape[2:]) for batch in iterate_batches(split, 4, shuffle=shuffle, generator=g)]
        assert set(got) == {(8, 8), (12, 10), (16, 16)}
    same = [batch_indices(split, 4, shuffle=True, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*same, strict=True))


def test_one_size_keeps_the_plain_shuffle_order():
    split = Split(torch.zeros(10, 1, 4, 4), torch.arange(10))
    order = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    got = batch_indices(split, 3, shuffle=True, generator=torch.Generator().manual_seed(1))
    assert [b.tolist() for b in got] == [order[i : i + 3].tolist() for i in range(0, 10, 3)]


def test_predict_logits_of_mixed_sizes_equal_each_image_alone():
    torch.manual_seed(0)
    model = build_model("cnn", (1, 20, 20), 3, channels="4,M,8", padding="same", global_pool="avg").eval()
    sizes = torch.tensor([[20, 20], [9, 13], [20, 20], [14, 9], [9, 13]])
    x = torch.zeros(5, 1, 20, 20)
    alone = []
    for i, (h, w) in enumerate(sizes.tolist()):
        img = torch.rand(1, h, w)
        x[i, :, :h, :w] = img
        alone.append(model(img[None])[0])
    out = predict_logits(model, Split(x, torch.zeros(5), sizes=sizes), batch_size=2)
    assert torch.allclose(out, torch.stack(alone), atol=1e-6)


def test_mixed_folder_keeps_sizes_only_for_a_model_that_takes_any(tmp_path):
    rng = np.random.default_rng(0)
    mixed_folder(tmp_path / "imgs", rng, 10, [(12, 16), (20, 20), (16, 12)])
    kept = load_image_folder(tmp_path / "imgs", keep_sizes=True)
    assert kept.spec.variable_size and kept.train.sizes is not None and kept.input_shape == (1, 20, 20)
    assert {tuple(s) for s in torch.cat([kept.train.sizes, kept.test.sizes]).tolist()} == {(12, 16), (20, 20), (16, 12)}
    i = 0
    h, w = kept.train.sizes[i].tolist()
    assert kept.train.sample(i).shape == (1, h, w)
    assert float(kept.train.x[i, :, h:, :].abs().sum()) == 0.0  # padding is zeros, outside the image
    resized = load_image_folder(tmp_path / "imgs")
    assert not resized.spec.variable_size and resized.train.sizes is None
    first = resized.input_shape
    assert resized.train.x.shape[1:] == first


@pytest.mark.slow
def test_mixed_size_folder_trains_and_predicts_at_sizes_never_seen(capsys, tmp_path):
    rng = np.random.default_rng(1)
    data = tmp_path / "stripes"
    mixed_folder(data, rng, 60, [(16, 24), (24, 24), (24, 16), (20, 28)])
    run = tmp_path / "run"
    code, out, err = run_cli(
        capsys,
        "train", "--data", data, "--model", "cnn", "--channels", "8,M,16", "--padding", "same",
        "--global-pool", "max", "--epochs", 4, "--batch-size", 8, "--lr", 0.01, "--out", run, "--quiet", "--json",
    )  # fmt: skip
    assert code == 0, err
    info = json.loads((run / "run.json").read_text())
    assert info["input_spec"]["variable_size"] is True
    code, out, err = run_cli(capsys, "evaluate", run, "--json", "--per-sample")
    assert code == 0, err
    ev = json.loads(out)
    assert ev["accuracy"] >= 0.9
    # the test images through predict, each at its own size, give what evaluation gave
    ds = api.RunDir(run).dataset()
    files = []
    for i in range(len(ds.test)):
        img = (ds.test.sample(i)[0].numpy() * 255).round().astype(np.uint8)
        files.append(save_png(tmp_path / f"t{i}.png", img))
    code, out, err = run_cli(capsys, "predict", run, *files, "--json")
    assert code == 0, err
    preds = json.loads(out)
    per_sample = ev["predictions"]
    assert [p["label"] for p in preds] == [s["predicted"] for s in per_sample]
    assert all(p["notes"] == [] for p in preds)  # nothing resized, nothing converted
    # sizes never seen in training: larger, smaller, another aspect ratio, and an RGB file
    new = []
    for j, (h, w) in enumerate([(40, 32), (12, 30), (33, 17), (64, 64)]):
        for k in range(2):
            new.append((save_png(tmp_path / f"new{j}{k}.png", stripes(rng, h, w, k)), CLASSES[k]))
    from PIL import Image

    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.repeat(stripes(rng, 36, 44, 1)[..., None], 3, axis=2)).save(rgb)
    new.append((rgb, CLASSES[1]))
    code, out, err = run_cli(capsys, "predict", run, *[f for f, _ in new], "--json")
    assert code == 0, err
    preds = json.loads(out)
    right = sum(p["label"] == want for p, (_, want) in zip(preds, new, strict=True))
    assert right >= len(new) - 1, preds
    assert preds[-1]["notes"] == ["converted from RGB to L"]
    assert all(p["notes"] == [] for p in preds[:-1])
    # an image smaller than the model reads is one sentence
    tiny = save_png(tmp_path / "tiny.png", stripes(rng, 1, 9, 0))
    code, out, err = run_cli(capsys, "predict", run, tiny)
    assert code == 2 and "tiny.png is 1x9" in err and "at least 2" in err and err.count("\n") == 1


def test_fixed_size_model_resizes_a_mixed_folder_and_predict_input(capsys, tmp_path):
    rng = np.random.default_rng(2)
    data = tmp_path / "stripes"
    mixed_folder(data, rng, 12, [(16, 16), (20, 12)])
    run = tmp_path / "run"
    code, _, err = run_cli(
        capsys, "train", "--data", data, "--model", "cnn", "--channels", "4,M", "--epochs", 1, "--out", run, "--quiet"
    )
    assert code == 0, err
    shape = json.loads((run / "run.json").read_text())["input_spec"]["shape"]
    img = save_png(tmp_path / "odd.png", stripes(rng, 30, 22, 0))
    code, out, err = run_cli(capsys, "predict", run, img, "--json")
    assert code == 0, err
    assert json.loads(out)[0]["notes"] == [f"resized from 22x30 to {shape[2]}x{shape[1]}"]


def volumes(rng, n: int, size: int = 10):
    """A bright bar along depth, height or width (the class) in a noisy volume: a 3-D task."""
    y = rng.integers(0, 3, n)
    x = rng.random((n, 1, size, size, size), dtype=np.float32) * 0.3
    for i, k in enumerate(y):
        a, b = rng.integers(2, size - 2, 2)
        idx = [slice(None), slice(a, a + 1), slice(b, b + 1)]
        idx = [idx[(j - k) % 3] for j in range(3)]  # the full-length axis is k
        x[i, 0][tuple(idx)] = 1.0
    return x, y


@pytest.mark.slow
def test_npz_rank_says_images_or_volumes_and_npy_predicts_them(capsys, tmp_path):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (20, 1, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "img.npz", x_train=img, y_train=np.arange(20) % 2, x_test=img[:6], y_test=np.arange(6) % 2)
    ds = load_npz(tmp_path / "img.npz")
    assert ds.spec.kind == "image" and ds.input_shape == (1, 8, 8) and ds.classes == ["0", "1"]
    assert float(ds.train.x.max()) <= 1.0 and ds.spec.pixel_scale == pytest.approx(1 / 255)
    xv, yv = volumes(rng, 120)
    xt, yt = volumes(rng, 30)
    np.savez(tmp_path / "vol.npz", x_train=xv, y_train=yv, x_test=xt, y_test=yt)
    ds = load_npz(tmp_path / "vol.npz")
    assert ds.spec.kind == "volume" and ds.input_shape == (1, 10, 10, 10) and ds.num_outputs == 3
    run = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "train", "--data", tmp_path / "vol.npz", "--model", "cnn", "--channels", "8,M,16", "--padding", "same",
        "--global-pool", "max", "--epochs", 3, "--batch-size", 10, "--lr", 0.01, "--out", run, "--quiet",
    )  # fmt: skip
    assert code == 0, err
    np.save(tmp_path / "one.npy", xt[0])
    np.save(tmp_path / "many.npy", xt[:5])
    np.save(tmp_path / "bigger.npy", np.pad(xt[:2], ((0, 0), (0, 0), (0, 4), (0, 2), (0, 0))))
    code, out, err = run_cli(capsys, "predict", run, tmp_path / "one.npy", tmp_path / "many.npy", "--json")
    assert code == 0, err
    preds = json.loads(out)
    assert [p["file"] for p in preds][:2] == [str(tmp_path / "one.npy"), str(tmp_path / "many.npy") + "[0]"]
    ev = api.evaluate_run(run, per_sample=True)
    assert [p["label"] for p in preds[1:]] == [s["predicted"] for s in ev["predictions"][:5]]
    code, out, err = run_cli(capsys, "predict", run, tmp_path / "bigger.npy", "--json")
    assert code == 0, err  # a global-pool model takes a larger volume as it is
    np.save(tmp_path / "flat.npy", xt[0, 0, 0])
    code, _, err = run_cli(capsys, "predict", run, tmp_path / "flat.npy")
    assert code == 2 and "volumes (C, D, H, W)" in err and err.count("\n") == 1


def test_npz_images_of_two_ranks_or_bad_targets_are_one_sentence(tmp_path):
    from layerlab.errors import DataError

    x = np.zeros((4, 1, 5, 5), np.float32)
    np.savez(tmp_path / "a.npz", x_train=x, y_train=np.arange(4), x_test=x[:, :, :4], y_test=np.arange(4))
    with pytest.raises(DataError, match="both need one"):
        load_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x_train=x, y_train=np.zeros((4, 2)), x_test=x, y_test=np.arange(4))
    with pytest.raises(DataError, match="one target per sample"):
        load_npz(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x_train=x, y_train=np.arange(4) % 2, x_test=x, y_test=np.arange(4))
    with pytest.raises(DataError, match="y_test holds class 2"):
        load_npz(tmp_path / "c.npz")


@pytest.mark.slow
def test_mixed_sizes_resume_mid_epoch_bit_identical(tmp_path, monkeypatch):
    """Size-bucketed batches come in the same order after a resume: stopped after a mid-epoch
    checkpoint, the resumed run ends with the weights of an uninterrupted one, bit for bit."""
    from safetensors.torch import load_file

    from layerlab.config import RunConfig
    from layerlab.rundir import RunDir

    mixed_folder(tmp_path / "d", np.random.default_rng(4), 16, [(12, 12), (16, 12), (12, 20)])

    def cfg() -> RunConfig:
        c = RunConfig()
        c.data.name = str(tmp_path / "d")
        c.model.name, c.model.channels, c.model.padding, c.model.global_pool = "cnn", "4,M,8", "same", "avg"
        c.train.epochs, c.train.batch_size, c.train.checkpoint_every = 2, 4, 5
        return c

    full, _ = api.train(cfg(), tmp_path / "full")
    real = RunDir.save_checkpoint

    def stop_after_mid_epoch(self, *a, **kw):
        real(self, *a, **kw)
        if kw.get("step"):
            raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", stop_after_mid_epoch)
    with pytest.raises(KeyboardInterrupt):
        api.train(cfg(), tmp_path / "cut")
    monkeypatch.undo()
    resumed, _ = api.resume(tmp_path / "cut")
    a, b = (load_file(str(RunDir(p).weights("last"))) for p in (full.path, resumed.path))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_fixed_size_cnn_says_which_size_it_takes():
    """Without a global pool the Dense head fixes the size: another size is a sentence, not torch's
    'mat1 and mat2 shapes cannot be multiplied' (what the article CNN gave at 36x36 before)."""
    model = build_model("article-cnn")
    with pytest.raises(DataError, match=r"takes inputs of 28x28 .* got 36x36; a global pool"):
        model(torch.zeros(1, 1, 36, 36))
    assert build_model("cnn", (1, 20, 20), 3, channels="4,M", global_pool="avg")(torch.zeros(1, 1, 36, 30)).shape == (
        1,
        3,
    )


def test_an_empty_shard_of_mixed_sizes_is_an_empty_batch():
    """Under DDP a rank's shard of a size's small last batch can be empty: a batch of 0, not an IndexError."""
    split = Split(torch.zeros(3, 1, 4, 4), torch.arange(3), sizes=torch.tensor([[4, 4], [2, 2], [4, 4]]))
    assert split.take(torch.tensor([], dtype=torch.int64)).x.shape == (0, 1, 4, 4)
    assert split.take(torch.tensor([1])).x.shape == (1, 1, 2, 2)
