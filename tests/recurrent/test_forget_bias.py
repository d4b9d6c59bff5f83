"""``--forget-bias chrono|VALUE``: the LSTM's forget-gate bias at initialisation (Keras's 1 by default,
a number, or chrono initialisation, Tallec & Ollivier 2018), through the API, the config and the CLI,
recorded in the run, and exported to ONNX like any LSTM."""

import math
import tomllib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from layerlab.choices import parse_forget_bias
from layerlab.cli import main
from layerlab.config import ModelConfig, RunConfig
from layerlab.errors import ConfigError
from layerlab.models import create_model

H = 16


def _biases(model, layer: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(b_ih, b_hh) of one layer, gate blocks i, f, g, o."""
    f = model.rnn.fused
    return getattr(f, f"bias_ih_l{layer}").detach(), getattr(f, f"bias_hh_l{layer}").detach()


def test_default_is_keras_forget_bias_one():
    torch.manual_seed(0)
    b, b_hh = _biases(create_model("lstm", (30, 2), 1, hidden=H))
    assert torch.equal(b[H : 2 * H], torch.ones(H)) and torch.equal(b[:H], torch.zeros(H))
    assert torch.count_nonzero(b_hh) == 0


@pytest.mark.parametrize("value", ["2.5", 2.5, "-1", "0"])
def test_value_sets_every_unit(value):
    torch.manual_seed(0)
    model = create_model("lstm", (30, 2), 1, hidden=H, layers=2, bidirectional=True, forget_bias=value)
    for layer in (0, 1):
        b, b_hh = _biases(model, layer)
        assert torch.equal(b[H : 2 * H], torch.full((H,), float(value)))
        assert torch.equal(b[:H], torch.zeros(H)) and torch.count_nonzero(b_hh) == 0
    rev = model.rnn.fused.bias_ih_l0_reverse.detach()
    assert torch.equal(rev[H : 2 * H], torch.full((H,), float(value)))


@pytest.mark.parametrize(("option", "t_max"), [("chrono", 400), ("chrono:50", 50)])
def test_chrono_is_log_uniform_in_range_input_gate_opposite_and_seeded(option, t_max):
    def build(seed):
        torch.manual_seed(seed)
        return create_model("lstm", (400, 2), 1, hidden=64, forget_bias=option)

    b, b_hh = _biases(build(0))
    b_f, b_i = b[64:128], b[:64]
    assert torch.all(b_f >= 0.0) and torch.all(b_f <= math.log(t_max - 1))
    assert torch.equal(b_i, -b_f) and torch.count_nonzero(b_hh[:128]) == 0
    # spread over the interval, not one value: log U(1, T-1) has most of its mass near log(T-1)
    assert float(b_f.max()) > math.log(t_max - 1) - 0.2 and float(b_f.std()) > 0.1
    assert torch.equal(_biases(build(0))[0], b)  # the run's seed decides it
    assert not torch.equal(_biases(build(1))[0], b)


def test_chrono_reads_the_token_length_and_needs_three_steps():
    torch.manual_seed(0)
    b, _ = _biases(create_model("lstm", (20,), 7, hidden=H, head="step", forget_bias="chrono"))
    assert torch.all(b[H : 2 * H] <= math.log(19))
    with pytest.raises(ConfigError, match="chrono:T"):
        create_model("lstm", (2, 3), 1, hidden=H, forget_bias="chrono")


@pytest.mark.parametrize("model", ["rnn", "gru", "residual"])
def test_other_cells_refuse_it(model):
    with pytest.raises(ConfigError, match="does not take forget_bias"):
        create_model(model, (10, 2), 1, hidden=H, forget_bias="chrono")


@pytest.mark.parametrize("bad", ["chrono:2", "chrono:x", "chronos", "nan", "inf", "", "1e999", True])
def test_bad_values_are_one_sentence(bad):
    with pytest.raises(ConfigError):
        parse_forget_bias(bad)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_any_finite_number_parses_to_itself(x):
    assert parse_forget_bias(repr(x)) == ("value", x)
    assert parse_forget_bias(x) == ("value", x)


@given(st.integers(min_value=3, max_value=10**6))
def test_chrono_t_parses(t):
    assert parse_forget_bias(f"chrono:{t}") == ("chrono", float(t))


def test_config_checks_it():
    cfg = RunConfig.from_dict({"model": {"name": "lstm", "forget_bias": "chrono"}}, "test")
    assert cfg.model.forget_bias == "chrono" and cfg.model.options()["forget_bias"] == "chrono"
    with pytest.raises(ConfigError, match="forget_bias"):
        RunConfig.from_dict({"model": {"name": "lstm", "forget_bias": "chrono:1"}}, "test")
    assert ModelConfig(name="lstm").options() == {}


def test_cli_trains_with_it_records_it_and_exports(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    run = tmp_path / "run"
    argv = ["train", "--model", "lstm", "--data", "adding", "--length", "12", "--n-train", "32", "--n-test", "8"]
    tiny = ["--epochs", "1", "--hidden", "8", "--batch-size", "16", "--quiet", "--threads", "1", "--lr", "0"]
    assert main([*argv, *tiny, "--forget-bias", "chrono", "--out", str(run)]) == 0
    recorded = tomllib.loads((run / "config.toml").read_text())
    assert recorded["model"]["forget_bias"] == "chrono"
    # lr 0: the weights are the initialisation's, drawn from the run's seed as a fresh build draws them
    from layerlab.api import load_run

    model = load_run(run, "init")[0]
    b = model.rnn.fused.bias_ih_l0.detach()
    assert torch.all(b[8:16] <= math.log(11)) and torch.equal(b[:8], -b[8:16])
    onnx = tmp_path / "m.onnx"
    assert main(["export", str(run), "--out", str(onnx)]) == 0
    x = np.random.default_rng(0).random((3, 12, 2), dtype=np.float32)
    got = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    capsys.readouterr()
    assert main([*argv, *tiny, "--model", "gru", "--forget-bias", "2", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "does not take --forget-bias" in err and "Traceback" not in err and not (tmp_path / "g").exists()
