"""What the claim experiments share: the budget, the record of one claim, the statistics over
seeds, and the context that loads each dataset and trains each shared model once.

Several claims read the same trained models (the article's CNN serves 6.1.1, section 2 and
section 5; the adding-task runs serve 3.2.3, the residual cell and LSTM/GRU): the context trains each
on first use and hands the same result to every later claim, so a claim's seconds include the
shared trainings it was the first to need.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ..config import ModelConfig, TrainConfig
from ..data import Dataset, Split, load_dataset
from ..engine import fit, seed_everything
from ..errors import DataError, LayerlabError, TrainingError
from ..experiments import warm_up
from ..inspect.gradflow import gradient_flow
from ..models.cells import ResidualCell
from ..rundir import build_model_for

log = logging.getLogger(__name__)

SUPPORTED = "supported"
CAVEAT = "supported with a caveat"
NOT_SUPPORTED = "not supported"
VERDICTS = (SUPPORTED, CAVEAT, NOT_SUPPORTED)


@dataclass(frozen=True)
class Budget:
    """Every size of every experiment, in one place: :data:`FULL` (the default, within 45 minutes on
    2 CPU cores) and :data:`QUICK` (tiny subsets, one seed, short sequences: a smoke test whose
    numbers say nothing about the claims)."""

    mode: str
    seeds: int
    limit_seconds: int
    # images: the first N samples of Fashion-MNIST's training and test sets
    image_train: int
    image_test: int
    image_epochs: int
    shift_test: int  # test images the shifted accuracies are measured on (17 passes each)
    probe_train: int  # training images the linear probes are fitted on
    probe_iter: int  # LogisticRegression's max_iter
    clip_train: int  # 3-D clips trained on (each four frames of a training image)
    # recurrent: the adding problem at each length, the copy task, a character model
    lengths: tuple[int, ...]
    hidden: int
    adding_train: int
    adding_test: int
    adding_epochs: int
    copy_length: int
    copy_train: int
    copy_epochs: int
    text_chars: int | None  # characters of the corpus used (None: all)
    text_hidden: int  # hidden units of the one-layer character model; deeper ones match its parameters
    text_epochs: int
    # fixed by design, the same in both modes
    image_batch: int = 32
    shifts: tuple[int, ...] = (1, 2, 3, 4)
    frame: int = 36  # the larger input size of 6.1.2: a 28x28 image in a 36x36 frame
    adding_batch: int = 50
    adding_lr: float = 0.01
    copy_batch: int = 50
    copy_lr: float = 0.01
    text_length: int = 50
    text_batch: int = 32
    text_lr: float = 0.01  # unused since the learning rate is swept (text_lrs); kept for old records
    # the character models train until the validation loss (the last tenth of the training windows,
    # held out) has not improved for text_patience epochs, at most text_epochs, at each of text_lrs
    text_lrs: tuple[float, ...] = (0.003, 0.01)
    text_patience: int = 3
    text_validation: float = 0.1
    # the learning rates are swept on the first text_sweep_seeds seeds (None: every seed); the others
    # train at the rate the sweep chose
    text_sweep_seeds: int | None = None
    # the character models' learning rate is multiplied by text_decay every text_decay_every epochs (None:
    # constant), so that it anneals within the cap
    text_decay_every: int | None = None
    text_decay: float = 0.5
    depths: tuple[int, ...] = (1, 2, 3)
    # the stall's controls (3.2.3): the tanh RNN at every T with each of these learning rates, and at a
    # short T where it should train (the positive control)
    stall_lrs: tuple[float, ...] = (0.001, 0.01)
    control_length: int = 10
    clip: float = 1.0
    gradflow_samples: int = 32

    def with_seeds(self, seeds: int | None) -> Budget:
        return self if not seeds else dataclasses.replace(self, seeds=int(seeds))

    def describe(self) -> dict:
        return dataclasses.asdict(self)


FULL = Budget(
    mode="full",
    seeds=3,
    limit_seconds=45 * 60,
    image_train=8_000,
    image_test=2_000,
    image_epochs=3,
    shift_test=1_000,
    probe_train=8_000,
    probe_iter=300,
    clip_train=3_000,
    lengths=(50, 150, 400),
    hidden=32,
    adding_train=5_000,
    adding_test=500,
    adding_epochs=6,
    copy_length=20,
    copy_train=5_000,
    copy_epochs=12,
    # Shakespeare's plays, 1.1 MB: windows of 100 characters, batch 64 (155 steps an epoch); a model of
    # 64 units (41k parameters with its embedding and head) still improved after 30 epochs at a constant
    # rate, so the rate halves every 5 epochs and anneals within the cap (the curves and the verdict at
    # half the cap are on the page)
    text_chars=1_100_000,
    text_hidden=64,
    text_epochs=30,
    text_length=100,
    text_batch=64,
    text_lrs=(0.01, 0.02, 0.04),
    text_patience=2,
    text_sweep_seeds=1,
    text_decay_every=5,
)

QUICK = Budget(
    mode="quick",
    seeds=1,
    limit_seconds=3 * 60,
    image_train=1_000,
    image_test=500,
    image_epochs=1,
    shift_test=300,
    probe_train=600,
    probe_iter=100,
    clip_train=500,
    lengths=(10, 20, 40),
    hidden=16,
    adding_train=256,
    adding_test=64,
    adding_epochs=1,
    copy_length=5,
    copy_train=256,
    copy_epochs=1,
    text_chars=20_000,
    text_hidden=32,
    text_epochs=2,
    text_lrs=(0.01,),
    text_patience=1,
    gradflow_samples=8,
    control_length=5,
)


@dataclass
class Claim:
    """One claim of the article, its experiment, its numbers and its verdict.

    ``rows`` is the table the page shows (``columns`` in order, values already rounded for reading);
    ``numbers`` holds the raw values the verdict is decided from (``decide(numbers)`` of the
    claim's spec), so a reader of ``claims.json`` can check the verdict against its rule."""

    name: str
    title: str
    section: str
    quote: str
    experiment: str = ""
    rule: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    verdict: str = ""
    reason: str = ""
    figures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    revision: str = ""  # what changed since the verdict a rerun replaces (the claim spec's ``revision``)

    @property
    def command(self) -> str:
        return f"layerlab claims --only {self.name}"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["command"] = self.command
        return d


# ----------------------------------------------------------------------------------------------
# Statistics over seeds
# ----------------------------------------------------------------------------------------------
def stats(values) -> dict:
    """Mean, sample standard deviation (0 for one value), min, max and n of finite ``values``."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    a = np.asarray(v, dtype=np.float64)
    sd = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return {"mean": float(a.mean()), "sd": sd, "min": float(a.min()), "max": float(a.max()), "n": len(a)}


def standard_error(s: dict) -> float:
    """The standard error of a :func:`stats` mean, ``sd / sqrt(n)`` (0 for one value)."""
    return 0.0 if not s["n"] or s["sd"] is None else float(s["sd"]) / math.sqrt(s["n"])


def difference(a: dict, b: dict) -> tuple[float, float]:
    """``mean(a) - mean(b)`` and its bound ``2 sqrt(se_a^2 + se_b^2)``, twice the standard error of the
    difference of two independent means: the decision rule every comparison of two arms uses, stated
    before the runs (a difference beyond the bound is one the seeds' spread does not explain)."""
    return float(a["mean"] - b["mean"]), 2.0 * math.hypot(standard_error(a), standard_error(b))


def clearly_below(a: dict, b: dict) -> bool:
    """True when the mean of ``a`` is below the mean of ``b`` by more than :func:`difference`'s bound."""
    if a["mean"] is None or b["mean"] is None:
        return False
    d, bound = difference(b, a)
    return d > bound


def clearly_above_value(a: dict, value: float) -> bool:
    """True when the mean of ``a`` less twice its standard error is at least ``value``."""
    return a["mean"] is not None and a["mean"] - 2 * standard_error(a) >= value


def clearly_below_value(a: dict, value: float) -> bool:
    """True when the mean of ``a`` plus twice its standard error is below ``value``."""
    return a["mean"] is not None and a["mean"] + 2 * standard_error(a) < value


def pm(s: dict, digits: int = 4, scale: float = 1.0, unit: str = "") -> str:
    """``mean ± sd`` of :func:`stats` for the page (``mean`` alone for one seed)."""
    if s["mean"] is None:
        return "n/a"
    m = f"{s['mean'] * scale:.{digits}f}{unit}"
    if s["n"] < 2:
        return m
    return f"{m} ± {s['sd'] * scale:.{digits}f}"


def pct(s: dict, digits: int = 1) -> str:
    """A :func:`stats` of fractions as percentages, ``88.1 ± 0.4%``."""
    return pm(s, digits, 100.0, "%") if s["n"] < 2 or s["mean"] is None else f"{pm(s, digits, 100.0)}%"


def sig(v, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (ratios spanning 1e-12..10)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{float(v):.{digits}g}"


def geomean(values) -> float | None:
    """Geometric mean of the finite values (0 when one is 0: a gradient that underflowed to nothing)."""
    v = [float(x) for x in values if x is not None and math.isfinite(x) and x >= 0]
    if not v:
        return None
    if min(v) == 0:
        return 0.0
    return float(math.exp(sum(math.log(x) for x in v) / len(v)))


# ----------------------------------------------------------------------------------------------
# The context: data and shared trainings, each made once
# ----------------------------------------------------------------------------------------------
class Context:
    """What the claim experiments share in one ``layerlab claims`` run.

    Args:
        budget: the sizes (:data:`FULL` or :data:`QUICK`).
        data_dir: where to look first for Fashion-MNIST (as ``layerlab train --data-dir``).
        text: a UTF-8 text file for the character model (None: the corpus :mod:`.rnn` builds).
        results: the folder figures and CSVs go to.
        warm: image models to warm up (one batch, untimed) when the images are loaded.
        say: called with every line of progress (the CLI prints them and keeps them in the log).
    """

    def __init__(
        self,
        budget: Budget,
        *,
        data_dir: str | Path | None = None,
        text: str | Path | None = None,
        results: str | Path = ".",
        warm: tuple[ModelConfig, ...] = (),
        say: Callable[[str], None] | None = None,
    ):
        self.budget = budget
        self.data_dir = data_dir
        self.text = Path(text) if text else None
        self.results = Path(results)
        self._say = say
        self.warm = warm
        self.image_source = ""
        self.notes: list[str] = []  # said once on the page, above the claims
        self._images: Dataset | None = None
        self._cache: dict = {}

    def say(self, line: str) -> None:
        log.info("%s", line)
        if self._say is not None:
            self._say(line)

    def seeds(self) -> range:
        return range(self.budget.seeds)

    # -- images ----------------------------------------------------------------------------------
    def images(self) -> Dataset:
        """Fashion-MNIST, the first ``image_train``/``image_test`` samples. In quick mode, when it is
        not installed, generated bar images instead (said on the page); in a full run, an error."""
        if self._images is not None:
            return self._images
        b = self.budget
        try:
            ds = load_dataset("fashion-mnist", data_dir=self.data_dir, download=b.mode == "full")
            self.image_source = f"Fashion-MNIST ({ds.source})"
        except LayerlabError as e:
            if b.mode == "full":
                raise DataError(
                    f"the image claims need Fashion-MNIST and it was not found ({e}); install Debian's "
                    f"dataset-fashion-mnist or pass --data-dir"
                ) from None
            ds = bar_images(b.image_train, b.image_test)
            self.image_source = "generated bar images (Fashion-MNIST not found)"
            self.notes.append(
                "Fashion-MNIST was not found, so the image claims ran on generated bar images: their numbers "
                "check that the code runs and say nothing about the article's claims."
            )
        n_tr, n_te = min(b.image_train, len(ds.train)), min(b.image_test, len(ds.test))
        self._images = dataclasses.replace(
            ds, train=ds.train.subset(torch.arange(n_tr)), test=ds.test.subset(torch.arange(n_te))
        )
        self.say(f"images: {self.image_source}, {n_tr:,} training and {n_te:,} test images")
        # the first trainings in a process pay for thread pools and kernel selection: warm up every
        # image model once, untimed, so no model's seconds (section 5 compares them) carry that cost
        cfg = TrainConfig(batch_size=b.image_batch, device="cpu")
        if self.warm:
            seconds = warm_up(list(self.warm), self._images, cfg)
            self.say(f"  warmed up {len(self.warm)} image model(s) in {seconds:.1f} s, untimed")
        return self._images

    def train_image_model(
        self,
        label: str,
        model: ModelConfig | None,
        seed: int,
        *,
        ds: Dataset | None = None,
        lr: float = 1e-3,
        build: Callable[[Dataset], torch.nn.Module] | None = None,
    ) -> dict:
        """Train ``model`` (a ModelConfig; or what ``build(ds)`` returns, for a control no flag
        builds) from ``seed`` on ``ds`` (default :meth:`images`) for the budget's epochs; cached by
        ``label`` and seed. Returns ``model``, ``history``, ``seconds`` (training only, summed over
        epochs), ``parameters``."""
        key = ("image", label, seed)
        if key in self._cache:
            return self._cache[key]
        ds = ds if ds is not None else self.images()
        b = self.budget
        cfg = TrainConfig(epochs=b.image_epochs, batch_size=b.image_batch, lr=lr, seed=seed, device="cpu")
        seed_everything(seed)
        assert build is not None or model is not None, label  # a model config, or a function that builds one
        net = build(ds) if build is not None else build_model_for(cast(ModelConfig, model), ds.spec, ds.num_outputs)
        params = sum(p.numel() for p in net.parameters() if p.requires_grad)
        hist = fit(net, ds, cfg).history
        r = {
            "model": net.eval(),
            "history": hist,
            "seconds": float(sum(h["train_seconds"] for h in hist)),
            "parameters": params,
            "accuracy": float(hist[-1]["test_accuracy"]),
        }
        self.say(
            f"  {label}, seed {seed}: {params:,} parameters, test accuracy {r['accuracy']:.4f} after "
            f"{len(hist)} epochs ({r['seconds']:.1f} s)"
        )
        self._cache[key] = r
        return r

    def article_cnn(self, seed: int) -> dict:
        return self.train_image_model("article CNN", ModelConfig(name="article-cnn"), seed)

    # -- sequences --------------------------------------------------------------------------------
    def synthetic(self, task: str, length: int, seed: int) -> Dataset:
        key = ("data", task, length, seed)
        if key not in self._cache:
            b = self.budget
            n_train, n_test = (b.adding_train, b.adding_test) if task == "adding" else (b.copy_train, b.adding_test)
            self._cache[key] = load_dataset(task, length=length, n_train=n_train, n_test=n_test, seed=seed)
        return self._cache[key]

    def recurrent(
        self, task: str, cell: str, length: int, seed: int, *, lr: float | None = None, forget_bias: str | None = None
    ) -> dict:
        """Train ``cell`` (rnn, lstm, gru, residual, or :data:`CONVEX`, the gated convex control of the
        residual cell) on ``task`` (adding or copy) at T = ``length`` from ``seed`` (``lr``: the budget's
        unless given; ``forget_bias``: the LSTM's ``--forget-bias``, Keras's 1 unless given), with the
        gradient flow ``||dL/dh_t||`` measured at initialisation and after training. A run whose loss
        becomes NaN or infinite is kept, as ``diverged``."""
        b = self.budget
        adding = task == "adding"
        lr = float(lr if lr is not None else b.adding_lr if adding else b.copy_lr)
        key = ("recurrent", task, cell, length, seed, lr, forget_bias)
        if key in self._cache:
            return self._cache[key]
        ds = self.synthetic(task, length, seed)
        cfg = TrainConfig(
            epochs=b.adding_epochs if adding else b.copy_epochs,
            batch_size=b.adding_batch if adding else b.copy_batch,
            lr=lr,
            clip=b.clip,
            seed=seed,
            device="cpu",
            channels_last=False,
        )
        seed_everything(seed)
        net = recurrent_model(cell, b.hidden, ds, forget_bias)
        params = sum(p.numel() for p in net.parameters() if p.requires_grad)
        x, y = ds.test.x[: b.gradflow_samples], ds.test.y[: b.gradflow_samples]
        # 4 random probes for the Jacobian curve: the claims read ||dL/dh_t||, which is exact anyway,
        # and the exact Jacobians of T=400 steps would take gigabytes
        init = gradient_flow(net, x, y, task=ds.task, probes=4, label="init", seed=seed)
        t0 = time.perf_counter()
        diverged = None
        try:
            hist = fit(net, ds, cfg).history
        except TrainingError as e:
            hist, diverged = [], str(e)
        seconds = time.perf_counter() - t0
        trained = None if diverged else gradient_flow(net, x, y, task=ds.task, probes=4, label="trained", seed=seed)
        key_metric = "test_loss" if adding else "test_accuracy"
        values = [float(h[key_metric]) for h in hist]
        r = {
            "task": task,
            "cell": cell,
            "lr": lr,
            "forget_bias": forget_bias,
            "length": length,
            "seed": seed,
            "parameters": params,
            "seconds": seconds,
            "history": hist,
            "diverged": diverged,
            "final": values[-1] if values else math.inf if adding else 0.0,
            "worst": (max(values) if adding else min(values)) if values else math.inf if adding else 0.0,
            "grad_init": init.layers[0].grad_norm,
            "grad_trained": trained.layers[0].grad_norm if trained else None,
            "reach_init": _reach(init.layers[0].grad_norm),
            "reach_trained": _reach(trained.layers[0].grad_norm) if trained else None,
            "decay_init": _factor(init.layers[0].grad_fit),
            "decay_trained": _factor(trained.layers[0].grad_fit) if trained else None,
        }
        what = "test MSE" if adding else "recall accuracy"
        variant = (f" lr {lr:g}" if lr != (b.adding_lr if adding else b.copy_lr) else "") + (
            f" forget bias {forget_bias}" if forget_bias else ""
        )
        self.say(
            f"  {task} T={length} {cell}{variant}, seed {seed}: {what} {r['final']:.4g} in {seconds:.1f} s; "
            f"||dL/dh_1||/||dL/dh_T|| {sig(r['reach_init'])} at init, {sig(r['reach_trained'])} trained"
            + (f" (diverged: {diverged})" if diverged else "")
        )
        self._cache[key] = r
        return r


#: the residual cell's control: the same gates, weights and initialisation, but the convex update
#: ``h_t = (1 - z_t) h_{t-1} + z_t tanh(W_h x_t + U_h h_{t-1} + b_h)`` with a free ``U``: gated, not a
#: residual sum (``benchmarks/results/residual_fix.md`` screened it as ``convex``)
CONVEX = "convex"


class ConvexCell(ResidualCell):
    """The gated convex update of :data:`CONVEX`: a GRU-like interpolation with no identity path."""

    name = CONVEX

    def recurrent_matrix(self, U: torch.Tensor) -> torch.Tensor:
        return U  # free, as in the cell before the antisymmetric fix

    def step(self, xw_t, state, U, b_U):
        (h_prev,) = state
        a_z, a_h = (xw_t + (h_prev @ U.t() if b_U is None else torch.addmm(b_U, h_prev, U.t()))).chunk(2, dim=1)
        z = torch.sigmoid(a_z)  # (B, H)
        return ((1 - z) * h_prev + z * torch.tanh(a_h),)  # (B, H)


#: the memory claim's control: the tanh RNN with its recurrent matrix held at zero,
#: ``h_t = tanh(W x_t + b)``, which keeps nothing of an input past its step
MEMORYLESS = "memoryless"


def recurrent_model(cell: str, hidden: int, ds: Dataset, forget_bias: str | None = None) -> torch.nn.Module:
    """The model a recurrent claim trains: a registered cell (``forget_bias`` for the LSTM), the
    :data:`CONVEX` control, built as the residual model (same parameters, same initialisation) whose
    step is the convex one, or the :data:`MEMORYLESS` tanh RNN."""
    if cell == CONVEX:
        net = build_model_for(ModelConfig(name="residual", hidden=hidden), ds.spec, ds.num_outputs)
        net.rnn.cell_impl = ConvexCell()  # type: ignore[union-attr]  # the residual model's recurrent layer
        return net
    if cell == MEMORYLESS:
        net = build_model_for(ModelConfig(name="rnn", hidden=hidden), ds.spec, ds.num_outputs)
        recurrent = [p for name, p in net.named_parameters() if "weight_hh" in name]
        assert len(recurrent) == 1, "one recurrent matrix in the one-layer tanh RNN"
        with torch.no_grad():
            recurrent[0].zero_()
        recurrent[0].requires_grad_(False)
        return net
    return build_model_for(ModelConfig(name=cell, hidden=hidden, forget_bias=forget_bias), ds.spec, ds.num_outputs)


def _reach(norms) -> float | None:
    """``||dL/dh_1|| / ||dL/dh_T||``: how much of the last step's gradient reaches the first step."""
    return float(norms[0] / norms[-1]) if norms[-1] > 0 else None


def _factor(fit) -> float | None:
    return None if fit is None else float(fit.factor)


def bar_images(n_train: int, n_test: int, seed: int = 0) -> Dataset:
    """A stand-in for Fashion-MNIST where it is not installed (quick mode only): 28x28 grey images,
    class k a bright bar at row 2k+3 over faint noise, pixels in [0, 1]."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, n)
        x = rng.random((n, 1, 28, 28), dtype=np.float32) * 0.25
        for i, k in enumerate(y):
            r = 2 * int(k) + 3
            x[i, 0, r : r + 2, 4:24] = 1.0
        return Split(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))

    return Dataset("bars", make(n_train), make(n_test), "classification", [str(i) for i in range(10)], 10)
