"""Every GPU measurement of layerlab's speed goals in one go (run by benchmarks/gpu.sh).

    python benchmarks/gpu_bench.py --data-dir DIR [--out FILE] [--dry-run]

For each case it runs ``layerlab train`` as a user would (a fresh process, a preset and flags) and
reads the run's ``metrics.csv`` and ``summary.json``: training seconds per epoch and in all (the
test evaluation after each epoch is timed apart and not counted; a CUDA graph's warm-up and capture
come before epoch 1 and are shown apart), and the final epoch's test accuracy. Beside them, in the
same run, a plain-PyTorch loop of the kind layerlab's fast path is measured against (data on the
GPU, one-cycle Adam, the whole train step captured in one CUDA graph): the yardstick.

The goals (issue "fast by default"): the article's CNN to >= 89.7% test accuracy in <= 0.25 s of
training, its LSTM to >= 88.6% in <= 0.4 s, the article recipe (batch 32) <= 1 s per epoch.

``--dry-run`` runs every case on the CPU on the first 2,000 training images for one epoch, without
the flags the cases add for a GPU (--cuda-graph, --amp, --no-amp; a preset's own bf16 setting
stands, and a CPU without bf16 hardware trains in fp32): a check that the script, its commands and its
report work, whose numbers mean nothing. Writes a Markdown report (default
benchmarks/results/gpu-<device>.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from peer_tools import TARGETS, steady_seconds, subset  # noqa: E402
from plain_nets import article_cnn, article_lstm, load_fashion  # noqa: E402

GRAPH = ["--cuda-graph"]
BF16 = ["--amp"]
# (name, model, preset, flags, what it is for); on a GPU every case adds --device cuda
CASES = [
    ("CNN recipe, batch 32, eager", "cnn", "article_cnn", ["--epochs", "3"], "recipe <= 1 s/epoch"),
    ("CNN recipe, batch 32, CUDA graph", "cnn", "article_cnn", ["--epochs", "3", *GRAPH], "recipe <= 1 s/epoch"),
    ("LSTM recipe, batch 32, eager", "lstm", "article_lstm", ["--epochs", "3"], "recipe <= 1 s/epoch"),
    ("LSTM recipe, batch 32, CUDA graph", "lstm", "article_lstm", ["--epochs", "3", *GRAPH], "recipe <= 1 s/epoch"),
    ("CNN fast preset as it is (bf16), CUDA graph", "cnn", "article_cnn_fast", GRAPH, ">= 0.897 in <= 0.25 s"),
    ("CNN fast preset in fp32, CUDA graph", "cnn", "article_cnn_fast", [*GRAPH, "--no-amp"], ">= 0.897 in <= 0.25 s"),
    (
        "CNN fast, batch 256, 4 epochs, lr 0.006, bf16, graph",
        "cnn",
        "article_cnn_fast",
        ["--batch-size", "256", "--epochs", "4", "--lr", "0.006", *GRAPH, *BF16],
        ">= 0.897 in <= 0.25 s",
    ),
    (
        "CNN fast, batch 512, 5 epochs, lr 0.008, bf16, graph",
        "cnn",
        "article_cnn_fast",
        ["--batch-size", "512", "--epochs", "5", "--lr", "0.008", *GRAPH, *BF16],
        ">= 0.897 in <= 0.25 s",
    ),
    ("LSTM fast preset as it is (fp32), CUDA graph", "lstm", "article_lstm_fast", GRAPH, ">= 0.886 in <= 0.4 s"),
    ("LSTM fast preset, CUDA graph, bf16", "lstm", "article_lstm_fast", [*GRAPH, *BF16], ">= 0.886 in <= 0.4 s"),
    (
        "LSTM fast, batch 256, 8 epochs, lr 0.006, bf16, graph",
        "lstm",
        "article_lstm_fast",
        ["--batch-size", "256", "--epochs", "8", "--lr", "0.006", *GRAPH, *BF16],
        ">= 0.886 in <= 0.4 s",
    ),
    (
        "LSTM fast, batch 512, 10 epochs, lr 0.008, bf16, graph",
        "lstm",
        "article_lstm_fast",
        ["--batch-size", "512", "--epochs", "10", "--lr", "0.008", *GRAPH, *BF16],
        ">= 0.886 in <= 0.4 s",
    ),
]


def layerlab(cmd_flags: list[str], out: Path, env: dict) -> dict:
    """One `layerlab train`; its per-epoch rows and summary, or the error it ended with."""
    cmd = [sys.executable, "-m", "layerlab", "train", *cmd_flags, "--out", str(out)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return {"error": tail[0][:300], "wall": wall}
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    secs = [float(r["train_seconds"]) for r in rows]
    return {
        "seconds": secs,
        "total": sum(secs),
        "steady": steady_seconds(secs),
        "accuracy": float(rows[-1]["test_accuracy"]),
        "capture": summary.get("graph_capture_seconds"),
        "wall": wall,
    }


# ------------------------------------------------------------------------------- plain yardstick
def plain(model: str, data_dir: str, device: str, bs: int, epochs: int, lr: float, bf16: bool, graph: bool) -> dict:
    """The plain-PyTorch loop of the anchors: data on the device, one-cycle Adam (eps 1e-7), the
    article's layers, optionally bf16 autocast and the whole step in one CUDA graph."""
    import torch
    import torch.nn.functional as F

    dev = torch.device(device)
    xtr, ytr = (t.to(dev) for t in load_fashion(data_dir, "train", images=model == "cnn"))
    xte, yte = (t.to(dev) for t in load_fashion(data_dir, "t10k", images=model == "cnn"))
    torch.manual_seed(0)
    if model == "cnn":
        net = article_cnn(pool_first=True).to(dev).to(memory_format=torch.channels_last)
        xtr, xte = (t.contiguous(memory_format=torch.channels_last) for t in (xtr, xte))
    else:
        net = article_lstm().to(dev)
    n = len(xtr)
    steps = n // bs
    cuda = dev.type == "cuda"
    opt = torch.optim.Adam(
        net.parameters(), lr=torch.tensor(lr, device=dev) if cuda else lr, eps=1e-7, capturable=cuda, fused=cuda
    )
    # no momentum cycling: a captured fused Adam keeps the betas it was captured with
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=steps * epochs, pct_start=0.25, cycle_momentum=False
    )
    sx, sy = xtr[:bs].clone(), ytr[:bs].clone()

    def step():
        opt.zero_grad(set_to_none=False)
        with torch.autocast(dev.type, torch.bfloat16, enabled=bf16, cache_enabled=False):
            loss = F.cross_entropy(net(sx).float(), sy)
        loss.backward()
        opt.step()

    init = {k: v.clone() for k, v in net.state_dict().items()}
    g = None
    if graph and cuda:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            step()
        net.load_state_dict(init)
        for st in opt.state.values():
            for v in st.values():
                v.zero_()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    gen = torch.Generator(device=dev).manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(n, device=dev, generator=gen)
        for i in range(steps):
            idx = perm[i * bs : (i + 1) * bs]
            sx.copy_(xtr[idx])
            sy.copy_(ytr[idx])
            g.replay() if g is not None else step()
            sched.step()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter() - t0
    net.eval()
    with torch.no_grad(), torch.autocast(dev.type, torch.bfloat16, enabled=bf16):
        acc = sum(int((net(xte[i : i + 5000]).argmax(1) == yte[i : i + 5000]).sum()) for i in range(0, len(xte), 5000))
    return {"total": t, "accuracy": acc / len(xte)}


PLAIN = [  # the anchors' fastest configurations that reach the targets
    ("plain loop: CNN, batch 256, 5 epochs, lr 0.004, bf16, CUDA graph", "cnn", 256, 5, 4e-3, True, True),
    ("plain loop: LSTM, batch 256, 10 epochs, lr 0.004, bf16, CUDA graph", "lstm", 256, 10, 4e-3, True, True),
]


def device_name(dry: bool) -> str:
    if dry:
        return "cpu-dry-run"
    import torch

    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--only", help="run only the cases whose name contains this text")
    a = p.parse_args(argv)
    import torch

    if not a.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_bench: no CUDA device here; --dry-run runs the cases on the CPU")
    name = device_name(a.dry_run)
    out_file = Path(a.out or ROOT / "benchmarks" / "results" / f"gpu-{name}.md")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    title = "CPU dry run (numbers mean nothing)" if a.dry_run else torch.cuda.get_device_name(0)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"# GPU measurements: {title}",
        "",
        f"torch {torch.__version__} (CUDA {torch.version.cuda}), Python {platform.python_version()}, {when}. "
        "`bash benchmarks/gpu.sh` wrote this file. Seconds are training only (the test evaluation after each epoch "
        "is timed apart); a CUDA graph's warm-up and capture happen once before epoch 1 and are shown apart.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data_dir
        if a.dry_run:
            data = f"{tmp}/data"
            subset(Path(a.data_dir), Path(data), 2000)
            lines += [
                "> **Dry run**: on the CPU, the first 2,000 training images, one epoch, "
                "without the cases' --cuda-graph, --amp and --no-amp.",
                "",
            ]
        lines += [
            "| case | epochs | s/epoch (2+) | training s | capture s | test acc | goal | met |",
            "|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for i, (case, model, preset, flags, goal) in enumerate(CASES):
            if a.only and a.only not in case:
                continue
            flags = list(flags)
            if a.dry_run:
                flags = [f for f in flags if f not in ("--cuda-graph", "--amp", "--no-amp")]
                if "--epochs" in flags:
                    j = flags.index("--epochs")
                    del flags[j : j + 2]
                flags += ["--epochs", "1", "--device", "cpu"]
            else:
                flags += ["--device", "cuda"]
            r = layerlab(["--config", preset, "--data-dir", data, *flags], Path(tmp) / f"run{i}", env)
            if "error" in r:
                lines.append(f"| {case} | | | | | | {goal} | failed: {r['error']} |")
                print(case, "FAILED:", r["error"], flush=True)
                continue
            if goal.startswith("recipe"):
                met = r["steady"] <= 1.0
            else:
                limit = float(goal.split("<= ")[1].split(" s")[0])
                met = r["accuracy"] >= TARGETS[model] and r["total"] <= limit
            cap = "" if r["capture"] is None else f"{r['capture']:.2f}"
            lines.append(
                f"| {case} | {len(r['seconds'])} | {r['steady']:.3f} | {r['total']:.3f} | {cap} | {r['accuracy']:.4f} "
                f"| {goal} | {'yes' if met else 'no'} |"
            )
            print(lines[-1], flush=True)
        lines += ["", "| yardstick | training s | test acc |", "|---|---:|---:|"]
        for case, model, bs, epochs, lr, bf16, graph in PLAIN:
            if a.only and a.only not in case:
                continue
            if a.dry_run:
                r = plain(model, data, "cpu", bs, 1, lr, False, False)
            else:
                r = plain(model, data, "cuda", bs, epochs, lr, bf16, graph)
            lines.append(f"| {case} | {r['total']:.3f} | {r['accuracy']:.4f} |")
            print(lines[-1], flush=True)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text("\n".join(lines) + "\n")
    print(f"wrote {out_file}")
    failed = sum("| failed:" in line for line in lines)
    if failed:
        print(f"gpu_bench: {failed} case(s) failed; their rows say why", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
