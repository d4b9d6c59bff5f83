"""A packed dataset (``layerlab data pack SRC OUT``): a directory of ``.npy`` shards and a JSON
index (:mod:`layerlab.data.pack`), read through memory maps a batch at a time. Tried before the
named sets, as the index file says what the directory is."""

from __future__ import annotations

from pathlib import Path

from . import Format, register

INDEX = "layerlab-pack.json"  # as layerlab.data.pack.INDEX (this module imports no torch)


def load(path: Path, *, workers=None, **_options):
    from ..data.formats.packed import load_packed

    return load_packed(path, workers=workers)


register(
    Format(
        "packed",
        (),
        load=load,
        sequence_data=False,
        directory=lambda d: d if (d / INDEX).is_file() else None,
        rank=-10,
    )
)
