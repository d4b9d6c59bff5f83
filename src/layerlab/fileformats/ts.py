"""UCR/UEA ``.ts`` time series: ``NAME_TRAIN.ts`` with ``NAME_TEST.ts`` beside it as a dataset
(given as the file or as a directory holding it);
every case of a ``.ts`` file to predict on (with ``layerlab predict RUN_DIR``, whose torch side
reads them; ``predict --onnx`` says so)."""

from __future__ import annotations

from pathlib import Path

from . import Format, Request, register, sequence_file


def load(path: Path, **_options):
    from ..data.formats.ts import load_ts_pair

    return load_ts_pair(path)


def read(f: Path, request: Request):
    return sequence_file(f, request)  # read_sequence_file refuses .ts without the torch side's reader


def directory(d: Path) -> Path | None:
    """The first ``*_TRAIN.ts`` of a directory, tried before the named sets."""
    return next(iter(sorted(d.glob("*_TRAIN.ts"))), None)


register(
    Format(
        "ts",
        (".ts",),
        describe="NAME_TRAIN.ts",
        load=load,
        read=read,
        reads=lambda spec: spec.kind != "tokens",
        directory=directory,
        rank=-1,
    )
)
