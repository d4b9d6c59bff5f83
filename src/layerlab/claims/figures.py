"""The claims page's figures: one function per figure, each returning a matplotlib Figure (Agg,
no pyplot), built on :mod:`layerlab.plots`. :func:`save_with_csv` writes the PNG with the CSV of
the numbers behind it, as every figure of layerlab comes."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from .. import plots
from ..tables import write_csv

COLORS = {
    "rnn": "tab:red",
    "lstm": "tab:blue",
    "gru": "tab:green",
    "residual": "tab:purple",
    "lstm-chrono": "tab:cyan",
    "convex": "tab:brown",
}
NAMES = {
    "rnn": "tanh RNN",
    "lstm": "LSTM",
    "gru": "GRU",
    "residual": "residual RNN",
    "lstm-chrono": "LSTM, chrono",
    "convex": "convex control",
}


def save(fig: Figure, path: Path) -> str:
    """Write ``fig`` as ``path`` (a PNG); returns the file's name, which the page links."""
    plots.save(fig, path)
    return path.name


def save_with_csv(fig: Figure, folder: Path, stem: str, rows: list[dict]) -> str:
    """``folder/stem.png`` and ``folder/stem.csv`` (the numbers behind it); returns the PNG's name."""
    write_csv(folder / f"{stem}.csv", rows)
    return save(fig, folder / f"{stem}.png")


def conv_filters(weight, title: str) -> Figure:
    return plots.conv_filters(np.asarray(weight, dtype=np.float32), title)


def probe_bars(rows: list[dict], title: str) -> Figure:
    """Bars of mean accuracy with the sd over seeds as error bars."""
    fig = plots.new_figure(6.5, 3.2)
    ax = fig.subplots()
    names = [r["features"] for r in rows]
    means = [r["mean"] * 100 for r in rows]
    sds = [(r["sd"] or 0.0) * 100 for r in rows]
    ax.barh(names, means, xerr=sds, color=["tab:blue", "tab:gray", "tab:orange"][: len(rows)], capsize=4)
    for i, m in enumerate(means):
        ax.text(m, i, f" {m:.1f}%", va="center", fontsize=8)
    lo = max(0.0, min(means) - 15)
    ax.set_xlim(lo, min(100.0, max(means) + 8))
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy of a linear classifier (%)")
    ax.set_title(title, fontsize=9)
    return fig


def memory_bars(rows: list[dict], title: str) -> Figure:
    """Bars of the variance each model explains (mean, the sd over seeds as error bars), one per row
    (``label``, ``mean``, ``sd`` as fractions); the recurrent rows blue, their controls grey."""
    fig = plots.new_figure(7.5, 3.0)
    ax = fig.subplots()
    names = [r["label"] for r in rows]
    means = [r["mean"] * 100 for r in rows]
    sds = [(r["sd"] or 0.0) * 100 for r in rows]
    colors = ["tab:gray" if r.get("control") else "tab:blue" for r in rows]
    ax.barh(names, means, xerr=sds, color=colors, capsize=4)
    for i, (m, sd) in enumerate(zip(means, sds, strict=True)):
        ax.text(max(m, 0.0) + sd + 1, i, f"{m:.0f}%", va="center", fontsize=8)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlim(min(-20.0, min(means) - 10), 115.0)
    ax.invert_yaxis()
    ax.set_xlabel("variance of the answer explained on test sequences (%)")
    ax.set_title(title, fontsize=9)
    return fig


def kernel_patterns(shown: dict, layers: dict, top: int, title: str) -> Figure:
    """Left: conv1's kernels (weights) beside the mean of each one's top patches, trained and at
    initialisation (``shown[arm] = (weights (C, 3, 3), mean top patch (C, 9))``; each tile scaled to its
    own range, the patch mean centred). Right: consistency and identification per layer and network
    (mean ± sd over seeds), with random patches and chance."""
    fig = plots.new_figure(11.0, 5.4)
    grid = fig.add_gridspec(2, 3)
    for row, arm in enumerate(("trained", "untrained")):
        w, patch = shown[arm]
        patch = np.asarray(patch, dtype=np.float64).reshape(w.shape)
        patch = patch - patch.mean(axis=(1, 2), keepdims=True)
        for col, (tiles, what) in enumerate(((w, "weights"), (patch, f"mean of its top {top} patches"))):
            a = np.asarray(tiles, dtype=np.float64)
            a = a / np.maximum(np.abs(a).max(axis=(1, 2), keepdims=True), 1e-12)
            ax = fig.add_subplot(grid[row, col])
            cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.55")  # grey between the tiles
            ax.imshow(plots._mosaic(a.astype(np.float32), 8), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{arm}: {what}", fontsize=8)
    names = list(layers)
    x = np.arange(len(names))
    for row, (measure, base) in enumerate((("consistency", "random"), ("identification", "chance"))):
        ax = fig.add_subplot(grid[row, 2])
        for i, arm in enumerate(("trained", "untrained")):
            m = [layers[n][arm][measure]["mean"] for n in names]
            sd = [layers[n][arm][measure]["sd"] or 0.0 for n in names]
            ax.bar(x + (i - 0.5) * 0.35, m, 0.35, yerr=sd, capsize=3, label=arm, color=("tab:blue", "tab:orange")[i])
        ref = [layers[n][base]["mean"] if base == "random" else layers[n][base] for n in names]
        for j, v in enumerate(ref):
            ax.hlines(v, j - 0.4, j + 0.4, colors="k", linestyles=":", label=base if j == 0 else "_nolegend_")
        ax.set_xticks(x, names)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(measure, fontsize=8)
        ax.set_title(f"{measure} (mean ± sd over seeds)", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title, fontsize=9)
    return fig


def shift_curves(ks, curves: dict, title: str) -> Figure:
    fig = plots.new_figure(6.0, 3.6)
    ax = fig.subplots()
    for (label, per_seed), color in zip(curves.items(), ("tab:blue", "tab:orange", "tab:green"), strict=False):
        a = np.asarray(per_seed, dtype=np.float64) * 100  # (seeds, shifts)
        sd = a.std(0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1])
        ax.errorbar(ks, a.mean(0), yerr=sd, marker="o", capsize=3, label=label, color=color)
    ax.set_xlabel("shift (pixels)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(list(ks))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig


def input_sizes(img28, img_big, clip, seq, rows: list[dict], chance: float) -> Figure:
    """Examples of each input kind (28x28, framed, a clip's frames, a sequence) and the accuracies."""
    fig = plots.new_figure(10.0, 3.8)
    grid = fig.add_gridspec(2, 6)
    panels = [
        (grid[0, 0], img28, "28x28 image"),
        (grid[0, 1], img_big, f"{img_big.shape[-1]}x{img_big.shape[-1]} frame"),
        (grid[1, 0:2], np.concatenate(list(np.asarray(clip)), axis=1), f"3-D clip: {len(clip)} frames"),
    ]
    for spec, img, title in panels:
        ax = fig.add_subplot(spec)
        ax.imshow(np.asarray(img), cmap="gray", interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[0:2, 2])
    ax.imshow(np.asarray(seq), cmap="viridis", aspect="auto", interpolation="nearest")
    ax.set_title("1-D: 28 steps x 28", fontsize=8)
    ax.set_xlabel("feature", fontsize=7)
    ax.set_ylabel("step", fontsize=7)
    ax = fig.add_subplot(grid[0:2, 3:6])
    labels = [f"{r['model'].replace('CNN with a global max pool', 'global-pool CNN')}\n{r['input']}" for r in rows]
    values = [_percent(r["result"]) for r in rows]
    ax.barh(labels, values, color="tab:blue")
    ax.axvline(chance * 100, color="k", ls=":", lw=1, label="chance")
    ax.axvline(2 * chance * 100, color="k", ls="--", lw=1, label="2x chance (the rule's bar)")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.1f}%", va="center", fontsize=7)
    ax.set_xlim(0, 105)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("test accuracy (%)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("one CNN family on other sizes and dimensions", fontsize=9)
    return fig


def _percent(text: str) -> float:
    head = text.split("%")[0].split("±")[0].strip()
    try:
        return float(head)
    except ValueError:
        return 0.0


def time_to_accuracy(runs: dict, target: float, title: str) -> Figure:
    fig = plots.new_figure(6.0, 3.6)
    ax = fig.subplots()
    for (label, per_seed), color in zip(
        runs.items(), ("tab:blue", "tab:gray", "tab:green", "tab:orange"), strict=False
    ):
        for i, r in enumerate(per_seed):
            t = np.cumsum([h["train_seconds"] for h in r["history"]])
            a = [h["test_accuracy"] * 100 for h in r["history"]]
            label_i = f"{label} ({r['parameters']:,} parameters)" if i == 0 else None
            ax.plot(t, a, marker="o", color=color, alpha=0.8, label=label_i)
    ax.axhline(target * 100, color="k", ls="--", lw=1, label=f"target {target * 100:.1f}%")
    ax.set_xlabel("training seconds (cumulative, per epoch)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig


def vanishing(first: dict, baseline: float, mse: dict) -> Figure:
    """Left: ||dL/dh_t|| of the tanh RNN at init (dashed) and trained, one colour per T (seed 0);
    right: test MSE against T with the baseline."""
    fig = plots.new_figure(10.0, 3.8)
    left, right = fig.subplots(1, 2, width_ratios=[1.6, 1])
    cmap = plots_colors(len(first))
    for (T, r), color in zip(first.items(), cmap, strict=True):
        for curve, ls, lab in ((r["grad_init"], "--", "init"), (r["grad_trained"], "-", "trained")):
            if curve is None:
                continue
            c = np.asarray(curve, dtype=np.float64)
            t = np.arange(1, len(c) + 1) - len(c)  # steps back from the last one: -T+1 .. 0
            ax_c = np.where(c > 0, c, np.nan)
            left.plot(t, ax_c, ls=ls, color=color, label=f"T={T}, {lab}")
    left.set_yscale("log")
    left.set_xlabel("step t - T (0 is the last step)")
    left.set_ylabel("||dL/dh_t|| (mean over test sequences)")
    left.set_title("tanh RNN, adding problem: the gradient reaching step t (seed 0)", fontsize=9)
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=7, ncol=2)
    Ts = list(mse)
    means = [mse[T]["mean"] for T in Ts]
    sds = [mse[T]["sd"] or 0.0 for T in Ts]
    right.errorbar(range(len(Ts)), means, yerr=sds, marker="o", capsize=4, color="tab:red", label="tanh RNN")
    right.axhline(baseline, color="k", ls="--", lw=1, label=f"always 1: {baseline:.3f}")
    right.set_xticks(range(len(Ts)), [str(T) for T in Ts])
    right.set_xlabel("sequence length T")
    right.set_ylabel("test MSE")
    right.set_ylim(0, max(0.25, max(m for m in means if m is not None and math.isfinite(m)) * 1.2))
    right.legend(fontsize=8)
    right.set_title("the consequence: test MSE", fontsize=9)
    return fig


def plots_colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1) * 0.85) for i in range(n)]


def cells_by_length(cells: dict, lengths, baseline: float) -> Figure:
    """Left: final test MSE (mean, sd; log scale) per cell and T; right: the share of the last
    step's gradient that reaches step 1, trained (log scale)."""
    fig = plots.new_figure(10.0, 3.8)
    left, right = fig.subplots(1, 2)
    names = [c for c in COLORS if any(f"{c}@{T}" in cells for T in lengths)]
    width = 0.8 / len(names)
    empty = {"final": {"mean": None, "sd": None}, "reach_trained": None}
    for i, cell in enumerate(names):
        xs = np.arange(len(lengths)) + (i - (len(names) - 1) / 2) * width
        got = [cells.get(f"{cell}@{T}", empty) for T in lengths]  # the convex control ran at one T
        m = [_finite_or_nan(g["final"]["mean"]) for g in got]
        sd = [_finite_or_nan(g["final"]["sd"]) for g in got]
        left.bar(xs, m, width, yerr=sd, capsize=3, color=COLORS[cell], label=NAMES[cell])
        reach = [_finite_or_nan(g["reach_trained"]) for g in got]
        right.bar(xs, reach, width, color=COLORS[cell], label=NAMES[cell])
    left.axhline(baseline, color="k", ls="--", lw=1, label=f"always 1: {baseline:.3f}")
    for ax in (left, right):
        ax.set_xticks(range(len(lengths)), [f"T={T}" for T in lengths])
        ax.set_yscale("log")
        ax.grid(alpha=0.3, axis="y", which="both")
    left.set_ylabel("final test MSE (log)")
    left.set_title("adding problem: final test MSE (mean ± sd over seeds)", fontsize=9)
    left.legend(fontsize=7)
    right.set_ylabel("||dL/dh_1|| / ||dL/dh_T|| (log)")
    right.set_title("trained: share of the last step's gradient reaching step 1", fontsize=9)
    return fig


def gated(cells: dict, T: int, copy_T: int, baseline: float, chance: float) -> Figure:
    fig = plots.new_figure(9.0, 3.4)
    left, right = fig.subplots(1, 2)
    names = [c for c in ("rnn", "lstm", "lstm-chrono", "gru") if f"adding:{c}" in cells]
    for i, cell in enumerate(names):
        a = cells[f"adding:{cell}"]["final"]
        c = cells[f"copy:{cell}"]["final"]
        left.bar(i, _finite_or_nan(a["mean"]), yerr=_finite_or_nan(a["sd"]), capsize=4, color=COLORS[cell])
        right.bar(i, _finite_or_nan(c["mean"]) * 100, yerr=_finite_or_nan(c["sd"]) * 100, capsize=4, color=COLORS[cell])
    left.axhline(baseline, color="k", ls="--", lw=1, label=f"always 1: {baseline:.3f}")
    left.axhline(0.1 * baseline, color="tab:gray", ls=":", lw=1, label="90% of variance explained")
    right.axhline(chance * 100, color="k", ls="--", lw=1, label=f"chance {chance:.1%}")
    right.axhline(50, color="tab:gray", ls=":", lw=1, label="half recalled")
    for ax in (left, right):
        ax.set_xticks(range(len(names)), [NAMES[c] for c in names])
        ax.legend(fontsize=7, loc="center right")
        ax.grid(alpha=0.3, axis="y")
    left.set_ylabel("test MSE")
    left.set_title(f"adding problem, T = {T}", fontsize=9)
    right.set_ylabel("symbols recalled (%)")
    right.set_ylim(0, 100)
    right.set_title(f"copy task, T = {copy_T}", fontsize=9)
    return fig


def depth_curves(curves: dict, title: str) -> Figure:
    """Per depth (one colour) and seed: the training loss (dashed) and the test loss (solid) per epoch."""
    fig = plots.new_figure(6.5, 3.8)
    ax = fig.subplots()
    colors = plots_colors(len(curves))
    for (layers, runs), color in zip(curves.items(), colors, strict=True):
        for i, r in enumerate(runs):
            epochs = range(1, len(r["train_curve"]) + 1)
            name = f"{layers} layer{'s' if layers > 1 else ''}"
            ax.plot(
                epochs, r["train_curve"], ls="--", color=color, alpha=0.7, label=f"{name}, training" if i == 0 else None
            )
            ax.plot(
                epochs,
                r["test_curve"],
                ls="-",
                marker="o",
                ms=3,
                color=color,
                alpha=0.9,
                label=f"{name}, test" if i == 0 else None,
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per character)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title, fontsize=9)
    return fig


def _finite_or_nan(v) -> float:
    return float(v) if v is not None and math.isfinite(float(v)) else float("nan")


def spatial(acc: dict, title: str) -> Figure:
    """Bars of mean test accuracy (sd over seeds as error bars): ``acc[model][images]`` :func:`stats`."""
    fig = plots.new_figure(6.5, 3.4)
    ax = fig.subplots()
    models = list(acc)
    kinds = list(next(iter(acc.values())))
    width = 0.8 / len(kinds)
    for j, (kind, color) in enumerate(zip(kinds, ("tab:blue", "tab:orange"), strict=False)):
        xs = np.arange(len(models)) + (j - (len(kinds) - 1) / 2) * width
        m = [_finite_or_nan(acc[mod][kind]["mean"]) * 100 for mod in models]
        sd = [_finite_or_nan(acc[mod][kind]["sd"]) * 100 for mod in models]
        ax.bar(xs, m, width, yerr=sd, capsize=4, color=color, label=kind)
        for x, v in zip(xs, m, strict=True):
            ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(models)), models)
    lo = min(_finite_or_nan(acc[mod][k]["mean"]) * 100 for mod in models for k in kinds)
    ax.set_ylim(max(0.0, lo - 10), 100)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig
