"""Data at scale: training from a packed dataset larger than memory allows as float32, and an
image folder of JPEG files read by layerlab's workers against a plain DataLoader + Pillow loop.

    python benchmarks/data_scale.py                  # 100,000 64x64 RGB images (4.9 GB as float32)
    python benchmarks/data_scale.py --smoke          # 2,000 32x32 images, a few steps: checks the script

1. Packed: ``n`` generated 64x64 RGB images (a class pattern over noise, generated a chunk at a
   time, never all in memory) are packed with :func:`layerlab.data.pack.pack` into uint8 shards,
   then ``layerlab train --data PACKED`` runs ``--steps`` steps (a model small enough for a CPU) in
   a child process; its peak RSS (``ru_maxrss``) is set beside the dataset's float32 size, and the
   images per second of training are read from its metrics.
2. JPEG folder: ``folder_n`` JPEG files; one epoch of batches read by layerlab's
   :class:`~layerlab.data.sources.FolderSource` with ``--workers 2`` against a plain
   ``torch.utils.data.DataLoader`` (``num_workers=2``, the same batch size) over a dataset that
   opens each file with Pillow and converts it to a float tensor, in the same run (alternated, the
   best of two epochs each); images/s each and the ratio (above 1: layerlab is faster).

Writes ``benchmarks/results/data_scale.md`` (not with ``--smoke``) and prints it; names the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from peer_tools import cpu_model

from layerlab.data import Dataset
from layerlab.data.pack import pack
from layerlab.data.sources import IndexedSource
from layerlab.inputspec import PIXEL_SCALE, InputSpec


class Generated(IndexedSource):
    """``n`` images (3, S, S) uint8, image ``i`` a function of ``i`` alone: its class's coloured
    square over noise. Read by index, so packing never holds more than a chunk."""

    def __init__(self, n: int, size: int, classes: int = 10, offset: int = 0):
        self.n, self.size, self.classes, self.offset = n, size, classes, offset
        y = torch.from_numpy((np.arange(offset, offset + n) * 7919 % classes).astype(np.int64))
        super().__init__(y, (3, size, size), workers=0)

    def read_rows(self, rows: np.ndarray) -> torch.Tensor:
        out = np.empty((len(rows), 3, self.size, self.size), dtype=np.uint8)
        s = self.size
        for j, r in enumerate(rows):
            i = int(r) + self.offset
            rng = np.random.default_rng(i)
            out[j] = rng.integers(0, 96, (3, s, s), dtype=np.uint8)
            k = i * 7919 % self.classes
            top, left = (k // 4) * s // 4, (k % 4) * s // 4
            out[j, k % 3, top : top + s // 4, left : left + s // 4] = 255
        return torch.from_numpy(out)

    def content_hash(self) -> str:
        return f"generated:{self.n}:{self.size}:{self.offset}"


def packed_run(root: Path, n: int, size: int, steps: int, batch: int) -> dict:
    ds = Dataset(
        "generated",
        Generated(n, size),
        Generated(max(1000, n // 100) if n >= 10_000 else 200, size, offset=n),
        "classification",
        [str(k) for k in range(10)],
        10,
        spec=InputSpec("image", (3, size, size), pixel_scale=PIXEL_SCALE, image_shape=(3, size, size)),
    )
    t0 = time.perf_counter()
    pack(ds, root / "packed", overwrite=True)
    pack_s = time.perf_counter() - t0
    on_disk = sum(f.stat().st_size for f in (root / "packed").iterdir())
    # a child process trains: its peak RSS is the training's alone (ru_maxrss of the children)
    code = f"""
import resource, sys, json
from layerlab.cli import main
rc = main(["train", "--data", {str(root / "packed")!r}, "--model", "cnn", "--channels", "16,M,32,M,64,M",
           "--epochs", "1", "--batch-size", "{batch}", "--eval-batch-size", "{batch}",
           "--n-train", "{steps * batch}", "--threads", "2",
           "--out", {str(root / "run")!r}, "--quiet", "--json"])
print(json.dumps({{"rc": rc, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}), file=sys.stderr)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "{}"
    got = json.loads(last) if last.startswith("{") else {}
    if got.get("rc") != 0:
        raise SystemExit(f"training failed: {proc.stderr[-2000:]}")
    metrics = (root / "run" / "metrics.csv").read_text().splitlines()
    head, row = metrics[0].split(","), metrics[-1].split(",")
    r = dict(zip(head, row, strict=False))
    return {
        "n": n,
        "size": size,
        "float32_gb": n * 3 * size * size * 4 / 1e9,
        "packed_gb": on_disk / 1e9,
        "pack_seconds": round(pack_s, 1),
        "peak_rss_gb": got["maxrss_kb"] * 1024 / 1e9,
        "steps": steps,
        "batch": batch,
        "train_images_per_s": float(r["samples_per_second"]),
    }


class PlainPillow(torch.utils.data.Dataset):
    """What a user would write: open each file with Pillow, to a float tensor in [0, 1]."""

    def __init__(self, files: list[Path]):
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.files[i]) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
        return torch.from_numpy(a).permute(2, 0, 1), 0


def folder_run(root: Path, n: int, size: int, batch: int, workers: int) -> dict:
    from PIL import Image

    from layerlab.data.sources import FolderSource

    gen = Generated(n, size)
    files = []
    for start in range(0, n, 500):
        x, y = gen.read(np.arange(start, min(n, start + 500)))
        for j, (img, k) in enumerate(zip(x.numpy(), y.tolist(), strict=True)):
            d = root / "jpeg" / str(k)
            d.mkdir(parents=True, exist_ok=True)
            f = d / f"{start + j:06d}.jpg"
            Image.fromarray(img.transpose(1, 2, 0)).save(f, quality=90)
            files.append(f)
    ours = FolderSource(files, torch.zeros(n, dtype=torch.long), 3, (size, size), workers=workers)
    loader = torch.utils.data.DataLoader(PlainPillow(files), batch_size=batch, shuffle=True, num_workers=workers)
    t_ours = t_plain = float("inf")
    for epoch in range(2):  # alternated, the best of two each: a shared machine's noise hits both
        t0 = time.perf_counter()
        seen = sum(len(st.batch) for st in ours.epoch(batch, seed=0, epoch=epoch))
        t_ours = min(t_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        seen_plain = sum(len(x) for x, _ in loader)
        t_plain = min(t_plain, time.perf_counter() - t0)
        assert seen == seen_plain == n
    return {
        "n": n,
        "workers": workers,
        "layerlab_images_per_s": n / t_ours,
        "plain_images_per_s": n / t_plain,
        "ratio": t_plain / t_ours,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check the script, write no results")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--folder-n", type=int, default=5_000)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if a.smoke:
        a.n, a.size, a.steps, a.folder_n = 2_000, 32, 5, 300
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        packed = packed_run(root, a.n, a.size, a.steps, a.batch_size)
        folder = folder_run(root, a.folder_n, a.size, a.batch_size, a.workers)
    cpu = f"{cpu_model()}, {os.cpu_count()} cores"
    text = "\n".join(
        [
            f"# Data at scale{' (smoke run: tiny sizes)' if a.smoke else ''}",
            "",
            f"CPU: {cpu} (shared with other work while measured). "
            f"`python benchmarks/data_scale.py {' '.join(sys.argv[1:])}`.".replace(" `.", "`."),
            "",
            "## Training from a packed dataset",
            "",
            "| images | as float32 | packed (uint8) | peak RSS of training | float32 / RSS | train images/s |",
            "|---|---|---|---|---|---|",
            f"| {packed['n']:,} x 3x{packed['size']}x{packed['size']} | {packed['float32_gb']:.2f} GB "
            f"| {packed['packed_gb']:.2f} GB | {packed['peak_rss_gb']:.2f} GB "
            f"| {packed['float32_gb'] / packed['peak_rss_gb']:.1f}x | {packed['train_images_per_s']:.0f} |",
            "",
            f"({packed['steps']} steps of {packed['batch']} with `cnn --channels 16,M,32,M,64,M`, 2 threads; "
            f"packing took {packed['pack_seconds']} s.)",
            "",
            "## A JPEG folder: layerlab's workers against a plain DataLoader + Pillow",
            "",
            "| files | workers | layerlab images/s | plain DataLoader images/s | ratio |",
            "|---|---|---|---|---|",
            f"| {folder['n']:,} | {folder['workers']} | {folder['layerlab_images_per_s']:.0f} "
            f"| {folder['plain_images_per_s']:.0f} | {folder['ratio']:.2f}x |",
            "",
        ]
    )
    print(text)
    if not a.smoke:
        out = Path(__file__).parent / "results" / "data_scale.md"
        out.write_text(text)
        print(f"written to {out}")


if __name__ == "__main__":
    main()
