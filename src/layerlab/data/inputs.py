"""What a run reads: the dataset its config names (:func:`prepare_data`) and, after training, files
to predict on (:func:`read_inputs`), both through the run's :class:`~layerlab.data.transforms.InputSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from . import Dataset, images_as_sequences, load_dataset, split_validation
from .transforms import InputSpec


def prepare_data(cfg: DataConfig, *, seed: int = 0, sequence_model: bool = False, any_size: bool = False) -> Dataset:
    """Load the dataset ``cfg`` names, read images as sequences when it asks (or when the model is
    recurrent: rows, the article's reading), and hold out a validation split if it asks for one.
    ``any_size`` (the model takes any input size) keeps images of different sizes as they are.
    Arrays that :func:`layerlab.fit` kept in a run (``RUN/arrays.npz``) are read back as they were
    trained on (their held-out split included)."""
    from .arrays import is_arrays_file, load_arrays

    if is_arrays_file(cfg.name):  # an .npz of ours is not the sequence .npz the catalog reads
        ds = load_arrays(cfg.name)
        return split_validation(ds, cfg.validation, seed) if cfg.validation else ds
    ds = load_dataset(
        cfg.name,
        data_dir=cfg.data_dir,
        seed=seed,
        sequence=cfg.sequence,
        length=cfg.length,
        n_train=cfg.n_train,
        n_test=cfg.n_test,
        any_size=any_size and not sequence_model,
    )
    if ds.spec.kind == "image" and (cfg.sequence or sequence_model):
        ds = images_as_sequences(ds, cfg.sequence or "rows", seed=seed)
    if cfg.validation:
        ds = split_validation(ds, cfg.validation, seed)
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


def _token_ids(path: Path, num_tokens: int | None) -> list[torch.Tensor]:
    """Token id sequences from an ``.npy`` of integers: ``(N, T)`` or one ``(T,)``."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a NumPy .npy file ({e})") from None
    if a.dtype.kind not in "iu" or a.ndim not in (1, 2) or a.size == 0:
        raise DataError(f"{path}: expected token ids, integers of shape (N, T) or (T,), got {a.dtype} {a.shape}")
    if a.min() < 0 or (num_tokens is not None and a.max() >= num_tokens):
        raise DataError(f"{path}: token ids must be between 0 and {(num_tokens or 1) - 1}, got {a.min()}..{a.max()}")
    return [torch.from_numpy(r.astype(np.int64)) for r in np.atleast_2d(a)]


def _grid_array(path: Path, spec: InputSpec, any_size: bool) -> list[torch.Tensor]:
    """Images ``(C, H, W)`` or volumes ``(C, D, H, W)`` from an ``.npy``: one sample, or ``N`` of them
    stacked (for one channel, images may also come as ``(H, W)`` or ``(N, H, W)``). 8-bit values are
    scaled as in training; other numbers are taken as they are and must be finite. The size must be
    the model's unless it takes any size."""
    try:
        a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a NumPy .npy file ({e})") from None
    if a.dtype.kind not in "biuf" or a.size == 0:
        raise DataError(f"{path}: expected an array of numbers, got {a.dtype} {a.shape}")
    C, rank = spec.shape[0], len(spec.shape)
    what = "images (C, H, W)" if spec.kind == "image" else "volumes (C, D, H, W)"
    if a.ndim == rank and a.shape[0] == C:
        a = a[None]
    elif C == 1 and spec.kind == "image" and a.ndim in (2, 3):  # grey images without their channel axis
        a = a.reshape(-1, 1, *a.shape[-2:])
    if a.ndim != rank + 1 or a.shape[1] != C:
        raise DataError(
            f"{path}: the model takes {what} with C = {C}, one or N of them stacked; got an array of shape {a.shape}"
        )
    if not any_size and tuple(a.shape[1:]) != tuple(spec.shape):
        raise DataError(
            f"{path}: samples of shape {tuple(a.shape[1:])}; the model takes {tuple(spec.shape)} (its Dense head "
            f"fixes the size; a model trained with --global-pool takes any size)"
        )
    if a.dtype == np.uint8 and spec.pixel_scale is not None:
        x = torch.from_numpy(a.astype(np.float32) * np.float32(spec.pixel_scale))
    else:
        x = torch.from_numpy(a.astype(np.float32))
        if not torch.isfinite(x).all():
            raise DataError(f"{path}: holds non-finite values (inf or NaN)")
    return list(x)


def read_inputs(
    files: list[str | Path], spec: InputSpec, num_tokens: int | None = None, *, any_size: bool = False
) -> Inputs | None:
    """Read image, sequence (``.npy``, ``.csv``, ``.tsv``, ``.ts``) or text files into one batch
    of model inputs, as the run's ``spec`` says: images converted to its channels and size (and read
    as sequences where it did), sequences standardised with the training statistics and padded, text
    encoded in its vocabulary, token ids given as ``.npy`` checked against ``num_tokens``; images and
    volumes may also come as ``.npy`` arrays. With ``any_size`` (the model takes any size) images
    keep their own sizes (``Inputs.sizes`` when they differ). Returns None for no files."""
    from .formats.folder import IMAGE_SUFFIXES, pad_images, read_image

    images, seqs, texts = [], [], []
    names, notes, truths = [], [], []
    seq_notes: list[list[str]] = []  # per sequence file, what reading it assumed
    for f in map(Path, files):
        suffix = f.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            if spec.image_shape is None:
                raise DataError(f"{f}: the model takes {spec.kind} of shape {spec.shape}, not image files")
            C, H, W = spec.image_shape
            x, n = read_image(f, channels=C, size=None if any_size else (H, W))
            images.append(x)
            names.append(str(f))
            notes.append(n)
            truths.append(None)
        elif spec.kind in ("image", "volume") and spec.sequence is None and suffix == ".npy":
            xs = _grid_array(f, spec, any_size)
            images += xs
            names += [str(f)] if len(xs) == 1 else [f"{f}[{i}]" for i in range(len(xs))]
            notes += [[] for _ in xs]
            truths += [None] * len(xs)
        elif spec.kind == "tokens" and suffix == ".npy":  # token ids as numbers (the copy task)
            rows = _token_ids(f, num_tokens)
            texts += rows
            names += [str(f)] if len(rows) == 1 else [f"{f}[{i}]" for i in range(len(rows))]
            notes += [[] for _ in rows]
            truths += [None] * len(rows)
        elif spec.kind == "tokens":
            if spec.vocab is None:
                raise DataError(
                    f"{f}: the model takes token ids and its run keeps no vocabulary to encode text "
                    f"with; give the ids as an .npy array of integers"
                )
            from .formats.text import read_text

            ids = spec.tokens(read_text(f), f"file {f}")
            if len(ids) == 0:
                raise DataError(f"{f}: empty text")
            texts.append(ids)
            names.append(str(f))
            notes.append([])
            truths.append(None)
        else:
            from .formats.tabular import read_sequence_file

            fixed = None if spec.variable_length or spec.kind != "sequence" else spec.shape[0]
            s, n, lab = read_sequence_file(f, spec.features, fixed)
            ucr = bool(lab) and suffix in (".csv", ".tsv")
            seq_notes.append(
                [f"every row holds T + 1 = {fixed + 1} values: the first column read as the label"] if ucr else []
            )
            seqs.append(s)
            names += n
            truths += list(lab) if lab else [None] * len(s)
    if not names:
        return None
    kinds = [k for k, v in (("images", images), ("sequences", seqs), ("texts", texts)) if v]
    if len(kinds) > 1:
        raise DataError(f"give one kind of input per call, not {' and '.join(kinds)} together")
    if images:
        x, sizes = pad_images(images)
        return Inputs(spec.images(x), None, names, notes, truths, sizes)
    if texts:
        T = max(len(t) for t in texts)
        x = torch.zeros(len(texts), T, dtype=torch.int64)
        for i, t in enumerate(texts):
            x[i, : len(t)] = t
        lengths = torch.tensor([len(t) for t in texts])
        return Inputs(x, None if bool((lengths == T).all()) else lengths, names, notes, truths)
    x, lengths, _ = spec.sequences([s for file_seqs in seqs for s in file_seqs])
    for file_seqs, read_notes in zip(seqs, seq_notes, strict=True):  # per file: what was assumed or filled
        missing = sum(int((~np.isfinite(s)).sum()) for s in file_seqs)
        filled = [f"{missing} missing values filled with the training mean"] if missing else []
        notes += [read_notes + filled for _ in file_seqs]
    return Inputs(x, lengths, names, notes, truths)
