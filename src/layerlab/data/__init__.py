"""Datasets as tensors in memory.

Every loader returns a :class:`Dataset`: a train and a test :class:`Split` of tensors, the task
(what loss and metric apply) and names for the classes. Small data is loaded once; batches are
index slices (see :func:`iterate_batches`), which at MNIST scale beats a DataLoader with workers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from ..errors import DataError
from .transforms import InputSpec

#: What a dataset's targets mean, and so which loss and metric the engine uses.
TASKS = ("classification", "regression", "sequence-classification")


@dataclass
class Split:
    """Inputs ``x`` (N, ...) and targets ``y`` (N,) or (N, T); ``lengths`` (N,) for padded sequences."""

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: torch.Tensor) -> "Split":
        return Split(self.x[index], self.y[index], None if self.lengths is None else self.lengths[index])


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
    spec: InputSpec | None = None

    def __post_init__(self):
        if self.spec is None:
            self.spec = default_spec(self.train)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train)} train / {len(self.test)} test samples of shape "
                f"{self.input_shape}, {self.task}" + (f", {len(self.classes)} classes" if self.classes else "")
                + (f" (from {self.source})" if self.source else ""))


def default_spec(split: Split) -> InputSpec:
    """The input spec of tensors made by hand: images ``(N, C, H, W)``, float sequences
    ``(N, T, F)`` or integer tokens ``(N, T)``; a per-step head when targets are ``(N, T)``."""
    x = split.x
    head = "step" if split.y.dim() == 2 and x.dim() in (2, 3) else "last"
    if x.dim() == 4:
        return InputSpec("image", tuple(x.shape[1:]))
    if x.dim() == 3 and x.is_floating_point():
        return InputSpec("sequence", tuple(x.shape[1:]), head=head, variable_length=split.lengths is not None)
    if x.dim() == 2 and not x.is_floating_point():
        return InputSpec("tokens", tuple(x.shape[1:]), head=head, variable_length=split.lengths is not None)
    raise DataError(f"cannot tell what samples of shape {tuple(x.shape[1:])} ({x.dtype}) are: expected images "
                    f"(N, C, H, W), float sequences (N, T, F) or integer tokens (N, T)")


def iterate_batches(split: Split, batch_size: int, *, shuffle: bool = False,
                    generator: torch.Generator | None = None) -> Iterator[Split]:
    """Yield batches of ``split`` as index slices; the last batch may be smaller (as in Keras)."""
    n = len(split)
    if shuffle:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            yield split.subset(order[start:start + batch_size])
    else:
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            yield Split(split.x[sl], split.y[sl], None if split.lengths is None else split.lengths[sl])


def split_validation(ds: Dataset, fraction: float, seed: int) -> Dataset:
    """Hold out ``fraction`` of the training set as the evaluation split (the test set stays unseen)."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"the validation fraction must be between 0 and 1, got {fraction}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(ds.train), generator=g)
    n_val = max(1, int(round(fraction * len(ds.train))))
    return Dataset(ds.name, ds.train.subset(order[n_val:]), ds.train.subset(order[:n_val]), ds.task,
                   ds.classes, ds.num_outputs, ds.source, {**ds.meta, "validation_fraction": fraction})


def load_dataset(spec: str, *, data_dir: str | Path | None = None, download: bool = True,
                 **options) -> Dataset:
    """Load a dataset by name (``fashion-mnist``, ``mnist``, ``kmnist``, ``cifar10``) or path.

    A path may be a directory of IDX files, a CIFAR-10 ``cifar-10-batches-py`` directory or an
    image folder (``root/<class>/*.png``; with ``train/`` and ``test/`` subfolders, or split 80/20).
    Other keyword options go to the loader that handles the spec (e.g. ``sequence='rows'``).
    """
    from . import images

    loaders = [images]
    try:
        from . import sequences  # noqa: F401  (recurrent data; optional at this stage)

        loaders.insert(0, sequences)
    except ImportError:
        pass
    for mod in loaders:
        ds = mod.try_load(spec, data_dir=data_dir, download=download, **options)
        if ds is not None:
            return ds
    names = ", ".join(sorted(known_datasets()))
    raise DataError(f"unknown dataset {spec!r}: not a known name ({names}) nor an existing file or directory")


def known_datasets() -> dict[str, str]:
    """Dataset names the loaders know, with a one-line description."""
    from . import images

    out = dict(images.DESCRIPTIONS)
    try:
        from . import sequences

        out.update(sequences.DESCRIPTIONS)
    except ImportError:
        pass
    return out
