"""The MNIST-1D benchmark (Greydanus 2020, "Scaling down deep learning", arXiv:2011.14439) with
layerlab's models: logistic regression, an MLP, a 1-D CNN, a GRU and an LSTM on the package's default
4,000 / 1,000 split, each trained from several seeds, the final-epoch test accuracy next to the
paper's (logistic regression 32%, MLP 68%, CNN 94%, GRU 91%).

Runs ``layerlab train --data mnist-1d`` once per (model, seed) with one budget, then writes
``benchmarks/results/mnist1d.md``: the table, the machine, and the exact commands that made it. The
data is generated offline by the ``mnist1d`` package (``pip install 'layerlab[mnist1d]'``) on the
first run and cached.

    python benchmarks/mnist1d_table.py                     # 5 models x 3 seeds (about 9 min on 2 shared cores)
    python benchmarks/mnist1d_table.py --seeds 0 1 2 3 4   # more seeds
    python benchmarks/mnist1d_table.py --only cnn gru      # some rows
    python benchmarks/mnist1d_table.py --table-only        # rebuild the table from finished runs
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERLAB = [sys.executable, "-m", "layerlab"]
# (tag, label, --model and its flags, the paper's row, the paper's model as the mnist1d repository builds it)
MODELS = [
    ("linear", "logistic regression", ["linear"], "logistic regression", "Dense(10); 410 parameters"),
    (
        "mlp",
        "MLP, 2 x 100 ReLU",
        ["mlp", "--hidden", "100", "--layers", "2"],
        "MLP",
        "2 x 100 ReLU, the second with a skip connection; 15,210 parameters",
    ),
    (
        "cnn",
        "1-D CNN 32,M,64,M,128, global average pool",
        ["cnn", "--channels", "32,M,64,M,128", "--padding", "same", "--global-pool", "avg"],
        "CNN",
        "3 convs of 25 channels, stride 2, Flatten > Dense; 5,210 parameters",
    ),
    (
        "gru",
        "GRU, 64 units, last step",
        ["gru", "--hidden", "64"],
        "GRU",
        "bidirectional, 6 units, Dense on every step; 5,134 parameters",
    ),
    ("lstm", "LSTM, 64 units, last step", ["lstm", "--hidden", "64"], None, "not in the paper"),
]
PAPER = {"logistic regression": 0.32, "MLP": 0.68, "CNN": 0.94, "GRU": 0.91}  # the mnist1d README's table
# the parameters of the paper's models, counted from the mnist1d repository's notebooks/models.py
PAPER_PARAMETERS = {"logistic regression": 410, "MLP": 15_210, "CNN": 5_210, "GRU": 5_134}
# the paper's recipe (Adam, lr 1e-2, batch 100, torch's epsilon), for fewer steps: 40 epochs = 1,600 steps
BUDGET = ["--epochs", "40", "--batch-size", "100", "--lr", "0.01", "--eps", "1e-8", "--threads", "1"]


def run_dir(out: Path, tag: str, seed: int) -> Path:
    return out / f"mnist1d-{tag}-s{seed}"


def command(model: list[str], seed: int, path: Path, data_dir: str | None) -> list[str]:
    data = ["--data", "mnist-1d"] + (["--data-dir", data_dir] if data_dir else [])
    return ["layerlab", "train", "--model", *model, *data, *BUDGET, "--seed", str(seed), "--out", str(path), "--quiet"]


def read_run(path: Path) -> dict | None:
    if not (path / "summary.json").is_file():
        return None
    rows = list(csv.DictReader(open(path / "metrics.csv")))
    info = json.loads((path / "run.json").read_text())
    return {
        "final": float(rows[-1]["test_accuracy"]),  # the last epoch's: nothing is chosen on the test set
        "epochs": len(rows),
        "train_seconds": sum(float(r["train_seconds"]) for r in rows),
        "parameters": info["model"]["parameters"],
        "data": info.get("data_fingerprint", {}),
        "torch": (info.get("environment") or {}).get("torch"),
    }


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU (no lscpu)"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown").strip()
    cpus = fields.get("CPU(s)", "?").strip()
    hyper = fields.get("Hypervisor vendor", "").strip()
    return f"{name}, {cpus} CPUs" + (f" ({hyper} VM)" if hyper else "")


def pct(v: float) -> str:
    return f"{100 * v:.1f}"


def table(seeds: list[int], out: Path) -> tuple[str, dict]:
    lines = [
        "| model | parameters | test accuracy %, mean ± sd | min - max | seeds | train s per run "
        "| paper: model, test accuracy % (parameters) | layerlab - paper, points |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    facts: dict = {}
    for tag, label, _, paper_row, _ in MODELS:
        runs = [r for s in seeds if (r := read_run(run_dir(out, tag, s))) is not None]
        if paper_row:
            paper = f"{paper_row}, **{PAPER[paper_row] * 100:.0f}** ({PAPER_PARAMETERS[paper_row]:,})"
        else:
            paper = "not in the paper"
        if not runs:
            lines.append(f"| {label} | | not run | | 0 | | {paper} | |")
            continue
        acc = [r["final"] for r in runs]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        secs = statistics.mean(r["train_seconds"] for r in runs)
        lines.append(
            f"| {label} | {runs[0]['parameters']:,} | **{pct(statistics.mean(acc))}** ± {pct(sd)} "
            f"| {pct(min(acc))} - {pct(max(acc))} | {len(runs)} | {secs:.0f} | {paper} "
            f"| {f'{100 * (statistics.mean(acc) - PAPER[paper_row]):+.1f}' if paper_row else ''} |"
        )
        facts.setdefault("data", runs[0]["data"])
        facts.setdefault("torch", runs[0]["torch"])
    return "\n".join(lines), facts


def write_markdown(seeds: list[int], out: Path, dest: Path, data_dir: str | None, argv: list[str], notes: str) -> None:
    body, facts = table(seeds, out)
    paper_models = "\n".join(
        f"- **{label}**: layerlab `{' '.join(model)}`; the paper's {paper_row or 'table has no LSTM'}"
        + (f": {arch}" if paper_row else "")
        for _, label, model, paper_row, arch in MODELS
    )
    cmds = "\n".join(
        "    " + shlex.join(command(model, s, Path(f"runs/mnist1d-{tag}-s{s}"), data_dir))
        for tag, _, model, _, _ in MODELS
        for s in seeds
    )
    data = facts.get("data") or {}
    sha = ", ".join(f"{part} {data[part]['sha256'][:16]}" for part in ("train", "test") if part in data)
    # --table-only rewrites the same file from the runs the command without it trained
    made = shlex.join(["python", "benchmarks/mnist1d_table.py", *(a for a in argv if a != "--table-only")])
    text = f"""# MNIST-1D: the paper's table with layerlab's models

MNIST-1D (Greydanus 2020, "Scaling down deep learning", arXiv:2011.14439) is ten 1-D digit
templates, padded, scaled, shifted, sheared and given noise, then resampled to 40 steps: 4,000
training and 1,000 test sequences of one feature, 10 classes. `layerlab train --data mnist-1d`
generates the package's default set offline (the `mnist1d` package's `make_dataset`, seed 42) and
caches it.

One budget for every model, the paper's recipe for fewer steps: Adam, lr 0.01, epsilon 1e-8
(torch's, as the paper's code uses), batch 100, no weight decay, 40 epochs (1,600 steps; the
mnist1d repository's `notebooks/train.py` runs 8,000). Seeds {", ".join(map(str, seeds))} (weights
and shuffle order; the data is the same for every run). **Test accuracy is that of the last
epoch**, averaged over the seeds (sd: the sample standard deviation between seeds); nothing is
chosen on the test set. The paper's column is its table (the mnist1d README: logistic regression
32%, MLP 68%, CNN 94%, GRU 91%). *train s per run* is the mean of the
runs' summed epoch training times, on one CPU thread with the CPU shared with other jobs:
indicative only.

{body}
{f"{chr(10)}{notes}{chr(10)}" if notes else ""}
The models, and the paper's as the mnist1d repository builds them (`notebooks/models.py`, at
their default sizes):

{paper_models}

So the rows compare a recipe, not identical networks. Logistic regression is the same model. The
MLP has the paper's widths and parameter count but no skip connection. The CNN and the GRU are
layerlab's own, larger than the paper's: the CNN pools globally over time (so it hardly depends on
where a digit lies: each is shifted circularly by up to 48 of 72 steps before being resampled to
40), and the GRU has 64 units and reads its last step where the paper's reads every step of a
6-unit bidirectional GRU. The LSTM row has the GRU's width and budget; the paper has no LSTM.

Made by `{made}` on {cpu_model()}, torch {facts.get("torch") or "?"} (threads 1); data fingerprint
(sha256 of the samples as trained on) {sha or "?"}. The script runs:

{cmds}
"""
    dest.write_text(text)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs", default=str(ROOT / "benchmarks" / "runs"), help="where the run directories go")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mnist1d.md"))
    p.add_argument("--data-dir", help="where mnist-1d's cache file is looked for first (train --data-dir)")
    p.add_argument("--notes", default="", help="a paragraph to put under the table")
    p.add_argument("--table-only", action="store_true", help="only rebuild the table from finished runs")
    p.add_argument("--only", nargs="+", metavar="TAG", help="run only these rows (linear, mlp, cnn, gru, lstm)")
    args = p.parse_args(argv)
    out = Path(args.runs)
    out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for tag, label, model, _, _ in MODELS:
            if args.only and tag not in args.only:
                continue
            for seed in args.seeds:
                path = run_dir(out, tag, seed)
                if read_run(path) is not None:
                    print(f"{label}, seed {seed}: done already ({path})", flush=True)
                    continue
                if path.exists():  # an unfinished run: start it again
                    shutil.rmtree(path)
                cmd = LAYERLAB + command(model, seed, path, args.data_dir)[1:]
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, cwd=ROOT)
                r = read_run(path)
                print(
                    f"{label}, seed {seed}: test accuracy {r['final']:.3f} ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_markdown(args.seeds, out, Path(args.out), args.data_dir, argv, args.notes)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
