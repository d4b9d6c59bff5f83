"""Every claim of the article, measured: ``layerlab claims`` runs one experiment per claim under a
stated budget and writes one page (``docs/claims.md``) with, for each claim, the article's words and
section, the experiment, the command that reruns it, the numbers, a verdict and a figure; the log,
the figures (with their CSVs) and every number as JSON go to ``benchmarks/results/claims/``. Those are
the paths in layerlab's source tree; run elsewhere, it writes to ``claims/`` (:func:`default_paths`).

A verdict is never written by hand: each claim states a rule, and its ``decide`` function applies the
rule to the raw numbers kept in ``claims.json`` (``numbers``), so anyone can check it. Verdicts are
``supported``, ``supported with a caveat`` or ``not supported``.

- :mod:`.cnn`: 6.1.1 (conv features, spatial information), 2 (pooling), 6.1.2 (input size, 2-D only),
  5 (fewer parameters); :mod:`.kernels`: 2 (each kernel learns a particular pattern);
- :mod:`.rnn`: 3.2.3 and 6.2.1 (vanishing gradient), 6.2.2 (deeper, residual, LSTM and GRU);
- :mod:`.base`: the budget (:data:`~.base.FULL`, :data:`~.base.QUICK`), the claim record, the shared
  trainings; :mod:`.figures`: the figures.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, LayerlabError
from . import cnn, corpus, kernels, rnn
from .base import FULL, QUICK, VERDICTS, Budget, Claim, Context

DEFAULT_OUT = "docs/claims.md"
DEFAULT_RESULTS = "benchmarks/results/claims"
ONLY_DIR = "claims-only"  # where a partial run (--only) writes unless told: never over the full page
ELSEWHERE_DIR = "claims"  # where a full run writes unless told, outside layerlab's own source tree


def source_tree(folder: Path) -> bool:
    """True when ``folder`` is layerlab's own source tree (a ``pyproject.toml`` of the project named
    layerlab beside ``src/layerlab``): the one place whose docs/ and benchmarks/ hold the committed page
    and results."""
    import tomllib

    try:
        project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return project.get("name") == "layerlab" and (folder / "src" / "layerlab").is_dir()


def default_paths(partial: bool, folder: Path | None = None) -> tuple[Path, Path]:
    """Where a run writes its page and results unless told, from ``folder`` (default: the working
    directory): a partial run (--only) in claims-only/; a full one in layerlab's source tree over the
    committed docs/claims.md and benchmarks/results/claims, anywhere else in claims/ (claims/claims.md,
    claims/results), never scattering docs/ and benchmarks/ folders into a folder of the user's."""
    if partial:
        return Path(ONLY_DIR) / "claims.md", Path(ONLY_DIR)
    if source_tree(Path.cwd() if folder is None else folder):
        return Path(DEFAULT_OUT), Path(DEFAULT_RESULTS)
    return Path(ELSEWHERE_DIR) / "claims.md", Path(ELSEWHERE_DIR) / "results"


@dataclass(frozen=True)
class ClaimSpec:
    """A claim: the article's words (quoted exactly from ARTICLE.md; fragments joined by `` … ``), its
    rule, the experiment that measures it and the function that applies the rule to the numbers."""

    name: str
    title: str
    section: str
    quote: str
    rule: str
    run: Callable[[Context, Claim], None]
    decide: Callable[[dict], tuple[str, str]]
    #: what changed in the experiment or its rule since the page's earlier verdict (shown beside it); each
    #: record keeps the revision it ran under, so a page whose record has another one says the claim has
    #: changed since it ran (a new revision is a new text)
    revision: str = ""


CLAIMS: dict[str, ClaimSpec] = {
    s.name: s
    for s in (
        ClaimSpec(
            "conv-features",
            "Convolution learns features by itself",
            "6.1.1",
            "Why CNNs do well on images: conv layers learn features automatically (no hand-made features) and "
            "keep spatial information, so local features are handled well.",
            cnn.CONV_FEATURES_RULE,
            cnn.run_conv_features,
            cnn.decide_conv_features,
        ),
        ClaimSpec(
            "kernels",
            "Each kernel learns to recognise a particular pattern",
            "2",
            "small learnable kernels (filters) slide over the image and extract features; each kernel learns to "
            "recognise a particular pattern.",
            kernels.KERNELS_RULE,
            kernels.run_kernels,
            kernels.decide_kernels,
        ),
        ClaimSpec(
            "spatial",
            "Convolution keeps spatial information, so local features are handled well",
            "6.1.1",
            "and keep spatial information, so local features are handled well.",
            cnn.SPATIAL_RULE,
            cnn.run_spatial,
            cnn.decide_spatial,
        ),
        ClaimSpec(
            "pooling",
            "Pooling lowers the parameter count and makes the model more robust",
            "2",
            "shrinks the feature maps by sampling, which lowers the parameter count and makes the model more robust.",
            cnn.POOLING_RULE,
            cnn.run_pooling,
            cnn.decide_pooling,
            revision=(
                "a stride-2 convolution control (the same convs, downsampling without a max) joins the table and "
                "the rule, and 'more robust' now compares the paired difference with twice its standard error "
                "(it was twice its sd)."
            ),
        ),
        ClaimSpec(
            "input-size",
            "A CNN needs a fixed input size and handles 2-D images only",
            "6.1.2",
            'strong requirements on input size ("the input must match the kernel size"; in practice: a '
            "Flatten+Dense head fixes the input size); … conv layers only handle 2-D images; 3-D data such as "
            "video needs 3-D convolution.",
            cnn.INPUT_SIZE_RULE,
            cnn.run_input_size,
            cnn.decide_input_size,
            revision="a 2-D CNN on one frame of each clip is the 3-D row's control.",
        ),
        ClaimSpec(
            "memory",
            "The tanh RNN keeps information from the past",
            "2",
            "input, hidden layer and output are connected through time, so the network keeps information from the "
            "past.",
            rnn.MEMORY_RULE,
            rnn.run_memory,
            rnn.decide_memory,
        ),
        ClaimSpec(
            "vanishing",
            "Gradients vanish in the tanh RNN, and training stalls",
            "3.2.3, 6.2.1",
            "When these factors have norm below 1 the product shrinks exponentially in T. … during training the "
            "gradient decays step by step until it is tiny or zero, so training becomes slow or stalls.",
            rnn.VANISHING_RULE,
            rnn.run_vanishing,
            rnn.decide_vanishing,
            revision=(
                "the tanh RNN now also trains at a lower learning rate at every T, and at a short T as a positive "
                "control; 'training stalls' is judged at the longest T over every learning rate with the seeds' "
                "spread (mean + 2 standard errors), where it was the mean at the budget's lr at every T but the "
                "shortest, with no control."
            ),
        ),
        ClaimSpec(
            "deeper",
            "Deeper (stacked) RNNs add capacity",
            "6.2.2",
            "deeper (stacked) recurrent networks, for more capacity;",
            rnn.DEEPER_RULE,
            rnn.run_deeper,
            rnn.decide_deeper,
            revision=(
                "the character models read 1.1 MB of Shakespeare's plays (they read 130 KB of licence texts) and are "
                "tested on every tenth block of it (the test text was the last document); they are 64 units wide "
                "(41k parameters; 128 units and 120k before); their learning rate halves every 5 epochs, so that it "
                "anneals and the validation loss levels off within a 30-epoch cap (at a constant rate, every depth "
                "still improved after 30 epochs); the learning rates 0.01, 0.02 and 0.04 are swept on the first "
                "seed (0.003 and 0.01 on every seed); and the page also gives the verdict at half the epoch cap. "
                "Earlier still (the run of 2026-11-28), the models trained 10 epochs at one learning rate with no "
                "early stopping and no training loss."
            ),
        ),
        ClaimSpec(
            "residual",
            "Residual recurrent connections reduce vanishing gradients",
            "6.2.2",
            "recurrent residual connections, to reduce vanishing gradients;",
            rnn.RESIDUAL_RULE,
            rnn.run_residual,
            rnn.decide_residual,
            revision=(
                "the page now says which cell passes (gated, antisymmetric, the replacement of a first residual cell "
                "whose state and gradient exploded); the gated convex control without a residual sum and the LSTM "
                "with chrono initialisation join the table; 'lower MSE than the tanh RNN' now needs a difference "
                "beyond twice its standard error, and the gradient share must also beat the convex control's."
            ),
        ),
        ClaimSpec(
            "gated",
            "LSTM and GRU carry long dependencies",
            "2, 6.2.2",
            "stores past inputs, for long-term dependencies. … more elaborate cells: LSTM and GRU.",
            rnn.GATED_RULE,
            rnn.run_gated,
            rnn.decide_gated,
            revision=(
                "the LSTM also runs with chrono initialisation of its forget gate (`--forget-bias chrono`) beside "
                "Keras's bias 1, and counts as carrying a task when either does; the text gives the adding task's "
                "memory as T/2 to T steps (it said ~T/2) and the copy task's blanks as T - 1 and a delimiter."
            ),
        ),
        ClaimSpec(
            "efficiency",
            "Fewer parameters, faster training",
            "5",
            "Optimisation becomes the focus: fewer parameters, faster training, lower compute cost.",
            cnn.EFFICIENCY_RULE,
            cnn.run_efficiency,
            cnn.decide_efficiency,
            revision=(
                "the rule compared one seed against a target set half a point below the article CNN's mean, so one "
                "article-CNN seed a tenth of a point short failed it and the page said 'not sooner' beside 1.5 s "
                "against 18.2 s; now the means are compared with their spread, a seed that misses the target counts "
                "its whole training, FLOPs per image and compute to the target are judged, and the article's "
                "layers trained with the smaller models' recipe (batch norm, lr 3e-3) control that confound."
            ),
        ),
    )
}


def claim_names() -> list[str]:
    return list(CLAIMS)


def parse_only(only: str | list[str] | None) -> list[str]:
    """The claims a ``--only`` list names, in the page's order; every claim when None."""
    if only is None:
        return claim_names()
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only) if n.strip()]
    unknown = [n for n in names if n not in CLAIMS]
    if unknown or not names:
        raise ConfigError(f"--only {','.join(unknown) or '(empty)'}: unknown claim; the claims are {', '.join(CLAIMS)}")
    return [n for n in CLAIMS if n in names]


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------
def check_text(text: str | Path) -> None:
    """ConfigError unless ``--text`` is a regular file of UTF-8 text, found before any claim runs
    (the deeper-RNN claim reads it after the others have run for minutes)."""
    path = Path(text)
    if not path.exists():
        raise ConfigError(f"--text {text}: no such file")
    if not path.is_file():  # a folder, a FIFO or a device: reading it could block or never end
        raise ConfigError(f"--text {text}: not a regular file")
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"--text {text}: not UTF-8 text (byte {e.start} cannot be decoded)") from None
    except OSError as e:
        raise ConfigError(f"--text {text}: cannot be read ({e.strerror or e})") from None


def run_claims(
    *,
    quick: bool = False,
    only: str | list[str] | None = None,
    seeds: int | None = None,
    threads: int | None = None,
    data_dir: str | Path | None = None,
    text: str | Path | None = None,
    out: str | Path | None = None,
    results: str | Path | None = None,
    update: bool = False,
    jobs: int | None = None,
    say: Callable[[str], None] | None = None,
) -> dict:
    """Run the experiments of the claims ``only`` names (default all) and write the page ``out``, and
    ``claims.json``, ``claims.log`` and the figures with their CSVs into ``results``.

    Args:
        quick: the :data:`~.base.QUICK` budget (a smoke test, minutes) instead of :data:`~.base.FULL`.
        seeds: override the budget's number of seeds.
        threads: torch CPU threads while it runs (the caller's setting is put back after); default 2 for a
            full run, 1 for a quick one (its tiny steps took 280 s on two threads and 25 s on one, on a
            2-core machine busy with other jobs).
        data_dir: where to look first for Fashion-MNIST; text: the character model's corpus.
        out, results: default ``docs/claims.md`` and ``benchmarks/results/claims`` in layerlab's
            source tree, ``claims/claims.md`` and ``claims/results`` elsewhere, or, for a partial
            run (``only``), ``claims-only/claims.md`` and ``claims-only``, so it never overwrites the
            page of a full run unless told to (see :func:`default_paths`).
        update: rerun the claims ``only`` names and put them in place of theirs in the full run's
            ``claims.json`` (default paths: the full run's), keeping every other claim and each replaced
            claim's earlier verdict; the page is rendered again from the merged file.
        jobs: processes that run claims at once (default 2 for a full run on a machine of 2 cores or
            more, else 1), each with ``threads`` torch threads (default 1 then): claims that share trainings
            stay in one process (:data:`GROUPS`), so every number is the one a run of its group alone gives.
        say: called with each line of progress (everything also goes to ``results/claims.log``).
    Returns:
        What ``claims.json`` holds: ``meta`` and ``claims`` (one dict per claim, ``numbers`` raw).
    """
    names = parse_only(only)
    if update and only is None:
        raise ConfigError("--update reruns the claims --only names and merges them into a full run; give --only")
    partial = only is not None and not update
    if seeds is not None and seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    budget: Budget = (QUICK if quick else FULL).with_seeds(seeds)
    given_threads, given_jobs = threads, jobs
    jobs = jobs or (1 if quick else max(1, min(2, os.cpu_count() or 1)))
    threads = threads or (1 if quick or jobs > 1 else 2)
    default_out, default_results = default_paths(partial)
    out = Path(out) if out else default_out
    results = Path(results) if results else default_results
    if "conv-features" in names:
        _need_sklearn()
    if text is not None:
        check_text(text)
    elif "deeper" in names and not quick:
        corpus.shakespeare_archive()  # fetched (or found) before any claim runs: offline, one sentence now
    earlier = _earlier_run(results, budget) if update else None
    replaced = _replaced_run(results, budget) if not update and not partial else None
    if earlier is None:
        _prepare_results(results)
    else:
        names = list(dict.fromkeys(n.strip() for n in (only.split(",") if isinstance(only, str) else only or [])))
        names = [n for n in names if n]  # an update runs its claims in the order given (checked above)
    log_path = results / "claims.log"
    log_file = open(log_path, "a" if update else "w", encoding="utf-8")  # closed in the finally below

    def emit(line: str) -> None:
        log_file.write(line + "\n")
        log_file.flush()
        if say is not None:
            say(line)

    cmd = command_line(
        quick, only, seeds, given_threads, data_dir, text, out, results, partial, update=update, jobs=given_jobs
    )
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    env = {**environment(threads), "jobs": jobs}
    t_start = time.perf_counter()
    claims: list[Claim] = []
    sources: dict[str, str] = {}
    notes: list[str] = []
    merged: dict = {}

    def finished(claim: Claim) -> None:
        nonlocal merged
        claims.append(claim)
        if earlier is not None:  # merged as each claim ends: a stopped update keeps the claims it finished
            meta = _meta(env, budget, [c.name for c in claims], False, time.perf_counter() - t_start, sources, notes)
            merged = _write_update(earlier, {**meta, "command": cmd}, claims, out, results)

    try:
        emit(
            f"layerlab claims: {_n(len(names), 'claim')}, {budget.mode} mode ({_n(budget.seeds, 'seed')}, budget "
            f"{budget.limit_seconds} s) on {env['cpu']} with {_n(env['threads'], 'torch thread')}"
            + (f" in each of {jobs} processes" if jobs > 1 else "")
        )
        groups = _groups(names) if jobs > 1 else [names]
        if len(groups) > 1:
            _run_parallel(groups, jobs, budget, data_dir, text, results, threads, emit, finished, sources, notes)
        else:
            ctx = Context(budget, data_dir=data_dir, text=text, results=results, warm=cnn.WARM_UP, say=emit)
            for i, name in enumerate(names, 1):
                finished(_run_one(ctx, name, i, len(names), emit))
                sources["images"] = ctx.image_source
            notes += ctx.notes
        claims.sort(key=lambda c: names.index(c.name))  # the page's order (an update's: the order given)
        total = time.perf_counter() - t_start
        within = total <= budget.limit_seconds
        emit(
            f"total {total:.0f} s of a {budget.limit_seconds} s budget"
            + ("" if within else " (over budget: a busy machine, or the budget needs adjusting)")
        )
        if earlier is not None:
            doc = merged
        else:
            meta = _meta(env, budget, names, partial, total, sources, notes)
            doc = {"meta": {**meta, "command": cmd}, "claims": [_jsonable(c.to_dict()) for c in claims]}
            _write(carry_previous(doc, replaced), out, results)
        emit(f"wrote {out}, {results / 'claims.json'}, {log_path} and {sum(len(c.figures) for c in claims)} figures")
        return doc
    finally:
        torch.set_num_threads(previous)
        log_file.close()


def _run_one(ctx: Context, name: str, i: int, n: int, emit: Callable[[str], None]) -> Claim:
    """Run one claim's experiment in ``ctx`` and decide its verdict from its numbers."""
    spec = CLAIMS[name]
    emit(f"[{i}/{n}] {spec.section} {spec.title} ({name})")
    claim = Claim(name=name, title=spec.title, section=spec.section, quote=spec.quote, rule=spec.rule)
    claim.revision = spec.revision
    t0 = time.perf_counter()
    spec.run(ctx, claim)
    claim.verdict, claim.reason = spec.decide(_jsonable(claim.numbers))
    claim.seconds = time.perf_counter() - t0
    emit(f"  -> {claim.verdict}: {claim.reason} ({claim.seconds:.0f} s)")
    return claim


#: Claims that share trainings run in one process (its :class:`Context` trains each shared model once):
#: the image claims share Fashion-MNIST and the article's CNN, the adding-task claims their runs; the
#: character models share nothing. Longest first (on 2 cores: the character models about as long as the
#: two others together), so ``--jobs 2`` starts the two longest groups and the third follows the first to end.
GROUPS = (
    ("text", ("deeper",)),
    ("adding", ("memory", "vanishing", "residual", "gated")),
    ("images", ("conv-features", "kernels", "spatial", "pooling", "input-size", "efficiency")),
)


def _groups(names: list[str]) -> list[list[str]]:
    """``names`` split by :data:`GROUPS` (each group in ``names``' order; a claim of no group alone)."""
    out = [[n for n in names if n in members] for _, members in GROUPS]
    known = {n for _, members in GROUPS for n in members}
    out += [[n] for n in names if n not in known]
    return [g for g in out if g]


def _group_worker(group: list[str], budget: Budget, data_dir, text, results: Path, threads: int, queue) -> None:
    """One process of a parallel run: its claims in one :class:`Context`, every line and every finished
    claim sent to the parent as it comes; an error is sent as its class name and sentence."""
    import multiprocessing as mp

    torch.set_num_threads(threads)
    label = "+".join(group) if len(group) < 3 else f"{group[0]}..{group[-1]}"

    def say(line: str) -> None:
        queue.put(("line", f"[{label}] {line}"))

    try:
        ctx = Context(budget, data_dir=data_dir, text=text, results=results, warm=cnn.WARM_UP, say=say)
        for i, name in enumerate(group, 1):
            claim = _run_one(ctx, name, i, len(group), say)
            queue.put(("claim", claim, ctx.image_source))
        queue.put(("done", ctx.notes, mp.current_process().name))
    except LayerlabError as e:
        queue.put(("error", type(e).__name__, str(e)))
    except BaseException as e:  # a bug or an interrupt: the parent stops the other processes
        import traceback

        queue.put(("error", "", "".join(traceback.format_exception(e))))


def _run_parallel(groups, jobs, budget, data_dir, text, results, threads, emit, finished, sources, notes) -> None:
    """Run the ``groups`` in at most ``jobs`` processes at once (spawned: no state inherited), each with
    ``threads`` torch threads; ``finished`` gets each claim as its process ends it."""
    import multiprocessing as mp
    import queue as queue_mod

    from .. import errors

    spawn = mp.get_context("spawn")
    q = spawn.Queue()
    waiting = list(groups)
    running: dict = {}

    def start() -> None:
        while waiting and len(running) < jobs:
            g = waiting.pop(0)
            p = spawn.Process(target=_group_worker, args=(g, budget, data_dir, text, results, threads, q), daemon=True)
            p.start()
            running[p] = g

    try:
        start()
        done = 0
        while done < len(groups):
            try:
                msg = q.get(timeout=1.0)
            except queue_mod.Empty:
                for p, g in running.items():
                    if not p.is_alive() and p.exitcode != 0:  # killed before it could say why
                        raise LayerlabError(
                            f"a claims process ({', '.join(g)}) stopped with exit code {p.exitcode}"
                        ) from None
                continue
            kind = msg[0]
            if kind == "line":
                emit(msg[1])
            elif kind == "claim":
                if msg[2]:
                    sources["images"] = msg[2]
                finished(msg[1])
            elif kind == "done":
                notes += [n for n in msg[1] if n not in notes]
                done += 1
                for p in [p for p in running if p.name == msg[2]]:
                    p.join()
                    running.pop(p)
                start()
            elif kind == "error":
                cls = getattr(errors, msg[1], None) if msg[1] else None
                if isinstance(cls, type) and issubclass(cls, LayerlabError):
                    raise cls(msg[2])
                raise LayerlabError(f"a claims process failed:\n{msg[2]}")
    finally:
        for p in running:
            if p.is_alive():
                p.terminate()
            p.join(timeout=10)
        q.close()


def _meta(env: dict, budget: Budget, names: list[str], partial: bool, total: float, sources: dict, notes: list):
    return {
        **env,
        "mode": budget.mode,
        "seeds": budget.seeds,
        "claims_run": names,
        "partial": partial,
        "total_seconds": round(total, 1),
        "budget_seconds": budget.limit_seconds,
        "within_budget": total <= budget.limit_seconds,
        "image_data": sources.get("images") or None,
        "notes": list(notes),
        "budget": budget.describe(),
    }


def _write(doc: dict, out: Path, results: Path) -> None:
    (results / "claims.json").write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_page(doc, out, results), encoding="utf-8")


def _write_update(earlier: dict, meta: dict, claims: list[Claim], out: Path, results: Path) -> dict:
    """Merge the claims an update has finished into the results as they stand on disk (another update
    may have merged its own claims since this one started: the file is read again under a lock), write
    ``claims.json`` and the page, and remove the figures of the claims' earlier records that they no
    longer write. Called after each claim, so a stopped update keeps the claims it finished."""
    path = results / "claims.json"
    with open(path, "r+", encoding="utf-8") as f:
        _lock(f)
        current = json.loads(f.read())
        doc = merge(current, {"meta": meta, "claims": [_jsonable(c.to_dict()) for c in claims]})
        f.seek(0)
        f.truncate()
        f.write(json.dumps(doc, indent=1, allow_nan=False) + "\n")
        f.flush()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_page(doc, out, results), encoding="utf-8")
    for c in claims:
        old = next((o for o in earlier["claims"] if o["name"] == c.name), None)
        for fig in set(old["figures"] if old else []) - set(c.figures):
            for p in (results / fig, (results / fig).with_suffix(".csv")):
                p.unlink(missing_ok=True)
    return doc


def _lock(f) -> None:
    """An exclusive lock on an open file, released when it closes (POSIX; elsewhere none)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: two updates into one folder at once are not guarded
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)


def _earlier_run(results: Path, budget: Budget) -> dict:
    """The full run ``--update`` merges into: ``results/claims.json``, of a full (not partial) run in
    the same mode. ConfigError, one sentence, otherwise."""
    path = results / "claims.json"
    if not path.is_file():
        raise ConfigError(f"{path}: no claims.json to update; --update merges into the results of a full run")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        meta, claims = doc["meta"], doc["claims"]
        mode, partial = meta["mode"], meta.get("partial", False)
        if not all(isinstance(c, dict) and c["name"] in CLAIMS for c in claims):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: not the claims.json of a layerlab claims run") from None
    if partial:
        raise ConfigError(f"{path}: the results of a partial run (--only); --update merges into a full run's")
    if mode != budget.mode:
        raise ConfigError(
            f"{path}: a {mode} run; --update{' --quick' if budget.mode == 'quick' else ''} reruns "
            f"in {budget.mode} mode, and the page would mix the two"
        )
    return doc


def _replaced_run(results: Path, budget: Budget) -> dict | None:
    """The full run in ``results`` that a new full run replaces (same mode), or None when there is none."""
    try:
        return _earlier_run(results, budget)
    except ConfigError:
        return None


def carry_previous(doc: dict, earlier: dict | None) -> dict:
    """Give each claim of the new full run ``doc`` the verdict it had in the full run ``earlier`` it
    replaces, as ``previous`` (the page shows it beside the new one): the verdict that earlier record
    itself replaced when its revision is still the claim's (the change that revision explains is
    still the last), else the earlier record's own. A new claim has none."""
    if earlier is None:
        return doc
    by_name = {c["name"]: c for c in earlier["claims"]}
    for c in doc["claims"]:
        old = by_name.get(c["name"])
        if old is None:
            continue
        if old.get("previous") and old.get("revision", "") == c.get("revision", ""):
            c["previous"] = old["previous"]
        else:
            when = (old.get("run") or {}).get("date", earlier["meta"]["date"])
            c["previous"] = {"verdict": old["verdict"], "reason": old["reason"], "date": when}
    return doc


def merge(earlier: dict, new: dict) -> dict:
    """``earlier``'s page with ``new``'s claims in place of theirs (in the page's order), each replaced
    claim keeping the verdict it replaces as ``previous``, each rerun claim its run's ``run`` (date,
    command); ``meta.updates`` lists the reruns."""
    m = new["meta"]
    when = {k: m[k] for k in ("date", "command", "cpu", "cores", "threads", "torch", "layerlab", "python")}
    by_name = {c["name"]: c for c in earlier["claims"]}
    for c in new["claims"]:
        c["run"] = when
        old = by_name.get(c["name"])
        if old is not None and old.get("run") == when:  # this same update, merged after an earlier claim
            if "previous" in old:
                c["previous"] = old["previous"]
        elif old is not None:
            c["previous"] = {
                "verdict": old["verdict"],
                "reason": old["reason"],
                "date": (old.get("run") or {}).get("date", earlier["meta"]["date"]),
            }
        by_name[c["name"]] = c
    meta = dict(earlier["meta"])
    same = {"date": m["date"], "command": m["command"]}
    meta["updates"] = [
        *(u for u in earlier["meta"].get("updates", []) if {k: u[k] for k in same} != same),
        {**when, "claims": m["claims_run"], "total_seconds": m["total_seconds"], "notes": m["notes"]},
    ]
    meta["notes"] = list(dict.fromkeys([*earlier["meta"].get("notes", []), *m["notes"]]))
    meta["claims_run"] = [n for n in CLAIMS if n in by_name]
    return {"meta": meta, "claims": [by_name[n] for n in CLAIMS if n in by_name]}


def _need_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise LayerlabError(
            "the claim conv-features fits a linear classifier with scikit-learn, which is not installed: "
            "pip install 'layerlab[claims]' (or leave it out with --only)"
        ) from None


#: What a claims run writes into its results folder (and so may replace in a later run).
OWN_SUFFIXES = (".png", ".csv", ".json", ".log")


def _prepare_results(results: Path) -> None:
    """The results folder must be new, empty, or one a claims run wrote (it holds ``claims.json``);
    the files an earlier run wrote there are removed, so no stale figure outlives its run."""
    if results.exists() and not results.is_dir():
        raise ConfigError(f"{results}: --results names a file; give a new or empty directory")
    if results.is_dir() and any(results.iterdir()):
        if not (results / "claims.json").is_file():
            raise ConfigError(
                f"{results}: --results already holds files that layerlab claims did not write; give a new or "
                f"empty directory"
            )
        for p in results.iterdir():
            if p.is_file() and p.suffix in OWN_SUFFIXES:
                p.unlink()
    results.mkdir(parents=True, exist_ok=True)


def command_line(quick, only, seeds, threads, data_dir, text, out, results, partial, *, update=False, jobs=None) -> str:
    parts = ["layerlab claims"]
    if quick:
        parts.append("--quick")
    if only is not None:
        parts.append(f"--only {','.join(parse_only(only))}")
    if update:
        parts.append("--update")
    if seeds is not None:
        parts.append(f"--seeds {seeds}")
    if jobs is not None:
        parts.append(f"--jobs {jobs}")
    if threads is not None:
        parts.append(f"--threads {threads}")
    if data_dir:
        parts.append(f"--data-dir {data_dir}")
    if text:
        parts.append(f"--text {text}")
    default_out, default_results = default_paths(partial)
    if Path(out) != default_out:
        parts.append(f"--out {out}")
    if Path(results) != default_results:
        parts.append(f"--results {results}")
    return " ".join(parts)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def environment(threads: int) -> dict:
    from .. import __version__

    return {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "layerlab": __version__,
    }


def _jsonable(v):
    """Plain JSON values: tuples as lists, NumPy numbers as floats, dict keys as strings, and a
    number that is not finite (a diverged run's loss) as None."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    return v


# ----------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------
def _cell(v) -> str:
    return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")


def _table(columns: list[str], rows: list[dict]) -> list[str]:
    lines = ["| " + " | ".join(_cell(c.strip()) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return lines


def _n(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _anchor(title: str, section: str) -> str:
    text = f"{title} ({section})".lower()
    keep = "".join(ch for ch in text if ch.isalnum() or ch in " -")
    return keep.replace(" ", "-")


#: The article's statements with no experiment of their own on the page, said at its top.
UNMEASURED = (
    "the equations of section 3 and the code of section 4 are checked elsewhere: the NumPy reference against the "
    "PyTorch path, in the test suite"
)


def render(out: str | Path | None = None, results: str | Path | None = None) -> str:
    """Write the page ``out`` again from ``results/claims.json`` (default: a full run's paths), running
    nothing: the page is a function of that file. Returns the page."""
    default_out, default_results = default_paths(False)
    out = Path(out) if out else default_out
    results = Path(results) if results else default_results
    path = results / "claims.json"
    if not path.is_file():
        raise ConfigError(f"{path}: no claims.json to render; run layerlab claims first")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        page = render_page(doc, out, results)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not the claims.json of a layerlab claims run ({e!r})") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return page


def render_page(doc: dict, out: Path, results: Path) -> str:
    """The claims page (Markdown) from what ``claims.json`` holds; links relative to ``out``."""
    m = doc["meta"]
    rel = Path(os.path.relpath(results, out.parent)).as_posix()
    quick = m["mode"] == "quick"
    lines = ["# The article's claims, measured", ""]
    if quick:
        lines += [
            "> **Quick mode: these numbers say nothing about the claims.** This page comes from "
            "`layerlab claims --quick`, the smoke test the test suite runs: tiny subsets, one seed, short "
            "sequences, a few steps of training. It checks that every experiment runs and that every row is "
            "filled; the verdicts below follow their rules from these numbers, and mean nothing. The full run "
            "is `layerlab claims`.",
            "",
        ]
    if m.get("partial"):
        lines += [f"> **A partial run**: only {', '.join(m['claims_run'])}.", ""]
    lines += [
        f"The article's claims from sections 2, 5 and 6 that an experiment here can measure, each by one experiment "
        f"under one budget ({UNMEASURED}). Generated by `{m['command']}` on {m['date']}: **{m['mode']} mode**, "
        f"{_n(m['seeds'], 'seed')}, "
        f"CPU {m['cpu']} ({m['cores']} cores, {_n(m['threads'], 'torch thread')}"
        + (f" in each of {m['jobs']} processes" if m.get("jobs", 1) > 1 else "")
        + f"), torch {m['torch']}, layerlab "
        f"{m['layerlab']}, Python {m['python']}. Total **{m['total_seconds']:,.0f} s** against a budget of "
        f"{m['budget_seconds']:,} s ({'within' if m['within_budget'] else 'over'} budget). "
        f"The log, the figures with their CSVs, and every number as JSON are in [{rel}/]({rel}/) "
        f"(`claims.json`: each claim's raw `numbers`, from which its verdict follows by the rule stated here). "
        f"Each experiment reruns alone with the command under it; a partial run writes to `{ONLY_DIR}/` unless "
        f"given `--out` and `--results`.",
        "",
        "Seconds are wall time, indicative only (with two processes, a claim shares the cores with the other "
        "process's claims); a claim's seconds include the trainings "
        "it shares with later claims (the article's CNN, the adding-task runs) when it is the first to need them.",
        "",
    ]
    for u in m.get("updates") or []:
        lines += [
            f"> Rerun since, and merged into this page: {', '.join(u['claims'])}, by `{u['command']}` on {u['date']} "
            f"(CPU {u['cpu']}, {_n(u['threads'], 'torch thread')}, torch {u['torch']}; {u['total_seconds']:,.0f} s). "
            f"Those claims' numbers, seconds and verdicts are that run's; each says the verdict it replaced.",
            "",
        ]
    for note in m.get("notes") or []:
        lines += [f"> {note}", ""]
    lines += ["| claim | section | verdict | seconds |", "|---|---|---|---:|"]
    for c in doc["claims"]:
        lines.append(
            f"| [{_cell(c['title'])}](#{_anchor(c['title'], c['section'])}) | {c['section']} | "
            f"**{c['verdict']}** | {c['seconds']:.0f} |"
        )
    lines.append("")
    for c in doc["claims"]:
        lines += [f"## {c['title']} ({c['section']})", ""]
        where = f"section{'s' if ',' in c['section'] else ''} {c['section']}"
        lines += [f"> {c['quote']}", ">", f"> (the article, {where})", ""]
        lines += [f"**Experiment.** {c['experiment']}", ""]
        lines += [f"**Command.** `{c['command']}{' --quick' if quick else ''}`", ""]
        lines += [*_table(c["columns"], c["rows"]), ""]
        lines += [f"**Verdict: {c['verdict']}.** {c['reason'][:1].upper()}{c['reason'][1:]}.", ""]
        lines += [f"*Rule:* {c['rule']}", ""]
        prev = c.get("previous")
        if prev:
            same = prev["verdict"] == c["verdict"]
            lines += [
                f"*Verdict before* (the run of {prev['date']}): **{prev['verdict']}**"
                + (", the same. " if same else f", now **{c['verdict']}**. ")
                + f"{prev['reason'][:1].upper()}{prev['reason'][1:]}."
                + (f" *What changed:* {c['revision']}" if c.get("revision") else ""),
                "",
            ]
        spec = CLAIMS.get(c["name"])
        if spec is not None and c.get("revision", "") != spec.revision:
            lines += [
                f"*Changed since this run:* the experiment or its rule is no longer the one that gave these numbers "
                f"({spec.revision[:1].lower()}{spec.revision[1:]}) `{c['command']} --update` reruns it.",
                "",
            ]
        for note in c["notes"]:
            lines += [f"*Note:* {note}", ""]
        for fig in c["figures"]:
            lines += [f"![{c['name']}: {fig}]({rel}/{fig})", ""]
        lines += [f"*{c['seconds']:.0f} s.*", ""]
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["CLAIMS", "FULL", "QUICK", "VERDICTS", "Budget", "Claim", "ClaimSpec", "claim_names", "run_claims"]
