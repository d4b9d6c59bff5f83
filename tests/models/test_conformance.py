"""Every registered model through what layerlab does with a model: build, forward, summary, ONNX
export and the views that apply to it (filters and feature maps for a conv model, gradient flow for
a recurrent one). Parametrised by the registry, so a newly registered model (or a plugin's, named in
``$LAYERLAB_PLUGINS``) is covered without an edit here. The model contract it checks is
``layerlab.models.contract``; a plain ``nn.Module`` gets the contract's defaults."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from layerlab.errors import DataError, LayerlabError
from layerlab.inspect.conv import conv_layers, feature_maps, filters
from layerlab.inspect.gradflow import gradient_flow
from layerlab.inspect.summary import summarize
from layerlab.models import contract, create_model, has_default_input, list_models, model_options, sequence_model

OUTPUTS = 3
#: small options for the models that take them (an option a model does not take is left out)
TINY = {"hidden": 6, "channels": "4,M,6", "layers": 1}


def _build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    options = {k: v for k, v in TINY.items() if k in model_options(name)}
    if has_default_input(name):  # the article's models: their article's shapes, which are small
        model = create_model(name, **options)
        return model, contract.input_shape(model)
    shape = (5, 3) if sequence_model(name) else (1, 10, 10)
    return create_model(name, shape, OUTPUTS, **options), shape


def _inputs(model: nn.Module, shape: tuple[int, ...], n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if contract.reads_tokens(model):
        return torch.randint(0, OUTPUTS, (n, *shape), generator=g)
    return torch.rand(n, *shape, generator=g)


def per_step_head(model: nn.Module) -> bool:
    return contract.head(model) == "step"


@pytest.fixture(params=sorted(list_models()))
def built(request):
    torch.manual_seed(0)
    model, shape = _build(request.param)
    return request.param, model.eval(), shape


def test_build_declares_a_valid_contract(built):
    name, model, shape = built
    assert isinstance(model, nn.Module)
    assert contract.input_shape(model, shape) == tuple(shape)
    assert contract.input_kind(model) in (None, *contract.INPUT_KINDS)
    assert contract.head(model) in contract.HEADS
    need = contract.min_size(model)
    assert need is None or (isinstance(need, int) and need >= 1)
    assert isinstance(contract.any_size(model), bool)
    assert isinstance(contract.bidirectional(model), bool)
    assert sequence_model(name) == (contract.input_kind(model) in contract.INPUT_KINDS), (
        "a model registered as reading sequences declares input_kind sequence or tokens, and only such a model"
    )


def test_forward_gives_logits_per_sample(built):
    _, model, shape = built
    x = _inputs(model, shape)
    with torch.no_grad():
        out = model(x)
    per_step = contract.head(model) == "step"
    assert out.dim() == (3 if per_step else 2)
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    if per_step:
        assert out.shape[1] == shape[0]
    step = contract.step_logits(model)
    if step is not None and not contract.bidirectional(model):  # generate's path: the same logits, step by step
        with torch.no_grad():
            per_step, _ = step(x)
        torch.testing.assert_close(per_step[:, -1] if not per_step_head(model) else per_step, out, atol=1e-5, rtol=1e-4)
    states = contract.states_forward(model)
    if states is not None:  # the loop over time gives the same logits as the fast path
        with torch.no_grad():
            looped, hs = states(x)
        torch.testing.assert_close(looped, out, atol=1e-5, rtol=1e-4)
        assert len(hs) >= 1 and len(hs[0]) == shape[0]


def test_a_batch_of_the_wrong_rank_is_a_data_error(built):
    """A model of layerlab's refuses a batch it cannot read with layerlab's DataError (one sentence at
    the command line), not ValueError or torch's own message."""
    _, model, shape = built
    if not type(model).__module__.startswith("layerlab."):
        pytest.skip("a model of the user's may raise its own error")
    x = _inputs(model, (*shape, 2))
    with pytest.raises(DataError):
        model(x)


def test_summary_counts_every_parameter(built):
    name, model, shape = built
    s = summarize(model, shape, name)
    assert s.total_parameters + s.frozen_parameters == sum(p.numel() for p in model.parameters())
    assert s.rows and s.total_flops > 0
    assert name in s.to_text()


def test_onnx_export_agrees_with_torch(built, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from layerlab.export import _export, dynamic_axes

    name, model, shape = built
    x = _inputs(model, shape, 3)
    axes = dynamic_axes(model, x.dim())
    path = tmp_path / f"{name}.onnx"
    _export(model, x[:2], path, 17, axes, "torchscript")
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    if contract.any_size(model):  # a global pool: the exported graph takes another size too
        assert len(axes) > 1


def test_the_views_that_apply(built):
    _, model, shape = built
    x = _inputs(model, shape)
    if conv_layers(model):
        _, alias, w = filters(model)
        assert w.dim() >= 3 and alias
        maps = feature_maps(model, x[0])
        assert maps and all(m.maps.shape[0] >= 1 for m in maps)
    else:
        with pytest.raises(LayerlabError, match="conv"):
            filters(model)
    if contract.states_forward(model) is not None:
        y = torch.randint(0, OUTPUTS, (2, shape[0]) if contract.head(model) == "step" else (2,))
        flow = gradient_flow(model, x, y, task="classification", probes=2)
        assert flow.layers and all(len(lf.grad_norm) == shape[0] for lf in flow.layers)
    else:
        with pytest.raises(LayerlabError, match="forward_with_states"):
            gradient_flow(model, x, torch.zeros(2, dtype=torch.long), task="classification")


# --- a plain module of the user's: the contract's defaults ---------------------------------------------


def test_a_plain_module_gets_the_defaults():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, OUTPUTS))
    assert contract.input_shape(model) is None and contract.input_shape(model, (3, 4)) == (3, 4)
    assert contract.input_kind(model) is None and not contract.reads_tokens(model)
    assert contract.steps_first(model) is False
    assert contract.min_size(model) is None
    assert contract.any_size(model) is False
    assert contract.head(model) == "last"
    assert contract.bidirectional(model) is False
    assert contract.states_forward(model) is None and contract.step_logits(model) is None
    assert contract.loops_in_python(model) is False
    assert summarize(model, (3, 4), "plain").total_parameters == 12 * OUTPUTS + OUTPUTS


def test_a_module_declaring_the_contract_is_read_through_it():
    class Declared(nn.Module):
        input_shape = (7, 2)
        input_kind = "sequence"
        head = "step"
        bidirectional = True
        min_size = 4

        def forward(self, x, lengths=None):
            return x

    m = Declared()
    assert isinstance(m, nn.Module)
    assert contract.input_shape(m) == (7, 2) and contract.input_kind(m) == "sequence"
    assert contract.head(m) == "step" and contract.bidirectional(m) and contract.min_size(m) == 4


def test_no_model_attribute_is_read_outside_the_contract():
    """The contract's attributes are read only through its helpers: a ``getattr(model, "min_size")``
    elsewhere is a second, unwritten contract."""
    src = Path(contract.__file__).parents[1]
    names = "|".join(
        ["input_shape", "input_kind", "steps_first", "min_size", "any_size", "head", "bidirectional"]
        + ["forward_with_states", "step_logits", "fused"]
    )
    pattern = re.compile(rf"""(getattr|hasattr)\([^,()]+,\s*["']({names})["']""")
    found = [
        f"{p.relative_to(src)}:{i}"
        for p in src.rglob("*.py")
        if p.name != "contract.py"
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, f"read the model through layerlab.models.contract instead: {found}"
