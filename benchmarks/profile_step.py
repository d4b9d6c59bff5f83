"""Where a preset's training time goes: torch.profiler over layerlab's own training loop.

    python benchmarks/profile_step.py [--presets article_cnn,article_cnn_fast,article_lstm,article_lstm_fast]
                                      [--samples 12800] [--out FILE]

For each preset it builds the preset's model and optimizer as `layerlab train` does, trains on
``--samples`` random images of Fashion-MNIST's shape (timing does not depend on the pixels) with
``layerlab.training.train_one_epoch`` under torch.profiler (after an untimed warm-up pass), and writes
a Markdown table of the operators that take the most time, in milliseconds per 1,000 training
samples, so presets of different batch sizes compare. Writes benchmarks/results/profile.md by
default, with the CPU model.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from peer_tools import cpu_model  # noqa: E402

from layerlab import presets  # noqa: E402
from layerlab.config import RunConfig  # noqa: E402
from layerlab.data import Split  # noqa: E402
from layerlab.models import create_model  # noqa: E402
from layerlab.training import (  # noqa: E402
    EpochHooks,
    TrainStep,
    keep_cpu_memory,
    make_optimizer,
    make_scheduler,
    train_one_epoch,
)

ROWS = 10


def profile_preset(name: str, samples: int) -> tuple[list[tuple[str, float, int]], float, dict]:
    cfg = RunConfig.from_toml(presets.resolve(name))
    t = cfg.train
    lstm = cfg.model.name == "article-lstm"
    g = torch.Generator().manual_seed(0)
    shape = (28, 28) if lstm else (1, 28, 28)
    split = Split(torch.rand(samples, *shape, generator=g), torch.randint(0, 10, (samples,), generator=g))
    torch.manual_seed(0)
    model = create_model(cfg.model.name)
    if t.channels_last and not lstm:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, t, torch.device("cpu"))
    steps = -(-samples // t.batch_size)
    sched = make_scheduler(opt, t, steps)

    def epoch(i):
        step = TrainStep(model, opt, dataclasses.replace(t, seed=0), "classification", torch.device("cpu"), sched)
        return train_one_epoch(step, split, i, EpochHooks(log_every=10**9))

    epoch(0)  # warm-up: oneDNN primitives, allocator
    t0 = time.perf_counter()
    epoch(1)
    plain_seconds = time.perf_counter() - t0
    with profile(activities=[ProfilerActivity.CPU]) as p:
        epoch(2)
    per_k = 1000 / samples
    ops = sorted(p.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops) / 1000 * per_k
    rows = [(e.key, e.self_cpu_time_total / 1000 * per_k, e.count) for e in ops[:ROWS]]
    info = {"batch": t.batch_size, "total_ms": total, "ms_per_k_unprofiled": plain_seconds * 1000 * per_k}
    return rows, total, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="article_cnn,article_cnn_fast,article_lstm,article_lstm_fast")
    p.add_argument("--samples", type=int, default=12800)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/profile.md"))
    a = p.parse_args(argv)
    keep_cpu_memory()  # as layerlab's training on the CPU does
    lines = [
        "# Where the training time goes (torch.profiler, layerlab's training loop)",
        "",
        f"CPU: {cpu_model()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}. "
        f"`python benchmarks/profile_step.py` wrote this file: one profiled pass over {a.samples:,} samples after "
        "two unprofiled ones; self CPU time per operator, in ms per 1,000 training samples.",
        "",
    ]
    for name in a.presets.split(","):
        rows, total, info = profile_preset(name, a.samples)
        lines += [
            f"## `{name}` (batch {info['batch']}): {info['ms_per_k_unprofiled']:.0f} ms per 1,000 samples "
            f"unprofiled, {total:.0f} profiled",
            "",
            "| operator | ms / 1,000 samples | share | calls |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| `{k}` | {ms:.1f} | {100 * ms / total:.0f}% | {n} |" for k, ms, n in rows]
        lines.append("")
        print("\n".join(lines[-(ROWS + 5) :]), flush=True)
    Path(a.out).write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
