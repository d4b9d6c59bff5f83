"""Helpers for benchmarks/peer.sh, standard library only (runs under any python3 >= 3.8).

    python3 peer_tools.py machine                      > machine.json   describe this machine
    python3 peer_tools.py subset SRC DST N                               first N training images
    python3 peer_tools.py run FRAMEWORK MODEL LOG RECORD -- CMD...        run one side, timed
    python3 peer_tools.py report RESULTS_DIR                             tables from raw/ files

`report` reads only what peer.sh left in RESULTS_DIR (machine.json, run.json, raw/), so it can be
rerun at any time to regenerate report.md, epochs.csv and results.json.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
from pathlib import Path

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FRAMEWORKS = ("keras", "layerlab")
# The Keras program's test accuracy after its 10 epochs, as measured when the goals were set: the
# accuracy a fast preset must reach (peer.sh --fast) for its time to count.
TARGETS = {"cnn": 0.897, "lstm": 0.886}
# how much less training time than the Keras program's epochs each fast preset is meant to take
GOALS = {"cnn": 10.0, "lstm": 5.0}
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "train_seconds",
    "eval_seconds",
)


# ----------------------------------------------------------------------------------------- machine
def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo (x86 ``model name``; Arm ``Hardware``/``cpu model``),
    else ``lscpu``, else what platform knows: the one every benchmark here names its machine by."""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine() or "unknown"


def _lscpu() -> dict:
    wanted = {
        "Model name",
        "CPU(s)",
        "Thread(s) per core",
        "Core(s) per socket",
        "Socket(s)",
        "CPU max MHz",
        "L2 cache",
        "L3 cache",
        "Hypervisor vendor",
        "Flags",
    }
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in wanted:
            value = value.strip()
            if key.strip() == "Flags":  # only the vector extensions that matter for these kernels
                value = " ".join(f for f in value.split() if f.startswith(("avx", "fma", "amx")))
            info[key.strip()] = value
    return info


def _mem_gib() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    return None


def _os_name() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.platform()


def loadavg() -> list[float]:
    parts = _read("/proc/loadavg").split()
    return [float(x) for x in parts[:3]] if parts else []


def machine() -> dict:
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "lscpu": _lscpu(),
        "memory_gib": _mem_gib(),
        "os": _os_name(),
        "kernel": platform.release(),
        "system_python": platform.python_version(),
        "loadavg_at_start": loadavg(),
    }


def _cpu_busy_seconds() -> float | None:
    """Machine-wide CPU time spent busy (all CPUs, all processes) since boot, from /proc/stat."""
    fields = _read("/proc/stat").splitlines()[0].split()[1:] if _read("/proc/stat") else []
    if not fields:
        return None
    jiffies = [int(x) for x in fields]
    idle = jiffies[3] + (jiffies[4] if len(jiffies) > 4 else 0)  # idle + iowait
    busy = sum(jiffies[:8]) - idle  # user nice system idle iowait irq softirq steal; guest is inside user
    return busy / os.sysconf("SC_CLK_TCK")


def run_side(framework: str, model: str, log: Path, record: Path, cmd: list[str]) -> int:
    """Run one side's program, stream its output to the terminal and to LOG, and append to RECORD
    (JSON lines) its wall time, its own CPU time, and how much CPU *other* processes took meanwhile:
    the number that says whether the machine was quiet enough for the timing to mean anything."""
    import resource
    import time

    before_load = loadavg()
    busy0, self0 = _cpu_busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with log.open("w") as logf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            logf.write(line)
        rc = proc.wait()
    wall = time.perf_counter() - t0
    busy1, self1 = _cpu_busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime)
    ncpu = os.cpu_count() or 1
    other = None if busy0 is None else max(0.0, (busy1 - busy0) - own)
    rec = {
        "framework": framework,
        "model": model,
        "returncode": rc,
        "wall_seconds": wall,
        "own_cpu_seconds": own,
        "own_cpu_share": own / (wall * ncpu),
        "other_cpu_seconds": other,
        "other_cpu_share": None if other is None else other / (wall * ncpu),
        "loadavg_before": before_load,
        "cpus": ncpu,
    }
    with record.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    if rec["other_cpu_share"] is not None and rec["other_cpu_share"] > 0.05:
        print(
            f"!! {framework} {model}: other processes used {100 * rec['other_cpu_share']:.0f}% of the machine's "
            "CPU during this run; its timing is not clean.",
            file=sys.stderr,
        )
    return rc


# ------------------------------------------------------------------------------------------ subset
def subset(src: Path, dst: Path, n: int) -> None:
    """Write the first n training images/labels as IDX .gz files; link the test files unchanged."""
    dst.mkdir(parents=True, exist_ok=True)
    for key, name in FILES.items():
        if not (src / name).is_file():
            sys.exit(f"{src}: missing Fashion-MNIST file {name}")
        if key.startswith("test"):
            target = dst / name
            if target.exists() or target.is_symlink():
                target.unlink()
            target.symlink_to((src / name).resolve())
            continue
        with gzip.open(src / name, "rb") as f:
            data = f.read()
        ndim = data[3]
        shape = list(struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim]))
        if n > shape[0]:
            sys.exit(f"--limit-train {n} is more than the {shape[0]} training images in {src}")
        record = 1
        for s in shape[1:]:
            record *= s
        header = data[:4] + struct.pack(">" + "I" * ndim, n, *shape[1:])
        body = data[4 + 4 * ndim : 4 + 4 * ndim + n * record]
        with gzip.open(dst / name, "wb", compresslevel=1) as f:
            f.write(header + body)


# ------------------------------------------------------------------------------------------ report
def _load_keras(path: Path) -> tuple[list[dict], dict]:
    rec = json.loads(path.read_text())
    return rec["epochs"], rec


def _load_layerlab(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in METRIC_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            sys.exit(f"{path}: metrics.csv lacks column(s) {', '.join(missing)} (has {reader.fieldnames})")
        rows = []
        for r in reader:
            rows.append({c: (int(float(r[c])) if c == "epoch" else float(r[c])) for c in METRIC_COLUMNS})
    return rows


def _mean(xs):
    return statistics.fmean(xs) if xs else None


def _fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def _x(r):
    return "n/a" if r is None else f"{r:.2f}x"


def _ratio(k, l):
    return None if (k is None or l in (None, 0)) else k / l


def steady_seconds(seconds: list[float]) -> float:
    """Seconds per epoch after the first (which carries the warm-up); the first alone if it is all."""
    rest = seconds[1:] or seconds
    return sum(rest) / len(rest)


def summarise(rows: list[dict]) -> dict:
    secs = [r["train_seconds"] for r in rows]
    evals = [r["eval_seconds"] for r in rows]
    return {
        "epochs": len(rows),
        "mean_train_seconds": _mean(secs),
        "mean_train_seconds_excl_epoch1": _mean(secs[1:]),
        "mean_eval_seconds": _mean(evals),
        "total_train_seconds": sum(secs),
        "final_test_accuracy": rows[-1]["test_accuracy"] if rows else None,
        "best_test_accuracy": max((r["test_accuracy"] for r in rows), default=None),
    }


def epoch_table(k_rows: list[dict], l_rows: list[dict], *, ratio: bool) -> list[str]:
    """One row per epoch: each side's training seconds and test accuracy (``n/a`` past a side's
    last epoch), and with ``ratio`` the Keras seconds over layerlab's."""
    lines = [
        "| epoch | Keras s | Keras test acc | layerlab s | layerlab test acc |" + (" ratio |" if ratio else ""),
        "|---:|---:|---:|---:|---:|" + ("---:|" if ratio else ""),
    ]
    for i in range(max(len(k_rows), len(l_rows))):
        k = k_rows[i] if i < len(k_rows) else None
        l = l_rows[i] if i < len(l_rows) else None
        row = (
            f"| {i + 1} | {_fmt(k and k['train_seconds'], '.2f')} | {_fmt(k and k['test_accuracy'], '.4f')} "
            f"| {_fmt(l and l['train_seconds'], '.2f')} | {_fmt(l and l['test_accuracy'], '.4f')} |"
        )
        if ratio:
            row += f" {_x(_ratio(k and k['train_seconds'], l and l['train_seconds']))} |"
        lines.append(row)
    return lines


def _train_settings(run_dir: Path) -> dict:
    """The training settings a fast preset changes (batch size, schedule, Adam's betas, smoothing,
    clipping, bf16) and its epochs, from a layerlab run's config.toml
    (read line by line: this file runs on any python3, without tomllib)."""
    out = {}
    path = run_dir / "config.toml"
    for line in path.read_text().splitlines() if path.is_file() else []:
        key, _, value = line.partition("=")
        if key.strip() in (
            "batch_size", "lr", "schedule", "warmup_epochs", "beta1", "beta2", "label_smoothing", "clip", "amp",
            "epochs",
        ):  # fmt: skip
            out[key.strip()] = value.strip().strip('"')
    return out


def _first_at(rows: list[dict], target: float):
    """(epoch, training seconds up to and including it) of the first epoch at or above target."""
    t = 0.0
    for r in rows:
        t += r["train_seconds"]
        if r["test_accuracy"] >= target:
            return r["epoch"], t
    return None, None


def time_to_accuracy(
    model: str, k_rows: list[dict], l_rows: list[dict], settings: dict, batch: int
) -> tuple[list, dict]:
    """The --fast section of one model: the Keras program's epochs against a fast preset's."""
    target, goal = TARGETS[model], GOALS[model]
    ks, ls = summarise(k_rows), summarise(l_rows)
    reached = ls["final_test_accuracy"] is not None and ls["final_test_accuracy"] >= target
    speed = _ratio(ks["total_train_seconds"], ls["total_train_seconds"])
    ratio = speed if reached else None
    k_epoch, k_secs = _first_at(k_rows, target)
    l_epoch, l_secs = _first_at(l_rows, target)
    ratio_first = _ratio(k_secs, ls["total_train_seconds"]) if reached else None
    preset = f"article_{model}_fast"
    how = ", ".join(f"{k} {v}" for k, v in settings.items() if k != "epochs")
    lines = [
        f"## {'CNN' if model == 'cnn' else 'LSTM (28 rows x 28 pixels)'}: time to {100 * target:.1f}% test accuracy",
        "",
        f"| | Keras program (batch {batch}, Adam 1e-3) | layerlab `{preset}` ({how}) |",
        "|---|---:|---:|",
        f"| epochs | {len(k_rows)} | {len(l_rows)} |",
        f"| training seconds, all epochs | {_fmt(ks['total_train_seconds'], '.1f')} | **{_fmt(ls['total_train_seconds'], '.1f')}** |",
        f"| final test accuracy | {_fmt(ks['final_test_accuracy'], '.4f')} | **{_fmt(ls['final_test_accuracy'], '.4f')}** |",
        f"| first epoch at >= {target:.3f} (training seconds to it) | "
        + (f"{k_epoch} ({k_secs:.1f})" if k_epoch else "not reached")
        + " | "
        + (f"{l_epoch} ({l_secs:.1f})" if l_epoch else "not reached")
        + " |",
        "",
    ]
    if reached:
        lines += [
            f"**Time-to-accuracy ratio: {_x(ratio)}** (the Keras program's {len(k_rows)} epochs over the preset's "
            f"whole training, which ends at or above {target:.3f}; goal at least {goal:.0f}x: "
            f"{'met' if ratio >= goal else 'NOT met'})."
            + (
                f" Against the Keras program's own time to {target:.3f} (epoch {k_epoch}): {_x(ratio_first)}."
                if k_epoch
                else ""
            ),
            "",
        ]
    else:
        lines += [
            f"**The preset ended below {target:.3f}: no time-to-accuracy ratio** (it trained in 1/{_fmt(speed, '.2f')} "
            "of the Keras program's training time, to a lower accuracy than the goal asks).",
            "",
        ]
    lines += epoch_table(k_rows, l_rows, ratio=False)
    lines.append("")
    return lines, {
        "target": target,
        "goal": goal,
        "preset": preset,
        "preset_settings": settings,
        "reached": reached,
        "ratio_keras_epochs_over_preset": ratio,
        "keras_first_epoch_at_target": k_epoch,
        "keras_seconds_to_target": k_secs,
        "ratio_keras_time_to_target_over_preset": ratio_first,
    }


def report(results_dir: Path) -> None:
    run = json.loads((results_dir / "run.json").read_text())
    mach = json.loads((results_dir / "machine.json").read_text())
    raw = results_dir / "raw"
    env = {}
    if (raw / "layerlab_env.json").is_file():
        env = json.loads((raw / "layerlab_env.json").read_text())
    wall = {}
    if (raw / "sides.jsonl").is_file():
        for line in (raw / "sides.jsonl").read_text().splitlines():
            rec = json.loads(line)
            wall[(rec["framework"], rec["model"])] = rec

    per_model, csv_rows, keras_meta = {}, [], {}
    for model in run["models"]:
        kpath, lpath = raw / f"keras_{model}.json", raw / f"layerlab_{model}" / "metrics.csv"
        if not kpath.is_file() or not lpath.is_file():
            print(f"[report] {model}: missing {kpath if not kpath.is_file() else lpath}; skipped", file=sys.stderr)
            continue
        k_rows, keras_meta = _load_keras(kpath)
        l_rows = _load_layerlab(lpath)
        per_model[model] = {"keras": k_rows, "layerlab": l_rows}
        for fw, rows in (("keras", k_rows), ("layerlab", l_rows)):
            for r in rows:
                csv_rows.append({"framework": fw, "model": model, **{c: r[c] for c in METRIC_COLUMNS}})

    limited = bool(run.get("limit_train"))
    versions = {
        "python (layerlab)": env.get("python"),
        "torch": env.get("torch"),
        "layerlab": env.get("layerlab"),
        "python (keras)": keras_meta.get("versions", {}).get("python"),
        "tensorflow": keras_meta.get("versions", {}).get("tensorflow"),
        "keras": keras_meta.get("versions", {}).get("keras"),
    }
    lines = []
    fast = run.get("layerlab_side") == "fast"
    title = (
        "# Time to accuracy: the article's Keras programs vs layerlab's fast presets"
        if fast
        else "# Peer benchmark: the article's Keras programs vs layerlab's article recipe"
    )
    lines += [title, ""]
    if limited:
        lines += [
            f"> **NOT the article's recipe:** training set cut to the first {run['limit_train']:,} images "
            "(`--limit-train`). Use these numbers to check the harness, not to compare frameworks.",
            "",
        ]
    if run["epochs"] != 10:
        lines += [f"> {run['epochs']} epoch(s) instead of the article's 10.", ""]
    if fast:
        lines += [
            "> layerlab ran its fast presets (the article's layers; their own batch size, learning-rate schedule "
            "and epochs), not the article recipe: compare the time each side takes to its accuracy, not seconds "
            "per epoch.",
            "",
        ]
    if run.get("layerlab_args"):
        lines += [f"> layerlab ran with extra flags `{run['layerlab_args']}`: not its defaults.", ""]
    if run.get("note"):
        lines += [f"> {run['note']}", ""]
    lines += [
        f"Command: `{run['command']}`  ",
        f"Date: {mach['date_utc']}  ",
        f"Data: `{run['data_dir']}` (Fashion-MNIST IDX files; both sides read the same files"
        + (
            f", cut to the first {run['limit_train']:,} training images in a temporary copy, test set whole)  "
            if limited
            else ")  "
        ),
        f"Machine: {mach['cpu_model']}, {mach['logical_cpus']} logical CPUs "
        f"({mach['usable_cpus']} usable), {mach['memory_gib']} GiB RAM, {mach['os']}, kernel {mach['kernel']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + "  ",
        f"Threads: TF intra/inter-op = {keras_meta.get('threads', {}).get('intra_op_parallelism_threads', '?')}/"
        f"{keras_meta.get('threads', {}).get('inter_op_parallelism_threads', '?')} (0 = TF default), "
        f"Keras jit_compile (XLA) = {keras_meta.get('jit_compile', '?')}, "
        f"torch.get_num_threads() = {env.get('torch_threads', '?')}  ",
        f"Load average (1/5/15 min) before the first run: {' / '.join(map(str, mach.get('loadavg_at_start', [])))}",
        "",
        (
            "Seconds are the training part of each epoch only (the test-set evaluation after each epoch is "
            "timed apart and counted on neither side), warm-up included. Time-to-accuracy ratio = the Keras "
            "program's training seconds over all its epochs / the preset's over all its epochs, given when the "
            "preset's final test accuracy reaches the target: **above 1 means layerlab is faster**."
            if fast
            else "Seconds are the training part of each epoch only (the test-set evaluation is timed apart, "
            "`eval s`). Ratio = Keras seconds / layerlab seconds: **above 1 means layerlab is faster**. "
            "Epoch 1 includes warm-up (graph tracing, kernel selection), so the mean is also given without it."
        ),
        "",
    ]
    summary = {}
    for model, fw_rows in per_model.items():
        k_rows, l_rows = fw_rows["keras"], fw_rows["layerlab"]
        ks, ls = summarise(k_rows), summarise(l_rows)
        kmeta = json.loads((raw / f"keras_{model}.json").read_text())
        n_train, n_test, batch = kmeta["n_train"], kmeta["n_test"], kmeta["batch_size"]
        ratios = {
            "mean_train_seconds": _ratio(ks["mean_train_seconds"], ls["mean_train_seconds"]),
            "mean_train_seconds_excl_epoch1": _ratio(
                ks["mean_train_seconds_excl_epoch1"], ls["mean_train_seconds_excl_epoch1"]
            ),
            "mean_eval_seconds": _ratio(ks["mean_eval_seconds"], ls["mean_eval_seconds"]),
        }
        summary[model] = {
            "keras": ks,
            "layerlab": ls,
            "ratio_keras_over_layerlab": ratios,
            "process": {fw: wall.get((fw, model)) for fw in FRAMEWORKS},
            "keras_params": kmeta["params"],
            "n_train": n_train,
            "n_test": n_test,
            "batch_size": batch,
        }
        if fast:
            tta_lines, summary[model]["time_to_accuracy"] = time_to_accuracy(
                model, k_rows, l_rows, _train_settings(raw / f"layerlab_{model}"), batch
            )
            lines += tta_lines
        else:
            name = {"cnn": "CNN", "lstm": "LSTM (28 rows x 28 pixels)"}[model]
            lines += [
                f"## {name}: {len(k_rows)} epoch(s), {n_train:,} train / {n_test:,} test images, Keras batch {batch}"
                + (" (SUBSET)" if limited else ""),
                "",
                *epoch_table(k_rows, l_rows, ratio=True),
            ]
            lines += [
                f"| **mean s/epoch** | **{_fmt(ks['mean_train_seconds'], '.2f')}** | | **{_fmt(ls['mean_train_seconds'], '.2f')}** | "
                f"| **{_x(ratios['mean_train_seconds'])}** |",
                f"| **mean s/epoch, epochs 2+** | **{_fmt(ks['mean_train_seconds_excl_epoch1'], '.2f')}** | "
                f"| **{_fmt(ls['mean_train_seconds_excl_epoch1'], '.2f')}** | "
                f"| **{_x(ratios['mean_train_seconds_excl_epoch1'])}** |",
                f"| mean eval s (test set) | {_fmt(ks['mean_eval_seconds'], '.2f')} | | {_fmt(ls['mean_eval_seconds'], '.2f')} | "
                f"| {_x(ratios['mean_eval_seconds'])} |",
                f"| **final test acc** | | **{_fmt(ks['final_test_accuracy'], '.4f')}** | | **{_fmt(ls['final_test_accuracy'], '.4f')}** | |",
                "",
            ]
        proc = summary[model]["process"]
        if all(proc.values()):
            k, l = proc["keras"], proc["layerlab"]
            lines += [
                f"Whole program, start to exit (imports, data loading, all epochs and evaluations): "
                f"Keras {k['wall_seconds']:.1f} s, layerlab {l['wall_seconds']:.1f} s. "
                f"CPU the program itself used, as a share of all {k['cpus']} CPUs: Keras {100 * k['own_cpu_share']:.0f}%, "
                f"layerlab {100 * l['own_cpu_share']:.0f}%. "
                f"CPU *other* processes used meanwhile: Keras run {_fmt(k['other_cpu_share'] and 100 * k['other_cpu_share'], '.0f')}%, "
                f"layerlab run {_fmt(l['other_cpu_share'] and 100 * l['other_cpu_share'], '.0f')}%"
                + (
                    " (**above 5%: the machine was not quiet, these timings are not clean**)."
                    if max(k["other_cpu_share"] or 0, l["other_cpu_share"] or 0) > 0.05
                    else " (quiet)."
                ),
                "",
            ]

    (results_dir / "report.md").write_text("\n".join(lines))
    with (results_dir / "epochs.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["framework", "model", *METRIC_COLUMNS])
        writer.writeheader()
        writer.writerows(csv_rows)
    (results_dir / "results.json").write_text(
        json.dumps(
            {
                "run": run,
                "machine": mach,
                "versions": versions,
                "layerlab_env": env,
                "keras_threads": keras_meta.get("threads"),
                "summary": summary,
                "epochs": per_model,
            },
            indent=2,
        )
        + "\n"
    )
    print("\n".join(lines))
    print(f"[report] wrote {results_dir}/report.md, epochs.csv, results.json")


def main(argv: list[str]) -> int:
    if not argv:
        sys.exit(__doc__)
    cmd, rest = argv[0], argv[1:]
    if cmd == "machine":
        print(json.dumps(machine(), indent=2))
    elif cmd == "loadavg":
        print(" / ".join(f"{x:.2f}" for x in loadavg()))
    elif cmd == "subset" and len(rest) == 3:
        subset(Path(rest[0]), Path(rest[1]), int(rest[2]))
    elif cmd == "run" and len(rest) >= 6 and rest[4] == "--":
        return run_side(rest[0], rest[1], Path(rest[2]), Path(rest[3]), rest[5:])
    elif cmd == "report" and len(rest) == 1:
        report(Path(rest[0]))
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
