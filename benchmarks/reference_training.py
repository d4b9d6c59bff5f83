"""How long the NumPy reference (``layerlab.reference``) takes to train what its tests train.

The same runs as ``tests/reference/test_training.py`` (same data, seeds, models and budgets): the
article's CNN, narrower, on scikit-learn's 8x8 digits upsampled to 16x16 (5 epochs), and the tanh
RNN reading those digits row by row (6 epochs). Prints, per run, the seconds of training, the test
accuracy and the CPU model, so a number is never read without the machine that made it.

    .venv/bin/python benchmarks/reference_training.py                # both runs, one BLAS thread, best of 3
    .venv/bin/python benchmarks/reference_training.py --runs cnn --repeat 5 --threads 2
    .venv/bin/python benchmarks/reference_training.py --json         # one JSON object on the last line

Needs the ``test`` extra (scikit-learn for the digits, threadpoolctl to set the BLAS threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
from peer_tools import cpu_model  # the benchmarks' one machine description

from layerlab.reference.network import RNN, Adam, LastStep, Sequential, accuracy, article_cnn, fit


def digits_split(as_sequences: bool = False):
    """scikit-learn's digits, split as the reference tests split them."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images / 16.0  # (N, 8, 8)
    if not as_sequences:
        # 2x nearest upsampling so the article's valid convs and pools fit: 16 > 14 > 7 > 5 > 2.
        x = x.repeat(2, axis=1).repeat(2, axis=2)[:, None]  # (N, 1, 16, 16)
    return train_test_split(x, d.target, test_size=0.25, random_state=0, stratify=d.target)


def train_cnn() -> tuple[float, float]:
    x_tr, x_te, y_tr, y_te = digits_split()
    rng = np.random.default_rng(0)
    model = article_cnn((1, 16, 16), 10, (8, "M", 16, "M"), rng=rng)
    t0 = time.perf_counter()
    fit(model, Adam(model.parameters(), lr=1e-2), x_tr, y_tr, epochs=5, rng=rng)
    seconds = time.perf_counter() - t0
    return seconds, accuracy(model, x_te, y_te)


def train_rnn_rows() -> tuple[float, float]:
    x_tr, x_te, y_tr, y_te = digits_split(as_sequences=True)  # (N, T=8, D=8)
    rng = np.random.default_rng(0)
    model = Sequential(RNN(8, 64, 10, rng=rng), LastStep())
    t0 = time.perf_counter()
    fit(model, Adam(model.parameters(), lr=3e-3), x_tr, y_tr, epochs=6, rng=rng, max_grad_norm=5.0)
    seconds = time.perf_counter() - t0
    return seconds, accuracy(model, x_te, y_te)


RUNS = {
    "cnn": ("article CNN (8, M, 16, M) on digits 16x16, 5 epochs", train_cnn),
    "rnn": ("tanh RNN (H=64) on digit rows, 6 epochs", train_rnn_rows),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="cnn,rnn", help="comma-separated, from: " + ", ".join(RUNS))
    p.add_argument("--repeat", type=int, default=3, help="time each run this many times; the best counts")
    p.add_argument(
        "--threads", type=int, default=1, help="BLAS threads (default 1, as in the tests: the matrices are small)"
    )
    p.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNS]
    if unknown or not names or args.repeat < 1:
        p.error(f"--runs takes {', '.join(RUNS)} (got {args.runs!r}); --repeat at least 1")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("needs the test extra: pip install -e '.[test]' (scikit-learn, threadpoolctl)", file=sys.stderr)
        return 2

    machine = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas_threads": args.threads,
    }
    print(
        f"CPU: {machine['cpu']} ({machine['logical_cpus']} logical CPUs); numpy {np.__version__}, "
        f"{args.threads} BLAS thread(s); best of {args.repeat}"
    )
    results = []
    with threadpool_limits(args.threads):
        for name in names:
            label, run = RUNS[name]
            times, acc = [], None
            for _ in range(args.repeat):
                seconds, acc = run()
                times.append(seconds)
            results.append(
                {
                    "run": name,
                    "what": label,
                    "seconds": round(min(times), 3),
                    "seconds_all": [round(t, 3) for t in times],
                    "test_accuracy": round(acc, 4),
                }
            )
            print(
                f"{name:<4} {min(times):7.2f} s  (all: {', '.join(f'{t:.2f}' for t in times)})  "
                f"test accuracy {acc:.4f}  {label}"
            )
    if args.json:
        print(json.dumps({"machine": machine, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
