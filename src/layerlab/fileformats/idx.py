"""A directory of the four MNIST-layout IDX files (``train-images-idx3-ubyte[.gz]`` and the
others) as a dataset. Named sets (``fashion-mnist``, ...) are IDX too; the catalogue finds those."""

from __future__ import annotations

from pathlib import Path

from . import Format, register


def directory(d: Path) -> Path | None:
    from ..data.formats.idx import find_idx_files

    return d if find_idx_files(d) is not None else None


def load(path: Path, **_options):
    from ..data.formats.idx import load_idx_dir

    return load_idx_dir(path, path.name)


register(Format("idx", (), load=load, sequence_data=False, directory=directory, rank=10))
