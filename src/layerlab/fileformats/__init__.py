"""The format registry: one module per file format in this package, each declaring its suffixes,
how a dataset is loaded from such a file, why such a file is not a dataset (if it is not), and a
torch-free reader of single inputs for predict. The catalogue (:func:`layerlab.data.catalog.load`),
``layerlab predict RUN_DIR`` and ``layerlab predict --onnx`` all walk this one registry
(:func:`for_path`, :func:`read_files`) instead of dispatch chains of their own.

Adding a format is one file here: a module that calls :func:`register` when imported (every module
of this package is imported on first use). A format's ``load`` may build tensors (it reaches the
torch side, :mod:`layerlab.data.formats`, inside the function, called by the catalogue only); its
module imports no torch, nor does this registry, so ``predict --onnx`` reads inputs without torch
(the ``fileformats-no-torch`` import-linter contract, and a test that imports every format and
reads with torch blocked).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from ..readers import FileInputs, read_sequence_file, read_text, text_ids, token_ids

if TYPE_CHECKING:
    from ..inputspec import InputSpec

KINDS = ("images", "sequences", "texts")  # what a reader gives, one kind per call


@dataclass
class Request:
    """What a reader of single inputs is asked for: the run's input ``spec``
    (:class:`layerlab.inputspec.InputSpec`), ``num_tokens`` (token-id models), ``any_size`` (a model
    that takes any size keeps each image's size) and ``read_ts`` (the torch side's ``.ts`` reader,
    which ``predict --onnx`` lacks)."""

    spec: InputSpec
    num_tokens: int | None = None
    any_size: bool = False
    read_ts: Callable | None = None


@dataclass
class Read:
    """What a reader gives for one file: ``kind`` (images, sequences or texts), the samples, and per
    sample its name, notes and the label its file carries (or None)."""

    kind: str
    samples: list[np.ndarray]
    names: list[str]
    notes: list[list[str]] = field(default_factory=list)
    truths: list = field(default_factory=list)


@dataclass(frozen=True)
class Format:
    """One file format.

    Attributes:
        name: what the catalogue calls it.
        suffixes: the file suffixes it claims (lower case, with the dot).
        describe: how the catalogue lists it as a dataset (``NAME_TRAIN.csv/.tsv``), or "".
        load: ``(path, **options) -> Dataset`` for a file given as a dataset; options are the
            catalogue's (``seed``, ``length``, ``n_train``, ``n_test``); None when it is not one.
        not_a_dataset: with no ``load``: the sentence (``{path}`` filled in) for a file given as a
            dataset.
        own_options: the catalogue options ``load`` applies itself (``length``, ``n_train``,
            ``n_test``); the catalogue applies the others.
        sequence_data: a dataset of it is already sequences (``--sequence`` is refused).
        read: ``(path, Request) -> Read`` for predict, torch-free; None when it cannot be predicted on.
        reads: which input specs ``read`` serves (a predicate on the spec); the others fall through.
        directory: ``(dir) -> Path | None``: for a format a directory holds, what ``load`` takes from
            it (the directory itself, a file or a folder in it), or None when it does not hold one.
        rank: the order directories are tried in (lower first); below 0 before the catalogue's named
            sets (a directory of ``.ts`` files), from 0 after them (IDX, CIFAR-10, the image folder
            last, as it takes any directory).
    """

    name: str
    suffixes: tuple[str, ...]
    describe: str = ""
    load: Callable | None = None
    not_a_dataset: str | None = None
    own_options: tuple[str, ...] = ()
    sequence_data: bool = True
    read: Callable | None = None
    reads: Callable[[InputSpec], bool] = lambda spec: True
    directory: Callable[[Path], Path | None] | None = None
    rank: int = 0

    def claims(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes


_FORMATS: dict[str, Format] = {}
_DISCOVERED = False


def register(fmt: Format) -> Format:
    """Add ``fmt`` (replacing a format of its name); a suffix another format claims is refused."""
    for other in _FORMATS.values():
        shared = set(other.suffixes) & set(fmt.suffixes)
        if other.name != fmt.name and shared:
            raise DataError(f"format {fmt.name!r}: {', '.join(sorted(shared))} is already {other.name!r}'s")
    _FORMATS[fmt.name] = fmt
    return fmt


def unregister(name: str) -> None:
    _FORMATS.pop(name, None)


def formats() -> list[Format]:
    """Every registered format, the modules of this package imported first."""
    global _DISCOVERED
    if not _DISCOVERED:
        _DISCOVERED = True
        for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            importlib.import_module(f"{__name__}.{m.name}")
    return list(_FORMATS.values())


def for_path(path: str | Path) -> Format | None:
    """The format that claims ``path``'s suffix, or None."""
    p = Path(path)
    return next((f for f in formats() if f.claims(p)), None)


def for_directory(path: str | Path, *, before_names: bool) -> tuple[Format, Path] | None:
    """The first format (by ``rank``) that a directory holds, and what its ``load`` takes, among the
    formats tried before the catalogue's named sets (``before_names``) or after them; or None."""
    p = Path(path)
    candidates = [f for f in formats() if f.directory is not None and (f.rank < 0) == before_names]
    for fmt in sorted(candidates, key=lambda f: f.rank):
        assert fmt.directory is not None  # (candidates have one)
        target = fmt.directory(p)
        if target is not None:
            return fmt, target
    return None


def dataset_suffixes() -> tuple[str, ...]:
    """The suffixes of every format a dataset can be loaded from."""
    return tuple(s for f in formats() if f.load is not None for s in f.suffixes)


def described() -> str:
    """The dataset formats as the catalogue lists them (``NAME_TRAIN.ts, ...``)."""
    return ", ".join(f.describe for f in formats() if f.load is not None and f.describe)


# ----------------------------------------------------------------------------------------------
# Files to predict on: the walk both predict paths share
# ----------------------------------------------------------------------------------------------
def read_files(
    files: list[str | Path],
    spec,
    num_tokens: int | None = None,
    *,
    any_size: bool = False,
    read_ts: Callable | None = None,
) -> FileInputs | None:
    """Read files to predict on as a run's input ``spec`` (a :class:`layerlab.inputspec.InputSpec`)
    says, each by the registered format that claims its suffix (for a token model, any other file
    is text). One kind of input per call; None for no files. The samples are raw (sequences not yet
    standardised): the spec's :meth:`~layerlab.inputspec.InputSpec.samples` makes model inputs of
    them, on both predict paths."""
    request = Request(spec, num_tokens, any_size, read_ts)
    out = FileInputs()
    kinds: list[str] = []
    for f in map(Path, files):
        fmt = for_path(f)
        if fmt is not None and fmt.read is not None and fmt.reads(spec):
            got = fmt.read(f, request)
        elif spec.kind == "tokens":
            got = read_text_file(f, request)
        else:
            give = ", ".join(s for g in formats() if g.read is not None and g.reads(spec) for s in g.suffixes)
            raise DataError(f"{f}: cannot predict on a {f.suffix or 'suffix-less'} file; give {give} files")
        if got.kind not in kinds:
            kinds.append(got.kind)
        getattr(out, got.kind).extend(got.samples)
        out.names += got.names
        out.notes += got.notes or [[] for _ in got.samples]
        out.truths += got.truths or [None] * len(got.samples)
    if not out.names:
        return None
    if len(kinds) > 1:
        raise DataError(f"give one kind of input per call, not {' and '.join(k for k in KINDS if k in kinds)} together")
    return out


def read_text_file(f: Path, request: Request) -> Read:
    """A text file as token ids in the run's vocabulary (a character model)."""
    if request.spec.vocab is None:
        raise DataError(
            f"{f}: the model takes token ids and its run keeps no vocabulary to encode text "
            f"with; give the ids as an .npy array of integers"
        )
    ids = text_ids(read_text(f), request.spec.vocab, f"file {f}")
    if len(ids) == 0:
        raise DataError(f"{f}: empty text")
    return Read("texts", [ids], [str(f)])


def named(path: Path, n: int) -> list[str]:
    """``path`` for one sample, ``path[i]`` for each of several."""
    return [str(path)] if n == 1 else [f"{path}[{i}]" for i in range(n)]


def token_file(f: Path, request: Request) -> Read:
    rows = token_ids(f, request.num_tokens)
    return Read("texts", rows, named(f, len(rows)))


def sequence_file(f: Path, request: Request) -> Read:
    """Sequences from one ``.npy``, ``.csv``/``.tsv`` or ``.ts`` file
    (:func:`layerlab.readers.read_sequence_file`), with notes on what reading them assumed (a UCR
    label column) or filled (missing values)."""
    spec = request.spec
    fixed = None if spec.variable_length or spec.kind != "sequence" else spec.shape[0]
    seqs, names, labels = read_sequence_file(f, spec.features, fixed, read_ts=request.read_ts)
    said = []
    if labels and f.suffix.lower() in (".csv", ".tsv"):  # (a label column: rows of one length)
        assert fixed is not None
        said.append(f"every row holds T + 1 = {fixed + 1} values: the first column read as the label")
    missing = sum(int(np.isnan(s).sum()) for s in seqs)
    if missing:
        said.append(f"{missing} missing values filled with the training mean")
    return Read("sequences", seqs, names, [list(said) for _ in seqs], list(labels) if labels else [None] * len(seqs))
