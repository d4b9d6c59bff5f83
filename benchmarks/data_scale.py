"""Data at scale: training from a packed dataset larger than memory allows as float32, and an
image folder of JPEG files read by layerlab's workers against a plain DataLoader + Pillow loop.

    python benchmarks/data_scale.py                  # 100,000 64x64 RGB images (4.9 GB as float32)
    python benchmarks/data_scale.py --smoke          # 2,000 32x32 images, a few steps: checks the script

1. Packed: ``n`` generated 64x64 RGB images (a class pattern over noise, generated a chunk at a
   time, never all in memory) are packed with :func:`layerlab.data.pack.pack` into uint8 shards,
   then a child process trains on all of them (``cnn``, one epoch's shuffle over every image) and
   stops after ``--steps`` steps; its peak RSS (``ru_maxrss``) is set beside the dataset's float32
   size, and its images per second are timed over the steps after a short warm-up.
2. JPEG folder: ``folder_n`` JPEG files; epochs of batches read by layerlab's
   :class:`~layerlab.data.sources.FolderSource` against a plain ``torch.utils.data.DataLoader``
   (the same batch size and workers) over a dataset that opens each file with Pillow and converts it
   to a float tensor, with ``--workers`` and in one process (the decode path alone). The arms run
   interleaved in the same run, ``--rounds`` epochs each (the order reversed every other round);
   the median epoch of each arm, the ratio, and the CPU seconds per image (the process and its ended
   workers: a shared machine's other work inflates wall time, much less the CPU an epoch costs).

Writes ``benchmarks/results/data_scale.md`` (not with ``--smoke``) and prints it; names the CPU.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
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


# The training child: every sample of the packed set is in its epoch (not the first N of --n-train),
# and it stops after `steps` optimizer steps (an epoch of 100,000 images is longer than the figure needs)
CHILD = """
import json, resource, sys, time
from layerlab import api
from layerlab.callbacks import Callback
from layerlab.config import RunConfig

packed, out, batch, steps, warm, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])


class Enough(Exception):
    pass


class StopAfter(Callback):
    every_n_steps = 1

    def on_step_end(self, trainer, step, logs):
        if step == warm:
            self.t0 = time.perf_counter()
        if step == steps:
            self.seconds = time.perf_counter() - self.t0
            raise Enough


cfg = RunConfig()
cfg.data.name, cfg.model.name, cfg.model.channels = packed, "cnn", "16,M,32,M,64,M"
cfg.train.epochs, cfg.train.batch_size, cfg.train.eval_batch_size, cfg.train.threads = 1, batch, batch, threads
cfg.train.device = "cpu"
stop = StopAfter()
try:
    api.train(cfg, out, callbacks=[stop])
except Enough:
    pass
ru = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": stop.seconds, "maxrss_kb": ru.ru_maxrss, "children_maxrss_kb": kids.ru_maxrss}))
"""


def packed_run(root: Path, n: int, size: int, steps: int, batch: int, threads: int) -> dict:
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
    warm = min(20, steps // 4)
    # a child process trains: its peak RSS is the training's alone (ru_maxrss of that process)
    args = [str(root / "packed"), str(root / "run"), str(batch), str(steps), str(warm), str(threads)]
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=7200)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not last.startswith("{"):
        raise SystemExit(f"training failed: {proc.stderr[-2000:]}")
    got = json.loads(last)
    return {
        "n": n,
        "size": size,
        "float32_gb": n * 3 * size * size * 4 / 1e9,
        "packed_gb": on_disk / 1e9,
        "pack_seconds": round(pack_s, 1),
        "peak_rss_gb": max(got["maxrss_kb"], got["children_maxrss_kb"]) * 1024 / 1e9,
        "steps": steps,
        "warm": warm,
        "batch": batch,
        "threads": threads,
        "train_images_per_s": (steps - warm) * batch / got["seconds"],
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


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (the loaders' workers end
    with each epoch): what an epoch costs, whatever else the shared machine runs meanwhile."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(epoch) -> tuple[float, float, int]:
    c0, t0 = _cpu_seconds(), time.perf_counter()
    seen = epoch()
    return time.perf_counter() - t0, _cpu_seconds() - c0, seen


def _epochs_of(source, batch: int):
    """One epoch of ``source`` per call (a new shuffle each, as the plain loader's), counting images."""
    epochs = itertools.count()
    return lambda: sum(len(st.batch) for st in source.epoch(batch, seed=0, epoch=next(epochs)))


def folder_run(root: Path, n: int, size: int, batch: int, workers: int, rounds: int) -> dict:
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
    labels = torch.zeros(n, dtype=torch.long)
    arms = {}
    for w in sorted({workers, 0}, reverse=True):  # with workers, then in one process: the decode path alone
        ours = FolderSource(files, labels, 3, (size, size), workers=w)
        loader = torch.utils.data.DataLoader(PlainPillow(files), batch_size=batch, shuffle=True, num_workers=w)
        arms[("layerlab", w)] = _epochs_of(ours, batch)
        arms[("plain", w)] = lambda loader=loader: sum(len(x) for x, _ in loader)
    times: dict = {k: [] for k in arms}
    for r in range(rounds):  # interleaved, the order reversed every other round: the machine's noise hits both
        order = list(arms) if r % 2 == 0 else list(arms)[::-1]
        for key in order:
            wall, cpu, seen = _timed(arms[key])
            assert seen == n
            times[key].append((wall, cpu))
    out = {"n": n, "workers": workers, "rounds": rounds, "rows": []}
    for w in sorted({workers, 0}, reverse=True):
        ours, plain = times[("layerlab", w)], times[("plain", w)]
        med = lambda v: float(np.median(v))  # noqa: E731
        ratios = [p[0] / o[0] for o, p in zip(ours, plain, strict=True)]
        out["rows"].append(
            {
                "workers": w,
                "layerlab_images_per_s": n / med([t[0] for t in ours]),
                "plain_images_per_s": n / med([t[0] for t in plain]),
                "ratio": med([t[0] for t in plain]) / med([t[0] for t in ours]),
                "ratio_range": (min(ratios), max(ratios)),
                "layerlab_cpu_ms_per_image": 1000 * med([t[1] for t in ours]) / n,
                "plain_cpu_ms_per_image": 1000 * med([t[1] for t in plain]) / n,
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check the script, write no results")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the training child")
    ap.add_argument("--folder-n", type=int, default=5_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6, help="interleaved epochs of each folder arm")
    ap.add_argument("--tmp", default=None, help="where the packed set and the JPEG files go (deleted after)")
    a = ap.parse_args()
    if a.smoke:
        a.n, a.size, a.steps, a.folder_n, a.rounds = 2_000, 32, 8, 300, 2
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        root = Path(tmp)
        packed = packed_run(root, a.n, a.size, a.steps, a.batch_size, a.threads)
        folder = folder_run(root, a.folder_n, a.size, a.batch_size, a.workers, a.rounds)
    cpu = f"{cpu_model()}, {os.cpu_count()} cores"
    lines = [
        f"# Data at scale{' (smoke run: tiny sizes)' if a.smoke else ''}",
        "",
        f"CPU: {cpu} (shared with other work while measured: speeds are comparable only within one table). "
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
        f"({packed['steps']} steps of {packed['batch']} drawn from all {packed['n']:,} images (the epoch's shuffle, "
        f"stopped after {packed['steps']} steps), images/s over steps {packed['warm']}..{packed['steps']}; "
        f"`cnn --channels 16,M,32,M,64,M`, {packed['threads']} threads, data read in the training process; "
        f"packing took {packed['pack_seconds']} s.)",
        "",
        "## A JPEG folder: layerlab's FolderSource against a plain DataLoader + Pillow",
        "",
        f"{folder['n']:,} JPEG files of 3x{a.size}x{a.size}, batches of {a.batch_size}; each arm {folder['rounds']} "
        "epochs, interleaved (the order reversed every other round); the median epoch of each, and the ratio of "
        "the plain loop's median time to layerlab's (above 1: layerlab is faster), with the range of the per-round "
        "ratios. CPU ms per image counts the reading process and its workers, which the machine's other work "
        "does not inflate the way it does wall time.",
        "",
        "| workers | layerlab images/s | plain images/s | ratio (per-round range) | layerlab CPU ms/image "
        "| plain CPU ms/image |",
        "|---|---|---|---|---|---|",
    ]
    for r in folder["rows"]:
        lo, hi = r["ratio_range"]
        lines.append(
            f"| {r['workers']} | {r['layerlab_images_per_s']:.0f} | {r['plain_images_per_s']:.0f} "
            f"| {r['ratio']:.2f}x ({lo:.2f}..{hi:.2f}) | {r['layerlab_cpu_ms_per_image']:.3f} "
            f"| {r['plain_cpu_ms_per_image']:.3f} |"
        )
    text = "\n".join([*lines, ""])
    print(text)
    if not a.smoke:
        out = Path(__file__).parent / "results" / "data_scale.md"
        out.write_text(text)
        print(f"written to {out}")


if __name__ == "__main__":
    main()
