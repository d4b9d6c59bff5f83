"""One road from data to run to every view: predict, evaluate, the report and metrics.csv read the
same run (its model, input spec and data) and so give the same numbers."""

from __future__ import annotations

import csv
import json
import re

import pytest

from layerlab.cli import main
from layerlab.data.catalog import find_named_ts
from layerlab.data.formats.ts import read_ts


def _cli_json(capsys, *argv) -> object:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def ucr_run(tmp_path_factory):
    """A GRU trained briefly on ItalyPowerDemand (a UCR set bundled with aeon: 67 train and 1,029 test
    series of 24 steps, 2 classes)."""
    if find_named_ts("ItalyPowerDemand") is None:
        pytest.skip("aeon (the test extra) is not installed")
    out = tmp_path_factory.mktemp("ucr") / "run"
    assert (
        main(
            [
                "train",
                "--model",
                "gru",
                "--data",
                "ItalyPowerDemand",
                "--hidden",
                "16",
                "--epochs",
                "3",
                "--batch-size",
                "16",
                "--lr",
                "0.01",
                "--seed",
                "0",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    return out


def test_predict_on_csv_files_gives_evaluations_per_sample_classes(ucr_run, tmp_path, capsys):
    ev = _cli_json(capsys, "evaluate", str(ucr_run), "--per-sample", "--json")
    per_sample = ev["predictions"]
    assert len(per_sample) == ev["n"] == 1029
    # the test series as raw values in two CSV files, one series per row, as a user would bring them
    ts = read_ts(find_named_ts("ItalyPowerDemand").with_name("ItalyPowerDemand_TEST.ts"))
    halves = [ts.series[:500], ts.series[500:]]
    files = []
    for k, part in enumerate(halves):
        f = tmp_path / f"part{k}.csv"
        with open(f, "w", newline="") as fh:
            w = csv.writer(fh)
            for s in part:
                w.writerow([repr(float(v)) for v in s[:, 0]])
        files.append(str(f))
    preds = _cli_json(capsys, "predict", str(ucr_run), *files, "--json", "--top-k", "1")
    assert len(preds) == 1029
    assert [p["label"] for p in preds] == [p["predicted"] for p in per_sample]
    assert [p["probability"] for p in preds] == pytest.approx([p["probability"] for p in per_sample], abs=1e-5)
    # and the classes are not all one (the model learnt something to agree on)
    assert len({p["label"] for p in preds}) == 2
    acc = sum(p["true"] == p["predicted"] for p in per_sample) / len(per_sample)
    assert acc == pytest.approx(ev["accuracy"])


@pytest.mark.slow
def test_report_evaluate_and_metrics_csv_agree(trained_run, capsys):
    ev = _cli_json(capsys, "evaluate", str(trained_run), "--weights", "last", "--json")
    with open(trained_run / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    assert float(last["test_accuracy"]) == pytest.approx(ev["accuracy"], abs=1e-12)
    assert float(last["test_loss"]) == pytest.approx(ev["loss"], rel=1e-5)
    assert main(["report", str(trained_run), "--weights", "last"]) == 0
    html = (trained_run / "report.html").read_text()
    shown = re.search(r"weights last: accuracy (\d\.\d{4})", html)
    assert shown is not None, "the report states the test accuracy of the weights it shows"
    assert float(shown.group(1)) == round(ev["accuracy"], 4)
    # per-class accuracy of evaluate is the recall column of the report's confusion view
    with open(trained_run / "report" / "class_scores.csv") as f:
        recall = {r["class"]: float(r["recall"]) for r in csv.DictReader(f)}
    for name, acc in ev["per_class_accuracy"].items():
        assert recall[name] == pytest.approx(acc, abs=1e-6)


def test_predict_on_test_images_matches_evaluation(trained_run, tmp_path, capsys):
    """The image road: test images written as PNG files are predicted as evaluation predicts them."""
    from PIL import Image

    from layerlab.rundir import RunDir

    ds = RunDir(trained_run).dataset()
    ev = _cli_json(capsys, "evaluate", str(trained_run), "--per-sample", "--json")
    files = []
    for i in range(20):
        f = tmp_path / f"{i}.png"
        Image.fromarray((ds.test.x[i, 0].numpy() * 255).round().astype("uint8"), mode="L").save(f)
        files.append(str(f))
    preds = _cli_json(capsys, "predict", str(trained_run), *files, "--json")
    assert [p["label"] for p in preds] == [p["predicted"] for p in ev["predictions"][:20]]
