"""Samples per second of article-cnn: 1 process x 2 threads against 2 processes x 1 thread (DDP, gloo).

    python benchmarks/ddp_throughput.py [--steps 300] [--batch-size 32]

Trains one epoch of ``steps`` global batches on synthetic 28x28 images (written as IDX files in a
temporary directory) through the real command line, each way, and prints the CPU model and the
train samples/s from each run's metrics.csv (training only: data loading and evaluation excluded).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from peer_tools import cpu_model  # the benchmarks' one machine description

BIN = Path(sys.executable).parent


def write_idx(path: Path, arr: np.ndarray) -> None:
    arr = np.asarray(arr, dtype=np.uint8)
    head = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    path.write_bytes(gzip.compress(head + arr.tobytes()))


def make_data(root: Path, n_train: int, n_test: int = 64) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return root


def samples_per_second(run: Path) -> float:
    with open(run / "metrics.csv") as f:
        return float(next(csv.DictReader(f))["samples_per_second"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    a = p.parse_args()
    env = {**os.environ, "LAYERLAB_OFFLINE": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "synthetic", a.steps * a.batch_size)
        common = ["train", "--data", str(data), "--model", "article-cnn", "--epochs", "1", "--device", "cpu"]
        common += ["--batch-size", str(a.batch_size), "--quiet"]
        runs = {
            "1 process x 2 threads": [sys.executable, "-m", "layerlab", *common, "--threads", "2"],
            "2 processes x 1 thread (DDP, gloo)": [
                str(BIN / "torchrun"),
                "--standalone",
                "--nproc_per_node",
                "2",
                "-m",
                "layerlab",
                *common,
                "--threads",
                "1",
            ],
        }
        print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores)")
        print(f"article-cnn, {a.steps} steps of global batch {a.batch_size}, one epoch")
        for i, (name, cmd) in enumerate(runs.items()):
            out = Path(tmp) / f"run{i}"
            subprocess.run([*cmd, "--out", str(out)], env=env, check=True, capture_output=True)
            print(f"{name:<36} {samples_per_second(out):>10.1f} samples/s")


if __name__ == "__main__":
    main()
