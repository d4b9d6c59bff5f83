"""Looking inside models: ``layerlab inspect {gradflow,filters,features,summary,curves,errors}``,
``compare-cells`` and ``report``. Like the rest of the CLI these only parse, call
:mod:`layerlab.inspect.views`, :mod:`layerlab.experiments` or :mod:`layerlab.inspect.report` and print."""

from __future__ import annotations

import functools
import json
import math

from ..choices import COMPARE_TASKS, SEQUENCE_MODES
from ..config import check_regular_file
from .options import IntList, NameList, Number, Text
from .run import WEIGHTS, WEIGHTS_HELP


def _fit_text(fit) -> str:
    if fit is None:
        return "no fit (fewer than 2 non-zero steps)"
    tenfold = "never" if math.isinf(fit.steps_per_10x) else f"{abs(fit.steps_per_10x):.1f} steps"
    change = "shrinks" if fit.factor < 1 else "grows"
    return f"x{fit.factor:.4f} per step back ({change} 10x every {tenfold}, R^2 {fit.r2:.3f})"


def _files(files: dict) -> str:
    paths = []
    for v in files.values():
        paths += list(v.values()) if isinstance(v, dict) else [v]
    return ", ".join(paths)


def _guarding_out(cmd):
    """``cmd`` run inside :func:`~layerlab.inspect.views.owned_out` for its ``--out`` folder."""

    @functools.wraps(cmd)
    def run(args) -> int:
        from ..inspect import views

        with views.owned_out(args.out):
            return cmd(args)

    return run


# ----------------------------------------------------------------------------------------------
def cmd_gradflow(args) -> int:
    from ..inspect import views

    r = views.gradflow(
        args.target,
        data=args.data,
        length=args.length,
        sequence=args.sequence,
        hidden=args.hidden,
        layers=args.layers,
        samples=args.samples,
        probes=args.probes,
        weights=args.weights,
        seed=args.seed,
        out=args.out,
        data_dir=args.data_dir,
    )
    if args.json:
        print(
            json.dumps(
                {"title": r["title"], "files": r["files"], "fits": [row for f in r["flows"] for row in f.fit_rows()]}
            )
        )
        return 0
    print(r["title"])
    flows = r["flows"]
    print(f"averaged over {flows[0].samples} test sequences; Jacobian norm: {flows[0].method}")
    for f in flows:
        for lf in f.layers:
            print(f"{f.label}, layer {lf.layer} (H={lf.hidden}), loss {f.loss:.4g}:")
            print(
                f"  ||dL/dh_t||             {lf.grad_norm[0]:.3e} at t=1 .. {lf.grad_norm[-1]:.3e} "
                f"at t={len(lf.grad_norm)}; {_fit_text(lf.grad_fit)}"
            )
            print(f"  ||dh_T/dh_t||_F/sqrt(H) {lf.jacobian_norm[0]:.3e} at t=1; {_fit_text(lf.jacobian_fit)}")
            if lf.jacobian_spectral is not None:
                print(f"  ||dh_T/dh_t||_2         {lf.jacobian_spectral[0]:.3e} at t=1; {_fit_text(lf.spectral_fit)}")
    print(f"wrote {_files(r['files'])}")
    return 0


def cmd_filters(args) -> int:
    from ..inspect import views

    r = views.filters_view(args.run_dir, layer=args.layer, weights=args.weights, out=args.out)
    print(
        f"{r['alias']} ({r['layer']}): {r['shape'][0]} filters of {'x'.join(map(str, r['shape'][1:]))}; "
        f"wrote {_files(r['files'])}"
    )
    return 0


def cmd_features(args) -> int:
    import sys

    from ..inspect import views

    if args.image is not None:
        check_regular_file(args.image, "an input file")
    r = views.features_view(args.run_dir, args.image, weights=args.weights, out=args.out, data_dir=args.data_dir)
    for n in r["notes"]:
        print(f"note: {args.image}: {n}", file=sys.stderr)
    if args.image is None:
        print(f"input: {r['input']} of the run's data, {'x'.join(map(str, r['image'].shape))}")
    for layer in r["layers"]:
        print(f"{layer['label']:<28} {'x'.join(map(str, layer['shape']))}")
    print(f"wrote {_files(r['files'])}")
    return 0


def cmd_summary(args) -> int:
    from ..inspect import views

    r = views.summary_view(
        args.target,
        input_shape=tuple(args.input_shape) if args.input_shape else None,
        outputs=args.outputs,
        data=args.data,
        length=args.length,
        hidden=args.hidden,
        layers=args.layers,
        out=args.out,
    )
    s = r["summary"]
    if args.json:
        print(
            json.dumps(
                {
                    "model": s.model,
                    "input_shape": list(s.input_shape),
                    "layers": s.csv_rows(),
                    "parameters": s.total_parameters,
                    "flops": s.total_flops,
                    "without_pools": s.without_pools,
                }
            )
        )
        return 0
    print(s.to_text())
    if r["files"]:
        print(f"wrote {_files(r['files'])}")
    return 0


def cmd_curves(args) -> int:
    from ..inspect import views

    r = views.curves_view(args.run_dir, out=args.out)
    last = r["rows"][-1]
    key = next((p for p in ("val", "test", "train_eval") if last.get(f"{p}_loss") is not None), "test")
    split = {"val": "validation", "test": "test", "train_eval": "training-data"}[key]
    acc = f", {split} accuracy {last[f'{key}_accuracy']:.4f}" if last.get(f"{key}_accuracy") is not None else ""
    n = len(r["rows"])
    print(
        f"{n} epoch{'' if n == 1 else 's'}; last {split} loss {last[f'{key}_loss']:.4f}{acc}; "
        f"wrote {_files(r['files'])}"
    )
    return 0


def cmd_errors(args) -> int:
    from ..inspect import views

    r = views.errors_view(args.run_dir, weights=args.weights, out=args.out, k=args.top)
    print(f"accuracy {r['accuracy']:.4f} on {r['n']:,} test targets")
    print(f"{'class':<16} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}")
    for s in r["scores"]:
        print(f"{s['class']:<16.16} {s['precision']:>9.4f} {s['recall']:>7.4f} {s['f1']:>6.3f} {s['support']:>8,}")
    for m in r["mistakes"][:5]:
        print(
            f"wrong and sure: test #{m['index']}{' (' + m['source'] + ')' if 'source' in m else ''} is "
            f"{r['classes'][m['true']]}, predicted "
            f"{r['classes'][m['predicted']]} with p={m['confidence']:.3f}"
        )
    print(f"wrote {_files(r['files'])}")
    return 0


def cmd_compare_cells(args) -> int:
    from .. import experiments

    def on_cell(r):
        if not args.json:
            print(
                f"{r['cell']:<9} {r['metric']} {r['final']:.4g} in {r['seconds']:.1f}s; decay per step of "
                f"||dh_T/dh_t||: {r['decay_init']:.4f} at init, {r['decay_trained']:.4f} trained",
                flush=True,
            )

    r = experiments.compare_cells(
        args.task,
        args.length,
        list(args.cells),
        hidden=args.hidden,
        layers=args.layers,
        epochs=args.epochs,
        n_train=args.n_train,
        n_test=args.n_test,
        batch_size=args.batch_size,
        lr=args.lr,
        clip=args.clip if args.clip > 0 else None,
        seed=args.seed,
        samples=args.samples,
        probes=args.probes,
        out=args.out,
        threads=args.threads,
        on_cell=on_cell,
    )
    rows = experiments.table_rows(r["results"])
    if args.json:
        print(json.dumps({"task": r["task"], "length": r["length"], "table": rows, "files": r["files"]}))
        return 0
    key = f"final_test_{r['metric']}"
    print()
    print(
        "decay = fitted factor per step back of ||dh_T/dh_t|| (RMS: Frobenius/sqrt(H); spectral: largest "
        "singular value)"
    )
    print(
        f"{'cell':<9} {'params':>8} {'seconds':>8} {key:>16} {'RMS init':>9} {'RMS trained':>12} "
        f"{'spectral init':>14} {'spectral trained':>17}"
    )
    for row in rows:
        print(
            f"{row['cell']:<9} {row['parameters']:>8,} {row['seconds']:>8.1f} {row[key]:>16.5f} "
            f"{_num(row['decay_per_step_init']):>9} {_num(row['decay_per_step_trained']):>12} "
            f"{_num(row['spectral_decay_per_step_init']):>14} {_num(row['spectral_decay_per_step_trained']):>17}"
        )
    if r.get("baseline"):
        print(f"(always answering the mean scores MSE {r['baseline']:.4f})")
    print(f"wrote {_files(r['files'])}")
    return 0


def _num(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}"


def cmd_report(args) -> int:
    from ..inspect.report import write_report

    if args.image is not None:
        check_regular_file(args.image, "an image file")
    path = write_report(
        args.run_dir, image=args.image, weights=args.weights, gradflow_samples=args.samples, probes=args.probes
    )
    print(f"wrote {path} (figures and their numbers in {path.parent / 'report'})")
    return 0


# ----------------------------------------------------------------------------------------------


def register(sub) -> None:
    """Add ``inspect``, ``compare-cells`` and ``report`` to the ``layerlab`` sub-parsers."""
    i = sub.add_parser(
        "inspect",
        help="look inside a model: gradient flow, filters, feature maps, summary, curves, errors",
        description="Look inside a trained run (or a registered model built fresh). Each view writes "
        "PNG figures and a CSV of the numbers behind them (default RUN_DIR/inspect).",
    )
    isub = i.add_subparsers(dest="inspect_command", metavar="VIEW", required=True)

    g = isub.add_parser(
        "gradflow",
        help="||dL/dh_t|| and ||dh_T/dh_t|| per step, at init and trained (RNNs)",
        description="Gradient flow through time (article 3.2.3): per layer and step t, the norm of "
        "dL/dh_t and of the Jacobian dh_T/dh_t, averaged over test sequences, at the run's "
        "initialisation and with its trained weights; fits a geometric decay per step. "
        "A registered MODEL name is built fresh (needs --data).",
    )
    g.add_argument("target", metavar="RUN_DIR|MODEL")
    g.add_argument(
        "--data", action=Text, help="dataset (required for a MODEL; for a run: evaluate on this one instead)"
    )
    g.add_argument("--data-dir", action=Text)
    g.add_argument("--length", action=Number, like="data.length", help="synthetic tasks: sequence length T")
    g.add_argument("--sequence", choices=SEQUENCE_MODES, help="read images as sequences")
    g.add_argument("--hidden", action=Number, like="model.hidden", help="MODEL: hidden size")
    g.add_argument("--layers", action=Number, like="model.layers", help="MODEL: stacked layers")
    g.add_argument("--samples", action=Number, ge=1, default=32, help="test sequences to average over (default 32)")
    g.add_argument(
        "--probes",
        action=Number,
        ge=0,
        help="0: exact Jacobian norm; K: estimate from K random probes "
        "(default exact up to 64 hidden units, else 32 probes)",
    )
    g.add_argument("--weights", choices=WEIGHTS, default="auto", help=WEIGHTS_HELP)
    g.add_argument(
        "--seed", action=Number, like="train.seed", default=0, help="seed of a fresh MODEL and of the probes"
    )
    g.add_argument("--out", action=Text, help="output folder (default RUN_DIR/inspect, or inspect-MODEL/gradflow)")
    g.add_argument("--json", action="store_true", help="print the fitted decay rates as JSON")
    g.set_defaults(func=_guarding_out(cmd_gradflow))

    f = isub.add_parser(
        "filters",
        help="the learned filters of a conv layer as an image grid",
        description="Draw the kernels of a conv layer (default the first) and write their weights: a "
        "Conv2d's as an image grid, a Conv1d's as a small line plot (or heatmap of input channel "
        "against tap) per filter, a Conv3d's as a grid of filters against depth slices.",
    )
    f.add_argument("run_dir", metavar="RUN_DIR")
    f.add_argument("--layer", help="conv layer: conv1, conv2, ... or a module name such as features.3")
    f.add_argument("--weights", choices=WEIGHTS, default="auto", help=WEIGHTS_HELP)
    f.add_argument("--out", action=Text, help="output folder (default RUN_DIR/inspect)")
    f.set_defaults(func=_guarding_out(cmd_filters))

    fe = isub.add_parser(
        "features",
        help="feature maps of every conv/pool layer for one input",
        description="Run one input through the model and draw the output of every conv and pool layer: "
        "an image file (converted like `layerlab predict` does), a sequence file (.npy, .csv, .tsv) for a "
        "1-D CNN on sequences, or, without FILE, the first test sample of the run's data (how a 3-D CNN "
        "on volumes is shown). 2-D maps are image mosaics, 1-D maps heatmaps of channel against step, "
        "3-D maps grids of channel against depth slice.",
    )
    fe.add_argument("run_dir", metavar="RUN_DIR")
    fe.add_argument(
        "image",
        metavar="FILE",
        nargs="?",
        help="image or sequence file (default: the first test sample of the run's data)",
    )
    fe.add_argument("--data-dir", action=Text, help="directory to look in first for the run's named dataset (no FILE)")
    fe.add_argument("--weights", choices=WEIGHTS, default="auto", help=WEIGHTS_HELP)
    fe.add_argument("--out", action=Text, help="output folder (default RUN_DIR/inspect)")
    fe.set_defaults(func=_guarding_out(cmd_features))

    s = isub.add_parser(
        "summary",
        help="layers with output shapes, parameters, FLOPs, elements passed on",
        description="Each layer's output shape, the elements it passes on, its parameters and FLOPs "
        "(torch.utils.flop_counter); for CNNs, what the Dense layer would need without "
        "pooling. A MODEL name is built for --input-shape (default 1,28,28) or --data.",
    )
    s.add_argument("target", metavar="RUN_DIR|MODEL")
    s.add_argument("--input-shape", action=IntList, ge=1, help="MODEL: shape of one sample, e.g. 1,28,28 or 100,2")
    s.add_argument("--outputs", action=Number, ge=1, help="MODEL: number of outputs (default 10)")
    s.add_argument("--data", action=Text, help="MODEL: take the input shape and outputs from this dataset")
    s.add_argument("--length", action=Number, like="data.length", help="MODEL with synthetic --data: sequence length")
    s.add_argument("--hidden", action=Number, like="model.hidden")
    s.add_argument("--layers", action=Number, like="model.layers")
    s.add_argument("--out", action=Text, help="also write summary.png/csv here (default for a run: RUN_DIR/inspect)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_guarding_out(cmd_summary))

    c = isub.add_parser(
        "curves",
        help="loss and accuracy per epoch from metrics.csv",
        description="Plot a run's training and test loss and accuracy per epoch.",
    )
    c.add_argument("run_dir", metavar="RUN_DIR")
    c.add_argument("--out", action=Text, help="output folder (default RUN_DIR/inspect)")
    c.set_defaults(func=_guarding_out(cmd_curves))

    e = isub.add_parser(
        "errors",
        help="confusion matrix, per-class precision/recall, most confidently wrong",
        description="Evaluate a classification run on its test set and show where it goes wrong.",
    )
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--weights", choices=WEIGHTS, default="auto", help=WEIGHTS_HELP)
    e.add_argument(
        "--top", action=Number, ge=0, default=16, help="how many confidently wrong samples to show (default 16)"
    )
    e.add_argument("--out", action=Text, help="output folder (default RUN_DIR/inspect)")
    e.set_defaults(func=_guarding_out(cmd_errors))

    cc = sub.add_parser(
        "compare-cells",
        help="train rnn/lstm/gru/residual briefly and overlay their gradient flow",
        description="The article's 6.2 in one figure: train each cell under one seed and budget on a "
        "synthetic task and overlay ||dL/dh_t|| and ||dh_T/dh_t|| at init and after "
        "training, with a table of final metric, parameters, seconds and decay rate.",
    )
    cc.add_argument("--task", choices=COMPARE_TASKS, required=True)
    cc.add_argument("--length", action=Number, like="data.length", required=True, help="sequence length T")
    cc.add_argument(
        "--cells",
        action=NameList,
        default=["rnn", "lstm", "gru", "residual"],
        metavar="CELL,...",
        help="comma list (default rnn,lstm,gru,residual)",
    )
    cc.add_argument("--hidden", action=Number, like="model.hidden", default=64)
    cc.add_argument("--layers", action=Number, like="model.layers", default=1)
    cc.add_argument("--epochs", action=Number, like="train.epochs", default=2)
    cc.add_argument("--n-train", action=Number, like="data.n_train", default=5000)
    cc.add_argument("--n-test", action=Number, like="data.n_test", default=500)
    cc.add_argument("--batch-size", action=Number, like="train.batch_size", default=64)
    cc.add_argument("--lr", action=Number, kind=float, like="train.lr", default=1e-3)
    cc.add_argument(
        "--clip", action=Number, kind=float, ge=0.0, default=1.0, help="gradient clipping norm (0: none; default 1)"
    )
    cc.add_argument("--seed", action=Number, like="train.seed", default=0)
    cc.add_argument("--samples", action=Number, ge=1, default=32, help="test sequences the curves average over")
    cc.add_argument("--probes", action=Number, ge=0, help="Jacobian-norm probes (0 exact; default exact up to H=64)")
    cc.add_argument("--threads", action=Number, like="train.threads", help="CPU threads")
    cc.add_argument("--out", action=Text, default="compare-cells", help="output folder (default ./compare-cells)")
    cc.add_argument("--json", action="store_true")
    cc.set_defaults(func=_guarding_out(cmd_compare_cells))

    r = sub.add_parser(
        "report",
        help="one self-contained HTML report of a run (RUN_DIR/report.html)",
        description="Write RUN_DIR/report.html: config, metrics, curves, confusion matrix, errors, "
        "model summary and, where they apply, filters, feature maps and gradient flow. "
        "Figures are embedded (it opens offline) and also written as RUN_DIR/report/*.png "
        "with *.csv.",
    )
    r.add_argument("run_dir", metavar="RUN_DIR")
    r.add_argument("--image", action=Text, help="image file for the feature maps (default: the first test image)")
    r.add_argument("--weights", choices=WEIGHTS, default="auto", help=WEIGHTS_HELP)
    r.add_argument("--samples", action=Number, ge=1, default=32, help="recurrent runs: sequences for the gradient flow")
    r.add_argument("--probes", action=Number, ge=0, help="recurrent runs: Jacobian-norm probes (0 exact)")
    r.set_defaults(func=cmd_report)
