"""The adding problem at several lengths, for every recurrent cell: which remedy for the vanishing
gradient (article 6.2.2) learns a dependency ~T/2 steps long?

Runs ``layerlab train`` once per (model, T) with one fixed budget and seed, then writes
``benchmarks/results/adding.md``: a table and the exact commands that made it.

    python benchmarks/adding_table.py                      # all runs (about 30-40 min on 2 cores)
    python benchmarks/adding_table.py --lengths 150        # one length
    python benchmarks/adding_table.py --table-only         # rebuild the table from finished runs
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERLAB = [sys.executable, "-m", "layerlab"]
MODELS = [  # (label, --model, extra flags)
    ("rnn (tanh)", "rnn", []),
    ("rnn, 2 layers", "rnn", ["--layers", "2"]),
    ("residual", "residual", []),
    ("lstm", "lstm", []),
    ("gru", "gru", []),
]
BUDGET = [
    "--hidden",
    "64",
    "--n-train",
    "10000",
    "--n-test",
    "1000",
    "--epochs",
    "12",
    "--batch-size",
    "50",
    "--lr",
    "0.01",
    "--clip",
    "1",
    "--seed",
    "0",
    "--threads",
    "1",
]
SOLVED = 0.01
BASELINE = 1 / 6


def run_dir(out: Path, model: str, extra: list[str], T: int) -> Path:
    tag = model + ("-L" + extra[extra.index("--layers") + 1] if "--layers" in extra else "")
    return out / f"adding-T{T}-{tag}"


def command(model: str, extra: list[str], T: int, path: Path) -> list[str]:
    return [
        "layerlab",
        "train",
        "--model",
        model,
        "--data",
        "adding",
        "--length",
        str(T),
        *BUDGET,
        *extra,
        "--out",
        str(path),
        "--quiet",
    ]


def read_run(path: Path) -> dict | None:
    if not (path / "summary.json").is_file():
        return None
    rows = list(csv.DictReader(open(path / "metrics.csv")))
    mse = [float(r["test_loss"]) for r in rows]
    secs = sorted(float(r["train_seconds"]) for r in rows)
    info = json.loads((path / "run.json").read_text())
    solved = next((i + 1 for i, v in enumerate(mse) if v < SOLVED), None)
    return {
        "final": mse[-1],
        "best": min(mse),
        "best_epoch": mse.index(min(mse)) + 1,
        "solved_epoch": solved,
        "sec_per_epoch": secs[len(secs) // 2],
        "parameters": info["model"]["parameters"],
        "clipped": max(float(r.get("clipped_fraction") or 0) for r in rows),
    }


def verdict(r: dict) -> str:
    if r["best"] < SOLVED:
        return f"solved (epoch {r['solved_epoch']})"
    if r["best"] > 1.5 * BASELINE:
        return "unstable, above the baseline"
    if r["best"] > 0.9 * BASELINE:
        return "stays at the baseline"
    return "partly"


def table(lengths: list[int], out: Path) -> str:
    lines = [
        "| T | model | parameters | test MSE, last epoch | best (epoch) | verdict | s/epoch |",
        "| ---: | --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for T in lengths:
        for label, model, extra in MODELS:
            r = read_run(run_dir(out, model, extra, T))
            if r is None:
                lines.append(f"| {T} | {label} | | not run | | | |")
                continue
            lines.append(
                f"| {T} | {label} | {r['parameters']:,} | {r['final']:.4f} | {r['best']:.4f} ({r['best_epoch']}) "
                f"| {verdict(r)} | {r['sec_per_epoch']:.1f} |"
            )
    return "\n".join(lines)


def write_markdown(lengths: list[int], out: Path, dest: Path, notes: str) -> None:
    cmds = "\n".join(
        "    " + shlex.join(command(m, e, T, Path(f"runs/adding-T{T}-{m}" + ("-L2" if e else ""))))
        for T in lengths
        for _, m, e in MODELS
    )
    text = f"""# The adding problem: which recurrent cell learns a long dependency?

T steps of (value, marker); the target is the sum of the two marked values, one marker in each half
of the sequence, so the model must carry a value across ~T/2 steps. Always answering 1 scores a test
MSE of 1/6 = 0.167 (the baseline); below {SOLVED} counts as solved.

One budget for every cell: hidden 64, 10,000 training sequences, 1,000 test sequences, 12 epochs of
batch 50 (2,400 steps), Adam lr 0.01 (eps 1e-7), gradients clipped to global norm 1, seed 0, one
CPU thread. s/epoch is the median training time of an epoch (CPU shared with other jobs, so
indicative only).

{table(lengths, out)}

{notes}

Made by `python benchmarks/adding_table.py` ({platform.processor() or platform.machine()}, torch threads 1),
which runs:

{cmds}
"""
    dest.write_text(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[50, 150, 400])
    p.add_argument("--runs", default=str(ROOT / "benchmarks" / "runs"), help="where the run directories go")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "adding.md"))
    p.add_argument("--notes", default="", help="a paragraph to put under the table")
    p.add_argument("--table-only", action="store_true", help="only rebuild the table from finished runs")
    p.add_argument("--only", nargs="+", metavar="LABEL", help="run only these rows (rnn, rnn-L2, residual, lstm, gru)")
    args = p.parse_args(argv)
    out = Path(args.runs)
    out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for T in args.lengths:
            for label, model, extra in MODELS:
                path = run_dir(out, model, extra, T)
                if args.only and path.name.split(f"T{T}-", 1)[1] not in args.only:
                    continue
                if read_run(path) is not None:
                    print(f"T={T} {label}: done already ({path})", flush=True)
                    continue
                cmd = command(model, extra, T, path)
                cmd = LAYERLAB + cmd[1:]
                if path.exists():  # an unfinished run: start it again
                    shutil.rmtree(path)
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, cwd=ROOT)
                r = read_run(path)
                print(
                    f"T={T} {label}: best MSE {r['best']:.4f}, last {r['final']:.4f} "
                    f"({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_markdown(args.lengths, out, Path(args.out), args.notes)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
