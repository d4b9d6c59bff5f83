"""No tiny remainder batch reaches batch norm in training: an epoch's last batch (or the last of a
size bucket, for image folders of mixed sizes) smaller than ``tail_floor(batch_size)`` is merged
into another batch of its size, or dropped when its size has no other batch, while a model has batch
norm; the epoch's order stays a function of (seed, epoch), and resume skips the same steps. A model
without batch norm keeps every batch as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import layerlab
from datagen import save_png
from layerlab import api
from layerlab.config import ModelConfig, RunConfig
from layerlab.data import Split
from layerlab.training.sources import TensorSource, merge_small_batches, tail_floor, with_min_batch


@pytest.fixture
def bn_batches():
    """The batch sizes every batch-norm layer sees while training (a global forward hook)."""
    seen: list[int] = []

    def hook(module, inputs):
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            seen.append(int(inputs[0].shape[0]))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    yield seen
    handle.remove()


def test_a_remainder_of_one_sample_does_not_reach_batch_norm(bn_batches):
    """33 samples in batches of 32 left a batch of one, on which BatchNorm1d raises while training
    ("Expected more than 1 value per channel"); now it joins the batch before it."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    x = np.random.default_rng(0).random((33, 3, 4), dtype=np.float32)
    history = layerlab.fit(model, x, np.arange(33) % 3, epochs=2, batch_size=32, verbose=0)
    assert len(history.history["loss"]) == 2
    assert bn_batches and min(bn_batches) == 33  # one step an epoch: 32 + 1


@pytest.mark.slow
def test_an_odd_sized_image_does_not_train_alone_through_batch_norm(tmp_path, bn_batches):
    """An image folder of mixed sizes is batched by size: the one 10x14 image made a batch of one,
    whose batch norm statistics were those of a single image; now it is left out of training (its
    size has no other image), and every other batch keeps at least tail_floor samples."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 7), ("test", 2)):
        for c in ("a", "b", "c"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                save_png(tmp_path / split / c / f"{i}.png", rng.integers(0, 255, (12, 12)))
    save_png(tmp_path / "train" / "a" / "odd.png", rng.integers(0, 255, (10, 14)))
    cfg = RunConfig()
    cfg.data.name, cfg.train.epochs, cfg.train.batch_size = str(tmp_path), 2, 8
    cfg.model = ModelConfig(name="cnn", channels="4,M", batch_norm=True, global_pool="avg")
    _, result = api.train(cfg, tmp_path / "run")
    assert len(result.history) == 2
    assert bn_batches and min(bn_batches) >= tail_floor(8)
    assert sorted(bn_batches) == [5, 5, 8, 8, 8, 8]  # 21 same-size images: 8 + 8 + 5 an epoch; no batch of 1


def test_a_model_without_batch_norm_keeps_every_batch(bn_batches):
    """Only batch norm needs it: other models train on the remainder as Keras does."""
    split = Split(torch.rand(33, 4, 2), torch.arange(33) % 3)
    source = TensorSource(split)
    assert source.steps(32) == 2
    assert [len(s.batch) for s in source.epoch(32, seed=0, epoch=0)] == [32, 1]


def _split_with_sizes(counts: list[int]) -> Split:
    sizes = torch.tensor([[4 + g, 4] for g, c in enumerate(counts) for _ in range(c)])
    n = len(sizes)
    return Split(torch.zeros(n, 1, 4 + len(counts), 4), torch.zeros(n, dtype=torch.long), sizes=sizes)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    batch_size=st.integers(1, 16),
    seed=st.integers(0, 3),
    bucketed=st.booleans(),
)
def test_merged_epochs_are_complete_deterministic_and_resume_exactly(counts, batch_size, seed, bucketed):
    split = _split_with_sizes(counts) if bucketed else Split(torch.zeros(sum(counts), 2, 1), torch.zeros(sum(counts)))
    floor = tail_floor(batch_size)
    source = with_min_batch(TensorSource(split), floor)
    epoch = [s.index for s in source.epoch(batch_size, seed=seed, epoch=1)]
    assert len(epoch) == source.steps(batch_size)  # the schedule is laid over the steps there are
    assert all(len(b) >= floor for b in epoch)
    if bucketed:  # each batch holds one size
        assert all(len({tuple(s) for s in split.sizes[b].tolist()}) == 1 for b in epoch)
    seen = torch.cat(epoch).tolist() if epoch else []
    assert len(seen) == len(set(seen))
    groups = counts if bucketed else [sum(counts)]
    dropped = sum(c for c in groups if c < floor)  # only a size with too few samples for one batch
    assert len(seen) == sum(counts) - dropped
    again = [s.index for s in source.epoch(batch_size, seed=seed, epoch=1)]
    assert all(torch.equal(a, b) for a, b in zip(epoch, again, strict=True))
    for start in (1, len(epoch) // 2):  # a mid-epoch resume takes up the same batches
        rest = [s.index for s in source.epoch(batch_size, seed=seed, epoch=1, start=start)]
        assert len(rest) == len(epoch[start:]) and all(
            torch.equal(a, b) for a, b in zip(rest, epoch[start:], strict=True)
        )


def test_merging_joins_the_nearest_batch_of_its_group_before_it():
    b = [torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6]), torch.tensor([7, 8, 9])]
    keys = {0: "x", 3: "y", 6: "x", 7: "y"}
    out = merge_small_batches(b, 2, lambda t: keys[int(t[0])])
    assert [t.tolist() for t in out] == [[0, 1, 2, 6], [3, 4, 5], [7, 8, 9]]
    first = merge_small_batches([torch.tensor([6]), torch.tensor([0, 1])], 2)  # none before: the one after
    assert [t.tolist() for t in first] == [[0, 1, 6]]
    assert merge_small_batches(b, 1) is b


def test_the_floor_is_two_or_an_eighth_of_the_batch_and_never_above_it():
    assert [tail_floor(n) for n in (1, 2, 8, 32, 128)] == [1, 2, 2, 4, 16]


def test_a_streamed_source_merges_its_remainder_too(tmp_path):
    from layerlab.data.sources import ArraySource

    path = tmp_path / "x.npy"
    np.save(path, np.zeros((33, 2, 3), dtype=np.float32))
    source = ArraySource(path, torch.zeros(33, dtype=torch.long), workers=0)
    assert [len(s.batch) for s in source.epoch(32, seed=0, epoch=0)] == [32, 1]
    merged = with_min_batch(source, 2)
    assert merged.steps(32) == 1 and source.steps(32) == 2  # a copy: the dataset's source is unchanged
    assert [len(s.batch) for s in merged.epoch(32, seed=0, epoch=0)] == [33]
