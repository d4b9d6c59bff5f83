"""The per-run HTML report: self-contained, every figure a PNG with its CSV, renders in Chromium;
and the training/error views behind it (confusion matrix, precision/recall, confident mistakes)."""

from __future__ import annotations

import base64
import csv
import re

import numpy as np
import pytest
import torch

from layerlab.engine import compute_metrics
from layerlab.inspect.evaluation import Predictions, confident_mistakes, per_class_scores


def _logits(pred: torch.Tensor, k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(pred, k).float() * 5.0


def test_confusion_and_scores_by_hand():
    y = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 0, 2])
    m = compute_metrics("classification", _logits(pred, 3), y)
    cm = m["confusion"].numpy()
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    assert m["accuracy"] == pytest.approx(5 / 7) and m["n"] == m["targets"] == 7
    assert m["per_class_accuracy"] == pytest.approx([1 / 2, 1.0, 2 / 3])
    s = per_class_scores(cm)
    np.testing.assert_allclose(s["precision"], [1 / 2, 2 / 3, 1.0])
    np.testing.assert_allclose(s["recall"], [1 / 2, 1.0, 2 / 3])
    np.testing.assert_array_equal(s["support"], [2, 2, 3])
    # per-step targets: padding (-100) is left out; a class with no target has no accuracy
    m2 = compute_metrics(
        "sequence-classification", _logits(torch.tensor([[0, 1], [1, 0]]), 3), torch.tensor([[0, -100], [1, 1]])
    )
    np.testing.assert_array_equal(m2["confusion"].numpy(), [[1, 0, 0], [1, 1, 0], [0, 0, 0]])
    assert m2["targets"] == 3 and m2["n"] == 2 and m2["per_class_accuracy"] == [1.0, 0.5, None]


def test_regression_metrics_are_the_mse():
    out, y = torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0])
    m = compute_metrics("regression", out, y)
    assert m["loss"] == m["mse"] == pytest.approx((1 + 4) / 2) and "accuracy" not in m


def test_confident_mistakes_are_wrong_and_sorted():
    logits = torch.tensor([[5.0, 0.0], [0.0, 1.0], [0.0, 9.0], [3.0, 0.0]])
    y = torch.tensor([0, 0, 0, 1])
    p = Predictions(torch.zeros(4, 1, 2, 2), y, logits, ["a", "b"], "classification")
    m = confident_mistakes(p, k=5)
    assert [r["index"] for r in m] == [2, 3, 1]
    assert all(r["predicted"] != r["true"] for r in m)
    assert m[0]["confidence"] == pytest.approx(torch.softmax(logits[2], -1)[1].item())


@pytest.fixture(scope="module")
def report(trained_run):
    from layerlab.inspect.report import write_report

    return write_report(trained_run)


@pytest.mark.slow
def test_report_is_self_contained_with_png_and_csv_for_every_figure(report, trained_run):
    html = report.read_text()
    assert report == trained_run / "report.html"
    for section in ("Overview", "Configuration", "Training", "Test-set evaluation", "Model", "Filters", "Feature maps"):
        assert f">{section}</h2>" in html
    assert "34,826" in html and "Gradient flow" not in html
    # nothing the page needs comes from elsewhere: no external scripts, styles or images
    assert not re.search(r"<(script|link)\b", html)
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) >= 10 and all(s.startswith("data:image/png;base64,") for s in srcs)
    pngs = sorted((trained_run / "report").glob("*.png"))
    on_disk = {p.read_bytes() for p in pngs}
    for s in srcs:
        data = base64.b64decode(s.split(",", 1)[1])
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data in on_disk
    for p in pngs:
        rows = list(csv.DictReader(open(p.with_suffix(".csv"))))
        assert rows, f"{p.with_suffix('.csv')} is empty"
    names = {p.stem for p in pngs}
    assert {
        "curves",
        "confusion",
        "class_scores",
        "summary",
        "filters_conv1",
        "filters_conv2",
        "features_conv1",
        "features_pool1",
        "features_conv2",
        "features_pool2",
    } <= names
    # the confusion CSV holds every test sample once
    cm = list(csv.DictReader(open(trained_run / "report" / "confusion.csv")))
    assert sum(int(v) for r in cm for k, v in r.items() if k != "true \\ predicted") == 100


def test_report_feature_maps_match_the_layer_shapes(report, trained_run):
    by_layer = {}
    for r in csv.DictReader(open(trained_run / "report" / "summary.csv")):
        by_layer[r["alias"]] = r["output_shape"]
    for alias in ("conv1", "pool1", "conv2", "pool2"):
        rows = list(csv.DictReader(open(trained_run / "report" / f"features_{alias}.csv")))
        shape = (
            1 + max(int(r["channel"]) for r in rows),
            1 + max(int(r["row"]) for r in rows),
            1 + max(int(r["col"]) for r in rows),
        )
        assert "x".join(map(str, shape)) == by_layer[alias]


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report, tmp_path):
    from browser import check_report, find_chromium

    if find_chromium() is None:
        pytest.skip(
            "Chromium is not installed: `apt-get install chromium` (or set LAYERLAB_CHROMIUM) to run "
            "the browser check of the HTML report"
        )
    r = check_report(report, screenshot=tmp_path / "shot.png", height=1200)
    assert r["total"] >= 10
    assert r["loaded"] == r["total"], f"images that did not load: {r}"
    assert all(w > 100 and h > 100 for w, h in r["sizes"])
    assert r["screenshot"] and (tmp_path / "shot.png").stat().st_size > 10_000


def test_report_of_a_recurrent_run_has_gradient_flow(tmp_path):
    from layerlab import api
    from layerlab.config import RunConfig
    from layerlab.inspect.report import write_report

    cfg = RunConfig()
    cfg.data.name, cfg.data.length, cfg.data.n_train, cfg.data.n_test = "adding", 8, 64, 16
    cfg.model.name, cfg.model.hidden = "rnn", 6
    cfg.train.epochs, cfg.train.device = 1, "cpu"
    run, _ = api.train(cfg, tmp_path / "rnn-run")
    html = write_report(run.path, gradflow_samples=8).read_text()
    assert ">Gradient flow through time</h2>" in html and ">Filters</h2>" not in html
    rows = list(csv.DictReader(open(run.path / "report" / "gradflow.csv")))
    assert {r["weights"] for r in rows} == {"init", "trained (last)"}
    assert len(rows) == 2 * 8
    assert (run.path / "report" / "gradflow_fit.csv").is_file()
    assert (run.path / "report" / "predictions.csv").is_file()


def test_initial_model_is_the_runs_own_initialisation(tmp_path):
    """``gradflow`` compares a run's trained weights with its initial ones, rebuilt from its seed:
    with a zero learning rate the 'trained' weights are the initial ones, so the two must agree."""
    from datagen import make_idx_dir
    from layerlab import api
    from layerlab.config import RunConfig

    cfg = RunConfig()
    cfg.data.name = str(make_idx_dir(tmp_path / "bars", n_train=32, n_test=8))
    cfg.model.name, cfg.model.channels = "cnn", "4,M"
    cfg.train.epochs, cfg.train.optimizer, cfg.train.lr, cfg.train.seed, cfg.train.device = 1, "sgd", 0.0, 7, "cpu"
    run, _ = api.train(cfg, tmp_path / "run")
    trained, init = run.model("last"), run.model("init")
    for (k, a), (_, b) in zip(sorted(trained.state_dict().items()), sorted(init.state_dict().items()), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
