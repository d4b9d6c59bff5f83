"""Image files (PNG, JPEG, BMP, GIF, WebP): a single image is predicted on, never a dataset (an
image folder is, which :mod:`layerlab.data.catalog` reads as a directory)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..readers import IMAGE_SUFFIXES, read_image
from . import Format, Read, Request, register


def read(f: Path, request: Request) -> Read:
    spec = request.spec
    if spec.image_shape is None:
        raise DataError(f"{f}: the model takes {spec.kind} of shape {spec.shape}, not image files")
    C, H, W = spec.image_shape
    x, notes = read_image(f, channels=C, size=None if request.any_size else (H, W))
    return Read("images", [x], [str(f)], [notes])


register(
    Format(
        "image",
        tuple(sorted(IMAGE_SUFFIXES)),
        not_a_dataset=(
            "{path}: a single image is not a dataset; give a folder of class folders (root/<class>/*{suffix})"
        ),
        sequence_data=False,
        read=read,
    )
)
