"""Training and using a run: ``layerlab train``, ``evaluate``, ``predict`` and ``generate``.

``train``'s flags are generated from the config dataclasses (:func:`layerlab.config.add_config_flags`),
so a new config field is a new flag with no edit here.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from ..choices import DEVICES, WEIGHTS, and_list
from ..errors import ConfigError
from .options import Number, Text
from .progress import RichProgress

#: Which weights of a run the commands after ``train`` use: ``auto`` is ``best`` (lowest validation
#: loss) for a run trained with --validation, else ``last`` (nothing is chosen on the test set);
#: ``init`` is the model as initialised, rebuilt from the run's seed (a baseline, and what gradient
#: flow at initialisation looks at).
WEIGHTS_HELP = (
    "auto (the default): best for a run trained with --validation (lowest validation loss), else last; "
    "best, last, or init: the model as initialised"
)


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from .. import api, defaults
    from ..config import RunConfig, check_model_options, config_from_flags
    from ..distributed import is_main_process
    from ..presets import resolve
    from ..rundir import RunDir, default_run_path

    if args.resume:
        return _resume(args)
    base = RunConfig.from_toml(resolve(args.config)) if args.config else RunConfig()
    cfg, given = config_from_flags(args, base)
    if cfg.train.init_from and not args.config and not any(k.startswith("model.") for k in given):
        cfg.model = RunDir(cfg.train.init_from).config().model  # fine-tune that run's model
    if "model.name" in given:  # typed on the command line, so its module may be imported (never a file's)
        from ..models import trust_module

        trust_module(cfg.model.name)
    auto = defaults.applies(args.config, given)  # only --data: a model and recipe for the data's kind
    if auto:
        defaults.prepare(cfg, given)
    cfg.validate(args.config or "config")  # flags and preset together, before minutes of data loading
    check_model_options(cfg.model, args.config or "config", given)
    out = Path(args.out) if args.out else default_run_path(cfg.model.name, cfg.data.name)
    main = is_main_process()  # under torchrun only rank 0 looks at the run directory and prints
    if main:
        RunDir.check_new(out)
    progress = RichProgress(quiet=args.quiet or not main, to_stderr=args.json)
    ds = api.prepare_data(cfg)
    if not args.quiet and main:
        progress.out.print(f"data: {ds.describe()}")
        if ds.meta.get("labels"):  # how class labels were mapped (layerlab.labels)
            progress.out.print(f"labels: {ds.meta['labels']}")
        if ds.meta.get("images"):  # what an image folder's files were read as (resized, converted)
            progress.out.print(f"images: {ds.meta['images']}")
    record = None
    if auto:
        record = {"defaults": defaults.choose(cfg, given, ds)}
        out = Path(args.out) if args.out else default_run_path(cfg.model.name, cfg.data.name)
        if not args.quiet and main:
            progress.out.print(defaults.describe(record["defaults"]), markup=False, highlight=False, soft_wrap=True)
    run, result = api.train(cfg, out, progress=progress.callbacks, dataset=ds, record=record)
    return _print_summary(args, run, result)


def _resume(args) -> int:
    """``train --resume RUN``: a flag that would change the run is an error, not silently ignored."""
    from .. import api
    from ..config import RESUME_FLAGS, RunConfig, config_from_flags, flag, resume_conflicts
    from ..distributed import is_main_process

    _, given = config_from_flags(args, RunConfig())
    conflicts = [name for name, value in (("--config", args.config), ("--out", args.out)) if value]
    saved = Path(args.resume) / "config.toml"
    main = is_main_process()  # the other ranks of a torchrun job never open the run directory
    if main and saved.is_file():  # otherwise api.resume says what is wrong with RUN_DIR
        conflicts += resume_conflicts(RunConfig.from_toml(saved), given)
    if conflicts:
        allowed = and_list([flag(k) for k in RESUME_FLAGS])
        raise ConfigError(
            f"{and_list(conflicts)} would change the run being resumed; only {allowed} may be given with --resume"
        )
    progress = RichProgress(quiet=args.quiet or not main, to_stderr=args.json)
    run, result = api.resume(
        args.resume,
        epochs=given.get("train.epochs"),
        threads=given.get("train.threads"),
        data_dir=given.get("data.data_dir"),
        checkpoint_every=given.get("train.checkpoint_every"),
        progress=progress.callbacks,
        extend_lr=given.get("train.extend_lr"),
        workers=given.get("data.workers"),
    )
    return _print_summary(args, run, result)


def _print_summary(args, run, result) -> int:
    from ..callbacks import row_prefix

    if run is None:  # a rank other than rank 0 of a torchrun job: rank 0 prints the summary
        return 0
    last = result.history[-1] if result.history else {}
    info = run.info()
    held = row_prefix(last)[:-1] if last else "test"  # val, test or train_eval: named as what it is
    summary = {
        "run": str(run.path),
        "model": info["model"]["name"],
        "parameters": info["model"]["parameters"],
        "epochs": len(result.history),
        "wall_seconds": round(result.wall_seconds, 1),
        f"{held}_loss": last.get(f"{held}_loss"),
        f"{held}_accuracy": last.get(f"{held}_accuracy"),
    }
    if result.best_epoch:
        summary["best_epoch"] = result.best_epoch
    if args.json:
        print(json.dumps(summary))
        return 0
    name = {"val": "validation", "train_eval": "training-data"}.get(held, "test")
    acc = f"{name} accuracy {last[f'{held}_accuracy']:.4f}, " if f"{held}_accuracy" in last else ""
    best = f" (best: epoch {result.best_epoch}, by validation loss)" if result.best_epoch else ""
    epochs = f"{summary['epochs']} epoch" + ("" if summary["epochs"] == 1 else "s")
    print(
        f"{summary['model']} ({summary['parameters']:,} parameters): final model {acc}{name} loss "
        f"{last.get(f'{held}_loss', float('nan')):.4f} after {epochs}{best} in "
        f"{summary['wall_seconds']}s; run saved in {run.path}"
    )
    return 0


# ----------------------------------------------------------------------------------------------
# evaluate, predict, generate
# ----------------------------------------------------------------------------------------------
def cmd_evaluate(args) -> int:
    from .. import api

    r = api.evaluate_run(
        args.run_dir,
        data=args.data,
        data_dir=args.data_dir,
        which=args.weights,
        device=args.device,
        per_sample=args.per_sample,
        tta=args.tta,
    )
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{r['run']} on {r['data']} ({r['n']} {r.get('split', 'test')} samples, {r['weights']} weights)")
    if r.get("note"):
        print(f"note: {r['note']}")
    if r.get("tta"):
        print(f"test-time augmentation: {r['tta']} (the mean of the softmax of each image and its mirror)")
    if "accuracy" in r:
        print(f"accuracy {r['accuracy']:.4f}  loss {r['loss']:.4f}")
    else:
        print(f"loss (MSE) {r['loss']:.6f}")
    for name, acc in r.get("per_class_accuracy", {}).items():
        print(f"  {name:<16} {acc:.4f}")
    if "predictions" in r:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["index", "true", "predicted", "probability"])
        for p in r["predictions"]:  # regression has no probability: the cell stays empty
            prob = f"{p['probability']:.6g}" if p.get("probability") is not None else ""
            out.writerow([p["index"], _cell(p["true"]), _cell(p["predicted"]), prob])
    return 0


def _cell(v) -> str:
    """A CSV cell: a list (one value per step) as its items separated by spaces."""
    return " ".join(map(str, v)) if isinstance(v, list) else str(v)


def prediction_line(r: dict) -> str:
    """One line for one prediction of ``api.predict_files``, by its ``kind``."""
    name, kind = r["file"], r["kind"]
    if kind == "class":
        tops = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top_k"])
        line = f"{name}: {r['label']} ({r['probability']:.3f})   top-{len(r['top_k'])}: {tops}"
    elif kind == "next":
        line = f"{name}: next character " + ", ".join(f"{t['label']!r} {t['probability']:.3f}" for t in r["top_k"])
    elif kind == "value":
        line = f"{name}: {r['value']:.6g}"
    elif kind == "values":
        v = r["values"]
        line = f"{name}: " + " ".join(f"{x:.4g}" for x in v[:20]) + (" ..." if len(v) > 20 else "")
    elif kind == "labels":  # multi-label: every label above probability 0.5
        tops = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top_k"])
        line = f"{name}: {', '.join(r['labels']) or '(no label)'}   top-{len(r['top_k'])}: {tops}"
    elif kind == "steps":
        labels = r["labels"]
        line = f"{name}: " + " ".join(labels[:40]) + (" ..." if len(labels) > 40 else "")
    else:
        line = f"{name}: {json.dumps({k: v for k, v in r.items() if k not in ('file', 'notes')})}"
    if r.get("true_label") is not None:
        line += f"   (file says {r['true_label']})"
    return line


def cmd_predict(args) -> int:
    from ..config import check_regular_file

    for f in args.inputs[0 if args.onnx else 1 :]:  # before anything opens them: a FIFO blocks its reader
        check_regular_file(f, "an input file")
    if args.onnx:
        check_regular_file(args.onnx, "an ONNX file")
    if args.onnx:  # onnxruntime, NumPy and Pillow alone: this path never imports torch (layerlab.deploy)
        from ..deploy import predict_files

        given = [f for f, v in (("--weights", args.weights != "auto"), ("--device", args.device != "cpu")) if v]
        if given:
            raise ConfigError(
                f"{and_list(given)} apply to a run directory; an ONNX file holds the weights it was exported "
                f"with and runs on the CPU"
            )
        results = predict_files(args.onnx, args.inputs, top_k=args.top_k)
    else:
        from .. import api

        run_dir, files = args.inputs[0], args.inputs[1:]
        if run_dir.endswith(".onnx") and not Path(run_dir).is_dir():
            raise ConfigError(
                f"{run_dir} is an ONNX file, not a run directory: layerlab predict --onnx {run_dir} FILE..."
            )
        if not files:
            raise ConfigError(
                f"predict needs files to predict on after the run directory: layerlab predict {run_dir} FILE..."
            )
        results = api.predict_files(run_dir, files, top_k=args.top_k, which=args.weights, device=args.device)
    if args.json:
        print(json.dumps(results, allow_nan=False))  # strict JSON: predictions are finite (decoding)
        return 0
    for r in results:
        for note in r["notes"]:
            print(f"note: {r['file']}: {note}", file=sys.stderr)
        print(prediction_line(r))
    return 0


def cmd_generate(args) -> int:
    from .. import api

    r = api.generate(
        args.run_dir,
        args.prompt,
        args.length,
        temperature=args.temperature,
        seed=args.seed,
        which=args.weights,
        device=args.device,
    )
    if args.json:
        print(json.dumps(r))
    else:
        print(r["text"])
    return 0


# ----------------------------------------------------------------------------------------------
def register(sub) -> None:
    """Add ``train``, ``evaluate``, ``predict`` and ``generate`` to the ``layerlab`` sub-parsers."""
    from ..config import add_config_flags

    t = sub.add_parser(
        "train",
        help="train a model and write a run directory",
        description="Train a model. Defaults reproduce the article: article-cnn on fashion-mnist, "
        "Adam lr 1e-3 eps 1e-7, batch 32, 10 epochs. With --data and no model named (no --model, model option, "
        "--config or --init-from), a model and recipe are chosen for the data's kind and printed in one line "
        "(a batch-norm CNN with global pooling for images, fcn for series; one-cycle, a validation split, early "
        "stopping); every flag typed wins. Flags override --config.",
    )
    t.add_argument(
        "--config",
        action=Text,
        metavar="PRESET|FILE",
        help="a packaged preset by name (`layerlab presets` lists them, e.g. article_cnn) or a TOML file "
        "with [data], [model], [train] tables; a file that exists wins over a preset of the same name",
    )
    t.add_argument(
        "--out", action=Text, metavar="RUN_DIR", help="run directory to create (default runs/MODEL-DATA-TIME)"
    )
    t.add_argument(
        "--resume",
        action=Text,
        metavar="RUN_DIR",
        help="continue an interrupted run exactly; only --epochs (to extend it), --threads (a CPU run's "
        "own count: another changes the sums' order), --checkpoint-every, --data-dir and --extend-lr (the rate "
        "of added epochs) may be given with it",
    )
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--json", action="store_true", help="print the final summary as JSON")
    add_config_flags(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "evaluate",
        help="test-set accuracy, loss and per-class accuracy of a run",
        description="Evaluate a run on its test set (or --data): its best checkpoint if it was trained "
        "with --validation, else its last (nothing is chosen on the test set).",
    )
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--data", action=Text, help="evaluate on this dataset instead of the run's")
    e.add_argument("--data-dir", action=Text, help="directory to look in first for named datasets")
    _weights_and_device(e)
    e.add_argument(
        "--per-sample",
        action="store_true",
        help="also each test sample's true and predicted class and its probability (a CSV table "
        "after the summary, or in the JSON)",
    )
    e.add_argument(
        "--tta",
        choices=("flip",),
        help="test-time augmentation: flip averages the softmax of each image and of its left-right mirror "
        "(images only)",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object (accuracy, loss, n, ...)")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser(
        "predict",
        help="predictions for image, sequence or text files",
        usage="layerlab predict [-h] RUN_DIR FILE [FILE ...] [--top-k K] [--weights W] [--device D] [--json]\n"
        "       layerlab predict [-h] --onnx MODEL.onnx FILE [FILE ...] [--top-k K] [--json]",
        description="Predict with a run's model: image files (PNG/JPEG, converted to the model's "
        "channels and size), sequence files (.npy, .csv, .tsv, .ts) or, for a "
        "character model, text files (the next character). With --onnx, predict with a model "
        "`layerlab export` wrote, read exactly as the run reads its inputs, with onnxruntime, NumPy "
        "and Pillow alone (torch is not imported; .ts files need the run directory).",
    )
    pr.add_argument("inputs", nargs="+", metavar="RUN_DIR FILE", help="the run directory, then the files")
    pr.add_argument(
        "--onnx",
        metavar="MODEL.onnx",
        help="predict with this exported model (layerlab export) instead of a run directory: "
        "then every positional argument is a file",
    )
    pr.add_argument(
        "--top-k", action=Number, ge=1, default=3, metavar="K", help="classes to show per prediction (default 3)"
    )
    _weights_and_device(pr)
    pr.add_argument("--json", action="store_true", help="print a JSON list, one object per prediction")
    pr.set_defaults(func=cmd_predict)

    g = sub.add_parser(
        "generate",
        help="sample text from a character-level language model run",
        description="Sample characters from a recurrent model trained on a text file "
        "(layerlab train --model lstm --data book.txt), after a prompt.",
    )
    g.add_argument("run_dir", metavar="RUN_DIR")
    g.add_argument("--prompt", default="", help="text to start from (its characters must be in the training text)")
    g.add_argument("--length", action=Number, ge=0, default=200, help="characters to sample (default 200)")
    g.add_argument(
        "--temperature",
        action=Number,
        kind=float,
        ge=0.0,
        default=1.0,
        help="softmax temperature: <1 conservative, >1 varied, 0 always the likeliest (default 1)",
    )
    g.add_argument(
        "--seed", action=Number, like="train.seed", default=0, help="random seed of the sampling (default 0)"
    )
    _weights_and_device(g)
    g.add_argument("--json", action="store_true", help="print one JSON object (prompt, sample, text, ...)")
    g.set_defaults(func=cmd_generate)


def _weights_and_device(p) -> None:
    p.add_argument(
        "--weights",
        choices=WEIGHTS,
        default="auto",
        help=WEIGHTS_HELP,
    )
    p.add_argument("--device", choices=DEVICES, default="cpu", help="where to run the model (default cpu)")
