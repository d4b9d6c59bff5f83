"""Image files (Pillow reads them) and image folders: ``root/<class>/*.png``, or
``root/train/<class>/...`` with ``root/test/<class>/...``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from .. import Dataset, Split
from ..transforms import PIXEL_SCALE, InputSpec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def read_image(path: Path, channels: int | None = None, size: tuple[int, int] | None = None):
    """Read an image file as float32 (C, H, W) in [0, 1].

    ``channels`` 1 or 3 converts (grey <-> RGB); ``size`` (H, W) resizes. Returns the tensor and
    a list of notes on what had to be changed.
    """
    from PIL import Image, UnidentifiedImageError

    notes = []
    try:
        with Image.open(path) as im:
            im.load()
            img = im
            if channels is None:
                channels = 1 if img.mode in ("1", "L", "I", "I;16", "F", "LA") else 3
            mode = "L" if channels == 1 else "RGB"
            if img.mode != mode:
                if channels == 1 or img.mode not in ("1", "L", "P"):
                    notes.append(f"converted from {img.mode} to {mode}")
                img = img.convert(mode)
            if size is not None and (img.height, img.width) != tuple(size):
                notes.append(f"resized from {img.width}x{img.height} to {size[1]}x{size[0]}")
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not an image Pillow can read ({type(e).__name__})") from None
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr)), notes


def _folder_split(root: Path, classes: list[str], channels: int, size) -> Split:
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
        raise DataError(f"{root}: no images found in its class folders ({', '.join(IMAGE_SUFFIXES)})")
    return Split(torch.stack(xs), torch.tensor(ys, dtype=torch.int64))


def _class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _first_image(root: Path) -> Path | None:
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            return p
    return None


def load_image_folder(root: Path, *, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """``root/<class>/*.png`` (split ``test_fraction`` for testing, stratified, by ``seed``), or
    ``root/train/<class>/...`` with ``root/test/<class>/...``. Channels and size come from the
    first image; others are converted to match. Images ``(N, C, H, W)`` in [0, 1]."""
    has_split = (root / "train").is_dir() and (root / "test").is_dir()
    train_root = root / "train" if has_split else root
    classes = _class_dirs(train_root)
    if not classes:
        raise DataError(f"{root}: an image folder needs one subfolder per class (root/<class>/*.png)")
    first = _first_image(train_root)
    if first is None:
        raise DataError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders")
    x0, _ = read_image(first)
    channels, size = x0.shape[0], tuple(x0.shape[1:])
    if has_split:
        train = _folder_split(root / "train", classes, channels, size)
        test = _folder_split(root / "test", classes, channels, size)
    else:
        full = _folder_split(root, classes, channels, size)
        g = torch.Generator().manual_seed(seed)
        train_idx, test_idx = [], []
        for k in range(len(classes)):
            idx = torch.nonzero(full.y == k).flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            n_test = round(test_fraction * len(idx)) if len(idx) > 1 else 0
            test_idx.append(idx[:n_test])
            train_idx.append(idx[n_test:])
        train, test = full.subset(torch.cat(train_idx)), full.subset(torch.cat(test_idx))
        if len(test) == 0:
            raise DataError(f"{root}: too few images to hold out a test split; add a test/ folder")
    shape = (channels, *size)
    return Dataset(
        root.name,
        train,
        test,
        "classification",
        classes,
        len(classes),
        source=str(root),
        spec=InputSpec("image", shape, pixel_scale=PIXEL_SCALE, image_shape=shape),
    )
