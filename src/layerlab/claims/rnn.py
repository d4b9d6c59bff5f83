"""The article's claims about recurrent networks (3.2.3, 6.2.1, 6.2.2): the vanishing gradient of
the tanh RNN and the three remedies the FAQ names (deeper networks, residual recurrent connections,
LSTM and GRU), on the adding problem, the copy task and a character model. ``run(ctx, claim)``
fills the claim's table and raw numbers, ``decide(numbers)`` gives the verdict by the stated rule.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..callbacks import Callback, EarlyStopping
from ..choices import CELLS
from ..config import ModelConfig, TrainConfig
from ..data import load_dataset, split_validation
from ..engine import evaluate, fit, seed_everything
from ..errors import TrainingError
from ..rundir import build_model_for
from . import figures
from .base import (
    CAVEAT,
    CONVEX,
    MEMORYLESS,
    NOT_SUPPORTED,
    SUPPORTED,
    Budget,
    Claim,
    Context,
    clearly_above_value,
    clearly_below,
    clearly_below_value,
    difference,
    geomean,
    pm,
    sig,
    stats,
)
from .corpus import block_size, interleaved, shakespeare

BASELINE_MSE = 1 / 6  # always answering 1, the target's mean, on the adding problem
CHANCE_COPY = 1 / 8  # guessing one of the 8 symbols on the copy task
CELL_NAMES = {
    "rnn": "tanh RNN",
    "lstm": "LSTM",
    "gru": "GRU",
    "residual": "residual RNN",
    "lstm-chrono": "LSTM, chrono init",
    CONVEX: "gated convex control",
    MEMORYLESS: "tanh RNN without recurrence (U = 0)",
}
#: the LSTM with chrono initialisation (``--forget-bias chrono``), beside the LSTM with Keras's bias 1
CHRONO_LSTM = "lstm-chrono"

#: The character model's corpus in a quick run where no --text is given: the licence texts every Debian system
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


def stall_lrs(b: Budget) -> list[float]:
    """The tanh RNN's learning rates on the adding task: the stall sweep's and the budget's, ascending
    (the vanishing claim trains at each; the memory claim reuses those runs for both its arms)."""
    return sorted(set(b.stall_lrs) | {b.adding_lr})


def _mse_stats(runs: list[dict]) -> dict:
    return stats([r["final"] for r in runs])


# ----------------------------------------------------------------------------------------------
# 3.2.3 and 6.2.1: the tanh RNN's gradient vanishes, and training stalls
# ----------------------------------------------------------------------------------------------
def _explained(runs: list[dict]) -> dict:
    """Per-seed variance explained on the adding problem, ``1 - MSE/baseline``, as :func:`stats`."""
    return stats([1 - r["final"] / BASELINE_MSE for r in runs if math.isfinite(r["final"])])


def run_vanishing(ctx: Context, claim: Claim) -> None:
    b = ctx.budget
    per_t: dict[int, dict[str, Any]] = {}
    rows: list[dict] = []
    sweep: dict[str, dict[str, Any]] = {}
    for T in (b.control_length, *b.lengths):
        for lr in stall_lrs(b):
            runs = [ctx.recurrent("adding", "rnn", T, s, lr=lr) for s in ctx.seeds()]
            d_init, d_tr = stats([r["decay_init"] for r in runs]), stats([r["decay_trained"] for r in runs])
            reach_i, reach_t = geomean([r["reach_init"] for r in runs]), geomean([r["reach_trained"] for r in runs])
            mse, explained = _mse_stats(runs), _explained(runs)
            sweep.setdefault(str(T), {})[repr(lr)] = {"mse": mse, "explained": explained}
            if lr == b.adding_lr and T in b.lengths:
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
                    "T": f"{T} (control)" if T == b.control_length else T,
                    "lr": f"{lr:g}",
                    "factor per step of ||dL/dh_t||, init": pm(d_init, 4),
                    "factor per step, trained": pm(d_tr, 4),
                    "||dL/dh_1|| / ||dL/dh_T||, init": sig(reach_i),
                    "||dL/dh_1|| / ||dL/dh_T||, trained": sig(reach_t),
                    "test MSE": pm(mse, 4),
                    "variance explained": pm(explained, 0, 100.0) + "%" if explained["mean"] is not None else "n/a",
                }
            )
    lrs = ", ".join(f"{lr:g}" for lr in stall_lrs(b))
    claim.experiment = (
        f"The article's tanh RNN (`--model rnn`) on the adding problem at T = {', '.join(map(str, b.lengths))} "
        f"({_budget_text(ctx)}), each T at every learning rate of {lrs}, and, as a positive control, at "
        f"T = {b.control_length}, short enough for it to learn: a harness in which the RNN learns nothing at any "
        f"length could not show a stall. Before and after training, `layerlab.inspect.gradflow` measures "
        f"||dL/dh_t|| at every step t on {b.gradflow_samples} test sequences (the loss reads only the last step, "
        f"so everything that reaches h_t came back through the recurrence) and fits a factor per step back in time. "
        f"The consequence: the test MSE against the {BASELINE_MSE:.3f} of always answering 1 (the mean); "
        f"'variance explained' is 1 - MSE/0.167 per seed (mean ± sd). The gradient is judged at lr "
        f"{b.adding_lr:g}, the budget's."
    )
    claim.columns = list(rows[0])
    claim.rows = rows
    claim.numbers = {
        "baseline_mse": BASELINE_MSE,
        "lengths": list(b.lengths),
        "per_length": per_t,
        "control_length": b.control_length,
        "lrs": stall_lrs(b),
        "sweep": sweep,
    }
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
    sweep = n["sweep"]

    def best(T) -> tuple[str, dict]:
        arms = sweep[str(T)]
        lr = max(arms, key=lambda k: arms[k]["explained"]["mean"] if arms[k]["explained"]["mean"] is not None else -9)
        return lr, arms[lr]["explained"]

    def stalls(T) -> bool:  # every learning rate explains clearly less than half the variance
        return all(clearly_below_value(a["explained"], 0.5) for a in sweep[str(T)].values())

    c_lr, c = best(n["control_length"])
    control = clearly_above_value(c, 0.5)
    stalled = [T for T in lengths if stalls(T)]
    reason = (
        f"trained factor per step {', '.join(sig(d, 3) for d in decays)} at T = {', '.join(map(str, lengths))}; "
        f"at T = {max(lengths)} step 1 gets {sig(longest['reach_trained'])} of the last step's gradient; "
        f"the positive control (T = {n['control_length']}) explains {_pm_share(c)} of the variance at its best lr "
        f"({float(c_lr):g}); the best lr explains "
        + ", ".join(f"{_pm_share(best(T)[1])} at T = {T}" for T in lengths)
        + (f"; every lr stalls at T = {', '.join(map(str, stalled))}" if stalled else "; no length stalls at every lr")
    )
    if vanishes and control and max(lengths) in stalled:
        return SUPPORTED, reason
    if vanishes:
        why = (
            "the RNN did not learn even the positive control, so the harness cannot show a stall"
            if not control
            else "the gradient vanishes, yet training does not stall at the longest T"
        )
        return CAVEAT, f"{reason} ({why})"
    return NOT_SUPPORTED, reason + " (the gradient does not vanish)"


# ----------------------------------------------------------------------------------------------
# 2: the tanh RNN keeps information from the past
# ----------------------------------------------------------------------------------------------
def _memory_arm(ctx: Context, cell: str, T: int) -> dict:
    """One arm of the memory claim at T: every learning rate of the stall sweep, 3 seeds each; the arm's
    number is its best learning rate's (by mean test MSE, the same choice for both arms)."""
    b = ctx.budget
    lrs = stall_lrs(b)
    by_lr = {lr: [ctx.recurrent("adding", cell, T, s, lr=lr) for s in ctx.seeds()] for lr in lrs}
    mse = {lr: _mse_stats(runs) for lr, runs in by_lr.items()}
    best = min(lrs, key=lambda lr: mse[lr]["mean"] if mse[lr]["mean"] is not None else math.inf)
    runs = by_lr[best]
    return {"lr": best, "mse": mse[best], "explained": _explained(runs), "parameters": runs[0]["parameters"]}


def run_memory(ctx: Context, claim: Claim) -> None:
    b = ctx.budget
    lengths = (b.control_length, b.lengths[0])
    arms: dict[str, dict[str, Any]] = {}
    rows: list[dict] = []
    for T in lengths:
        for cell in ("rnn", MEMORYLESS):
            a = _memory_arm(ctx, cell, T)
            arms[f"{cell}:{T}"] = a
            rows.append(
                {
                    "T": T,
                    "model": CELL_NAMES[cell],
                    "trained parameters": f"{a['parameters']:,}",
                    "lr (best)": f"{a['lr']:g}",
                    "test MSE": pm(a["mse"], 4),
                    "variance explained": _pm_share(a["explained"]),
                }
            )
    lrs = ", ".join(f"{lr:g}" for lr in stall_lrs(b))
    claim.experiment = (
        f"The article's tanh RNN (`--model rnn`, h_t = tanh(W x_t + U h_{{t-1}} + b)) on the adding problem at "
        f"T = {', '.join(map(str, lengths))} ({_budget_text(ctx)}; each arm at every learning rate of {lrs}, its "
        f"best by mean test MSE), against the same network with its recurrent matrix U held at zero "
        f"(h_t = tanh(W x_t + b): it sees each input once and keeps nothing of it). The answer is the sum of two "
        f"values marked somewhere in the sequence and is read at the last step only, so a model explains more "
        f"of its variance than 'always answer 1' (MSE {BASELINE_MSE:.3f}) only through what its state kept from "
        f"earlier steps. The runs at T = {b.control_length} and {b.lengths[0]} are the vanishing claim's (shared)."
    )
    claim.columns = list(rows[0])
    claim.rows = rows
    claim.numbers = {"baseline_mse": BASELINE_MSE, "lengths": list(lengths), "arms": arms}
    share = [(T, cell, arms[f"{cell}:{T}"]["explained"]) for T in lengths for cell in ("rnn", MEMORYLESS)]
    bars = [
        {"label": f"{'U = 0' if cell == MEMORYLESS else 'tanh RNN'}, T = {T}", "control": cell == MEMORYLESS}
        | {"mean": e["mean"], "sd": e["sd"]}
        for T, cell, e in share
    ]
    claim.figures = [
        figures.save_with_csv(
            figures.memory_bars(bars, "adding problem: the tanh RNN and the same network with U = 0"),
            ctx.results,
            "memory",
            [{"T": T, "model": cell, "explained": e["mean"], "sd": e["sd"]} for T, cell, e in share],
        )
    ]


def decide_memory(n: dict) -> tuple[str, str]:
    T = n["lengths"][0]
    rnn, none = n["arms"][f"rnn:{T}"], n["arms"][f"{MEMORYLESS}:{T}"]
    d, bound = difference(rnn["explained"], none["explained"])
    reason = (
        f"at T = {T} the tanh RNN explains {_pm_share(rnn['explained'])} of the variance, the same network without "
        f"its recurrence {_pm_share(none['explained'])} (difference {d * 100:+.1f} points, bound {bound * 100:.1f})"
    )
    far = n["lengths"][-1]
    if far != T:
        reason += f"; at T = {far}: {_pm_share(n['arms'][f'rnn:{far}']['explained'])} against " + _pm_share(
            n["arms"][f"{MEMORYLESS}:{far}"]["explained"]
        )
    if d > bound and clearly_above_value(rnn["explained"], 0.5):
        return SUPPORTED, reason
    if d > bound:
        return CAVEAT, reason + " (it keeps something, but explains less than half the variance)"
    return NOT_SUPPORTED, reason + " (the recurrence adds nothing the last input does not give)"


MEMORY_RULE = (
    "supported if, at the shorter T, the tanh RNN explains more of the variance than the same network without its "
    "recurrence by more than twice the standard error of the difference, and at least half of it (mean less twice "
    "its standard error); supported with a caveat if it explains clearly more but less than half; not supported "
    "otherwise. The longer T is shown, not judged (the vanishing claim judges long T)."
)


def _pm_share(s: dict) -> str:
    if s["mean"] is None:
        return "n/a"
    return f"{s['mean'] * 100:.0f}%" + (f" ± {s['sd'] * 100:.0f}" if s["n"] > 1 else "")


VANISHING_RULE = (
    "the gradient vanishes if the trained RNN's fitted factor per step of ||dL/dh_t|| (at the budget's lr) is below "
    "1 at every T and step 1 receives less than 1% of the last step's gradient at the longest T. Training stalls at "
    "a T if at every learning rate of the sweep the variance explained, mean + 2 standard errors over seeds, is "
    "below one half. Supported if the gradient vanishes, training stalls at the longest T, and the positive "
    "control learns (at its best lr the variance explained, mean - 2 standard errors, is at least one half); "
    "supported with a caveat if only the gradient vanishes (or the control does not learn); not supported "
    "otherwise."
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


def _runs(ctx: Context, task: str, key: str, T: int) -> list[dict]:
    """The runs over seeds of one row: a cell, the LSTM with chrono initialisation, or the convex control."""
    if key == CHRONO_LSTM:
        return [ctx.recurrent(task, "lstm", T, s, forget_bias="chrono") for s in ctx.seeds()]
    return [ctx.recurrent(task, key, T, s) for s in ctx.seeds()]


def run_residual(ctx: Context, claim: Claim) -> None:
    lengths = _long_lengths(ctx)
    control_t = lengths[0]
    rows = []
    numbers: dict[str, Any] = {
        "baseline_mse": BASELINE_MSE,
        "lengths": list(lengths),
        "control_length": control_t,
        "cells": {},
    }
    for T in lengths:
        for cell in (*CELLS, CHRONO_LSTM, *((CONVEX,) if T == control_t else ())):
            row, num = _cell_row("adding", T, cell, _runs(ctx, "adding", cell, T))
            rows.append(row)
            numbers["cells"][f"{cell}@{T}"] = num
    claim.experiment = (
        "The cell that stands for 'recurrent residual connections' is `--model residual`, a gated residual cell "
        "with antisymmetric recurrent matrices (the gated AntisymmetricRNN of Chang et al., ICLR 2019): "
        "h_t = h_{t-1} + z_t * tanh(W x_t + A h_{t-1} + b), z_t = sigmoid(W_z x_t + A_z h_{t-1} + b_z), "
        "A = (U - U^T)/2 - 0.01 I, b_z = -3 at initialisation. It is not the plain residual tanh cell "
        "h_t = h_{t-1} + tanh(...): layerlab's first residual cell (gated, free U) grew its state and gradient "
        "geometrically with T (state RMS 110-150 at T = 400 at initialisation, every step clipped in training at "
        "T = 150), and the antisymmetric form replaced it (benchmarks/results/residual_fix.md). Against it: the "
        f"tanh RNN, LSTM (Keras's forget bias 1, and chrono initialisation), GRU on the adding problem at "
        f"T = {', '.join(map(str, lengths))}, one budget for all ({_budget_text(ctx)}); and, at T = {control_t}, "
        "the gated convex control h_t = (1 - z_t) h_{t-1} + z_t tanh(W x_t + U h_{t-1} + b): the same gate and "
        "initialisation with no residual sum, to tell the residual connection's part from the gate's. 'Worst "
        f"epoch' is the highest test MSE after any epoch of any seed: stable means every epoch finite and at most "
        f"1.5 x the baseline ({1.5 * BASELINE_MSE:.2f}). The gradient ratio is the geometric mean over seeds."
    )
    claim.columns = list(rows[0])
    claim.rows = rows
    claim.numbers = numbers
    claim.figures = [
        figures.save_with_csv(
            figures.cells_by_length(numbers["cells"], lengths, BASELINE_MSE),
            ctx.results,
            "residual",
            rows,
        )
    ]
    control = numbers["cells"].get(f"{CONVEX}@{control_t}")
    res = numbers["cells"][f"residual@{control_t}"]
    if control is not None and not clearly_below(res["final"], control["final"]):
        claim.notes.append(
            f"At T = {control_t} the gated convex control, which has no residual sum, reaches a test MSE of "
            f"{pm(control['final'], 4)} against the residual cell's {pm(res['final'], 4)}: on this task the gate "
            f"trains as well without the residual connection; what the residual sum adds is the gradient share "
            f"(the rule's comparison)."
        )


def decide_residual(n: dict) -> tuple[str, str]:
    cells = n["cells"]
    lengths = n["lengths"]
    control_t = n.get("control_length", lengths[0])

    def ratio(T, other="rnn"):
        r, o = cells[f"residual@{T}"]["reach_trained"], cells[f"{other}@{T}"]["reach_trained"]
        if r is None:
            return 0.0
        return math.inf if not o else r / o

    reduces = all(ratio(T) >= 10 for T in lengths)
    stable = all(cells[f"residual@{T}"]["stable"] for T in lengths)
    better = all(clearly_below(cells[f"residual@{T}"]["final"], cells[f"rnn@{T}"]["final"]) for T in lengths)
    has_control = f"{CONVEX}@{control_t}" in cells
    beats_gate = has_control and ratio(control_t, CONVEX) >= 10

    def times(T, other="rnn", name="the tanh RNN's") -> str:
        x = ratio(T, other)
        return f"a share where {name} underflowed to 0" if math.isinf(x) else f"{sig(x)}x {name} share"

    reason = (
        "the residual cell's first step gets "
        + ", ".join(f"{times(T)} of the gradient at T = {T}" for T in lengths)
        + (f" and {times(control_t, CONVEX, 'the gated convex control')} at T = {control_t}" if has_control else "")
        + f"; {'stable' if stable else 'not stable'} at every T; "
        + f"test MSE {'clearly' if better else 'not clearly'} below the tanh RNN's at every T"
    )
    if reduces and stable and better and beats_gate:
        return SUPPORTED, reason
    if reduces:
        why = [] if beats_gate else ["the gate without a residual sum keeps a comparable share of the gradient"]
        why += [] if stable else ["unstable"]
        why += [] if better else ["no clearly lower MSE than the tanh RNN"]
        return CAVEAT, f"{reason} ({'; '.join(why)})"
    return NOT_SUPPORTED, reason


RESIDUAL_RULE = (
    "reduces vanishing if, after training, the residual cell's ||dL/dh_1||/||dL/dh_T|| is at least 10 times the "
    "tanh RNN's at every T. Supported if it does, the cell is stable (every epoch's test MSE finite and at most "
    "1.5 x the baseline, every seed), its mean test MSE is below the tanh RNN's by more than twice the standard "
    "error of the difference at every T, and its gradient share is at least 10 times the gated convex control's "
    "(so the residual sum, not the gate alone, keeps the gradient); supported with a caveat if it reduces "
    "vanishing but one of the others fails; not supported otherwise."
)


# ----------------------------------------------------------------------------------------------
# 2 and 6.2.2: LSTM and GRU carry long dependencies
# ----------------------------------------------------------------------------------------------
SOLVED_VARIANCE = 0.9  # adding: the model explains at least 90% of the variance (MSE < 0.0167)
RECALL = 0.5  # copy: at least half the symbols recalled (4x chance)


def run_gated(ctx: Context, claim: Claim) -> None:
    b = ctx.budget
    T = max(b.lengths)
    rows: list[dict] = []
    numbers: dict[str, Any] = {"baseline_mse": BASELINE_MSE, "length": T, "copy_length": b.copy_length, "cells": {}}
    for task, length, key in (("adding", T, "test MSE"), ("copy", b.copy_length, "recall accuracy")):
        for cell in ("rnn", "lstm", CHRONO_LSTM, "gru"):
            row, num = _cell_row(task, length, cell, _runs(ctx, task, cell, length))
            rows.append(_gated_row(row, key))
            numbers["cells"][f"{task}:{cell}"] = num
    claim.experiment = (
        f"The adding problem at T = {T} (two marked values, each anywhere in its half of the sequence, so the "
        f"first must be kept for between {T // 2} and {T} steps, {3 * T // 4} on average; {_budget_text(ctx)}) and "
        f"the copy task at T = {b.copy_length} (recall 10 symbols after {b.copy_length - 1} blanks and a "
        f"delimiter; {_budget_text(ctx, 'copy')}), for the tanh RNN, GRU and LSTM, the LSTM twice: with Keras's "
        f"forget-gate bias 1 (the article's set-up) and with chrono initialisation (`--forget-bias chrono`: "
        f"b_f = log U(1, T_max - 1), T_max the sequence length; Tallec & Ollivier, ICLR 2018), since an LSTM "
        f"whose forget gates start near sigmoid(1) = 0.73 forgets within a few steps. Carrying the "
        f"dependency means explaining at least {SOLVED_VARIANCE:.0%} of the adding task's variance "
        f"(mean MSE < {(1 - SOLVED_VARIANCE) * BASELINE_MSE:.4f}), or recalling at least {RECALL:.0%} of the "
        f"copied symbols (chance {CHANCE_COPY:.1%})."
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
    lstm = {
        t: (carries(numbers["cells"][f"{t}:lstm"], t), carries(numbers["cells"][f"{t}:{CHRONO_LSTM}"], t))
        for t in ("adding", "copy")
    }
    if any(a != c for a, c in lstm.values()):
        claim.notes.append(
            "The LSTM's verdict depends on its initialisation: "
            + "; ".join(
                f"on the {t} task it {'carries' if a else 'does not carry'} the dependency with Keras's forget bias "
                f"1 and {'does' if c else 'does not'} with chrono initialisation"
                for t, (a, c) in lstm.items()
                if a != c
            )
            + ". The claim is about the cell, so the LSTM counts as carrying a task when either initialisation does."
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

    def cell_carries(c: str, t: str) -> bool:  # the LSTM: with either initialisation
        variants = [c, CHRONO_LSTM] if c == "lstm" and f"{t}:{CHRONO_LSTM}" in cells else [c]
        return any(carries(cells[f"{t}:{v}"], t) for v in variants)

    got = {(c, t): cell_carries(c, t) for c in ("lstm", "gru") for t in ("adding", "copy")}
    rnn = [t for t in ("adding", "copy") if carries(cells[f"{t}:rnn"], t)]
    reason = "; ".join(
        f"{CELL_NAMES[c]} {'carries' if got[(c, t)] else 'does not carry'} {t} (T = "
        f"{n['length'] if t == 'adding' else n['copy_length']})"
        for c in ("lstm", "gru")
        for t in ("adding", "copy")
    ) + (f"; the tanh RNN carries {', '.join(rnn)} too" if rnn else "; the tanh RNN carries neither")
    init = [
        f"{t}: {'carried' if carries(cells[f'{t}:lstm'], t) else 'not carried'} with forget bias 1, "
        f"{'carried' if carries(cells[f'{t}:{CHRONO_LSTM}'], t) else 'not carried'} with chrono initialisation"
        for t in ("adding", "copy")
        if f"{t}:{CHRONO_LSTM}" in cells
    ]
    if init:
        reason += f" (LSTM {'; '.join(init)})"
    if all(got.values()):
        return SUPPORTED, reason
    if any(got.values()):
        return CAVEAT, reason
    return NOT_SUPPORTED, reason


GATED_RULE = (
    "supported if both LSTM and GRU carry the dependency on both tasks (adding: at least 90% of the variance "
    "explained; copy: at least 50% of the symbols recalled, mean over seeds; the LSTM with either of its two "
    "initialisations); supported with a caveat if at least one of them carries one task; not supported if neither "
    "carries either."
)


# ----------------------------------------------------------------------------------------------
# 6.2.2: deeper (stacked) RNNs, for more capacity
# ----------------------------------------------------------------------------------------------
def corpus(ctx: Context, folder: Path) -> tuple[Path, str]:
    """The character model's text, cut to ``text_chars`` and :func:`.corpus.interleaved` (every tenth
    block at the end, the part the text reader tests on): ``--text`` when given; else, in a full run,
    Shakespeare's plays (:func:`.corpus.shakespeare`, downloaded once); in a quick run the licence texts
    of :data:`LICENSE_DIR`, or generated text without them."""
    b = ctx.budget
    if ctx.text is not None:
        text, what = ctx.text.read_text(encoding="utf-8"), f"{ctx.text.name} (--text)"
    elif b.mode == "full":
        text, what = shakespeare(b.text_chars)
    else:
        found = [LICENSE_DIR / n for n in LICENSES if (LICENSE_DIR / n).is_file()]
        if found:
            text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in found)
            what = f"the licence texts {', '.join(p.name for p in found)} from {LICENSE_DIR}"
        else:
            text, what = _generated_text(b.text_chars or 20_000), "generated text (no licence texts found)"
    if b.text_chars:
        text = text[: b.text_chars]
    block = block_size(len(text))
    text = interleaved(text, block)
    path = folder / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path, f"{what}, {len(text):,} characters in blocks of {block:,}"


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


class _TestCurve(Callback):
    """The test loss after each epoch, for the page's curves only (nothing is chosen on it: the
    epochs and the learning rate are chosen on the validation split)."""

    def __init__(self, split, task: str):
        self.split, self.task = split, task
        self.losses: list[float] = []

    def on_epoch_end(self, trainer, epoch: int, row: dict) -> None:
        self.losses.append(_test_loss(trainer.model, self.split, self.task))


def _test_loss(model, split, task: str) -> float:
    return float(evaluate(model, split, task=task, device=torch.device("cpu"), channels_last=False)["loss"])


def run_deeper(ctx: Context, claim: Claim) -> None:
    b = ctx.budget
    with tempfile.TemporaryDirectory(prefix="layerlab-claims-") as tmp:
        path, what = corpus(ctx, Path(tmp))
        ds = load_dataset(str(path), length=b.text_length)
    vocab = ds.num_outputs
    one = build_model_for(ModelConfig(name="lstm", hidden=b.text_hidden, layers=1), ds.spec, vocab)
    target = sum(p.numel() for p in one.parameters() if p.requires_grad)
    rows: list[dict] = []
    numbers: dict[str, Any] = {"depths": {}, "parameters_target": target, "max_epochs": b.text_epochs}
    curves = {}
    for layers in b.depths:
        hidden, params = (b.text_hidden, target) if layers == 1 else _matched_hidden(ds.spec, vocab, layers, target)
        # the learning rate each depth gets: the lowest mean validation loss over the sweep's seeds (never
        # the test's); the other seeds then train at it
        seeds = list(ctx.seeds())
        sweep = seeds[: b.text_sweep_seeds or len(seeds)]
        by_lr = {lr: [_char_run(ctx, ds, layers, hidden, lr, seed) for seed in sweep] for lr in b.text_lrs}
        best_lr = min(by_lr, key=lambda lr: stats([r["val_loss"] for r in by_lr[lr]])["mean"] or math.inf)
        runs = by_lr[best_lr] + [_char_run(ctx, ds, layers, hidden, best_lr, seed) for seed in seeds[len(sweep) :]]
        curves[layers] = runs
        s_test, s_train = stats([r["test_loss"] for r in runs]), stats([r["train_loss"] for r in runs])
        s_acc = stats([r["test_accuracy"] for r in runs])
        converged = sum(r["converged"] for r in runs)
        numbers["depths"][layers] = {
            "hidden": hidden,
            "parameters": params,
            "lr": best_lr,
            "val_loss_by_lr": {repr(lr): stats([r["val_loss"] for r in v]) for lr, v in by_lr.items()},
            "test_loss": s_test,
            "train_loss": s_train,
            "test_accuracy": s_acc,
            "epochs": stats([r["epochs"] for r in runs]),
            "converged": converged,
            "seconds": stats([r["seconds"] for r in runs]),
            "per_seed": [r["test_loss"] for r in runs],
        }
        rows.append(
            {
                "layers": layers,
                "hidden per layer": hidden,
                "parameters": f"{params:,}",
                "lr (by validation)": f"{best_lr:g}",
                "epochs (best)": pm(stats([r["best_epoch"] for r in runs]), 1),
                "stopped early": f"{converged}/{len(runs)}",
                "training loss": pm(s_train, 4),
                "test loss (nats/char)": pm(s_test, 4),
                "next-character accuracy": f"{pm(s_acc, 1, 100.0)}%",
            }
        )
    lrs = ", ".join(f"{lr:g}" for lr in b.text_lrs)
    n_sweep = min(b.text_sweep_seeds or b.seeds, b.seeds)
    sweep_text = (
        f"every learning rate of {lrs} on {_n_seeds(n_sweep, 'the first seed', 'seeds')} (Adam, batch {b.text_batch}, "
        f"clip {b.clip:g}), the one with the lowest mean validation loss is the depth's"
        + (f", and the other {b.seeds - n_sweep} seed(s) train at it" if b.seeds > n_sweep else "")
    )
    claim.experiment = (
        f"A character-level LSTM language model (`--model lstm --layers L`, per-step head) on {what}: every "
        f"tenth block is the test text and the rest trains, so the test text comes from the same documents as the "
        f"training text and never overlaps it; windows of {b.text_length} characters; {b.text_validation:.0%} of "
        f"the training windows are held out for validation. One layer of {b.text_hidden} units against 2 and 3 "
        f"layers whose hidden size is chosen so the parameter count matches ({target:,}), so any gain comes from "
        f"depth and not from size. Each depth trains at {sweep_text}; {b.seeds} seed(s) in all. Every run trains until "
        f"the validation loss has not improved for {b.text_patience} epoch(s), at most {b.text_epochs}, keeping "
        f"the best epoch's weights"
        + (
            f", the learning rate multiplied by {b.text_decay:g} every {b.text_decay_every} epochs so that it "
            f"anneals and the validation loss levels off within the cap"
            if b.text_decay_every
            else ""
        )
        + ". 'Training loss' is the mean loss over the best epoch's steps (capacity is "
        "about fitting); test loss is the held-out text's."
    )
    claim.columns = list(rows[0])
    claim.rows = rows
    claim.numbers = numbers
    unconverged = [L for L, d in numbers["depths"].items() if d["converged"] < len(curves[L])]
    half = max(1, b.text_epochs // 2)
    numbers["half_budget"] = {"epochs": half, "depths": {L: at_budget(runs, half) for L, runs in curves.items()}}
    if unconverged:
        claim.notes.append(
            f"Not converged within {b.text_epochs} epochs (the validation loss still improving) at "
            f"{', '.join(f'{L} layer(s)' for L in unconverged)}: the verdict is about this budget."
        )
    verdict, at_half = decide_deeper(_jsonable_depths(numbers)), decide_deeper(_at_half(numbers))
    claim.notes.append(
        f"Budget sensitivity: with at most {half} epoch{'s' if half != 1 else ''} (each run at its best validation "
        f"epoch among the first {half}) "
        f"the rule gives '{at_half[0]}' ({at_half[1].split(' (')[0]}), "
        + ("the same verdict." if at_half[0] == verdict[0] else f"where the full budget gives '{verdict[0]}'.")
    )
    claim.figures = [
        figures.save_with_csv(
            figures.depth_curves(curves, "character LSTM at an equal parameter count: training and test loss"),
            ctx.results,
            "deeper",
            [
                {"layers": L, "seed": s, "epoch": e + 1, "train_loss": tr, "val_loss": va, "test_loss": te}
                for L, runs in curves.items()
                for s, r in enumerate(runs)
                for e, (tr, va, te) in enumerate(zip(r["train_curve"], r["val_curve"], r["test_curve"], strict=True))
            ],
        )
    ]


def _n_seeds(n: int, one: str, many: str) -> str:
    return one if n == 1 else f"{n} {many}"


def _char_run(ctx: Context, ds, layers: int, hidden: int, lr: float, seed: int) -> dict:
    """One character model to convergence on a validation split: its curves and its best epoch's numbers."""
    b = ctx.budget
    cfg = TrainConfig(
        epochs=b.text_epochs,
        batch_size=b.text_batch,
        lr=lr,
        clip=b.clip,
        seed=seed,
        device="cpu",
        channels_last=False,
    )
    if b.text_decay_every:  # a step schedule: the rate times text_decay every text_decay_every epochs
        cfg = dataclasses.replace(cfg, schedule="step", step_size=b.text_decay_every, gamma=b.text_decay)
    held = split_validation(ds, b.text_validation, seed)
    seed_everything(seed)
    net = build_model_for(ModelConfig(name="lstm", hidden=hidden, layers=layers), ds.spec, ds.num_outputs)
    curve = _TestCurve(ds.test, ds.task)
    stop = EarlyStopping("val_loss", patience=b.text_patience, restore_best=True)
    t0 = time.perf_counter()
    try:
        hist = fit(net, held, cfg, callbacks=[stop, curve]).history
    except TrainingError:
        hist = []
    seconds = time.perf_counter() - t0
    if not hist:
        ctx.say(f"  character LSTM, {layers} layer(s) of {hidden}, lr {lr:g}, seed {seed}: diverged")
        return {
            "test_loss": math.inf,
            "train_loss": math.inf,
            "val_loss": math.inf,
            "test_accuracy": 0.0,
            "epochs": 0,
            "best_epoch": 0,
            "converged": False,
            "seconds": seconds,
            "train_curve": [],
            "val_curve": [],
            "test_curve": [],
        }
    best = min(range(len(hist)), key=lambda i: hist[i]["val_loss"])
    test = evaluate(net, ds.test, task=ds.task, device=torch.device("cpu"), channels_last=False)
    r = {
        "test_loss": float(test["loss"]),
        "test_accuracy": float(test.get("accuracy", 0.0)),
        "train_loss": float(hist[best]["train_loss"]),
        "val_loss": float(hist[best]["val_loss"]),
        "epochs": len(hist),
        "best_epoch": best + 1,
        "converged": len(hist) < b.text_epochs,
        "seconds": seconds,
        "train_curve": [float(h["train_loss"]) for h in hist],
        "val_curve": [float(h["val_loss"]) for h in hist],
        "test_curve": curve.losses,
    }
    ctx.say(
        f"  character LSTM, {layers} layer(s) of {hidden}, lr {lr:g}, seed {seed}: best epoch {best + 1} of "
        f"{len(hist)}, training loss {r['train_loss']:.4f}, validation {r['val_loss']:.4f}, test {r['test_loss']:.4f} "
        f"nats/char in {seconds:.1f} s"
    )
    return r


def at_budget(runs: list[dict], epochs: int) -> dict:
    """Test and training loss over seeds had each run been capped at ``epochs``: at its best validation
    epoch among the first ``epochs`` (what early stopping with that cap would have kept)."""
    test, train = [], []
    for r in runs:
        val = r["val_curve"][:epochs]
        if val:
            best = min(range(len(val)), key=lambda i: val[i])
            test.append(r["test_curve"][best])
            train.append(r["train_curve"][best])
    return {"test_loss": stats(test), "train_loss": stats(train)}


def _jsonable_depths(n: dict) -> dict:
    return {**n, "depths": {str(k): v for k, v in n["depths"].items()}}


def _at_half(n: dict) -> dict:
    """The deeper claim's numbers with each depth's losses at half the epoch cap."""
    half = n["half_budget"]["depths"]
    return {"parameters_target": n["parameters_target"], "depths": {str(L): half[L] for L in n["depths"]}}


def decide_deeper(n: dict) -> tuple[str, str]:
    depths = {int(k): v for k, v in n["depths"].items()}
    one = depths[1]
    deeper = {L: v for L, v in depths.items() if L != 1}
    best_l = min(
        deeper, key=lambda L: deeper[L]["test_loss"]["mean"] if deeper[L]["test_loss"]["mean"] is not None else math.inf
    )
    best = deeper[best_l]
    if one["test_loss"]["mean"] is None or best["test_loss"]["mean"] is None:
        return NOT_SUPPORTED, "a character model's training diverged at every seed (no test loss to compare)"
    d_test, bound_test = difference(one["test_loss"], best["test_loss"])
    train_one, train_best = one.get("train_loss"), best.get("train_loss")
    reason = (
        f"test loss {one['test_loss']['mean']:.4f} with 1 layer, {best['test_loss']['mean']:.4f} with {best_l} "
        f"({d_test:+.4f} nats/char for depth at {n['parameters_target']:,} parameters; bound {bound_test:.4f})"
    )
    if train_one is not None and train_best is not None:
        d_train, bound_train = difference(train_one, train_best)
        reason += f"; training loss {d_train:+.4f} for depth (bound {bound_train:.4f})"
    if "converged" in one:
        runs = [d for d in depths.values()]
        reason += (
            f"; {sum(d['converged'] for d in runs)} of {sum(d['test_loss']['n'] for d in runs)} runs stopped early"
        )
    if clearly_below(best["test_loss"], one["test_loss"]):
        return SUPPORTED, reason
    if train_one is not None and train_best is not None and clearly_below(train_best, train_one):
        return CAVEAT, reason + " (depth fits the training text better, but does not test better)"
    return NOT_SUPPORTED, reason + " (depth did not help at an equal parameter count)"


DEEPER_RULE = (
    "supported if the best of the 2- and 3-layer models has a mean test loss below the 1-layer model's by more than "
    "twice the standard error of the difference (each depth at the learning rate its validation loss chose, each "
    "run at its best validation epoch); supported with a caveat if not, but its mean training loss is below the "
    "1-layer model's by that test (more capacity, no better generalisation); not supported otherwise."
)
