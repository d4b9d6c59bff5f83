"""The CUDA-graph training step's logic on the CPU (its static buffers, the warm-up it undoes, the
eager last batch), checked against the ordinary step; the settings it refuses; label smoothing."""

import pytest
import torch
import torch.nn as nn

from datagen import make_idx_dir
from layerlab import api
from layerlab.config import RunConfig, TrainConfig
from layerlab.data import Split
from layerlab.errors import ConfigError
from layerlab.models import create_model
from layerlab.training import (
    GraphStep,
    TrainStep,
    compute_loss,
    host_lr,
    make_capturable,
    make_optimizer,
    make_scheduler,
    train_one_epoch,
)


def _split(n=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Split(torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))


def _epoch(graph: bool, cfg: TrainConfig, split: Split):
    torch.manual_seed(0)
    model = create_model("article-cnn").to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    sched = make_scheduler(opt, cfg, steps_per_epoch=4)
    model.train()
    step = GraphStep(model, opt, cfg, "classification", torch.device("cpu"), split, capture=False) if graph else None
    m = train_one_epoch(TrainStep(model, opt, cfg, "classification", torch.device("cpu"), sched, graph=step), split, 0)
    return model, m


@pytest.mark.parametrize("clip", [None, 0.5])
def test_the_static_step_trains_what_the_ordinary_step_trains(clip):
    # 100 samples in batches of 32: three full batches through the static buffers, the last (4) eagerly;
    # the warm-up steps it takes before capturing are undone, so the weights end where the ordinary run's do
    cfg = TrainConfig(batch_size=32, lr=0.01, schedule="onecycle", clip=clip, label_smoothing=0.1)
    split = _split()
    eager, m_eager = _epoch(False, cfg, split)
    static, m_static = _epoch(True, cfg, split)
    for (name, a), b in zip(eager.state_dict().items(), static.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert m_static["train_loss"] == pytest.approx(m_eager["train_loss"], rel=1e-5)
    assert m_static["train_accuracy"] == m_eager["train_accuracy"]
    assert m_static["lr"] == m_eager["lr"]
    if clip:
        assert m_static["grad_norm_max"] == pytest.approx(m_eager["grad_norm_max"], rel=1e-4)


def test_the_static_step_undoes_its_warm_up():
    cfg = TrainConfig(batch_size=16, lr=0.1)
    torch.manual_seed(0)
    model = create_model("article-cnn")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    step = GraphStep(model, opt, cfg, "classification", torch.device("cpu"), _split(), capture=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(float(st["step"]) == 0 for st in opt.state.values())
    assert all(not st["exp_avg"].any() for st in opt.state.values()) and int(step.stats.sum()) == 0


def test_variable_lengths_are_refused():
    split = Split(torch.rand(8, 5, 3), torch.zeros(8, dtype=torch.long), torch.tensor([5, 4, 3, 5, 5, 2, 5, 1]))
    model = nn.Linear(3, 2)
    with pytest.raises(ConfigError, match="--cuda-graph needs batches of one shape"):
        GraphStep(
            model,
            make_optimizer(model, TrainConfig(), torch.device("cpu")),
            TrainConfig(),
            "classification",
            torch.device("cpu"),
            split,
            capture=False,
        )


def test_cuda_graph_on_a_cpu_is_one_sentence(tmp_path):
    data = make_idx_dir(tmp_path / "d", n_train=64, n_test=32)
    cfg = RunConfig()
    cfg.data.name = str(data)
    cfg.train.epochs = 1
    cfg.train.device = "cpu"
    cfg.train.cuda_graph = True
    with pytest.raises(
        ConfigError, match=r"^--cuda-graph needs a CUDA device \(--device cuda\); this run trains on cpu$"
    ):
        api.train(cfg, tmp_path / "run")


def test_label_smoothing_is_the_smoothed_cross_entropy():
    logits = torch.tensor([[3.0, 0.0, -1.0]])
    y = torch.tensor([0])
    logp = logits.log_softmax(-1)
    expected = -(0.9 * logp[0, 0] + 0.1 * logp[0].mean())
    assert compute_loss("classification", logits, y, 0.1) == pytest.approx(float(expected))
    assert compute_loss("classification", logits, y) == pytest.approx(float(-logp[0, 0]))


def test_a_resumed_schedule_fills_a_captured_rate_in_place():
    # a captured step reads the rate from one tensor: resuming must fill that tensor, not replace it
    cfg = TrainConfig(lr=0.01, schedule="onecycle", epochs=2)
    model = nn.Linear(3, 2)
    plain = make_optimizer(model, cfg, torch.device("cpu"))
    captured = make_capturable(make_optimizer(model, cfg, torch.device("cpu")), torch.device("cpu"))
    rate = captured.param_groups[0]["lr"]
    make_scheduler(plain, cfg, 10, global_step=3)
    sched = make_scheduler(captured, cfg, 10, global_step=3)
    assert captured.param_groups[0]["lr"] is rate
    assert float(rate) == pytest.approx(plain.param_groups[0]["lr"], rel=1e-6)
    assert all(type(b) is float for b in sched.base_lrs)  # so a step fills the rate without a device read
    sched.step()
    assert host_lr(captured, sched) == pytest.approx(float(rate), rel=1e-6)


def test_a_checkpointed_rate_tensor_becomes_a_device_tensor_again():
    # a resumed graph run's optimizer state holds its rate as a tensor loaded onto the CPU: a captured
    # step must read a tensor on the training device, one the schedule fills, with a float base rate
    model = nn.Linear(3, 2)
    opt = make_optimizer(model, TrainConfig(lr=0.01), torch.device("cpu"))
    opt.param_groups[0]["lr"] = torch.tensor(0.01, dtype=torch.float64)
    make_capturable(opt, torch.device("meta"))
    group = opt.param_groups[0]
    assert group["lr"].device.type == "meta" and group["lr"].dtype == torch.float32
    assert group["initial_lr"] == 0.01 and isinstance(group["initial_lr"], float)
