"""UCR-style CSV/TSV: ``NAME_TRAIN.csv`` (label first, then the values) with ``NAME_TEST.csv``
beside it as a dataset; sequences to predict on (one per row, or a step per row for several
features)."""

from __future__ import annotations

from pathlib import Path

from . import Format, Request, register, sequence_file


def load(path: Path, **_options):
    from ..data.formats.tabular import load_csv_pair

    return load_csv_pair(path)


def read(f: Path, request: Request):
    return sequence_file(f, request)


register(
    Format(
        "csv",
        (".csv", ".tsv"),
        describe="NAME_TRAIN.csv/.tsv",
        load=load,
        read=read,
        reads=lambda spec: spec.kind != "tokens",
    )
)
