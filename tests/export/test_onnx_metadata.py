"""An exported model's metadata is untrusted input: every field ``predict --onnx`` reads (the input
spec field by field, task, decode, classes, num_outputs, permutation, min_size) is checked, and
against the graph, so a tampered file gives one sentence, never a traceback or a wrong answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datagen import bar_images, make_idx_dir, save_png
from layerlab import api
from layerlab.config import RunConfig
from layerlab.errors import LayerlabError
from layerlab.inputspec import InputSpec

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'layerlab[onnx]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'layerlab[onnx]')")

from layerlab import deploy
from layerlab.export import export_run

SPEC_FIELDS = [
    "kind",
    "shape",
    "head",
    "pixel_scale",
    "image_shape",
    "sequence",
    "permutation_seed",
    "feature_mean",
    "feature_std",
    "variable_length",
    "variable_size",
    "vocab",
    "unknown_field",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx-meta")
    cfg = RunConfig()
    cfg.data.name = str(make_idx_dir(root / "data", n_train=48, n_test=16))
    cfg.model.name = "article-cnn"
    cfg.train.epochs = 1
    cfg.train.batch_size = 16
    run, _ = api.train(cfg, root / "run")
    onnx = export_run(run.path)["onnx"]
    x, _ = bar_images(2, np.random.default_rng(0))
    files = [save_png(root / f"bar{i}.png", x[i]) for i in range(2)]
    model = deploy.OnnxModel(onnx)
    return model, dict(model.session.get_modelmeta().custom_metadata_map), files


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 1000) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
plausible = st.sampled_from(
    [
        "9",
        "11",
        "0",
        "-1",
        '"x"',
        "[]",
        '["a", "b"]',
        json.dumps([str(i) for i in range(11)]),
        json.dumps(list(range(10))),
        '{"kind": "sequence", "shape": [28, 28]}',
        '{"kind": "tokens", "shape": [28]}',
        '{"kind": "image", "shape": [3, 28, 28], "image_shape": [3, 28, 28]}',
        '{"kind": "image", "shape": [1, 28, 28], "sequence": "permuted", "image_shape": [1, 28, 28]}',
        '"regression"',
        '"steps"',
        '"next"',
        "not json {",
        "1e400",
        "NaN",
        json.dumps(list(range(784))),
    ]
)


@st.composite
def mutated(draw, props: dict) -> dict:
    props = dict(props)
    keys = sorted(props) + ["input_spec.field", "min_size", "permutation"]
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(keys))
        if key == "input_spec.field":
            try:
                spec = json.loads(props.get("input_spec", "{}"))
            except ValueError:
                spec = {}
            if not isinstance(spec, dict):
                spec = {}
            field = draw(st.sampled_from(SPEC_FIELDS))
            if draw(st.booleans()):
                spec.pop(field, None)
            else:
                spec[field] = draw(json_values)
            props["input_spec"] = json.dumps(spec)
            continue
        how = draw(st.sampled_from(["json", "plausible", "text", "delete"]))
        if how == "delete":
            props.pop(key, None)
        elif how == "json":
            props[key] = json.dumps(draw(json_values))
        elif how == "plausible":
            props[key] = draw(plausible)
        else:
            props[key] = draw(st.text(max_size=12))
    return props


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_tampered_metadata_is_one_sentence_or_a_sound_prediction(exported, data):
    model, props, files = exported
    bad = data.draw(mutated(props))
    try:
        model.use_metadata(bad)
        results = deploy.predict_with(model, files)
    except LayerlabError as e:
        msg = str(e)
        assert msg and "\n" not in msg and "Traceback" not in msg, msg
        return
    meta = model.meta
    assert isinstance(meta.spec, InputSpec) and meta.task in deploy.TASKS
    assert len(meta.classes) == meta.num_outputs and all(isinstance(c, str) for c in meta.classes)
    assert len(results) == len(files)
    json.dumps(results, allow_nan=False)  # finite, strict JSON
    for r in results:
        if r["kind"] == "class":
            assert r["label"] in meta.classes and 0 <= r["probability"] <= 1


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("classes", json.dumps([str(i) for i in range(11)]), "11 class names for 10 outputs"),
        ("classes", json.dumps(list(range(10))), "classes must be a list of names"),
        ("num_outputs", "11", "10 class names for 11 outputs"),  # the classes still name 10
        ("task", "ranking", "task is 'ranking'"),
        ("decode", "steps", "decode is 'steps', where the task and input spec say 'class'"),
        ("input_spec", '{"kind": "image", "shape": [1, 28, 28], "head": "middle"}', "unknown head"),
        ("input_spec", '{"kind": "image", "shape": [1, 0, 28]}', "shape must be one or more positive integers"),
        ("input_spec", '{"kind": "image", "shape": [1, 28, 28], "pixel_scale": -1}', "pixel_scale must be"),
        ("input_spec", '{"kind": "image", "shape": [1, 28, 28], "extra": 1}', "unknown field(s) 'extra'"),
        ("input_spec", '{"kind": "sequence", "shape": [28, 28]}', "the graph takes 1x28x28"),
        ("input_spec", '{"kind": "tokens", "shape": [28]}', "the graph takes tensor(float)"),
        ("input_spec", '{"kind": "image", "shape": [3, 28, 28]}', "the graph takes 1x28x28"),
        ("permutation", json.dumps(list(range(784))), "a permutation for a model that does not read permuted pixels"),
        ("min_size", '"abc"', "min_size must be a whole number"),
        ("input_spec", "[1, 2]", "input spec: expected a table of fields"),
    ],
)
def test_each_field_checked(exported, key, value, message):
    model, props, _ = exported
    with pytest.raises(LayerlabError) as e:
        model.use_metadata({**props, key: value})
    assert message in str(e.value) and str(model.path) in str(e.value) and "\n" not in str(e.value)


def test_graph_output_count_checked(exported):
    model, props, _ = exported
    classes = json.dumps([str(i) for i in range(9)])
    with pytest.raises(LayerlabError, match="names 9 classes, the graph outputs 10 values"):
        model.use_metadata({**props, "classes": classes, "num_outputs": "9"})
