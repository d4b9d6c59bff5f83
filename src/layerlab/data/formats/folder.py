"""Image folders: ``root/<class>/*.png``, or ``root/train/<class>/...`` with
``root/test/<class>/...``; image files are read by :func:`layerlab.readers.read_image` (in NumPy,
shared with ``predict --onnx``), whose docstring says how each pixel type is scaled.

An image larger than :data:`MAX_PIXELS` (width times height) is refused before it is decoded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ... import readers
from ...errors import DataError
from ...readers import HIGH_BIT_MODES as HIGH_BIT_MODES
from ...readers import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from ...readers import MAX_PIXELS as MAX_PIXELS
from .. import Dataset, Split
from ..transforms import PIXEL_SCALE, InputSpec


def read_image(path: Path, channels: int | None = None, size: tuple[int, int] | None = None):
    """Read an image file as float32 ``(C, H, W)`` in [0, 1] (see :mod:`layerlab.readers` for how
    each pixel type is scaled).

    ``channels`` 1 or 3 converts (grey <-> RGB); ``size`` (H, W) resizes. Returns the tensor and
    a list of notes on what had to be changed.
    """
    arr, notes = readers.read_image(path, channels, size)
    return torch.from_numpy(arr), notes


def _folder_split(root: Path, classes: list[str], channels: int, size) -> tuple[list[torch.Tensor], list[int]]:
    """Every image of ``root/<class>/`` as ``(C, H, W)`` (resized to ``size`` unless it is None), and its class."""
    xs, ys = [], []
    for k, cls in enumerate(classes):
        d = root / cls
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                x, _ = read_image(f, channels, size)
                xs.append(x)
                ys.append(k)
    if not xs:
        raise DataError(f"{root}: no images found in its class folders ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return xs, ys


def pad_images(
    xs: list[torch.Tensor], shape: tuple[int, ...] | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images ``(C, *size)`` as one tensor: stacked when they share one size (sizes None), else each
    top-left in zeros of the largest size (or ``shape``), with the sizes ``(N, k)`` beside them."""
    sizes = {tuple(x.shape[1:]) for x in xs}
    if len(sizes) == 1 and (shape is None or tuple(shape[1:]) in sizes):
        return torch.stack(xs), None
    shape = shape or (xs[0].shape[0], *(max(s[i] for s in sizes) for i in range(len(xs[0].shape) - 1)))
    out = torch.zeros(len(xs), *shape, dtype=xs[0].dtype)
    for i, x in enumerate(xs):
        out[(i, slice(None), *(slice(0, s) for s in x.shape[1:]))] = x
    return out, torch.tensor([list(x.shape[1:]) for x in xs], dtype=torch.int64)


def _class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _first_image(root: Path) -> Path | None:
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            return p
    return None


def _has_images(d: Path) -> bool:
    return d.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir())


def load_image_folder(root: Path, *, seed: int = 0, test_fraction: float = 0.2, keep_sizes: bool = False) -> Dataset:
    """``root/<class>/*.png`` (split ``test_fraction`` for testing, stratified, by ``seed``), or
    ``root/train/<class>/...`` with ``root/test/<class>/...``. Channels come from the first image;
    others are converted to match. Images ``(N, C, H, W)`` in [0, 1].

    Images of different sizes are resized to the first image's size, unless ``keep_sizes`` (for a
    model that takes any size: a CNN with a global pool): then each keeps its own, held top-left in
    zeros of the largest size with ``Split.sizes``, and training batches them by size
    (:func:`layerlab.data.batch_indices`).

    The classes are the training class folders that hold images; at least two are needed, and a
    test class folder with images but no training folder of that name is an error (it would be
    dropped silently otherwise). Each split is in a fixed order shuffled by ``seed``, so the first
    N samples (``--n-train``) mix the classes."""
    root = Path(root)
    has_split = (root / "train").is_dir() and (root / "test").is_dir()
    train_root = root / "train" if has_split else root
    all_dirs = _class_dirs(train_root)
    if not all_dirs:
        tables = sorted(p.name for p in root.iterdir() if p.suffix.lower() in (".csv", ".tsv"))
        if tables:  # a folder of tables is no image folder: say how tables are read
            raise DataError(
                f"{root} holds CSV/TSV files ({', '.join(tables[:3])}{', ...' if len(tables) > 3 else ''}), not "
                f"class subfolders of images; give one file: --data {root / tables[0]} --label-column NAME "
                f"--test-split F, or NAME_TRAIN.csv (with NAME_TEST.csv beside it)"
            )
        raise DataError(f"{root}: an image folder needs one subfolder per class (root/<class>/*.png)")
    classes = [c for c in all_dirs if _has_images(train_root / c)]
    if not classes:
        raise DataError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders")
    if len(classes) < 2:
        raise DataError(
            f"{train_root}: only one class folder ({classes[0]}) holds images; classification needs at least two"
        )
    if has_split:
        extra = sorted(c for c in _class_dirs(root / "test") if _has_images(root / "test" / c) and c not in classes)
        if extra:
            raise DataError(
                f"{root / 'test'}: class folder(s) {', '.join(extra[:5])} have test images but no training images"
            )
    first = _first_image(train_root / classes[0])
    x0, _ = read_image(first)
    channels, size = x0.shape[0], None if keep_sizes else tuple(x0.shape[1:])
    roots = [root / "train", root / "test"] if has_split else [root]
    parts = [_folder_split(r, classes, channels, size) for r in roots]
    # one padded shape for both splits (the largest of either), so train and test samples share it
    all_x = [x for xs, _ in parts for x in xs]
    biggest = (channels, *(max(int(x.shape[i]) for x in all_x) for i in (1, 2)))
    varied = len({tuple(x.shape[1:]) for x in all_x}) > 1
    splits = []
    for xs, ys in parts:
        x, sizes = pad_images(xs, biggest)
        if varied and sizes is None:  # this split's images are all of the largest size
            sizes = torch.tensor([list(biggest[1:])] * len(xs), dtype=torch.int64)
        splits.append(Split(x, torch.tensor(ys, dtype=torch.int64), sizes=sizes))
    g = torch.Generator().manual_seed(seed)
    if has_split:
        train, test = splits
        train = train.subset(torch.randperm(len(train), generator=g))
        test = test.subset(torch.randperm(len(test), generator=g))
    else:
        full = splits[0]
        train_idx, test_idx = [], []
        for k in range(len(classes)):
            idx = torch.nonzero(full.y == k).flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            n_test = round(test_fraction * len(idx)) if len(idx) > 1 else 0
            test_idx.append(idx[:n_test])
            train_idx.append(idx[n_test:])
        train_idx_all, test_idx_all = torch.cat(train_idx), torch.cat(test_idx)
        train_idx_all = train_idx_all[torch.randperm(len(train_idx_all), generator=g)]
        test_idx_all = test_idx_all[torch.randperm(len(test_idx_all), generator=g)]
        train, test = full.subset(train_idx_all), full.subset(test_idx_all)
        if len(test) == 0:
            raise DataError(f"{root}: too few images to hold out a test split; add a test/ folder")
    meta = {}
    if varied:
        kinds = sorted({tuple(s) for s in torch.cat([train.sizes, test.sizes]).tolist()})
        meta["image_sizes"] = len(kinds)
    return Dataset(
        root.name,
        train,
        test,
        "classification",
        classes,
        len(classes),
        source=str(root),
        meta=meta,
        spec=InputSpec("image", biggest, pixel_scale=PIXEL_SCALE, image_shape=biggest, variable_size=varied),
    )
