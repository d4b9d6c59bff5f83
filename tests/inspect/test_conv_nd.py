"""Filters and feature maps of 1-D and 3-D CNNs: a sequence run (F channels over T steps) through
the CLI, a volume model through the views, the panels each figure draws, and one sentence for a
run that has no conv layer."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn as nn

from layerlab import api, plots
from layerlab.cli import main
from layerlab.config import RunConfig
from layerlab.inspect import views
from layerlab.inspect.conv import conv_layers, feature_maps, filters
from layerlab.models import create_model
from layerlab.rundir import RunDir

T, F = 30, 2


def _panels(fig) -> list:
    """The axes of a figure that draw something: not colour bars, not blank grid cells."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.get_visible() and ax.axison]


def _rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    """Three classes of noisy sine waves, ``(N, T, F)``, as an .npz the catalog reads as sequences."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("waves") / "waves.npz"

    def make(y):
        t = np.linspace(0, 1, T)
        x = np.sin(2 * np.pi * (y[:, None] + 1) * t)[:, :, None] + 0.1 * rng.standard_normal((len(y), T, F))
        return x.astype(np.float32)

    y_train, y_test = rng.integers(0, 3, 48), rng.integers(0, 3, 12)
    np.savez(path, x_train=make(y_train), y_train=y_train, x_test=make(y_test), y_test=y_test)
    return path


def _train(data, out, model, **options):
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.model.name = model
    for k, v in options.items():
        setattr(cfg.model, k, v)
    cfg.train.epochs = 1
    cfg.train.batch_size = 16
    run, _ = api.train(cfg, out)
    return run.path


@pytest.fixture(scope="module")
def sequence_cnn(waves, tmp_path_factory):
    return _train(waves, tmp_path_factory.mktemp("seqcnn") / "run", "cnn", channels="8,M,16")


@pytest.fixture(scope="module")
def sequence_gru(waves, tmp_path_factory):
    return _train(waves, tmp_path_factory.mktemp("seqgru") / "run", "gru", hidden=8)


# --- 1-D: a sequence run through the CLI -----------------------------------------------------
def test_filters_of_a_sequence_cnn(sequence_cnn, tmp_path, capsys):
    out = tmp_path / "views"
    assert main(["inspect", "filters", str(sequence_cnn), "--out", str(out)]) == 0
    assert "conv1 (features.0): 8 filters of 2x3" in capsys.readouterr().out
    rows = _rows(out / "filters_conv1.csv")
    assert len(rows) == 8 * F * 3 and set(rows[0]) == {"layer", "filter", "input_channel", "tap", "weight"}
    assert (out / "filters_conv1.png").stat().st_size > 1000
    # the weights as the layer holds them: filter, input channel, tap
    w = filters(RunDir(sequence_cnn).model(), "conv1")[2]
    r = next(r for r in rows if (r["filter"], r["input_channel"], r["tap"]) == ("5", "1", "2"))
    assert float(r["weight"]) == pytest.approx(float(w[5, 1, 2]))
    assert main(["inspect", "filters", str(sequence_cnn), "--layer", "conv2", "--out", str(out)]) == 0
    assert len(_rows(out / "filters_conv2.csv")) == 16 * 8 * 3


@pytest.mark.slow
def test_feature_maps_of_a_sequence_cnn(sequence_cnn, waves, tmp_path, capsys):
    out = tmp_path / "views"
    # no FILE: the first test sample of the run's data
    assert main(["inspect", "features", str(sequence_cnn), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"input: the first test sample of the run's data, {T}x{F}" in text
    # 30 steps > conv 28 > pool 14 > conv 12; every map is (channels, steps)
    assert "conv1 (Conv1d + ReLU)        8x28" in text and "pool1 (MaxPool1d)            8x14" in text
    assert "conv2 (Conv1d + ReLU)        16x12" in text
    for alias in ("input", "conv1", "pool1", "conv2"):
        assert (out / f"features_{alias}.png").stat().st_size > 1000
    conv1 = _rows(out / "features_conv1.csv")
    assert len(conv1) == 8 * 28 and set(conv1[0]) == {"layer", "channel", "step", "value"}
    assert len(_rows(out / "features_input.csv")) == F * T  # the input, F channels over T steps
    # a sequence file is read as predict reads it (standardised with the training statistics)
    seq = tmp_path / "one.npy"
    np.save(seq, np.load(waves)["x_test"][3])
    again = tmp_path / "again"
    assert main(["inspect", "features", str(sequence_cnn), str(seq), "--out", str(again)]) == 0
    assert "conv2 (Conv1d + ReLU)        16x12" in capsys.readouterr().out


def test_feature_maps_of_a_sequence_are_the_conv1d_outputs(sequence_cnn):
    run = RunDir(sequence_cnn)
    model = run.model()
    x = run.dataset().test.x[0]  # (T, F), as the model takes it
    maps = feature_maps(model, x)
    conv = model.features[0]
    want = torch.relu(nn.functional.conv1d(x.T[None], conv.weight, conv.bias))[0]
    torch.testing.assert_close(maps[0].maps, want.detach())
    assert [m.alias for m in maps] == ["conv1", "pool1", "conv2"]


@pytest.mark.slow
def test_a_run_without_conv_layers_is_one_sentence(sequence_gru, tmp_path, capsys):
    for argv in (
        ["inspect", "filters", str(sequence_gru)],
        ["inspect", "features", str(sequence_gru)],
        ["inspect", "features", str(sequence_gru), str(tmp_path / "x.npy")],
    ):
        assert main([*argv, "--out", str(tmp_path / "v")]) == 2
        err = capsys.readouterr().err
        assert "no conv layer" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# --- 3-D: a volume model through the views -----------------------------------------------------
@pytest.fixture(scope="module")
def volume_cnn():
    torch.manual_seed(0)
    return create_model("cnn", (1, 8, 8, 8), 3, channels="4,M,6").eval()


@pytest.mark.slow
def test_filters_of_a_volume_cnn(volume_cnn, tmp_path):
    r = views.filters_view(None, model=volume_cnn, out=tmp_path)
    assert r["shape"] == (4, 1, 3, 3, 3) and r["panels"] == 4 * 3  # filters x depth slices
    rows = _rows(tmp_path / "filters_conv1.csv")
    assert len(rows) == 4 * 27 and set(rows[0]) == {"layer", "filter", "input_channel", "depth", "row", "col", "weight"}
    assert (tmp_path / "filters_conv1.png").stat().st_size > 1000
    r = views.filters_view(None, layer="conv2", model=volume_cnn, out=tmp_path)
    assert r["shape"] == (6, 4, 3, 3, 3) and r["panels"] == 6 * 3
    # the figure: one mosaic, a row of 3 depth slices (3x3 tiles, 1 blank between) per filter
    fig = plots.conv_filters_3d(volume_cnn.features[3].weight.detach(), "conv2")
    (ax,) = _panels(fig)
    assert ax.images[0].get_array().shape == (6 * 4 - 1, 3 * 4 - 1)
    assert "mean over the 4 input channels" in ax.get_title()
    assert (
        "the one input channel" in _panels(plots.conv_filters_3d(volume_cnn.features[0].weight.detach()))[0].get_title()
    )


@pytest.mark.slow
def test_feature_maps_of_a_volume_cnn(volume_cnn, tmp_path):
    x = torch.rand(1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    r = views.features_view(None, x, model=volume_cnn, out=tmp_path)
    # 8 > conv 6 > pool 3 > conv 1, per depth slice
    assert [(m["label"], m["shape"], m["panels"]) for m in r["layers"]] == [
        ("conv1 (Conv3d + ReLU)", (4, 6, 6, 6), 4 * 6),
        ("pool1 (MaxPool3d)", (4, 3, 3, 3), 4 * 3),
        ("conv2 (Conv3d + ReLU)", (6, 1, 1, 1), 6 * 1),
    ]
    for alias in ("input", "conv1", "pool1", "conv2"):
        assert (tmp_path / f"features_{alias}.png").stat().st_size > 1000
    rows = _rows(tmp_path / "features_conv1.csv")
    assert len(rows) == 4 * 6 * 6 * 6 and set(rows[0]) == {"layer", "channel", "depth", "row", "col", "value"}
    assert len(_rows(tmp_path / "features_input.csv")) == 8 * 8 * 8
    with torch.no_grad():
        want = torch.relu(nn.functional.conv3d(x[None], volume_cnn.features[0].weight, volume_cnn.features[0].bias))[0]
    assert float(rows[-1]["value"]) == pytest.approx(float(want[3, 5, 5, 5]), abs=1e-5)


def test_deep_volumes_draw_sixteen_slices_and_channels():
    fig = plots.feature_maps_3d(torch.rand(20, 40, 5, 5), "deep")
    (ax,) = _panels(fig)
    assert ax.images[0].get_array().shape == (16 * 6 - 1, 16 * 6 - 1)
    assert plots.map_panels((20, 40, 5, 5)) == 16 * 16 and plots.depth_slices(40)[::15] == [0, 39]
    assert "first 16 of 20 channels, 16 of 40 depth slices" in ax.get_title()


# --- 1-D figures and plain Conv1d models ---------------------------------------------------------
def test_conv1d_figures_have_one_panel_per_filter():
    w = torch.randn(10, 2, 5)
    assert len(_panels(plots.conv_filters_1d(w, "lines"))) == 10 == plots.filter_panels(w.shape)
    fig = plots.conv_filters_1d(torch.randn(6, 12, 3), "tiles")  # many input channels: a heatmap tile each
    (ax,) = _panels(fig)
    assert ax.images[0].get_array().shape == (12, 6 * 4 - 1)
    (ax,) = _panels(plots.feature_maps_1d(torch.rand(5, 17), "maps"))
    assert ax.images[0].get_array().shape == (5, 17)  # a row per channel along the steps
    assert len(_panels(plots.feature_maps_1d(torch.rand(5, 17), "maps", sequence=torch.rand(3, 20)))) == 2


def test_a_plain_conv1d_model_takes_channels_first():
    conv = nn.Conv1d(3, 4, 5)
    model = nn.Sequential(conv, nn.ReLU(inplace=True), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(4 * 8, 2))
    assert list(conv_layers(model)) == ["0"]
    x = torch.rand(3, 20)  # (C, L)
    maps = feature_maps(model, x)
    assert [tuple(m.maps.shape) for m in maps] == [(4, 16), (4, 8)]
    torch.testing.assert_close(
        maps[0].maps, torch.relu(nn.functional.conv1d(x[None], conv.weight, conv.bias))[0].detach()
    )
