"""The article's recipe (batch 32, Adam 1e-3) on CPU: layerlab's seconds per epoch against the best
plain-PyTorch loop on the same machine, measured in one run, one process after the other.

    python benchmarks/cpu_loop.py [--models cnn,lstm] [--epochs 2] [--data-dir DIR] [--out FILE]

Plain loops (``plain`` below) are written the way a careful PyTorch user writes one: the whole
training set as one tensor in memory, a ``randperm`` per epoch, slicing batches out of it, no
DataLoader. Each variant is a choice such a user could make (layout, Adam implementation, the order
of ReLU and max pool, which commute); the best of them is the yardstick. layerlab runs as a user
runs it: ``layerlab train --config article_cnn|article_lstm`` in its own process. Every side trains
``--epochs`` epochs (default 2) and the figure is the mean of the epochs after the first (the
first carries the warm-up of both). Writes a Markdown table (default
benchmarks/results/cpu_loop.md) with the CPU model; the issue's goal is layerlab within 1.5x of
the best plain loop.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from peer_tools import cpu_model, loadavg, steady_seconds  # noqa: E402
from plain_nets import article_cnn, article_lstm, load_fashion  # noqa: E402

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"

# variant name -> (channels_last, fused Adam, pool before ReLU) for the CNN; (fused Adam,) for the LSTM
CNN_VARIANTS = {
    "textbook (NCHW, Adam foreach, conv>relu>pool)": (False, False, False),
    "channels-last": (True, False, False),
    "channels-last, fused Adam": (True, True, False),
    "channels-last, fused Adam, pool>relu": (True, True, True),
    "NCHW, fused Adam, pool>relu": (False, True, True),
}
LSTM_VARIANTS = {
    "textbook (Adam foreach)": (False,),
    "fused Adam": (True,),
}


def plain(model: str, variant: str, data_dir: str, epochs: int) -> dict:
    """One plain-PyTorch run (called in a child process): seconds per epoch and final test accuracy.
    glibc is told to keep freed memory, as layerlab's training does (``mallopt``): the allocator is
    not what this compares."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except OSError:
        pass
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    xtr, ytr = load_fashion(data_dir, "train", images=model == "cnn")
    xte, yte = load_fashion(data_dir, "t10k", images=model == "cnn")
    if model == "cnn":
        cl, fused, pool_first = CNN_VARIANTS[variant]
        net = article_cnn(pool_first)
        if cl:
            net = net.to(memory_format=torch.channels_last)
            xtr = xtr.contiguous(memory_format=torch.channels_last)
            xte = xte.contiguous(memory_format=torch.channels_last)
    else:
        (fused,) = LSTM_VARIANTS[variant]
        net = article_lstm()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7, fused=fused or None, foreach=None if fused else True)
    bs, n = 32, len(xtr)
    seconds = []
    for epoch in range(epochs):
        g = torch.Generator().manual_seed(epoch)
        perm = torch.randperm(n, generator=g)
        net.train()
        t0 = time.perf_counter()
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(xtr[idx]), ytr[idx]).backward()
            opt.step()
        seconds.append(time.perf_counter() - t0)
    net.eval()
    with torch.no_grad():
        acc = sum(int((net(xte[i : i + 1000]).argmax(1) == yte[i : i + 1000]).sum()) for i in range(0, len(xte), 1000))
    return {"seconds": seconds, "test_accuracy": acc / len(xte)}


def layerlab_side(model: str, data_dir: str, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            str(ROOT / ".venv/bin/layerlab"),
            "train",
            "--config",
            f"article_{model}",
            "--data-dir",
            data_dir,
            "--epochs",
            str(epochs),
            "--out",
            f"{tmp}/run",
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        rows = list(csv.DictReader(open(f"{tmp}/run/metrics.csv")))
    return {"seconds": [float(r["train_seconds"]) for r in rows], "test_accuracy": float(rows[-1]["test_accuracy"])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="cnn,lstm")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--data-dir", default=DEFAULT_DATA)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/cpu_loop.md"))
    p.add_argument("--child", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(plain(a.child[0], a.child[1], a.data_dir, a.epochs)))
        return 0
    import torch

    lines = [
        "# The article's recipe on CPU: layerlab against the best plain-PyTorch loop",
        "",
        f"CPU: {cpu_model()} ({torch.get_num_threads()} torch threads); torch {torch.__version__}; "
        f"load average at the start {loadavg()[0]:.2f}. Batch 32, Adam 1e-3 (eps 1e-7), {a.epochs} epochs per side, "
        "each in its own process, one after the other; seconds per epoch are the mean of the epochs after the first.",
        "",
        "`python benchmarks/cpu_loop.py` wrote this file.",
        "",
    ]
    for model in a.models.split(","):
        variants = CNN_VARIANTS if model == "cnn" else LSTM_VARIANTS
        rows = []
        for v in variants:
            out = subprocess.run(
                [sys.executable, __file__, "--child", model, v, "--epochs", str(a.epochs), "--data-dir", a.data_dir],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rows.append((f"plain: {v}", r))
            print(model, v, f"{steady_seconds(r['seconds']):.2f} s/epoch", flush=True)
        best = min(steady_seconds(r["seconds"]) for _, r in rows)
        ll = layerlab_side(model, a.data_dir, a.epochs)
        ll_steady = steady_seconds(ll["seconds"])
        print(model, "layerlab", f"{ll_steady:.2f} s/epoch", flush=True)
        rows.append((f"**layerlab** (`layerlab train --config article_{model}`)", ll))
        lines += [
            f"## article {model.upper()}",
            "",
            "| loop | s/epoch (epochs 2+) | epoch 1 s | test acc | / best plain |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, r in rows:
            s = steady_seconds(r["seconds"])
            lines.append(f"| {name} | {s:.2f} | {r['seconds'][0]:.2f} | {r['test_accuracy']:.4f} | {s / best:.2f}x |")
        lines += ["", f"layerlab / best plain loop: **{ll_steady / best:.2f}x** (goal: at most 1.5x).", ""]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
