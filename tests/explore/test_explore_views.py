"""The explorer's views without a browser: inputs sent by the page (pixels, a CSV sequence, text),
the multiply-add's refusals, and a regression run's recurrent view."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explore_runs import train_runs
from layerlab.errors import LayerlabError
from layerlab.explore.views import RunViews


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from layerlab import api
    from layerlab.config import RunConfig

    root = tmp_path_factory.mktemp("views")
    out = train_runs(root)
    cfg = RunConfig()
    cfg.data.name, cfg.data.length, cfg.data.n_train, cfg.data.n_test = "adding", 6, 64, 16
    cfg.model.name, cfg.model.hidden = "gru", 4
    cfg.train.epochs, cfg.train.threads = 1, 1
    api.train(cfg, root / "runs" / "adding")
    out["adding"] = root / "runs" / "adding"
    book = root / "book.txt"
    book.write_text("to be or not to be, that is the question.\n" * 20)
    cfg = RunConfig()
    cfg.data.name, cfg.data.length = str(book), 12
    cfg.model.name, cfg.model.hidden = "lstm", 6
    cfg.train.epochs, cfg.train.threads = 1, 1
    api.train(cfg, root / "runs" / "text")
    out["text"] = root / "runs" / "text"
    return out


def test_pixels_become_the_runs_input(runs):
    v = RunViews(runs["cnn"], "cnn")
    x, _ = v.sample(0)
    pixels = np.rint(x.numpy() * 255).astype(int)  # the test image's own 8-bit values
    key = v.upload({"pixels": pixels.flatten().tolist()})
    assert key.startswith("upload:")
    got, label = v.get_input(key)
    assert label is None and torch.allclose(got, x, atol=1 / 255)
    assert v.cnn(key)["prediction"]["top"][0]["class"] == v.cnn("test:0")["prediction"]["top"][0]["class"]
    for bad in ({"pixels": [0] * 10}, {"pixels": [300] * 784}, {"pixels": ["a"] * 784}, {"text": "abc"}, {}):
        with pytest.raises(LayerlabError):
            v.upload(bad)


def test_the_multiply_add_refuses_what_it_cannot_show(runs):
    v = RunViews(runs["cnn"], "cnn")
    with pytest.raises(LayerlabError, match="pooling"):
        v.conv_detail("test:0", 1, 0, [0, 0])
    with pytest.raises(LayerlabError, match="outside the map"):
        v.conv_detail("test:0", 0, 0, [26, 0])
    with pytest.raises(LayerlabError, match="channels"):
        v.conv_detail("test:0", 0, 9, [0, 0])
    with pytest.raises(LayerlabError, match="no layer"):
        v.conv_detail("test:0", 7, 0, [0, 0])
    with pytest.raises(LayerlabError, match="no test sample"):
        v.cnn("test:100000")
    with pytest.raises(LayerlabError, match="no longer kept"):
        v.cnn("upload:99")
    d = v.conv_detail("test:0", 0, 1, [3, 4])
    assert d["sum"] == pytest.approx(d["torch"], abs=1e-5)
    assert np.asarray(d["products"]).shape == (1, 3, 3)
    # the conv's input is recorded for a page without a server: conv1 reads the image, conv2 pool1
    assert [layer.get("input_from") for layer in v.cnn("test:0")["layers"]] == [-1, None, 1, None]


def test_a_csv_sequence_and_a_regression_run(runs):
    v = RunViews(runs["adding"], "recurrent")
    key = v.upload({"sequence": [[0.5, 1.0], [0.1, 0.0], [0.9, 1.0]]})
    r = v.rnn(key)
    assert r["cell"] == "gru" and r["loss"] is None and r["per_step"] is None
    assert [g for g in r["gates"][0]["gates"]] == ["reset gate r", "update gate z", "candidate n"]
    assert r["layers"][0]["hidden"]["shape"] == [4, 3]
    for bad in ([[1.0, 2.0, 3.0]], [[1.0, float("nan")]], [], "abc"):
        with pytest.raises(LayerlabError):
            v.upload({"sequence": bad})
    t = v.rnn("test:0")
    assert t["layers"][0]["hidden"]["shape"] == [4, 6]


def test_a_character_model_typed_text_and_per_step_targets(runs):
    v = RunViews(runs["text"], "recurrent")
    key = v.upload({"text": "to be or"})
    r = v.rnn(key)
    vocab = r["classes"]
    assert "".join(vocab[k] for k in r["x"]["tokens"]) == "to be or"
    assert r["layers"][0]["hidden"]["shape"] == [6, 8] and r["per_step"]["p"]["shape"] == [len(vocab), 8]
    with pytest.raises(LayerlabError):
        v.upload({"text": "to be \u2603"})  # a character the run never saw
    # a test sequence: the loss is the training loss, the mean over its per-step targets
    t = v.rnn("test:0")
    x, _ = v.sample(0)
    target = v.data.test.y[0].long()
    with torch.no_grad():
        logits = v.model(x[None])[0]
    assert t["steps_target"] == target.tolist()
    assert t["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, target)), abs=1e-5)


def test_inputs_asked_for_at_once_get_their_own_maps(runs):
    """The server answers on several threads; each input's maps and multiply-add are its own."""
    expected = {}
    v = RunViews(runs["cnn"], "cnn")
    keys = [f"test:{k}" for k in range(12)]
    for key in keys:
        expected[key] = v.conv_detail(key, 2, 3, [4, 4])["sum"]
    import sys

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can: the passes interleave
    try:
        _ask_at_once(v, keys, expected, runs)
    finally:
        sys.setswitchinterval(switch)


def _ask_at_once(v, keys, expected, runs):
    import threading

    for _ in range(3):
        fresh = RunViews(runs["cnn"], "cnn")
        fresh._model, fresh._ds = v.model, v.data  # the same model object, as one server run shares it
        got, errors = {}, []

        def ask(key, fresh=fresh, got=got, errors=errors):
            try:
                got[key] = fresh.conv_detail(key, 2, 3, [4, 4])["sum"]
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=ask, args=(k,)) for k in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and got == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_time_series_cnns_get_the_convolutional_views(tmp_path):
    """``fcn`` and ``resnet1d`` are convolutional: the explorer lists them so and their maps, filters and
    multiply-adds are the cnn view's (they once got only the 'other' views)."""
    from datagen import ts_text
    from layerlab import api
    from layerlab.config import RunConfig
    from layerlab.explore.listing import family
    from layerlab.record import list_runs

    rng = np.random.default_rng(0)
    for split, n in (("TRAIN", 24), ("TEST", 8)):
        labels = [str(i % 2) for i in range(n)]
        series = [
            np.sin(np.linspace(0, 3 + 3 * int(c), 40))[:, None] + 0.1 * rng.standard_normal((40, 1)) for c in labels
        ]
        (tmp_path / f"Toy_{split}.ts").write_text(ts_text(series, labels, problem="Toy"))
    for name in ("fcn", "resnet1d"):
        cfg = RunConfig()
        cfg.data.name, cfg.model.name = str(tmp_path / "Toy_TRAIN.ts"), name
        cfg.train.epochs, cfg.train.threads, cfg.train.batch_size = 1, 1, 8
        api.train(cfg, tmp_path / "runs" / name)
        (rec,) = list_runs(tmp_path / "runs" / name)
        assert family(rec) == "cnn"
        v = RunViews(rec.path, "cnn")
        layers = v.cnn("test:0")["layers"]
        assert [la["conv"] is not None for la in layers][:3] == [True, True, True] and v.filters()
        d = v.conv_detail("test:0", 0, 0, [3])
        assert d["sum"] == pytest.approx(d["torch"], abs=1e-5)
