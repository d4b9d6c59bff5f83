"""The article's claims about recurrent networks (3.2.3, 6.2.1, 6.2.2): the vanishing gradient of
the tanh RNN and the three remedies the FAQ names (deeper networks, residual recurrent connections,
LSTM and GRU), on the adding problem, the copy task and a character model. ``run(ctx, claim)``
fills the claim's table and raw numbers, ``decide(numbers)`` gives the verdict by the stated rule.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..choices import CELLS
from ..config import ModelConfig, TrainConfig
from ..data import load_dataset
from ..engine import fit, seed_everything
from ..errors import DataError, TrainingError
from ..rundir import build_model_for
from . import figures
from .base import CAVEAT, NOT_SUPPORTED, SUPPORTED, Claim, Context, geomean, pm, sig, stats

BASELINE_MSE = 1 / 6  # always answering 1, the target's mean, on the adding problem
CHANCE_COPY = 1 / 8  # guessing one of the 8 symbols on the copy task
CELL_NAMES = {"rnn": "tanh RNN", "lstm": "LSTM", "gru": "GRU", "residual": "residual RNN"}

#: The character model's corpus where no --text is given: the licence texts every Debian system
#: keeps (base-files), English prose of ~140 KB that is the same on every such machine.
LICENSE_DIR = Path("/usr/share/common-licenses")
LICENSES = ("GPL-3", "GPL-2", "LGPL-2.1", "Apache-2.0", "MPL-2.0", "GFDL-1.3")


def _budget_text(ctx: Context, task: str = "adding") -> str:
    b = ctx.budget
    if task == "adding":
        n, epochs, batch, lr = b.adding_train, b.adding_epochs, b.adding_batch, b.adding_lr
    else:
        n, epochs, batch, lr = b.copy_train, b.copy_epochs, b.copy_batch, b.copy_lr
    seeds = f"{b.seeds} seeds (each its own data and initialisation; mean ± sd)" if b.seeds > 1 else "1 seed"
    return (
        f"hidden {b.hidden}, {n:,} training and {b.adding_test:,} test sequences, "
        f"{epochs} epoch{'s' if epochs != 1 else ''} of batch {batch} "
        f"({epochs * math.ceil(n / batch):,} steps), Adam lr {lr:g}, gradients clipped to norm {b.clip:g}, {seeds}"
    )


def _mse_stats(runs: list[dict]) -> dict:
    return stats([r["final"] for r in runs])


# ----------------------------------------------------------------------------------------------
# 3.2.3 and 6.2.1: the tanh RNN's gradient vanishes, and training stalls
# ----------------------------------------------------------------------------------------------
def run_vanishing(ctx: Context, claim: Claim) -> None:
    b = ctx.budget
    per_t: dict[int, dict[str, Any]] = {}
    rows: list = []
    for T in b.lengths:
        runs = [ctx.recurrent("adding", "rnn", T, s) for s in ctx.seeds()]
        d_init, d_tr = stats([r["decay_init"] for r in runs]), stats([r["decay_trained"] for r in runs])
        reach_i, reach_t = geomean([r["reach_init"] for r in runs]), geomean([r["reach_trained"] for r in runs])
        mse = _mse_stats(runs)
        per_t[T] = {
            "decay_init": d_init,
            "decay_trained": d_tr,
            "reach_init": reach_i,
            "reach_trained": reach_t,
            "mse": mse,
            "explained": 1 - mse["mean"] / BASELINE_MSE if mse["mean"] is not None else None,
        }
        rows.append(
            {
                "T": T,
                "factor per step of ||dL/dh_t||, init": pm(d_init, 4),
                "factor per step, trained": pm(d_tr, 4),
                "||dL/dh_1|| / ||dL/dh_T||, init": sig(reach_i),
                "||dL/dh_1|| / ||dL/dh_T||, trained": sig(reach_t),
                "test MSE": pm(mse, 4),
                "variance explained": f"{per_t[T]['explained'] * 100:.0f}%" if mse["mean"] is not None else "n/a",
            }
        )
    claim.experiment = (
        f"The article's tanh RNN (`--model rnn`) on the adding problem at T = {', '.join(map(str, b.lengths))} "
        f"({_budget_text(ctx)}). Before and after training, `layerlab.inspect.gradflow` measures ||dL/dh_t|| at "
        f"every step t on {b.gradflow_samples} test sequences (the loss reads only the last step, so everything "
        f"that reaches h_t came back through the recurrence) and fits a factor per step back in time. The "
        f"consequence: the test MSE against the {BASELINE_MSE:.3f} of always answering 1 (the mean); "
        f"'variance explained' is 1 - MSE/0.167."
    )
    claim.columns = list(rows[0])
    claim.rows = rows
    claim.numbers = {"baseline_mse": BASELINE_MSE, "lengths": list(b.lengths), "per_length": per_t}
    first = {T: ctx.recurrent("adding", "rnn", T, 0) for T in b.lengths}
    claim.figures = [
        figures.save_with_csv(
            figures.vanishing(first, BASELINE_MSE, {T: v["mse"] for T, v in per_t.items()}),
            ctx.results,
            "vanishing",
            [
                {"T": T, "weights": w, "t": t + 1, "grad_norm": float(g)}
                for T, r in first.items()
                for w, curve in (("init", r["grad_init"]), ("trained", r["grad_trained"]))
                if curve is not None
                for t, g in enumerate(curve)
            ],
        )
    ]


def decide_vanishing(n: dict) -> tuple[str, str]:
    lengths = n["lengths"]
    per = {int(k): v for k, v in n["per_length"].items()}
    longest = per[max(lengths)]
    decays = [per[T]["decay_trained"]["mean"] for T in lengths]
    vanishes = all(d is not None and d < 1 for d in decays) and (
        longest["reach_trained"] is not None and longest["reach_trained"] < 1e-2
    )
    long_ts = [T for T in lengths if T != min(lengths)]
    stalls = all(per[T]["explained"] is not None and per[T]["explained"] < 0.5 for T in long_ts)
    reason = (
        f"trained factor per step {', '.join(sig(d, 3) for d in decays)} at T = {', '.join(map(str, lengths))}; "
        f"at T = {max(lengths)} step 1 gets {sig(longest['reach_trained'])} of the last step's gradient; "
        f"the RNN explains {', '.join(_share(per[T]['explained']) for T in long_ts)} of the variance at "
        f"T = {', '.join(map(str, long_ts))}"
    )
    if vanishes and stalls:
        return SUPPORTED, reason
    if vanishes:
        return CAVEAT, reason + " (the gradient vanishes, yet training does not stall)"
    return NOT_SUPPORTED, reason + " (the gradient does not vanish)"


def _share(v) -> str:
    return "n/a" if v is None else f"{v * 100:.0f}%"


VANISHING_RULE = (
    "the gradient vanishes if the trained RNN's fitted factor per step of ||dL/dh_t|| is below 1 at every T and "
    "step 1 receives less than 1% of the last step's gradient at the longest T; training stalls if the RNN "
    "explains less than half the variance (MSE > 0.083) at every T but the shortest. Supported if both, "
    "supported with a caveat if only the first, not supported otherwise."
)


# ----------------------------------------------------------------------------------------------
# 6.2.2: residual recurrent connections reduce vanishing gradients (and is the cell stable?)
# ----------------------------------------------------------------------------------------------
def _long_lengths(ctx: Context) -> tuple[int, ...]:
    return tuple(ctx.budget.lengths[1:]) or tuple(ctx.budget.lengths)


def _cell_row(task: str, T: int, cell: str, runs: list[dict]) -> tuple[dict, dict]:
    adding = task == "adding"
    final = _mse_stats(runs) if adding else stats([r["final"] for r in runs])
    worst = [r["worst"] for r in runs]
    stable = all(r["diverged"] is None and math.isfinite(r["worst"]) for r in runs) and (
        not adding or max(worst) <= 1.5 * BASELINE_MSE
    )
    num = {
        "parameters": runs[0]["parameters"],
        "final": final,
        "worst": max(worst) if adding else min(worst),
        "stable": stable,
        "reach_trained": geomean([r["reach_trained"] for r in runs]),
        "reach_init": geomean([r["reach_init"] for r in runs]),
        "decay_trained": stats([r["decay_trained"] for r in runs]),
        "seconds": stats([r["seconds"] for r in runs]),
        "diverged": sum(r["diverged"] is not None for r in runs),
    }
    row = {
        "task": task,
        "T": T,
        "cell": CELL_NAMES[cell],
        "parameters": f"{num['parameters']:,}",
        ("test MSE" if adding else "recall accuracy"): pm(final, 4) if adding else f"{pm(final, 1, 100.0)}%",
        "worst epoch": f"{num['worst']:.3g}" if math.isfinite(num["worst"]) else "diverged",
        "||dL/dh_1|| / ||dL/dh_T||, trained": sig(num["reach_trained"]),
        "s per run": f"{num['seconds']['mean']:.0f}",
    }
    return row, num


def run_residual(ctx: Context, claim: Claim) -> None:
    rows: list = []
    numbers: dict[str, Any] = {"baseline_mse": BASELINE_MSE, "lengths": list(_long_lengths(ctx)), "cells": {}}
    for T in _long_lengths(ctx):
        for cell in CELLS:
            runs = [ctx.recurrent("adding", cell, T, s) for s in ctx.seeds()]
            row, num = _cell_row("adding", T, cell, runs)
            rows.append(row)
            numbers["cells"][f"{cell}@{T}"] = num
    claim.experiment = (
        "The residual recurrent cell (`--model residual`: h_t = h_{t-1} + z_t * tanh(W x_t + A h_{t-1} + b), "
        "A antisymmetric, z_t a learnt gate; the cell as it is in `layerlab.models.cells` at the time of this run) "
        "against the "
        f"tanh RNN, LSTM and GRU on the adding problem at T = {', '.join(map(str, _long_lengths(ctx)))}, one "
        f"budget for all ({_budget_text(ctx)}). 'Worst epoch' is the highest test MSE after any epoch of any seed: "
        f"stable means every epoch finite and at most 1.5 x the baseline ({1.5 * BASELINE_MSE:.2f}). The gradient "
        f"ratio is the geometric mean over seeds."
    )
    claim.columns = list(rows[0])
    claim.rows = rows
    claim.numbers = numbers
    claim.figures = [
        figures.save_with_csv(
            figures.cells_by_length(numbers["cells"], _long_lengths(ctx), BASELINE_MSE),
            ctx.results,
            "residual",
            rows,
        )
    ]


def decide_residual(n: dict) -> tuple[str, str]:
    cells = n["cells"]
    lengths = n["lengths"]

    def ratio(T):
        r, rnn = cells[f"residual@{T}"]["reach_trained"], cells[f"rnn@{T}"]["reach_trained"]
        if r is None:
            return 0.0
        return math.inf if not rnn else r / rnn

    reduces = all(ratio(T) >= 10 for T in lengths)
    stable = all(cells[f"residual@{T}"]["stable"] for T in lengths)
    better = all(
        cells[f"residual@{T}"]["final"]["mean"] is not None
        and cells[f"rnn@{T}"]["final"]["mean"] is not None
        and cells[f"residual@{T}"]["final"]["mean"] < cells[f"rnn@{T}"]["final"]["mean"]
        for T in lengths
    )

    def times(T) -> str:
        x = ratio(T)
        return "a share where the tanh RNN's underflowed to 0" if math.isinf(x) else f"{sig(x)}x the tanh RNN's share"

    reason = (
        "the residual cell's first step gets "
        + ", ".join(f"{times(T)} of the gradient at T = {T}" for T in lengths)
        + f"; {'stable' if stable else 'not stable'} at every T; "
        + f"{'lower' if better else 'not lower'} test MSE than the tanh RNN at every T"
    )
    if reduces and stable and better:
        return SUPPORTED, reason
    if reduces:
        return CAVEAT, reason
    return NOT_SUPPORTED, reason


RESIDUAL_RULE = (
    "reduces vanishing if, after training, the residual cell's ||dL/dh_1||/||dL/dh_T|| is at least 10 times "
    "the tanh RNN's at every T. Supported if it does and the cell is also stable (every epoch's test MSE finite "
    "and at most 1.5 x the baseline, every seed) and ends with a lower mean MSE than the tanh RNN at every T; "
    "supported with a caveat if it reduces vanishing but is unstable or no better; not supported otherwise."
)


# ----------------------------------------------------------------------------------------------
# 2 and 6.2.2: LSTM and GRU carry long dependencies
# ----------------------------------------------------------------------------------------------
SOLVED_VARIANCE = 0.9  # adding: the model explains at least 90% of the variance (MSE < 0.0167)
RECALL = 0.5  # copy: at least half the symbols recalled (4x chance)


def run_gated(ctx: Context, claim: Claim) -> None:
    b = ctx.budget
    T = max(b.lengths)
    rows: list = []
    numbers: dict[str, Any] = {"baseline_mse": BASELINE_MSE, "length": T, "copy_length": b.copy_length, "cells": {}}
    for cell in ("rnn", "lstm", "gru"):
        runs = [ctx.recurrent("adding", cell, T, s) for s in ctx.seeds()]
        row, num = _cell_row("adding", T, cell, runs)
        rows.append(_gated_row(row, "test MSE"))
        numbers["cells"][f"adding:{cell}"] = num
    for cell in ("rnn", "lstm", "gru"):
        runs = [ctx.recurrent("copy", cell, b.copy_length, s) for s in ctx.seeds()]
        row, num = _cell_row("copy", b.copy_length, cell, runs)
        rows.append(_gated_row(row, "recall accuracy"))
        numbers["cells"][f"copy:{cell}"] = num
    claim.experiment = (
        f"The adding problem at T = {T} (one marked value in each half: a memory of ~{T // 2} steps; "
        f"{_budget_text(ctx)}) and the copy task at T = {b.copy_length} (recall 10 symbols after "
        f"{b.copy_length} blanks; {_budget_text(ctx, 'copy')}), for the tanh RNN, LSTM and GRU. Carrying the "
        f"dependency means explaining at least {SOLVED_VARIANCE:.0%} of the adding task's variance "
        f"(MSE < {(1 - SOLVED_VARIANCE) * BASELINE_MSE:.4f}), or recalling at least {RECALL:.0%} of the copied "
        f"symbols (chance {CHANCE_COPY:.1%})."
    )
    claim.columns = list(GATED_COLUMNS)
    claim.rows = rows
    claim.numbers = numbers
    missed = []
    for key, num in numbers["cells"].items():
        task, cell = key.split(":")
        if cell != "rnn" and not carries(num, task):
            missed.append(
                f"the {CELL_NAMES[cell]} on the {task} task (T = {T if task == 'adding' else b.copy_length}; after "
                f"training step 1 receives {sig(num['reach_trained'])} of the last step's gradient)"
            )
    if missed:
        claim.notes.append(
            f"Not carried under this budget: {'; '.join(missed)}. Every cell has the same budget: more steps may "
            f"change these rows, and the page reports them as they fell rather than giving one cell more."
        )
    claim.figures = [
        figures.save_with_csv(
            figures.gated(numbers["cells"], T, b.copy_length, BASELINE_MSE, CHANCE_COPY),
            ctx.results,
            "gated",
            rows,
        )
    ]


GATED_COLUMNS = ["task", "T", "cell", "parameters", "result", "worst epoch", "||dL/dh_1|| / ||dL/dh_T||, trained"]


def _gated_row(row: dict, key: str) -> dict:
    """A row of :func:`_cell_row` with its metric as ``result`` (the gated table mixes two tasks)."""
    out = {**row, "result": f"{key} {row[key]}"}
    return {c: out[c] for c in GATED_COLUMNS}


def carries(num: dict, task: str) -> bool:
    m = num["final"]["mean"]
    if m is None:
        return False
    return (1 - m / BASELINE_MSE) >= SOLVED_VARIANCE if task == "adding" else m >= RECALL


def decide_gated(n: dict) -> tuple[str, str]:
    cells = n["cells"]
    got = {(c, t): carries(cells[f"{t}:{c}"], t) for c in ("lstm", "gru") for t in ("adding", "copy")}
    rnn = [t for t in ("adding", "copy") if carries(cells[f"{t}:rnn"], t)]
    reason = "; ".join(
        f"{CELL_NAMES[c]} {'carries' if got[(c, t)] else 'does not carry'} {t} (T = "
        f"{n['length'] if t == 'adding' else n['copy_length']})"
        for c in ("lstm", "gru")
        for t in ("adding", "copy")
    ) + (f"; the tanh RNN carries {', '.join(rnn)} too" if rnn else "; the tanh RNN carries neither")
    if all(got.values()):
        return SUPPORTED, reason
    if any(got.values()):
        return CAVEAT, reason
    return NOT_SUPPORTED, reason


GATED_RULE = (
    "supported if both LSTM and GRU carry the dependency on both tasks (adding: at least 90% of the variance "
    "explained; copy: at least 50% of the symbols recalled, mean over seeds); supported with a caveat if at "
    "least one of them carries one task; not supported if neither carries either."
)


# ----------------------------------------------------------------------------------------------
# 6.2.2: deeper (stacked) RNNs, for more capacity
# ----------------------------------------------------------------------------------------------
def corpus(ctx: Context, folder: Path) -> tuple[Path, str]:
    """The character model's text: ``--text`` when given, else the licence texts of
    :data:`LICENSE_DIR` joined; in quick mode without them, generated text. Cut to ``text_chars``."""
    b = ctx.budget
    if ctx.text is not None:
        text, what = ctx.text.read_text(encoding="utf-8"), f"{ctx.text.name} (--text)"
    else:
        found = [LICENSE_DIR / n for n in LICENSES if (LICENSE_DIR / n).is_file()]
        if found:
            text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in found)
            what = f"the licence texts {', '.join(p.name for p in found)} from {LICENSE_DIR}"
        elif b.mode == "quick":
            text, what = _generated_text(b.text_chars or 20_000), "generated text (no licence texts found)"
        else:
            raise DataError(
                f"the deeper-RNN claim trains a character model and found no text ({LICENSE_DIR} holds none of "
                f"{', '.join(LICENSES)}); pass --text FILE with a UTF-8 text of 100 KB or more"
            )
    if b.text_chars:
        text = text[: b.text_chars]
    path = folder / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path, f"{what}, {len(text):,} characters"


def _generated_text(n: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    words = "the of a to in and is that for it as with on be by this are or from at which an".split()
    out, size = [], 0
    while size <= n:
        w = str(rng.choice(words))
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n]


def _matched_hidden(spec, vocab: int, layers: int, target: int) -> tuple[int, int]:
    """The hidden size at which an LSTM of ``layers`` layers has the parameter count closest to
    ``target`` (parameters grow with the hidden size, so a bisection finds it)."""

    def count(h: int) -> int:
        net = build_model_for(ModelConfig(name="lstm", hidden=h, layers=layers), spec, vocab)
        return sum(p.numel() for p in net.parameters() if p.requires_grad)

    lo, hi = 1, 2
    while count(hi) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    best = min((lo, hi), key=lambda h: abs(count(h) - target))
    return best, count(best)


def run_deeper(ctx: Context, claim: Claim) -> None:
    b = ctx.budget
    with tempfile.TemporaryDirectory(prefix="layerlab-claims-") as tmp:
        path, what = corpus(ctx, Path(tmp))
        ds = load_dataset(str(path), length=b.text_length)
    vocab = ds.num_outputs
    one = build_model_for(ModelConfig(name="lstm", hidden=b.text_hidden, layers=1), ds.spec, vocab)
    target = sum(p.numel() for p in one.parameters() if p.requires_grad)
    cfg = TrainConfig(
        epochs=b.text_epochs,
        batch_size=b.text_batch,
        lr=b.text_lr,
        clip=b.clip,
        device="cpu",
        channels_last=False,
    )
    rows: list = []
    numbers: dict[str, Any] = {"depths": {}, "parameters_target": target}
    curves = {}
    for layers in b.depths:
        hidden, params = (b.text_hidden, target) if layers == 1 else _matched_hidden(ds.spec, vocab, layers, target)
        losses, accs, secs, hists = [], [], [], []
        for seed in ctx.seeds():
            seed_everything(seed)
            net = build_model_for(ModelConfig(name="lstm", hidden=hidden, layers=layers), ds.spec, vocab)
            t0 = time.perf_counter()
            try:
                hist = fit(net, ds, _with_seed(cfg, seed)).history
            except TrainingError:
                hist = []
            secs.append(time.perf_counter() - t0)
            losses.append(hist[-1]["test_loss"] if hist else math.inf)
            accs.append(hist[-1]["test_accuracy"] if hist else 0.0)
            hists.append(hist)
            ctx.say(
                f"  character LSTM, {layers} layer(s) of {hidden}, seed {seed}: test loss {losses[-1]:.4f} "
                f"nats/char in {secs[-1]:.1f} s"
            )
        curves[layers] = hists
        s_loss, s_acc = stats(losses), stats(accs)
        numbers["depths"][layers] = {
            "hidden": hidden,
            "parameters": params,
            "test_loss": s_loss,
            "test_accuracy": s_acc,
            "seconds": stats(secs),
            "per_seed": losses,
        }
        rows.append(
            {
                "layers": layers,
                "hidden per layer": hidden,
                "parameters": f"{params:,}",
                "test loss (nats/char)": pm(s_loss, 4),
                "next-character accuracy": f"{pm(s_acc, 1, 100.0)}%",
                "s per run": f"{stats(secs)['mean']:.0f}",
            }
        )
    claim.experiment = (
        f"A character-level LSTM language model (`--model lstm --layers L`, per-step head) on {what}: windows of "
        f"{b.text_length} characters, the first 90% trains and the last 10% tests. One layer of "
        f"{b.text_hidden} units against 2 and 3 layers whose hidden size is chosen so the parameter count "
        f"matches ({target:,}), so any gain comes from depth and not from size. {b.text_epochs} epoch(s) of batch "
        f"{b.text_batch}, Adam lr {b.text_lr:g}, clip {b.clip:g}; {b.seeds} seed(s). Lower test loss is better."
    )
    claim.columns = list(rows[0])
    claim.rows = rows
    claim.numbers = numbers
    claim.figures = [
        figures.save_with_csv(
            figures.depth_curves(curves, "character LSTM at an equal parameter count: test loss per epoch"),
            ctx.results,
            "deeper",
            [
                {"layers": L, "seed": s, "epoch": h["epoch"], "test_loss": h["test_loss"]}
                for L, hs in curves.items()
                for s, hist in enumerate(hs)
                for h in hist
            ],
        )
    ]


def _with_seed(cfg: TrainConfig, seed: int) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, seed=seed)


def decide_deeper(n: dict) -> tuple[str, str]:
    depths = {int(k): v for k, v in n["depths"].items()}
    one = depths[1]["test_loss"]
    deeper = {L: v["test_loss"] for L, v in depths.items() if L != 1}
    best_l = min(deeper, key=lambda L: deeper[L]["mean"] if deeper[L]["mean"] is not None else math.inf)
    best = deeper[best_l]
    if one["mean"] is None or best["mean"] is None:
        return NOT_SUPPORTED, "a character model's training diverged at every seed (no test loss to compare)"
    gain = one["mean"] - best["mean"]
    noise = 2 * max(one["sd"], best["sd"])
    reason = (
        f"test loss {one['mean']:.4f} with 1 layer, {best['mean']:.4f} with {best_l} "
        f"({gain:+.4f} nats/char for depth at {n['parameters_target']:,} parameters; noise 2 sd = {noise:.4f})"
    )
    if gain > noise and gain > 0:
        return SUPPORTED, reason
    if gain > 0:
        return CAVEAT, reason + " (lower, but within the spread over seeds)"
    return NOT_SUPPORTED, reason + " (depth did not help at an equal parameter count)"


DEEPER_RULE = (
    "supported if the best of the 2- and 3-layer models has a mean test loss lower than the 1-layer model's by "
    "more than twice the larger sd over seeds; supported with a caveat if lower by less; not supported if not lower."
)
