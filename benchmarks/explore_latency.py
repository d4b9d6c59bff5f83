"""Latency of ``layerlab explore``'s main interactions, and the time to list a folder of 500 runs.

Trains the article's CNN and LSTM for one epoch on 2,000 synthetic 28x28 images (bright bars over
noise, ten classes) with ``layerlab.fit``, serves them on a free port, and times HTTP round trips the
page makes (answer and transfer; drawing in the browser is not included), the median of ``--repeat``
requests, each on an input not asked before. Then writes 500 run records (copies of the CNN run's
run.json, config.toml and metrics.csv, each with its own learning rate; no weights) and times the
listing (``RunIndex``) and the runs table's request. Everything is made in a temporary folder and
removed. Prints a markdown table.

    python benchmarks/explore_latency.py [--repeat 10] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np


def bars(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 10, n)
    x = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 2 * k + 3 : 2 * k + 5, 4:24] = 255
    return x, y


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
        cpus = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("CPU(s)"))
        return f"{model}, {cpus} CPUs"
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def timed(url: str) -> tuple[float, int]:
    t = time.perf_counter()
    with urllib.request.urlopen(url) as r:
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: {r.status} {body[:200]!r}")
    return 1000 * (time.perf_counter() - t), len(body)


def in_browser(base: str, cnn: str, lstm: str, repeat: int) -> list[tuple[str, float, float]]:
    """Choosing an input in the page, timed inside Chromium until every view of it is drawn; none
    without Playwright or Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return []
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return []
    rows = []
    flags = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for label, rid, ready in (
            ("CNN: choose a test image", cnn, "#layers .layer"),
            ("LSTM: choose a test sequence", lstm, ".gate"),
        ):
            page.goto(f"{base}/#run={rid}")
            page.wait_for_selector(ready)
            times = [
                page.evaluate(
                    "async k => { const t = performance.now(); await window.layerlabExplore.showInput('test:' + k);"
                    " return performance.now() - t; }",
                    20 + k,
                )
                for k in range(repeat)
            ]
            rows.append((label, statistics.median(times), max(times)))
        browser.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    ap.add_argument("--runs", type=int, default=500)
    args = ap.parse_args()

    import torch

    from layerlab import fit
    from layerlab.explore.listing import RunIndex
    from layerlab.explore.server import make_server

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="explore-bench-"))
    try:
        rng = np.random.default_rng(0)
        x, y = bars(2000, rng)
        runs = tmp / "runs"
        fit("article-cnn", x, y, validation_split=0.2, epochs=1, run_dir=runs / "article-cnn", verbose=0)
        fit("article-lstm", x, y, validation_split=0.2, epochs=1, run_dir=runs / "article-lstm", verbose=0)
        server = make_server([runs], "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = "http://{}:{}".format(*server.server_address[:2])
        ids = {e.name: e.id for e in server.explorer.index.entries()}
        cnn, lstm = ids["article-cnn"], ids["article-lstm"]
        rows = []

        def measure(label: str, make_url, repeat: int = args.repeat) -> None:
            times, size = [], 0
            for k in range(repeat):
                ms, size = timed(base + make_url(k))
                times.append(ms)
            rows.append((label, statistics.median(times), max(times), size))

        first_cnn, _ = timed(f"{base}/api/run/{cnn}/cnn?input=test:0")  # loads the model and the data
        first_lstm, _ = timed(f"{base}/api/run/{lstm}/rnn?input=test:0")
        measure("runs table (2 runs)", lambda k: "/api/runs")
        measure("curves of one run", lambda k: f"/api/run/{cnn}/curves")
        measure(
            "CNN: choose a test image (prediction + all feature maps)",
            lambda k: f"/api/run/{cnn}/cnn?input=test:{k + 1}",
        )
        measure(
            "CNN: click a position (kernel window, products, sum; float64)",
            lambda k: f"/api/run/{cnn}/conv?input=test:{k + 1}&layer=2&channel={k}&pos=3,4",
        )
        measure("CNN: filters of every layer", lambda k: f"/api/run/{cnn}/filters")
        measure(
            "CNN: top test images per channel, first time (500 images)", lambda k: f"/api/run/{cnn}/excite?layer=0", 1
        )
        measure("CNN: top test images per channel, again (kept)", lambda k: f"/api/run/{cnn}/excite?layer=0")
        measure(
            "CNN: confusion matrix, first time (whole test split, 400 images)", lambda k: f"/api/run/{cnn}/confusion", 1
        )
        measure("CNN: confusion matrix, again (kept)", lambda k: f"/api/run/{cnn}/confusion")
        measure(
            "LSTM: choose a test sequence (h, gates, cell, per-step prediction, dL/dh_t)",
            lambda k: f"/api/run/{lstm}/rnn?input=test:{k + 1}",
        )
        measure(
            "LSTM: hidden states of 24 sequences (unit selection)", lambda k: f"/api/run/{lstm}/rnn_many?count=24", 3
        )
        browser_rows = in_browser(base, cnn, lstm, args.repeat)
        server.shutdown()
        server.server_close()

        # 500 runs: the records of the CNN run, each with its own learning rate
        many = tmp / "many"
        src = runs / "article-cnn"
        for i in range(args.runs):
            d = many / f"run-{i:04d}"
            d.mkdir(parents=True)
            for name in ("run.json", "metrics.csv"):
                shutil.copy(src / name, d / name)
            text = (src / "config.toml").read_text().replace("lr = 0.001", f"lr = {0.0001 * (1 + i % 50):.4f}")
            (d / "config.toml").write_text(text)
        t = time.perf_counter()
        index = RunIndex([many])
        list_ms = 1000 * (time.perf_counter() - t)
        assert len(index.entries()) == args.runs
        server = make_server([many], "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = "http://{}:{}".format(*server.server_address[:2])
        table_ms, table_size = timed(base + "/api/runs")
        server.shutdown()
        server.server_close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"CPU: {cpu_name()}; torch threads {torch.get_num_threads()}; median of {args.repeat} requests\n")
    print("| interaction | median ms | max ms | bytes |")
    print("|---|---:|---:|---:|")
    for label, med, mx, size in rows:
        print(f"| {label} | {med:.0f} | {mx:.0f} | {size:,} |")
    print(f"| first view of the CNN run (loads model and data) | {first_cnn:.0f} | | |")
    print(f"| first view of the LSTM run (loads model and data) | {first_lstm:.0f} | | |")
    for label, med, mx in browser_rows:
        print(f"| in Chromium, {label} (request, decoding, drawing every canvas) | {med:.0f} | {mx:.0f} | |")
    print(f"\nlisting {args.runs} runs (RunIndex, run.json + config.toml + metrics.csv each): {list_ms:.0f} ms")
    print(f"the runs table's request for them (listing again not included): {table_ms:.0f} ms, {table_size:,} bytes")
    print(json.dumps({"list_ms": list_ms, "table_ms": table_ms}))


if __name__ == "__main__":
    main()
