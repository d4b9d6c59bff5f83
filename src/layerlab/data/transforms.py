"""The input spec: how raw input (an image file, a table of numbers, a text) becomes the tensor a
model takes, and the transforms it applies.

The data side produces one :class:`InputSpec` per dataset when it loads it for training (pixel
scaling, images read as sequences and their permutation seed, feature standardisation, vocabulary,
per-sequence or per-step head, the shape of one sample). ``run.json`` records it, and everything
after ``train`` (evaluate, predict, generate, inspect, report) applies the recorded spec: nothing
re-derives it.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from .. import readers
from ..errors import DataError
from ..readers import SEQUENCE_MODES, standardise  # standardise: (s - mean) / std, NaN to 0, as predict --onnx

KINDS = ("image", "volume", "sequence", "tokens")
HEADS = ("last", "step")
PERMUTATION_SEED = 0  # the permuted-pixel task uses one fixed permutation, whatever the run's seed
PIXEL_SCALE = 1 / 255  # uint8 pixels to [0, 1], Keras's x / 255


@dataclass(frozen=True)
class InputSpec:
    """How raw input becomes one model input sample.

    Attributes:
        kind: ``image`` (samples ``(C, H, W)``), ``volume`` (``(C, D, H, W)``), ``sequence``
            (``(T, F)`` floats) or ``tokens`` (``(T,)`` integer ids).
        shape: the shape of one sample as the model takes it (``T`` is the longest training length
            when lengths vary; the largest size when image or volume sizes vary).
        head: ``last`` (one target per sample) or ``step`` (one target per step).
        pixel_scale: image data: raw 8-bit value times this (``1/255``).
        image_shape: images, or images read as sequences: ``(C, H, W)`` of the image files.
        sequence: images read as sequences: ``rows`` | ``pixels`` | ``permuted``.
        permutation_seed: ``permuted``: the seed of the fixed pixel order.
        feature_mean, feature_std: sequences: per-feature standardisation from the training set
            (``(x - mean) / std``; missing values become 0, the training mean).
        variable_length: sequences of different lengths, right-padded (``Split.lengths``).
        variable_size: images or volumes of different sizes (``Split.sizes``), for a model that takes
            any size (a CNN with a global pool): predict then reads each image at its own size.
        vocab: tokens from text: the characters, in id order.
    """

    kind: str
    shape: tuple[int, ...]
    head: str = "last"
    pixel_scale: float | None = None
    image_shape: tuple[int, int, int] | None = None
    sequence: str | None = None
    permutation_seed: int | None = None
    feature_mean: tuple[float, ...] | None = None
    feature_std: tuple[float, ...] | None = None
    variable_length: bool = False
    variable_size: bool = False
    vocab: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise DataError(f"unknown input kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.head not in HEADS:
            raise DataError(f"unknown head {self.head!r}; expected 'last' or 'step'")
        if self.sequence is not None and self.sequence not in SEQUENCE_MODES:
            raise DataError(f"unknown --sequence {self.sequence!r}; expected one of {', '.join(SEQUENCE_MODES)}")
        # tuples, whatever came in (JSON gives lists); a spec read back from run.json is checked as
        # strictly as one a loader made, so a hand-edited record fails here in one sentence
        object.__setattr__(self, "shape", _sizes(self.shape, "shape"))
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", _sizes(self.image_shape, "image_shape", length=3))
        for name in ("feature_mean", "feature_std"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, _numbers(v, name))
        if (self.feature_mean is None) != (self.feature_std is None) or (
            self.feature_mean is not None and len(self.feature_mean) != len(self.feature_std)
        ):
            raise DataError("input spec: feature_mean and feature_std must be given together, one per feature")
        if self.pixel_scale is not None and not (
            isinstance(self.pixel_scale, (int, float)) and 0 < self.pixel_scale < float("inf")
        ):
            raise DataError(f"input spec: pixel_scale must be a positive number, got {self.pixel_scale!r}")
        if self.permutation_seed is not None and (
            not isinstance(self.permutation_seed, int) or isinstance(self.permutation_seed, bool)
        ):
            raise DataError(f"input spec: permutation_seed must be an integer, got {self.permutation_seed!r}")
        for name in ("variable_length", "variable_size"):
            if not isinstance(getattr(self, name), bool):
                raise DataError(f"input spec: {name} must be true or false, got {getattr(self, name)!r}")
        if self.vocab is not None and (not isinstance(self.vocab, str) or not self.vocab):
            raise DataError("input spec: vocab must be a non-empty string of characters")

    # --- record
    def to_dict(self) -> dict:
        """A JSON-ready dict without the unset fields (``run.json`` keeps it as ``input_spec``)."""
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DataError(f"input spec: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            return cls(**d)
        except TypeError as e:
            raise DataError(f"input spec: {e}") from None

    @property
    def features(self) -> int:
        """Features per step of a sequence (1 for tokens, which the model one-hot encodes)."""
        return self.shape[-1] if self.kind == "sequence" else 1

    @property
    def permutation(self) -> torch.Tensor | None:
        if self.sequence != "permuted" or self.image_shape is None:
            return None
        _, H, W = self.image_shape
        return pixel_permutation(H * W, PERMUTATION_SEED if self.permutation_seed is None else self.permutation_seed)

    # --- apply
    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] (as :func:`~layerlab.data.formats.folder.read_image`
        gives them) as the model's input: unchanged for an image model, the spec's sequence
        reading for a recurrent one."""
        if self.sequence is None:
            if self.kind not in ("image", "volume"):
                raise DataError(f"the model takes {self.kind} of shape {self.shape}, not images")
            return x
        return image_sequence(x, self.sequence, self.permutation)

    def sequences(self, seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """Sequences ``(T_i, F)`` of raw values as the model's input: standardised as in training
        and right-padded. Returns ``x`` ``(N, T, F)``, ``lengths`` (None when all are equal) and the
        number of missing values filled with the training mean."""
        if self.kind != "sequence":
            raise DataError(f"the model takes {self.kind} of shape {self.shape}, not sequences of numbers")
        F = self.shape[-1]
        for s in seqs:
            if s.ndim != 2 or s.shape[1] != F:
                raise DataError(f"sequences of {s.shape[-1]} features, the model takes {F}")
        if self.feature_mean is not None:
            seqs, missing = standardise(seqs, self.feature_mean, self.feature_std)
        else:
            missing = int(sum(int((~np.isfinite(s)).sum()) for s in seqs))
            seqs = [np.nan_to_num(np.asarray(s, dtype=np.float64)).astype(np.float32) for s in seqs]
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


def _sizes(v, name: str, length: int | None = None) -> tuple[int, ...]:
    """A shape: a non-empty list of positive integers (of ``length`` items)."""
    ok = (
        isinstance(v, (list, tuple))
        and len(v) > 0
        and all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 for n in v)
    )
    if not ok or (length is not None and len(v) != length):
        raise DataError(f"input spec: {name} must be {length or 'one or more'} positive integers, got {v!r}")
    return tuple(int(n) for n in v)


def _numbers(v, name: str) -> tuple[float, ...]:
    """Finite numbers, one per feature."""
    ok = isinstance(v, (list, tuple)) and all(
        isinstance(n, numbers.Real) and not isinstance(n, bool) and abs(n) < float("inf") for n in v
    )
    if not ok:
        raise DataError(f"input spec: {name} must be finite numbers, got {v!r}")
    return tuple(float(n) for n in v)


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
