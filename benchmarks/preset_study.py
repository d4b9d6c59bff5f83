"""The fast CNN preset's search rerun as a `layerlab tune` study, against the shipped preset.

    python benchmarks/preset_study.py [--trials 40] [--workers 2] [--prune median] [--config PRESET]
                                      [--confirm-seeds 1,2,3] [--out DIR] [--results FILE]

1. The study: the command in the header of benchmarks/spaces/article_cnn_fast.toml, i.e.
   ``layerlab tune --config article_cnn_fast --validation 0.1 --space benchmarks/spaces/article_cnn_fast.toml
   --trials N --metric val_accuracy --prune median``, with ``--workers`` processes (each gets
   cores // workers threads). Every trial trains the preset's budget (2 epochs, all of
   Fashion-MNIST's training set but the held-out 10%) from seed 0, so every trial and the preset
   below are measured on the same 6,000 validation images.
2. The shipped preset on the same split and budget: ``layerlab train --config article_cnn_fast
   --validation 0.1 --seed 0 --threads T`` (T as the trials'), and the study's best trial rerun from
   its run directory's config.toml (``layerlab train --config OUT/trial-NNNN/config.toml``): the
   rerun gives the trial's number again, or the report says it did not.
3. Both again for each of ``--confirm-seeds`` (another seed draws another split and initialisation;
   the trials' one split picked the best trial, so its edge over the preset on seed 0 is partly the
   luck of that split): the preset and the best trial's values side by side, as
   benchmarks/preset_trials.py compares sets of flags.

The runs of steps 2 and 3 go two at a time (``--workers`` at most). The report, with the
commands, the CPU and the load average, goes to benchmarks/results/preset_study.md, and ends with
``layerlab tune --show``'s output for the study.
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
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from peer_tools import loadavg  # noqa: E402
from tune_pruning import lscpu_model, shown_command  # noqa: E402

SPACE = ROOT / "benchmarks" / "spaces" / "article_cnn_fast.toml"
RESULTS = ROOT / "benchmarks" / "results" / "preset_study.md"
PRESET = "article_cnn_fast"
STUDY = "article_cnn_fast"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def layerlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "layerlab", *args]


def shown(cmd: list[str], root: Path) -> str:
    """A command as a user types it: ``layerlab ...``, with this run's folder as OUT."""
    text = shlex.join(["layerlab", *cmd[3:]] if cmd[:3] == layerlab() else cmd)
    return text.replace(str(root), "OUT").replace(str(ROOT) + "/", "")


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if done.returncode != 0:
        sys.exit(f"preset_study: `{shlex.join(cmd)}` failed:\n{done.stderr.strip()}")
    return done


def last_val_accuracy(run_dir: Path) -> tuple[float, float]:
    """The last epoch's validation accuracy of a run, and its summed training seconds."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["val_accuracy"]), sum(float(r["train_seconds"]) for r in rows)


def in_pairs(jobs: list[tuple[str, list[str], Path]], width: int) -> tuple[dict[str, tuple[float, float]], int]:
    """Run ``layerlab train`` jobs ``width`` at a time; each one's (val accuracy, train seconds) by
    key, and how many of them trained in this call."""
    results = {}
    todo = []
    for key, cmd, out in jobs:  # a run finished by an earlier call with the same --out is read, not rerun
        info = out / "run.json"
        if info.is_file() and json.loads(info.read_text()).get("status") == "completed":
            results[key] = last_val_accuracy(out)
        else:
            if out.exists():
                shutil.rmtree(out)
            todo.append((key, cmd, out))
    for i in range(0, len(todo), width):
        batch = todo[i : i + width]
        procs = [
            (key, cmd, out, subprocess.Popen(cmd, env=ENV, stderr=subprocess.PIPE, text=True))
            for key, cmd, out in batch
        ]
        for key, cmd, out, proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                sys.exit(f"preset_study: `{shlex.join(cmd)}` failed:\n{err.strip()}")
            results[key] = last_val_accuracy(out)
            print(f"{key}: {results[key][0]:.4f} ({results[key][1]:.0f} s)", flush=True)
    return results, len(todo)


def base_values(config: str) -> dict:
    """The base config's values of the space's fields (the preset's choice of each)."""
    sys.path.insert(0, str(ROOT / "src"))
    from layerlab.config import RunConfig
    from layerlab.presets import resolve
    from layerlab.space import read_space

    cfg = RunConfig.from_toml(resolve(config))
    return {p.key: getattr(getattr(cfg, p.key.split(".")[0]), p.key.split(".")[1]) for p in read_space(SPACE).params}


def flags(params: dict) -> str:
    return " ".join(
        f"--{k.split('.', 1)[1].replace('_', '-')} {v:.4g}"
        if isinstance(v, float)
        else f"--{k.split('.', 1)[1].replace('_', '-')} {v}"
        for k, v in params.items()
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=PRESET, help="the base config: a preset or a TOML file (default %(default)s)")
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--prune", default="median", choices=("median", "hyperband", "none"))
    p.add_argument("--confirm-seeds", default="1,2,3", help="seeds to compare the best trial and the preset on")
    p.add_argument(
        "--out",
        help="keep the study and the runs here (default: a temporary folder); the same --out again reuses "
        "the finished study and runs",
    )
    p.add_argument("--results", help=f"the Markdown report (default {RESULTS.relative_to(ROOT)})")
    a = p.parse_args(argv)
    command = shown_command(sys.argv[1:] if argv is None else argv, "benchmarks/preset_study.py")
    seeds = [int(s) for s in a.confirm_seeds.split(",") if s.strip()]
    threads = max(1, (os.cpu_count() or 1) // a.workers)
    results = Path(a.results) if a.results else RESULTS
    load0 = loadavg() or [0.0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.out) if a.out else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        out = root / "study"
        tune = layerlab("tune", "--config", a.config, "--validation", "0.1", "--space", str(SPACE))
        tune += ["--trials", str(a.trials), "--metric", "val_accuracy", "--prune", a.prune]
        tune += ["--workers", str(a.workers), "--study", STUDY, "--out", str(out)]
        print(shown(tune, root), flush=True)
        saved, spent = root / "study.json", root / "study-seconds.txt"
        before = json.loads(saved.read_text()) if saved.is_file() else None
        if before and before["counts"].get("COMPLETE", 0) + before["counts"].get("PRUNED", 0) >= a.trials:
            r, wall = before, float(spent.read_text())  # the study of an earlier call with this --out: reported again
            studied = False
        else:  # a new study, or one continued to more trials: the wall time of every call
            t0 = time.perf_counter()
            r = json.loads(run([*tune, "--json", "--quiet"]).stdout)
            wall = time.perf_counter() - t0 + (float(spent.read_text()) if spent.is_file() else 0.0)
            spent.write_text(f"{wall:.1f}")
            saved.write_text(json.dumps(r, indent=2))
            studied = True
        best = r["best"]
        if best is None:
            sys.exit("preset_study: the study has no completed trial")
        best_dir = Path(best["run_dir"])
        print(f"study done in {wall:.0f} s; best trial {best['number']}: {best['value']:.4f}", flush=True)

        preset = layerlab("train", "--config", a.config, "--validation", "0.1", "--threads", str(threads), "--quiet")
        rerun = layerlab("train", "--config", str(best_dir / "config.toml"), "--quiet")
        jobs = []
        for s in [0, *seeds]:
            jobs.append(
                (
                    f"preset seed {s}",
                    [*preset, "--seed", str(s), "--out", str(root / f"preset-s{s}")],
                    root / f"preset-s{s}",
                )
            )
            jobs.append(
                (
                    f"best seed {s}",
                    [*rerun, "--seed", str(s), "--out", str(root / f"best-t{best['number']:04d}-s{s}")],
                    root / f"best-t{best['number']:04d}-s{s}",
                )
            )
        scores, trained = in_pairs(jobs, max(1, min(2, a.workers)))
        show = run(layerlab("tune", "--show", STUDY, "--out", str(out))).stdout
        trials = r["trials"]
        top = r["top"]
        cmd_tune = shown(tune, root)
        cmd_preset = shown([*preset, "--seed", "S", "--out", str(root / "preset-sS")], root)
        cmd_rerun = shown([*rerun, "--seed", "S", "--out", str(root / "best-tNNNN-sS")], root)
        show = show.replace(str(root), "OUT")
        # the machine's load and the date of the calls that trained (a call that only reports again keeps them)
        measured = root / "measured.json"
        m = json.loads(measured.read_text()) if measured.is_file() else {}
        if studied or trained or not m:
            m = {
                "load0": m.get("load0", load0),
                "load1": loadavg() or [0.0],
                "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            }
            measured.write_text(json.dumps(m))
    load0, load1, date = m["load0"], m["load1"], m["date"]

    preset_values = base_values(a.config)
    n_done = r["counts"].get("COMPLETE", 0) + r["counts"].get("PRUNED", 0)
    counts = ", ".join(f"{v} {k.lower()}" for k, v in r["counts"].items() if v)
    all_seeds = [0, *seeds]
    pre = [scores[f"preset seed {s}"][0] for s in all_seeds]
    bst = [scores[f"best seed {s}"][0] for s in all_seeds]
    same = abs(scores["best seed 0"][0] - best["value"]) < 1e-9
    lines = [
        f"# `{a.config}`'s search as a `layerlab tune` study, against the shipped preset",
        "",
        f"`{command}` wrote this file ({date} UTC).",
        "",
        f"- **Machine**: {lscpu_model()} ({os.cpu_count()} cores), **shared with other work while measured** "
        f"(load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end). The study ran {a.workers} "
        f"worker processes of {threads} thread{'s' if threads > 1 else ''} each; the preset and the reruns "
        f"ran two at a time with as many threads. Accuracies are what this is about; times are not compared here.",
        f"- **The study**: `{cmd_tune}` (the command in the space file's header): {n_done} "
        f"trials ({counts}) in {wall / 60:.1f} minutes. Each trial trains the preset's budget: 2 epochs on "
        f"Fashion-MNIST's training set less a stratified 10% (54,000 images), bf16 autocast where the CPU has "
        f"it, from seed 0; the objective is the last epoch's accuracy on the held-out 6,000, the same split "
        f"for every trial (seed 0 draws it). Never the test set.",
        f"- **The preset on the same split and budget**: `{cmd_preset}` with S = 0; the best trial rerun from "
        f"its run directory: `{cmd_rerun}` with S = 0 gave "
        + (
            f"{scores['best seed 0'][0]:.4f}, the trial's value again."
            if same
            else f"{scores['best seed 0'][0]:.4f} where the trial gave {best['value']:.4f}: **not** the same."
        )
        + (
            f" Then both for seeds {', '.join(map(str, seeds))} (another split and initialisation each), "
            f"because one split chose the best trial among {len(trials)}: its margin on seed 0 is partly that "
            f"split's luck."
            if seeds
            else ""
        ),
        "",
        "| | batch | peak lr | beta1 | beta2 | smoothing | warm-up epochs | "
        + " | ".join(f"val acc seed {s}" for s in all_seeds)
        + (" | mean |" if seeds else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(all_seeds) + ("---:|" if seeds else ""),
    ]

    def row(name: str, params: dict, accs: list[float]) -> str:
        cells = [params[k] for k in preset_values]
        cells = [f"{c:.4g}" if isinstance(c, float) else str(c) for c in cells]
        text = f"| {name} | " + " | ".join(cells) + " | " + " | ".join(f"{x:.4f}" for x in accs)
        return text + (f" | **{statistics.mean(accs):.4f}** |" if seeds else " |")

    lines.append(row(f"the shipped preset (`{a.config}`)", preset_values, pre))
    lines.append(row(f"the study's best (trial {best['number']})", best["params"], bst))
    verdict = bst[0] - pre[0]
    wins = sum(b > p for b, p in zip(bst[1:], pre[1:], strict=True))
    lines += [
        "",
        f"On the study's split the best trial is {verdict:+.4f} from the preset"
        + (
            f"; over seeds {', '.join(map(str, all_seeds))} its mean is "
            f"{statistics.mean(bst) - statistics.mean(pre):+.4f} from the preset's (the spread between seeds "
            f"is {min(pre):.4f}-{max(pre):.4f} for the preset). On the seeds that did not choose it "
            f"({', '.join(map(str, seeds))}) it is better on {wins} "
            f"of {len(seeds)}, mean {statistics.mean(bst[1:]) - statistics.mean(pre[1:]):+.4f}."
            if seeds
            else "."
        ),
        f"As flags on top of the preset: `{flags(best['params'])}` "
        f'(`python benchmarks/preset_trials.py --trial="..."` compares them over more seeds).',
        "",
        "## The study's best trials",
        "",
        "| trial | val accuracy | batch | peak lr | beta1 | beta2 | smoothing | warm-up epochs |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in top:
        cells = [t["params"][k] for k in preset_values]
        cells = [f"{c:.4g}" if isinstance(c, float) else str(c) for c in cells]
        lines.append(f"| {t['number']} | {t['value']:.4f} | " + " | ".join(cells) + " |")
    lines += ["", "## `layerlab tune --show article_cnn_fast --out OUT/study`", "", "```", show.rstrip(), "```", ""]
    text = "\n".join(lines)
    results.write_text(text)
    print(text)
    print(f"wrote {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
