"""A NumPy ``.npy`` array: what predict reads as images or volumes, token ids or sequences (by the
run's input spec); never a dataset (it holds no targets)."""

from __future__ import annotations

from pathlib import Path

from ..readers import grid_array
from . import Format, Read, Request, named, register, sequence_file, token_file


def read(f: Path, request: Request) -> Read:
    spec = request.spec
    if spec.kind in ("image", "volume") and spec.sequence is None:
        xs, note = grid_array(f, spec.kind, spec.shape, spec.pixel_scale, request.any_size)
        return Read("images", xs, named(f, len(xs)), [[note] if note else [] for _ in xs])
    if spec.kind == "tokens":  # token ids as numbers (the copy task)
        return token_file(f, request)
    return sequence_file(f, request)


register(
    Format(
        "npy",
        (".npy",),
        not_a_dataset=(
            "{path}: an .npy array has no targets to train on; put x_train, y_train, x_test, "
            "y_test in one .npz (numpy.savez) instead"
        ),
        read=read,
    )
)
