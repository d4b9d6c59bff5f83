"""`layerlab predict --onnx` (onnxruntime, no torch) against torch `layerlab predict` on 1,000 images.

    python benchmarks/onnx_predict.py [--run RUN_DIR] [--images 1000] [--repeats 5] [--data-dir DIR]

Trains the article's CNN on Fashion-MNIST for one epoch (or takes ``--run``, an article-cnn run on
Fashion-MNIST), exports it with ``layerlab export``, writes the first ``--images`` test images as
PNG files, and times the two whole commands on those files, each ``--repeats`` times, alternating
(torch, onnx, torch, onnx, ...), so that a change in the machine's load falls on both:

    layerlab predict RUN_DIR 0000.png ... --top-k 10 --json
    layerlab predict --onnx model.onnx 0000.png ... --top-k 10 --json

Each time is the wall time of a fresh process (interpreter start, imports, reading and decoding the
PNGs, the model, printing the JSON), with the peak resident memory of that process; the same two
commands on one image give the fixed cost (start and imports) apart from the per-image work.
``--top-k 10`` prints every class's probability, so the agreement is measured on all of them: the
fraction of images with the same top-1 class, and the largest absolute difference of any class
probability. Results go to ``benchmarks/results/onnx_predict.md`` (``--out``), with the CPU model
and the load average before and after (the timings are only as quiet as the machine was).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from peer_tools import cpu_model  # the benchmarks' one machine description

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = Path("/usr/share/datasets/fashion-mnist")


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "onnxruntime", "onnx", "numpy", "pillow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def read_idx_images(path: Path, n: int) -> np.ndarray:
    """The first ``n`` images of an IDX image file (gzip or raw) as uint8 ``(n, H, W)``."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    a = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return a[:n]


def find_idx(data_dir: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (data_dir / name).is_file():
            return data_dir / name
    raise SystemExit(f"{data_dir}: no {stem}[.gz]; give --data-dir")


def write_pngs(data_dir: Path, out: Path, n: int) -> list[Path]:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    images = read_idx_images(find_idx(data_dir, "t10k-images-idx3-ubyte"), n)
    files = []
    for i, img in enumerate(images):
        f = out / f"{i:04d}.png"
        Image.fromarray(img).save(f)
        files.append(f)
    return files


def run_timed(cmd: list[str], env: dict) -> tuple[float, int, str]:
    """Wall seconds, peak resident memory (MiB) and stdout of one fresh process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({p.returncode}): {err.read()[-2000:]}")
        return seconds, usage.ru_maxrss // 1024, out.read()


def agreement(torch_json: str, onnx_json: str) -> dict:
    want, got = json.loads(torch_json), json.loads(onnx_json)
    assert [w["file"] for w in want] == [g["file"] for g in got]

    def probs(r):
        p = np.zeros(len(r["top_k"]))
        for t in r["top_k"]:
            p[t["index"]] = t["probability"]
        return p

    same = sum(w["index"] == g["index"] for w, g in zip(want, got, strict=True))
    diff = max(float(np.abs(probs(w) - probs(g)).max()) for w, g in zip(want, got, strict=True))
    return {"n": len(want), "same_top1": same, "max_abs_prob_diff": diff}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, help="an article-cnn run on Fashion-MNIST (default: train one, 1 epoch)")
    p.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA, help=f"Fashion-MNIST IDX files (default {DEFAULT_DATA})"
    )
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "onnx_predict.md")
    a = p.parse_args()
    env = {**os.environ, "LAYERLAB_OFFLINE": "1"}
    layerlab = str(BIN / "layerlab")
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.run is None:
            run = tmp / "run"
            print("training article-cnn on fashion-mnist, 1 epoch ...", flush=True)
            t = time.perf_counter()
            cmd = [layerlab, "train", "--model", "article-cnn", "--data", "fashion-mnist", "--epochs", "1"]
            subprocess.run([*cmd, "--data-dir", str(a.data_dir), "--out", str(run), "--quiet"], env=env, check=True)
            train_note = f"trained here: 1 epoch of article-cnn on Fashion-MNIST in {time.perf_counter() - t:.0f} s"
        else:
            run, train_note = a.run, f"the run {a.run}"
        onnx = tmp / "model.onnx"
        export = subprocess.run(
            [layerlab, "export", str(run), "--out", str(onnx)], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        files = [str(f) for f in write_pngs(a.data_dir, tmp / "png", a.images)]
        commands = {
            "torch": lambda fs: [layerlab, "predict", str(run), *fs, "--top-k", "10", "--json"],
            "onnx": lambda fs: [layerlab, "predict", "--onnx", str(onnx), *fs, "--top-k", "10", "--json"],
        }
        imports = {
            "torch": [sys.executable, "-c", "import torch"],
            "onnx": [sys.executable, "-c", "import numpy, onnxruntime, PIL.Image"],
        }
        import_times = {k: [] for k in imports}
        times = {(k, n): [] for k in commands for n in (1, len(files))}
        memory = {}
        outputs = {}
        run_timed(commands["torch"](files[:1]), env)  # warm the page cache for both (not counted)
        run_timed(commands["onnx"](files[:1]), env)
        for r in range(a.repeats):
            for k, cmd in imports.items():
                import_times[k].append(run_timed(cmd, env)[0])
            for fs in (files[:1], files):
                for k, make in commands.items():
                    s, mib, out = run_timed(make(fs), env)
                    times[(k, len(fs))].append(s)
                    memory[(k, len(fs))] = max(memory.get((k, len(fs)), 0), mib)
                    if len(fs) == len(files):
                        outputs[k] = out
            print(f"repeat {r + 1}/{a.repeats}: " + ", ".join(f"{k} {n}: {v[-1]:.2f}s" for (k, n), v in times.items()))
        agree = agreement(outputs["torch"], outputs["onnx"])
    load_after = load_average()

    def cell(k, n):
        v = times[(k, n)]
        return f"{statistics.median(v):.2f} | {min(v):.2f} | {max(v):.2f} | {memory[(k, n)]}"

    n = a.images
    med = {key: statistics.median(v) for key, v in times.items()}
    per_image = {k: (med[(k, n)] - med[(k, 1)]) / max(n - 1, 1) * 1000 for k in commands}
    v = versions()
    lines = [
        "# `layerlab predict --onnx` against torch `layerlab predict`",
        "",
        f"Written by `python benchmarks/onnx_predict.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores (`lscpu`); {platform.system()} {platform.release()}",
        f"- load average (1, 5, 15 min) before: {load_before}; after: {load_after}"
        + (
            " — **a shared machine under other load: the timings are noisy, compare the two columns of one "
            "table, not absolute seconds with other machines**"
            if max(float(x) for x in (load_before.split() + load_after.split())) > 0.5 * (os.cpu_count() or 1)
            else ""
        ),
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- model: {train_note}; exported with `layerlab export` ({export.splitlines()[-1]})",
        f"- inputs: the first {n:,} Fashion-MNIST test images written as 28x28 grey PNG files",
        "- threads: each side at its defaults (torch's intra-op pool; onnxruntime's, one thread per physical core)",
        "",
        f"Wall seconds of the whole command, a fresh process each time, {a.repeats} repeats alternating torch and",
        "onnx; peak resident memory of the process (MiB):",
        "",
        "| command | files | median s | min s | max s | peak MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k, label in (("torch", "`layerlab predict RUN_DIR`"), ("onnx", "`layerlab predict --onnx model.onnx`")):
        for count in (1, n):
            lines.append(f"| {label} | {count:,} | {cell(k, count)} |")
    speed = med[("torch", n)] / med[("onnx", n)]
    lines += [
        "",
        f"On {n:,} images `--onnx` takes {med[('onnx', n)]:.2f} s against torch's {med[('torch', n)]:.2f} s "
        f"({speed:.2f}x as fast, medians). One image: {med[('onnx', 1)]:.2f} s against {med[('torch', 1)]:.2f} s: "
        f"most of a small call is starting the process and importing; `python -c 'import torch'` alone takes "
        f"{statistics.median(import_times['torch']):.2f} s, `python -c 'import numpy, onnxruntime, PIL.Image'` "
        f"{statistics.median(import_times['onnx']):.2f} s (medians). "
        f"Per image beyond the first, from the medians: {per_image['onnx']:.2f} ms with onnxruntime, "
        f"{per_image['torch']:.2f} ms with torch (reading and decoding the PNG, the model, the JSON).",
        "",
        f"Agreement on the {agree['n']:,} images: the same top-1 class for {agree['same_top1']:,} "
        f"({agree['same_top1'] / agree['n']:.2%}); the largest absolute difference of any of the 10 class "
        f"probabilities: {agree['max_abs_prob_diff']:.2e}.",
        "",
    ]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
