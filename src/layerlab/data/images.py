"""Image datasets: IDX files (MNIST layout), CIFAR-10 python batches, image folders.

Named sets are looked for, in order, in: the directory the user gives (``--data-dir``), the
``LAYERLAB_DATA_DIR`` environment variable, the per-user cache (``LAYERLAB_CACHE_DIR``, else
``$XDG_CACHE_HOME/layerlab`` or ``~/.cache/layerlab``), known system locations (Debian's
``dataset-fashion-mnist`` package installs /usr/share/datasets/fashion-mnist), and finally
downloaded from the official location into the cache and verified by SHA-256. Set
``LAYERLAB_OFFLINE=1`` to never download.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from . import Dataset, Split

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}

# ----------------------------------------------------------------------------------------------
# IDX: the MNIST file format (http://yann.lecun.com/exdb/mnist/, section "FILE FORMATS").
# A page of code, so ours; tested on valid, truncated and malformed files.
# ----------------------------------------------------------------------------------------------
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _open_maybe_gzip(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DataError(f"{path}: corrupt gzip data ({e})") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed) into an array of its declared type and shape.

    Raises :class:`DataError` naming the file for a wrong magic number, an unknown element type,
    or a payload shorter or longer than the header declares.
    """
    path = Path(path)
    data = _open_maybe_gzip(path)
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes, expected a 4-byte magic number)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _IDX_DTYPES or not 1 <= ndim <= 4:
        raise DataError(f"{path}: not an IDX file (magic number {data[:4].hex()}, expected 0000 then a "
                        f"type code 08-0e and 1-4 dimensions, e.g. 00000803 for images)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, expected {header})")
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise DataError(f"{path}: {what}: header declares shape {shape} ({expected} bytes of data), "
                        f"file holds {got}")
    arr = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("=")) if dtype.byteorder == ">" else arr


_IDX_ROLES = {
    ("train", "x"): ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    ("train", "y"): ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    ("test", "x"): ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    ("test", "y"): ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def find_idx_files(directory: Path) -> dict[tuple[str, str], Path] | None:
    """The four IDX files of an MNIST-layout directory (raw or .gz), or None if any is missing."""
    found = {}
    for role, stems in _IDX_ROLES.items():
        for stem in stems:
            for name in (stem, stem + ".gz"):
                if (directory / name).is_file():
                    found[role] = directory / name
                    break
            if role in found:
                break
        if role not in found:
            return None
    return found


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, H, W, C) to float32 (N, C, H, W) in [0, 1] (Keras's x / 255)."""
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4:
        images = images.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / 255.0)


def load_idx_dir(directory: Path, name: str, classes: list[str] | None = None) -> Dataset:
    """Load train and test splits from a directory holding the four MNIST-layout IDX files."""
    files = find_idx_files(directory)
    if files is None:
        raise DataError(f"{directory}: expected the four IDX files train-images-idx3-ubyte, "
                        f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (optionally .gz)")
    splits = {}
    for part in ("train", "test"):
        x = read_idx(files[(part, "x")])
        y = read_idx(files[(part, "y")])
        if x.ndim != 3:
            raise DataError(f"{files[(part, 'x')]}: expected images of shape (N, H, W), got {x.shape}")
        if y.ndim != 1:
            raise DataError(f"{files[(part, 'y')]}: expected labels of shape (N,), got {y.shape}")
        if len(x) != len(y):
            raise DataError(f"{directory}: {part} images and labels disagree: {len(x)} images, {len(y)} labels")
        splits[part] = Split(images_to_tensor(x), torch.from_numpy(y.astype(np.int64)))
    n_classes = int(max(splits["train"].y.max(), splits["test"].y.max())) + 1
    if classes is None or len(classes) < n_classes:
        classes = [str(i) for i in range(n_classes)]
    return Dataset(name, splits["train"], splits["test"], "classification", list(classes), len(classes),
                   source=str(directory))


# ----------------------------------------------------------------------------------------------
# CIFAR-10, python version: pickled dicts. Unpickled with an allow-list so a hostile file cannot
# run code.
# ----------------------------------------------------------------------------------------------
class _SafeUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(data: bytes, path: Path) -> dict:
    try:
        d = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # a corrupt pickle raises many kinds of error
        raise DataError(f"{path}: not a CIFAR-10 python batch ({e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR-10 python batch (expected a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _cifar_batch(d: dict, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if "data" not in d or "labels" not in d:
        raise DataError(f"{path}: a CIFAR-10 batch needs 'data' and 'labels' entries")
    x = np.asarray(d["data"], dtype=np.uint8)
    y = np.asarray(d["labels"], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise DataError(f"{path}: expected data of shape (N, 3072) and N labels, got {x.shape} and {y.shape}")
    return x.reshape(-1, 3, 32, 32), y


def load_cifar10_dir(directory: Path) -> Dataset:
    """Load ``cifar-10-batches-py`` (data_batch_1..5, test_batch, batches.meta)."""
    parts = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    splits = {}
    for part, names in parts.items():
        xs, ys = [], []
        for name in names:
            p = directory / name
            x, y = _cifar_batch(_unpickle(_open_maybe_gzip(p), p), p)
            xs.append(x)
            ys.append(y)
        x = np.concatenate(xs)
        splits[part] = Split(torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(np.concatenate(ys)))
    classes = list(NAMED["cifar10"].classes)
    meta = directory / "batches.meta"
    if meta.is_file():
        names = _unpickle(meta.read_bytes(), meta).get("label_names")
        if names:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return Dataset("cifar10", splits["train"], splits["test"], "classification", classes, len(classes),
                   source=str(directory))


def is_cifar10_dir(directory: Path) -> bool:
    return (directory / "data_batch_1").is_file() and (directory / "test_batch").is_file()


# ----------------------------------------------------------------------------------------------
# Image folders: root/<class>/*.png. Pillow reads the files.
# ----------------------------------------------------------------------------------------------
def read_image(path: Path, channels: int | None = None, size: tuple[int, int] | None = None):
    """Read an image file as float32 (C, H, W) in [0, 1].

    ``channels`` 1 or 3 converts (grey <-> RGB); ``size`` (H, W) resizes. Returns the tensor and
    a list of notes on what had to be changed.
    """
    from PIL import Image, UnidentifiedImageError

    notes = []
    try:
        with Image.open(path) as im:
            im.load()
            img = im
            if channels is None:
                channels = 1 if img.mode in ("1", "L", "I", "I;16", "F", "LA") else 3
            mode = "L" if channels == 1 else "RGB"
            if img.mode != mode:
                if channels == 1 or img.mode not in ("1", "L", "P"):
                    notes.append(f"converted from {img.mode} to {mode}")
                img = img.convert(mode)
            if size is not None and (img.height, img.width) != tuple(size):
                notes.append(f"resized from {img.width}x{img.height} to {size[1]}x{size[0]}")
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not an image Pillow can read ({type(e).__name__})") from None
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr)), notes


def _folder_split(root: Path, classes: list[str], channels: int, size) -> Split:
    xs, ys = [], []
    for k, cls in enumerate(classes):
        d = root / cls
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                x, _ = read_image(f, channels, size)
                xs.append(x)
                ys.append(k)
    if not xs:
        raise DataError(f"{root}: no images found in its class folders ({', '.join(IMAGE_SUFFIXES)})")
    return Split(torch.stack(xs), torch.tensor(ys, dtype=torch.int64))


def _class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _first_image(root: Path) -> Path | None:
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            return p
    return None


def load_image_folder(root: Path, *, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """``root/<class>/*.png`` (split ``test_fraction`` for testing, stratified), or
    ``root/train/<class>/...`` with ``root/test/<class>/...``. Channels and size come from the
    first image; others are converted to match."""
    has_split = (root / "train").is_dir() and (root / "test").is_dir()
    train_root = root / "train" if has_split else root
    classes = _class_dirs(train_root)
    if not classes:
        raise DataError(f"{root}: an image folder needs one subfolder per class (root/<class>/*.png)")
    first = _first_image(train_root)
    if first is None:
        raise DataError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders")
    x0, _ = read_image(first)
    channels, size = x0.shape[0], tuple(x0.shape[1:])
    if has_split:
        train = _folder_split(root / "train", classes, channels, size)
        test = _folder_split(root / "test", classes, channels, size)
    else:
        full = _folder_split(root, classes, channels, size)
        g = torch.Generator().manual_seed(seed)
        train_idx, test_idx = [], []
        for k in range(len(classes)):
            idx = torch.nonzero(full.y == k).flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            n_test = int(round(test_fraction * len(idx))) if len(idx) > 1 else 0
            test_idx.append(idx[:n_test])
            train_idx.append(idx[n_test:])
        train, test = full.subset(torch.cat(train_idx)), full.subset(torch.cat(test_idx))
        if len(test) == 0:
            raise DataError(f"{root}: too few images to hold out a test split; add a test/ folder")
    return Dataset(root.name, train, test, "classification", classes, len(classes), source=str(root))


# ----------------------------------------------------------------------------------------------
# Named sets and where to find them.
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
        "mnist", "MNIST handwritten digits, 28x28 grey, 10 classes",
        tuple(str(i) for i in range(10)),
        (Remote("train-images-idx3-ubyte.gz", _MNIST_URL + "train-images-idx3-ubyte.gz",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
         Remote("train-labels-idx1-ubyte.gz", _MNIST_URL + "train-labels-idx1-ubyte.gz",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
         Remote("t10k-images-idx3-ubyte.gz", _MNIST_URL + "t10k-images-idx3-ubyte.gz",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
         Remote("t10k-labels-idx1-ubyte.gz", _MNIST_URL + "t10k-labels-idx1-ubyte.gz",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6")),
        ("/usr/share/datasets/mnist", "/usr/local/share/datasets/mnist")),
    "fashion-mnist": NamedSet(
        "fashion-mnist", "Fashion-MNIST clothing, 28x28 grey, 10 classes",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (Remote("train-images-idx3-ubyte.gz", _FASHION_URL + "train-images-idx3-ubyte.gz",
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
         Remote("train-labels-idx1-ubyte.gz", _FASHION_URL + "train-labels-idx1-ubyte.gz",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
         Remote("t10k-images-idx3-ubyte.gz", _FASHION_URL + "t10k-images-idx3-ubyte.gz",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
         Remote("t10k-labels-idx1-ubyte.gz", _FASHION_URL + "t10k-labels-idx1-ubyte.gz",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5")),
        ("/usr/share/datasets/fashion-mnist", "/usr/local/share/datasets/fashion-mnist")),
    "kmnist": NamedSet(
        "kmnist", "Kuzushiji-MNIST cursive Japanese, 28x28 grey, 10 classes",
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        (Remote("train-images-idx3-ubyte.gz", _KMNIST_URL + "train-images-idx3-ubyte.gz",
                "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4"),
         Remote("train-labels-idx1-ubyte.gz", _KMNIST_URL + "train-labels-idx1-ubyte.gz",
                "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"),
         Remote("t10k-images-idx3-ubyte.gz", _KMNIST_URL + "t10k-images-idx3-ubyte.gz",
                "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5"),
         Remote("t10k-labels-idx1-ubyte.gz", _KMNIST_URL + "t10k-labels-idx1-ubyte.gz",
                "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c")),
        ("/usr/share/datasets/kmnist", "/usr/local/share/datasets/kmnist")),
    "cifar10": NamedSet(
        "cifar10", "CIFAR-10 photos, 32x32 RGB, 10 classes (python batches)",
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        (Remote("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),),
        ("/usr/share/datasets/cifar10", "/usr/local/share/datasets/cifar10"), kind="cifar10"),
}
DESCRIPTIONS = {k: v.description for k, v in NAMED.items()}
ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10"}


def cache_root() -> Path:
    if os.environ.get("LAYERLAB_CACHE_DIR"):
        return Path(os.environ["LAYERLAB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "layerlab"


def candidate_dirs(name: str, data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """Where a named set is looked for, in order, each with the reason it is a candidate."""
    ns = NAMED[name]
    out: list[tuple[str, Path]] = []
    for label, base in (("--data-dir", data_dir), ("LAYERLAB_DATA_DIR", os.environ.get("LAYERLAB_DATA_DIR"))):
        if base:
            out.append((label, Path(base)))
            out.append((label, Path(base) / name))
    out.append(("cache", cache_root() / name))
    out += [("system", Path(d)) for d in ns.system_dirs]
    return out


def _dir_holds(ns: NamedSet, d: Path) -> bool:
    if not d.is_dir():
        return False
    if ns.kind == "cifar10":
        return is_cifar10_dir(d) or is_cifar10_dir(d / "cifar-10-batches-py")
    return find_idx_files(d) is not None


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


def download(name: str, timeout: float = 30.0) -> Path:
    """Download a named set into the cache, verify each file's SHA-256, and return its directory.

    Files are written to a temporary name and renamed only once verified, so an interrupted or
    tampered download never looks like a dataset.
    """
    ns = NAMED[name]
    target = cache_root() / name
    target.mkdir(parents=True, exist_ok=True)
    for r in ns.files:
        dest = target / r.filename
        if dest.is_file() and _sha256(dest) == r.sha256:
            continue
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
    if ns.kind == "cifar10" and not is_cifar10_dir(target / "cifar-10-batches-py"):
        with tarfile.open(target / ns.files[0].filename) as tar:
            tar.extractall(target, filter="data")
    return target


def load_named(name: str, data_dir: str | Path | None = None, download_ok: bool = True) -> Dataset:
    """Load a named set from the first place that holds it, downloading it as the last resort."""
    name = ALIASES.get(name, name)
    ns = NAMED[name]
    d = locate(name, data_dir)
    if d is None:
        offline = os.environ.get("LAYERLAB_OFFLINE", "").lower() in ("1", "true", "yes")
        error = None
        if download_ok and not offline:
            try:
                d = download(name)
            except DataError as e:
                error = str(e)
        if d is None:
            looked = "; ".join(f"{p} ({label})" for label, p in candidate_dirs(name, data_dir))
            why = f"the download failed: {error}" if error else "downloading is switched off"
            hint = (" On Debian: apt-get install dataset-fashion-mnist." if name == "fashion-mnist" else "")
            raise DataError(f"dataset {name!r} not found; looked in {looked}, and {why}. Put the files "
                            f"in one of those directories or pass --data-dir DIR.{hint}")
    if ns.kind == "cifar10":
        ds = load_cifar10_dir(d if is_cifar10_dir(d) else d / "cifar-10-batches-py")
    else:
        ds = load_idx_dir(d, name, list(ns.classes))
    ds.name = name
    return ds


def try_load(spec: str, *, data_dir=None, download: bool = True, seed: int = 0, **options) -> Dataset | None:
    """Load ``spec`` if it names an image dataset or an image directory; otherwise None."""
    key = ALIASES.get(spec.lower(), spec.lower())
    if key in NAMED:
        return load_named(key, data_dir, download)
    p = Path(spec).expanduser()
    if p.is_dir():
        if find_idx_files(p) is not None:
            return load_idx_dir(p, p.name)
        if is_cifar10_dir(p):
            return load_cifar10_dir(p)
        if is_cifar10_dir(p / "cifar-10-batches-py"):
            return load_cifar10_dir(p / "cifar-10-batches-py")
        return load_image_folder(p, seed=seed)
    return None


def availability(data_dir=None) -> list[dict]:
    """For ``layerlab data list``: each named set, whether it is here and where."""
    rows = []
    for name, ns in NAMED.items():
        d = locate(name, data_dir)
        rows.append({"name": name, "description": ns.description, "available": d is not None,
                     "path": str(d) if d else None, "download": ns.files[0].url.rsplit("/", 1)[0] + "/"})
    return rows
