"""``layerlab train --data X`` with nothing else (the defaults of ``layerlab.defaults``) on the
univariate UCR sets the ``aeon`` package ships, against the published FCN of Wang et al. 2017, and
on a small image folder made from Fashion-MNIST, against the old default model and the best recipe
found on its validation split.

    python benchmarks/ucr_defaults.py [--seeds 0,1,2] [--jobs 2] [--sets A,B] [--budget-minutes 25]
                                      [--work DIR] [--fashion DIR] [--out FILE]

Every run is its own ``python -m layerlab train ... --threads 1 --quiet --json`` process (``--jobs``
at once), then ``layerlab evaluate RUN --json`` gives its test accuracy: the weights of its best
epoch by validation loss, for a run with a validation split, else its last. Finished runs are kept
in ``--work`` and reused, so an interrupted benchmark goes on where it stopped. No new run starts
after ``--budget-minutes``; those not run are listed as such in the results.

UCR: each univariate classification set of the UCR archive that aeon bundles, ``--data NAME``
alone (with ``--seed`` and ``--threads 1``), 3 seeds; the test accuracy's mean and standard
deviation beside the FCN's published test accuracy, 1 - its error in Wang et al. 2017, table 2,
for the sets that table has. The published FCN trained on the whole training set for 2000 epochs
and chose its model by the training loss; the defaults hold out 20% of a training set (40 of
GunPoint's 50 series train) and stop early.

Images: 100 training and 100 test images of each of three Fashion-MNIST classes (T-shirt/top,
trouser, sneaker) written as PNGs, a fifth of them upscaled to 32x32 and a fifth downscaled to 24x24
(a folder of mixed sizes, as a user's photos are). ``--data FOLDER`` alone against the old default
model (``--model cnn``: the article's two convs, 10 epochs at a constant 1e-3) and against the best of
a few changes to the defaults, chosen by seed 0's validation accuracy (at the epoch of the lowest
validation loss, the weights kept as ``best``) and then run with the 3 seeds.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))
from peer_tools import cpu_model  # noqa: E402

#: The FCN's and the ResNet's test error in Wang, Yan and Oates, "Time series classification from
#: scratch with deep neural networks: a strong baseline", IJCNN 2017, table 2 (44 UCR sets): only the
#: sets of that table that aeon ships.
PUBLISHED_ERROR = {
    "GunPoint": {"fcn": 0.000, "resnet": 0.007},
    "ItalyPowerDemand": {"fcn": 0.030, "resnet": 0.040},
    "OSULeaf": {"fcn": 0.012, "resnet": 0.021},
}
#: Sets of the UCR archive (2018, 128 univariate sets) among those aeon bundles; the others it
#: bundles are not UCR sets: UnitTest (aeon's 42-series fixture cut from Chinatown), Covid3Month_disc
#: (a regression set with its target binned), and multivariate or regression sets.
UCR_ARCHIVE = {"ACSF1", "ArrowHead", "GunPoint", "ItalyPowerDemand", "OSULeaf", "PickupGestureWiimoteZ"}

#: the sets of longest series (OSULeaf 427 steps, ACSF1 1460), run after everything else
COSTLY = ("OSULeaf", "ACSF1")

FASHION_CLASSES = {0: "tshirt", 1: "trouser", 7: "sneaker"}
PER_CLASS = 100
#: changes to the defaults tried on the image folder's validation split (seed 0)
IMAGE_TRIALS = {
    "lr 3e-3": ["--lr", "0.003"],
    "augment crop,flip": ["--augment", "crop=2,flip"],
    "lr 3e-3 + augment": ["--lr", "0.003", "--augment", "crop=2,flip"],
}


def univariate_ucr_sets() -> tuple[list[str], list[str]]:
    """(the univariate classification sets aeon bundles that are UCR sets, those that are not)."""
    from layerlab.data.catalog import bundled_ts_names, bundled_ts_root

    root = bundled_ts_root()
    ucr, other = [], []
    for name in bundled_ts_names():
        head = (root / name / f"{name}_TRAIN.ts").read_text(errors="replace")[:4000].lower()
        if "@univariate true" in head and "@classlabel true" in head:
            (ucr if name in UCR_ARCHIVE else other).append(name)
    return ucr, other


def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "layerlab", *map(str, args)]


def train_and_test(work: Path, key: str, data: str, flags: list[str], seed: int) -> dict:
    """One run (kept in ``work/key``): the train summary, the test evaluation and validation score."""
    out = work / key
    done = out / "benchmark.json"
    if done.is_file():
        return json.loads(done.read_text())
    train = _cmd("train", "--data", data, "--seed", seed, "--threads", 1, *flags, "--out", out, "--quiet", "--json")
    t0 = time.perf_counter()
    while out.exists() and not _completed(out) and time.time() - _touched(out) < 120:
        time.sleep(15)  # a run that an earlier, stopped invocation left training: wait for it
    if out.exists() and not _completed(out):  # an interrupted run: start it again
        subprocess.run(["rm", "-rf", str(out)], check=True)
    if not out.exists():
        p = subprocess.run(train, capture_output=True, text=True)
        if p.returncode != 0:
            return {"key": key, "error": p.stderr.strip().splitlines()[-1:] or ["?"], "command": shlex.join(train)}
    info = json.loads((out / "run.json").read_text())
    summary = {"model": info["model"]["name"], "epochs": len(list(csv.DictReader((out / "metrics.csv").open())))}
    e = subprocess.run(_cmd("evaluate", out, "--json"), capture_output=True, text=True)
    test = json.loads(e.stdout) if e.returncode == 0 else {"error": e.stderr.strip()}
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    val = [r for r in rows if r.get("val_loss")]
    best = min(val, key=lambda r: float(r["val_loss"])) if val else None
    config = (out / "config.toml").read_text()
    result = {
        "key": key,
        "data": data,
        "seed": seed,
        "command": shlex.join(["layerlab", *train[3:]]),
        "model": summary["model"],
        "epochs": summary["epochs"],
        "seconds": round(time.perf_counter() - t0, 1),
        "test_accuracy": test.get("accuracy"),
        "weights": test.get("weights"),
        "val_accuracy": float(best["val_accuracy"]) if best and best.get("val_accuracy") else None,
        "val_loss": float(best["val_loss"]) if best else None,
        "config": config,
    }
    done.write_text(json.dumps(result))
    return result


def _completed(out: Path) -> bool:
    try:
        return json.loads((out / "run.json").read_text()).get("status") == "completed"
    except (OSError, ValueError):
        return False


def _touched(out: Path) -> float:
    return max((p.stat().st_mtime for p in out.rglob("*")), default=out.stat().st_mtime)


def make_image_folder(fashion: Path, root: Path) -> Path:
    """The benchmark's image folder (see the module docstring), made once, deterministically."""
    if (root / "done").is_file():
        return root
    from PIL import Image

    def idx(name):
        with gzip.open(fashion / name) as f:
            data = f.read()
        if name.startswith(("train-labels", "t10k-labels")):
            return np.frombuffer(data, np.uint8, offset=8)
        return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)

    rng = np.random.default_rng(0)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x, y = idx(f"{prefix}-images-idx3-ubyte.gz"), idx(f"{prefix}-labels-idx1-ubyte.gz")
        for label, cname in FASHION_CLASSES.items():
            (root / split / cname).mkdir(parents=True, exist_ok=True)
            picked = rng.choice(np.flatnonzero(y == label), PER_CLASS, replace=False)
            for i, j in enumerate(picked):
                img = Image.fromarray(x[j])
                size = (32, 24, 28, 28, 28)[i % 5]  # a fifth upscaled, a fifth downscaled
                if size != 28:
                    img = img.resize((size, size), Image.BILINEAR)
                img.save(root / split / cname / f"{j}.png")
    (root / "done").write_text("ok")
    return root


def _mean_std(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f} ± {s:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sets", help="UCR sets (default: every univariate UCR set aeon ships), by commas")
    ap.add_argument("--order", default="ItalyPowerDemand,GunPoint,ArrowHead,PickupGestureWiimoteZ,OSULeaf,ACSF1")
    ap.add_argument("--budget-minutes", type=float, default=25.0)
    ap.add_argument("--work", default="/tmp/layerlab-ucr-defaults")
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST's idx .gz files")
    ap.add_argument("--skip-images", action="store_true")
    ap.add_argument(
        "--no-costly", action="store_true", help=f"list {' and '.join(COSTLY)} as not run rather than run them"
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ucr_defaults.md"))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ucr, not_ucr = univariate_ucr_sets()
    order = args.order.split(",")
    sets = args.sets.split(",") if args.sets else sorted(ucr, key=lambda n: order.index(n) if n in order else 99)
    t_start = time.perf_counter()
    over = lambda: (time.perf_counter() - t_start) / 60 > args.budget_minutes  # noqa: E731
    results: dict[str, dict] = {}

    def job(key, data, flags, seed):
        if over() and not (work / key / "benchmark.json").is_file():
            results[key] = {"key": key, "skipped": "budget"}
            return results[key]
        results[key] = train_and_test(work, key, data, flags, seed)
        print(json.dumps({k: v for k, v in results[key].items() if k != "config"}), flush=True)
        return results[key]

    folder = None if args.skip_images else make_image_folder(Path(args.fashion), work / "fashion3")

    def run_all(jobs):
        for f in [pool.submit(job, *j) for j in jobs]:
            f.result()

    img = str(folder)
    cheap = [n for n in sets if n not in COSTLY]
    with ThreadPoolExecutor(args.jobs) as pool:
        # first seed 0 of everything (the image trials choose the tuned recipe), then the other seeds,
        # the costly sets (long series) last, so that the budget cuts them rather than the rest
        first = [(f"ucr-{n}-s{seeds[0]}", n, [], seeds[0]) for n in cheap]
        if folder is not None:
            first += [(f"img-default-s{seeds[0]}", img, [], seeds[0])]
            first += [(f"img-oldcnn-s{seeds[0]}", img, ["--model", "cnn"], seeds[0])]
            first += [(f"img-trial-{i}-s0", img, flags, 0) for i, flags in enumerate(IMAGE_TRIALS.values())]
        run_all(first)
        best_name = None
        if folder is not None:
            # by validation accuracy at the best epoch, then by its loss; a tie keeps the defaults
            keys = {"defaults": "img-default-s0", **{n: f"img-trial-{i}-s0" for i, n in enumerate(IMAGE_TRIALS)}}
            scored = {
                n: (results[k]["val_accuracy"], -results[k]["val_loss"])
                for n, k in keys.items()
                if results.get(k, {}).get("val_accuracy") is not None
            }
            best_name = max(scored, key=scored.get) if scored else None
        rest = [(f"ucr-{n}-s{s}", n, [], s) for s in seeds[1:] for n in cheap]
        if folder is not None:
            rest += [(f"img-default-s{s}", img, [], s) for s in seeds[1:]]
            rest += [(f"img-oldcnn-s{s}", img, ["--model", "cnn"], s) for s in seeds[1:]]
            if best_name and best_name != "defaults":
                i = list(IMAGE_TRIALS).index(best_name)
                rest += [(f"img-trial-{i}-s{s}", img, IMAGE_TRIALS[best_name], s) for s in seeds if s != 0]
        costly = [(f"ucr-{n}-s{s}", n, [], s) for s in seeds for n in sets if n in COSTLY]
        if args.no_costly:
            results.update({k: {"key": k, "skipped": "costly"} for k, *_ in costly if k not in results})
            costly = [j for j in costly if (work / j[0] / "benchmark.json").is_file()]
        run_all(rest + costly)
    write_results(args, seeds, sets, not_ucr, results, folder, best_name, time.perf_counter() - t_start)


def write_results(args, seeds, sets, not_ucr, results, folder, best_name, seconds) -> None:
    for key, r in results.items():  # training seconds as the run records them (a reused run's too)
        info = Path(args.work) / key / "run.json"
        if "seconds" in r and info.is_file():
            r["seconds"] = round(json.loads(info.read_text()).get("train_wall_seconds", r["seconds"]), 1)

    def accs(prefix):
        rs = [results.get(f"{prefix}-s{s}", {}) for s in seeds]
        return [r["test_accuracy"] for r in rs if r.get("test_accuracy") is not None], rs

    lines = [
        "# Defaults with only `--data`: UCR sets against the published FCN, and a small image folder",
        "",
        "Written by `benchmarks/ucr_defaults.py` (command: "
        f"`python benchmarks/ucr_defaults.py --seeds {args.seeds} --jobs {args.jobs} "
        f"--budget-minutes {args.budget_minutes:g}{' --no-costly' if args.no_costly else ''}`; runs finished by an "
        f"earlier invocation with the same --work are reused). Machine: {cpu_model()}, 2 cores, shared with other "
        f"work while measured; every run `--threads 1`, {args.jobs} at once; the runs took "
        f"{sum(r.get('seconds', 0) for r in results.values()) / 60:.0f} process-minutes in all. "
        "Times are not comparable between rows; the accuracies are the result.",
        "",
        "Test accuracy: `layerlab evaluate RUN` on the set's own test split, with the weights of the epoch of "
        "lowest validation loss (`best`) for a run with a validation split, else the last. Mean ± standard "
        "deviation over the seeds that ran.",
        "",
        "## Univariate UCR sets bundled with aeon: `layerlab train --data NAME` (fcn by default)",
        "",
        "| set | runs | test accuracy | epochs (each seed) | published FCN | published ResNet |",
        "|---|---|---|---|---|---|",
    ]
    for name in sets:
        a, rs = accs(f"ucr-{name}")
        epochs = ", ".join(str(r["epochs"]) for r in rs if "epochs" in r) or "-"
        pub = PUBLISHED_ERROR.get(name)
        fcn = f"{1 - pub['fcn']:.3f}" if pub else "not in the table"
        res = f"{1 - pub['resnet']:.3f}" if pub else "not in the table"
        why = {"budget": "the time budget ran out", "costly": "too long for the budget (--no-costly)"}
        skipped = [why[r["skipped"]] for r in rs if r.get("skipped")]
        errors = [r["error"] for r in rs if r.get("error")]
        runs = (
            f"{len(a)}"
            + (f" ({len(skipped)} not run: {skipped[0]})" if skipped else "")
            + (f" errors: {errors}" if errors else "")
        )
        lines.append(f"| {name} | {runs} | {_mean_std(a)} | {epochs} | {fcn} | {res} |")
    lines += [
        "",
        'Published: test error of Wang, Yan and Oates 2017 ("Time series classification from scratch with deep '
        'neural networks: a strong baseline", table 2) as 1 - error, for the sets of that table; it trained on the '
        "whole training set for 2000 epochs. Not UCR sets, left out: " + (", ".join(not_ucr) or "none") + ".",
        "",
        "Training seconds per run, mean over the seeds (one thread, the machine shared): "
        + ", ".join(
            f"{n} {statistics.mean(r['seconds'] for r in accs('ucr-' + n)[1] if 'seconds' in r):.0f}"
            for n in sets
            if any("seconds" in r for r in accs("ucr-" + n)[1])
        )
        + ".",
        "",
    ]
    cfg = next((r["config"] for k, r in results.items() if k.startswith("ucr-") and r.get("config")), None)
    if cfg:
        lines += [
            "The resolved config of the first UCR run (what the defaults chose):",
            "",
            "```toml",
            cfg.strip(),
            "```",
            "",
        ]
    if folder is not None:
        lines += [
            "## Image folder: 300 training / 300 test images of three Fashion-MNIST classes, mixed sizes",
            "",
            "Classes T-shirt/top, trouser, sneaker; 100 of each per split, a fifth at 32x32, a fifth at 24x24, the "
            "rest 28x28.",
            "",
            "| recipe | flags | runs | test accuracy | epochs (each seed) | val accuracy (seed 0) |",
            "|---|---|---|---|---|---|",
        ]

        def row(label, prefix, flags):
            a, rs = accs(prefix)
            epochs = ", ".join(str(r["epochs"]) for r in rs if "epochs" in r) or "-"
            v = results.get(f"{prefix}-s0", {}).get("val_accuracy")
            vs = f"{v:.3f}" if v is not None else "-"
            lines.append(f"| {label} | `{flags or '(only --data)'}` | {len(a)} | {_mean_std(a)} | {epochs} | {vs} |")

        row("before: the article's CNN, 10 epochs at 1e-3 (what `--data` alone trained)", "img-oldcnn", "--model cnn")
        row("defaults", "img-default", "")
        for i, (name, flags) in enumerate(IMAGE_TRIALS.items()):
            row(
                f"defaults, {name}" + (" (best on validation)" if name == best_name else ""),
                f"img-trial-{i}",
                shlex.join(flags),
            )
        lines += [
            "",
            "`--model cnn` is the article's CNN (`--channels 32,M,64,M`, Flatten) and its recipe, as `--data` alone "
            "trained it before (as `article-cnn`); it reads every image at the most common size, 28x28. The defaults "
            "read each image at its own size, in size-bucketed batches.",
            "",
            "Tuned: the changes above to the defaults were each trained with seed 0 and scored on the validation "
            "split (20% of the training images, stratified) at their best epoch; the best "
            f"({best_name or 'none ran'}) was then run with the other seeds. The test set chose nothing.",
            "",
        ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
