"""The synthetic long-range tasks of the RNN literature, generated from a seed.

**adding** (Hochreiter & Schmidhuber 1997; the form of Le et al. 2015 / Arjovsky et al. 2016):
T steps of two features ``(u_t, m_t)``: ``u_t ~ U(0, 1)``, and the marker ``m_t`` is 1 at exactly two
steps, one in the first half and one in the second, 0 elsewhere. The target is the sum of the two
marked values, a regression. Always answering 1 (the target's mean) scores MSE = Var(u1 + u2) = 1/6
~ 0.167: a model near that has learnt nothing; solving the task needs a memory of ~T/2 steps.

**copy** (the copy-memory task, Arjovsky et al. 2016): ``T + 20`` steps of tokens. The first 10 are
symbols drawn from 1..8, then ``T - 1`` blanks (0), a delimiter (9) and 10 blanks; the model must
output the 10 symbols, in order, at the last 10 steps. Per-step classification over 10 tokens;
targets are -100 (ignored) except at those 10 steps, so chance is 1/8 accuracy and a loss of
ln 8 ~ 2.08.

Each split comes from its own random stream of ``(seed, split, T)``, so a run's data is
reproducible from its config alone.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from . import Dataset, Split
from .transforms import InputSpec

DEFAULTS = {
    "adding": {"length": 100, "n_train": 10_000, "n_test": 1_000},
    "copy": {"length": 50, "n_train": 10_000, "n_test": 1_000},
}
DESCRIPTIONS = {
    "adding": "adding problem: T steps of (value, marker), target = sum of the 2 marked values (--length T)",
    "copy": "copy-memory task: recall 10 symbols after T blanks, per-step classes (--length T)",
}
COPY_SYMBOLS = 10  # symbols to remember
COPY_ALPHABET = 8  # drawn from 1..8
COPY_BLANK, COPY_DELIM = 0, 9


def _rng(seed: int, split: int, length: int) -> np.random.Generator:
    return np.random.default_rng([seed, split, length])


def adding_problem(n: int, length: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` ``(n, T, 2)`` float32 (value, marker) and ``y`` ``(n,)`` float32, the sum of the marked values."""
    if length < 2:
        raise DataError(f"the adding problem needs --length of at least 2, got {length}")
    u = rng.random((n, length), dtype=np.float32)  # (n, T)
    half = length // 2
    first = rng.integers(0, half, n)  # one marker in [0, T/2)
    second = rng.integers(half, length, n)  # one in [T/2, T)
    m = np.zeros((n, length), dtype=np.float32)
    rows = np.arange(n)
    m[rows, first] = 1.0
    m[rows, second] = 1.0
    y = u[rows, first] + u[rows, second]  # (n,)
    return torch.from_numpy(np.stack([u, m], axis=-1)), torch.from_numpy(y.astype(np.float32))


def copy_memory(n: int, length: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` ``(n, T+20)`` int64 tokens and ``y`` ``(n, T+20)`` int64 targets (-100 = ignored)."""
    if length < 1:
        raise DataError(f"the copy task needs --length of at least 1, got {length}")
    S = COPY_SYMBOLS
    total = length + 2 * S
    symbols = rng.integers(1, COPY_ALPHABET + 1, (n, S))  # (n, 10)
    x = np.full((n, total), COPY_BLANK, dtype=np.int64)
    x[:, :S] = symbols
    x[:, S + length - 1] = COPY_DELIM  # after T-1 blanks
    y = np.full((n, total), -100, dtype=np.int64)
    y[:, -S:] = symbols  # recall at the end
    return torch.from_numpy(x), torch.from_numpy(y)


def load(
    name: str, *, length: int | None = None, n_train: int | None = None, n_test: int | None = None, seed: int = 0
) -> Dataset:
    """The synthetic task ``name`` (``adding`` or ``copy``) with T = ``length``: adding ``x``
    ``(N, T, 2)`` with ``y`` ``(N,)``; copy tokens ``(N, T+20)`` with per-step targets ``(N, T+20)``."""
    d = DEFAULTS[name]
    T = int(length or d["length"])
    n_tr, n_te = int(n_train or d["n_train"]), int(n_test or d["n_test"])
    if n_tr < 1 or n_te < 1:
        raise DataError(f"{name}: --n-train and --n-test must be at least 1, got {n_tr} and {n_te}")
    make = adding_problem if name == "adding" else copy_memory
    train = Split(*make(n_tr, T, _rng(seed, 0, T)))
    test = Split(*make(n_te, T, _rng(seed, 1, T)))
    meta = {"length": T, "seed": seed}
    if name == "adding":
        # u_t is already in [0, 1] and the marker 0/1: no standardisation, as in the literature
        return Dataset(
            "adding",
            train,
            test,
            "regression",
            None,
            1,
            source=f"generated, T={T}",
            meta={**meta, "baseline_mse": 1 / 6},
            spec=InputSpec("sequence", (T, 2)),
        )
    return Dataset(
        "copy",
        train,
        test,
        "sequence-classification",
        [str(i) for i in range(COPY_DELIM + 1)],
        COPY_DELIM + 1,
        source=f"generated, T={T} (+20 steps)",
        meta={**meta, "chance_accuracy": 1 / COPY_ALPHABET},
        spec=InputSpec("tokens", (T + 2 * COPY_SYMBOLS,), head="step"),
    )
