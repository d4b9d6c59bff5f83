"""Matplotlib figures, one function per figure; each returns a :class:`matplotlib.figure.Figure`
(no pyplot, no global state: the Agg canvas renders it) and :func:`save` writes it as a PNG.

Every axis is labelled; curves that decay geometrically are drawn on a log scale.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 110


def new_figure(width: float, height: float, **kw) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained", **kw)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def literal(s) -> str:
    """``s`` as matplotlib draws it literally: an unescaped ``$`` pair would start mathtext (a class
    named ``$5`` and one named ``$10`` crash the renderer); ``\\$`` draws a plain ``$``."""
    return str(s).replace("$", r"\$")


def _image(x) -> tuple[np.ndarray, str | None]:
    """A sample as something imshow draws: (C,H,W) grey or RGB, or (T,F) a sequence as rows."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        return a[0], "gray"
    if a.ndim == 3 and a.shape[0] == 3:
        return np.clip(a.transpose(1, 2, 0), 0, 1), None
    if a.ndim == 3:
        return a.mean(0), "gray"
    if a.ndim == 1:
        return a[None], "viridis"
    return a, "viridis"


# ----------------------------------------------------------------------------------------------
# Training and errors
# ----------------------------------------------------------------------------------------------
def training_curves(rows: list[dict], title: str = "") -> Figure:
    """Loss (and accuracy when present) per epoch, train and test."""
    has_acc = any(r.get("train_accuracy") is not None or r.get("test_accuracy") is not None for r in rows)
    fig = new_figure(10 if has_acc else 5.5, 3.8)
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
    epochs = [r["epoch"] for r in rows]
    panels = [("loss", "loss")] + ([("accuracy", "accuracy")] if has_acc else [])
    for ax, (key, label) in zip(axes, panels, strict=True):
        for split, style in (("train", "o-"), ("val", "^:"), ("test", "s--"), ("train_eval", "d-.")):
            vals = [r.get(f"{split}_{key}") for r in rows]
            pts = [(e, v) for e, v in zip(epochs, vals, strict=True) if v is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{label} per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
    if title:
        fig.suptitle(literal(title))
    return fig


def confusion(cm: np.ndarray, classes: list[str], title: str = "confusion matrix (test set)") -> Figure:
    """Counts of true class (rows) against predicted class (columns), shaded by row fraction."""
    K = len(classes)
    size = max(5.0, 0.55 * K + 2.5)
    fig = new_figure(size + 1, size)
    ax = fig.subplots()
    frac = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    if K <= 30:
        for i in range(K):
            for j in range(K):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        str(int(cm[i, j])),
                        ha="center",
                        va="center",
                        fontsize=7 if K > 12 else 8,
                        color="white" if frac[i, j] > 0.5 else "black",
                    )
    names = [literal(c) for c in classes]
    ax.set_xticks(range(K), names, rotation=45, ha="right")
    ax.set_yticks(range(K), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(literal(title))
    fig.colorbar(im, ax=ax, label="fraction of the true class", shrink=0.8)
    return fig


def class_scores(scores: dict, classes: list[str]) -> Figure:
    """Precision and recall per class as grouped bars."""
    K = len(classes)
    fig = new_figure(max(6.0, 0.6 * K + 2), 3.8)
    ax = fig.subplots()
    x = np.arange(K)
    ax.bar(x - 0.2, scores["precision"], 0.4, label="precision")
    ax.bar(x + 0.2, scores["recall"], 0.4, label="recall")
    ax.set_xticks(x, [literal(c) for c in classes], rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("class")
    ax.set_ylabel("score")
    ax.set_title("precision and recall per class (test set)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def mistakes(samples: list, mistakes: list[dict], classes: list[str], cols: int = 8) -> Figure:
    """A grid of the most confidently wrong samples, titled true / predicted (confidence)."""
    n = max(len(mistakes), 1)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = new_figure(1.6 * cols, 1.9 * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, x, m in zip(axes, samples, mistakes, strict=False):  # more axes than samples: the rest stay blank
        img, cmap = _image(x)
        ax.imshow(img, cmap=cmap)
        true, pred = literal(classes[m["true"]]), literal(classes[m["predicted"]])
        ax.set_title(f"true {true}\npred {pred} ({m['confidence']:.2f})", fontsize=7)
    fig.suptitle("most confidently wrong test samples: true class, predicted class (probability)")
    return fig


def regression_fit(pred: np.ndarray, target: np.ndarray) -> Figure:
    """Predicted against true values on the test set."""
    fig = new_figure(4.8, 4.4)
    ax = fig.subplots()
    ax.scatter(target, pred, s=4, alpha=0.4)
    lo, hi = float(min(target.min(), pred.min())), float(max(target.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="perfect")
    ax.set_xlabel("true value")
    ax.set_ylabel("predicted value")
    ax.set_title("test predictions")
    ax.legend()
    return fig


# ----------------------------------------------------------------------------------------------
# Convolutional views
# ----------------------------------------------------------------------------------------------
def conv_filters(weight, title: str = "") -> Figure:
    """The kernels of a conv layer, weight ``(C_out, C_in, kH, kW)``.

    RGB input: one colour tile per filter. One input channel: one tile per filter on a diverging
    scale (red positive, blue negative). Otherwise a mosaic, a row per filter and a column per
    input channel.
    """
    w = np.asarray(weight, dtype=np.float32)
    c_out, c_in, kh, kw = w.shape
    if c_in == 3:
        cols = min(8, c_out)
        rows = math.ceil(c_out / cols)
        fig = new_figure(1.1 * cols + 0.5, 1.2 * rows + 0.6)
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for i, ax in enumerate(axes):
            ax.axis("off")
            if i < c_out:
                f = w[i].transpose(1, 2, 0)
                f = (f - f.min()) / max(float(f.max() - f.min()), 1e-12)
                ax.imshow(f, interpolation="nearest")
                ax.set_title(str(i), fontsize=7)
        fig.suptitle(literal(title) or f"{c_out} filters {kh}x{kw}x3 (each scaled to its own range)")
        return fig
    lim = float(np.abs(w).max()) or 1.0
    if c_in == 1:
        cols = min(8, c_out)
        fig = new_figure(1.0 * cols + 2.0, 1.0 * math.ceil(c_out / cols) + 1.2)
        ax = fig.subplots()
        im = ax.imshow(_mosaic(w[:, 0], cols), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        _mosaic_ticks(ax, c_out, cols, kh, kw, "filter")
        fig.colorbar(im, ax=ax, label="weight", shrink=0.8)
        ax.set_title(literal(title) or f"{c_out} filters {kh}x{kw} (one input channel)")
        return fig
    pad = 1
    mosaic = np.full((c_out * (kh + pad) - pad, c_in * (kw + pad) - pad), np.nan, dtype=np.float32)
    for o in range(c_out):
        for i in range(c_in):
            mosaic[o * (kh + pad) : o * (kh + pad) + kh, i * (kw + pad) : i * (kw + pad) + kw] = w[o, i]
    fig = new_figure(min(14.0, 2.5 + 0.07 * c_in * (kw + pad)), min(14.0, 1.5 + 0.07 * c_out * (kh + pad)))
    ax = fig.subplots()
    im = ax.imshow(mosaic, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    step = max(1, c_in // 8)
    ax.set_xticks([i * (kw + pad) + kw / 2 - 0.5 for i in range(0, c_in, step)], [str(i) for i in range(0, c_in, step)])
    step = max(1, c_out // 16)
    ticks = range(0, c_out, step)
    ax.set_yticks([o * (kh + pad) + kh / 2 - 0.5 for o in ticks], [str(o) for o in ticks])
    ax.set_xlabel("input channel")
    ax.set_ylabel("filter (output channel)")
    fig.colorbar(im, ax=ax, label="weight", shrink=0.6)
    ax.set_title(literal(title) or f"{c_out} filters of {c_in} kernels {kh}x{kw}")
    return fig


def _mosaic(tiles: np.ndarray, cols: int, pad: int = 1) -> np.ndarray:
    """Tiles ``(N, h, w)`` laid out in rows of ``cols``, separated by NaN (drawn blank)."""
    n, h, w = tiles.shape
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = tiles[i]
    return out


def _mosaic_ticks(ax, n: int, cols: int, h: int, w: int, what: str, pad: int = 1) -> None:
    """Tick labels that name each tile of a mosaic: tile = row label + column label."""
    rows = math.ceil(n / cols)
    ax.set_xticks([c * (w + pad) + (w - 1) / 2 for c in range(min(cols, n))], [f"+{c}" for c in range(min(cols, n))])
    ax.set_yticks([r * (h + pad) + (h - 1) / 2 for r in range(rows)], [str(r * cols) for r in range(rows)])
    ax.tick_params(length=0, labelsize=7)
    ax.set_xlabel(f"{what} = row label + column label")
    ax.set_ylabel(f"{what} (row start)")


def feature_maps(maps, title: str, image=None, max_channels: int = 64) -> Figure:
    """The channels of one layer's output ``(C, H, W)`` for one input (shown on the left when given),
    as one mosaic; each channel is scaled to its own range (the CSV holds the raw values)."""
    m = np.asarray(maps, dtype=np.float32)
    c = min(m.shape[0], max_channels)
    cols = min(8, c)
    lo = m[:c].min(axis=(1, 2), keepdims=True)
    span = np.maximum(m[:c].max(axis=(1, 2), keepdims=True) - lo, 1e-12)
    mosaic = _mosaic((m[:c] - lo) / span, cols)
    rows = math.ceil(c / cols)
    width = 1.0 * cols + 1.6 + (2.2 if image is not None else 0)
    fig = new_figure(width, 1.0 * rows + 1.3)
    if image is not None:
        a0, ax = fig.subplots(1, 2, width_ratios=[2.2, 1.0 * cols])
        img, cmap = _image(image)
        a0.imshow(img, cmap=cmap)
        a0.set_title("input", fontsize=9)
        a0.axis("off")
    else:
        ax = fig.subplots()
    im = ax.imshow(mosaic, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    _mosaic_ticks(ax, c, cols, m.shape[1], m.shape[2], "channel")
    fig.colorbar(im, ax=ax, label="activation, scaled per channel", shrink=0.8)
    more = f", first {c} of {m.shape[0]} channels" if c < m.shape[0] else ""
    ax.set_title(f"{literal(title)}: {m.shape[0]} maps of {m.shape[1]}x{m.shape[2]}{more}", fontsize=9)
    return fig


# 1-D and 3-D convolutions: how many panels a figure holds, so a caller can say what it drew
MAX_PANELS = 64  # filters (1-D, 3-D) or channels (1-D) drawn; the CSV beside the figure holds them all
MAX_VOLUME_CHANNELS = 16  # channels of a 3-D map drawn, each a row of depth slices
MAX_SLICES = 16  # depth slices of a 3-D map drawn (evenly spaced when there are more)


def depth_slices(depth: int, most: int = MAX_SLICES) -> list[int]:
    """The depth indices drawn of a volume ``depth`` deep: all, or ``most`` evenly spaced."""
    if depth <= most:
        return list(range(depth))
    return sorted(set(np.linspace(0, depth - 1, most).round().astype(int).tolist()))


def filter_panels(shape) -> int:
    """How many kernels a filters figure draws for a conv weight ``(C_out, C_in, *kernel)``: one
    per filter for 2-D (all) and 1-D (the first :data:`MAX_PANELS`), one per filter and depth
    slice for 3-D (the first :data:`MAX_PANELS` filters)."""
    c_out = int(shape[0])
    if len(shape) == 4:
        return c_out
    n = min(c_out, MAX_PANELS)
    return n * int(shape[2]) if len(shape) == 5 else n


def map_panels(shape) -> int:
    """How many panels a feature-maps figure draws for maps ``(C, *S)``: one per channel (the first
    64; 1-D: a heatmap row each), or for 3-D one per channel (the first 16) and depth slice drawn."""
    c = int(shape[0])
    if len(shape) == 4:
        return min(c, MAX_VOLUME_CHANNELS) * len(depth_slices(int(shape[1])))
    return min(c, MAX_PANELS)


def conv_filters_1d(weight, title: str = "") -> Figure:
    """The kernels of a Conv1d, weight ``(C_out, C_in, k)``: one small panel per filter (the first
    64). Up to three input channels: a line per input channel, weight against tap; more: a tile
    per filter, input channels down and taps across, on a diverging scale (red positive, blue
    negative)."""
    w = np.asarray(weight, dtype=np.float32)
    c_out, c_in, k = w.shape
    n = min(c_out, MAX_PANELS)
    cols = min(8, n)
    rows = math.ceil(n / cols)
    lim = float(np.abs(w).max()) or 1.0
    more = f" (first {n} of {c_out})" if n < c_out else ""
    if c_in <= 3:
        fig = new_figure(1.5 * cols + 1.0, 1.25 * rows + 1.1)
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True).ravel()
        taps = np.arange(k)
        for i, ax in enumerate(axes):
            if i >= n:
                ax.axis("off")
                continue
            for ch in range(c_in):
                ax.plot(taps, w[i, ch], "o-", ms=2.5, lw=1.2, label=f"input channel {ch}")
            ax.axhline(0.0, color="0.6", lw=0.6)
            ax.set_title(f"filter {i}", fontsize=7)
            ax.tick_params(labelsize=6)
        axes[0].set_ylim(-1.1 * lim, 1.1 * lim)
        axes[0].set_xticks(taps if k <= 9 else taps[:: math.ceil(k / 9)])
        if c_in > 1:
            axes[0].legend(fontsize=6)
        fig.supxlabel("tap (position in the kernel)", fontsize=9)
        fig.supylabel("weight", fontsize=9)
        fig.suptitle(
            literal(title or f"{c_out} filters of {c_in}x{k}") + f"{more}: one line per input channel", fontsize=10
        )
        return fig
    fig = new_figure(min(14.0, 0.35 * cols * (k + 1) + 2.5), min(14.0, 0.12 * rows * (c_in + 1) + 1.6))
    ax = fig.subplots()
    im = ax.imshow(_mosaic(w[:n], cols), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest", aspect="auto")
    _mosaic_ticks(ax, n, cols, c_in, k, "filter")
    fig.colorbar(im, ax=ax, label="weight", shrink=0.8)
    ax.set_title(
        literal(title or f"{c_out} filters of {c_in}x{k}") + f"{more}\neach tile: input channels down, taps across",
        fontsize=9,
    )
    return fig


def conv_filters_3d(weight, title: str = "") -> Figure:
    """The kernels of a Conv3d, weight ``(C_out, C_in, kD, kH, kW)``: a grid with a row per filter
    (the first 64) and a column per depth slice of the kernel, each tile its ``kH x kW`` weights
    on a diverging scale. With one input channel that channel's kernel; with more, the mean over
    the input channels (the title says which; the CSV holds every weight)."""
    w = np.asarray(weight, dtype=np.float32)
    c_out, c_in, kd, kh, kw = w.shape
    n = min(c_out, MAX_PANELS)
    tiles = w[:n, 0] if c_in == 1 else w[:n].mean(axis=1)  # (n, kD, kH, kW)
    which = "the one input channel" if c_in == 1 else f"the mean over the {c_in} input channels"
    lim = float(np.abs(tiles).max()) or 1.0
    pad = 1
    mosaic = _mosaic(tiles.reshape(n * kd, kh, kw), kd, pad)  # tile i: filter i // kD, slice i % kD
    fig = new_figure(min(14.0, 0.3 * kd * (kw + pad) + 2.8), min(14.0, 0.3 * n * (kh + pad) + 1.6))
    ax = fig.subplots()
    im = ax.imshow(mosaic, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xticks([d * (kw + pad) + (kw - 1) / 2 for d in range(kd)], [f"d={d}" for d in range(kd)])
    step = max(1, n // 16)
    ax.set_yticks([o * (kh + pad) + (kh - 1) / 2 for o in range(0, n, step)], [str(o) for o in range(0, n, step)])
    ax.tick_params(length=0, labelsize=7)
    ax.set_xlabel("depth slice of the kernel")
    ax.set_ylabel("filter (output channel)")
    fig.colorbar(im, ax=ax, label="weight", shrink=0.8)
    more = f", first {n} of {c_out} filters" if n < c_out else ""
    ax.set_title(
        literal(title or f"{c_out} filters of {c_in}x{kd}x{kh}x{kw}") + f"\n{kh}x{kw} slices of {which}{more}",
        fontsize=9,
    )
    return fig


def feature_maps_1d(maps, title: str, sequence=None) -> Figure:
    """The channels of one 1-D layer's output ``(C, L)`` for one input as a heatmap, a row per
    channel (the first 64) along the steps, each channel scaled to its own range (the CSV holds
    the raw values); the input sequence ``(F, T)`` above it when given (a line per feature up to
    eight, else a heatmap)."""
    m = np.asarray(maps, dtype=np.float32)
    c = min(m.shape[0], MAX_PANELS)
    lo = m[:c].min(axis=1, keepdims=True)
    span = np.maximum(m[:c].max(axis=1, keepdims=True) - lo, 1e-12)
    fig = new_figure(8.0, min(12.0, 0.12 * c + 2.4) + (1.8 if sequence is not None else 0))
    if sequence is not None:
        a0, ax = fig.subplots(2, 1, height_ratios=[1.8, min(10.0, 0.12 * c + 1.2)])
        s = np.asarray(sequence, dtype=np.float32)
        if s.shape[0] <= 8:
            for f in range(s.shape[0]):
                a0.plot(np.arange(s.shape[1]), s[f], lw=1.0, label=f"feature {f}")
            a0.set_ylabel("value")
            if s.shape[0] > 1:
                a0.legend(fontsize=6, ncol=min(4, s.shape[0]))
        else:
            a0.imshow(s, aspect="auto", cmap="viridis", interpolation="nearest")
            a0.set_ylabel("feature")
        a0.set_xlabel("time step of the input")
        a0.set_title(f"input: {s.shape[0]} features over {s.shape[1]} steps", fontsize=9)
    else:
        ax = fig.subplots()
    im = ax.imshow((m[:c] - lo) / span, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xlabel("position along the sequence (step)")
    ax.set_ylabel("channel")
    fig.colorbar(im, ax=ax, label="activation, scaled per channel", shrink=0.8)
    more = f", first {c} of {m.shape[0]} channels" if c < m.shape[0] else ""
    ax.set_title(f"{literal(title)}: {m.shape[0]} maps of length {m.shape[1]}{more}", fontsize=9)
    return fig


def feature_maps_3d(maps, title: str) -> Figure:
    """The channels of one 3-D layer's output ``(C, D, H, W)`` for one input: a grid with a row per
    channel (the first 16) and a column per depth slice (all, or 16 evenly spaced), each channel
    scaled to its own range over the whole volume (the CSV holds the raw values)."""
    m = np.asarray(maps, dtype=np.float32)
    C, D, H, W = m.shape
    c = min(C, MAX_VOLUME_CHANNELS)
    slices = depth_slices(D)
    lo = m[:c].min(axis=(1, 2, 3), keepdims=True)
    span = np.maximum(m[:c].max(axis=(1, 2, 3), keepdims=True) - lo, 1e-12)
    tiles = ((m[:c] - lo) / span)[:, slices]  # (c, S, H, W)
    pad = 1
    mosaic = _mosaic(tiles.reshape(c * len(slices), H, W), len(slices), pad)
    fig = new_figure(min(14.0, 0.12 * len(slices) * (W + pad) + 2.6), min(14.0, 0.12 * c * (H + pad) + 1.8))
    ax = fig.subplots()
    im = ax.imshow(mosaic, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([j * (W + pad) + (W - 1) / 2 for j in range(len(slices))], [f"d={d}" for d in slices])
    ax.set_yticks([i * (H + pad) + (H - 1) / 2 for i in range(c)], [str(i) for i in range(c)])
    ax.tick_params(length=0, labelsize=7)
    ax.set_xlabel("depth slice")
    ax.set_ylabel("channel")
    fig.colorbar(im, ax=ax, label="activation, scaled per channel", shrink=0.8)
    more = f", first {c} of {C} channels" if c < C else ""
    shown = "" if len(slices) == D else f", {len(slices)} of {D} depth slices"
    ax.set_title(f"{literal(title)}: {C} maps of {D}x{H}x{W}{more}{shown}", fontsize=9)
    return fig


def layer_elements(summary) -> Figure:
    """Elements each layer passes on (log scale) and parameters per layer: pooling shrinks what follows."""
    rows = [r for r in summary.rows if r.output_shape]
    fig = new_figure(max(6.0, 0.75 * (len(rows) + 1) + 2), 4.2)
    ax = fig.subplots()
    labels = ["input"] + [r.alias for r in rows]
    elems = [summary.input_elements] + [r.elements for r in rows]
    colors = ["tab:gray"] + [
        "tab:orange" if r.kind.lower().endswith(("pool1d", "pool2d", "pool3d")) else "tab:blue" for r in rows
    ]
    x = np.arange(len(labels))
    ax.bar(x, elems, color=colors)
    for xi, e in zip(x, elems, strict=True):
        ax.text(float(xi), e, f"{e:,}", ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_xlabel("layer (orange: pooling)")
    ax.set_ylabel("elements passed on per sample (log scale)")
    title = f"{summary.model}: {summary.total_parameters:,} parameters, {summary.total_flops:,} FLOPs per sample"
    if summary.without_pools:
        w = summary.without_pools
        title += (
            f"\nwithout pooling the Dense layer would need {w['parameters_without_pools']:,} parameters "
            f"instead of {w['parameters_with_pools']:,}"
        )
    ax.set_title(literal(title), fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return fig


# ----------------------------------------------------------------------------------------------
# Gradient flow through time
# ----------------------------------------------------------------------------------------------
_FITS = {"grad_norm": "grad_fit", "jacobian_norm": "jacobian_fit", "jacobian_spectral": "spectral_fit"}


def _has_spectral(flows) -> bool:
    return any(lf.jacobian_spectral is not None for f in flows for lf in f.layers)


def _flow_panel(ax, flows, measure: str, styles=None, label_of=None) -> None:
    for k, flow in enumerate(flows):
        for lf in flow.layers:
            y = getattr(lf, measure)
            if y is None:
                continue
            t = np.arange(1, len(y) + 1)
            ok = y > 0
            fit = getattr(lf, _FITS[measure])
            name = (
                label_of(flow, lf)
                if label_of
                else (f"{flow.label} layer {lf.layer}" if len(flow.layers) > 1 else flow.label)
            )
            if fit is not None:
                name += f" (x{fit.factor:.3f}/step)"
            style = styles[k] if styles else "-"
            ax.plot(t[ok], y[ok], style, label=name, lw=1.4)
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)


def gradient_flow(flows: list, title: str = "") -> Figure:
    """``||dL/dh_t||`` and ``||dh_T/dh_t||`` against t on log scales, one line per weights and layer."""
    spectral = _has_spectral(flows)
    fig = new_figure(16 if spectral else 11, 4.4)
    axes = fig.subplots(1, 3 if spectral else 2)
    a1, a2 = axes[0], axes[1]
    styles = ["-", "--", ":", "-."]
    _flow_panel(a1, flows, "grad_norm", styles[: len(flows)] if len(flows) <= 4 else None)
    a1.set_ylabel("||dL/dh_t|| (mean over samples, log scale)")
    a1.set_title("gradient of the loss at each step")
    _flow_panel(a2, flows, "jacobian_norm", styles[: len(flows)] if len(flows) <= 4 else None)
    a2.set_ylabel("||dh_T/dh_t||_F / sqrt(H) (log scale)")
    a2.set_title("how much of step t reaches the last state (RMS gain)")
    if spectral:
        _flow_panel(axes[2], flows, "jacobian_spectral", styles[: len(flows)] if len(flows) <= 4 else None)
        axes[2].set_ylabel("||dh_T/dh_t||_2 (log scale)")
        axes[2].set_title("gain of the best-kept direction (spectral norm)")
    fig.suptitle(
        (literal(title) + "\n" if title else "gradient flow through time\n")
        + "legend: fitted factor per step back in time (< 1: the gradient vanishes)",
        fontsize=10,
    )
    return fig


def compare_cells(results: list[dict], title: str = "") -> Figure:
    """The article's section 6.2 in one figure: the gradient flow of each cell at initialisation
    and after training (log scale), with a table of final metric, parameters, seconds and decay."""
    spectral = _has_spectral([f for r in results for f in r["flows"].values()])
    rows = 3 if spectral else 2
    fig = new_figure(13, 4.0 + 3.0 * rows)
    top, bottom = fig.subfigures(2, 1, height_ratios=[3 * rows / 2, 1.1])  # type: ignore[misc]  # (an array of 2)
    axes = top.subplots(rows, 2, sharex=True)
    names: dict = {}

    def label(flow, lf):
        return names[id(flow)] if len(flow.layers) == 1 else f"{names[id(flow)]} L{lf.layer}"

    for col, key in enumerate(("init", "trained")):
        flows = []
        for r in results:
            f = r["flows"].get(key)
            if f is not None:
                names[id(f)] = r["cell"]
                flows.append(f)
        _flow_panel(axes[0, col], flows, "grad_norm", label_of=label)
        _flow_panel(axes[1, col], flows, "jacobian_norm", label_of=label)
        when = "at initialisation" if key == "init" else "after training"
        axes[0, col].set_title(f"||dL/dh_t|| {when}")
        axes[1, col].set_title(f"||dh_T/dh_t||_F / sqrt(H) {when}")
        axes[0, col].set_ylabel("||dL/dh_t|| (log scale)")
        axes[1, col].set_ylabel("||dh_T/dh_t||_F/sqrt(H) (log scale)")
        if spectral:
            _flow_panel(axes[2, col], flows, "jacobian_spectral", label_of=label)
            axes[2, col].set_title(f"||dh_T/dh_t||_2 (best-kept direction) {when}")
            axes[2, col].set_ylabel("||dh_T/dh_t||_2 (log scale)")
    ax = bottom.subplots()
    ax.axis("off")
    metric = "final test MSE" if results and results[0].get("metric") == "mse" else "final test accuracy"
    metric = metric.replace("final ", "final\n")
    cols = [
        "cell",
        "parameters",
        "train\nseconds",
        metric,
        "decay/step\ninit (RMS)",
        "decay/step\ntrained (RMS)",
        "steps per 10x\ninit (RMS)",
        "decay/step\ninit (spectral)",
        "decay/step\ntrained (spectral)",
    ]
    cells = []
    for r in results:
        cells.append(
            [
                r["cell"],
                f"{r['parameters']:,}",
                f"{r['seconds']:.1f}",
                f"{r['final']:.4g}",
                _fmt(r.get("decay_init")),
                _fmt(r.get("decay_trained")),
                _steps(r.get("steps_per_10x_init")),
                _fmt(r.get("spectral_decay_init")),
                _fmt(r.get("spectral_decay_trained")),
            ]
        )
    table = ax.table(cellText=cells, colLabels=cols, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.4)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_height(cell.get_height() * 1.8)  # two-line headers
    bottom.suptitle(
        "decay = fitted factor per step back in time of ||dh_T/dh_t|| (< 1: the gradient vanishes); "
        "RMS = Frobenius/sqrt(H), spectral = largest singular value; check R^2 in compare_cells_fit.csv",
        fontsize=9,
    )
    fig.suptitle(literal(title) or "gradient flow through time by cell")
    return fig


def _steps(v) -> str:
    if v is None:
        return "-"
    return "never (grows)" if v < 0 or math.isinf(v) else f"{v:.1f}"


def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.{digits}f}" if digits == 1 else f"{v:.{digits}g}"
