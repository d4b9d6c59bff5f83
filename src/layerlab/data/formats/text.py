"""A character-level corpus from any UTF-8 text file, for a language model: at every step the model
reads one character and predicts the next (a per-step head, ``y_t = V h_t + c``).

The vocabulary (:class:`~layerlab.data.transforms.Vocabulary`) is the sorted set of the file's
characters, kept in the input spec (``spec.vocab``) so ``layerlab generate`` can encode a prompt and
decode samples. The text is cut into non-overlapping
windows of ``T + 1`` characters: inputs are the first ``T`` token ids, targets the last ``T`` (the
input shifted by one). The first 90% of the text trains, the last 10% tests, so no test window
overlaps a training one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...errors import DataError
from ...readers import read_text  # the UTF-8 text of a file, shared with predict --onnx
from .. import Dataset, Split
from ..transforms import InputSpec, Vocabulary

DEFAULT_LENGTH = 100
TEST_FRACTION = 0.1


def windows(ids: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping windows: inputs ``(N, T)`` and next-character targets ``(N, T)``."""
    n = (len(ids) - 1) // length
    x = ids[: n * length].view(n, length)
    y = ids[1 : n * length + 1].view(n, length)
    return x.clone(), y.clone()


def load_text(
    path: str | Path, *, length: int | None = None, n_train: int | None = None, n_test: int | None = None
) -> Dataset:
    """A character-level language-model dataset from the text file ``path``: token ids ``(N, T)``
    in windows of ``T = length`` and next-character targets ``(N, T)``."""
    path = Path(path)
    text = read_text(path)
    T = int(length or DEFAULT_LENGTH)
    if T < 1:
        raise DataError(f"--length must be at least 1, got {T}")
    n_test_chars = max(T + 1, int(len(text) * TEST_FRACTION))
    if len(text) < n_test_chars + T + 1:
        raise DataError(
            f"{path}: {len(text)} characters are too few for windows of {T}; use a longer text "
            f"or a smaller --length (at least {int((T + 1) / (1 - TEST_FRACTION)) + T + 1} "
            f"characters are needed)"
        )
    vocab = Vocabulary("".join(sorted(set(text))))
    ids = vocab.encode(text)
    split = len(ids) - n_test_chars
    xtr, ytr = windows(ids[:split], T)
    xte, yte = windows(ids[split:], T)
    if n_train:
        xtr, ytr = xtr[:n_train], ytr[:n_train]
    if n_test:
        xte, yte = xte[:n_test], yte[:n_test]
    meta = {"length": T, "characters": len(text), "kind": "text"}
    return Dataset(
        path.stem,
        Split(xtr, ytr),
        Split(xte, yte),
        "sequence-classification",
        list(vocab.chars),
        len(vocab),
        source=str(path),
        meta=meta,
        spec=InputSpec("tokens", (T,), head="step", vocab=vocab.chars),
    )
