"""The input spec as torch code holds it: :class:`layerlab.inputspec.InputSpec` (the one spec and
its transform from raw input to samples, torch-free, which ``predict --onnx`` uses as it is) with
tensors around it: the permuted-pixel order drawn with torch's ``randperm``, images and sequences
as padded batches, text as token-id tensors.

The data side produces one spec per dataset when it loads it for training; ``run.json`` records it,
and everything after ``train`` (evaluate, predict, generate, inspect, report) applies the recorded
spec: nothing re-derives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import inputspec, readers
from ..errors import DataError
from ..inputspec import HEADS, KINDS, PERMUTATION_SEED, PIXEL_SCALE  # noqa: F401  (their home is inputspec)
from ..readers import SEQUENCE_MODES, standardise  # noqa: F401  (standardise: as predict --onnx applies it)


@dataclass(frozen=True)
class InputSpec(inputspec.InputSpec):
    """:class:`layerlab.inputspec.InputSpec` (its fields and checks, documented there) with the
    transforms torch code applies: tensors in and out."""

    @property
    def permutation(self) -> torch.Tensor | None:
        if self.sequence != "permuted" or self.image_shape is None:
            return None
        _, H, W = self.image_shape
        return pixel_permutation(H * W, PERMUTATION_SEED if self.permutation_seed is None else self.permutation_seed)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] (as :func:`~layerlab.data.formats.folder.read_image`
        gives them) as the model's input: unchanged for an image model, the spec's sequence
        reading for a recurrent one."""
        if self.sequence is None:
            if self.kind not in ("image", "volume"):
                raise DataError(f"the model takes {self.kind} of shape {self.shape}, not images")
            return x
        return image_sequence(x, self.sequence, self.permutation)

    def sequences(
        self, seqs: list[np.ndarray], names: list[str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """Sequences ``(T_i, F)`` of raw values as the model's input: standardised as in training
        (:meth:`~layerlab.inputspec.InputSpec.standardised`, checked after the transform) and
        right-padded. Returns ``x`` ``(N, T, F)``, ``lengths`` (None when all are equal) and the
        number of missing values filled with the training mean."""
        if self.kind != "sequence":
            raise DataError(f"the model takes {self.kind} of shape {self.shape}, not sequences of numbers")
        seqs, missing = self.standardised(seqs, names)
        x, lengths = pad_sequences(seqs)
        return x, lengths, missing

    def tokens(self, text: str, what: str = "text") -> torch.Tensor:
        """Token ids ``(T,)`` of ``text`` in the run's vocabulary."""
        if self.vocab is None:
            raise DataError("this model's input spec has no vocabulary; it does not read text")
        return Vocabulary(self.vocab).encode(text, what)


# ----------------------------------------------------------------------------------------------
# Characters as token ids (here, not in formats/text.py, so the spec needs no reader: the readers
# depend on the spec, never the other way round)
# ----------------------------------------------------------------------------------------------
class Vocabulary:
    """Characters <-> token ids: ``chars[i]`` is token ``i``."""

    def __init__(self, chars: str):
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, s: str, what: str = "text") -> torch.Tensor:
        """Token ids ``(T,)`` of ``s`` (:func:`layerlab.readers.text_ids`, shared with predict --onnx)."""
        return torch.from_numpy(readers.text_ids(s, self.chars, what))

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


# ----------------------------------------------------------------------------------------------
# Images as sequences
# ----------------------------------------------------------------------------------------------
def image_sequence(x: torch.Tensor, mode: str, permutation: torch.Tensor | None = None) -> torch.Tensor:
    """Images ``(N, C, H, W)`` (on the CPU) as sequences: ``rows`` ``(N, H, W*C)``; ``pixels``
    ``(N, H*W, C)``; ``permuted`` the pixel sequence in the fixed order ``permutation`` (by default
    :func:`pixel_permutation`'s). :func:`layerlab.readers.image_sequence` reorders them."""
    if mode == "permuted" and permutation is None:
        permutation = pixel_permutation(x.shape[2] * x.shape[3])
    order = None if permutation is None else permutation.numpy()
    return torch.from_numpy(readers.image_sequence(x.numpy(), mode, order))


def pixel_permutation(n: int, seed: int = PERMUTATION_SEED) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------
# Padding, and the statistics standardise uses (standardise itself is layerlab.readers.standardise)
# ----------------------------------------------------------------------------------------------
def pad_sequences(seqs: list[np.ndarray], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Right-pad ``(T_i, F)`` arrays with zeros to ``(N, T, F)`` float32; lengths ``(N,)``, or None
    when all are ``T`` long."""
    T = length or max(len(s) for s in seqs)
    F = seqs[0].shape[1]
    x = np.zeros((len(seqs), T, F), dtype=np.float32)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    return torch.from_numpy(x), (None if (lengths == T).all() else torch.from_numpy(lengths))


def feature_stats(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over every step of every sequence (NaN ignored)."""
    allv = np.concatenate(seqs, axis=0).astype(np.float64)  # (sum T_i, F)
    mean = np.nanmean(allv, axis=0) if np.isfinite(allv).any() else np.zeros(allv.shape[1])
    std = np.nanstd(allv, axis=0)
    mean = np.nan_to_num(mean)
    std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
    return mean, std
