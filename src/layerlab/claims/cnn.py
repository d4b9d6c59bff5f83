"""The article's claims about convolutional networks (sections 2, 5, 6.1.1, 6.1.2), each as an
experiment on Fashion-MNIST subsets: ``run(ctx, claim)`` fills the claim's table and raw numbers,
``decide(numbers)`` turns the numbers into a verdict by the rule the claim states."""

from __future__ import annotations

import dataclasses
import warnings
from typing import cast

import torch
import torch.nn.functional as F

from ..config import ModelConfig
from ..data import Dataset, Split, images_as_sequences
from ..data.transforms import KINDS, InputSpec
from ..engine import predict_logits, seed_everything
from ..errors import LayerlabError
from ..inspect.summary import summarize
from ..rundir import build_model_for
from . import figures
from .base import (
    CAVEAT,
    NOT_SUPPORTED,
    SUPPORTED,
    Claim,
    Context,
    clearly_below,
    difference,
    pct,
    pm,
    standard_error,
    stats,
)

#: The article's CNN without its two pools: the same convs and Dense head (section 2's comparison).
NO_POOL = ModelConfig(name="cnn", channels="32,64")
#: Section 5's smaller models, trained with batch normalisation at lr 3e-3: a narrower CNN (Flatten
#: kept), and one whose head is a global max pool instead of Flatten + the large Dense layer (also
#: 6.1.2's CNN that takes any size).
NARROW = ModelConfig(name="cnn", channels="16,M,32,M", batch_norm=True)
NARROW_FLAGS = "--model cnn --channels 16,M,32,M --batch-norm"
GLOBAL = ModelConfig(name="cnn", channels="16,M,32,M,32", padding="same", batch_norm=True, global_pool="max")
GLOBAL_FLAGS = "--model cnn --channels 16,M,32,M,32 --padding same --batch-norm --global-pool max"
SMALL_LR = 3e-3
#: Section 5's confound control: the article's layers trained with the smaller models' recipe (batch
#: normalisation, lr 3e-3), so a speed-up can be told apart from the recipe's
RECIPE = ModelConfig(name="cnn", channels="32,M,64,M", batch_norm=True)
RECIPE_FLAGS = "--model cnn --channels 32,M,64,M --batch-norm"
ARTICLE = "article CNN"
RECIPE_LABEL = "article CNN, smaller models' recipe"
#: the pooling claim's control (:func:`strided_cnn`)
STRIDED = "stride-2 convs, no pools"
#: Warmed up before anything is timed: section 5 compares their seconds.
WARM_UP = (
    ModelConfig(name="article-cnn"),
    NARROW,
    GLOBAL,
    ModelConfig(name="cnn", channels="32,M,64,M", batch_norm=True),
)
#: 6.1.2's other data: Fashion-MNIST rows as sequences (1-D) and four-frame clips (3-D).
CNN_1D = ModelConfig(name="cnn", channels="32,M,64,M")
CNN_3D = ModelConfig(name="cnn", channels="16,M,32,M", padding="same")
CLIP_FRAMES = 4
#: 6.1.1's second half, "keep spatial information": an MLP of about the article CNN's parameter count
#: (784 > 42 > 42 > 10: 35,206 parameters against 34,826) against the CNN, on images and on images whose
#: pixels are shuffled by one fixed permutation
MLP_MATCHED = ModelConfig(name="mlp", hidden=42, layers=2)
MLP_FLAGS = "--model mlp --hidden 42 --layers 2"


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def shift_images(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` moved ``dy`` pixels down and ``dx`` right (negative: up, left), the
    uncovered border filled with 0 (Fashion-MNIST's background)."""
    H, W = x.shape[-2:]
    out = torch.zeros_like(x)
    out[..., max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)] = x[
        ..., max(-dy, 0) : H + min(-dy, 0), max(-dx, 0) : W + min(-dx, 0)
    ]
    return out


def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    out = predict_logits(model, Split(x, y), batch_size=1000, device=torch.device("cpu"))
    return float((out.argmax(-1) == y).double().mean())


def shifted_accuracy(model, split: Split, k: int) -> float:
    """Test accuracy with every image moved ``k`` pixels, the mean over right, left, down and up."""
    if k == 0:
        return accuracy(model, split.x, split.y)
    moves = ((0, k), (0, -k), (k, 0), (-k, 0))
    return sum(accuracy(model, shift_images(split.x, dy, dx), split.y) for dy, dx in moves) / len(moves)


@torch.no_grad()
def conv_features(model, x: torch.Tensor, batch: int = 1000):
    """What the conv/pool layers hand to the Dense layer, flattened: ``(N, 1600)`` for the article's CNN."""
    model.eval()
    return torch.cat([model.features(x[i : i + batch]).flatten(1) for i in range(0, len(x), batch)]).numpy()


def linear_probe(xtr, ytr, xte, yte, max_iter: int) -> tuple[float, bool]:
    """Test accuracy of a multinomial logistic regression (scikit-learn, features standardised) fitted
    on ``xtr``; and whether it converged within ``max_iter`` iterations."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    # one BLAS thread: L-BFGS's many small products ran 35x slower with two threads on a busy 2-core
    # machine (0.2 s against 7.4 s for 600 images), the threads spinning against other processes
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=1):
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(xtr, ytr)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return float(clf.score(xte, yte)), converged


def framed(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images ``(N, C, H, W)`` in the middle of a ``size`` x ``size`` frame of zeros (background)."""
    ph, pw = size - x.shape[-2], size - x.shape[-1]
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


def clips(split: Split, n: int | None = None) -> Split:
    """Each image as a clip of :data:`CLIP_FRAMES` frames in which it moves one pixel right per
    frame: ``(N, 1, D, H, W)``, the (C, D, H, W) volumes a 3-D CNN reads."""
    x, y = (split.x[:n], split.y[:n]) if n else (split.x, split.y)
    frames = [shift_images(x, 0, f - 1) for f in range(CLIP_FRAMES)]  # each (N, C, H, W)
    return Split(torch.stack(frames, dim=2), y)  # (N, C, D, H, W)


def first_frames(vol: Dataset) -> Dataset:
    """The clips of :func:`clip_dataset` cut to their first frame, ``(N, C, H, W)`` images: the 3-D
    claim's control."""
    train, test = (Split(sp.x[:, :, 0], sp.y) for sp in (vol.train, vol.test))
    spec = InputSpec("image", tuple(train.x.shape[1:]))
    return Dataset("first frames", train, test, "classification", vol.classes, vol.num_outputs, vol.source, spec=spec)


def clip_dataset(ds: Dataset, n_train: int) -> Dataset:
    train, test = clips(ds.train, n_train), clips(ds.test)
    kind = "volume" if "volume" in KINDS else "image"  # a (C, D, H, W) sample
    spec = InputSpec(kind, tuple(train.x.shape[1:]))
    return Dataset("clips", train, test, "classification", ds.classes, ds.num_outputs, ds.source, spec=spec)


def strided_cnn(ds: Dataset) -> torch.nn.Module:
    """Section 2's downsampling control: the article's two 3x3 convs (32, 64 filters) with stride 2 in
    place of conv + 2x2 max pool, so the feature maps shrink by sampling without a max (28 > 13 > 6),
    then Flatten > Dense. Built from the unpooled CNN (Keras's initialisation), its Dense layer sized
    for the strided maps."""
    net = build_model_for(NO_POOL, ds.spec, ds.num_outputs)
    features = cast(torch.nn.Sequential, net.features)
    for m in features:
        if isinstance(m, torch.nn.Conv2d):
            m.stride = (2, 2)
    with torch.no_grad():
        flat = int(features(torch.zeros(1, *ds.input_shape)).numel())
    net.classifier = torch.nn.Linear(flat, ds.num_outputs)
    torch.nn.init.xavier_uniform_(net.classifier.weight)
    torch.nn.init.zeros_(net.classifier.bias)
    net._plan = list(features)  # type: ignore[assignment]  # the CNN's layer plan, a plain list attribute
    return net


def _seeds_text(ctx: Context) -> str:
    n = ctx.budget.seeds
    return f"{n} seed{'s' if n != 1 else ''} (mean ± sd over seeds)" if n > 1 else "1 seed"


def _budget_text(ctx: Context) -> str:
    b = ctx.budget
    return (
        f"{ctx.image_source}: the first {b.image_train:,} training and {b.image_test:,} test images; "
        f"{b.image_epochs} epoch{'s' if b.image_epochs != 1 else ''} of Adam (lr 1e-3, batch {b.image_batch}); "
        f"{_seeds_text(ctx)}"
    )


# ----------------------------------------------------------------------------------------------
# 6.1.1: convolution learns features by itself
# ----------------------------------------------------------------------------------------------
def run_conv_features(ctx: Context, claim: Claim) -> None:
    b = ctx.budget
    ds = ctx.images()
    n = min(b.probe_train, len(ds.train))
    xtr, ytr, xte, yte = ds.train.x[:n], ds.train.y[:n], ds.test.x, ds.test.y
    ytr_np, yte_np = ytr.numpy(), yte.numpy()
    raw, raw_ok = linear_probe(xtr.flatten(1).numpy(), ytr_np, xte.flatten(1).numpy(), yte_np, b.probe_iter)
    ctx.say(f"  linear probe on raw pixels: {raw:.4f}")
    trained: list
    untrained: list
    trained, untrained, heads, unconverged = [], [], [], 0 if raw_ok else 1
    for seed in ctx.seeds():
        r = ctx.article_cnn(seed)
        seed_everything(seed)  # the same network as it was before training
        fresh = build_model_for(ModelConfig(name="article-cnn"), ds.spec, ds.num_outputs).eval()
        for model, out in ((r["model"], trained), (fresh, untrained)):
            acc, ok = linear_probe(conv_features(model, xtr), ytr_np, conv_features(model, xte), yte_np, b.probe_iter)
            out.append(acc)
            unconverged += not ok
        heads.append(r["accuracy"])
        ctx.say(f"  linear probe, seed {seed}: trained features {trained[-1]:.4f}, untrained {untrained[-1]:.4f}")
    s_tr, s_un, s_raw, s_head = stats(trained), stats(untrained), stats([raw]), stats(heads)
    dims = conv_features(ctx.article_cnn(0)["model"], xte[:1]).shape[1]
    claim.experiment = (
        f"Train the article's CNN ({_budget_text(ctx)}). Fit one linear classifier (multinomial logistic "
        f"regression on standardised inputs, scikit-learn, {b.probe_iter} iterations at most) on {n:,} training "
        f"images three times: on what the trained network's conv/pool layers output ({dims:,} numbers per image), "
        f"on the raw pixels (784), and on what the same network outputs at its random initialisation, before "
        f"training. Same classifier, same images: only the features differ, so the gap is what training the "
        f"convolutions learnt."
    )
    claim.columns = ["features", "inputs per image", "linear probe test accuracy", "per seed"]
    claim.rows = [
        _probe_row("trained CNN's conv features", dims, s_tr, trained),
        _probe_row("raw pixels", 784, s_raw, [raw]),
        _probe_row("untrained CNN's conv features", dims, s_un, untrained),
        _probe_row("(the trained CNN's own Dense head)", dims, s_head, heads),
    ]
    claim.numbers = {
        "trained": s_tr,
        "raw": s_raw,
        "untrained": s_un,
        "head": s_head,
        "trained_per_seed": trained,
        "untrained_per_seed": untrained,
        "probes_not_converged": unconverged,
    }
    if unconverged:
        claim.notes.append(
            f"{unconverged} of the linear probes stopped at {b.probe_iter} iterations before converging."
        )
    weight = ctx.article_cnn(0)["model"].features[0].weight.detach()
    claim.figures = [
        figures.save(
            figures.conv_filters(weight, "conv1 of the article's CNN after training (seed 0): 32 learnt 3x3 filters"),
            ctx.results / "conv_features_filters.png",
        ),
        figures.save_with_csv(
            figures.probe_bars(claim.rows[:3], "linear classifier on three kinds of input (higher is better)"),
            ctx.results,
            "conv_features",
            claim.rows,
        ),
    ]


def _probe_row(name: str, dims: int, s: dict, values: list[float]) -> dict:
    return {
        "features": name,
        "inputs per image": f"{dims:,}",
        "linear probe test accuracy": pct(s),
        "per seed": ", ".join(f"{v:.4f}" for v in values),
        "mean": s["mean"],
        "sd": s["sd"],
    }


def decide_conv_features(n: dict) -> tuple[str, str]:
    tr, raw, un = n["trained"], n["raw"], n["untrained"]
    best_other = max(raw["mean"], un["mean"])
    gap = tr["mean"] - best_other
    noise = 2 * max(tr["sd"], raw["sd"], un["sd"])
    margin = max(0.01, noise)
    if gap > margin:
        return SUPPORTED, (
            f"the trained features beat the better of raw pixels and untrained features by "
            f"{gap * 100:.1f} points (> {margin * 100:.1f})"
        )
    if gap > 0:
        return CAVEAT, f"the trained features are ahead by only {gap * 100:.2f} points (margin {margin * 100:.1f})"
    return NOT_SUPPORTED, f"the trained features do not beat the better alternative ({gap * 100:+.2f} points)"


CONV_FEATURES_RULE = (
    "supported if the probe on the trained CNN's features beats both the raw pixels and the untrained CNN's "
    "features by more than 1 point and more than twice the largest sd over seeds; supported with a caveat "
    "if it beats both by less; not supported otherwise."
)


# ----------------------------------------------------------------------------------------------
# 6.1.1: convolution keeps spatial information (the CNN against an MLP, on shuffled pixels)
# ----------------------------------------------------------------------------------------------
def permuted_images(ds: Dataset, seed: int = 0) -> tuple[Dataset, torch.Tensor]:
    """``ds`` with every image's pixels shuffled by one fixed permutation (from ``seed``), the same for
    every image, training and test: the content is all there, the neighbourhoods are gone."""
    shape = tuple(ds.train.x.shape[1:])
    perm = torch.randperm(int(torch.tensor(shape).prod()), generator=torch.Generator().manual_seed(seed))

    def shuffle(sp: Split) -> Split:
        return Split(sp.x.flatten(1)[:, perm].reshape(len(sp.x), *shape), sp.y)

    return dataclasses.replace(
        ds, name=f"{ds.name} (pixels permuted)", train=shuffle(ds.train), test=shuffle(ds.test)
    ), perm


def _paired(a: list[float], b: list[float]) -> dict:
    return stats([x - y for x, y in zip(a, b, strict=True)])


def run_spatial(ctx: Context, claim: Claim) -> None:
    ds = ctx.images()
    shuffled, _ = permuted_images(ds)
    acc: dict[str, dict[str, list[float]]] = {"article CNN": {}, "MLP": {}}
    params = {}
    for label, cfg in ((ARTICLE, ModelConfig(name="article-cnn")), ("MLP", MLP_MATCHED)):
        key = "article CNN" if label == ARTICLE else "MLP"
        for kind, data in (("images", ds), ("pixels permuted", shuffled)):
            per_seed = [
                (
                    ctx.article_cnn(s)
                    if label == ARTICLE and kind == "images"
                    else ctx.train_image_model(f"{key}, {kind}", cfg, s, ds=data)
                )
                for s in ctx.seeds()
            ]
            acc[key][kind] = [r["accuracy"] for r in per_seed]
            params[key] = per_seed[0]["parameters"]
    s = {m: {k: stats(v) for k, v in kinds.items()} for m, kinds in acc.items()}
    cnn_drop = _paired(acc["article CNN"]["images"], acc["article CNN"]["pixels permuted"])
    mlp_drop = _paired(acc["MLP"]["images"], acc["MLP"]["pixels permuted"])
    drop_gap = stats(
        [
            (c0 - c1) - (m0 - m1)
            for c0, c1, m0, m1 in zip(
                acc["article CNN"]["images"],
                acc["article CNN"]["pixels permuted"],
                acc["MLP"]["images"],
                acc["MLP"]["pixels permuted"],
                strict=True,
            )
        ]
    )
    claim.experiment = (
        f"Convolution reads neighbourhoods, so it should lose what an MLP does not when the neighbourhoods are "
        f"destroyed. The article's CNN and an MLP of about its size (`{MLP_FLAGS}`: {params['MLP']:,} parameters "
        f"against {params['article CNN']:,}) train on the images and on the same images with their pixels "
        f"shuffled by one fixed permutation (the same for every image: all the information is still there, in "
        f"other places). {_budget_text(ctx)}. An MLP's first layer is blind to the pixels' order, so it should "
        f"do as well on both."
    )
    claim.columns = ["model", "parameters", "images", "pixels permuted", "accuracy lost (paired over seeds)"]
    claim.rows = [
        {
            "model": m if m == "MLP" else "article CNN",
            "parameters": f"{params[m]:,}",
            "images": pct(s[m]["images"]),
            "pixels permuted": pct(s[m]["pixels permuted"]),
            "accuracy lost (paired over seeds)": pct(cnn_drop if m == "article CNN" else mlp_drop),
        }
        for m in ("article CNN", "MLP")
    ]
    claim.numbers = {
        "parameters": params,
        "accuracy": s,
        "per_seed": acc,
        "cnn_drop": cnn_drop,
        "mlp_drop": mlp_drop,
        "drop_gap": drop_gap,
        "cnn_minus_mlp": _paired(acc["article CNN"]["images"], acc["MLP"]["images"]),
    }
    claim.figures = [
        figures.save_with_csv(
            figures.spatial(s, "test accuracy on images and on pixel-permuted images (mean ± sd over seeds)"),
            ctx.results,
            "spatial",
            [
                {"model": m, "images": k, "seed": i, "test_accuracy": a}
                for m, kinds in acc.items()
                for k, v in kinds.items()
                for i, a in enumerate(v)
            ],
        )
    ]


def decide_spatial(n: dict) -> tuple[str, str]:
    def beyond(d: dict) -> bool:  # a paired difference beyond twice its standard error
        return d["mean"] is not None and d["mean"] > 0 and d["mean"] > 2 * standard_error(d)

    uses_layout = beyond(n["cnn_drop"]) and beyond(n["drop_gap"])
    better = beyond(n["cnn_minus_mlp"])
    c, m, g = n["cnn_drop"], n["mlp_drop"], n["cnn_minus_mlp"]
    reason = (
        f"shuffling the pixels costs the CNN {c['mean'] * 100:.1f} ± {c['sd'] * 100:.1f} points and the MLP "
        f"{m['mean'] * 100:.1f} ± {m['sd'] * 100:.1f}; on the images the CNN is {g['mean'] * 100:+.1f} ± "
        f"{g['sd'] * 100:.1f} points against the MLP of its size"
    )
    if uses_layout and better:
        return SUPPORTED, reason
    if uses_layout:
        return CAVEAT, reason + " (the CNN uses the pixels' layout, but is not clearly better than the MLP)"
    return NOT_SUPPORTED, reason + " (the CNN does not clearly depend on the pixels' layout more than the MLP)"


SPATIAL_RULE = (
    "the CNN uses spatial information if shuffling the pixels lowers its accuracy, and lowers it more than the "
    "MLP's, each paired difference over seeds beyond twice its standard error; local features are handled well "
    "if on the images the CNN is more accurate than the MLP of about its size by the same test. Supported if "
    "both, supported with a caveat if only the first, not supported otherwise."
)


# ----------------------------------------------------------------------------------------------
# 2: pooling lowers the parameter count and makes the model more robust
# ----------------------------------------------------------------------------------------------
def run_pooling(ctx: Context, claim: Claim) -> None:
    b = ctx.budget
    ds = ctx.images()
    shape = tuple(ds.input_shape)
    summ = summarize(build_model_for(ModelConfig(name="article-cnn"), ds.spec, ds.num_outputs), shape)
    w = summ.without_pools or {}
    ks = (0, *b.shifts)
    shift_split = ds.test.subset(torch.arange(min(b.shift_test, len(ds.test))))
    curves: dict[str, list] = {"article CNN (2 max pools)": [], "same CNN without pools": [], STRIDED: []}
    params = {}
    for seed in ctx.seeds():
        for label, r in (
            ("article CNN (2 max pools)", ctx.article_cnn(seed)),
            ("same CNN without pools", ctx.train_image_model("no-pool", NO_POOL, seed)),
            (STRIDED, ctx.train_image_model("stride-2 CNN", None, seed, build=strided_cnn)),
        ):
            params[label] = r["parameters"]
            curves[label].append([shifted_accuracy(r["model"], shift_split, k) for k in ks])
        ctx.say(
            "  shifted test accuracy, seed "
            + f"{seed}: "
            + "; ".join(f"{lab}: " + ", ".join(f"{a:.3f}" for a in c[-1]) for lab, c in curves.items())
        )
    rows, drops = [], {}
    for label, per_seed in curves.items():
        row = {"model": label, "parameters": f"{params[label]:,}"}
        for i, k in enumerate(ks):
            row[f"shift {k} px"] = pct(stats([c[i] for c in per_seed]))
        d = [c[0] - sum(c[1:]) / len(b.shifts) for c in per_seed]  # accuracy lost, mean over the shifts
        drops[label] = d
        row["accuracy lost (mean of shifts)"] = pct(stats(d))
        rows.append(row)
    pooled, unpooled, strided = (drops[k] for k in curves)
    diff = [u - p for u, p in zip(unpooled, pooled, strict=True)]  # > 0: the pooled CNN loses less
    diff_strided = [s_ - p for s_, p in zip(strided, pooled, strict=True)]
    claim.experiment = (
        f"Parameters of the article's CNN with and without its two 2x2 max pools (`--model cnn "
        f"--channels 32,64`: the same convs and Dense head). Then train both ({_budget_text(ctx)}, equal epochs) "
        f"and measure the accuracy on the first {len(shift_split):,} test images with each moved {min(b.shifts)} to "
        f"{max(b.shifts)} pixels "
        f"(the mean over right, left, down and up; the border filled with background). The unpooled CNN has "
        f"{params['same CNN without pools'] / max(params['article CNN (2 max pools)'], 1):.0f}x the parameters, so "
        f"a control separates the max from the downsampling: the same two convs with stride 2 instead of the "
        f"pools (the maps shrink by sampling, without a max; {params[STRIDED]:,} parameters, near the article "
        f"CNN's), trained and shifted the same way."
    )
    claim.columns = ["model", "parameters", *[f"shift {k} px" for k in ks], "accuracy lost (mean of shifts)"]
    claim.rows = rows
    claim.numbers = {
        "parameters_with_pools": params["article CNN (2 max pools)"],
        "parameters_without_pools": params["same CNN without pools"],
        "summary_total_without_pools": w.get("total_parameters_without_pools"),
        "dense_inputs_with_pools": w.get("inputs_with_pools"),
        "dense_inputs_without_pools": w.get("inputs_without_pools"),
        "shifts": list(ks),
        "accuracy_by_shift": {k: [list(map(float, c)) for c in v] for k, v in curves.items()},
        "drop_with_pools": stats(pooled),
        "drop_without_pools": stats(unpooled),
        "drop_difference": stats(diff),
        "parameters_strided": params[STRIDED],
        "drop_strided": stats(strided),
        "drop_difference_strided": stats(diff_strided),
    }
    if w:
        claim.notes.append(
            f"`layerlab inspect summary` counts the same: the Dense layer takes {w['inputs_with_pools']:,} inputs "
            f"with the pools and would take {w['inputs_without_pools']:,} without them "
            f"({w['total_parameters_without_pools']:,} parameters in the whole model instead of "
            f"{summ.total_parameters:,})."
        )
    claim.figures = [
        figures.save_with_csv(
            figures.shift_curves(ks, curves, "test accuracy of images moved k pixels (mean over 4 directions)"),
            ctx.results,
            "pooling",
            _long_rows(ks, curves),
        )
    ]


def _long_rows(ks, curves: dict) -> list[dict]:
    return [
        {"model": label, "seed": s, "shift_px": k, "test_accuracy": c[i]}
        for label, per_seed in curves.items()
        for s, c in enumerate(per_seed)
        for i, k in enumerate(ks)
    ]


def decide_pooling(n: dict) -> tuple[str, str]:
    fewer = n["parameters_with_pools"] < n["parameters_without_pools"]

    def beyond(d: dict) -> bool:  # a paired difference beyond twice its standard error
        return d["mean"] is not None and d["mean"] > 0 and d["mean"] > 2 * standard_error(d)

    d = n["drop_difference"]
    robust = beyond(d)
    ratio = n["parameters_without_pools"] / max(n["parameters_with_pools"], 1)
    parts = [
        f"{'fewer' if fewer else 'not fewer'} parameters ({ratio:.1f}x as many without the pools)",
        f"{'more' if robust else 'not shown to be more'} robust to shifts than the unpooled CNN (which loses "
        f"{d['mean'] * 100:+.2f} ± {d['sd'] * 100:.2f} points more accuracy)",
    ]
    ds = n.get("drop_difference_strided")
    max_matters = ds is not None and beyond(ds)
    if ds is not None:
        parts.append(
            f"{'more' if max_matters else 'not shown to be more'} robust than the stride-2 control (which loses "
            f"{ds['mean'] * 100:+.2f} ± {ds['sd'] * 100:.2f} points more)"
        )
    reason = "; ".join(parts)
    if fewer and robust and (ds is None or max_matters):
        return SUPPORTED, reason
    if fewer or robust:
        if fewer and robust:
            reason += " (the downsampling, not the max, gives the robustness)"
        return CAVEAT, reason
    return NOT_SUPPORTED, reason


POOLING_RULE = (
    "three parts: fewer parameters (the article's CNN against the same CNN without pools); more robust (the "
    "accuracy it loses under shifts of 1 to 4 pixels, averaged, is smaller than the unpooled CNN's by more than "
    "twice the standard error of the paired difference over seeds); and the max matters (it loses less than the "
    "stride-2 control, by the same test). Supported if all three hold; supported with a caveat if one or two do; "
    "not supported if neither of the first two does."
)


# ----------------------------------------------------------------------------------------------
# 6.1.2: a fixed input size, 2-D only
# ----------------------------------------------------------------------------------------------
def run_input_size(ctx: Context, claim: Claim) -> None:
    b = ctx.budget
    ds = ctx.images()
    size = b.frame
    big = framed(ds.test.x, size)
    article = ctx.article_cnn(0)["model"]
    try:
        predict_logits(article, Split(big[:8], ds.test.y[:8]), device=torch.device("cpu"))
        refused, message = False, ""
    except (RuntimeError, ValueError, LayerlabError) as e:
        refused, message = True, str(e).splitlines()[0]
    with torch.no_grad():
        wants = article.classifier.in_features
        gets = int(article.features(big[:1]).numel())
    ctx.say(f"  article CNN on {size}x{size}: {'refused' if refused else 'accepted'} ({message})")
    seq = images_as_sequences(ds, "rows")
    vol = clip_dataset(ds, b.clip_train)
    frame0 = first_frames(vol)
    results: dict[str, list] = {"gp28": [], "gp_big": [], "cnn1d": [], "cnn3d": [], "frame2d": []}
    for seed in ctx.seeds():
        results["frame2d"].append(ctx.train_image_model("2-D CNN, one frame", CNN_3D, seed, ds=frame0)["accuracy"])
        small = ctx.train_image_model("global-pool CNN", GLOBAL, seed, lr=SMALL_LR)
        results["gp28"].append(small["accuracy"])
        results["gp_big"].append(accuracy(small["model"], big, ds.test.y))
        results["cnn1d"].append(ctx.train_image_model("1-D CNN", CNN_1D, seed, ds=seq)["accuracy"])
        results["cnn3d"].append(ctx.train_image_model("3-D CNN", CNN_3D, seed, ds=vol)["accuracy"])
    s = {k: stats(v) for k, v in results.items()}
    chance = 1 / ds.num_outputs
    if s["gp28"]["mean"] is not None and s["gp_big"]["mean"] is not None:
        drop = s["gp28"]["mean"] - s["gp_big"]["mean"]
        if drop > 0.02:
            claim.notes.append(
                f"The global-pool CNN takes the {size}x{size} images but loses {drop * 100:.1f} points on them: it "
                f"was trained at 28x28 only, where its deeper layers saw zero padding close around the garment, "
                f"not a wider background. Taking any size is not being indifferent to it; training on several "
                f"sizes is the usual remedy."
            )
    claim.experiment = (
        f"The limit: give the article's CNN, trained on 28x28 images, the same test images in a {size}x{size} "
        f"frame. Lifted: a CNN whose head is a global max pool ({GLOBAL_FLAGS}, lr {SMALL_LR:g}), trained on 28x28 and "
        f"tested on both sizes; a 1-D CNN (`--model cnn --channels 32,M,64,M` on the images read as 28 "
        f"steps of 28 features, `--sequence rows`); a 3-D CNN (`--channels 16,M,32,M --padding same`) on "
        f"clips of {CLIP_FRAMES} frames (1, {CLIP_FRAMES}, 28, 28) in which the garment moves one pixel a "
        f"frame ({min(b.clip_train, len(ds.train)):,} training clips). Control for the 3-D claim: the same "
        f"layers as a 2-D CNN on the first frame of each clip alone; where it does as well, the clips' task "
        f"does not need the third dimension. {_budget_text(ctx)}."
    )
    claim.columns = ["model", "input", "result"]
    art = ctx.article_cnn(0)["accuracy"]
    claim.rows = [
        {"model": "article CNN (Flatten + Dense)", "input": "28x28 images", "result": f"{art * 100:.1f}% (seed 0)"},
        {
            "model": "article CNN (Flatten + Dense)",
            "input": f"{size}x{size} images",
            "result": f"refused: the Dense layer takes {wants:,} inputs, the image gives {gets:,}"
            if refused
            else "accepted",
        },
        {"model": "CNN with a global max pool", "input": "28x28 images", "result": pct(s["gp28"])},
        {"model": "CNN with a global max pool", "input": f"{size}x{size} images", "result": pct(s["gp_big"])},
        {"model": "1-D CNN", "input": "sequences (28 steps x 28)", "result": pct(s["cnn1d"])},
        {"model": "3-D CNN", "input": f"clips (1 x {CLIP_FRAMES} x 28 x 28)", "result": pct(s["cnn3d"])},
        {"model": "2-D CNN (control)", "input": "the clips' first frames (1 x 28 x 28)", "result": pct(s["frame2d"])},
    ]
    claim.numbers = {
        "refused": refused,
        "error": message,
        "dense_inputs": wants,
        "inputs_at_frame": gets,
        "frame": size,
        "chance": chance,
        "global_pool_28": s["gp28"],
        "global_pool_frame": s["gp_big"],
        "cnn_1d": s["cnn1d"],
        "cnn_3d": s["cnn3d"],
        "single_frame_2d": s["frame2d"],
    }
    claim.figures = [
        figures.save_with_csv(
            figures.input_sizes(
                ds.test.x[0, 0], big[0, 0], clips(ds.test, 1).x[0, 0], seq.test.x[0], claim.rows[2:], chance
            ),
            ctx.results,
            "input_size",
            claim.rows,
        )
    ]


def decide_input_size(n: dict) -> tuple[str, str]:
    lifted = {
        "global pooling at the larger size": n["global_pool_frame"]["mean"],
        "1-D convolution": n["cnn_1d"]["mean"],
        "3-D convolution": n["cnn_3d"]["mean"],
    }
    bar = 2 * n["chance"]
    ok = [k for k, v in lifted.items() if v is not None and v >= bar]
    if not n["refused"]:
        return NOT_SUPPORTED, f"the article's CNN accepted a {n['frame']}x{n['frame']} input"
    frame = n.get("single_frame_2d")
    control = ""
    if frame is not None and frame["mean"] is not None and n["cnn_3d"]["mean"] is not None:
        needed = clearly_below(frame, n["cnn_3d"])
        control = (
            f"; the 2-D control on one frame reaches {frame['mean'] * 100:.1f}% against the 3-D CNN's "
            f"{n['cnn_3d']['mean'] * 100:.1f}%: "
            + (
                "the third dimension helps on these clips"
                if needed
                else "these clips do not need the third dimension, so the 3-D row shows that 3-D convolution runs "
                "on volumes, not that volumes need it"
            )
        )
    if len(ok) == len(lifted):
        return CAVEAT, (
            "the article's Flatten + Dense CNN does refuse another size, but the limit belongs to that head and "
            f"to 2-D layers, not to convolution: {', '.join(ok)} each reach at least twice chance "
            f"({bar * 100:.0f}%){control}"
        )
    return SUPPORTED, (
        f"the article's CNN refuses another size and not every way around it worked here "
        f"({', '.join(k for k in lifted if k not in ok)} below {bar * 100:.0f}%)"
    )


INPUT_SIZE_RULE = (
    "not supported if the article's CNN accepts the larger input; otherwise supported with a caveat when the "
    "global-pool CNN at the larger size, the 1-D CNN and the 3-D CNN each reach at least twice chance accuracy "
    "(the limit is real but lifted), and supported when one of them does not. The 2-D CNN on one frame of each "
    "clip is the 3-D row's control: reported, it does not change the verdict."
)


# ----------------------------------------------------------------------------------------------
# 5: fewer parameters, faster training
# ----------------------------------------------------------------------------------------------
TOLERANCE = 0.005  # half a point of accuracy


def run_efficiency(ctx: Context, claim: Claim) -> None:
    ds = ctx.images()
    shape = tuple(ds.input_shape)
    n_train = len(ds.train)
    models = {
        ARTICLE: (ModelConfig(name="article-cnn"), 1e-3, "--model article-cnn"),
        RECIPE_LABEL: (RECIPE, SMALL_LR, f"{RECIPE_FLAGS} --lr {SMALL_LR:g}"),
        "narrow CNN": (NARROW, SMALL_LR, f"{NARROW_FLAGS} --lr {SMALL_LR:g}"),
        "global-pool CNN": (GLOBAL, SMALL_LR, f"{GLOBAL_FLAGS} --lr {SMALL_LR:g}"),
    }
    runs = {
        label: [ctx.train_image_model(label, cfg, s, lr=lr) for s in ctx.seeds()]
        for label, (cfg, lr, _) in models.items()
    }
    target = stats([r["accuracy"] for r in runs[ARTICLE]])["mean"] - TOLERANCE
    rows, numbers = [], {"target": target, "tolerance": TOLERANCE, "train_images": n_train, "models": {}}
    for label, per_seed in runs.items():
        cfg, _, flags = models[label]
        summ = summarize(build_model_for(cfg, ds.spec, ds.num_outputs), shape)
        acc = stats([r["accuracy"] for r in per_seed])
        per_epoch = stats([r["seconds"] / len(r["history"]) for r in per_seed])
        # a seed that never reaches the target counts its whole training: a lower bound on its time
        reach = [_time_to(r["history"], target) for r in per_seed]
        censored = [t if t is not None else r["seconds"] for t, r in zip(reach, per_seed, strict=True)]
        epochs = [_epochs_to(r["history"], target) for r in per_seed]
        compute = [
            summ.total_flops * n_train * (e if e is not None else len(r["history"]))
            for e, r in zip(epochs, per_seed, strict=True)
        ]
        got = [t for t in reach if t is not None]
        numbers["models"][label] = {
            "parameters": per_seed[0]["parameters"],
            "flops": summ.total_flops,
            "accuracy": acc,
            "seconds_per_epoch": per_epoch,
            "seconds_to_target": stats(censored),
            "seconds_to_target_per_seed": reach,
            "flops_to_target": stats(compute),
            "reached": len(got),
            "seeds": len(per_seed),
        }
        rows.append(
            {
                "model": label,
                "flags": f"`{flags}`",
                "parameters": f"{per_seed[0]['parameters']:,}",
                "FLOPs per image": f"{summ.total_flops:,}",
                "test accuracy": pct(acc),
                "s per epoch": pm(per_epoch, 1),
                "s to target": pm(stats(censored), 1) + f" ({len(got)}/{len(per_seed)} reached)",
                "forward GFLOPs to target": pm(stats([c / 1e9 for c in compute]), 1),
            }
        )
    claim.experiment = (
        f"The article's CNN against two smaller ones under one budget ({_budget_text(ctx)}; the smaller ones with "
        f"batch normalisation at lr {SMALL_LR:g}, an optimisation the article's recipe does not use): a narrower "
        f"CNN that keeps Flatten + Dense, and one in which a global max pool replaces Flatten and the large Dense "
        f"layer. The recipe is a confound, so the article's own layers also train with it (`{RECIPE_FLAGS} --lr "
        f"{SMALL_LR:g}`): a smaller model is faster because it is smaller only if it beats that control too. "
        f"Target: the article CNN's mean final test accuracy less {TOLERANCE * 100:.1f} points "
        f"({target * 100:.1f}%); time to target is the training seconds (evaluation excluded, every model warmed "
        f"up first) until the first epoch at or above it, a seed that never reaches it counting all its training "
        f"(a lower bound). Compute to target is the forward FLOPs per image (`layerlab inspect summary`'s counter) "
        f"times the training images seen until that epoch: it does not depend on the machine. Seconds on a "
        f"shared CPU are noisy; the rule compares them with their spread."
    )
    claim.columns = list(rows[0])
    claim.rows = rows
    claim.numbers = numbers
    claim.figures = [
        figures.save_with_csv(
            figures.time_to_accuracy(runs, target, "test accuracy against training time (each line a seed)"),
            ctx.results,
            "efficiency",
            [
                {"model": label, "seed": s, "epoch": h["epoch"], "train_seconds": h["train_seconds"], **_acc(h)}
                for label, per_seed in runs.items()
                for s, r in enumerate(per_seed)
                for h in r["history"]
            ],
        )
    ]


def _acc(h: dict) -> dict:
    return {"test_accuracy": h["test_accuracy"]}


def _time_to(history: list[dict], target: float) -> float | None:
    """Training seconds until the first epoch whose test accuracy is at least ``target``."""
    t = 0.0
    for h in history:
        t += h["train_seconds"]
        if h["test_accuracy"] >= target:
            return t
    return None


def _epochs_to(history: list[dict], target: float) -> int | None:
    """Epochs until the first whose test accuracy is at least ``target``."""
    return next((i for i, h in enumerate(history, 1) if h["test_accuracy"] >= target), None)


def decide_efficiency(n: dict) -> tuple[str, str]:
    models = n["models"]
    a = models[ARTICLE]
    recipe = models.get(RECIPE_LABEL)

    def judged(label: str) -> dict:
        s = models[label]
        d_acc, bound = difference(s["accuracy"], a["accuracy"])
        as_accurate = s["accuracy"]["mean"] is not None and not clearly_below(s["accuracy"], a["accuracy"])
        all_reach = s["reached"] == s["seeds"]
        faster = all_reach and clearly_below(s["seconds_to_target"], a["seconds_to_target"])
        faster_than_recipe = recipe is None or (
            all_reach and clearly_below(s["seconds_to_target"], recipe["seconds_to_target"])
        )
        cheaper = "flops_to_target" in s and all_reach and clearly_below(s["flops_to_target"], a["flops_to_target"])
        text = (
            f"{label}: {s['parameters']:,} parameters and {s['flops']:,} FLOPs per image against "
            f"{a['parameters']:,} and {a['flops']:,}, accuracy {d_acc * 100:+.1f} points (bound {bound * 100:.1f}), "
            f"{s['seconds_to_target']['mean']:.1f} s to the target against {a['seconds_to_target']['mean']:.1f} s "
            f"({'clearly sooner' if faster else 'not clearly sooner'}"
            + (
                f"; {'also clearly' if faster_than_recipe else 'not clearly'} sooner than the article's layers "
                f"with its recipe, {recipe['seconds_to_target']['mean']:.1f} s"
                if recipe is not None
                else ""
            )
            + f"), {'less' if cheaper else 'not clearly less'} compute to the target"
        )
        return {
            "fewer": s["parameters"] < a["parameters"] and s["flops"] < a["flops"],
            "accurate": as_accurate,
            "faster": faster and faster_than_recipe,
            "faster_confounded": faster and not faster_than_recipe,
            "text": text,
        }

    results = {label: judged(label) for label in models if label not in (ARTICLE, RECIPE_LABEL)}
    reason = "; ".join(r["text"] for r in results.values())
    if any(r["fewer"] and r["accurate"] and r["faster"] for r in results.values()):
        return SUPPORTED, reason
    if any(r["fewer"] and r["accurate"] for r in results.values()):
        why = (
            "sooner, but the recipe rather than the size may explain it"
            if any(r["faster_confounded"] for r in results.values())
            else "not clearly sooner"
        )
        return CAVEAT, f"{reason} (fewer parameters and FLOPs at equal accuracy; {why})"
    return NOT_SUPPORTED, reason + " (no smaller model matched the article CNN's accuracy)"


EFFICIENCY_RULE = (
    "three parts, each judged with the seeds' spread (a difference counts when it is beyond twice the standard "
    "error of the difference of the means): a smaller model has fewer parameters and FLOPs per image; it is as "
    "accurate (its mean accuracy not clearly below the article CNN's); and it trains faster (every seed reaches "
    "the target, and its mean time to the target is clearly below both the article CNN's and that of the "
    "article's layers trained with the smaller models' recipe). Supported if one smaller model does all three; "
    "supported with a caveat if one is smaller and as accurate but not clearly faster than both; not supported "
    "if no smaller model is as accurate."
)
