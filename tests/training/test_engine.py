"""The engine's optional paths, on the CPU: bf16 autocast, torch.compile, clipping, SGD."""

import json

import pytest
import torch

from datagen import make_idx_dir
from layerlab import api
from layerlab.config import RunConfig
from layerlab.engine import compute_loss, resolve_device
from layerlab.errors import ConfigError


def _train(tmp_path, **train):
    data = make_idx_dir(tmp_path / "d", n_train=128, n_test=64)
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.train.epochs = 1
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return api.train(cfg, tmp_path / "run")


def test_bf16_autocast_trains(tmp_path):
    _, result = _train(tmp_path, amp=True)
    assert torch.isfinite(torch.tensor(result.history[0]["train_loss"]))


@pytest.mark.slow
def test_torch_compile_path_matches_eager(tmp_path):
    pytest.importorskip("torch._inductor")
    _, eager = _train(tmp_path / "eager")
    _, compiled = _train(tmp_path / "compiled", compile=True)
    a, b = eager.history[0], compiled.history[0]
    assert abs(a["train_loss"] - b["train_loss"]) < 1e-3 and abs(a["test_loss"] - b["test_loss"]) < 1e-3


def test_clipping_is_logged(tmp_path):
    _, result = _train(tmp_path, clip=0.01)
    row = result.history[0]
    assert row["grad_norm_max"] > 0.01 and row["clipped_fraction"] > 0.5


def test_sgd_and_no_channels_last(tmp_path):
    _, result = _train(tmp_path, optimizer="sgd", lr=0.05, momentum=0.9, channels_last=False)
    assert result.history[0]["test_accuracy"] > 0.3


def test_unknown_optimizer(tmp_path):
    with pytest.raises(ConfigError, match=r"optimizer must be one of adam, adamw, sgd, .*, got 'lbfgs'"):
        _train(tmp_path, optimizer="lbfgs")


def test_device_names():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_losses_per_task():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 1])
    assert torch.isclose(compute_loss("classification", logits, y), torch.nn.functional.cross_entropy(logits, y))
    seq = torch.randn(2, 3, 4)
    ys = torch.tensor([[1, -100, 2], [-100, -100, 3]])
    ref = torch.nn.functional.cross_entropy(seq[ys != -100], ys[ys != -100])
    assert torch.isclose(compute_loss("classification", seq, ys), ref)
    assert compute_loss("regression", torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 3.0])) == 0.5


def test_cpu_training_keeps_freed_memory_for_reuse():
    import platform
    import sys

    from layerlab.engine import keep_cpu_memory

    glibc = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"
    assert keep_cpu_memory() is glibc
    assert keep_cpu_memory() is glibc  # once per process; asking again changes nothing


def test_bf16_in_hardware_is_read_from_the_cpu_flags():
    from layerlab.engine import cpu_bf16_native

    assert cpu_bf16_native("processor : 0\nflags : fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_bf16_native("flags : fpu avx512f amx_tile amx_bf16\n")
    assert cpu_bf16_native("Features : fp asimd bf16 i8mm\n")  # Arm
    assert not cpu_bf16_native("flags : fpu sse2 avx2 fma avx512f avx512bw\n")  # AVX-512 without BF16
    assert not cpu_bf16_native("")


def test_amp_on_a_cpu_without_bf16_trains_in_fp32_and_says_so(tmp_path, monkeypatch, caplog):
    from layerlab.training import runtime

    monkeypatch.setattr(runtime, "cpu_bf16_native", lambda cpuinfo=None: False)
    seen = []
    real = runtime.autocast
    monkeypatch.setattr(
        runtime, "autocast", lambda device, enabled, cache=True: seen.append(enabled) or real(device, enabled, cache)
    )
    with caplog.at_level("WARNING", logger="layerlab.training"):
        _, result = _train(tmp_path, amp=True)
    assert "no bf16 in hardware" in caplog.text and "training in fp32" in caplog.text
    assert seen and not any(seen) and result.amp is False
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["amp_in_effect"] is False
    assert torch.isfinite(torch.tensor(result.history[0]["train_loss"]))


def test_the_older_engine_module_is_the_training_package():
    """``layerlab.engine`` re-exports :mod:`layerlab.training`, so code written against it keeps working."""
    from layerlab import engine, training

    assert all(getattr(engine, name) is getattr(training, name) for name in training.__all__)
    assert engine.fit is training.loop.fit and engine.evaluate is training.evaluation.evaluate
