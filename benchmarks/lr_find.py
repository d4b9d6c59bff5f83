"""``layerlab lr-find`` on the article's CNN (Fashion-MNIST, the article's recipe): its plot and
suggested rate, then one epoch of training at the suggested rate against one at the article's 1e-3,
from the same seed, each scored once on the test set after that epoch.

Runs the command line as a user would, writes ``benchmarks/results/lr_find.png`` (the plot),
``benchmarks/results/lr_find.csv`` (its numbers) and ``benchmarks/results/lr_find.md``.

    python benchmarks/lr_find.py                  # about 4 minutes on one shared core
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERLAB = [sys.executable, "-m", "layerlab"]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU (no lscpu)"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return f"{fields.get('Model name', 'unknown').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"


def run(cmd: list[str]) -> str:
    print("$", shlex.join(["layerlab", *cmd]), flush=True)
    return subprocess.run([*LAYERLAB, *cmd], check=True, capture_output=True, text=True).stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None, help="where Fashion-MNIST is (default: layerlab's search)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    made = " ".join(["python benchmarks/lr_find.py", shlex.join(sys.argv[1:])]).strip()
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    common = ["--config", "article_cnn", *data, "--seed", str(args.seed), "--threads", str(args.threads)]
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        find_cmd = ["lr-find", *common, "--out", tmp, "--json"]
        found = json.loads(run(find_cmd).strip().splitlines()[-1])
        shutil.copyfile(found["plot"], args.out / "lr_find.png")
        shutil.copyfile(found["csv"], args.out / "lr_find.csv")
        suggestion = float(found["suggestion"])
        rates = {"suggested": suggestion, "the article's": 1e-3}
        scores, commands = {}, {}
        for label, lr in rates.items():
            out = Path(tmp) / label.replace("'", "")
            cmd = ["train", *common, "--epochs", "1", "--lr", f"{lr:.3g}", "--out", str(out), "--quiet"]
            run(cmd)
            rows = list(csv.DictReader(open(out / "metrics.csv", encoding="utf-8")))
            scores[label] = float(rows[-1]["test_accuracy"])
            commands[label] = shlex.join(["layerlab", *cmd[:-3], "--out", "RUN", "--quiet"])
            print(f"{label} rate {lr:.3g}: test accuracy {scores[label]:.4f}", flush=True)

    stop = (
        f"the test stopped at step {found['stopped']}, where the loss passed four times its lowest"
        if found["stopped"]
        else f"all {found['steps']} steps ran: the smoothed loss never reached four times its lowest, the stopping rule"
    )
    table = "\n".join(
        f"| {label} | {rates[label]:.3g} | {scores[label]:.4f} | `{commands[label]}` |" for label in rates
    )
    text = f"""# The learning-rate range test on the article's CNN

`{shlex.join(["layerlab", *find_cmd[:-3], "--out", "DIR"])}` trains the article's CNN on Fashion-MNIST for
{found["steps"]} steps while the rate grows exponentially from 1e-7 to 10 (batch 32, Adam with the article's
epsilon), and suggests the rate where the smoothed loss falls fastest: **{suggestion:.3g}**
({stop}; the weights are restored afterwards).

![loss against learning rate](lr_find.png)

The numbers of the plot: [lr_find.csv](lr_find.csv). One epoch of the article's recipe at each rate, from
seed {args.seed}, scored once on the 10,000-sample test set after that epoch:

| rate | value | test accuracy after 1 epoch | command |
| --- | --- | --- | --- |
{table}

Made by `{made}` on {cpu_model()}, with {args.threads} thread(s); the machine was shared with other work
while this ran. One epoch and one seed: a comparison of where each rate starts, not of where it ends.
"""
    (args.out / "lr_find.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
