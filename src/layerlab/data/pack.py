"""The packed form of a dataset (``layerlab data pack SRC OUT``) and how it is read back.

A packed dataset is a directory::

    OUT/layerlab-pack.json      the index: name, task, classes, input spec, and per split its
                                sample shape, dtype, shards (file, samples, sha256) and labels
    OUT/train-00000.npy ...     shards: (n, C, H, W) uint8 pixels (float32 for data that is not pixels)
    OUT/train-labels.npy        the labels, one per sample
    OUT/test-00000.npy ...

Why plain ``.npy`` shards: NumPy memory-maps them (``np.load(mmap_mode="r")``), so a reader holds
no more than the pages a batch touches (memory bounded by the batch, not the dataset); any sample
is read by its index in constant time (random access, which the exact global order and a
mid-epoch resume need; tar streams such as WebDataset read in order); a worker process gets a path
and an index array, no list of Python objects; the format is NumPy's own, documented and stable,
and needs no dependency beyond NumPy. Shards of a bounded size (:data:`SHARD_BYTES`) keep single
files small enough to copy, hash and later fetch from object storage one at a time. The sha256 of
every shard is written once into the index, so a run's data fingerprint comes from the index
instead of from reading every byte again.

The index is untrusted input like a run's files: shard names must be plain file names in OUT,
shapes positive whole numbers, the dtype uint8 or float32; each shard's header is checked against
the index when it is first mapped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ..errors import DataError
from . import Dataset, Split

log = logging.getLogger(__name__)

INDEX = "layerlab-pack.json"
SHARD_BYTES = 256 * 2**20  # at most this many bytes of samples per shard
_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.npy$")
_NAMES = re.compile(r"^[A-Za-z0-9_.-]+\.json$")


def is_packed(path: str | Path) -> bool:
    return (Path(path) / INDEX).is_file()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_split(out: Path, name: str, n: int, x_shape, dtype, batches, labels: np.ndarray) -> dict:
    """Write one split's shards from ``batches`` (an iterator of (k, *x_shape) arrays, in order)."""
    per = max(1, SHARD_BYTES // max(1, int(np.prod(x_shape)) * np.dtype(dtype).itemsize))
    shards, done, k = [], 0, 0
    current: np.memmap | None = None
    fill = 0
    for xb in batches:
        pos = 0
        while pos < len(xb):
            if current is None:
                size = min(per, n - done)
                file = f"{name}-{k:05d}.npy"
                current = np.lib.format.open_memmap(out / file, mode="w+", dtype=dtype, shape=(size, *x_shape))
                shards.append({"file": file, "n": size})
                fill, k = 0, k + 1
            take = min(len(current) - fill, len(xb) - pos)
            current[fill : fill + take] = xb[pos : pos + take]
            fill, pos, done = fill + take, pos + take, done + take
            if fill == len(current):
                current.flush()
                del current
                current = None
    if done != n:
        raise DataError(f"packing the {name} split: read {done} samples, expected {n}")
    for s in shards:
        s["sha256"] = _sha256(out / s["file"])
    np.save(out / f"{name}-labels.npy", labels)
    return {
        "n": n,
        "x_shape": list(x_shape),
        "dtype": np.dtype(dtype).name,
        "shards": shards,
        "labels": {"file": f"{name}-labels.npy", "sha256": _sha256(out / f"{name}-labels.npy")},
    }


def _split_batches(split, is_pixels: bool, chunk: int = 512):
    """A split's inputs in chunks, as the packed dtype: pixels in [0, 1] back to uint8 (exact for
    8-bit images: round(v / 255 * 255) is v)."""
    for start in range(0, len(split), chunk):
        idx = np.arange(start, min(start + chunk, len(split)))
        if hasattr(split, "read"):  # a streamed source: read a chunk at a time
            x, _ = split.read(idx)
            x = x.numpy()
        else:
            x = split.x[start : start + chunk].numpy()
        if is_pixels and x.dtype != np.uint8:
            x = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
        yield x


def pack(ds: Dataset, out: str | Path, *, overwrite: bool = False) -> dict:
    """Write ``ds`` (in memory or streamed) in the packed form to ``out``; returns the index.
    Images scaled from 8-bit pixels are kept as uint8, anything else as float32. Written into a
    temporary directory beside ``out`` and renamed, so a failed pack leaves nothing half-written."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; give a new directory")
    if ds.train.lengths is not None or getattr(ds.train, "sizes", None) is not None:
        raise DataError(f"{ds.name}: only samples of one shape can be packed (not padded sequences or mixed sizes)")
    spec = ds.spec
    if spec is None:  # pragma: no cover - a Dataset always has one after __post_init__
        raise DataError(f"{ds.name}: no input spec to pack")
    is_pixels = spec.kind == "image" and spec.pixel_scale is not None and abs(spec.pixel_scale - 1 / 255) < 1e-12
    dtype = np.uint8 if is_pixels else np.float32
    tmp = out.with_name(f".{out.name}.packing")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        splits = {}
        for name, split in (("train", ds.train), ("test", ds.test)):
            x_shape = tuple(int(s) for s in (split.x_shape if hasattr(split, "x_shape") else split.x.shape[1:]))
            labels = split.y.numpy()
            splits[name] = _write_split(tmp, name, len(split), x_shape, dtype, _split_batches(split, is_pixels), labels)
            names = getattr(split, "names", None)
            if names is not None and len(names) == len(split):  # where each sample came from: mistakes.csv names it
                (tmp / f"{name}-names.json").write_text(json.dumps([str(v) for v in names]))
                splits[name]["names"] = {"file": f"{name}-names.json"}
        index = {
            "format": "layerlab-pack",
            "version": 1,
            "name": ds.name,
            "task": ds.task,
            "classes": ds.classes,
            "num_outputs": ds.num_outputs,
            "spec": spec.to_dict(),
            "splits": splits,
        }
        (tmp / INDEX).write_text(json.dumps(index, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return index


def _bad(root: Path, what: str) -> DataError:
    return DataError(f"{root / INDEX}: {what}")


def _checked_split(root: Path, name: str, s) -> dict:
    if not isinstance(s, dict):
        raise _bad(root, f"splits.{name} must be an object")
    shape = s.get("x_shape")
    if not (
        isinstance(shape, list)
        and shape
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
    ):
        raise _bad(root, f"splits.{name}.x_shape must be a list of positive whole numbers")
    if s.get("dtype") not in ("uint8", "float32"):
        raise _bad(root, f"splits.{name}.dtype must be uint8 or float32, got {s.get('dtype')!r}")
    shards = s.get("shards")
    if not isinstance(shards, list) or not shards:
        raise _bad(root, f"splits.{name}.shards must be a non-empty list")
    for i, sh in enumerate(shards):
        ok = (
            isinstance(sh, dict)
            and isinstance(sh.get("file"), str)
            and _NAME.match(sh["file"])
            and isinstance(sh.get("n"), int)
            and not isinstance(sh.get("n"), bool)
            and sh["n"] > 0
            and isinstance(sh.get("sha256"), str)
        )
        if not ok:
            raise _bad(root, f"splits.{name}.shards[{i}] must be {{file: a plain .npy name, n: > 0, sha256}}")
    labels = s.get("labels")
    if not (isinstance(labels, dict) and isinstance(labels.get("file"), str) and _NAME.match(labels["file"])):
        raise _bad(root, f"splits.{name}.labels must name a plain .npy file")
    names = s.get("names")
    if names is not None and not (
        isinstance(names, dict) and isinstance(names.get("file"), str) and _NAMES.match(names["file"])
    ):
        raise _bad(root, f"splits.{name}.names must name a plain .json file")
    return s


def _read_names(path: Path, n: int) -> list[str]:
    """A split's sample names (the files they were packed from): a JSON list of ``n`` texts."""
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read the sample names ({type(e).__name__})") from None
    if not (isinstance(names, list) and len(names) == n and all(isinstance(v, str) for v in names)):
        raise DataError(f"{path}: the sample names must be a list of {n} texts, one per sample")
    return names


def read_index(root: str | Path) -> dict:
    root = Path(root)
    try:
        index = json.loads((root / INDEX).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(root, f"not a readable JSON index ({type(e).__name__})") from None
    if not isinstance(index, dict) or index.get("format") != "layerlab-pack":
        raise _bad(root, "not a layerlab pack index (format must be layerlab-pack)")
    splits = index.get("splits")
    if not isinstance(splits, dict) or set(splits) != {"train", "test"}:
        raise _bad(root, "splits must hold train and test")
    for name, s in splits.items():
        _checked_split(root, name, s)
    if splits["train"]["x_shape"] != splits["test"]["x_shape"]:
        raise _bad(root, "the train and test splits must hold samples of one shape")
    from . import TASKS

    if index.get("task", "classification") not in TASKS:
        raise _bad(root, f"task must be one of {', '.join(TASKS)}")
    classes = index.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise _bad(root, "classes must be a list of names")
    k = index.get("num_outputs")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1_000_000):
        raise _bad(root, "num_outputs must be a whole number from 1")
    if not isinstance(index.get("name", ""), str):
        raise _bad(root, "name must be text")
    return index


def load_packed(root: str | Path, *, workers: int | None = None) -> Dataset:
    """A packed dataset as a :class:`Dataset` whose splits are :class:`~.sources.PackedSource`."""
    from ..inputspec import InputSpec
    from .sources import PackedSource

    root = Path(root).resolve()
    index = read_index(root)
    try:
        spec = InputSpec.from_dict(index["spec"])
    except Exception as e:
        raise _bad(root, f"its input spec is not valid ({' '.join(str(e).split())})") from None
    if list(spec.shape) != index["splits"]["train"]["x_shape"]:
        raise _bad(root, f"its input spec's shape {tuple(spec.shape)} is not the samples' shape")
    splits = {}
    for name, s in index["splits"].items():
        try:
            y = np.load(root / s["labels"]["file"], allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{root / s['labels']['file']}: cannot read the labels ({type(e).__name__})") from None
        if y.ndim != 1 or y.dtype.kind not in "iuf":
            raise DataError(
                f"{root / s['labels']['file']}: labels must be one number per sample, got {y.dtype} {y.shape}"
            )
        splits[name] = PackedSource(
            root, s["shards"], s["dtype"], s["x_shape"], torch.from_numpy(np.array(y)), workers=workers
        )
        if "names" in s:
            splits[name].sample_names = _read_names(root / s["names"]["file"], len(y))
    classes = index.get("classes")
    task = index.get("task", "classification")
    return Dataset(
        str(index.get("name") or root.name),
        cast(Split, splits["train"]),  # a streamed source stands where a Split does (see layerlab.data.sources)
        cast(Split, splits["test"]),
        task,
        list(classes) if isinstance(classes, list) else None,
        int(index.get("num_outputs") or (len(classes) if classes else 0)),
        source=str(root),
        meta={"packed": True},
        spec=spec,
    )
