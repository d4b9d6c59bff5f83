"""Section 2's "each kernel learns to recognise a particular pattern", measured on the article's CNN.

For each kernel of a conv layer, the test images that excite it most (one patch per image: the input
patch under its strongest response) are its *top patches*. A kernel recognises a particular pattern
if its top patches resemble each other (*consistency*: the mean pairwise cosine similarity of the
mean-centred patches, against the same for random patches) and are told apart from the other
kernels' (*identification*: half of each kernel's top patches, held out, are matched to the nearest
kernel's mean of the other half; against chance, one over the number of kernels). It is *learnt* if
the trained kernels do better than the same network at its initialisation: a random linear filter
already answers most to the patches that look like its weights, so the untrained network is the
control that separates what training did from what the architecture does anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ModelConfig
from ..engine import seed_everything
from ..rundir import build_model_for
from . import figures
from .base import CAVEAT, NOT_SUPPORTED, SUPPORTED, Claim, Context, pm, standard_error, stats

#: top patches per kernel (one per image)
TOP = 40
#: an input patch counts only if its pixels' standard deviation is at least this (pixels in [0, 1]): a
#: flat patch (Fashion-MNIST's empty background) has no pattern, and its centred cosine is undefined
MIN_STD = 0.05
#: the layers measured: name, the input patch under one response (side, stride between responses)
LAYERS = ("conv1", "conv2")
GEOMETRY = {"conv1": (3, 1), "conv2": (8, 2)}


# ----------------------------------------------------------------------------------------------
# The measure
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def responses(model: torch.nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The article CNN's pre-activation responses of ``layer`` to images ``x`` ``(N, 1, 28, 28)``:
    conv1 ``(N, 32, 26, 26)``, each over a 3x3 input patch; conv2 ``(N, 64, 11, 11)``, each over the 8x8
    input patch (stride 2) its 3x3 window of pooled conv1 maps sees."""
    f = cast(torch.nn.Sequential, model.features)  # Conv > ReLU > Pool > Conv > ReLU > Pool
    a1 = f[0](x)
    if layer == "conv1":
        return a1
    return f[3](f[2](torch.relu(a1)))


@torch.no_grad()
def strongest(resp: torch.Tensor, x: torch.Tensor, size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and kernel ``(N, C)``: the strongest response among the positions whose input patch
    (``size`` square, ``stride`` apart) has contrast (pixel sd at least :data:`MIN_STD`), and where it
    is (the flat index of the position; -inf and any position when no patch of the image has contrast)."""
    h, w = resp.shape[-2:]
    mean = F.avg_pool2d(x, size, stride)
    sd = (F.avg_pool2d(x * x, size, stride) - mean * mean).clamp_min(0).mean(1).sqrt()  # (N, H, W)
    if tuple(sd.shape[-2:]) != (h, w):
        raise ValueError(f"patches of {size} at stride {stride} give {tuple(sd.shape[-2:])} positions, not {(h, w)}")
    return resp.masked_fill((sd < MIN_STD)[:, None], -torch.inf).flatten(2).max(2)


@torch.no_grad()
def top_patches(
    respond: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    size: int,
    stride: int,
    k: int = TOP,
    batch: int = 500,
) -> torch.Tensor:
    """Each kernel's ``k`` top patches ``(C, k, C_in * size * size)``, strongest first, for a layer whose
    responses to images ``x`` are ``respond(x)`` ``(N, C, H, W)``: for each image the input patch under
    the kernel's strongest response among the patches with contrast (:func:`strongest`), then the ``k``
    images whose strongest response is highest. One patch per image, so the overlapping neighbours of
    one strong patch do not count as many."""
    parts = [strongest(respond(x[i : i + batch]), x[i : i + batch], size, stride) for i in range(0, len(x), batch)]
    best, where = torch.cat([b for b, _ in parts]), torch.cat([p for _, p in parts])  # (N, C)
    w = (x.shape[-1] - size) // stride + 1
    img = best.topk(min(k, len(x)), dim=0).indices  # (k, C)
    pos = where.gather(0, img)  # (k, C)
    tiles = x.unfold(2, size, stride).unfold(3, size, stride)  # (N, C_in, H, W, size, size)
    out = tiles[img, :, pos // w, pos % w]  # (k, C, C_in, size, size)
    return out.flatten(2).transpose(0, 1).contiguous()  # (C, k, D)


def _unit(p: torch.Tensor) -> torch.Tensor:
    """Patches mean-centred and scaled to unit length (a flat patch stays 0)."""
    p = p - p.mean(-1, keepdim=True)
    return p / p.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def consistency(top: torch.Tensor) -> torch.Tensor:
    """The mean pairwise cosine similarity of each set's mean-centred patches ``(C, k, D) -> (C,)``."""
    p = _unit(top.double())
    k = p.shape[1]
    g = p @ p.transpose(1, 2)  # (C, k, k)
    return (g.sum((1, 2)) - g.diagonal(dim1=1, dim2=2).sum(1)) / (k * (k - 1))


def identification(top: torch.Tensor) -> torch.Tensor:
    """Per kernel ``(C,)``: the fraction of its held-out top patches (ranks 2, 4, ...) whose nearest
    kernel mean (by cosine; each kernel's mean of its other top patches, ranks 1, 3, ..., centred) is
    its own. Chance is ``1 / C``; a tie goes to the lower kernel, so identical kernels score chance."""
    p = _unit(top.double())
    means = _unit(p[:, 0::2].mean(1))  # (C, D)
    held = p[:, 1::2]  # (C, k/2, D)
    nearest = (held @ means.T).argmax(-1)  # (C, k/2)
    return (nearest == torch.arange(len(p))[:, None]).double().mean(1)


def random_consistency(x: torch.Tensor, size: int, stride: int, k: int, sets: int, seed: int) -> float:
    """:func:`consistency` of ``sets`` sets of random patches with contrast, drawn as top patches are
    (``k`` different images, one patch each, here at a random position among the image's patches with
    contrast), the mean over sets: what top patches are compared with."""
    tiles = x.unfold(2, size, stride).unfold(3, size, stride)  # (N, C_in, H, W, size, size)
    n, _, h, w = tiles.shape[:4]
    flat = tiles.permute(0, 2, 3, 1, 4, 5).reshape(n, h * w, -1)  # (N, H*W, D)
    ok = flat.std(-1, unbiased=False) >= MIN_STD  # (N, H*W)
    images = torch.nonzero(ok.any(1)).flatten()
    g = torch.Generator().manual_seed(seed)
    picked = []
    for _ in range(sets):
        img = images[torch.randperm(len(images), generator=g)[: min(k, len(images))]]
        pos = (torch.rand(len(img), h * w, generator=g) * ok[img]).argmax(1)  # a random position with contrast
        picked.append(flat[img, pos])
    return float(consistency(torch.stack(picked)).mean())


def kernel_cosines(trained: torch.Tensor, initial: torch.Tensor) -> np.ndarray:
    """Each kernel's cosine between its trained and its initial weights ``(C,)``."""
    a, b = trained.detach().flatten(1).double(), initial.detach().flatten(1).double()
    return (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1).numpy()


def measure(
    model: torch.nn.Module, x: torch.Tensor, layer: str, k: int = TOP
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One network's ``layer`` on images ``x``: its kernels' top patches, consistency and identification."""
    size, stride = GEOMETRY[layer]
    top = top_patches(lambda xb: responses(model, xb, layer), x, size, stride, k)
    return top, consistency(top), identification(top)


# ----------------------------------------------------------------------------------------------
# The claim
# ----------------------------------------------------------------------------------------------
def _conv(model: torch.nn.Module, layer: str) -> torch.Tensor:
    return cast(torch.nn.Conv2d, cast(torch.nn.Sequential, model.features)[0 if layer == "conv1" else 3]).weight


def run_kernels(ctx: Context, claim: Claim) -> None:
    ds = ctx.images()
    x = ds.test.x
    per_seed: dict = {
        layer: {
            **{arm: {"consistency": [], "identification": []} for arm in ("trained", "untrained")},
            "random": [],
            "moved": [],
            "moved_min": [],
        }
        for layer in LAYERS
    }
    shown: dict = {}
    for seed in ctx.seeds():
        trained = ctx.article_cnn(seed)["model"].eval()
        seed_everything(seed)  # the same network before training
        fresh = build_model_for(ModelConfig(name="article-cnn"), ds.spec, ds.num_outputs).eval()
        for layer in LAYERS:
            size, stride = GEOMETRY[layer]
            out = per_seed[layer]
            for arm, model in (("trained", trained), ("untrained", fresh)):
                top, cons, ident = measure(model, x, layer)
                out[arm]["consistency"].append(float(cons.mean()))
                out[arm]["identification"].append(float(ident.mean()))
                if seed == 0 and layer == "conv1":
                    shown[arm] = (_conv(model, layer).detach().numpy()[:, 0], top.mean(1).numpy())
            n_kernels = _conv(trained, layer).shape[0]
            out["random"].append(random_consistency(x, size, stride, TOP, n_kernels, seed))
            cos = kernel_cosines(_conv(trained, layer), _conv(fresh, layer))
            out["moved"].append(float(cos.mean()))
            out["moved_min"].append(float(cos.min()))
            ctx.say(
                f"  {layer}, seed {seed}: consistency {out['trained']['consistency'][-1]:.3f} trained, "
                f"{out['untrained']['consistency'][-1]:.3f} untrained, {out['random'][-1]:.3f} random patches; "
                f"identification {out['trained']['identification'][-1]:.3f} trained, "
                f"{out['untrained']['identification'][-1]:.3f} untrained (chance {1 / n_kernels:.3f}); "
                f"cosine to the initial weights {out['moved'][-1]:.3f}"
            )
    layers: dict = {}
    for layer in LAYERS:
        v = per_seed[layer]
        n_kernels = _conv(ctx.article_cnn(0)["model"], layer).shape[0]
        tr, un = v["trained"], v["untrained"]

        def paired(a: list[float], b: list[float]) -> dict:
            return stats([p - q for p, q in zip(a, b, strict=True)])

        layers[layer] = {
            "kernels": n_kernels,
            "chance": 1 / n_kernels,
            "trained": {m: stats(tr[m]) for m in tr},
            "untrained": {m: stats(un[m]) for m in un},
            "random": stats(v["random"]),
            "moved": stats(v["moved"]),
            "moved_min": stats(v["moved_min"]),
            # the paired (per seed) differences the rule reads
            "identification_above_chance": stats([a - 1 / n_kernels for a in tr["identification"]]),
            "consistency_above_random": paired(tr["consistency"], v["random"]),
            "consistency_gain": paired(tr["consistency"], un["consistency"]),
            "identification_gain": paired(tr["identification"], un["identification"]),
        }
    claim.numbers = {"layers": layers, "per_seed": per_seed, "top": TOP, "min_std": MIN_STD, "images": len(x)}
    b = ctx.budget
    n_seeds = b.seeds
    seeds = f"{n_seeds} seeds, mean ± sd over seeds" if n_seeds > 1 else "1 seed"
    claim.experiment = (
        f"The article's CNN as trained for the other image claims ({ctx.image_source}: the first "
        f"{b.image_train:,} training images, {b.image_epochs} epoch{'s' if b.image_epochs != 1 else ''} of Adam; "
        f"{seeds}), and the same network at its initialisation (the same seed, before training) as the control. "
        f"On the {len(x):,} test images, each kernel's top patches are the {TOP} images that excite it most, one "
        f"patch per image: the input patch under its strongest response (conv1: the 3x3 pixels under a unit; "
        f"conv2: the 8x8 pixels its unit sees through conv1 and the pool, compared in pixel space), among patches "
        f"with contrast (pixel sd at least {MIN_STD}). *Consistency*: the mean pairwise cosine similarity of a "
        f"kernel's mean-centred top patches (the pattern's shape, not its brightness), against sets of {TOP} random "
        f"patches with contrast. *Identification*: each kernel's top patches split by rank (odd ranks give its "
        f"mean, even ranks are held out); the fraction of held-out patches whose nearest kernel mean (cosine) is "
        f"their own kernel's, against chance (one over the number of kernels). The untrained network matters "
        f"because a random linear filter's top patches already resemble its weights: only a gain over it is "
        f"learnt. How far each kernel moved: the cosine between its trained and initial weights."
    )
    claim.columns = [
        "layer",
        "network",
        "top-patch consistency",
        "random patches",
        "identification (held out)",
        "chance",
        "cosine to the initial weights",
    ]
    claim.rows = []
    for layer in LAYERS:
        L = layers[layer]
        for arm in ("trained", "untrained"):
            claim.rows.append(
                {
                    "layer": f"{layer} ({L['kernels']} kernels)",
                    "network": arm,
                    "top-patch consistency": pm(L[arm]["consistency"], 3),
                    "random patches": pm(L["random"], 3),
                    "identification (held out)": pm(L[arm]["identification"], 3),
                    "chance": f"{L['chance']:.3f}",
                    "cosine to the initial weights": (
                        f"{pm(L['moved'], 3)} (lowest kernel {pm(L['moved_min'], 3)})" if arm == "trained" else "1"
                    ),
                }
            )
    csv = [
        {
            "layer": layer,
            "seed": i,
            "network": arm,
            "consistency": per_seed[layer][arm]["consistency"][i],
            "identification": per_seed[layer][arm]["identification"][i],
            "random_consistency": per_seed[layer]["random"][i],
            "chance": layers[layer]["chance"],
            "cosine_to_initial": per_seed[layer]["moved"][i] if arm == "trained" else 1.0,
        }
        for layer in LAYERS
        for arm in ("trained", "untrained")
        for i in range(len(per_seed[layer]["random"]))
    ]
    claim.figures = [
        figures.save_with_csv(
            figures.kernel_patterns(shown, layers, TOP, "each conv1 kernel and the mean of its top patches (seed 0)"),
            ctx.results,
            "kernels",
            csv,
        )
    ]
    claim.notes.append(
        "conv2's top patches are compared as pixels, though its units see them through conv1 and a max pool, which "
        "forgives a shift of a pixel: two patches a conv2 kernel treats alike can differ as pixels, so its "
        "numbers may understate how alike its patterns are, for the trained and the untrained network alike."
    )
    if ctx.budget.seeds < 2:
        claim.notes.append("one seed: no spread, so every difference with the right sign counts as clear.")


def _beyond(d: dict) -> bool:
    """A paired difference whose mean is positive and beyond twice its standard error."""
    return d["mean"] is not None and d["mean"] > 0 and d["mean"] > 2 * standard_error(d)


def _negated(d: dict) -> dict:
    return {**d, "mean": None if d["mean"] is None else -d["mean"]}


def decide_kernels(n: dict) -> tuple[str, str]:
    parts, not_particular, not_learnt = [], [], []
    for layer, L in n["layers"].items():
        tr, un = L["trained"], L["untrained"]
        parts.append(
            f"{layer}: identification {tr['identification']['mean']:.2f} (chance {L['chance']:.3f}, untrained "
            f"{un['identification']['mean']:.2f}), consistency {tr['consistency']['mean']:.2f} against "
            f"{L['random']['mean']:.2f} for random patches and {un['consistency']['mean']:.2f} untrained"
        )
        if not (_beyond(L["identification_above_chance"]) and _beyond(L["consistency_above_random"])):
            not_particular.append(layer)
            continue
        if not _beyond(L["consistency_gain"]):
            not_learnt.append(
                f"{layer}'s top patches are not clearly more alike than at initialisation (that selectivity is a "
                f"random linear filter's, the architecture's, not learnt)"
            )
        if _beyond(_negated(L["identification_gain"])):
            not_learnt.append(
                f"{layer}'s kernels are told apart clearly less often than at initialisation (their distinctness "
                f"comes from the random initialisation, and training made them more alike)"
            )
    reason = "; ".join(parts)
    if not_particular:
        return NOT_SUPPORTED, reason + f" ({', '.join(not_particular)}: no clearly particular pattern)"
    if not_learnt:
        return CAVEAT, reason + f". Each kernel answers to a particular pattern, but {'; '.join(not_learnt)}"
    return SUPPORTED, reason


KERNELS_RULE = (
    "for each layer measured (conv1, conv2), its kernels recognise particular patterns if the trained kernels' "
    "identification accuracy is above chance and their top-patch consistency is above random patches'; the "
    "patterns are learnt if that consistency is also above the same network's at initialisation and the "
    "identification accuracy is not clearly below the initialisation's; each comparison a paired difference over seeds "
    "beyond twice its standard error. Supported if particular and learnt in every "
    "layer; supported with a caveat if particular in every layer but not clearly learnt in some (the "
    "selectivity is then the architecture's, not learnt); not supported otherwise."
)
