"""Choose a preset's training settings on validation data, over several seeds: the trials behind
the fast presets, rerunnable.

    python benchmarks/preset_trials.py [--preset article_cnn_fast] [--seeds 0,1,2,3]
                                       [--validation 0.1] [--trial="FLAGS" ...] [--data-dir DIR] [--out FILE]

Each trial is `layerlab train --config PRESET --validation FRACTION --seed S FLAGS`, once per seed,
each in its own process, one after the other: the model trains on the rest of the training set
and is scored on the held-out fraction (stratified), never on the test set. The table gives each
seed's validation accuracy after the last epoch, their mean and minimum, and the mean training
seconds (measured while nothing else ran, but on a machine whose speed drifts: compare the
accuracies; time the presets with peer.sh). Without ``--trial``, the trials that chose
``article_cnn_fast``. The seed moves the initial weights, the batch order and which samples are
held out, so a trial's mean is over as many splits as seeds, and every trial sees the same ones.

Why this is not a ``layerlab tune`` study: it scores a few named sets of flags, each over several
seeds and splits (a mean and a minimum), where a sampler's trial is one seed and one split. The same
search as a study, with a sampler choosing the values: ``benchmarks/spaces/article_cnn_fast.toml``
(its header has the command); ``benchmarks/preset_study.py`` runs it and checks the best trial over seeds.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from peer_tools import cpu_model  # noqa: E402

# Flags on top of article_cnn_fast: the preset before this selection, single changes and their
# combination with the smaller batch, and the preset itself ("").
CNN_FAST_TRIALS = [
    "--batch-size 64 --lr 0.01 --beta1 0.9 --label-smoothing 0.1 --warmup-epochs 0",
    "--batch-size 64 --lr 0.01 --label-smoothing 0.1 --warmup-epochs 0",
    "--batch-size 64 --lr 0.01 --beta1 0.9 --warmup-epochs 0",
    "--batch-size 64 --lr 0.01 --warmup-epochs 0",
    "--batch-size 64 --lr 0.01",
    "--warmup-epochs 0",
    "--batch-size 32 --lr 0.005 --warmup-epochs 0",
    "",
]


def run_trial(preset: str, flags: str, seed: int, validation: float, data_dir: str | None) -> dict:
    """One training run; its last epoch's validation accuracy and the summed training seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "layerlab", "train", "--config", preset, "--validation", str(validation)]
        cmd += ["--seed", str(seed), "--out", str(out), "--quiet", *shlex.split(flags)]
        if data_dir:
            cmd += ["--data-dir", data_dir]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"preset_trials: `{shlex.join(cmd)}` failed:\n{done.stderr.strip()}")
        with open(out / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    return {"acc": float(rows[-1]["val_accuracy"]), "seconds": sum(float(r["train_seconds"]) for r in rows)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="article_cnn_fast")
    p.add_argument("--seeds", default="0,1,2,3")
    p.add_argument("--validation", type=float, default=0.1)
    p.add_argument(
        "--trial",
        action="append",
        help='flags on top of the preset, as --trial="FLAGS" (repeat it; an empty one is the preset itself)',
    )
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="Markdown file (default benchmarks/results/<preset>_trials.md)")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    trials = a.trial if a.trial is not None else CNN_FAST_TRIALS
    out = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / f"{a.preset}_trials.md"
    lines = [
        f"# `{a.preset}`: trials on validation data",
        "",
        f"`python benchmarks/preset_trials.py --preset {a.preset}` wrote this file "
        f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC). CPU: {cpu_model()}. Each trial: "
        f"`layerlab train --config {a.preset} --validation {a.validation} --seed S` plus its flags, for seeds "
        f"{', '.join(map(str, seeds))}; validation accuracy after the last epoch (a stratified "
        f"{a.validation:.0%} of the training set, drawn by the seed: every trial sees the same {len(seeds)} splits).",
        "",
        "| flags on top of the preset | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | min | train s (mean) |",
        "|---|" + "---:|" * (len(seeds) + 3),
    ]
    for flags in trials:
        res = [run_trial(a.preset, flags, s, a.validation, a.data_dir) for s in seeds]
        accs = [r["acc"] for r in res]
        seconds = statistics.mean(r["seconds"] for r in res)
        row = (
            f"| {f'`{flags}`' if flags else '(the preset)'} | "
            + " | ".join(f"{x:.4f}" for x in accs)
            + f" | **{statistics.mean(accs):.4f}** | {min(accs):.4f} | {seconds:.1f} |"
        )
        lines.append(row)
        print(row, flush=True)
    lines.append("")
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
