"""A CIFAR-10 ``cifar-10-batches-py`` directory (or one holding it) as a dataset, read with an
allow-listing unpickler (:mod:`layerlab.data.formats.cifar`)."""

from __future__ import annotations

from pathlib import Path

from . import Format, register


def directory(d: Path) -> Path | None:
    from ..data.formats.cifar import is_cifar10_dir

    for cand in (d, d / "cifar-10-batches-py"):
        if is_cifar10_dir(cand):
            return cand
    return None


def load(path: Path, **_options):
    from ..data.formats.cifar import load_cifar10_dir

    return load_cifar10_dir(path)


register(Format("cifar10", (), load=load, sequence_data=False, directory=directory, rank=20))
