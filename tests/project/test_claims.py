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
from layerlab.claims import kernels as claims_kernels
from layerlab.claims import rnn as claims_rnn
from layerlab.claims.base import CAVEAT, NOT_SUPPORTED, QUICK, SUPPORTED, VERDICTS, Context, stats
from layerlab.cli import main
from layerlab.config import ModelConfig
from layerlab.errors import DataError, LayerlabError
from layerlab.rundir import build_model_for


# ----------------------------------------------------------------------------------------------
# The rules
# ----------------------------------------------------------------------------------------------
def _s(mean, sd=0.0, n=3):
    return {"mean": mean, "sd": sd, "min": mean, "max": mean, "n": n}


def _conv(trained, raw=0.80, untrained=0.82, sd=0.002):
    return {"trained": _s(trained, sd), "raw": _s(raw, 0.0, 1), "untrained": _s(untrained, sd)}


def _pool(with_p, without_p, diff, sd):
    return {"parameters_with_pools": with_p, "parameters_without_pools": without_p, "drop_difference": _s(diff, sd)}


def _depth(one, best, sd=0.01, train=None):
    """Test losses (and training losses: ``train`` = (one, best), else equal to the test's)."""
    tr = train or (one, best)
    return {
        "parameters_target": 1000,
        "depths": {
            "1": {"test_loss": _s(one, sd), "train_loss": _s(tr[0], sd), "converged": 3},
            "2": {"test_loss": _s(best, sd), "train_loss": _s(tr[1], sd), "converged": 3},
            "3": {"test_loss": _s(9.0, sd), "train_loss": _s(9.0, sd), "converged": 2},
        },
    }


def _gated(lstm_mse, gru_mse, lstm_copy, gru_copy, chrono=None):
    def cell(v):
        return {"final": _s(v)}

    out = {
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
    if chrono is not None:
        out["cells"]["adding:lstm-chrono"], out["cells"]["copy:lstm-chrono"] = cell(chrono[0]), cell(chrono[1])
    return out


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
        (claims_rnn.decide_deeper, _depth(1.80, 1.79, train=(1.6, 1.5)), CAVEAT),
        (claims_rnn.decide_deeper, _depth(1.80, 1.79), NOT_SUPPORTED),
        (claims_rnn.decide_deeper, _depth(1.80, 1.85), NOT_SUPPORTED),
        (claims_rnn.decide_gated, _gated(0.001, 0.002, 0.9, 0.8), SUPPORTED),
        (claims_rnn.decide_gated, _gated(0.001, 0.17, 0.12, 0.12), CAVEAT),
        (claims_rnn.decide_gated, _gated(0.17, 0.17, 0.12, 0.12), NOT_SUPPORTED),
        # the LSTM with Keras's forget bias misses adding, with chrono initialisation it carries it
        (claims_rnn.decide_gated, _gated(0.17, 0.002, 0.9, 0.8, chrono=(0.002, 0.9)), SUPPORTED),
        (claims_rnn.decide_gated, _gated(0.17, 0.002, 0.9, 0.8, chrono=(0.17, 0.9)), CAVEAT),
    ],
)
def test_verdicts_follow_the_numbers(decide, numbers, verdict):
    """Each rule gives each verdict for some numbers: a verdict is never a constant."""
    got, reason = decide(numbers)
    assert got == verdict, reason
    assert reason


def _vanishing(decays, reach, explained, control=0.9, sd=0.01):
    """``explained``: per T the variance explained at each of two learning rates (best last)."""
    lengths = [50, 150, 400]
    return {
        "lengths": lengths,
        "control_length": 10,
        "per_length": {
            str(T): {"decay_trained": _s(d), "reach_trained": reach} for T, d in zip(lengths, decays, strict=True)
        },
        "sweep": {
            "10": {"0.001": {"explained": _s(control - 0.3, sd)}, "0.01": {"explained": _s(control, sd)}},
            **{
                str(T): {"0.001": {"explained": _s(e - 0.1, sd)}, "0.01": {"explained": _s(e, sd)}}
                for T, e in zip(lengths, explained, strict=True)
            },
        },
    }


@pytest.mark.parametrize(
    ("numbers", "verdict"),
    [
        (_vanishing([0.9, 0.95, 0.97], 1e-6, [0.3, 0.01, 0.0]), SUPPORTED),
        # the best lr learns at the longest T: no stall
        (_vanishing([0.9, 0.95, 0.97], 1e-6, [0.99, 0.98, 0.97]), CAVEAT),
        # near one half, within the seeds' spread: not a stall
        (_vanishing([0.9, 0.95, 0.97], 1e-6, [0.3, 0.01, 0.45], sd=0.1), CAVEAT),
        # the positive control does not learn: the harness cannot show a stall
        (_vanishing([0.9, 0.95, 0.97], 1e-6, [0.3, 0.01, 0.0], control=0.1), CAVEAT),
        (_vanishing([0.9, 1.01, 0.97], 0.5, [0.3, 0.01, 0.0]), NOT_SUPPORTED),
    ],
)
def test_vanishing_rule(numbers, verdict):
    assert claims_rnn.decide_vanishing(numbers)[0] == verdict


def test_spread_rules():
    """A difference counts when it is beyond twice the standard error of the difference of the means."""
    from layerlab.claims.base import clearly_above_value, clearly_below, clearly_below_value, difference

    assert clearly_below(_s(0.10, 0.01), _s(0.20, 0.01))
    assert not clearly_below(_s(0.19, 0.05), _s(0.20, 0.05))
    assert not clearly_below(_s(0.20, 0.0), _s(0.10, 0.0))
    d, bound = difference(_s(1.0, 0.3, 9), _s(0.5, 0.4, 16))
    assert d == pytest.approx(0.5) and bound == pytest.approx(2 * math.hypot(0.1, 0.1))
    assert clearly_above_value(_s(0.6, 0.05), 0.5) and not clearly_above_value(_s(0.6, 0.2), 0.5)
    assert clearly_below_value(_s(0.4, 0.05), 0.5) and not clearly_below_value(_s(0.45, 0.2), 0.5)
    assert not clearly_below(_s(None), _s(0.2))


def test_residual_and_input_size_rules():
    def cells(res_reach, res_stable, res_mse, convex_reach=1e-3, sd=0.001):
        out = {}
        for T in (150, 400):
            out[f"rnn@{T}"] = {"reach_trained": 1e-6, "stable": True, "final": _s(0.17, sd)}
            out[f"residual@{T}"] = {"reach_trained": res_reach, "stable": res_stable, "final": _s(res_mse, sd)}
        out["convex@150"] = {"reach_trained": convex_reach, "stable": True, "final": _s(0.001)}
        return {"lengths": [150, 400], "control_length": 150, "cells": out}

    assert claims_rnn.decide_residual(cells(0.5, True, 0.01))[0] == SUPPORTED
    assert claims_rnn.decide_residual(cells(0.5, False, 0.01))[0] == CAVEAT
    # the gate alone keeps as much of the gradient: the residual sum is not shown to be what does it
    assert claims_rnn.decide_residual(cells(0.5, True, 0.01, convex_reach=0.2))[0] == CAVEAT
    # lower, but within the seeds' spread
    assert claims_rnn.decide_residual(cells(0.5, True, 0.15, sd=0.05))[0] == CAVEAT
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
    got, reason = claims_cnn.decide_input_size({**sizes(True, 0.8), "single_frame_2d": _s(0.85)})
    assert got == CAVEAT and "do not need the third dimension" in reason
    assert claims_cnn.decide_input_size(sizes(True, 0.15))[0] == SUPPORTED
    assert claims_cnn.decide_input_size(sizes(False, 0.8))[0] == NOT_SUPPORTED


def test_efficiency_rule():
    def model(params, flops, acc, t, reached=3, sd=0.2):
        return {
            "parameters": params,
            "flops": flops,
            "accuracy": _s(acc, 0.004),
            "seconds_to_target": _s(t, sd),
            "flops_to_target": _s(t * 1e9, sd * 1e9),
            "reached": reached,
            "seeds": 3,
        }

    def numbers(small_acc, small_t, recipe_t=10.0, article_t=18.0, article_reached=2):
        return {
            "target": 0.843,
            "models": {
                "article CNN": model(34826, 4.9e6, 0.848, article_t, reached=article_reached),
                "article CNN, smaller models' recipe": model(34922, 4.9e6, 0.86, recipe_t),
                "narrow CNN": model(12858, 1.3e6, small_acc, small_t),
                "global-pool CNN": model(14458, 2.9e6, 0.80, 20.0, reached=0),
            },
        }

    # the old rule failed this one on an article-CNN seed 0.1 point short of its own target: the means decide
    assert claims_cnn.decide_efficiency(numbers(0.864, 1.5))[0] == SUPPORTED
    # sooner than the article CNN, but not than its layers with the same recipe: the recipe may explain it
    got, reason = claims_cnn.decide_efficiency(numbers(0.864, 1.5, recipe_t=1.6))
    assert got == CAVEAT and "recipe" in reason
    # within the spread of the article CNN's time
    assert claims_cnn.decide_efficiency(numbers(0.848, 17.9, article_reached=3))[0] == CAVEAT
    # accuracy clearly below the article CNN's
    assert claims_cnn.decide_efficiency(numbers(0.80, 1.5))[0] == NOT_SUPPORTED


def test_spatial_and_pooling_control_rules():
    def spatial(cnn_drop, mlp_drop, gap, cnn_minus_mlp, sd=0.005):
        return {
            "cnn_drop": _s(cnn_drop, sd),
            "mlp_drop": _s(mlp_drop, sd),
            "drop_gap": _s(gap, sd),
            "cnn_minus_mlp": _s(cnn_minus_mlp, sd),
        }

    assert claims_cnn.decide_spatial(spatial(0.05, 0.0, 0.05, 0.02))[0] == SUPPORTED
    assert claims_cnn.decide_spatial(spatial(0.05, 0.0, 0.05, 0.001))[0] == CAVEAT
    assert claims_cnn.decide_spatial(spatial(0.005, 0.0, 0.005, 0.02))[0] == NOT_SUPPORTED

    pool = _pool(34826, 387466, 0.05, 0.01)
    assert claims_cnn.decide_pooling({**pool, "drop_difference_strided": _s(0.03, 0.01)})[0] == SUPPORTED
    got, reason = claims_cnn.decide_pooling({**pool, "drop_difference_strided": _s(0.001, 0.01)})
    assert got == CAVEAT and "not the max" in reason


def test_strided_control_and_permuted_images():
    ds = claims_base.bar_images(20, 10)
    net = claims_cnn.strided_cnn(ds)
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2), (2, 2)] and not any(
        isinstance(m, torch.nn.MaxPool2d) for m in net.features
    )
    assert net.classifier.in_features == 64 * 6 * 6 and net(ds.train.x[:3]).shape == (3, 10)
    shuffled, perm = claims_cnn.permuted_images(ds)
    assert torch.equal(shuffled.train.x.flatten(1), ds.train.x.flatten(1)[:, perm])
    assert torch.equal(shuffled.test.x.flatten(1), ds.test.x.flatten(1)[:, perm])
    assert not torch.equal(shuffled.train.x, ds.train.x) and torch.equal(shuffled.train.y, ds.train.y)
    assert torch.equal(claims_cnn.permuted_images(ds)[1], perm)  # one fixed permutation
    frames = claims_cnn.first_frames(claims_cnn.clip_dataset(ds, 5))
    assert frames.train.x.shape == (5, 1, 28, 28)
    assert torch.equal(frames.test.x, claims_cnn.shift_images(ds.test.x, 0, -1))  # the clips start one pixel left


def _kernels(id_gain=0.0, cons_gain=0.1, ident=0.7, above_random=0.7, sd=0.01):
    """The kernel claim's numbers for two layers, ``id_gain``/``cons_gain``: trained minus untrained."""

    def layer(chance):
        return {
            "chance": chance,
            "trained": {"identification": _s(ident, sd), "consistency": _s(0.8, sd)},
            "untrained": {"identification": _s(ident - id_gain, sd), "consistency": _s(0.8 - cons_gain, sd)},
            "random": _s(0.8 - above_random, sd),
            "identification_above_chance": _s(ident - chance, sd),
            "consistency_above_random": _s(above_random, sd),
            "consistency_gain": _s(cons_gain, sd),
            "identification_gain": _s(id_gain, sd),
        }

    return {"layers": {"conv1": layer(1 / 32), "conv2": layer(1 / 64)}}


@pytest.mark.parametrize(
    ("numbers", "verdict"),
    [
        (_kernels(), SUPPORTED),
        (_kernels(id_gain=0.05), SUPPORTED),
        # as consistent as at initialisation: the architecture's selectivity, not learnt
        (_kernels(cons_gain=0.005), CAVEAT),
        # more consistent, but told apart clearly less often than at initialisation
        (_kernels(id_gain=-0.05), CAVEAT),
        # a gain within the seeds' spread is not a gain
        (_kernels(cons_gain=0.02, sd=0.05), CAVEAT),
        (_kernels(ident=1 / 32), NOT_SUPPORTED),  # conv1 at chance
        (_kernels(above_random=0.0), NOT_SUPPORTED),  # top patches no more alike than random ones
    ],
)
def test_kernels_rule(numbers, verdict):
    got, reason = claims_kernels.decide_kernels(numbers)
    assert got == verdict, reason
    assert "conv1" in reason and "conv2" in reason


def _edge_images(n=60, seed=0):
    """Half the images a horizontal step edge (bright above), half a vertical one (bright left), at
    random places, with faint noise: a horizontal-edge kernel's top patches are the first kind."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.02
    for i in range(n):
        at = int(torch.randint(4, 24, (1,), generator=g))
        if i % 2:
            x[i, 0, :, :at] += 1.0
        else:
            x[i, 0, :at, :] += 1.0
    return x


def _edge_layer(kernels):
    conv = torch.nn.Conv2d(1, len(kernels), 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(kernels, dtype=torch.float32)[:, None])
    return conv


HORIZONTAL = [[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [0.0, 0.0, 0.0]]  # bright row above a dark one
VERTICAL = [list(r) for r in zip(*HORIZONTAL, strict=True)]


def test_kernel_patterns_measure_a_known_answer():
    """Two edge kernels on images of such edges each pick out their own edge (identification 1, top
    patches alike, unlike random patches); two identical kernels cannot be told apart (chance)."""
    x = _edge_images()
    top = claims_kernels.top_patches(_edge_layer([HORIZONTAL, VERTICAL]), x, 3, 1, k=20)
    assert top.shape == (2, 20, 9)
    rows = top[0].reshape(20, 3, 3)
    assert torch.all(rows[:, 0].mean(1) > rows[:, 1].mean(1) + 0.9)  # bright above dark: horizontal edges
    assert claims_kernels.identification(top).tolist() == [1.0, 1.0]
    cons = claims_kernels.consistency(top)
    random = claims_kernels.random_consistency(x, 3, 1, 20, 50, seed=0)
    assert cons.min() > 0.9 and random < 0.5, (cons, random)
    same = claims_kernels.top_patches(_edge_layer([HORIZONTAL, HORIZONTAL]), x, 3, 1, k=20)
    assert claims_kernels.identification(same).mean() == pytest.approx(0.5)  # chance, 1 of 2 kernels
    # one patch per image: an image striped with many strong horizontal edges gives one top patch, not 20
    striped = x.clone()
    striped[0, 0] = 0.0
    striped[0, 0, 0::4] = striped[0, 0, 1::4] = 5.0
    top = claims_kernels.top_patches(_edge_layer([HORIZONTAL, VERTICAL]), striped, 3, 1, k=20)
    assert int((top[0].amax(1) > 2).sum()) == 1


def test_kernel_patches_are_what_the_units_see():
    """A conv1 top patch is the input under the unit (its response is the weights times the patch plus
    the bias), and a conv2 unit sees exactly the 8x8 patch (stride 2) the measure takes."""
    ds = claims_base.bar_images(4, 40)
    torch.manual_seed(0)
    net = build_model_for(ModelConfig(name="article-cnn"), ds.spec, 10).eval()
    x = ds.test.x
    resp = claims_kernels.responses(net, x, "conv1")
    best, _ = claims_kernels.strongest(resp, x, 3, 1)
    top = claims_kernels.top_patches(lambda xb: claims_kernels.responses(net, xb, "conv1"), x, 3, 1, k=5)
    conv = net.features[0]
    expected = top @ conv.weight.detach().flatten(1)[:, :, None] + conv.bias.detach()[:, None, None]
    assert torch.allclose(expected[:, :, 0], best.topk(5, dim=0).values.T, atol=1e-5)
    size, stride = claims_kernels.GEOMETRY["conv2"]
    assert claims_kernels.responses(net, x[:1], "conv2").shape[-2:] == (11, 11)
    i, j = 4, 7
    changed = x[:1].clone() + torch.rand(1, 1, 28, 28)
    rows, cols = slice(stride * i, stride * i + size), slice(stride * j, stride * j + size)
    changed[..., rows, cols] = x[:1, :, rows, cols]
    a, b = (claims_kernels.responses(net, v, "conv2")[0, :, i, j] for v in (x[:1], changed))
    assert torch.allclose(a, b, atol=1e-5)  # everything outside the patch changed, the unit did not
    inside = x[:1].clone()
    inside[..., stride * i + 3, stride * j + 3] += 1.0
    assert not torch.allclose(a, claims_kernels.responses(net, inside, "conv2")[0, :, i, j])


def test_kernel_weights_moved():
    w = torch.randn(4, 1, 3, 3)
    assert claims_kernels.kernel_cosines(w, w) == pytest.approx([1.0] * 4)
    assert claims_kernels.kernel_cosines(-w, w) == pytest.approx([-1.0] * 4)


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
    (tmp_path / "src" / "layerlab").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "another"\n')
    assert default_paths(False) == (Path("claims/claims.md"), Path("claims/results"))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "layerlab"\n')
    assert default_paths(False) == (Path("docs/claims.md"), Path("benchmarks/results/claims"))
    assert default_paths(True) == (Path("claims-only/claims.md"), Path("claims-only"))
    # and layerlab's own checkout is one (it once looked for a file the repository does not hold)
    root = Path(__file__).resolve().parents[2]
    assert default_paths(False, root) == (Path("docs/claims.md"), Path("benchmarks/results/claims"))


# ----------------------------------------------------------------------------------------------
# --update: rerun some claims and merge them into a full run's page
# ----------------------------------------------------------------------------------------------
def _earlier(res: Path, mode: str = "quick", partial: bool = False) -> dict:
    meta = {
        "mode": mode,
        "partial": partial,
        "claims_run": ["pooling", "gated"],
        "command": "layerlab claims --quick",
        "date": "2026-01-01 00:00 UTC",
        "seeds": 1,
        "cpu": "cpu",
        "cores": 2,
        "threads": 1,
        "torch": "2",
        "layerlab": "0",
        "python": "3",
        "total_seconds": 5.0,
        "budget_seconds": 180,
        "within_budget": True,
        "notes": [],
    }

    def claim(name, verdict):
        spec = CLAIMS[name]
        return {
            "name": name,
            "title": spec.title,
            "section": spec.section,
            "quote": spec.quote,
            "experiment": "e",
            "command": f"layerlab claims --only {name}",
            "columns": ["a"],
            "rows": [{"a": "1"}],
            "numbers": {},
            "verdict": verdict,
            "reason": "the old reason",
            "rule": "rule",
            "notes": [],
            "figures": [f"{name}.png"],
            "seconds": 1.0,
        }

    doc = {"meta": meta, "claims": [claim("pooling", SUPPORTED), claim("gated", SUPPORTED)]}
    res.mkdir(parents=True)
    (res / "claims.json").write_text(json.dumps(doc))
    (res / "claims.log").write_text("the earlier log\n")
    for name in ("pooling", "gated"):
        (res / f"{name}.png").write_bytes(b"old")
    return doc


@pytest.mark.slow
def test_update_reruns_named_claims_and_keeps_the_others(tmp_path, capsys):
    out, res = tmp_path / "docs" / "claims.md", tmp_path / "results"
    _earlier(res)
    assert main(["claims", "--quick", "--only", "gated", "--update", "--out", str(out), "--results", str(res)]) == 0
    doc = json.loads((res / "claims.json").read_text())
    pooling, gated = doc["claims"]
    assert [c["name"] for c in doc["claims"]] == ["pooling", "gated"]
    assert (
        pooling["reason"] == "the old reason" and "run" not in pooling and (res / "pooling.png").read_bytes() == b"old"
    )
    assert gated["previous"] == {"verdict": SUPPORTED, "reason": "the old reason", "date": "2026-01-01 00:00 UTC"}
    assert gated["run"]["command"].endswith("--only gated --update --out " + str(out) + " --results " + str(res))
    assert CLAIMS["gated"].decide(gated["numbers"]) == (gated["verdict"], gated["reason"])
    assert (res / "gated.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert doc["meta"]["date"] == "2026-01-01 00:00 UTC" and doc["meta"]["updates"][0]["claims"] == ["gated"]
    assert (res / "claims.log").read_text().startswith("the earlier log\n")
    page = out.read_text()
    assert "Rerun since, and merged into this page: gated" in page
    assert "*Verdict before* (the run of 2026-01-01 00:00 UTC): **supported**" in page
    assert page == render_page(doc, out, res)  # the page is the merged file, rendered


@pytest.mark.parametrize(
    ("argv", "earlier", "message"),
    [
        (["--update"], None, "give --only"),
        (["--update", "--only", "gated"], "none", "no claims.json to update"),
        (["--update", "--only", "gated"], "partial", "partial run"),
        (["--update", "--only", "gated"], "full", "a full run; --update --quick reruns in quick mode"),
    ],
)
def test_update_refuses_what_it_cannot_merge_into(tmp_path, capsys, argv, earlier, message):
    res = tmp_path / "results"
    if earlier in ("partial", "full"):
        _earlier(res, mode="full" if earlier == "full" else "quick", partial=earlier == "partial")
    before = sorted(p.name for p in res.iterdir()) if res.exists() else []
    assert main(["claims", "--quick", *argv, "--out", str(tmp_path / "c.md"), "--results", str(res)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert (sorted(p.name for p in res.iterdir()) if res.exists() else []) == before
    assert not (tmp_path / "c.md").exists()


def test_render_writes_the_page_from_claims_json_alone(tmp_path, capsys):
    res, out = tmp_path / "results", tmp_path / "docs" / "claims.md"
    doc = _earlier(res)
    assert main(["claims", "--render", "--out", str(out), "--results", str(res)]) == 0
    assert out.read_text() == render_page(doc, out, res)
    assert main(["claims", "--render", "--out", str(out), "--results", str(tmp_path / "none")]) == 2
    assert "no claims.json to render" in capsys.readouterr().err


def test_a_claim_changed_since_its_run_says_so(tmp_path):
    """A record made by an earlier version of a revised claim is marked on the page, with what changed
    and the command that reruns it; a record of the current version is not."""
    doc = _earlier(tmp_path / "results")
    assert CLAIMS["gated"].revision and not CLAIMS["conv-features"].revision
    page = render_page(doc, tmp_path / "claims.md", tmp_path / "results")
    assert page.count("*Changed since this run:*") == 2  # pooling and gated, both revised
    assert "`layerlab claims --only gated --update` reruns it." in page
    for c in doc["claims"]:
        c["revision"] = CLAIMS[c["name"]].revision
    assert "*Changed since this run:*" not in render_page(doc, tmp_path / "claims.md", tmp_path / "results")
