"""Image folders: ``root/<class>/*.png``, or ``root/train/<class>/...`` with
``root/test/<class>/...``; image files are read by :func:`layerlab.readers.read_image` (in NumPy,
shared with ``predict --onnx``), whose docstring says how each pixel type is scaled.

An image larger than :data:`MAX_PIXELS` (width times height) is refused before it is decoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

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


#: A folder whose images as float32 tensors would take more than this is read lazily (streamed).
IN_MEMORY_BYTES = 2 * 2**30


def _folder_files(root: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    """Every image file of ``root/<class>/``, in order, and its class."""
    files, ys = [], []
    for k, cls in enumerate(classes):
        d = root / cls
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                ys.append(k)
    if not files:
        raise DataError(f"{root}: no images found in its class folders ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files, ys


def _folder_split(root: Path, classes: list[str], channels: int, size) -> tuple[list[torch.Tensor], list[int]]:
    """Every image of ``root/<class>/`` as ``(C, H, W)`` (resized to ``size`` unless it is None), and its class."""
    files, ys = _folder_files(root, classes)
    return [read_image(f, channels, size)[0] for f in files], ys


def _file_channels(mode: str) -> int:
    return 1 if mode in ("1", "L", "LA") or mode in HIGH_BIT_MODES else 3


def survey_images(
    files: list[Path], image_size: tuple[int, int] | None, channels: int | None, *, resize: bool = True
) -> tuple[int, tuple[int, int], str | None]:
    """The channels and size (H, W) every image is read as: those given, else the most common
    among ``files`` (ties: the first met), read from the file headers only; and a notice naming how
    many files are resized or converted (None when none are)."""
    from collections import Counter

    from PIL import Image

    sizes: Counter[tuple[int, int]] = Counter()
    modes: Counter[int] = Counter()
    for f in files:
        try:
            with Image.open(f) as im:
                sizes[(im.height, im.width)] += 1
                modes[_file_channels(im.mode)] += 1
        except Exception:  # the full read says what is wrong with it, naming the file
            read_image(f)
    size: tuple[int, int] = (int(image_size[0]), int(image_size[1])) if image_size else sizes.most_common(1)[0][0]
    c = channels or modes.most_common(1)[0][0]
    resized = sum(n for s, n in sizes.items() if s != size)
    converted = sum(n for m, n in modes.items() if m != c)
    said = []
    if resized and resize:
        how = "as --image-size asks" if image_size else f"the most common size, {len(sizes)} sizes found"
        said.append(f"{resized} of {len(files)} images resized to {size[0]}x{size[1]} ({how})")
    if converted:
        how = "as --image-channels asks" if channels else "the most common"
        said.append(f"{converted} of {len(files)} images converted to {'grey' if c == 1 else 'RGB'} ({how})")
    return c, size, "; ".join(said) or None


def _streamed(workers: int | None, n: int, channels: int, size: tuple[int, int]) -> bool:
    """Whether a folder is read lazily: when workers are asked for, or when it is too large for memory."""
    return workers is not None or n * channels * size[0] * size[1] * 4 > IN_MEMORY_BYTES


def _split_orders(
    root: Path, labels: list[torch.Tensor], n_classes: int, seed: int, test_fraction: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training and test order of an image folder, drawn from ``seed`` alone: with ``labels`` of
    a train/ and a test/ folder, each shuffled; with the labels of one folder, a stratified split
    (``test_fraction`` of each class held out), each part then shuffled. The in-memory and the
    streamed folder both take their order from here, so they hold the same samples in the same order."""
    g = torch.Generator().manual_seed(seed)
    if len(labels) == 2:
        return torch.randperm(len(labels[0]), generator=g), torch.randperm(len(labels[1]), generator=g)
    y = labels[0]
    train_idx, test_idx = [], []
    for k in range(n_classes):
        idx = torch.nonzero(y == k).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = round(test_fraction * len(idx)) if len(idx) > 1 else 0
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr, te = torch.cat(train_idx), torch.cat(test_idx)
    tr = tr[torch.randperm(len(tr), generator=g)]
    te = te[torch.randperm(len(te), generator=g)]
    if len(te) == 0:
        raise DataError(f"{root}: too few images to hold out a test split; add a test/ folder")
    return tr, te


def _lazy_folder(root, classes, files, has_split, channels, size, seed, test_fraction, workers, meta) -> Dataset:
    """The image folder as :class:`~layerlab.data.sources.FolderSource` splits, in the order the
    in-memory folder takes (the same generator draws, on the labels alone)."""
    from ..sources import FolderSource

    labels = [torch.tensor(ys, dtype=torch.int64) for _, ys in files]
    tr, te = _split_orders(root, labels, len(classes), seed, test_fraction)
    tr_files, te_files = (files[0][0], files[1][0]) if has_split else (files[0][0], files[0][0])
    tr_y, te_y = (labels[0], labels[1]) if has_split else (labels[0], labels[0])
    train = ([tr_files[i] for i in tr.tolist()], tr_y[tr])
    test = ([te_files[i] for i in te.tolist()], te_y[te])
    shape = (channels, *size)
    return Dataset(
        root.name,
        # a streamed source stands where a Split does (see layerlab.data.sources)
        cast(Split, FolderSource(train[0], train[1].to(torch.int64), channels, size, workers=workers)),
        cast(Split, FolderSource(test[0], test[1].to(torch.int64), channels, size, workers=workers)),
        "classification",
        classes,
        len(classes),
        source=str(root),
        meta={**meta, "streamed": True},
        spec=InputSpec("image", shape, pixel_scale=PIXEL_SCALE, image_shape=shape),
    )


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
        where: tuple[int | slice, ...] = (i, slice(None), *(slice(0, int(s)) for s in x.shape[1:]))
        out[where] = x
    return out, torch.tensor([list(x.shape[1:]) for x in xs], dtype=torch.int64)


def _class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _has_images(d: Path) -> bool:
    return d.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir())


def load_image_folder(
    root: Path,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    keep_sizes: bool = False,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    workers: int | None = None,
) -> Dataset:
    """``root/<class>/*.png`` (split ``test_fraction`` for testing, stratified, by ``seed``), or
    ``root/train/<class>/...`` with ``root/test/<class>/...``. Channels are the most common mode;
    others are converted to match. Images ``(N, C, H, W)`` in [0, 1].

    Images of different sizes are resized to the most common size, unless ``keep_sizes`` (for a
    model that takes any size: a CNN with a global pool): then each keeps its own, held top-left in
    zeros of the largest size with ``Split.sizes``, and training batches them by size
    (:func:`layerlab.data.batch_indices`).

    The classes are the training class folders that hold images; at least two are needed, and a
    test class folder with images but no training folder of that name is an error (it would be
    dropped silently otherwise). Each split is in a fixed order shuffled by ``seed``, so the first
    N samples (``--n-train``) mix the classes.

    ``image_size`` (H, W) and ``channels`` (1 or 3) choose what every image is read as; without
    them the most common size and mode of the images are chosen (:func:`survey_images`), and
    ``meta["images"]`` says how many files were resized or converted. ``workers`` (or a folder
    whose float32 tensors would exceed :data:`IN_MEMORY_BYTES`) reads it lazily: each split a
    :class:`~layerlab.data.sources.FolderSource`, decoded a batch at a time in ``workers`` processes."""
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
    roots = [root / "train", root / "test"] if has_split else [root]
    files = [_folder_files(r, classes) for r in roots]
    channels, chosen, notice = survey_images(
        [f for fs, _ in files for f in fs], image_size, channels, resize=not keep_sizes
    )
    size = None if keep_sizes and not image_size else chosen
    meta: dict[str, object] = {"images": notice} if notice else {}
    if _streamed(workers, sum(len(fs) for fs, _ in files), channels, chosen):
        if keep_sizes:
            raise DataError(
                f"{root}: images of their own sizes (a model that takes any size) are read in memory; drop --workers"
            )
        return _lazy_folder(root, classes, files, has_split, channels, chosen, seed, test_fraction, workers, meta)
    parts = [_folder_split(r, classes, channels, size) for r in roots]
    # one padded shape for both splits (the largest of either), so train and test samples share it
    all_x = [x for xs, _ in parts for x in xs]
    biggest = (channels, *(max(int(x.shape[i]) for x in all_x) for i in (1, 2)))
    varied = len({tuple(x.shape[1:]) for x in all_x}) > 1
    splits = []
    for (xs, ys), (fs, _) in zip(parts, files, strict=True):
        x, sizes = pad_images(xs, biggest)
        if varied and sizes is None:  # this split's images are all of the largest size
            sizes = torch.tensor([list(biggest[1:])] * len(xs), dtype=torch.int64)
        names = [str(f) for f in fs]  # the files, in the order _folder_split read them
        splits.append(Split(x, torch.tensor(ys, dtype=torch.int64), sizes=sizes, names=names))
    tr, te = _split_orders(root, [sp.y for sp in splits], len(classes), seed, test_fraction)
    train, test = splits[0].subset(tr), splits[-1].subset(te)
    if varied:
        assert train.sizes is not None and test.sizes is not None  # varied: every split has its sizes
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
