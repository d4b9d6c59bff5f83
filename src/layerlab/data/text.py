"""A character-level corpus from any UTF-8 text file, for a language model: at every step the model
reads one character and predicts the next (a per-step head, ``y_t = V h_t + c``).

The vocabulary is the sorted set of the file's characters (kept in ``Dataset.meta["vocab"]`` so
``layerlab generate`` can encode a prompt and decode samples). The text is cut into non-overlapping
windows of ``T + 1`` characters: inputs are the first ``T`` token ids, targets the last ``T`` (the
input shifted by one). The first 90% of the text trains, the last 10% tests, so no test window
overlaps a training one.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DataError
from . import Dataset, Split

DEFAULT_LENGTH = 100
TEST_FRACTION = 0.1


class Vocabulary:
    """Characters <-> token ids."""

    def __init__(self, chars: str):
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, s: str, what: str = "text") -> torch.Tensor:
        unknown = sorted({c for c in s if c not in self.index})
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:8])
            raise DataError(f"the {what} holds character(s) {shown} that the model's vocabulary of "
                            f"{len(self)} characters lacks")
        return torch.tensor([self.index[c] for c in s], dtype=torch.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start} cannot be decoded)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    return text.replace("\r\n", "\n")


def windows(ids: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping windows: inputs ``(N, T)`` and next-character targets ``(N, T)``."""
    n = (len(ids) - 1) // length
    x = ids[: n * length].view(n, length)
    y = ids[1: n * length + 1].view(n, length)
    return x.clone(), y.clone()


def load_text(path: str | Path, *, length: int | None = None, n_train: int | None = None,
              n_test: int | None = None) -> Dataset:
    """A character-level language-model dataset from the text file ``path`` (windows of ``length``)."""
    path = Path(path)
    text = read_text(path)
    T = int(length or DEFAULT_LENGTH)
    if T < 1:
        raise DataError(f"--length must be at least 1, got {T}")
    n_test_chars = max(T + 1, int(len(text) * TEST_FRACTION))
    if len(text) < n_test_chars + T + 1:
        raise DataError(f"{path}: {len(text)} characters are too few for windows of {T}; use a longer text "
                        f"or a smaller --length (at least {int((T + 1) / (1 - TEST_FRACTION)) + T + 1} "
                        f"characters are needed)")
    vocab = Vocabulary("".join(sorted(set(text))))
    ids = vocab.encode(text)
    split = len(ids) - n_test_chars
    xtr, ytr = windows(ids[:split], T)
    xte, yte = windows(ids[split:], T)
    if n_train:
        xtr, ytr = xtr[:n_train], ytr[:n_train]
    if n_test:
        xte, yte = xte[:n_test], yte[:n_test]
    meta = {"vocab": vocab.chars, "head": "step", "length": T, "characters": len(text), "kind": "text"}
    return Dataset(path.stem, Split(xtr, ytr), Split(xte, yte), "sequence-classification", list(vocab.chars),
                   len(vocab), source=str(path), meta=meta)
