"""What pruning saves: two `layerlab tune` studies of the article's CNN with the same space and
sampler seed, one with the median pruner and one without, on a slice of Fashion-MNIST.

    python benchmarks/tune_pruning.py [--trials 20] [--epochs 4] [--n-train 12000] [--workers 2]
                                      [--threads 1] [--data-dir DIR] [--out DIR] [--results FILE] [--quick]

Each study searches benchmarks/spaces/article_cnn_fast.toml around the article_cnn_fast preset
(fp32, ``--epochs`` epochs, the first ``--n-train`` training images of which a stratified 10% is
held out for validation) and optimises the last epoch's validation accuracy, with ``--workers``
processes of ``--threads`` threads each. Both studies read the same space file, so their samplers
have the same seed: trial k of either draws from seed + k, and the trials TPE draws at random
before it models anything (its first 10) are the same values in both; after that each study's
sampler follows its own history, which pruning changes. The report gives, per pruner: trials
completed and pruned, the epochs trained and the summed training seconds of all trials, the
study's wall time and the best validation accuracy, then each trial of both studies; it names the
CPU (lscpu) and the load average, and writes benchmarks/results/tune_pruning.md (``--results``).
``--quick`` is a smoke run (4 trials, 1 epoch, 300 images; the tests' bar images when
Fashion-MNIST is not installed) that writes no results file unless ``--results`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))
from peer_tools import cpu_model, loadavg  # noqa: E402

SPACE = ROOT / "benchmarks" / "spaces" / "article_cnn_fast.toml"
FASHION = Path("/usr/share/datasets/fashion-mnist")
RESULTS = ROOT / "benchmarks" / "results" / "tune_pruning.md"
TPE_STARTUP = 10  # optuna.samplers.TPESampler's n_startup_trials: its first trials are random draws


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
    out.mkdir(parents=True, exist_ok=True)
    for stem, n in (("train", n_train), ("t10k", 1000)):
        for kind, header in (("images-idx3", 16), ("labels-idx1", 8)):
            name = f"{stem}-{kind}-ubyte"
            raw = gzip.decompress((src / f"{name}.gz").read_bytes())
            arr = np.frombuffer(raw, np.uint8, offset=header)
            arr = arr.reshape(-1, 28, 28)[:n] if kind.startswith("images") else arr[:n]
            write_idx(out / name, np.ascontiguousarray(arr))
    return str(out)


def base_config(preset: str, data: str, epochs: int, threads: int) -> str:
    """The article_cnn_fast preset on ``data`` with a 10% validation split, ``epochs`` epochs, fp32 on the CPU."""
    text = (
        preset.replace('name = "fashion-mnist"', f'name = "{data}"\nvalidation = 0.1')
        .replace("epochs = 2", f"epochs = {epochs}")
        .replace("amp = true", f'amp = false\ndevice = "cpu"\nthreads = {threads}')
    )
    for needed in ("validation = 0.1", f"epochs = {epochs}", "amp = false"):
        if needed not in text:  # the preset changed under this script: refuse rather than measure something else
            sys.exit(f"tune_pruning: could not set {needed!r} in the article_cnn_fast preset; update base_config()")
    return text


def study(prune: str, base: Path, args, root: Path) -> dict:
    out = root / f"study-{prune}"
    cmd = [sys.executable, "-m", "layerlab", "tune", "--config", str(base), "--space", str(SPACE)]
    cmd += ["--trials", str(args.trials), "--prune", prune, "--metric", "val_accuracy", "--out", str(out)]
    cmd += ["--workers", str(args.workers), "--study", f"pruning-{prune}", "--json", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    print(f"{prune}: {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    r = json.loads(proc.stdout)
    trials = []
    for t in sorted(r["trials"], key=lambda t: t["number"]):
        info = json.loads((Path(t["run_dir"]) / "run.json").read_text())
        rows = (Path(t["run_dir"]) / "metrics.csv").read_text().strip().splitlines()[1:]
        trials.append(
            {
                "number": t["number"],
                "state": t["state"],
                "params": t["params"],
                "epochs": len(rows),
                "train_seconds": float(info.get("train_wall_seconds", 0.0)),
                "value": t["value"],
                "last_val_accuracy": float(rows[-1].split(",")[4]) if rows else None,
            }
        )
    print(f"{prune}: done in {wall:.0f} s", flush=True)
    return {
        "prune": prune,
        "study": f"pruning-{prune}",
        "out": str(out),
        "completed": r["counts"].get("COMPLETE", 0),
        "pruned": r["counts"].get("PRUNED", 0),
        "failed": r["counts"].get("FAIL", 0),
        "epochs_trained": sum(t["epochs"] for t in trials),
        "train_seconds": round(sum(t["train_seconds"] for t in trials), 1),
        "wall_seconds": round(wall, 1),
        "best_val_accuracy": r["best"]["value"] if r["best"] else None,
        "best_trial": r["best"]["number"] if r["best"] else None,
        "best_params": r["best"]["params"] if r["best"] else None,
        "trials": trials,
    }


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


def fmt_params(p: dict) -> str:
    short = {k.split(".", 1)[1]: v for k, v in p.items()}
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in short.items())


def report(rows: list[dict], args, command: str, load: tuple, date: str) -> str:
    n_val = round(args.n_train * 0.1)
    med, none = rows
    theirs = {t["number"]: t["params"] for t in none["trials"]}
    same = [t["number"] for t in med["trials"] if theirs.get(t["number"]) == t["params"]]
    lines = [
        "# What pruning saves: the median pruner against none",
        "",
        f"`{command}` wrote this file ({date} UTC).",
        "",
        f"- **Machine**: {lscpu_model()} ({os.cpu_count()} cores), **shared with other work while measured** "
        f"(load average {load[0][0]:.1f} at the start, {load[1][0]:.1f} at the end): the seconds are this run's, "
        f"compare them only with each other. Each study ran {plural(args.workers, 'worker process')} of "
        f"{plural(args.threads, 'thread')}, one study after the other.",
        f"- **Trials**: the article's CNN (the `article_cnn_fast` preset's model and recipe in fp32), the first "
        f"{args.n_train:,} Fashion-MNIST training images, of which a stratified 10% ({n_val:,}) is the validation "
        f"split and {args.n_train - n_val:,} train, {plural(args.epochs, 'epoch')}; {args.trials} trials per study "
        f"searching [spaces/article_cnn_fast.toml](../spaces/article_cnn_fast.toml), objective the last epoch's "
        f"validation accuracy.",
        "- **Same sampler seed**: both studies read the same space file (TPE, `seed = 0`), so trial k of either "
        f"draws from seed 0 + k; TPE's first {TPE_STARTUP} trials are random draws and were the same values in both "
        f"studies (trials with identical parameters in both: {len(same)} of {args.trials}, numbers "
        f"{', '.join(map(str, same)) or 'none'}). Later trials follow each study's own history, which pruning changes.",
        "- **Pruner**: Optuna's MedianPruner as `layerlab tune --prune median` sets it (from the first epoch on, "
        "after 2 completed trials, never after the last epoch): a trial stops after an epoch whose validation "
        "accuracy is below the median of the completed trials' at that epoch. A pruned trial counts towards the "
        "study's trials.",
        "",
        "| pruner | completed | pruned | epochs trained | training s (all trials) | study wall s | best val accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        best = f"{r['best_val_accuracy']:.4f} (trial {r['best_trial']})" if r["best_val_accuracy"] is not None else "-"
        lines.append(
            f"| {r['prune']} | {r['completed']} | {r['pruned']} | {r['epochs_trained']} | {r['train_seconds']:.1f} "
            f"| {r['wall_seconds']:.1f} | {best} |"
        )
    if none["train_seconds"] and none["epochs_trained"]:
        lines += [
            "",
            f"The median pruner trained {med['epochs_trained'] / none['epochs_trained']:.0%} of the epochs and "
            f"took {med['train_seconds'] / none['train_seconds']:.0%} of the training seconds of the study without "
            f"pruning; its best trial's validation accuracy is "
            f"{(med['best_val_accuracy'] or 0) - (none['best_val_accuracy'] or 0):+.4f} from the unpruned study's.",
        ]
    # what pruning cost: the unpruned study's best trials that the pruned study drew alike and stopped
    ranked = sorted((t for t in none["trials"] if t["state"] == "COMPLETE"), key=lambda t: -(t["value"] or 0))[:5]
    mine = {t["number"]: t for t in med["trials"]}
    lost = [
        (t, mine[t["number"]])
        for t in ranked
        if t["number"] in mine and mine[t["number"]]["params"] == t["params"] and mine[t["number"]]["state"] == "PRUNED"
    ]
    if ranked:
        lines += [
            "",
            f"Of the unpruned study's {len(ranked)} best trials, the median pruner stopped "
            + (
                "; ".join(
                    f"trial {t['number']} (its rank {ranked.index(t) + 1}, {t['value']:.4f} after {t['epochs']} "
                    f"epochs; stopped after epoch {m['epochs']} at {m['last_val_accuracy']:.4f})"
                    for t, m in lost
                )
                if lost
                else "none"
            )
            + " (only trials with the same parameters in both studies are compared).",
        ]
    for r in rows:
        lines += [
            "",
            f"## `--prune {r['prune']}`: each trial",
            "",
            "| trial | state | epochs | train s | last val accuracy | parameters |",
            "|---:|---|---:|---:|---:|---|",
        ]
        for t in r["trials"]:
            acc = f"{t['last_val_accuracy']:.4f}" if t["last_val_accuracy"] is not None else "-"
            lines.append(
                f"| {t['number']} | {t['state']} | {t['epochs']} | {t['train_seconds']:.1f} | {acc} | "
                f"{fmt_params(t['params'])} |"
            )
    lines.append("")
    return "\n".join(lines)


def shown_command(argv: list[str], script: str = "benchmarks/tune_pruning.py") -> str:
    """A script's command line for its report, with the folder given to --out (a local path) as DIR."""
    argv = list(argv)
    for i, a in enumerate(argv):
        if a == "--out" and i + 1 < len(argv):
            argv[i + 1] = "DIR"
        elif a.startswith("--out="):
            argv[i] = "--out=DIR"
    return shlex.join(["python", script, *argv])


SETTINGS = ("trials", "epochs", "n_train", "workers", "threads")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--n-train", type=int, default=12000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="threads of each trial (default 1)")
    p.add_argument("--data-dir")
    p.add_argument("--out", help="keep the studies here (default: a temporary folder), and OUT/pruning.json")
    p.add_argument("--results", help=f"the Markdown report (default {RESULTS.relative_to(ROOT)}; none with --quick)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 4 trials, 1 epoch, 300 images")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="write the report again from OUT/pruning.json (a finished run's numbers) without training",
    )
    args = p.parse_args()
    command = shown_command(sys.argv[1:])
    if args.quick:
        args.trials, args.epochs, args.n_train = 4, 1, 300
    results = Path(args.results) if args.results else (None if args.quick else RESULTS)
    if args.report_only:
        if not args.out or not (Path(args.out) / "pruning.json").is_file():
            sys.exit("tune_pruning: --report-only needs --out DIR of an earlier run (DIR/pruning.json)")
        saved = json.loads((Path(args.out) / "pruning.json").read_text())
        for k in SETTINGS:
            setattr(args, k, saved["settings"][k])
        rows, loads, command, date = saved["rows"], saved["load"], saved["command"], saved["date"]
    else:
        start_load = loadavg() or [0.0]
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(args.out) if args.out else Path(tmp)
            root.mkdir(parents=True, exist_ok=True)
            data = small_data(root, args.n_train, args.data_dir, args.quick)
            base = root / "base.toml"
            preset = (ROOT / "src" / "layerlab" / "presets" / "article_cnn_fast.toml").read_text()
            base.write_text(base_config(preset, data, args.epochs, args.threads))
            rows = [study(prune, base, args, root) for prune in ("median", "none")]
            loads = (start_load, loadavg() or [0.0])
            date = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
            saved = {"settings": {k: getattr(args, k) for k in SETTINGS}, "rows": rows, "load": loads}
            (root / "pruning.json").write_text(json.dumps({**saved, "command": command, "date": date}, indent=2))
    text = report(rows, args, command, loads, date)
    print(text)
    if results is not None:
        results.write_text(text)
        print(f"wrote {results}")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
