"""Data at scale: streamed sources (packed shards, memory-mapped arrays, image folders decoded
lazily by workers) give the batches, order and fingerprints of the in-memory source; `data pack`
round-trips; image folders read at a chosen or the most common size and mode, with a notice;
augmentation is a function of (seed, epoch, index), never at evaluation, and a run killed
mid-epoch with workers and augmentation resumes bit-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from datagen import bar_images, make_idx_dir, save_png
from layerlab import api
from layerlab.augmentspec import canonical, parse, parse_size
from layerlab.config import RunConfig
from layerlab.data import Split, load_dataset
from layerlab.data.augment import Augment, uniform
from layerlab.data.pack import INDEX, load_packed, pack
from layerlab.data.sources import ArraySource, FolderSource, PackedSource
from layerlab.errors import ConfigError, DataError
from layerlab.inputspec import InputSpec
from layerlab.rundir import RunDir
from layerlab.training import TensorSource


def _folder(root: Path, n: int = 30, mixed: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x, y = bar_images(n, rng, classes=3, cover=True)
    for i, (a, k) in enumerate(zip(x, y, strict=True)):
        d = root / str(k)
        d.mkdir(parents=True, exist_ok=True)
        if mixed and i % 5 == 0:
            a = a[:20, :20]
        if mixed and i % 4 == 1:
            a = np.stack([a] * 3, -1)
        save_png(d / f"{i:03d}.png", a)
    return root


def _same_epochs(a, b, n_epochs=2, batch=7, world=1):
    for epoch in range(n_epochs):
        for rank in range(world):
            sa = list(a.epoch(batch, seed=3, epoch=epoch, rank=rank, world_size=world))
            sb = list(b.epoch(batch, seed=3, epoch=epoch, rank=rank, world_size=world))
            assert len(sa) == len(sb)
            for p, q in zip(sa, sb, strict=True):
                assert p.size == q.size
                assert torch.equal(p.index, q.index)
                assert torch.equal(p.batch.y, q.batch.y)
                assert torch.equal(p.batch.x, q.batch.x)  # the same float32 bits


# ----------------------------------------------------------------------------------------------
# streamed sources
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["one folder", "train and test folders"])
def test_lazy_folder_reads_what_the_in_memory_folder_holds_in_its_order(tmp_path, layout):
    if layout == "one folder":
        root = _folder(tmp_path / "f", 30)
    else:
        root = tmp_path / "f"
        _folder(root / "train", 30)
        _folder(root / "test", 12, seed=1)
    mem = load_dataset(str(root))
    lazy = load_dataset(str(root), workers=0)
    assert isinstance(lazy.train, FolderSource) and isinstance(mem.train, Split)
    assert lazy.input_shape == mem.input_shape and lazy.spec.to_dict() == mem.spec.to_dict()
    for a, b in ((mem.train, lazy.train), (mem.test, lazy.test)):
        assert torch.equal(a.y, b.y)
        _same_epochs(TensorSource(a), b)
        _same_epochs(TensorSource(a), b, world=2)


def test_workers_give_the_batches_of_the_training_process(tmp_path):
    root = _folder(tmp_path / "f", 30)
    inline = load_dataset(str(root), workers=0).train
    workers = load_dataset(str(root), workers=2).train
    _same_epochs(inline, workers)
    # a resume from step 2 skips the first two batches of the same order, with workers too
    rest = list(workers.epoch(7, seed=3, epoch=1, start=2))
    full = list(inline.epoch(7, seed=3, epoch=1))
    assert [torch.equal(a.batch.x, b.batch.x) for a, b in zip(rest, full[2:], strict=True)] == [True] * len(rest)


def test_a_packed_dataset_round_trips_and_keeps_the_order(tmp_path):
    data = make_idx_dir(tmp_path / "bars", n_train=50, n_test=13)
    mem = load_dataset(str(data))
    index = pack(mem, tmp_path / "packed")
    assert index["splits"]["train"]["dtype"] == "uint8"
    packed = load_dataset(str(tmp_path / "packed"))  # the catalogue finds it by its index
    assert isinstance(packed.train, PackedSource) and packed.classes == mem.classes
    for a, b in ((mem.train, packed.train), (mem.test, packed.test)):
        assert torch.equal(a.y, b.y)
        _same_epochs(TensorSource(a), b, world=1)
        _same_epochs(TensorSource(a), b, world=3)
    # the fingerprint is the index's shard hashes: a changed shard byte with the index rewritten changes it
    assert packed.train.fingerprint()["sha256"] != packed.test.fingerprint()["sha256"]


def test_packed_shards_split_and_read_across_shard_boundaries(tmp_path, monkeypatch):
    from layerlab.data import pack as pack_module

    data = make_idx_dir(tmp_path / "bars", n_train=40, n_test=10)
    mem = load_dataset(str(data))
    monkeypatch.setattr(pack_module, "SHARD_BYTES", 28 * 28 * 6)  # 6 samples a shard
    index = pack(mem, tmp_path / "p")
    assert len(index["splits"]["train"]["shards"]) == 7
    src = load_packed(tmp_path / "p", workers=0).train
    x, _ = src.read(np.array([39, 0, 6, 5, 12]))
    want = (mem.train.x[[39, 0, 6, 5, 12]] * 255).round().to(torch.uint8)
    assert torch.equal(x, want)


def test_a_tampered_pack_index_is_one_sentence(tmp_path):
    data = make_idx_dir(tmp_path / "bars", n_train=20, n_test=10)
    pack(load_dataset(str(data)), tmp_path / "p")
    index = json.loads((tmp_path / "p" / INDEX).read_text())
    index["splits"]["train"]["shards"][0]["file"] = "../../etc/passwd.npy"
    (tmp_path / "p" / INDEX).write_text(json.dumps(index))
    with pytest.raises(DataError, match=r"plain \.npy name"):
        load_packed(tmp_path / "p")
    index["splits"]["train"]["shards"][0]["file"] = "train-00000.npy"
    index["splits"]["train"]["shards"][0]["n"] = 19  # disagrees with the shard's header
    index["splits"]["train"]["labels"]["file"] = "train-labels.npy"
    (tmp_path / "p" / INDEX).write_text(json.dumps(index))
    with pytest.raises(DataError):
        load_packed(tmp_path / "p").train.read(np.array([0]))


def test_a_memory_mapped_array_source_reads_only_its_rows(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (23, 1, 4, 4)).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    y = torch.arange(23) % 3
    src = ArraySource(tmp_path / "x.npy", y)
    mem = TensorSource(Split(torch.from_numpy(x).float() / 255, y))
    _same_epochs(mem, src, world=2)
    assert isinstance(src._arr, np.memmap)


def test_pack_cli_and_training_from_a_packed_dataset_with_workers(tmp_path):
    root = _folder(tmp_path / "f", 24)
    env = {**os.environ}
    out = tmp_path / "packed"
    r = subprocess.run(
        [sys.executable, "-m", "layerlab", "data", "pack", str(root), str(out), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["train"]["n"] + json.loads(r.stdout)["test"]["n"] == 24
    cfg = RunConfig()
    cfg.data.name, cfg.data.workers = str(out), 2
    cfg.train.epochs, cfg.train.batch_size, cfg.train.threads = 1, 8, 1
    run, result = api.train(cfg, tmp_path / "run")
    assert result.history[0]["test_n"] == len(load_packed(out).test)
    assert run.info()["data_fingerprint"]["train"]["sha256"]
    r = subprocess.run(
        [sys.executable, "-m", "layerlab", "evaluate", str(tmp_path / "run"), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr


# ----------------------------------------------------------------------------------------------
# image folders under control
# ----------------------------------------------------------------------------------------------
def test_a_mixed_folder_takes_the_most_common_size_and_mode_and_says_so(tmp_path):
    root = _folder(tmp_path / "f", 30, mixed=True)
    ds = load_dataset(str(root))
    assert ds.input_shape == (1, 28, 28)  # most files are 28x28 grey; before: the first file decided
    assert ds.meta["images"] == (
        "6 of 30 images resized to 28x28 (the most common size, 2 sizes found); "
        "8 of 30 images converted to grey (the most common)"
    )
    chosen = load_dataset(str(root), image_size=(16, 12), channels=3)
    assert chosen.input_shape == (3, 16, 12)
    assert "30 of 30 images resized to 16x12 (as --image-size asks)" in chosen.meta["images"]


def test_image_size_and_channels_are_honoured_at_train_and_predict(tmp_path):
    root = _folder(tmp_path / "f", 30, mixed=True)
    cfg = RunConfig()
    cfg.data.name, cfg.data.image_size, cfg.data.channels = str(root), "16,16", 3
    cfg.train.epochs, cfg.train.threads = 1, 1
    run, _ = api.train(cfg, tmp_path / "run")
    assert tuple(run.spec.shape) == (3, 16, 16)
    probs = api.predict(str(tmp_path / "run"), [str(root / "0" / "000.png")])
    assert probs.shape == (1, 3)
    assert RunDir(tmp_path / "run").config().data.image_size == "16,16"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "layerlab", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_mixed_folder_from_the_command_line_at_train_and_predict(tmp_path):
    """28 and 20 px, grey and RGB files: the notice at train, and --image-size/--image-channels
    honoured at train and predict (a file of another size and mode is read at the run's)."""
    from PIL import Image

    root = _folder(tmp_path / "f", 30, mixed=True)
    odd = tmp_path / "odd.png"  # 20x20 RGB: neither the run's size nor, for the first run, its mode
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(odd)
    base = ["train", "--data", str(root), "--epochs", "1", "--threads", "1", "--model", "article-cnn"]
    r = _cli(*base, "--out", str(tmp_path / "auto"))
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stdout.split())  # the console wraps long lines
    assert "images: 6 of 30 images resized to 28x28 (the most common size, 2 sizes found); 8 of 30" in said
    r = _cli("predict", str(tmp_path / "auto"), str(odd), "--json")
    assert r.returncode == 0, r.stderr
    notes = " ".join(json.loads(r.stdout)[0]["notes"])
    assert "resized from 20x20 to 28x28" in notes and "converted from RGB to L" in notes
    r = _cli(*base, "--image-size", "16,24", "--image-channels", "3", "--out", str(tmp_path / "chosen"))
    assert r.returncode == 0, r.stderr
    assert "30 of 30 images resized to 16x24 (as --image-size asks)" in " ".join(r.stdout.split())
    assert RunDir(tmp_path / "chosen").info()["dataset"]["input_shape"] == [3, 16, 24]
    r = _cli("predict", str(tmp_path / "chosen"), str(odd), str(root / "1" / "001.png"), "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert len(got) == 2 and "resized from 20x20 to 24x16" in " ".join(got[0]["notes"])


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=12))
def test_image_size_parses_or_says_what_it_takes(text):
    try:
        h, w = parse_size(text)
    except ConfigError as e:
        assert "H,W" in str(e)
    else:
        assert 1 <= h <= 4096 and 1 <= w <= 4096


# ----------------------------------------------------------------------------------------------
# augmentation
# ----------------------------------------------------------------------------------------------
def test_the_augment_text_parses_and_is_written_back_the_same():
    ops = parse("flip, crop=4,erase=0.25,rotate=10")
    assert ops == {"flip": 0.5, "crop": 4.0, "erase": 0.25, "rotate": 10.0}
    assert canonical(ops) == "crop=4,flip=0.5,rotate=10,erase=0.25"
    assert parse(canonical(ops)) == ops
    assert parse({"crop": 2, "flip": True, "color": False}) == {"crop": 2.0, "flip": 0.5}
    for bad, said in (("blur=1", "unknown augmentation"), ("crop", "needs a value"), ("erase=2", "from 0.0 to 1.0")):
        with pytest.raises(ConfigError, match=said):
            parse(bad)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="cropflie=0123456789.,", max_size=20))
def test_any_augment_text_parses_or_is_one_config_error(text):
    try:
        ops = parse(text)
    except ConfigError:
        return
    assert parse(canonical(ops) or "") == ops


def test_augment_is_checked_against_the_data():
    grey = InputSpec("image", (1, 8, 8), pixel_scale=1 / 255, image_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="needs RGB"):
        Augment.from_config("color=0.2", grey)
    with pytest.raises(ConfigError, match="noise does not apply to image"):
        Augment.from_config("noise=0.1", grey)
    seq = InputSpec("sequence", (10, 2))
    with pytest.raises(ConfigError, match="flip does not apply to sequence"):
        Augment.from_config("flip", seq)


def test_draws_depend_on_seed_epoch_and_index_only():
    idx = torch.tensor([5, 9, 5, 0])
    a = uniform(1, 2, idx, 3)
    assert a[0] == a[2] and a[0] != a[1]
    assert torch.equal(a, uniform(1, 2, idx, 3))
    assert not torch.equal(a, uniform(1, 3, idx, 3)) and not torch.equal(a, uniform(2, 2, idx, 3))
    u = uniform(0, 0, torch.arange(20000), 1)
    assert 0 <= float(u.min()) and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.01


@pytest.mark.parametrize(
    "text,spec",
    [
        ("crop=3,flip,rotate=15,zoom=0.1,erase=0.5,color=0.3", InputSpec("image", (3, 12, 10))),
        ("noise=0.1,scale=0.2,window=0.8", InputSpec("sequence", (16, 3))),
    ],
)
def test_a_sample_is_augmented_the_same_in_any_batch(text, spec):
    """Per sample, not per batch: a sample's augmentation does not depend on its batch-mates or
    position, so ranks, workers and resumed epochs see the same pixels."""
    aug = Augment.from_config(text, spec)
    x = torch.rand(6, *spec.shape)
    idx = torch.tensor([11, 3, 7, 0, 42, 8])
    whole = aug(x, idx, seed=4, epoch=2)
    assert whole.shape == x.shape and not torch.equal(whole, x)
    part = aug(x[[4, 1]], idx[[4, 1]], seed=4, epoch=2)
    assert torch.allclose(part, whole[[4, 1]], atol=1e-6)
    assert not torch.allclose(aug(x, idx, seed=4, epoch=3), whole)


def test_crop_with_padding_shifts_by_whole_pixels():
    aug = Augment.from_config("crop=2", InputSpec("image", (1, 6, 6)))
    x = torch.arange(36.0).reshape(1, 1, 6, 6).repeat(50, 1, 1, 1)
    out = aug(x, torch.arange(50), seed=0, epoch=0)
    for o in out:  # a shifted copy: every nonzero value sits where the shift puts it
        (r, c) = [int(v[0]) for v in torch.nonzero(o[0] == 14.0, as_tuple=True)] or [None, None]
        if r is not None:
            dy, dx = r - 2, c - 2
            assert torch.equal(
                o[0][max(0, dy) : 6 + min(0, dy), max(0, dx) : 6 + min(0, dx)],
                x[0, 0][max(0, -dy) : 6 + min(0, -dy), max(0, -dx) : 6 + min(0, -dx)],
            )


def test_augmentation_trains_never_evaluates_and_is_recorded(tmp_path):
    data = make_idx_dir(tmp_path / "bars", n_train=32, n_test=16)
    cfg = RunConfig()
    cfg.data.name, cfg.data.augment = str(data), "crop=2,flip"
    cfg.train.epochs, cfg.train.batch_size, cfg.train.threads = 1, 16, 1
    run, result = api.train(cfg, tmp_path / "aug")
    info = run.info()
    assert info["augment"]["text"] == "crop=2,flip=0.5"
    from layerlab.inspect.report import _augment_text

    assert _augment_text(info) == "crop=2,flip=0.5" and _augment_text({}) == "none"
    assert _augment_text({"augment": ["x"]}).startswith("unknown")
    assert RunDir(tmp_path / "aug").config().data.augment == "crop=2,flip"
    # evaluation afterwards gives the epoch's own test numbers: the test set was not augmented
    again = api.evaluate(str(tmp_path / "aug"), which="last")
    assert again["loss"] == pytest.approx(result.history[-1]["test_loss"], abs=1e-5)
    plain = RunConfig()
    plain.data.name = str(data)
    plain.train.epochs, plain.train.batch_size, plain.train.threads = 1, 16, 1
    _, other = api.train(plain, tmp_path / "plain")
    assert other.history[-1]["train_loss"] != result.history[-1]["train_loss"]


def test_augment_from_a_toml_table(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[data]\nname = "x"\n[data.augment]\ncrop = 4\nflip = true\n')
    assert RunConfig.from_toml(p).data.augment == "crop=4,flip=0.5"


# ----------------------------------------------------------------------------------------------
# kill -9 mid-epoch with workers and augmentation, then --resume: bit-identical
# ----------------------------------------------------------------------------------------------
FLAGS = ["--model", "article-cnn", "--epochs", "2", "--batch-size", "8", "--threads", "1", "--device", "cpu"]
FLAGS += ["--checkpoint-every", "2", "--workers", "2", "--augment", "crop=2,flip,erase=0.5,rotate=10"]


def _run(*args, pause=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LAYERLAB_TEST_PAUSE_AT", None)
    if pause:
        env["LAYERLAB_TEST_PAUSE_AT"] = pause
    return subprocess.Popen(
        [sys.executable, "-m", "layerlab", *args, "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("cut_workers,resume_workers", [("2", None), ("0", "2")])
def test_killed_mid_epoch_with_workers_and_augmentation_resumes_bit_identical(tmp_path, cut_workers, resume_workers):
    """Killed mid-epoch, resumed: the weights of the run that never stopped (which read with 2
    workers), also when the killed run read in its own process and the resumed one with 2 workers."""
    root = _folder(tmp_path / "f", 40)  # 32 train: 4 steps an epoch
    ref = _run("train", "--data", str(root), "--out", str(tmp_path / "ref"), *FLAGS)
    flags = [*FLAGS[: FLAGS.index("--workers") + 1], cut_workers, *FLAGS[FLAGS.index("--workers") + 2 :]]
    proc = _run("train", "--data", str(root), "--out", str(tmp_path / "cut"), *flags, pause="step:3")
    try:
        for line in proc.stderr:
            if line.strip() == "LAYERLAB_PAUSED step":
                break
        else:
            pytest.fail(f"the run ended without pausing: {proc.wait(30)}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()
    info = RunDir(tmp_path / "cut").training_state()
    assert info["step"] == 2  # killed mid-epoch, after the checkpoint at step 2
    done = _run("train", "--resume", str(tmp_path / "cut"), *(["--workers", resume_workers] if resume_workers else []))
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    a = load_file(str(RunDir(tmp_path / "cut").weights("last")))
    b = load_file(str(RunDir(tmp_path / "ref").weights("last")))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert RunDir(tmp_path / "cut").config().data.workers == int(resume_workers or cut_workers)


def test_workers_on_resume_change_the_count_only_for_streamed_data(tmp_path):
    root = _folder(tmp_path / "f", 30)
    cfg = RunConfig()
    cfg.data.name, cfg.train.epochs, cfg.train.threads = str(root), 1, 1
    api.train(cfg, tmp_path / "mem")  # a small folder without --workers: read in memory
    with pytest.raises(ConfigError, match="read its data in memory"):
        api.resume(tmp_path / "mem", epochs=2, workers=2)
    cfg.data.workers = 0
    api.train(cfg, tmp_path / "lazy")
    api.resume(tmp_path / "lazy", epochs=2, workers=1)
    assert RunDir(tmp_path / "lazy").config().data.workers == 1
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "layerlab",
            "train",
            "--resume",
            str(tmp_path / "mem"),
            "--epochs",
            "2",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "read its data in memory" in r.stderr and "Traceback" not in r.stderr


def test_the_fashion_best_preset_trains_with_its_augmentation(tmp_path):
    """One epoch of the preset on tiny 28x28 data: the model builds, augmentation runs, run.json
    records it (the preset's accuracy is a benchmark, not a test)."""
    from layerlab.presets import resolve

    cfg = RunConfig.from_toml(resolve("fashion_best"))
    assert cfg.data.augment == "crop=2,flip=0.5"
    cfg.data.name = str(make_idx_dir(tmp_path / "bars", n_train=60, n_test=20))
    cfg.train.epochs, cfg.train.threads = 1, 1
    run, result = api.train(cfg, tmp_path / "run")
    assert run.info()["augment"]["ops"] == {"crop": 2.0, "flip": 0.5}
    assert result.history[0]["val_n"] == 6


def test_a_streamed_split_reads_only_what_is_indexed_and_every_view_works(tmp_path):
    """The inspection views, export checks and report take ``ds.test.x[:k]`` and ``sample(i)``:
    a streamed split gives them by reading those samples alone."""
    data = make_idx_dir(tmp_path / "bars", n_train=40, n_test=12)
    mem = load_dataset(str(data))
    pack(mem, tmp_path / "p")
    src = load_packed(tmp_path / "p").test
    reads = []
    real = src.read_rows
    src.read_rows = lambda rows: reads.append(len(rows)) or real(rows)
    assert src.x.shape == mem.test.x.shape and src.x.dim() == 4
    assert torch.equal(src.x[:5], mem.test.x[:5]) and torch.equal(src.sample(-1), mem.test.x[-1])
    assert torch.equal(src.x[torch.tensor([7, 2])], mem.test.x[[7, 2]])
    assert reads == [5, 1, 2]
    cfg = RunConfig()
    cfg.data.name = str(tmp_path / "p")
    cfg.train.epochs, cfg.train.threads = 1, 1
    api.train(cfg, tmp_path / "run")
    for cmd in (["report", str(tmp_path / "run")], ["inspect", "errors", str(tmp_path / "run")]):
        r = subprocess.run([sys.executable, "-m", "layerlab", *cmd], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]


def _resident_kb(path: Path) -> int:
    """This process's resident kB of the memory maps of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1].isdigit() or line[:1] in "abcdef":  # a mapping's header line
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc")
def test_reading_a_packed_epoch_keeps_its_pages_out_of_the_resident_set(tmp_path):
    """Memory stays bounded by the batch: the pages a batch read are dropped from the process's
    resident set (madvise), so an epoch over a shard does not leave the shard resident."""
    x = np.random.default_rng(0).integers(0, 255, (400, 3, 32, 32)).astype(np.uint8)  # 1.2 MB
    mem = Split(torch.from_numpy(x).float() / 255, torch.arange(400) % 4)
    from layerlab.data import Dataset

    ds = Dataset(
        "r",
        mem,
        mem,
        "classification",
        list("abcd"),
        4,
        spec=InputSpec("image", (3, 32, 32), pixel_scale=1 / 255, image_shape=(3, 32, 32)),
    )
    pack(ds, tmp_path / "p")
    src = load_packed(tmp_path / "p", workers=0).train
    shard = (tmp_path / "p" / "train-00000.npy").resolve()
    n = sum(len(s.batch) for s in src.epoch(50, seed=0, epoch=0))
    assert n == 400
    assert _resident_kb(shard) <= 64  # the shard is 1,200 kB: at most a few pages stay resident


def test_data_pack_refuses_in_one_sentence_before_reading(tmp_path):
    root = _folder(tmp_path / "f", 12)
    (tmp_path / "out").mkdir()
    for args, said in (
        ([str(root), str(tmp_path / "out")], "already exists; give a new directory"),
        ([str(root), str(tmp_path / "o2"), "--image-size", "3x4"], "--image-size must be H,W"),
        ([str(tmp_path / "none"), str(tmp_path / "o3")], "unknown dataset"),
    ):
        r = subprocess.run([sys.executable, "-m", "layerlab", "data", "pack", *args], capture_output=True, text=True)
        assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert "images:" not in r.stdout  # nothing was read
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_a_damaged_file_read_by_a_worker_is_one_sentence(tmp_path):
    root = _folder(tmp_path / "f", 20)
    bad = sorted((root / "1").iterdir())[0]
    size = os.path.getsize(bad)
    bad.write_bytes(bad.read_bytes()[: size // 3])  # a truncated PNG: its header still reads
    ds = load_dataset(str(root), workers=2)
    split = ds.train if str(bad) in ds.train.files.tolist() else ds.test
    with pytest.raises(DataError) as e:
        for _ in split.epoch(4, seed=0, epoch=0):
            pass
    assert str(e.value).startswith(f"{bad}: ") and "\n" not in str(e.value) and "Traceback" not in str(e.value)


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(-2, 5), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
_PATHS = [
    ("format",),
    ("spec",),
    ("classes",),
    ("num_outputs",),
    ("task",),
    ("splits",),
    ("splits", "train"),
    ("splits", "train", "x_shape"),
    ("splits", "train", "dtype"),
    ("splits", "train", "shards"),
    ("splits", "train", "shards", 0),
    ("splits", "train", "shards", 0, "file"),
    ("splits", "train", "shards", 0, "n"),
    ("splits", "test", "labels"),
    ("splits", "test", "labels", "file"),
    ("spec", "shape"),
    ("spec", "kind"),
]


@pytest.fixture(scope="module")
def packed_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("pk")
    pack(load_dataset(str(make_idx_dir(root / "bars", n_train=20, n_test=10))), root / "p")
    return root / "p", json.loads((root / "p" / INDEX).read_text())


@settings(max_examples=300, deadline=None)
@given(where=st.sampled_from(_PATHS), value=_VALUES)
def test_any_tampered_pack_index_loads_or_is_one_data_error(packed_index, where, value):
    """The index is untrusted input: any value anywhere gives a dataset that reads, or one DataError."""
    root, index = packed_index
    doc = json.loads(json.dumps(index))
    node = doc
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = value
    (root / INDEX).write_text(json.dumps(doc))
    try:
        ds = load_packed(root, workers=0)
        for split in (ds.train, ds.test):
            split.read(np.arange(len(split)))
    except DataError:
        pass
    finally:
        (root / INDEX).write_text(json.dumps(index))


_HOLDER = """
import multiprocessing as mp, sys, time
from pathlib import Path
from layerlab import lock
from layerlab.data.sources import _worker_init

def worker():
    _worker_init(0)  # what every data-loading worker runs first
    time.sleep(60)

lock.acquire(Path(sys.argv[1]))
child = mp.get_context("fork").Process(target=worker, daemon=False)
child.start()
time.sleep(0.5)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_killed_process_leaves_no_lock_with_its_workers(tmp_path):
    """A data-loading worker forked by a training process shares its open lock file: without
    closing it, the flock outlived a kill -9 of the trainer for as long as the worker ran, and the
    resume that followed was refused ("another process is taking over its lock")."""
    from layerlab import lock

    run = tmp_path / "run"
    run.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        lock.acquire(run)  # the worker still runs, and holds nothing
        lock.release(run)
    finally:
        os.kill(child, signal.SIGKILL)


def test_cuda_graph_with_streamed_data_is_refused_before_the_run_exists(tmp_path):
    from layerlab.errors import ConfigError as CE
    from layerlab.training import check_training

    data = make_idx_dir(tmp_path / "bars", n_train=20, n_test=10)
    pack(load_dataset(str(data)), tmp_path / "p")
    cfg = RunConfig()
    cfg.train.cuda_graph = True
    with pytest.raises(CE, match="needs the training data in memory"):
        check_training(cfg.train, load_packed(tmp_path / "p"))
