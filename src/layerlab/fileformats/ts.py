"""UCR/UEA ``.ts`` time series: ``NAME_TRAIN.ts`` with ``NAME_TEST.ts`` beside it as a dataset;
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


register(
    Format("ts", (".ts",), describe="NAME_TRAIN.ts", load=load, read=read, reads=lambda spec: spec.kind != "tokens")
)
