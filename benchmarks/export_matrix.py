"""The ONNX export matrix: every model family and option, exported as ``layerlab export`` does (the
same exporter call, dynamic batch and, where the model allows, time or size axes), run in
onnxruntime and compared with torch on the same inputs, at the built size and at another one.

    python benchmarks/export_matrix.py     # writes benchmarks/results/export_matrix.md (about a minute)

``tests/export/test_export_matrix.py`` asserts the same cases to 1e-4.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from peer_tools import cpu_model  # the benchmarks' one machine description

from layerlab.export import _export, dynamic_axes
from layerlab.models import create_model

ROOT = Path(__file__).resolve().parents[1]

#: (family, options, built sample shape, another sample shape or None when the size is fixed)
CASES = [
    ("article-cnn", {}, (1, 28, 28), None),
    ("cnn 1-D", {"channels": "8,M,16"}, (40, 3), None),
    ("cnn 1-D, global avg pool", {"channels": "8,M,16", "global_pool": "avg", "padding": "same"}, (40, 3), (67, 3)),
    ("cnn 2-D, batch norm, residual", {"channels": "8,8,M,16", "padding": "same", "batch_norm": True,
                                       "residual": True}, (3, 16, 16), None),
    ("cnn 2-D, global max pool", {"channels": "8,M,16", "global_pool": "max"}, (1, 20, 20), (1, 33, 27)),
    ("cnn 3-D", {"channels": "4,M,8"}, (1, 10, 10, 10), None),
    ("cnn 3-D, global avg pool, residual", {"channels": "4,4,M,8", "padding": "same", "residual": True,
                                            "global_pool": "avg"}, (2, 8, 8, 8), (2, 12, 9, 10)),
    ("article-lstm", {}, (28, 28), (40, 28)),
    ("rnn (tanh), 2 layers", {"hidden": 16, "layers": 2}, (25, 4), (60, 4)),
    ("lstm, bidirectional", {"hidden": 16, "bidirectional": True}, (25, 4), (60, 4)),
    ("gru", {"hidden": 16}, (25, 4), (60, 4)),
    ("residual (our loop: fixed T)", {"hidden": 16}, (25, 4), None),
    ("gru, per-step head", {"hidden": 16, "head": "step"}, (25, 4), (60, 4)),
    ("lstm, 2 layers, bidirectional, per-step head", {"hidden": 16, "layers": 2, "bidirectional": True,
                                                     "head": "step"}, (25, 4), (60, 4)),
]  # fmt: skip


def model_name(family: str) -> str:
    return family.split(",")[0].split(" ")[0]  # "cnn 3-D, global ..." -> "cnn"


def max_abs_diffs(family: str, options: dict, shape: tuple, other: tuple | None, folder: Path) -> list[float]:
    """Export one model and return max |onnxruntime - torch| on 3 samples at each size tried."""
    import onnxruntime as ort

    torch.manual_seed(0)
    model = create_model(model_name(family), shape, 5, **options).eval()
    path = folder / (family.replace(" ", "_").replace(",", "") + ".onnx")
    _export(model, torch.randn(2, *shape), path, 17, dynamic_axes(model, len(shape) + 1), "torchscript")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    diffs = []
    for s in (shape, other) if other else (shape,):
        x = torch.randn(3, *s)
        with torch.no_grad():
            want = model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        diffs.append(float(np.abs(got - want).max()))
    return diffs


def main() -> None:
    rows = ["| family and options | input (built) | other size | max abs diff, built | max abs diff, other |",
            "| --- | --- | --- | ---: | ---: |"]  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        for family, options, shape, other in CASES:
            diffs = max_abs_diffs(family, options, shape, other, Path(d))
            rows.append(
                f"| {family} | {shape} | {other or 'fixed'} | {diffs[0]:.2e} | "
                + (f"{diffs[1]:.2e} |" if other else "- |")
            )
    text = (
        "# ONNX export matrix\n\nMade by `python benchmarks/export_matrix.py` on "
        f"{cpu_model()} (torch {torch.__version__.split('+')[0]}, onnxruntime "
        f"{__import__('onnxruntime').__version__}, opset 17, the TorchScript-based exporter `layerlab export` "
        "uses by default). Each model is built with seed 0 (untrained: weights as initialised), exported with a "
        "dynamic batch axis and, where the model allows, a dynamic time axis (recurrent models on torch's fused "
        "layers, 1-D CNNs with a global pool) or spatial axes (CNNs with a global pool); the residual cell runs "
        "layerlab's own loop over time, which the exporter unrolls, so its T is fixed; 3 random samples are run "
        "through onnxruntime and "
        "torch at the built size and at another one. `tests/export/test_export_matrix.py` asserts every cell "
        "<= 1e-4.\n\n" + "\n".join(rows) + "\n"
    )
    out = ROOT / "benchmarks" / "results" / "export_matrix.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
