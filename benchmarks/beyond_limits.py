"""The article's two CNN limits (6.1.2: a fixed input size, 2-D data only), lifted and measured.

Runs ``layerlab`` as a user would (subprocesses) and writes ``benchmarks/results/beyond_limits.md``:

1. a 1-D CNN against a GRU on three univariate UCR sets bundled with aeon (GunPoint,
   ItalyPowerDemand, ArrowHead), 3 seeds each, final-epoch test accuracy (nothing chosen on the test set);
2. an image folder of mixed sizes (stripes: horizontal or vertical, 16 to 28 pixels a side) trained
   without resizing, then predictions at sizes never seen in training (12 to 64 pixels a side);
3. a 3-D task learned from generated volumes: which axis (depth, height or width) a bright bar
   runs along, in 12x12x12 volumes of noise.

    python benchmarks/beyond_limits.py            # about 26 CPU-minutes (46 min on a loaded 2-core machine)
    python benchmarks/beyond_limits.py --quick    # one seed, fewer epochs
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from peer_tools import cpu_model  # the benchmarks' one machine description

ROOT = Path(__file__).resolve().parents[1]
LAYERLAB = [sys.executable, "-m", "layerlab"]
UCR = ("GunPoint", "ItalyPowerDemand", "ArrowHead")
MODELS = {  # label: flags
    "1-D CNN": ["--model", "cnn", "--channels", "32,M,64,M,64", "--padding", "same", "--global-pool", "avg"],
    "GRU": ["--model", "gru", "--hidden", "64"],
}


def layerlab(*args, log: list[str]) -> str:
    cmd = [*LAYERLAB, *map(str, args)]
    log.append("layerlab " + " ".join(map(str, args)))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr}")
    return done.stdout


def final_accuracy(run: Path) -> float:
    return float(json.loads((run / "summary.json").read_text())["final"]["test_accuracy"])


def stripes(rng, h: int, w: int, k: int) -> np.ndarray:
    """Class 0: horizontal stripes, class 1: vertical ones (random phase and period), faint noise."""
    a = (rng.random((h, w)) * 80).astype(np.uint8)
    period, phase = int(rng.integers(3, 6)), int(rng.integers(0, 3))
    if k == 0:
        a[phase::period, :] = 255
    else:
        a[:, phase::period] = 255
    return a


def volumes(rng, n: int, size: int = 12):
    """A bright bar along depth, height or width (the class) at a random place, in noise."""
    y = rng.integers(0, 3, n)
    x = rng.random((n, 1, size, size, size), dtype=np.float32) * 0.5
    for i, k in enumerate(y):
        a, b = rng.integers(1, size - 1, 2)
        idx = [slice(None), slice(a, a + 1), slice(b, b + 1)]
        x[i, 0][tuple(idx[(j - k) % 3] for j in range(3))] = 1.0
    return x, y


def ucr_table(tmp: Path, seeds: list[int], epochs: int, log: list[str]) -> list[str]:
    rows = ["| data | model | parameters | test accuracy (mean ± sd) | per seed |", "| --- | --- | ---: | ---: | --- |"]
    for data in UCR:
        for label, flags in MODELS.items():
            accs, params = [], 0
            for seed in seeds:
                run = tmp / f"{data}-{label}-{seed}".replace(" ", "")
                layerlab("train", "--data", data, *flags, "--epochs", epochs, "--batch-size", 16, "--lr", 0.003,
                         "--seed", seed, "--threads", 2, "--out", run, "--quiet", log=log)  # fmt: skip
                accs.append(final_accuracy(run))
                params = json.loads((run / "run.json").read_text())["model"]["parameters"]
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            per = ", ".join(f"{a:.3f}" for a in accs)
            rows.append(f"| {data} | {label} | {params:,} | {statistics.mean(accs):.3f} ± {sd:.3f} | {per} |")
    return rows


def mixed_sizes(tmp: Path, epochs: int, log: list[str]) -> tuple[list[str], dict]:
    from PIL import Image

    rng = np.random.default_rng(0)
    data = tmp / "stripes"
    train_sizes = [(16, 16), (16, 28), (28, 16), (22, 22), (28, 28)]
    for part, n in (("train", 150), ("test", 50)):
        for k, cls in enumerate(("horizontal", "vertical")):
            d = data / part / cls
            d.mkdir(parents=True)
            for i in range(n):
                h, w = train_sizes[int(rng.integers(0, len(train_sizes)))]
                Image.fromarray(stripes(rng, h, w, k)).save(d / f"{i}.png")
    run = tmp / "stripes-run"
    layerlab("train", "--data", data, "--model", "cnn", "--channels", "16,M,32,M,32", "--padding", "same",
             "--global-pool", "max", "--epochs", epochs, "--batch-size", 16, "--lr", 0.003, "--seed", 0,
             "--threads", 2, "--out", run, "--quiet", log=log)  # fmt: skip
    test_acc = final_accuracy(run)
    unseen = [(12, 12), (12, 40), (40, 12), (36, 36), (48, 30), (64, 64)]
    files, truth = [], []
    new = tmp / "unseen"
    new.mkdir()
    for h, w in unseen:
        for k in (0, 1):
            for i in range(10):
                f = new / f"{h}x{w}-{k}-{i}.png"
                Image.fromarray(stripes(rng, h, w, k)).save(f)
                files.append(f)
                truth.append(("horizontal", "vertical")[k])
    t0 = time.perf_counter()
    preds = json.loads(layerlab("predict", run, *files, "--json", log=log))
    seconds = time.perf_counter() - t0
    log[-1] = f"layerlab predict {run} <{len(files)} PNG files of sizes never seen> --json"
    rows = ["| size (H x W) | images | correct |", "| --- | ---: | ---: |"]
    right_all = 0
    for h, w in unseen:
        picked = [(p, t) for p, t, f in zip(preds, truth, files, strict=True) if f.name.startswith(f"{h}x{w}-")]
        right = sum(p["label"] == t for p, t in picked)
        right_all += right
        rows.append(f"| {h} x {w} | {len(picked)} | {right} ({right / len(picked):.0%}) |")
    resized = sum(any(n.startswith("resized") for n in p["notes"]) for p in preds)
    facts = {
        "test_accuracy": test_acc,
        "unseen_accuracy": right_all / len(files),
        "unseen": len(files),
        "resized": resized,
        "predict_seconds": seconds,
    }
    return rows, facts


def volume_task(tmp: Path, epochs: int, log: list[str]) -> dict:
    rng = np.random.default_rng(0)
    xtr, ytr = volumes(rng, 600)
    xte, yte = volumes(rng, 300)
    np.savez(tmp / "bars3d.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    run = tmp / "bars3d-run"
    layerlab("train", "--data", tmp / "bars3d.npz", "--model", "cnn", "--channels", "8,M,16", "--padding", "same",
             "--global-pool", "max", "--epochs", epochs, "--batch-size", 32, "--lr", 0.003, "--seed", 0,
             "--threads", 2, "--out", run, "--quiet", log=log)  # fmt: skip
    info = json.loads((run / "run.json").read_text())
    return {"test_accuracy": final_accuracy(run), "parameters": info["model"]["parameters"], "chance": 1 / 3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one seed and fewer epochs")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "beyond_limits.md")
    args = ap.parse_args()
    seeds = [0] if args.quick else [0, 1, 2]
    t0 = time.perf_counter()
    log: list[str] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ucr = ucr_table(tmp, seeds, 10 if args.quick else 60, log)
        mixed, facts = mixed_sizes(tmp, 3 if args.quick else 8, log)
        vol = volume_task(tmp, 3 if args.quick else 6, log)
        log = [c.replace(str(tmp), "WORK") for c in log]  # WORK: the script's temporary folder
    minutes = (time.perf_counter() - t0) / 60
    text = (
        f"""# Beyond the article's CNN limits (6.1.2): any dimension, any size

Made by `python benchmarks/beyond_limits.py{" --quick" if args.quick else ""}` in {minutes:.1f} minutes on
{cpu_model()} (2 threads per run), with layerlab's CLI. Accuracies are the final epoch's, on the test
split; nothing is chosen on it.

## 1-D CNN against GRU on univariate UCR sets

The same `--data NAME` trains either model: the CNN reads a series of T steps by 1 feature as 1
channel over T steps (Conv1d), ending in a global average pool; the GRU reads it step by step.
{len(seeds)} seed(s), {10 if args.quick else 60} epochs, batch 16, Adam lr 0.003.

{chr(10).join(ucr)}

## An image folder of mixed sizes, and sizes never seen

300 training and 100 test PNGs of horizontal or vertical stripes, each 16x16, 16x28, 28x16, 22x22 or
28x28, trained as they are (`--global-pool max`; batches hold one size each: size-bucketed batches)
for {3 if args.quick else 8} epochs: test accuracy **{facts["test_accuracy"]:.3f}**. Then `layerlab predict` on
{facts["unseen"]} new images of six sizes none of which was in training, each fed at its own size
({facts["resized"]} resized; {facts["predict_seconds"]:.1f} s for the whole command):
**{facts["unseen_accuracy"]:.1%}** correct.

{chr(10).join(mixed)}

## A 3-D task: which axis a bar runs along

Generated volumes (`.npz`, x of shape (N, 1, 12, 12, 12): the rank says volumes): a bright bar along
depth, height or width at a random place in noise; 600 training and 300 test volumes. A 3-D CNN
(Conv3d 8 > MaxPool3d > Conv3d 16 > global max pool, {vol["parameters"]:,} parameters) reaches test
accuracy **{vol["test_accuracy"]:.3f}** after {3 if args.quick else 6} epochs (chance {vol["chance"]:.3f}).

## Commands

"""
        + "\n".join(f"    {c}" for c in log)
        + "\n"
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
