"""Text (``.txt``, ``.text``, ``.md``): a character-level language model as a dataset (windows of
``--length`` characters); a prompt in the run's vocabulary to predict the next character of."""

from __future__ import annotations

from pathlib import Path

from . import Format, read_text_file, register


def load(path: Path, *, length=None, n_train=None, n_test=None, **_options):
    from ..data.formats.text import load_text

    return load_text(path, length=length, n_train=n_train, n_test=n_test)


register(
    Format(
        "text",
        (".txt", ".text", ".md"),
        describe="text (.txt, .text, .md)",
        load=load,
        own_options=("length", "n_train", "n_test"),
        read=read_text_file,
        reads=lambda spec: spec.kind == "tokens",
    )
)
