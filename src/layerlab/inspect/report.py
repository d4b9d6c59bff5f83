"""One self-contained HTML report per run: ``RUN/report.html``.

Figures are embedded as base64 PNG (the file opens offline, in any browser, alone); each figure is
also written as ``RUN/report/<name>.png`` with every number behind it in ``RUN/report/<name>.csv``.
Sections: overview, configuration, training curves, test-set evaluation (confusion matrix, per-class
precision/recall, most confidently wrong samples; predicted-vs-true for regression), model summary
and, where they apply, conv filters and feature maps (CNNs) and gradient flow through time (RNNs).
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path

from ..errors import LayerlabError
from ..record import held_out_split, no_test_set_note
from ..rundir import RunDir

log = logging.getLogger(__name__)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1200px;
     padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
nav a{margin-right:.9rem} table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right} th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left} pre{background:#f7f7f7;padding:.8rem;overflow:auto;font-size:.85rem}
figure{margin:1rem 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85rem;color:#555} .note{color:#666;font-size:.9rem}
"""


class _Doc:
    """HTML built section by section; figures saved as PNG + CSV and embedded as base64."""

    def __init__(self, title: str, out: Path, run_path: Path):
        self.title = title
        self.out = out
        self.run_path = run_path
        self.parts: list[str] = []
        self.sections: list[tuple[str, str]] = []
        self.figures = 0

    def section(self, anchor: str, title: str) -> None:
        self.sections.append((anchor, title))
        self.parts.append(f'<h2 id="{anchor}">{html.escape(title)}</h2>')

    def text(self, s: str, cls: str = "") -> None:
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{c}>{html.escape(s)}</p>")

    def pre(self, s: str) -> None:
        self.parts.append(f"<pre>{html.escape(s)}</pre>")

    def table(self, header: list[str] | None, rows: list[list]) -> None:
        head = (
            "<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr></thead>"
            if header
            else ""
        )
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in rows)
        self.parts.append(f"<table>{head}<tbody>{body}</tbody></table>")

    def figure(self, files: dict, caption: str) -> None:
        png = Path(files["png"])
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        links = [
            f'<a href="{html.escape(self._rel(Path(files[k])))}">{html.escape(Path(files[k]).name)}</a>'
            for k in ("csv", "fit_csv")
            if k in files
        ]
        self.figures += 1
        self.parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>Figure {self.figures}. {html.escape(caption)} Numbers: {', '.join(links)}; "
            f'image: <a href="{html.escape(self._rel(png))}">{html.escape(png.name)}</a>.</figcaption></figure>'
        )

    def _rel(self, p: Path) -> str:
        try:
            return p.resolve().relative_to(self.run_path.resolve()).as_posix()
        except ValueError:
            return p.as_posix()

    def render(self) -> str:
        nav = " ".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in self.sections)
        return (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1><nav>{nav}</nav>" + "\n".join(self.parts) + "</body></html>\n"
        )


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


def write_report(
    run_dir: str | Path,
    *,
    image: str | Path | None = None,
    weights: str | None = None,
    gradflow_samples: int = 32,
    probes: int | None = None,
) -> Path:
    """Write ``RUN/report.html`` (and ``RUN/report/*.png`` + ``*.csv``); returns the HTML path.

    Args:
        image: an image file for the feature maps (default: the first test image).
        gradflow_samples: test sequences the gradient flow is averaged over (recurrent runs).
        probes: Jacobian-norm probes (see :func:`layerlab.inspect.gradflow.gradient_flow`).
    """
    from ..checkpoint import atomic_write_text
    from . import views
    from .conv import conv_layers
    from .gradflow import has_states

    views.check_flow_options(gradflow_samples, probes)  # before anything is read or written
    run = RunDir(run_dir)
    info = run.info()
    info["weights_used"] = run.resolve_weights(weights)  # None: best if a validation split chose it, else last
    model = run.model(info["weights_used"])
    out = run.path / "report"
    out.mkdir(parents=True, exist_ok=True)
    name, data = info["model"]["name"], info["dataset"]["name"]
    doc = _Doc(f"layerlab report: {run.path.name} ({name} on {data})", out, run.path)

    # --- overview and config
    doc.section("overview", "Overview")
    metrics = run.metrics()
    last = metrics[-1] if metrics else {}
    rows: list[list] = [
        ["run directory", str(run.path)],
        ["status", info.get("status")],
        ["model", name],
        ["parameters", info["model"].get("parameters")],
        ["dataset", data],
        ["samples (train / test)", f"{info['dataset'].get('n_train', 0):,} / {info['dataset'].get('n_test', 0):,}"],
        ["input shape", "x".join(map(str, info["dataset"]["input_shape"]))],
        ["task", info["dataset"].get("task")],
        ["epochs", len(metrics)],
        ["training wall seconds", info.get("train_wall_seconds")],
        ["device", info.get("device")],
        ["seed", info.get("seed")],
        ["augmentation (training only)", _augment_text(info)],
        ["weights shown", run.describe_weights(info["weights_used"])],
        ["started", info.get("started")],
        ["finished", info.get("finished")],
    ]
    env = info.get("environment") or {}
    rows += [[f"{k} version", env[k]] for k in ("layerlab", "torch") if env.get(k)]
    doc.table(None, rows)
    doc.section("config", "Configuration")
    doc.pre((run.path / "config.toml").read_text() if (run.path / "config.toml").is_file() else "(no config.toml)")

    # --- curves
    doc.section("training", "Training")
    if metrics:
        cv = views.curves_view(str(run.path), out=out)
        doc.figure(
            cv["files"],
            "Loss and accuracy per epoch on the training set (during the epoch) and the test set (after it).",
        )
        cols = [c for c in views.CURVE_COLUMNS + ["train_seconds", "samples_per_second"] if c in last]
        doc.table(cols, [[r.get(c) for c in cols] for r in metrics])
    else:
        doc.text("No epoch has finished yet (metrics.csv is missing).", "note")

    # --- evaluation on the test set
    ds = run.dataset()
    split = held_out_split(ds)  # a run without a test set never shows its validation split as one
    doc.section(
        "evaluation",
        {"test": "Test-set", "validation": "Validation-split", "training": "Training-data"}[split] + " evaluation",
    )
    if split != "test":
        doc.text(
            no_test_set_note(split, info["weights_used"]).capitalize().replace("--data file", "--data FILE") + ".",
            "note",
        )
    if ds.task == "regression":
        from .. import plots
        from ..engine import compute_metrics, predict_logits

        out_ = predict_logits(model, ds.test)
        mse = compute_metrics(ds.task, out_, ds.test.y)["mse"]
        pred = out_.reshape(ds.test.y.shape).float()
        y = ds.test.y.float()
        doc.text(
            f"{len(y):,} {split} samples, weights {info['weights_used']}: mean squared error {mse:.5g}"
            + (f" (predicting the mean scores {ds.meta['baseline_mse']:.4g})" if ds.meta.get("baseline_mse") else "")
        )
        n = min(len(y), 2000)
        files = views.save_figure(
            plots.regression_fit(pred[:n].numpy().ravel(), y[:n].numpy().ravel()),
            out,
            "predictions",
            [{"index": i, "true": float(y[i]), "predicted": float(pred[i])} for i in range(n)],
        )
        doc.figure(files, f"Predicted against true values for the first {n} test samples.")
    elif ds.task == "multilabel":
        from ..engine import compute_metrics, predict_logits

        m = compute_metrics(ds.task, predict_logits(model, ds.test), ds.test.y)
        doc.text(
            f"{m['n']:,} {split} samples, weights {info['weights_used']}: per-label accuracy {m['accuracy']:.4f}, "
            f"exact match {m['exact_match']:.4f}, F1 micro {m['f1_micro']:.4f}, macro {m['f1_macro']:.4f}."
        )
    else:
        ev = views.errors_view(str(run.path), model=model, ds=ds, out=out)
        doc.text(
            f"{ev['n']:,} {split} {'targets' if ds.task != 'classification' else 'samples'}, weights "
            f"{info['weights_used']}: accuracy {ev['accuracy']:.4f}."
        )
        doc.figure(
            ev["files"]["confusion"],
            f"Confusion matrix on the {split} {'set' if split == 'test' else 'split'}: counts, "
            "shaded by the fraction of each true class.",
        )
        doc.figure(
            ev["files"]["scores"],
            "Precision (of the samples predicted as the class, how many are it) "
            "and recall (of the samples of the class, how many were found).",
        )
        doc.table(
            ["class", "precision", "recall", "F1", "support"],
            [[r["class"], r["precision"], r["recall"], r["f1"], r["support"]] for r in ev["scores"]],
        )
        if "mistakes" in ev["files"]:
            doc.figure(
                ev["files"]["mistakes"],
                "The wrong test predictions the model was most confident of "
                "(probability of the predicted class in brackets).",
            )

    # --- model summary
    doc.section("model", "Model")
    try:
        sv = views.summary_view(str(run.path), out=out, model=model)
        s = sv["summary"]
        doc.table(
            ["layer", "module", "type", "output shape", "elements passed on", "parameters", "FLOPs"],
            [
                [
                    r.alias,
                    r.name,
                    r.kind,
                    "x".join(map(str, r.output_shape)) + (f" (x{r.calls} steps)" if r.calls > 1 else ""),
                    r.elements,
                    r.parameters,
                    r.flops,
                ]
                for r in s.rows
            ]
            + [["total", "", "", "", "", s.total_parameters, s.total_flops]],
        )
        if s.without_pools:
            doc.text(s.pooling_line())
        doc.figure(
            sv["files"],
            "Elements each layer passes on per sample (log scale); pooling layers in orange. "
            "FLOPs from torch.utils.flop_counter (a multiply-add counts 2).",
        )
    except LayerlabError as e:
        doc.text(f"No summary: {e}", "note")

    # --- convolutional views
    convs = conv_layers(model)
    if convs and run.spec.kind == "image":
        doc.section("filters", "Filters")
        for layer in convs:
            fv = views.filters_view(str(run.path), layer=layer, model=model, out=out)
            doc.figure(
                fv["files"],
                f"The learned kernels of {fv['alias']} ({fv['layer']}), shape "
                f"{'x'.join(map(str, fv['shape']))}: red positive, blue negative weights.",
            )
        doc.section("features", "Feature maps")
        x: object
        if image is None:
            x, what = (
                ds.test.sample(0),
                "the first test image"
                + (f" (class {ds.classes[int(ds.test.y[0])]})" if ds.classes and ds.test.y.dim() == 1 else ""),
            )
        else:
            x, what = Path(image), str(image)
        fv = views.features_view(str(run.path), x, model=model, out=out)
        doc.text(
            f"What every conv and pool layer outputs for {what}: "
            + "; ".join(f"{f['label']} {'x'.join(map(str, f['shape']))}" for f in fv["layers"])
            + "."
        )
        for layer in fv["layers"]:
            doc.figure(
                fv["files"][layer["alias"]],
                f"Feature maps of {layer['label']}, {'x'.join(map(str, layer['shape']))}, for {what}.",
            )

    # --- gradient flow
    if has_states(model):
        doc.section("gradflow", "Gradient flow through time")
        gf = views.gradflow(
            str(run.path),
            samples=gradflow_samples,
            probes=probes,
            weights=weights,
            out=out,
            run=run,
            model=model,
            dataset=ds,
        )
        flows = gf["flows"]
        doc.text(
            f"||dL/dh_t|| and ||dh_T/dh_t||_F/sqrt(H) per step t, averaged over {flows[0].samples} test "
            f"sequences, at the run's initialisation (rebuilt from its seed) and with its trained weights. "
            f"Jacobian norm: {flows[0].method}. A straight line on the log scale is a geometric decay; the "
            f"factor is fitted per step back in time (below 1: vanishing)."
        )
        doc.figure(gf["files"], "Gradient flow through time (log scale).")
        doc.table(
            ["weights", "layer", "measure", "decay factor per step", "steps per 10x", "fit R^2"],
            [
                [r["weights"], r["layer"], r["measure"], r["decay_factor"], r["steps_per_10x"], r["r2"]]
                for f in flows
                for r in f.fit_rows()
            ],
        )

    path = run.path / "report.html"
    atomic_write_text(path, doc.render())
    path.chmod(0o644)  # a page to share, not a secret (the atomic writer's temp file is 0600)
    return path


def _augment_text(info: dict) -> str:
    """What run.json says the training batches were augmented with (``none``; run.json is untrusted:
    anything but the expected text reads as unknown)."""
    aug = info.get("augment")
    if aug is None:
        return "none"
    text = aug.get("text") if isinstance(aug, dict) else None
    return text if isinstance(text, str) else "unknown (run.json's augment is not what layerlab writes)"
