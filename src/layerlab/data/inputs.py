"""What a run reads: the dataset its config names (:func:`prepare_data`) and, after training, files
to predict on (:func:`read_inputs`), both through the run's :class:`~layerlab.data.transforms.InputSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import fileformats
from ..config import DataConfig
from ..errors import DataError
from . import Dataset, Split, images_as_sequences, load_dataset, split_validation
from .transforms import InputSpec, pad_sequences


def prepare_data(cfg: DataConfig, *, seed: int = 0, sequence_model: bool = False, any_size: bool = False) -> Dataset:
    """Load the dataset ``cfg`` names, read images as sequences when it asks (or when the model is
    recurrent: rows, the article's reading), and hold out a validation split if it asks for one.
    ``any_size`` (the model takes any input size) keeps images of different sizes as they are.
    Arrays that :func:`layerlab.fit` kept in a run (``RUN/arrays.npz``) are read back as they were
    trained on (their held-out split included)."""
    from .arrays import is_arrays_file, load_arrays

    if cfg.name.startswith("python:"):  # a run trained on a Dataset object (layerlab.data.python)
        raise DataError(
            f"the run was trained on a {cfg.name[7:]} object given in Python, of which it keeps no copy; "
            f"give --data naming such data on disk, or evaluate it from Python"
        )
    if is_arrays_file(cfg.name):  # an .npz of ours is not the sequence .npz the catalog reads
        ds = load_arrays(cfg.name)
        return _augmented(split_validation(ds, cfg.validation, seed) if cfg.validation else ds, cfg)
    if cfg.label_column is not None or cfg.test_split is not None:  # one labelled table
        from .formats.labeled_csv import load_labeled_csv

        if cfg.label_column is None:
            raise DataError("--test-split holds out rows of one CSV; give the label column with --label-column NAME")
        ds = load_labeled_csv(Path(cfg.name).expanduser(), cfg.label_column, cfg.test_split or 0.0, seed)
        ds = apply_label_rule(ds)
        return _augmented(split_validation(ds, cfg.validation, seed) if cfg.validation else ds, cfg)
    ds = load_dataset(
        cfg.name,
        data_dir=cfg.data_dir,
        seed=seed,
        sequence=cfg.sequence,
        length=cfg.length,
        n_train=cfg.n_train,
        n_test=cfg.n_test,
        any_size=any_size and not sequence_model,
        **reading_options(cfg),
    )
    ds = apply_label_rule(ds)
    if ds.spec.kind == "image" and (cfg.sequence or sequence_model):
        if not isinstance(ds.train, Split):
            raise DataError(f"{cfg.name}: streamed images are not read as sequences; give an in-memory dataset")
        ds = images_as_sequences(ds, cfg.sequence or "rows", seed=seed)
    if cfg.validation:
        ds = split_validation(ds, cfg.validation, seed)
    return _augmented(ds, cfg)


def _augmented(ds: Dataset, cfg: DataConfig) -> Dataset:
    """``ds`` with the augmentation ``cfg`` asks for (checked against what its samples are)."""
    if getattr(cfg, "augment", None):
        from .augment import Augment

        ds.augment = Augment.from_config(cfg.augment, ds.spec)
    return ds


def reading_options(cfg: DataConfig) -> dict:
    """How files are read (``workers``, ``image_size``, ``channels``), as the catalogue takes them."""
    from ..augmentspec import parse_size

    size = getattr(cfg, "image_size", None)
    return {
        "workers": getattr(cfg, "workers", None),
        "image_size": parse_size(size) if size else None,
        "channels": getattr(cfg, "channels", None),
    }


def apply_label_rule(ds: Dataset) -> Dataset:
    """The one rule for class labels (:mod:`layerlab.labels`) on a loaded dataset, whatever its format
    or subset: at least two training classes, no test class missing from training, and labels that
    are not ``0..K-1`` (with no class names of the dataset's own) mapped to classes, the original
    labels kept as the class names. How labels were mapped is ``ds.meta["labels"]``, which ``train``
    prints."""
    from .. import labels

    if ds.task != "classification" or ds.train.y.dim() != 1:
        return ds
    names = None if labels.default_names(ds.classes) else list(ds.classes or ())  # (not None here)
    ytr, yte = ds.train.y.numpy(), ds.test.y.numpy()
    where = ds.source or ds.name
    cs = labels.class_set(ytr, [("the test set", yte)], where=where, names=names)
    if names is None and ds.classes and list(ds.classes) != cs.names:
        ds.train.y = torch.from_numpy(cs.encode(ytr))
        ds.test.y = torch.from_numpy(cs.encode(yte))
        ds.classes, ds.num_outputs = cs.names, cs.k
    notice = cs.notice or (labels.names_notice(names, where) if names else None)
    if notice:
        ds.meta["labels"] = notice
    return ds


@dataclass
class Inputs:
    """Model inputs read from files: ``x`` (N, ...), ``lengths`` (N,) or None, and per sample its
    ``names`` (``path`` or ``path[i]``), ``notes`` (what had to be converted) and ``truths`` (the
    label the file carries, ``.ts`` files only, else None); ``sizes`` (N, k) when images of
    different sizes are held padded in ``x`` (a model that takes any size reads each at its own)."""

    x: torch.Tensor
    lengths: torch.Tensor | None
    names: list[str]
    notes: list[list[str]] = field(default_factory=list)
    truths: list = field(default_factory=list)
    sizes: torch.Tensor | None = None  # (N, k): images or volumes of different sizes, padded in x

    def __len__(self) -> int:
        return len(self.names)

    def length(self, i: int) -> int:
        return int(self.x.shape[1]) if self.lengths is None else int(self.lengths[i])


def read_inputs(
    files: list[str | Path], spec: InputSpec, num_tokens: int | None = None, *, any_size: bool = False
) -> Inputs | None:
    """Read image, sequence (``.npy``, ``.csv``, ``.tsv``, ``.ts``) or text files into one batch
    of model inputs, as the run's ``spec`` says: images converted to its channels and size (and read
    as sequences where it did), sequences standardised with the training statistics and padded, text
    encoded in its vocabulary, token ids given as ``.npy`` checked against ``num_tokens``; images and
    volumes may also come as ``.npy`` arrays. With ``any_size`` (the model takes any size) images
    keep their own sizes (``Inputs.sizes`` when they differ). Returns None for no files."""
    from .formats.folder import pad_images
    from .formats.tabular import ts_cases

    read = fileformats.read_files(files, spec, num_tokens, any_size=any_size, read_ts=ts_cases)
    if read is None:
        return None
    names, notes, truths = read.names, read.notes, read.truths
    permutation = spec.permutation
    samples = spec.samples(read, None if permutation is None else permutation.numpy())  # shared with --onnx
    if read.images and spec.sequence is None:
        x, sizes = pad_images([torch.from_numpy(a) for a in samples])
        return Inputs(x, None, names, notes, truths, sizes)
    if read.texts:
        T = max(len(t) for t in samples)
        x = torch.zeros(len(samples), T, dtype=torch.int64)
        for i, t in enumerate(samples):
            x[i, : len(t)] = torch.from_numpy(t)
        lengths = torch.tensor([len(t) for t in samples])
        return Inputs(x, None if bool((lengths == T).all()) else lengths, names, notes, truths)
    x, padded = pad_sequences(samples)  # sequences, and images read as sequences
    return Inputs(x, padded, names, notes, truths)
