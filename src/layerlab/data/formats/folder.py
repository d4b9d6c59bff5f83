"""Image files (Pillow reads them) and image folders: ``root/<class>/*.png``, or
``root/train/<class>/...`` with ``root/test/<class>/...``.

Pixels become float32 in [0, 1] by the range of their type, not by 255 alone: 8-bit modes
(``L``, ``RGB``, ``P``, ...) / 255; 16-bit grey (``I;16``, as Pillow reads 16-bit PNG and TIFF)
/ 65535; 32-bit integers (``I``) / 65535 when every value fits 16 bits (how Pillow often holds
16-bit files), else / (2**31 - 1), negatives clipped to 0; float images (``F``) as they are (they
must be finite). Converting a 16-bit image to ``L`` would clip it to 255 and make it all ones.

An image larger than :data:`MAX_PIXELS` (width times height) is refused before it is decoded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from .. import Dataset, Split
from ..transforms import PIXEL_SCALE, InputSpec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
#: The largest image read, in pixels (width x height): Pillow's own decompression-bomb limit,
#: about 89 megapixels (a 9459 x 9459 image, 358 MB as float32 RGB).
MAX_PIXELS = 89_478_485
#: Modes holding more than 8 bits per pixel, read by :func:`_high_bit_array` (grey, one channel).
HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _high_bit_array(im, path: Path) -> tuple[np.ndarray, str]:
    """A 16-bit, 32-bit integer or float grey image as float32 ``(H, W)`` in [0, 1], and a note."""
    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise DataError(f"{path}: a float image holding non-finite pixel values (inf or NaN)")
        return a, "float pixels taken as they are"
    if im.mode.startswith("I;16"):
        return a.astype(np.float32) / 65535.0, f"{im.mode} pixels divided by 65535"
    a = a.astype(np.float64)
    if a.size and a.min() >= 0 and a.max() <= 65535:
        return (a / 65535.0).astype(np.float32), "32-bit pixels holding 16-bit values divided by 65535"
    return np.clip(a / (2**31 - 1), 0.0, 1.0).astype(np.float32), "32-bit pixels divided by 2**31 - 1"


def _decode(path: Path, channels: int | None, size: tuple[int, int] | None) -> tuple[np.ndarray, list[str]]:
    """Pixels of ``path`` as float32 ``(H, W)`` or ``(H, W, C)`` and notes (see :func:`read_image`)."""
    from PIL import Image

    notes = []
    with Image.open(path) as im:
        if im.width * im.height > MAX_PIXELS:
            raise DataError(
                f"{path}: an image of {im.width}x{im.height} pixels is larger than the "
                f"{MAX_PIXELS:,} pixels layerlab reads; scale it down first"
            )
        im.load()
        img = im
        if img.mode in HIGH_BIT_MODES:
            arr, note = _high_bit_array(img, path)
            notes.append(note)
            if size is not None and arr.shape != tuple(size):
                notes.append(f"resized from {arr.shape[1]}x{arr.shape[0]} to {size[1]}x{size[0]}")
                resized = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32)).resize(
                    (size[1], size[0]), Image.BILINEAR
                )
                arr = np.array(resized, dtype=np.float32)
            if channels == 3:
                notes.append(f"converted from {img.mode} grey to RGB")
                arr = np.repeat(arr[..., None], 3, axis=2)
        else:
            if channels is None:
                channels = 1 if img.mode in ("1", "L", "LA") else 3
            mode = "L" if channels == 1 else "RGB"
            if img.mode != mode:
                if channels == 1 or img.mode not in ("1", "L", "P"):
                    notes.append(f"converted from {img.mode} to {mode}")
                img = img.convert(mode)
            if size is not None and (img.height, img.width) != tuple(size):
                notes.append(f"resized from {img.width}x{img.height} to {size[1]}x{size[0]}")
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr, notes


def read_image(path: Path, channels: int | None = None, size: tuple[int, int] | None = None):
    """Read an image file as float32 ``(C, H, W)`` in [0, 1] (see the module docstring for how
    each pixel type is scaled).

    ``channels`` 1 or 3 converts (grey <-> RGB); ``size`` (H, W) resizes. Returns the tensor and
    a list of notes on what had to be changed.
    """
    from PIL import Image

    notes = []
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # we check MAX_PIXELS ourselves; damaged EXIF or TIFF tags only warn, and the pixels decide
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            arr, notes = _decode(path, channels, size)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a directory, not an image file") from None
    except Image.DecompressionBombError:
        raise DataError(f"{path}: an image larger than the {MAX_PIXELS:,} pixels layerlab reads") from None
    except MemoryError:
        raise DataError(f"{path}: too large to decode in memory") from None
    except Exception as e:  # a damaged file raises many kinds of error inside Pillow's decoders
        raise DataError(f"{path}: not an image Pillow can read ({type(e).__name__})") from None
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr)), notes


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
