"""``layerlab claims``: the quick run end to end (every claim on the page with its verdict, numbers
and figure), and the pieces that decide what the page says: the quotes are the article's words, every
verdict follows from its rule and the numbers, bad input is one sentence before any work."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from layerlab.claims import CLAIMS, render_page
from layerlab.claims import base as claims_base
from layerlab.claims import cnn as claims_cnn
from layerlab.claims import rnn as claims_rnn
from layerlab.claims.base import CAVEAT, NOT_SUPPORTED, QUICK, SUPPORTED, VERDICTS, Context, stats
from layerlab.cli import main
from layerlab.errors import DataError, LayerlabError


# ----------------------------------------------------------------------------------------------
# The rules
# ----------------------------------------------------------------------------------------------
def _s(mean, sd=0.0, n=3):
    return {"mean": mean, "sd": sd, "min": mean, "max": mean, "n": n}


def _conv(trained, raw=0.80, untrained=0.82, sd=0.002):
    return {"trained": _s(trained, sd), "raw": _s(raw, 0.0, 1), "untrained": _s(untrained, sd)}


def _pool(with_p, without_p, diff, sd):
    return {"parameters_with_pools": with_p, "parameters_without_pools": without_p, "drop_difference": _s(diff, sd)}


def _depth(one, best, sd=0.01):
    return {
        "parameters_target": 1000,
        "depths": {"1": {"test_loss": _s(one, sd)}, "2": {"test_loss": _s(best, sd)}, "3": {"test_loss": _s(9.0, sd)}},
    }


def _gated(lstm_mse, gru_mse, lstm_copy, gru_copy):
    def cell(v):
        return {"final": _s(v)}

    return {
        "length": 400,
        "copy_length": 20,
        "cells": {
            "adding:rnn": cell(0.17),
            "adding:lstm": cell(lstm_mse),
            "adding:gru": cell(gru_mse),
            "copy:rnn": cell(0.12),
            "copy:lstm": cell(lstm_copy),
            "copy:gru": cell(gru_copy),
        },
    }


@pytest.mark.parametrize(
    ("decide", "numbers", "verdict"),
    [
        (claims_cnn.decide_conv_features, _conv(0.88), SUPPORTED),
        (claims_cnn.decide_conv_features, _conv(0.825), CAVEAT),
        (claims_cnn.decide_conv_features, _conv(0.81), NOT_SUPPORTED),
        (claims_cnn.decide_pooling, _pool(34826, 387466, 0.05, 0.01), SUPPORTED),
        (claims_cnn.decide_pooling, _pool(34826, 387466, 0.01, 0.01), CAVEAT),
        (claims_cnn.decide_pooling, _pool(400000, 387466, -0.02, 0.01), NOT_SUPPORTED),
        (claims_rnn.decide_deeper, _depth(1.80, 1.70), SUPPORTED),
        (claims_rnn.decide_deeper, _depth(1.80, 1.79), CAVEAT),
        (claims_rnn.decide_deeper, _depth(1.80, 1.85), NOT_SUPPORTED),
        (claims_rnn.decide_gated, _gated(0.001, 0.002, 0.9, 0.8), SUPPORTED),
        (claims_rnn.decide_gated, _gated(0.001, 0.17, 0.12, 0.12), CAVEAT),
        (claims_rnn.decide_gated, _gated(0.17, 0.17, 0.12, 0.12), NOT_SUPPORTED),
    ],
)
def test_verdicts_follow_the_numbers(decide, numbers, verdict):
    """Each rule gives each verdict for some numbers: a verdict is never a constant."""
    got, reason = decide(numbers)
    assert got == verdict, reason
    assert reason


def _vanishing(decays, reach, explained):
    return {
        "lengths": [50, 150, 400],
        "per_length": {
            str(T): {"decay_trained": _s(d), "reach_trained": reach, "explained": e}
            for T, d, e in zip((50, 150, 400), decays, explained, strict=True)
        },
    }


@pytest.mark.parametrize(
    ("numbers", "verdict"),
    [
        (_vanishing([0.9, 0.95, 0.97], 1e-6, [0.3, 0.01, 0.0]), SUPPORTED),
        (_vanishing([0.9, 0.95, 0.97], 1e-6, [0.99, 0.98, 0.97]), CAVEAT),
        (_vanishing([0.9, 1.01, 0.97], 0.5, [0.3, 0.01, 0.0]), NOT_SUPPORTED),
    ],
)
def test_vanishing_rule(numbers, verdict):
    assert claims_rnn.decide_vanishing(numbers)[0] == verdict


def test_residual_and_input_size_rules():
    def cells(res_reach, res_stable, res_mse):
        out = {}
        for T in (150, 400):
            out[f"rnn@{T}"] = {"reach_trained": 1e-6, "stable": True, "final": _s(0.17)}
            out[f"residual@{T}"] = {"reach_trained": res_reach, "stable": res_stable, "final": _s(res_mse)}
        return {"lengths": [150, 400], "cells": out}

    assert claims_rnn.decide_residual(cells(0.5, True, 0.01))[0] == SUPPORTED
    assert claims_rnn.decide_residual(cells(0.5, False, 0.01))[0] == CAVEAT
    assert claims_rnn.decide_residual(cells(2e-6, True, 0.01))[0] == NOT_SUPPORTED

    def sizes(refused, gp):
        return {
            "refused": refused,
            "frame": 36,
            "chance": 0.1,
            "global_pool_frame": _s(gp),
            "cnn_1d": _s(0.85),
            "cnn_3d": _s(0.84),
        }

    assert claims_cnn.decide_input_size(sizes(True, 0.8))[0] == CAVEAT
    assert claims_cnn.decide_input_size(sizes(True, 0.15))[0] == SUPPORTED
    assert claims_cnn.decide_input_size(sizes(False, 0.8))[0] == NOT_SUPPORTED


def test_efficiency_rule():
    def model(params, acc, t, reached=3):
        return {"parameters": params, "accuracy": _s(acc), "seconds_to_target": _s(t), "reached": reached, "seeds": 3}

    def numbers(small_acc, small_t):
        return {
            "target": 0.875,
            "models": {
                "article CNN": model(34826, 0.88, 10.0),
                "narrow CNN": model(12858, small_acc, small_t),
                "global-pool CNN": model(14458, 0.80, 20.0, reached=0),
            },
        }

    assert claims_cnn.decide_efficiency(numbers(0.88, 8.0))[0] == SUPPORTED
    assert claims_cnn.decide_efficiency(numbers(0.88, 12.0))[0] == CAVEAT
    assert claims_cnn.decide_efficiency(numbers(0.80, 8.0))[0] == NOT_SUPPORTED


def test_stats_mean_and_spread():
    s = stats([0.8, 0.9, None, float("nan"), 1.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.9) and s["sd"] == pytest.approx(0.1)
    assert stats([])["mean"] is None and stats([2.0])["sd"] == 0.0


# ----------------------------------------------------------------------------------------------
# The experiments' helpers
# ----------------------------------------------------------------------------------------------
def test_shift_and_frame_and_clips():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    down = claims_cnn.shift_images(x, 1, 0)
    assert torch.equal(down[0, 0, 0], torch.zeros(4)) and torch.equal(down[0, 0, 1:], x[0, 0, :3])
    left = claims_cnn.shift_images(x, 0, -2)
    assert torch.equal(left[0, 0, :, :2], x[0, 0, :, 2:]) and torch.equal(left[0, 0, :, 2:], torch.zeros(4, 2))
    big = claims_cnn.framed(x, 8)
    assert big.shape == (1, 1, 8, 8) and big.sum() == x.sum() and torch.equal(big[0, 0, 2:6, 2:6], x[0, 0])
    from layerlab.data import Split

    images = torch.rand(3, 1, 28, 28)
    c = claims_cnn.clips(Split(images, torch.arange(3)))
    assert c.x.shape == (3, 1, claims_cnn.CLIP_FRAMES, 28, 28)
    assert torch.equal(c.x[:, :, 1], images)  # frame 1 is the image, the others moved one pixel a frame
    assert torch.equal(c.x[:, :, 2], claims_cnn.shift_images(images, 0, 1))


def test_images_fall_back_in_quick_mode_only(monkeypatch):
    def missing(*a, **k):
        raise DataError("fashion-mnist: not found")

    monkeypatch.setattr(claims_base, "load_dataset", missing)
    ctx = Context(QUICK)
    ds = ctx.images()
    assert ds.name == "bars" and len(ds.train) == QUICK.image_train and ctx.notes
    full = Context(claims_base.FULL)
    with pytest.raises(LayerlabError, match="dataset-fashion-mnist"):
        full.images()


def test_text_corpus_falls_back_in_quick_mode_only(monkeypatch, tmp_path):
    monkeypatch.setattr(claims_rnn, "LICENSE_DIR", tmp_path / "none")
    path, what = claims_rnn.corpus(Context(QUICK), tmp_path)
    assert "generated" in what and len(path.read_text()) == QUICK.text_chars
    with pytest.raises(LayerlabError, match="--text"):
        claims_rnn.corpus(Context(claims_base.FULL), tmp_path)


def test_matched_hidden_sizes_match_the_parameter_count():
    from layerlab.data.transforms import InputSpec

    spec = InputSpec("tokens", (20,), head="step")
    hidden, params = claims_rnn._matched_hidden(spec, 40, 3, 50_000)
    assert abs(params - 50_000) / 50_000 < 0.03 and hidden > 8


def test_page_escapes_table_pipes(tmp_path):
    doc = {
        "meta": {
            "mode": "full",
            "partial": False,
            "claims_run": ["vanishing"],
            "command": "layerlab claims",
            "date": "today",
            "seeds": 3,
            "cpu": "cpu",
            "cores": 2,
            "threads": 2,
            "torch": "2",
            "layerlab": "0",
            "python": "3",
            "total_seconds": 1.0,
            "budget_seconds": 1800,
            "within_budget": True,
            "notes": [],
        },
        "claims": [
            {
                "name": "vanishing",
                "title": "T",
                "section": "6.2.1",
                "quote": "q",
                "experiment": "e",
                "command": "layerlab claims --only vanishing",
                "columns": ["||dL/dh_t||"],
                "rows": [{"||dL/dh_t||": "a|b"}],
                "verdict": SUPPORTED,
                "reason": "r",
                "rule": "rule",
                "notes": [],
                "figures": ["v.png"],
                "seconds": 1.0,
            }
        ],
    }
    page = render_page(doc, tmp_path / "docs" / "claims.md", tmp_path / "res")
    assert "| \\|\\|dL/dh_t\\|\\| |" in page and "| a\\|b |" in page
    assert "](../res/v.png)" in page


# ----------------------------------------------------------------------------------------------
# Bad input: one sentence, exit 2, nothing written
# ----------------------------------------------------------------------------------------------
def test_unknown_claim_is_one_sentence(capsys, tmp_path):
    assert main(["claims", "--only", "pooling,nope", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "conv-features" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_help_names_every_claim_without_importing_torch():
    from layerlab.cli import claims as cli_claims

    assert cli_claims.CLAIM_NAMES == ", ".join(CLAIMS)


@pytest.mark.parametrize("flag", [["--seeds", "0"], ["--threads", "0"]])
def test_counts_below_one_are_refused(flag, capsys, tmp_path):
    assert main(["claims", "--quick", *flag, "--results", str(tmp_path / "r")]) == 2
    assert flag[0] in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_someone_elses_results_folder_is_refused(capsys, tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    (res / "mine.png").write_bytes(b"x")
    assert main(["claims", "--quick", "--only", "deeper", "--results", str(res), "--out", str(tmp_path / "c.md")]) == 2
    assert "did not write" in capsys.readouterr().err
    assert (res / "mine.png").read_bytes() == b"x" and not (tmp_path / "c.md").exists()


# ----------------------------------------------------------------------------------------------
# The quick run, end to end
# ----------------------------------------------------------------------------------------------
def _floats(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _floats(x)
    elif isinstance(v, list):
        for x in v:
            yield from _floats(x)
    elif isinstance(v, float):
        yield v


@pytest.mark.slow
def test_quick_run_fills_every_claim(tmp_path, capsys):
    out, res = tmp_path / "docs" / "claims.md", tmp_path / "results"
    assert main(["claims", "--quick", "--out", str(out), "--results", str(res)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((res / "claims.json").read_text())
    assert doc["meta"]["mode"] == "quick" and doc["meta"]["seeds"] == 1 and doc["meta"]["threads"] == 1
    assert math.isfinite(doc["meta"]["total_seconds"]) and doc["meta"]["cpu"] and doc["meta"]["torch"]
    assert [c["name"] for c in doc["claims"]] == list(CLAIMS)
    page = out.read_text()
    assert "Quick mode: these numbers say nothing about the claims" in page
    log = (res / "claims.log").read_text()
    for c in doc["claims"]:
        spec = CLAIMS[c["name"]]
        # the verdict is the rule applied to the numbers the JSON keeps
        assert c["verdict"] in VERDICTS
        assert spec.decide(c["numbers"]) == (c["verdict"], c["reason"])
        numbers = list(_floats(c["numbers"]))
        assert numbers and all(math.isfinite(v) for v in numbers), c["name"]
        assert c["rows"] and c["columns"] and c["experiment"] and c["rule"] and c["quote"] == spec.quote
        for row in c["rows"]:
            assert all(row.get(col) not in (None, "", "n/a") for col in c["columns"]), (c["name"], row)
        assert c["figures"]
        for fig in c["figures"]:
            data = (res / fig).read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, fig
            assert f"](../results/{fig})" in page
        assert f"## {c['title']} ({c['section']})" in page
        assert f"**Verdict: {c['verdict']}.**" in page and f"`{c['command']} --quick`" in page
        assert re.search(
            rf"\| \[{re.escape(c['title'])}\]\(#[^)]+\) \| {re.escape(c['section'])} \| \*\*"
            rf"{re.escape(c['verdict'])}\*\* \|",
            page,
        )
        assert c["name"] in log and c["name"] in printed
    # every number shown in a table is a number the run produced: read one back from the page
    pooling = next(c for c in doc["claims"] if c["name"] == "pooling")
    assert f"| {pooling['numbers']['parameters_without_pools']:,} |" in page
    assert (res / "pooling.csv").read_text().startswith("model,seed,shift_px,test_accuracy")


def test_default_paths_are_the_repositorys_only_in_its_source_tree(tmp_path, monkeypatch):
    """A full run writes docs/claims.md and benchmarks/results/claims only in layerlab's own tree;
    elsewhere claims/, never a docs/ and a benchmarks/ folder in a folder of the user's."""
    from layerlab.claims import command_line, default_paths

    monkeypatch.chdir(tmp_path)
    assert default_paths(False) == (Path("claims/claims.md"), Path("claims/results"))
    assert default_paths(True) == (Path("claims-only/claims.md"), Path("claims-only"))
    assert command_line(False, None, None, None, None, None, "claims/claims.md", "claims/results", False) == (
        "layerlab claims"
    )
    (tmp_path / "ARTICLE.md").write_text("the article")
    (tmp_path / "src" / "layerlab").mkdir(parents=True)
    assert default_paths(False) == (Path("docs/claims.md"), Path("benchmarks/results/claims"))
    assert default_paths(True) == (Path("claims-only/claims.md"), Path("claims-only"))
