"""The catalogue: which data a dataset spec (a name or a path) means, where named sets are found,
and the one routing function, :func:`load`, that turns a spec into a :class:`~layerlab.data.Dataset`.

Specs, in order of precedence (the first that matches wins):

1. ``adding``, ``copy``: generated (:mod:`.synthetic`; ``--length T``, ``--n-train``, ``--n-test``);
   ``mnist-1d``: generated once by the ``mnist1d`` package and cached (:mod:`.formats.mnist1d`);
2. a directory holding ``NAME_TRAIN.ts`` (with ``NAME_TEST.ts``): a UCR/UEA set (the registered
   directory formats of rank below 0, :func:`layerlab.fileformats.for_directory`);
3. a file, by the registered format (:mod:`layerlab.fileformats`, one module per format) that
   claims its suffix: ``NAME_TRAIN.ts``; ``NAME_TRAIN.csv`` / ``.tsv`` (UCR's layout: label first,
   then the values); ``.npz`` with ``x_train, y_train, x_test, y_test``; ``.txt`` / ``.text`` /
   ``.md``, a character-level language model; an ``.npy`` is refused (it has no targets), so is a
   single image (give a folder) and a file of any other suffix (it exists but is not a dataset),
   unless its name is also a named image set (5);
4. a bare ``NAME`` that is neither a file nor a directory: a UCR/UEA set ``NAME/NAME_TRAIN.ts`` in
   ``--data-dir``, ``$LAYERLAB_DATA_DIR`` or the sets the ``aeon`` package bundles (``BasicMotions``,
   ``JapaneseVowels``, ``ArrowHead``, ...);
5. a named image set (``mnist``, ``fashion-mnist``, ``kmnist``, ``cifar10`` and aliases), even where
   a directory of that name exists;
6. a directory, by the registered directory formats in rank order: the four MNIST-layout IDX files
   (:mod:`.formats.idx`), a CIFAR-10 ``cifar-10-batches-py`` directory (or one holding it,
   :mod:`.formats.cifar`), else an image folder (``root/<class>/*.png``, :mod:`.formats.folder`).

Named image sets are looked for, in order, in: the directory the user gives (``--data-dir``), the
``LAYERLAB_DATA_DIR`` environment variable, the per-user cache (``LAYERLAB_CACHE_DIR``, else
``$XDG_CACHE_HOME/layerlab`` or ``~/.cache/layerlab``), known system locations (Debian's
``dataset-fashion-mnist`` package installs /usr/share/datasets/fashion-mnist), and finally
downloaded from the official location into the cache and verified by SHA-256. Set
``LAYERLAB_OFFLINE=1`` to never download. ``mnist-1d`` is looked for (as ``mnist1d_data.npz``) in
the same directories but the system ones, and otherwise generated (offline) into the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import torch

from .. import fileformats
from ..errors import DataError
from . import Dataset, Split, synthetic
from .formats import cifar, idx, mnist1d, ts

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Named image sets and where to find them
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Remote:
    filename: str
    url: str
    sha256: str


@dataclass(frozen=True)
class NamedSet:
    name: str
    description: str
    classes: tuple[str, ...]
    files: tuple[Remote, ...]
    system_dirs: tuple[str, ...] = ()
    kind: str = "idx"  # or "cifar10"


_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_KMNIST_URL = "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"

NAMED: dict[str, NamedSet] = {
    "mnist": NamedSet(
        "mnist",
        "MNIST handwritten digits, 28x28 grey, 10 classes",
        tuple(str(i) for i in range(10)),
        (
            Remote(
                "train-images-idx3-ubyte.gz",
                _MNIST_URL + "train-images-idx3-ubyte.gz",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            ),
            Remote(
                "train-labels-idx1-ubyte.gz",
                _MNIST_URL + "train-labels-idx1-ubyte.gz",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            ),
            Remote(
                "t10k-images-idx3-ubyte.gz",
                _MNIST_URL + "t10k-images-idx3-ubyte.gz",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            ),
            Remote(
                "t10k-labels-idx1-ubyte.gz",
                _MNIST_URL + "t10k-labels-idx1-ubyte.gz",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            ),
        ),
        ("/usr/share/datasets/mnist", "/usr/local/share/datasets/mnist"),
    ),
    "fashion-mnist": NamedSet(
        "fashion-mnist",
        "Fashion-MNIST clothing, 28x28 grey, 10 classes",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (
            Remote(
                "train-images-idx3-ubyte.gz",
                _FASHION_URL + "train-images-idx3-ubyte.gz",
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            ),
            Remote(
                "train-labels-idx1-ubyte.gz",
                _FASHION_URL + "train-labels-idx1-ubyte.gz",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            ),
            Remote(
                "t10k-images-idx3-ubyte.gz",
                _FASHION_URL + "t10k-images-idx3-ubyte.gz",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            ),
            Remote(
                "t10k-labels-idx1-ubyte.gz",
                _FASHION_URL + "t10k-labels-idx1-ubyte.gz",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            ),
        ),
        ("/usr/share/datasets/fashion-mnist", "/usr/local/share/datasets/fashion-mnist"),
    ),
    "kmnist": NamedSet(
        "kmnist",
        "Kuzushiji-MNIST cursive Japanese, 28x28 grey, 10 classes",
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        (
            Remote(
                "train-images-idx3-ubyte.gz",
                _KMNIST_URL + "train-images-idx3-ubyte.gz",
                "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
            ),
            Remote(
                "train-labels-idx1-ubyte.gz",
                _KMNIST_URL + "train-labels-idx1-ubyte.gz",
                "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
            ),
            Remote(
                "t10k-images-idx3-ubyte.gz",
                _KMNIST_URL + "t10k-images-idx3-ubyte.gz",
                "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
            ),
            Remote(
                "t10k-labels-idx1-ubyte.gz",
                _KMNIST_URL + "t10k-labels-idx1-ubyte.gz",
                "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
            ),
        ),
        ("/usr/share/datasets/kmnist", "/usr/local/share/datasets/kmnist"),
    ),
    "cifar10": NamedSet(
        "cifar10",
        "CIFAR-10 photos, 32x32 RGB, 10 classes (python batches)",
        cifar.CLASSES,
        (
            Remote(
                "cifar-10-python.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            ),
        ),
        ("/usr/share/datasets/cifar10", "/usr/local/share/datasets/cifar10"),
        kind="cifar10",
    ),
}
#: One line per named image set (``known_datasets`` adds the synthetic tasks and bundled UCR/UEA sets).
DESCRIPTIONS = {k: v.description for k, v in NAMED.items()}
ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "mnist1d": mnist1d.NAME,
    "mnist_1d": mnist1d.NAME,
}


def cache_root() -> Path:
    if os.environ.get("LAYERLAB_CACHE_DIR"):
        return Path(os.environ["LAYERLAB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "layerlab"


def candidate_dirs(name: str, data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """Where a named set (or ``mnist-1d``'s cache file) is looked for, in order, each with the reason
    it is a candidate."""
    out: list[tuple[str, Path]] = []
    for label, base in (("--data-dir", data_dir), ("LAYERLAB_DATA_DIR", os.environ.get("LAYERLAB_DATA_DIR"))):
        if base:
            out.append((label, Path(base)))
            out.append((label, Path(base) / name))
    out.append(("cache", cache_root() / name))
    out += [("system", Path(d)) for d in (NAMED[name].system_dirs if name in NAMED else ())]
    return out


def _dir_holds(ns: NamedSet, d: Path) -> bool:
    if not d.is_dir():
        return False
    if ns.kind == "cifar10":
        return cifar.is_cifar10_dir(d) or cifar.is_cifar10_dir(d / "cifar-10-batches-py")
    return idx.find_idx_files(d) is not None


def locate(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The first directory that holds the named set, or None."""
    ns = NAMED[name]
    for _, d in candidate_dirs(name, data_dir):
        if _dir_holds(ns, d):
            return d
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def offline() -> bool:
    """True when ``LAYERLAB_OFFLINE`` says never to download."""
    return os.environ.get("LAYERLAB_OFFLINE", "").lower() in ("1", "true", "yes")


def fetch(r: Remote, target: Path, timeout: float = 30.0) -> Path:
    """Download ``r`` into the folder ``target`` unless a file of its SHA-256 is there, and return its path
    (with ``LAYERLAB_OFFLINE`` set, DataError instead of a download).

    The file is written to a temporary name and renamed only once verified, so an interrupted or
    tampered download never looks like the file.
    """
    target.mkdir(parents=True, exist_ok=True)
    dest = target / r.filename
    if dest.is_file() and _sha256(dest) == r.sha256:
        return dest
    if offline():
        state = "does not match its SHA-256" if dest.is_file() else "is not there"
        raise DataError(f"{dest} {state} and downloading is switched off (LAYERLAB_OFFLINE)")
    log.info("downloading %s", r.url)
    fd, tmp = tempfile.mkstemp(dir=target, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(r.url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        digest = _sha256(Path(tmp))
        if digest != r.sha256:
            raise DataError(f"{r.url}: SHA-256 mismatch (got {digest}, expected {r.sha256}); not using it")
        os.replace(tmp, dest)
    except OSError as e:
        raise DataError(f"could not download {r.url} ({getattr(e, 'reason', None) or e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def download(name: str, timeout: float = 30.0) -> Path:
    """Download a named set into the cache, verify each file's SHA-256 (:func:`fetch`), and return its
    directory."""
    ns = NAMED[name]
    target = cache_root() / name
    for r in ns.files:
        fetch(r, target, timeout)
    if ns.kind == "cifar10" and not cifar.is_cifar10_dir(target / "cifar-10-batches-py"):
        with tarfile.open(target / ns.files[0].filename) as tar:
            tar.extractall(target, filter="data")
    return target


def load_named(name: str, data_dir: str | Path | None = None, download_ok: bool = True) -> Dataset:
    """Load a named set from the first place that holds it, downloading it as the last resort."""
    name = ALIASES.get(name, name)
    ns = NAMED[name]
    d = locate(name, data_dir)
    if d is None:
        never = offline()
        error = None
        if download_ok and not never:
            try:
                d = download(name)
            except DataError as e:
                error = str(e)
        if d is None:
            looked = "; ".join(f"{p} ({label})" for label, p in candidate_dirs(name, data_dir))
            why = f"the download failed: {error}" if error else "downloading is switched off"
            hint = " On Debian: apt-get install dataset-fashion-mnist." if name == "fashion-mnist" else ""
            raise DataError(
                f"dataset {name!r} not found; looked in {looked}, and {why}. Put the files "
                f"in one of those directories or pass --data-dir DIR.{hint}"
            )
    if ns.kind == "cifar10":
        ds = cifar.load_cifar10_dir(d if cifar.is_cifar10_dir(d) else d / "cifar-10-batches-py")
    else:
        ds = idx.load_idx_dir(d, name, list(ns.classes))
    ds.name = name
    return ds


def availability(data_dir=None) -> list[dict]:
    """For ``layerlab data list``: each named set, whether it is here and where."""
    rows = []
    for name, ns in NAMED.items():
        d = locate(name, data_dir)
        rows.append(
            {
                "name": name,
                "description": ns.description,
                "available": d is not None,
                "path": str(d) if d else None,
                "download": ns.files[0].url.rsplit("/", 1)[0] + "/",
            }
        )
    return rows


# ----------------------------------------------------------------------------------------------
# MNIST-1D: generated once with the mnist1d package, then read from its cached .npz
# ----------------------------------------------------------------------------------------------
MNIST1D_DESCRIPTION = "MNIST-1D digits as 40-step sequences, 10 classes, 4000/1000 (made by the mnist1d package)"


def locate_mnist1d(data_dir: str | Path | None = None) -> Path | None:
    """The first ``mnist1d_data.npz`` in the named sets' directories (``--data-dir``,
    ``$LAYERLAB_DATA_DIR``, each also with ``mnist-1d/``, then the cache), or None."""
    for _, d in candidate_dirs(mnist1d.NAME, data_dir):
        if (d / mnist1d.FILENAME).is_file():
            return d / mnist1d.FILENAME
    return None


def load_mnist1d(data_dir: str | Path | None = None) -> Dataset:
    """MNIST-1D from its cache file, or generated (never downloaded) into the cache the first time."""
    target = cache_root() / mnist1d.NAME / mnist1d.FILENAME
    return mnist1d.load_mnist1d(locate_mnist1d(data_dir), target)


def _mnist1d_description() -> str:
    try:
        installed = find_spec("mnist1d") is not None
    except (ImportError, ValueError):
        installed = False
    return MNIST1D_DESCRIPTION + ("" if installed else f"; {mnist1d.INSTALL_HINT}")


# ----------------------------------------------------------------------------------------------
# Named UCR/UEA sets: in --data-dir, $LAYERLAB_DATA_DIR, or bundled with aeon
# ----------------------------------------------------------------------------------------------
def bundled_ts_root() -> Path | None:
    """aeon's bundled data directory, found without importing aeon (a 4-second import)."""
    try:
        spec = find_spec("aeon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return root if root.is_dir() else None


def _ts_roots(data_dir=None) -> list[Path]:
    roots = [Path(d) for d in (data_dir, os.environ.get("LAYERLAB_DATA_DIR")) if d]
    b = bundled_ts_root()
    return roots + ([b] if b else [])


def find_named_ts(name: str, data_dir=None) -> Path | None:
    """``ROOT/NAME/NAME_TRAIN.ts`` (or ``ROOT/NAME_TRAIN.ts``) in the first root that has it."""
    if not name or "/" in name or os.sep in name:
        return None
    for root in _ts_roots(data_dir):
        for cand in (root / name / f"{name}_TRAIN.ts", root / f"{name}_TRAIN.ts"):
            if cand.is_file() and cand.with_name(f"{name}_TEST.ts").is_file():
                return cand
    return None


def bundled_ts_names() -> list[str]:
    """The UCR/UEA sets aeon bundles (each a directory with NAME_TRAIN.ts and NAME_TEST.ts)."""
    root = bundled_ts_root()
    if root is None:
        return []
    return sorted(
        d.name for d in root.iterdir() if (d / f"{d.name}_TRAIN.ts").is_file() and (d / f"{d.name}_TEST.ts").is_file()
    )


def known_datasets() -> dict[str, str]:
    """Every dataset name the catalogue knows, with a one-line description: the named image sets,
    the synthetic tasks, MNIST-1D and the UCR/UEA sets aeon bundles."""
    out = dict(DESCRIPTIONS)
    out.update(synthetic.DESCRIPTIONS)
    out[mnist1d.NAME] = _mnist1d_description()
    out.update({n: "UCR/UEA time-series set bundled with the aeon package" for n in bundled_ts_names()})
    return out


# ----------------------------------------------------------------------------------------------
# Routing: a spec and options to a Dataset
# ----------------------------------------------------------------------------------------------
#: Options of how files are read, which the directory formats take (an image folder, packed shards).
READING = ("image_size", "channels", "workers")


def load(
    spec: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    seed: int = 0,
    sequence: str | None = None,
    length: int | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    any_size: bool = False,
    **_options,
) -> Dataset:
    """The dataset ``spec`` names, tried in the order of the module docstring, checked by
    :func:`check_dataset` before anything trains on it.

    ``seed`` draws the synthetic tasks and an image folder's test split; ``length`` is T of the
    synthetic tasks and of text windows, and an error for any other data (it has no length to
    set); ``n_train`` / ``n_test`` size the synthetic tasks and keep the first cases of every other
    dataset; ``sequence`` is refused for data that already is sequences (the caller reads images
    as sequences with :func:`~layerlab.data.images_as_sequences`); ``any_size`` (the model takes any
    size) keeps an image folder's images at their own sizes. Other options are ignored.
    Raises :class:`DataError` for a spec that names nothing.
    """
    for flag, v in (("--n-train", n_train), ("--n-test", n_test), ("--length", length)):
        if v is not None and int(v) < 1:
            raise DataError(f"{flag} must be at least 1, got {v}")
    key = spec.strip().lower()
    if key in synthetic.DEFAULTS:
        _no_sequence_mode(spec, sequence)
        return check_dataset(synthetic.load(key, length=length, n_train=n_train, n_test=n_test, seed=seed))
    p = Path(spec).expanduser()
    fmt = fileformats.for_path(p) if p.suffix else None  # the format registry: one module per format
    if fmt is not None and fmt.load is not None and not p.exists():
        raise DataError(f"{p}: no such file")  # a dataset format's file, not a name
    if p.is_file() and fmt is not None and fmt.load is not None and fmt.own_options:  # e.g. text: its own T
        if fmt.sequence_data:
            _no_sequence_mode(spec, sequence)
        options = {"length": length, "n_train": n_train, "n_test": n_test}
        return check_dataset(fmt.load(p, seed=seed, **{k: v for k, v in options.items() if k in fmt.own_options}))
    if length is not None:
        raise DataError(
            f"--length sets T of the synthetic tasks (adding, copy) and of text files; {spec} has no length to set"
        )
    reading = {k: v for k, v in _options.items() if k in READING and v is not None}
    ds = _subset(_route(spec, p, data_dir, download, seed, sequence, any_size, reading), n_train, n_test)
    return check_dataset(ds, subset=bool(n_train or n_test))


def _route(
    spec: str, p: Path, data_dir, download: bool, seed: int, sequence: str | None, any_size: bool = False, reading=None
) -> Dataset:
    """Steps 2 to 6 of the module docstring: a spec that is not a synthetic task nor a text file
    (and ``mnist-1d``, generated as they are, first)."""
    if ALIASES.get(spec.strip().lower(), spec.strip().lower()) == mnist1d.NAME:
        _no_sequence_mode(spec, sequence)
        return load_mnist1d(data_dir)
    suffix = p.suffix.lower()
    # 2. a directory holding a format tried before the named sets (a directory of .ts files)
    found = fileformats.for_directory(p, before_names=True) if p.is_dir() else None
    if found is not None:
        if found[0].sequence_data:
            _no_sequence_mode(spec, sequence)
        assert found[0].load is not None  # (a directory format loads)
        return found[0].load(found[1], seed=seed, **(reading or {}))
    # 3. a file, by the registered format that claims its suffix (an unknown suffix is an error,
    # unless the spec is also a named image set)
    if p.is_file():
        fmt = fileformats.for_path(p)
        if fmt is not None and fmt.load is not None:
            if fmt.sequence_data:
                _no_sequence_mode(spec, sequence)
            return fmt.load(p, seed=seed)
        if fmt is not None and fmt.not_a_dataset:
            raise DataError(fmt.not_a_dataset.format(path=p, suffix=suffix))
        if ALIASES.get(spec.lower(), spec.lower()) not in NAMED:  # a named image set wins over a file
            raise DataError(
                f"{p}: the file exists but is not a dataset layerlab reads; give a {fileformats.described()} "
                f"file, or a directory"
            )
    # 4. a named UCR/UEA set (a bare name, not a path that exists)
    if not p.is_dir():
        named = find_named_ts(spec.strip(), data_dir)
        if named is not None:
            _no_sequence_mode(spec, sequence)
            return ts.load_ts_pair(named)
    # 5. a named image set
    image_key = ALIASES.get(spec.lower(), spec.lower())
    if image_key in NAMED:
        return load_named(image_key, data_dir, download)
    # 6. a directory of the registered formats tried after the names: IDX, CIFAR-10, else an image folder
    found = fileformats.for_directory(p, before_names=False) if p.is_dir() else None
    if found is not None:
        assert found[0].load is not None  # (a directory format loads)
        return found[0].load(found[1], seed=seed, keep_sizes=any_size and not sequence, **(reading or {}))
    names = ", ".join(sorted(known_datasets()))
    raise DataError(f"unknown dataset {spec!r}: not a known name ({names}) nor an existing file or directory")


def _no_sequence_mode(spec: str, sequence: str | None) -> None:
    if sequence:
        raise DataError(f"--sequence {sequence} reads image datasets as sequences; {spec} is already sequence data")


def _subset(ds: Dataset, n_train: int | None, n_test: int | None) -> Dataset:
    """The first ``n_train`` / ``n_test`` cases (for quick runs); the spec keeps the full set's ``T_max``."""
    if n_train:
        ds.train = ds.train.subset(torch.arange(min(n_train, len(ds.train))))
    if n_test:
        ds.test = ds.test.subset(torch.arange(min(n_test, len(ds.test))))
    return ds


def check_dataset(ds: Dataset, subset: bool = False) -> Dataset:
    """What every dataset must be before training starts, whatever its format (one sentence naming
    its source for the first thing wrong): both splits hold samples; train and test samples have
    one shape; float inputs are finite (missing values were filled by the readers whose formats
    have them); targets are finite; class labels lie in ``0 .. num_outputs - 1`` (``-100``, ignored,
    per step); a classification has at least two classes (else accuracy is 1.0 whatever the model).
    Test classes missing from training are checked by the builders that name classes from the data
    (sequence sets, image folders); ``subset`` (the first N were kept) adds a hint to a split left
    empty. Returns ``ds``."""
    where = ds.source or ds.name
    hint = " (--n-train/--n-test kept too few samples)" if subset else ""
    for part, split in (("training", ds.train), ("test", ds.test)):
        if len(split) == 0:
            raise DataError(f"{where}: the {part} split holds no samples{hint}")
        if len(split.y) != len(split):
            raise DataError(f"{where}: the {part} split has {len(split)} inputs but {len(split.y)} targets")
        streamed = not isinstance(split, Split)  # its inputs are read a batch at a time, by training
        for what, t in (("input", None if streamed else split.x), ("target", split.y)):
            if t is not None and t.is_floating_point():
                bad = ~torch.isfinite(t.reshape(len(t), -1)).all(dim=1)
                if bool(bad.any()):
                    i = int(torch.nonzero(bad)[0])
                    raise DataError(f"{where}: {part} sample {i} has a non-finite {what} value (inf or NaN)")
    shapes = [tuple(s.x.shape[1:]) for s in (ds.train, ds.test)]
    if shapes[0] != shapes[1]:
        raise DataError(
            f"{where}: training samples have shape {shapes[0]}, test samples {shapes[1]}; both splits need one shape"
        )
    if ds.task in ("classification", "sequence-classification"):
        k = ds.num_outputs
        for part, split in (("training", ds.train), ("test", ds.test)):
            y = split.y
            bad = (y < 0) | (y >= k)
            if ds.task == "sequence-classification":
                bad &= y != -100
            if bool(bad.any()):
                v = int(y[bad][0])
                raise DataError(f"{where}: a {part} label is {v}, outside the {k} classes (0 to {k - 1})")
    if ds.task == "classification" and ds.num_outputs < 2:
        raise DataError(
            f"{where}: {ds.num_outputs} class ({', '.join(ds.classes or [])}); classification needs at least two"
        )
    return ds
