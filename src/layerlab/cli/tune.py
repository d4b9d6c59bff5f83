"""``layerlab tune``: a hyperparameter search on Optuna (:func:`layerlab.tuning.tune`), and
``layerlab tune --show STUDY``. Like the rest of the CLI it only parses, calls and prints."""

from __future__ import annotations

import json

from ..errors import ConfigError
from .options import Number

PRUNERS = ("median", "hyperband", "none")


def print_trial(t: dict) -> None:
    """One line per finished trial (called in each worker process)."""
    value = "" if t["value"] is None else f" {t['metric']} {t['value']:.4f}"
    params = " ".join(f"{k}={_short(v)}" for k, v in t["params"].items())
    print(f"trial {t['number']:>4} {t['state'].lower():<8}{value}  {params}", flush=True)


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _print_study(r, top: int) -> None:
    counts = ", ".join(f"{n} {state.lower()}" for state, n in r.counts.items())
    print(f"study {r.study} ({r.storage}): {counts or 'no trials'}; {r.metric} ({r.direction})")
    if r.top:
        print(f"best {len(r.top)} of {r.counts.get('COMPLETE', 0)} completed:")
        for t in r.top:
            params = " ".join(f"{k}={_short(v)}" for k, v in t["params"].items())
            print(f"  trial {t['number']:>4}  {r.metric} {t['value']:.4f}  {params}  {t['run_dir'] or ''}")
    if r.importances:
        print("parameter importances (fANOVA):")
        width = max(len(k) for k in r.importances)
        for k, v in r.importances.items():
            print(f"  {k:<{width}}  {v:.3f}")
    elif r.importances_note:
        print(f"parameter importances: {r.importances_note}")


def cmd_tune(args) -> int:
    from .. import tuning

    if args.show:
        given = [f for f, v in (("--config", args.config), ("--space", args.space), ("--trials", args.trials)) if v]
        if given:
            raise ConfigError(f"--show reads a study; {', '.join(given)} would start one: give them without --show")
        r = tuning.show(args.show, storage=args.storage, out=args.out, top=args.top)
    else:
        missing = [
            f for f, v in (("--config", args.config), ("--space", args.space), ("--trials", args.trials)) if not v
        ]
        if missing:
            raise ConfigError(f"tune needs {', '.join(missing)} (or --show STUDY to read a study)")
        r = tuning.tune(
            args.config,
            args.space,
            args.trials,
            storage=args.storage,
            study=args.study,
            workers=args.workers,
            prune=args.prune,
            metric=args.metric,
            out=args.out,
            validation=args.validation,
            on_trial=None if args.quiet or args.json else print_trial,
        )
    if args.json:
        print(json.dumps(r.to_dict(), indent=2, default=str))
    elif not args.quiet or args.show:
        _print_study(r, args.top)
    return 0


def register(sub) -> None:
    """Add ``tune`` to the ``layerlab`` sub-parsers."""
    t = sub.add_parser(
        "tune",
        help="search hyperparameters with Optuna (trials are run directories); --show STUDY reports one",
        description="Train trials of a base config with values sampled from a search space (TOML, see the README's "
        "'Tuning') until the study has --trials completed or pruned trials, each a run directory under --out "
        "with its trial number and parameters in run.json. The objective is a validation metric of the last "
        "epoch; the base config must hold out a validation split. Several workers (--workers, or one "
        "`layerlab tune` per machine with the same --storage and --study) share one study. Needs the tune extra.",
    )
    t.add_argument("--config", metavar="PRESET|FILE", help="the base config (a preset name or a TOML file)")
    t.add_argument("--space", metavar="SPACE.toml", help="the search space")
    t.add_argument("--trials", action=Number, ge=1, help="completed or pruned trials the study needs")
    t.add_argument(
        "--validation",
        action=Number,
        kind=float,
        like="data.validation",
        metavar="FRACTION",
        help="hold out this fraction of the training set to measure trials on (over the config's; presets hold none)",
    )
    t.add_argument(
        "--storage",
        metavar="URL|FILE",
        help="a database URL Optuna takes (postgresql://user@host/db) or a journal file (default OUT/optuna.journal)",
    )
    t.add_argument("--study", metavar="NAME", help="the study's name (default: the space file's name)")
    t.add_argument("--workers", action=Number, ge=1, default=1, help="worker processes on this machine (default 1)")
    t.add_argument("--prune", choices=PRUNERS, default="median", help="stop unpromising trials early (default median)")
    t.add_argument(
        "--metric", default="val_loss", help="validation column to optimise (default val_loss; val_accuracy)"
    )
    t.add_argument("--out", metavar="DIR", help="folder of the trials' run directories (default runs/tune/STUDY)")
    t.add_argument("--show", metavar="STUDY", help="print a study's best trials and parameter importances")
    t.add_argument("--top", action=Number, ge=1, default=5, help="best trials to print (default 5)")
    t.add_argument("--json", action="store_true", help="print the study as JSON")
    t.add_argument("--quiet", action="store_true", help="no line per trial")
    t.set_defaults(func=cmd_tune)
