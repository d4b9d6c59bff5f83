"""Augmentation on Fashion-MNIST: the article's CNN with and without crop/flip augmentation at the
same epochs, and the ``fashion_best`` preset, each over several seeds.

    python benchmarks/augment_table.py                  # 2 arms x 3 seeds, then fashion_best x 3 seeds
    python benchmarks/augment_table.py --only article   # the two article-CNN arms
    python benchmarks/augment_table.py --only best      # the fashion_best rows
    python benchmarks/augment_table.py --table-only     # rebuild the file from finished runs
    python benchmarks/augment_table.py --quick          # one seed, one epoch: a check of the harness

Every run is ``layerlab train`` in its own process. The article-CNN arms are the preset
``article_cnn`` (its Keras recipe: Adam 1e-3, batch 32) for each of ``--epochs`` (default 3 and 10), one thread each,
``--parallel`` of them side by side; their test accuracy is the last epoch's (nothing is chosen on
the test set). The ``fashion_best`` runs are the preset as shipped, ``--best-threads`` threads
each, ``--parallel`` side by side: it holds out a stratified 10% of the training set, which chooses its
``best`` weights, and ``layerlab evaluate`` then scores those on the test set. For each run the
table gives wall seconds of training (``train_wall_seconds`` in run.json, evaluation of the held-out
split included) and the CPU seconds the process used (user + system, from ``wait4``): on a machine
shared with other work the wall time is an upper bound, and the CPU time of a one-thread run is
what it takes on an idle core. Writes ``benchmarks/results/augment.md`` (``--out``), with the
commands, the CPU and the load average seen during the runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))
from peer_tools import cpu_model  # noqa: E402

AUGMENT = "crop=2,flip"
# (tag, label, flags on top of the preset)
ARMS = [
    ("plain", "article CNN, no augmentation", []),
    ("aug", f"article CNN, `--augment {AUGMENT}`", ["--augment", AUGMENT]),
]


def article_command(flags: list[str], seed: int, epochs: int, path: Path, data: list[str]) -> list[str]:
    return [
        "layerlab", "train", "--config", "article_cnn", *flags, "--epochs", str(epochs), "--threads", "1",
        "--seed", str(seed), *data, "--out", str(path), "--quiet",
    ]  # fmt: skip


def best_command(seed: int, threads: int, path: Path, data: list[str], extra: list[str]) -> list[str]:
    return [
        "layerlab", "train", "--config", "fashion_best", "--threads", str(threads), "--seed", str(seed),
        *extra, *data, "--out", str(path), "--quiet",
    ]  # fmt: skip


def start(cmd: list[str], log: Path) -> tuple[subprocess.Popen, float, tuple]:
    """``cmd`` (``layerlab ...``) started in the background, its output in ``log``."""
    full = [sys.executable, "-m", "layerlab", *cmd[1:]]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    out = open(log, "w")
    proc = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, env=env)
    out.close()
    return proc, time.time(), os.getloadavg()


def run_all(jobs: list[tuple[list[str], Path]], parallel: int) -> None:
    """Each (command, run directory) of ``jobs``, ``parallel`` at a time; each run's timing goes in
    ``timing.json`` beside its run directory."""
    pending, active = list(jobs), []
    while pending or active:
        while pending and len(active) < parallel:
            cmd, path = pending.pop(0)
            if path.exists():
                shutil.rmtree(path)
            for suffix in (".timing.json", ".test.json"):
                path.with_suffix(suffix).unlink(missing_ok=True)
            log = path.with_suffix(".log")
            print(f"[{time.strftime('%H:%M:%S')}] {shlex.join(cmd)}", flush=True)
            active.append((cmd, path, log, *start(cmd, log)))
        # wait for whichever ends first
        pid, status, usage = os.wait4(-1, 0)
        ended = [j for j, job in enumerate(active) if job[3].pid == pid]
        if not ended:
            continue
        cmd, path, log, proc, t0, load0 = active.pop(ended[0])
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            tail = log.read_text().strip().splitlines()[-5:]
            raise SystemExit(f"augment_table: `{shlex.join(cmd)}` failed:\n" + "\n".join(tail))
        timing = {
            "wall": round(time.time() - t0, 1),
            "cpu": round(usage.ru_utime + usage.ru_stime, 1),
            "load": [round(load0[0], 1), round(os.getloadavg()[0], 1)],
        }
        path.with_suffix(".timing.json").write_text(json.dumps(timing))
        print(f"[{time.strftime('%H:%M:%S')}] done {path.name}: {timing}", flush=True)


def evaluate(path: Path, data_dir: list[str]) -> dict:
    """The run's test accuracy from ``layerlab evaluate`` (its best weights, chosen on validation)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "layerlab", "evaluate", str(path), *data_dir, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"augment_table: `{shlex.join(cmd)}` failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout)


def time_v(log: Path) -> dict | None:
    """CPU seconds from a run started by hand under ``/usr/bin/time -v`` (its report in ``log``)."""
    if not log.is_file():
        return None
    fields = dict(line.strip().split(": ", 1) for line in log.read_text().splitlines() if ": " in line)
    try:
        cpu = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
    except (KeyError, ValueError):
        return None
    return {"cpu": round(cpu, 1), "load": ["?", "?"]}


def as_preset(path: Path) -> bool:
    """Whether the run at ``path`` trained the fashion_best preset as shipped (all but its seed and
    thread count the same), however its command spelled it."""
    from layerlab.config import RunConfig
    from layerlab.presets import resolve

    ran, preset = RunConfig.from_toml(path / "config.toml"), RunConfig.from_toml(resolve("fashion_best"))
    ran.train.seed, ran.train.threads = preset.train.seed, preset.train.threads
    return ran == preset


def read_run(path: Path, data_dir: list[str], best: bool) -> dict | None:
    if not (path / "summary.json").is_file():
        return None
    timing_file = path.with_suffix(".timing.json")
    if timing_file.is_file():
        timing = json.loads(timing_file.read_text())
    elif (timing := time_v(path.with_suffix(".log"))) is None:
        return None
    rows = list(csv.DictReader(open(path / "metrics.csv")))
    info = json.loads((path / "run.json").read_text())
    summary = json.loads((path / "summary.json").read_text())
    out = {
        "epochs": len(rows),
        "train_wall": float(info.get("train_wall_seconds") or summary["wall_seconds"]),
        "cpu": timing["cpu"],
        "load": timing["load"],
        "parameters": info["model"]["parameters"],
        "torch": (info.get("environment") or {}).get("torch"),
    }
    if best:
        cached = path.with_suffix(".test.json")
        if not cached.is_file():
            cached.write_text(json.dumps(evaluate(path, data_dir)))
        result = json.loads(cached.read_text())
        out["acc"] = float(result["accuracy"])
        out["best_epoch"] = summary.get("best_epoch", 0)
        out["as_preset"] = as_preset(path)
        out["val"] = float(summary.get("best", rows[-1]).get("val_accuracy", "nan"))
    else:
        out["acc"] = float(rows[-1]["test_accuracy"])  # the last epoch's: nothing chosen on the test set
    return out


def pct(v: float) -> str:
    return f"{100 * v:.2f}"


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"**{pct(statistics.mean(values))}** ± {pct(sd)}"


def article_dir(out: Path, tag: str, epochs: int, seed: int) -> Path:
    return out / f"article-{tag}-e{epochs}-s{seed}"


def article_table(out: Path, seeds: list[int], epoch_counts: list[int], data_dir: list[str]) -> tuple[str, dict]:
    head = " | ".join(f"seed {s}" for s in seeds)
    lines = [
        f"| arm | epochs | {head} | test accuracy %, mean ± sd | train wall s per run (mean) | CPU s per run (mean) |",
        "| --- | ---: | " + " | ".join("---:" for _ in seeds) + " | ---: | ---: | ---: |",
    ]
    facts: dict = {}
    for epochs, (tag, label, _) in ((e, arm) for e in epoch_counts for arm in ARMS):
        runs = {s: read_run(article_dir(out, tag, epochs, s), data_dir, False) for s in seeds}
        done = [r for r in runs.values() if r]
        if not done:
            lines.append(f"| {label} | {epochs} | " + " | ".join("" for _ in seeds) + " | not run | | |")
            continue
        cells = " | ".join(pct(r["acc"]) if r else "" for r in runs.values())
        wall = statistics.mean(r["train_wall"] for r in done)
        cpu = statistics.mean(r["cpu"] for r in done)
        lines.append(f"| {label} | {epochs} | {cells} | {mean_sd([r['acc'] for r in done])} | {wall:.0f} | {cpu:.0f} |")
        facts.setdefault("parameters", done[0]["parameters"])
        facts.setdefault("torch", done[0]["torch"])
        facts.setdefault("loads", []).extend(x for r in done for x in r["load"])
    return "\n".join(lines), facts


def best_table(out: Path, seeds: list[int], data_dir: list[str]) -> tuple[str, dict]:
    lines = [
        "| seed | test accuracy % | validation accuracy % (best epoch) | train wall s | CPU s | load avg start, end |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    facts: dict = {}
    done = []
    for s in seeds:
        r = read_run(out / f"best-s{s}", data_dir, True)
        if r is None:
            lines.append(f"| {s} | not run | | | | |")
            continue
        done.append(r)
        mark = "" if r["as_preset"] else " (not the preset as shipped)"
        lines.append(
            f"| {s}{mark} | {pct(r['acc'])} | {pct(r['val'])} ({r['best_epoch']} of {r['epochs']}) "
            f"| {r['train_wall']:.0f} | {r['cpu']:.0f} | {r['load'][0]}, {r['load'][1]} |"
        )
        facts.setdefault("parameters", r["parameters"])
        facts.setdefault("torch", r["torch"])
    if done:
        acc = [r["acc"] for r in done]
        wall = [r["train_wall"] for r in done]
        cpu = [r["cpu"] for r in done]
        lines.append(
            f"| mean ± sd | {mean_sd(acc)} | | {statistics.mean(wall):.0f} (max {max(wall):.0f}) "
            f"| {statistics.mean(cpu):.0f} (max {max(cpu):.0f}) | |"
        )
        facts["mean"] = statistics.mean(acc)
    return "\n".join(lines), facts


def write_markdown(args, out: Path, seeds: list[int], data: list[str], made: str) -> None:
    art, afacts = article_table(out, seeds, args.epochs, data)
    best, bfacts = best_table(out, seeds, data)
    article_cmds = "\n".join(
        "    " + shlex.join(article_command(flags, s, e, Path(f"runs/article-{tag}-e{e}-s{s}"), data))
        for e in args.epochs
        for tag, _, flags in ARMS
        for s in seeds
    )
    best_cmds = "\n".join(
        "    "
        + shlex.join(best_command(s, args.best_threads, Path(f"runs/best-s{s}"), data, args.best_extra))
        + f"\n    layerlab evaluate runs/best-s{s}{' ' + shlex.join(data) if data else ''}"
        for s in seeds
    )
    loads = afacts.get("loads", [])
    load_note = f" (1-minute load average {min(loads)} to {max(loads)} at the runs' starts and ends)" if loads else ""
    quick = "\n**A quick check of the harness (`--quick`): one seed, one epoch; not a result.**\n" if args.quick else ""
    where = f"`{args.data}`" if args.data else "Fashion-MNIST's 60,000 training images"
    tested = "its test set" if args.data else "the 10,000 test images"
    text = f"""# Augmentation on Fashion-MNIST
{quick}
Made by `{made}` on {cpu_model()}, torch {afacts.get("torch") or bfacts.get("torch") or "?"}.
**The machine was shared with other work while these ran**{load_note}: wall times are upper
bounds; the CPU seconds (user + system of the training process) are the steadier measure, and those
of a one-thread run are what it takes on an idle core.

## The article's CNN with and without augmentation

The preset `article_cnn` (the article's CNN, {afacts.get("parameters", 0):,} parameters, and its
Keras recipe: Adam 1e-3, batch 32) for {" and ".join(map(str, args.epochs))} epoch(s) on {where}, with and
without `--augment {AUGMENT}` (zero-pad 2 pixels and crop back to 28x28 at a random offset, and a
left-right flip with probability 0.5, drawn per sample from seed, epoch and index). Seeds
{", ".join(map(str, seeds))}; test accuracy ({tested}) after the last epoch, nothing chosen on
the test set; one thread per run, {args.parallel} runs side by side.

{art}

## `fashion_best`

The preset as shipped (`--config fashion_best`: its recipe is in the preset's comment; it trains on
90% of the training set and a stratified 10% chooses its `best` weights), {args.best_threads}
thread(s) per run, up to {args.parallel} runs side by side; test accuracy of those weights from `layerlab evaluate`
(the weights of lowest validation loss). *train wall s* is `train_wall_seconds` of run.json (the
held-out split's evaluation after each epoch included); *CPU s* is the training process's user +
system time, which for a one-thread run is the wall time it takes on an idle core.
{f"Extra flags: `{shlex.join(args.best_extra)}`." if args.best_extra else ""}

{best}
{f"{chr(10)}{args.notes}{chr(10)}" if args.notes else ""}
## Commands

The script runs, from the repository root:

{article_cmds}
{best_cmds}
"""
    args.out.write_text(text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--epochs",
        type=int,
        nargs="+",
        default=[3, 10],
        help="epochs of both article-CNN arms, a pair of rows for each (default 3 10)",
    )
    p.add_argument("--parallel", type=int, default=2, help="article-CNN runs side by side (one thread each)")
    p.add_argument("--best-threads", type=int, default=1, help="threads of each fashion_best run (default 1)")
    p.add_argument("--data-dir", help="where fashion-mnist is looked for first (train --data-dir)")
    p.add_argument("--data", help="another dataset in place of fashion-mnist (a tiny one for a test)")
    p.add_argument("--runs", type=Path, default=ROOT / "benchmarks" / "runs" / "augment")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "augment.md")
    p.add_argument("--only", choices=["article", "best"], help="run only these rows")
    p.add_argument("--quick", action="store_true", help="one seed, one epoch of each: a check of the harness")
    p.add_argument("--notes", default="", help="a paragraph under the fashion_best table")
    p.add_argument("--table-only", action="store_true", help="only rebuild the file from finished runs")
    args = p.parse_args(argv)
    args.best_extra = []
    if args.quick:
        args.seeds, args.epochs, args.best_extra = args.seeds[:1], [1], ["--epochs", "1"]
    data = (["--data", args.data] if args.data else []) + (["--data-dir", args.data_dir] if args.data_dir else [])
    out = args.runs
    out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        if args.only in (None, "article"):
            jobs = [
                (article_command(flags, s, e, article_dir(out, tag, e, s), data), article_dir(out, tag, e, s))
                for e in args.epochs
                for s in args.seeds
                for tag, _, flags in ARMS
            ]
            run_all(jobs, args.parallel)
        if args.only in (None, "best"):
            jobs = [
                (best_command(s, args.best_threads, out / f"best-s{s}", data, args.best_extra), out / f"best-s{s}")
                for s in args.seeds
            ]
            run_all(jobs, args.parallel)
    kept, skip = [], False  # the command that reruns it all: without --table-only and --notes
    for a in argv:
        if not skip and a != "--table-only" and not a.startswith("--notes"):
            kept.append(a)
        skip = a == "--notes"
    made = shlex.join(["python", "benchmarks/augment_table.py", *kept])
    write_markdown(args, out, args.seeds, data, made)
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
