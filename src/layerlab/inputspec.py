"""The input spec, without torch: what one model input sample is and how raw input becomes one.

The data side produces one :class:`InputSpec` per dataset when it loads it for training (pixel
scaling, images read as sequences and their permutation seed, feature standardisation,
vocabulary, per-sequence or per-step head, the shape of one sample); ``run.json`` records it and an
exported ONNX model carries it. Everything after ``train`` applies the recorded spec; nothing
re-derives it.

This is the one implementation of the spec and of its transform from raw input to samples
(:meth:`InputSpec.samples`): ``layerlab predict --onnx`` (:mod:`layerlab.deploy`) uses it as it is,
and :class:`layerlab.data.transforms.InputSpec`, the spec torch code holds, is this class with
tensors around it (the permuted-pixel order drawn with torch's ``randperm``, padded batches).
Reading a spec back (:meth:`InputSpec.from_dict`, from ``run.json`` or an ONNX file) checks every
field as strictly as a loader making one, each problem one sentence.

Imports NumPy and, of layerlab, :mod:`layerlab.errors` and :mod:`layerlab.readers`: never torch
(the ``inputspec-no-torch`` import-linter contract).
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

import numpy as np

from .choices import HEADS
from .errors import DataError
from .readers import SEQUENCE_MODES, FileInputs, image_sequence, standardise

KINDS = ("image", "volume", "sequence", "tokens")
PERMUTATION_SEED = 0  # the permuted-pixel task uses one fixed permutation, whatever the run's seed
PIXEL_SCALE = 1 / 255  # uint8 pixels to [0, 1], Keras's x / 255 (readers.scale_pixels divides by 255)


@dataclass(frozen=True)
class InputSpec:
    """How raw input becomes one model input sample.

    Attributes:
        kind: ``image`` (samples ``(C, H, W)``), ``volume`` (``(C, D, H, W)``), ``sequence``
            (``(T, F)`` floats) or ``tokens`` (``(T,)`` integer ids).
        shape: the shape of one sample as the model takes it (``T`` is the longest training length
            when lengths vary; the largest size when image or volume sizes vary).
        head: ``last`` (one target per sample) or ``step`` (one target per step).
        pixel_scale: image data that came as uint8 pixels: each 8-bit value times this (``1/255``).
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
    image_shape: tuple[int, ...] | None = None  # (C, H, W): three sizes, checked on creation
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
        if self.feature_std is not None and not all(v > 0 for v in self.feature_std):
            raise DataError("input spec: feature_std must be positive numbers, one per feature")
        if self.feature_mean is not None and self.kind == "sequence" and len(self.feature_mean) != self.shape[-1]:
            raise DataError(
                f"input spec: {len(self.feature_mean)} feature means for sequences of {self.shape[-1]} features"
            )
        if self.pixel_scale is not None and not (
            isinstance(self.pixel_scale, (int, float))
            and not isinstance(self.pixel_scale, bool)
            and 0 < self.pixel_scale < float("inf")
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
    def from_dict(cls, d: dict):
        """The spec a dict records (``run.json``'s ``input_spec``, an ONNX file's metadata), every
        field checked; one sentence for the first thing wrong."""
        if not isinstance(d, dict):
            raise DataError(f"input spec: expected a table of fields, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            # repr: a key is the file's text, and may hold a line break; the sentence stays one line
            raise DataError(f"input spec: unknown field(s) {', '.join(sorted(repr(k) for k in unknown))}")
        try:
            return cls(**d)
        except TypeError as e:
            raise DataError(f"input spec: {e}") from None

    @property
    def features(self) -> int:
        """Features per step of a sequence (1 for tokens, which the model one-hot encodes)."""
        return self.shape[-1] if self.kind == "sequence" else 1

    # --- apply
    def samples(self, read: FileInputs, permutation: np.ndarray | None = None) -> list[np.ndarray]:
        """What :func:`layerlab.fileformats.read_files` read, as the model's samples (one each, no
        batch axis, not padded): images as they are for an image model, read as sequences for a
        recurrent one (``permutation``, the pixel order of a ``permuted`` run: torch draws it, an
        exported model stores it); sequences standardised as in training (checked after the
        transform); token ids as they are. One sentence when the input is not of the model's kind."""
        if read.images:
            if self.sequence is None:
                if self.kind not in ("image", "volume"):
                    raise DataError(f"the model takes {self.kind} of shape {self.shape}, not images")
                return list(read.images)
            if self.sequence == "permuted" and permutation is None:
                raise DataError("the model reads permuted pixels and its record holds no permutation of them")
            return list(image_sequence(np.stack(read.images), self.sequence, permutation))
        if read.texts:
            return list(read.texts)
        if self.kind != "sequence":
            raise DataError(f"the model takes {self.kind} of shape {self.shape}, not sequences of numbers")
        return self.standardised(read.sequences, read.names)[0]

    def standardised(self, seqs: list[np.ndarray], names: list[str] | None = None) -> tuple[list[np.ndarray], int]:
        """Sequences ``(T_i, F)`` of raw values standardised as in training (float32; missing
        values 0; checked after the transform, naming ``names[i]``), and how many were missing."""
        F = self.shape[-1]
        for s in seqs:
            if s.ndim != 2 or s.shape[1] != F:
                raise DataError(f"sequences of {s.shape[-1]} features, the model takes {F}")
        if self.feature_mean is not None:
            return standardise(seqs, self.feature_mean, self.feature_std, names)
        return standardise(seqs, np.zeros(F), np.ones(F), names)  # raw values: NaN to 0, checked


def _sizes(v, name: str, length: int | None = None) -> tuple[int, ...]:
    """A shape: a non-empty list of positive integers (of ``length`` items)."""
    ok = (
        isinstance(v, (list, tuple))
        and len(v) > 0
        and all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 for n in v)  # type: ignore[operator]
    )
    if not ok or (length is not None and len(v) != length):
        raise DataError(f"input spec: {name} must be {length or 'one or more'} positive integers, got {v!r}"[:300])
    return tuple(int(n) for n in v)


def _numbers(v, name: str) -> tuple[float, ...]:
    """Finite numbers, one per feature."""
    ok = isinstance(v, (list, tuple)) and all(
        isinstance(n, numbers.Real) and not isinstance(n, bool) and abs(n) < float("inf")  # type: ignore[operator]
        for n in v
    )
    if not ok:
        raise DataError(f"input spec: {name} must be finite numbers, got {v!r}"[:300])
    return tuple(float(n) for n in v)
