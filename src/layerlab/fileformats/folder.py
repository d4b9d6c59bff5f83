"""An image folder ``root/<class>/*.png`` (``root/train/`` and ``root/test/`` if present, else a
stratified split) as a dataset: tried last, as any directory may be one."""

from __future__ import annotations

from pathlib import Path

from . import Format, register


def load(path: Path, *, seed: int = 0, keep_sizes: bool = False, image_size=None, channels=None, workers=None, **_):
    from ..data.formats.folder import load_image_folder

    return load_image_folder(
        path, seed=seed, keep_sizes=keep_sizes, image_size=image_size, channels=channels, workers=workers
    )


register(Format("image-folder", (), load=load, sequence_data=False, directory=lambda d: d, rank=100))
