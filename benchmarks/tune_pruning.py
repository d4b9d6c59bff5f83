"""What pruning saves: two `layerlab tune` studies of the article's CNN with the same space and
sampler seed, one with the median pruner and one without, on a small slice of Fashion-MNIST.

    python benchmarks/tune_pruning.py [--trials 20] [--epochs 3] [--n-train 6000] [--workers 1]
                                      [--data-dir DIR] [--out DIR] [--quick]

Each study searches benchmarks/spaces/article_cnn_fast.toml around the article_cnn_fast preset
(fp32, ``--epochs`` epochs, 10% of the slice held out for validation) and optimises the last
epoch's validation accuracy. The table gives, per pruner: trials completed and pruned, the summed
training seconds of all trials and the study's wall time, and the best validation accuracy, with
the machine's CPU (lscpu) and thread count. ``--quick`` is a smoke run (4 trials, 1 epoch, the bar
images of the tests when Fashion-MNIST is not installed): numbers that mean nothing.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))
from peer_tools import cpu_model  # noqa: E402

SPACE = ROOT / "benchmarks" / "spaces" / "article_cnn_fast.toml"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return cpu_model()
    line = next((x for x in out.splitlines() if x.startswith("Model name:")), None)
    return line.split(":", 1)[1].strip() if line else cpu_model()


def small_data(root: Path, n_train: int, data_dir: str | None, quick: bool) -> str:
    """The first ``n_train`` training images of Fashion-MNIST (and 1000 test images) as IDX files,
    or, for --quick without Fashion-MNIST, the tests' bar images."""
    import numpy as np

    src = Path(data_dir) if data_dir else FASHION
    if not src.is_dir():
        if not quick:
            sys.exit(f"no Fashion-MNIST at {src}; pass --data-dir (or --quick for a smoke run)")
        sys.path.insert(0, str(ROOT / "tests"))
        from datagen import make_idx_dir

        return str(make_idx_dir(root / "bars", n_train=n_train, n_test=100))
    sys.path.insert(0, str(ROOT / "tests"))
    import gzip

    from datagen import write_idx

    out = root / "fashion-small"
    out.mkdir(parents=True)
    for stem, n in (("train", n_train), ("t10k", 1000)):
        for kind, header in (("images-idx3", 16), ("labels-idx1", 8)):
            name = f"{stem}-{kind}-ubyte"
            raw = gzip.decompress((src / f"{name}.gz").read_bytes())
            arr = np.frombuffer(raw, np.uint8, offset=header)
            arr = arr.reshape(-1, 28, 28)[:n] if kind.startswith("images") else arr[:n]
            write_idx(out / name, np.ascontiguousarray(arr))
    return str(out)


def study(prune: str, base: Path, args, root: Path) -> dict:
    out = root / f"study-{prune}"
    cmd = [sys.executable, "-m", "layerlab", "tune", "--config", str(base), "--space", str(SPACE)]
    cmd += ["--trials", str(args.trials), "--prune", prune, "--metric", "val_accuracy", "--out", str(out)]
    cmd += ["--workers", str(args.workers), "--study", f"pruning-{prune}", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    r = json.loads(proc.stdout)
    seconds = 0.0
    for t in r["trials"]:
        info = json.loads((Path(t["run_dir"]) / "run.json").read_text())
        seconds += float(info.get("train_wall_seconds", 0.0))
    return {
        "prune": prune,
        "completed": r["counts"].get("COMPLETE", 0),
        "pruned": r["counts"].get("PRUNED", 0),
        "failed": r["counts"].get("FAIL", 0),
        "train_seconds": round(seconds, 1),
        "wall_seconds": round(wall, 1),
        "best_val_accuracy": r["best"]["value"] if r["best"] else None,
        "best_params": r["best"]["params"] if r["best"] else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n-train", type=int, default=6000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir")
    p.add_argument("--out", help="keep the studies here (default: a temporary folder)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 4 trials, 1 epoch, 300 images")
    args = p.parse_args()
    if args.quick:
        args.trials, args.epochs, args.n_train = 4, 1, 300
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        data = small_data(root, args.n_train, args.data_dir, args.quick)
        base = root / "base.toml"
        preset = (ROOT / "src" / "layerlab" / "presets" / "article_cnn_fast.toml").read_text()
        base.write_text(
            preset.replace('name = "fashion-mnist"', f'name = "{data}"\nvalidation = 0.1')
            .replace("epochs = 2", f"epochs = {args.epochs}")
            .replace("amp = true", f'amp = false\ndevice = "cpu"\nthreads = {args.threads}')
        )
        rows = [study(prune, base, args, root) for prune in ("median", "none")]
    print(f"CPU: {lscpu_model()} ({os.cpu_count()} cores visible), {args.threads} threads per trial")
    print(f"article CNN, {args.n_train} training images (10% held out), {args.epochs} epochs, {args.trials} trials")
    print()
    print("| pruner | completed | pruned | training s (all trials) | study wall s | best val accuracy |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        best = f"{r['best_val_accuracy']:.4f}" if r["best_val_accuracy"] is not None else "-"
        print(
            f"| {r['prune']} | {r['completed']} | {r['pruned']} | {r['train_seconds']} | {r['wall_seconds']} | {best} |"
        )
    print()
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
