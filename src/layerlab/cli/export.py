"""``layerlab export RUN_DIR``: the run's model as one ONNX file, its input spec, classes and
decoding in the file's metadata (``layerlab predict --onnx FILE`` reads them)."""

from __future__ import annotations

from .options import Number, Text
from .run import WEIGHTS, WEIGHTS_HELP


def cmd_export(args) -> int:
    from ..export import export_run

    r = export_run(args.run_dir, out=args.out, which=args.weights, opset=args.opset, exporter=args.exporter)
    shape = "x".join(str(s) for s in r["input"]["shape"])
    print(
        f"wrote {r['onnx']} (opset {r['opset']}, {r['weights']} weights, input {shape}; input spec, "
        f"{len(r['classes'])} classes and decoding in its metadata: `layerlab predict --onnx {r['onnx']} FILE`)"
    )
    c = r["check"]
    print(f"onnxruntime vs torch on {c['samples']} samples of the {c['on']}: max abs diff {c['max_abs_diff']:.3g}")
    return 0


def register(sub) -> None:
    """Add ``export`` to the ``layerlab`` sub-parsers."""
    e = sub.add_parser(
        "export",
        help="write a run's model as ONNX, checked with onnxruntime",
        description="Write the run's model as ONNX (dynamic batch axis; any size for a CNN with a global "
        "pool, any length for a recurrent model), with the run's input spec, its classes, how outputs are "
        "decoded, the model's name and the layerlab version in the file's metadata, so that "
        "`layerlab predict --onnx FILE` needs onnxruntime alone; check it with onnxruntime against torch "
        "on samples of the run's data. Needs pip install 'layerlab[onnx]'.",
    )
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
    e.add_argument(
        "--out", action=Text, metavar="FILE.onnx", help="the ONNX file to write (default RUN_DIR/model.onnx)"
    )
    e.add_argument("--weights", choices=WEIGHTS, default="auto", help=WEIGHTS_HELP)
    e.add_argument("--opset", action=Number, ge=1, help="ONNX opset (default 17)")
    e.add_argument(
        "--exporter",
        choices=("torchscript", "dynamo"),
        default="torchscript",
        help="torch's exporter: torchscript (default; every layerlab model, dynamic axes) or dynamo "
        "(torch.export-based; needs onnxscript)",
    )
    e.set_defaults(func=cmd_export)
