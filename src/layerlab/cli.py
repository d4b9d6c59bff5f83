"""The ``layerlab`` command line. It parses arguments, calls :mod:`layerlab.api` and renders the
results; it holds no logic of its own. Bad input exits with code 2 and one sentence on stderr."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path

from .errors import LayerlabError

EXIT_BAD_INPUT = 2


# ----------------------------------------------------------------------------------------------
# Progress on the terminal
# ----------------------------------------------------------------------------------------------
class RichProgress:
    """A progress bar per epoch (loss, accuracy, samples/s, ETA) and a line per finished epoch."""

    def __init__(self, quiet: bool = False):
        from rich.console import Console

        from .engine import Progress

        self.out = Console(highlight=False)
        self.err = Console(stderr=True)
        self.quiet = quiet
        self.bar = None
        self.task = None
        self.t0 = 0.0
        self.callbacks = Progress(self.start, self.steps, self.end)

    def start(self, epoch: int, epochs: int, steps: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.t0 = time.perf_counter()
        if self.quiet or not self.err.is_terminal:
            return
        self.bar = Progress(TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), console=self.err,
                            transient=True)
        self.bar.start()
        self.task = self.bar.add_task("train", total=steps, stats="")

    def steps(self, steps_done: int, samples_done: int, m: dict) -> None:
        if self.bar is None:
            return
        rate = samples_done / max(time.perf_counter() - self.t0, 1e-9)
        stats = f"loss {m['loss']:.4f}" + (f" acc {m['accuracy']:.4f}" if "accuracy" in m else "") + f" {rate:,.0f}/s"
        self.bar.update(self.task, completed=steps_done, stats=stats)

    def end(self, epoch: int, row: dict) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        if self.quiet:
            return
        parts = [f"epoch {epoch}", f"loss {row['train_loss']:.4f}"]
        if "train_accuracy" in row:
            parts.append(f"acc {row['train_accuracy']:.4f}")
        parts.append(f"test_loss {row['test_loss']:.4f}")
        if "test_accuracy" in row:
            parts.append(f"test_acc {row['test_accuracy']:.4f}")
        if "grad_norm_max" in row:
            parts.append(f"grad_norm max {row['grad_norm_max']:.3g} clipped {row['clipped_fraction']:.0%}")
        parts.append(f"{row['train_seconds']:.1f}s ({row['samples_per_second']:,.0f} samples/s)")
        self.out.print(" | ".join(parts))


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------
def _config_from_args(args) -> "RunConfig":
    from .config import RunConfig, update

    cfg = RunConfig.from_toml(args.config) if args.config else RunConfig()
    data = {"name": args.data, "data_dir": args.data_dir, "validation": args.validation, "sequence": args.sequence,
            "length": args.length, "n_train": args.n_train, "n_test": args.n_test}
    model = {"name": args.model, "hidden": args.hidden, "layers": args.layers, "dropout": args.dropout,
             "channels": args.channels, "bidirectional": True if args.bidirectional else None}
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
             "device": args.device, "optimizer": args.optimizer, "clip": args.clip, "threads": args.threads,
             "amp": True if args.amp else None, "compile": True if args.compile else None,
             "channels_last": False if args.no_channels_last else None}
    for section, values in (("data", data), ("model", model), ("train", train)):
        update(getattr(cfg, section), {k: v for k, v in values.items() if v is not None}, f"--{section} flags")
    return cfg


def cmd_train(args) -> int:
    from . import api

    progress = RichProgress(quiet=args.quiet)
    if args.resume:
        run, result = api.resume(args.resume, epochs=args.epochs, progress=progress.callbacks)
    else:
        from .rundir import RunDir

        cfg = _config_from_args(args)
        if args.out:
            RunDir.check_new(Path(args.out))  # before minutes of data loading, not after
        ds = api.prepare_data(cfg)
        if not args.quiet:
            progress.out.print(f"data: {ds.describe()}")
        run, result = api.train(cfg, args.out, progress=progress.callbacks, dataset=ds)
    last = result.history[-1] if result.history else {}
    info = run.info()
    summary = {"run": str(run.path), "model": info["model"]["name"], "parameters": info["model"]["parameters"],
               "epochs": len(result.history), "wall_seconds": round(result.wall_seconds, 1),
               "test_loss": last.get("test_loss"), "test_accuracy": last.get("test_accuracy")}
    if args.json:
        print(json.dumps(summary))
    else:
        acc = f"test accuracy {last['test_accuracy']:.4f}, " if "test_accuracy" in last else ""
        print(f"{summary['model']} ({summary['parameters']:,} parameters): {acc}test loss {last.get('test_loss', float('nan')):.4f} "
              f"after {summary['epochs']} epochs in {summary['wall_seconds']}s; run saved in {run.path}")
    return 0


def cmd_evaluate(args) -> int:
    from . import api

    r = api.evaluate_run(args.run_dir, data=args.data, data_dir=args.data_dir, which=args.weights, device=args.device)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{r['run']} on {r['data']} ({r['n']} test samples, {r['weights']} weights)")
    if "accuracy" in r:
        print(f"accuracy {r['accuracy']:.4f}  loss {r['loss']:.4f}")
    else:
        print(f"loss (MSE) {r['loss']:.6f}")
    for name, acc in r.get("per_class_accuracy", {}).items():
        print(f"  {name:<16} {acc:.4f}")
    return 0


def cmd_predict(args) -> int:
    from . import api

    results = api.predict_files(args.run_dir, args.files, top_k=args.top_k, which=args.weights, device=args.device)
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results:
        for note in r["notes"]:
            print(f"note: {r['file']}: {note}", file=sys.stderr)
        if "text" in r:  # sequence predictions format their own line (value, per-step classes, ...)
            print(r["text"])
            continue
        tops = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top_k"])
        print(f"{r['file']}: {r['label']} ({r['probability']:.3f})   top-{len(r['top_k'])}: {tops}")
    return 0


def cmd_data_list(args) -> int:
    from .data import known_datasets
    from .data.images import availability

    rows = availability(args.data_dir)
    named = {r["name"] for r in rows}
    if args.json:
        print(json.dumps(rows))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table("name", "available", "where / how to get it", "description")
    t.columns[2].overflow = "fold"
    for r in rows:
        t.add_row(r["name"], "yes" if r["available"] else "no", r["path"] or f"download from {r['download']}",
                  r["description"])
    for name, desc in known_datasets().items():
        if name not in named:
            t.add_row(name, "yes", "generated or bundled", desc)
    Console().print(t)
    return 0


def cmd_models(args) -> int:
    from .models import list_models

    models = list_models()
    if args.json:
        print(json.dumps(models))
        return 0
    width = max(map(len, models))
    for name, desc in models.items():
        print(f"{name:<{width}}  {desc}")
    return 0


# ----------------------------------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="layerlab", description="Build, train, evaluate, predict with and look "
                                "inside convolutional and recurrent neural networks.")
    p.add_argument("--version", action="version", version=f"layerlab {__import__('layerlab').__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train a model and write a run directory",
                       description="Train a model. Defaults reproduce the article: article-cnn on fashion-mnist, "
                                   "Adam lr 1e-3 eps 1e-7, batch 32, 10 epochs. Flags override --config.")
    t.add_argument("--config", help="TOML preset with [data], [model], [train] tables (see configs/)")
    t.add_argument("--model", help="model name (see `layerlab models`)")
    t.add_argument("--data", help="dataset name (see `layerlab data list`) or path")
    t.add_argument("--data-dir", help="directory to look in first for named datasets")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float, help="learning rate")
    t.add_argument("--seed", type=int)
    t.add_argument("--device", choices=["cpu", "cuda", "auto"])
    t.add_argument("--out", help="run directory to create (default runs/MODEL-DATA-TIME)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly (with --epochs to extend it)")
    t.add_argument("--validation", type=float, help="hold out this fraction of train for per-epoch evaluation")
    t.add_argument("--optimizer", choices=["adam", "sgd"])
    t.add_argument("--clip", type=float, help="clip gradients to this global L2 norm")
    t.add_argument("--amp", action="store_true", help="bf16 autocast")
    t.add_argument("--compile", action="store_true", help="torch.compile the model")
    t.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory layout")
    t.add_argument("--threads", type=int, help="CPU threads")
    t.add_argument("--hidden", type=int, help="recurrent models: hidden size")
    t.add_argument("--layers", type=int, help="recurrent models: stacked layers")
    t.add_argument("--bidirectional", action="store_true", help="recurrent models: read both directions")
    t.add_argument("--dropout", type=float, help="recurrent models: dropout between layers")
    t.add_argument("--channels", help="cnn: layer list such as 32,M,64,M")
    t.add_argument("--sequence", choices=["rows", "pixels", "permuted"], help="read images as sequences")
    t.add_argument("--length", type=int, help="synthetic tasks: sequence length T")
    t.add_argument("--n-train", type=int, help="synthetic tasks: training samples")
    t.add_argument("--n-test", type=int, help="synthetic tasks: test samples")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--json", action="store_true", help="print the final summary as JSON")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test-set accuracy, loss and per-class accuracy of a run",
                       description="Evaluate a run's best checkpoint on its test set (or --data).")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--data", help="evaluate on this dataset instead of the run's")
    e.add_argument("--data-dir")
    e.add_argument("--weights", choices=["best", "last"], default="best")
    e.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    e.add_argument("--json", action="store_true", help="print one JSON object (accuracy, loss, n, ...)")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="top-k classes for image files",
                        description="Predict classes of image files (PNG/JPEG), converted to the model's "
                                    "channels and size.")
    pr.add_argument("run_dir", metavar="RUN_DIR")
    pr.add_argument("files", nargs="+", metavar="FILE")
    pr.add_argument("--top-k", type=int, default=3)
    pr.add_argument("--weights", choices=["best", "last"], default="best")
    pr.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    pr.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    pr.set_defaults(func=cmd_predict)

    d = sub.add_parser("data", help="datasets: what is available where", description="Dataset commands.")
    dsub = d.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    dl = dsub.add_parser("list", help="named datasets, whether they are here and where",
                         description="List the named datasets, where each was found or where it downloads from.")
    dl.add_argument("--data-dir")
    dl.add_argument("--json", action="store_true")
    dl.set_defaults(func=cmd_data_list)

    m = sub.add_parser("models", help="registered models", description="List the registered models.")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)

    for module in _EXTRA_COMMAND_MODULES:
        import_module(f"layerlab.{module}").register(sub)
    return p


#: Modules that add sub-commands through ``register(subparsers)``, keeping this file short:
#: recurrent-model commands (generate) and the inspection commands (inspect, report, compare-cells).
_EXTRA_COMMAND_MODULES = [m for m in ("cli_recurrent", "cli_inspect")
                          if find_spec(f"layerlab.{m}") is not None]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args) or 0
    except LayerlabError as e:
        print(f"layerlab: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("layerlab: interrupted; the run directory keeps the last finished epoch (resume with "
              "`layerlab train --resume RUN_DIR`)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
