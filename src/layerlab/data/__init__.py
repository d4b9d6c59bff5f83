"""Datasets as tensors in memory.

Every loader returns a :class:`Dataset`: a train and a test :class:`Split` of tensors, the task
(what loss and metric apply), names for the classes and the input spec
(:class:`~.transforms.InputSpec`: how raw input becomes a sample, which the run records so that
predict reads new input the same way). Small data is loaded once; batches are index slices (see
:func:`iterate_batches`), which at MNIST scale beats a DataLoader with workers.

The package: :mod:`.catalog` (what a name or path means, where named sets are, downloads),
:mod:`.formats` (one module per file format), :mod:`.transforms` (the input spec and its
transforms), :mod:`.synthetic` (the adding and copy tasks).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..choices import TASKS  # noqa: F401  (what a dataset's targets mean: the loss and metric used)
from ..errors import DataError
from .transforms import PERMUTATION_SEED, SEQUENCE_MODES, InputSpec, image_sequence, pixel_permutation

if TYPE_CHECKING:
    from .augment import Augment


def _pick(names: list[str], index) -> list[str]:
    """``names`` at ``index`` (positions, or a mask), as ``tensor[index]`` picks rows."""
    index = torch.as_tensor(index)
    if index.dtype == torch.bool:
        index = index.nonzero().flatten()
    return [names[i] for i in index.reshape(-1).tolist()]


@dataclass
class Split:
    """Inputs ``x`` (N, ...) and targets ``y`` (N,) or (N, T); ``lengths`` (N,) for padded sequences;
    ``sizes`` (N, k) for images (k = 2) or volumes (k = 3) of different sizes, each held top-left in
    ``x`` padded with zeros to the largest (batches take one size at a time: :func:`batch_indices`).
    ``names``: where each sample came from (a file, a row of a file), when the data has files."""

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor | None = None
    sizes: torch.Tensor | None = None
    names: list[str] | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: torch.Tensor) -> Split:
        """The samples ``index``, as a new Split."""
        return Split(
            self.x[index],
            self.y[index],
            None if self.lengths is None else self.lengths[index],
            None if self.sizes is None else self.sizes[index],
            None if self.names is None else _pick(self.names, index),
        )

    def take(self, index: torch.Tensor) -> Split:
        """The samples ``index`` as a batch: with ``sizes``, all of one size (as :func:`batch_indices`
        makes them), cut to that size, so the model reads each as it was, without padding."""
        if self.sizes is None or len(index) == 0:  # (a rank's empty shard of a small last batch)
            return self.subset(index)
        size = self.sizes[index[0]].tolist()
        crop = (slice(None), slice(None), *(slice(0, s) for s in size))
        return Split(self.x[index][crop], self.y[index], None if self.lengths is None else self.lengths[index])

    def to(self, device: str | torch.device) -> Split:
        """The split on ``device`` (``sizes`` is kept where it is)."""

        def move(t):
            return None if t is None else t.to(device)

        return Split(self.x.to(device), self.y.to(device), move(self.lengths), self.sizes, self.names)

    def sample(self, i: int) -> torch.Tensor:
        """Sample ``i``'s input ``x[i]``, cut to its own size when sizes differ."""
        return self.take(torch.tensor([i])).x[0]


@dataclass
class Dataset:
    """A dataset in memory.

    ``input_shape`` is the shape of one sample: (C, H, W) for images, (T, F) for sequences.
    ``task`` is one of :data:`TASKS`; ``num_outputs`` the size of the model's last layer.
    ``spec`` says how raw input becomes a sample (see :class:`~layerlab.data.transforms.InputSpec`);
    the loaders set it, and for tensors of your own it is read off their shape and type.
    ``meta`` holds descriptive facts only (source format, baselines), never what predict needs.
    """

    name: str
    train: Split
    test: Split
    task: str = "classification"
    classes: list[str] | None = None
    num_outputs: int = 0
    source: str = ""
    meta: dict = field(default_factory=dict)
    spec: InputSpec = None  # type: ignore[assignment]  # None: default_spec(train), set on creation
    augment: Augment | None = None  # applied to training batches, or None

    def __post_init__(self):
        if self.spec is None:
            self.spec = default_spec(self.train)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one training sample."""
        return tuple(self.train.x.shape[1:])  # a streamed source's x reads nothing for its shape

    def describe(self) -> str:
        """One line: the name, the sizes of the splits, the sample shape and the task."""
        return (
            f"{self.name}: {len(self.train)} train / {len(self.test)} test samples of shape "
            f"{self.input_shape}, {self.task}"
            + (f", {len(self.classes)} classes" if self.classes else "")
            + (f" (from {self.source})" if self.source else "")
        )


def default_spec(split: Split) -> InputSpec:
    """The input spec of tensors made by hand: images ``(N, C, H, W)``, volumes ``(N, C, D, H, W)``, float sequences
    ``(N, T, F)`` or integer tokens ``(N, T)``; a per-step head when targets are ``(N, T)``."""
    x = split.x
    head = "step" if split.y.dim() == 2 and x.dim() in (2, 3) else "last"
    if x.dim() in (4, 5):
        kind = "image" if x.dim() == 4 else "volume"
        return InputSpec(kind, tuple(x.shape[1:]), variable_size=split.sizes is not None)
    if x.dim() == 3 and x.is_floating_point():
        return InputSpec("sequence", tuple(x.shape[1:]), head=head, variable_length=split.lengths is not None)
    if x.dim() == 2 and not x.is_floating_point():
        return InputSpec("tokens", tuple(x.shape[1:]), head=head, variable_length=split.lengths is not None)
    raise DataError(
        f"cannot tell what samples of shape {tuple(x.shape[1:])} ({x.dtype}) are: expected images "
        f"(N, C, H, W), volumes (N, C, D, H, W), float sequences (N, T, F) or integer tokens (N, T)"
    )


def _size_buckets(split: Split, order: torch.Tensor) -> list[torch.Tensor]:
    """``order`` grouped by sample size, each group in ``order``'s order, groups by first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    assert split.sizes is not None  # called for splits of several sizes only
    for i, size in zip(order.tolist(), split.sizes[order].tolist(), strict=True):
        groups.setdefault(tuple(size), []).append(i)
    return [torch.tensor(g, dtype=torch.int64) for g in groups.values()]


def batch_indices(
    split: Split, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """The sample indices of each batch of an epoch: in order, or shuffled by ``generator``; the last
    batch may be smaller (as in Keras).

    Samples of different sizes (``split.sizes``) are batched by size (size-bucketed batches): each
    size's samples, in the epoch's order, make batches of ``batch_size`` (the last of each size may be
    smaller), and the batches are then shuffled, so an epoch mixes sizes from batch to batch while
    every batch holds one. Chosen over padding with a mask: a sample is read exactly as it is alone
    (no border of zeros for a convolution or a batch norm to see), no compute is spent on padding,
    and predict at a sample's own size gives what evaluation gave."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if split.sizes is None:
        return list(torch.split(order, batch_size))
    batches = [b for group in _size_buckets(split, order) for b in torch.split(group, batch_size)]
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def num_batches(split: Split, batch_size: int) -> int:
    """How many batches an epoch of ``split`` has (more than ``ceil(N / batch_size)`` when sizes differ)."""
    if split.sizes is None:
        return -(-len(split) // batch_size)
    _, counts = torch.unique(split.sizes, dim=0, return_counts=True)
    return int(sum(-(-int(c) // batch_size) for c in counts))


def iterate_batches(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    shard: tuple[int, int] | None = None,
) -> Iterator[Split]:
    """Yield batches of ``split`` as index slices; the last batch may be smaller (as in Keras).

    ``shard=(rank, world_size)`` (shuffled only) yields rank's contiguous slice of each batch of the
    same order (``torch.tensor_split``: equal slices when ``world_size`` divides the batch), so the
    union of the ranks' shards of a step is the single-process batch of that step. Samples of
    different sizes come in batches of one size each (see :func:`batch_indices`)."""
    if shuffle or split.sizes is not None:
        for index in batch_indices(split, batch_size, shuffle=shuffle, generator=generator):
            if shard is not None:
                index = torch.tensor_split(index, shard[1])[shard[0]]
            yield split.take(index)
    else:
        for start in range(0, len(split), batch_size):
            sl = slice(start, start + batch_size)
            yield Split(split.x[sl], split.y[sl], None if split.lengths is None else split.lengths[sl])


def split_validation(ds: Dataset, fraction: float, seed: int) -> Dataset:
    """Hold out ``fraction`` of the training set as the evaluation split (the test set stays unseen),
    deterministically from ``seed``. For classification with one class per sample the hold-out is
    stratified: each class gives its share (largest remainders settle the rounding), so a small
    validation split still holds every class in proportion and the ``best`` it chooses means
    something; otherwise it is a random subset. The input spec and meta carry over (the spec's
    standardisation stays that of the full training set)."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"the validation fraction must be between 0 and 1, got {fraction}")
    g = torch.Generator().manual_seed(seed)
    n = len(ds.train)
    n_val = max(1, round(fraction * n))
    if n_val >= n:
        raise DataError(
            f"--validation {fraction} holds out {n_val} of the {n} training samples of {ds.name} and leaves none to "
            f"train on; use a smaller fraction"
        )
    y = ds.train.y
    if ds.task == "classification" and y.dim() == 1 and not y.is_floating_point():
        classes, counts = torch.unique(y, return_counts=True)
        share = counts.double() * n_val / n
        take = share.floor().long()
        rest = n_val - int(take.sum())
        if rest > 0:  # the classes with the largest remainders (ties: the smaller class label) get one more
            extra = torch.argsort(-(share - take), stable=True)[:rest]
            take[extra] += 1
        val, train = [], []
        for c, k in zip(classes.tolist(), take.tolist(), strict=True):
            idx = torch.nonzero(y == c).flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            val.append(idx[:k])
            train.append(idx[k:])
        val_idx, train_idx = torch.cat(val), torch.cat(train)
        val_idx = val_idx[torch.randperm(len(val_idx), generator=g)]
        train_idx = train_idx[torch.randperm(len(train_idx), generator=g)]
    else:
        order = torch.randperm(n, generator=g)
        val_idx, train_idx = order[:n_val], order[n_val:]
    return Dataset(
        ds.name,
        ds.train.subset(train_idx),
        ds.train.subset(val_idx),
        ds.task,
        ds.classes,
        ds.num_outputs,
        ds.source,
        {**ds.meta, "validation_fraction": fraction},
        ds.spec,
    )


def images_as_sequences(ds: Dataset, mode: str, seed: int = 0) -> Dataset:
    """An image dataset ``(N, C, H, W)`` read as sequences: ``rows`` ``(N, H, W*C)``, ``pixels``
    ``(N, H*W, C)`` or ``permuted`` (the pixel sequence in a fixed order).

    ``permuted`` uses one fixed permutation (seed :data:`~.transforms.PERMUTATION_SEED`, recorded
    in the spec) whatever the run's ``seed``, as in the literature's permuted MNIST, so runs compare.
    """
    if ds.train.x.dim() != 4:
        raise DataError(
            f"--sequence {mode} reads images as sequences, but {ds.name} holds samples of shape "
            f"{ds.input_shape}, not images"
        )
    if mode not in SEQUENCE_MODES:
        raise DataError(f"unknown --sequence {mode!r}; expected one of {', '.join(SEQUENCE_MODES)}")
    C, H, W = ds.input_shape
    permuted = mode == "permuted"
    perm = pixel_permutation(H * W, PERMUTATION_SEED) if permuted else None
    train = Split(image_sequence(ds.train.x, mode, perm), ds.train.y)
    test = Split(image_sequence(ds.test.x, mode, perm), ds.test.y)
    spec = InputSpec(
        "sequence",
        tuple(train.x.shape[1:]),
        pixel_scale=ds.spec.pixel_scale,
        image_shape=(C, H, W),
        sequence=mode,
        permutation_seed=PERMUTATION_SEED if permuted else None,
    )
    return Dataset(ds.name, train, test, ds.task, ds.classes, ds.num_outputs, ds.source, dict(ds.meta), spec)


def load_dataset(spec: str, *, data_dir: str | Path | None = None, download: bool = True, **options: Any) -> Dataset:
    """Load a dataset by name or path.

    Args:
        spec: a named image set (``fashion-mnist``, ``mnist``, ``kmnist``, ``cifar10``), a synthetic
            task (``adding``, ``copy``), a UCR/UEA set (``BasicMotions``), a directory of IDX files,
            CIFAR-10 batches, ``.ts`` files or images (``root/<class>/*.png``), or a ``.ts``,
            ``.csv``, ``.tsv``, ``.npz`` or text file (:mod:`.catalog` says in which order a spec is
            tried).
        data_dir: where to look for named sets first.
        download: fetch a named set that is not found on the disk (each file checked against its
            published hash).
        **options: ``seed``, ``length``, ``n_train``, ``n_test``, ``sequence``, ... for the loader
            that handles ``spec``.

    Returns:
        The :class:`Dataset`.

    Raises:
        DataError: a dataset that is not found, cannot be read, or holds bad values.
    """
    # imported here, not at the top: catalog and the formats import Dataset from this module, and
    # building a Dataset by hand needs none of them
    from . import catalog

    return catalog.load(spec, data_dir=data_dir, download=download, **options)


def known_datasets() -> dict[str, str]:
    """Dataset names the loaders know, with a one-line description."""
    from . import catalog

    return catalog.known_datasets()
