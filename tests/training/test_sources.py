"""The batch source seam: the in-memory source gives the batches, order and fingerprint the loop
had before it (so old runs resume and seeds give the same bits), the same global order for any
world size, every held-out sample exactly once over the ranks, and the loop and evaluation read
only through the protocol (a source of another kind trains and evaluates the same)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab import engine
from layerlab.config import TrainConfig
from layerlab.data import Dataset, Split, batch_indices
from layerlab.rundir import split_fingerprint
from layerlab.training import BatchSource, TensorSource, as_source, epoch_generator, evaluate, predict_logits


def _split(n: int = 50, sizes: bool = False, lengths: bool = False, seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    if lengths:
        x = torch.randn(n, 7, 3, generator=g)
        return Split(x, torch.randint(0, 3, (n,), generator=g), torch.randint(1, 8, (n,), generator=g))
    x = torch.randn(n, 1, 6, 6, generator=g)
    split = Split(x, torch.randint(0, 3, (n,), generator=g))
    if sizes:  # two sizes, each held top-left in the 6x6 tensor
        split.sizes = torch.tensor([[6, 6] if i % 3 else [4, 5] for i in range(n)])
    return split


@pytest.mark.parametrize("kind", ["plain", "sizes", "lengths"])
def test_the_in_memory_fingerprint_is_the_one_runs_recorded(kind):
    split = _split(sizes=kind == "sizes", lengths=kind == "lengths")
    assert TensorSource(split).fingerprint() == split_fingerprint(split)


@pytest.mark.parametrize("kind", ["plain", "sizes", "lengths"])
def test_an_epoch_is_the_shuffled_order_of_seed_and_epoch(kind):
    split = _split(sizes=kind == "sizes", lengths=kind == "lengths")
    source = TensorSource(split)
    for epoch in (0, 3):
        old = batch_indices(split, 8, shuffle=True, generator=epoch_generator(7, epoch))
        steps = list(source.epoch(8, seed=7, epoch=epoch))
        assert len(steps) == len(old) == source.steps(8)
        for (batch, size), index in zip(steps, old, strict=True):
            want = split.take(index)
            assert size == len(index) and torch.equal(batch.x, want.x) and torch.equal(batch.y, want.y)
        # a resume at step 2 skips exactly the first two batches of the same order
        rest = list(source.epoch(8, seed=7, epoch=epoch, start=2))
        assert [torch.equal(a.batch.x, b.batch.x) for a, b in zip(rest, steps[2:], strict=True)] == [True] * len(rest)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), batch=st.integers(1, 17), world=st.integers(1, 4), sizes=st.booleans())
def test_the_ranks_shares_of_a_step_make_the_single_process_batch(n, batch, world, sizes):
    split = _split(n, sizes=sizes)
    source = TensorSource(split)
    single = list(source.epoch(batch, seed=1, epoch=2))
    shares = [list(source.epoch(batch, seed=1, epoch=2, rank=r, world_size=world)) for r in range(world)]
    for k, (whole, size) in enumerate(single):
        parts = [shares[r][k] for r in range(world)]
        assert all(p.size == size == len(whole) for p in parts)
        assert torch.equal(torch.cat([p.batch.y for p in parts]), whole.y)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), batch=st.integers(1, 17), world=st.integers(1, 4), sizes=st.booleans())
def test_every_held_out_sample_comes_once_over_the_ranks(n, batch, world, sizes):
    split = _split(n, sizes=sizes)
    seen = torch.zeros(n, dtype=torch.long)
    for rank in range(world):
        done = 0
        for chunk in TensorSource(split).ordered(batch, rank=rank, world_size=world):
            index = chunk.index if chunk.index is not None else torch.arange(done, done + len(chunk.batch))
            done += len(chunk.batch)
            seen[index] += 1
            assert torch.equal(chunk.batch.y, split.y[index])
    assert seen.tolist() == [1] * n


def test_an_odd_held_out_split_is_counted_exactly_over_two_ranks():
    split = _split(1001)
    counts = [sum(len(c.batch) for c in TensorSource(split).ordered(100, rank=r, world_size=2)) for r in range(2)]
    assert counts == [501, 500]


class Listed:
    """A source of another kind than the in-memory one: the epoch's batches read from a list one at a
    time (as a stream would give them), its fingerprint kept beside the data."""

    def __init__(self, split: Split):
        self._inner = TensorSource(split)
        self.reads = 0

    def __len__(self) -> int:
        return len(self._inner)

    def steps(self, batch_size: int) -> int:
        return self._inner.steps(batch_size)

    def epoch(self, batch_size, *, seed, epoch, rank=0, world_size=1, start=0):
        steps = self._inner.epoch(batch_size, seed=seed, epoch=epoch, rank=rank, world_size=world_size, start=start)
        for step in steps:
            self.reads += 1
            yield step

    def ordered(self, batch_size, *, rank=0, world_size=1):
        for chunk in self._inner.ordered(batch_size, rank=rank, world_size=world_size):
            self.reads += 1
            yield chunk

    def fingerprint(self) -> dict:
        return {"n": len(self), "x_shape": [], "y_shape": [], "sha256": "kept beside the data"}


def test_the_loop_and_evaluation_read_only_through_the_protocol():
    train, test = _split(48, seed=1), _split(20, seed=2)
    assert isinstance(Listed(train), BatchSource) and not isinstance(train, BatchSource)
    assert as_source(train).fingerprint() == split_fingerprint(train)

    def run(tr, te):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))
        ds = Dataset("t", Split(train.x, train.y), Split(test.x, test.y), num_outputs=3)
        ds.train, ds.test = tr, te  # a dataset whose splits are sources
        result = engine.fit(model, ds, TrainConfig(epochs=2, batch_size=16, device="cpu", lr=0.05))
        return model, result

    listed_train, listed_test = Listed(train), Listed(test)
    a, ra = run(train, test)
    b, rb = run(listed_train, listed_test)
    assert listed_train.reads == 2 * 3 and listed_test.reads == 2
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    strip = [{k: v for k, v in r.items() if "second" not in k} for r in ra.history]
    assert strip == [{k: v for k, v in r.items() if "second" not in k} for r in rb.history]
    assert evaluate(a, Listed(test)) == evaluate(a, test)
    assert torch.equal(predict_logits(a, Listed(test), batch_size=7), predict_logits(a, test))


def test_outputs_of_mixed_sizes_come_back_in_the_split_order():
    split = _split(30, sizes=True)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 3))
    out = predict_logits(model, split, batch_size=4)
    for i in (0, 1, 2, 29):
        assert torch.allclose(out[i], model(split.sample(i)[None])[0])
