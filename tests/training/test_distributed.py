"""Training under torchrun: DistributedDataParallel over CPU processes (gloo) on tiny data.

Each test starts ``torchrun`` from the venv's bin as a subprocess, as a user would. Under DDP the
weights differ from a single-process run only by the order of float additions (the all-reduce
sums two half-batch gradients where one process sums the whole batch, and Adam divides by the
gradients' scale, which keeps their relative rounding): measured max abs diff 9.3e-8 after one
epoch of 6 even steps of article-cnn, 1.8e-6 after the 6 steps of the test below (its last batch
splits 6 + 5, weighted), so the tolerance is 1e-5.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from datagen import make_idx_dir
from layerlab import api, distributed
from layerlab.data import Split, iterate_batches
from layerlab.errors import ConfigError
from layerlab.rundir import RunDir

BIN = Path(sys.executable).parent
TORCHRUN = str(BIN / "torchrun")
TOLERANCE = 1e-5  # measured 1.8e-6 (see the module docstring)
FLAGS = ["--model", "article-cnn", "--threads", "1", "--device", "cpu", "--quiet"]


def _env(pause: str | None = None) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    for k in ("LAYERLAB_TEST_PAUSE_AT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    if pause:
        env["LAYERLAB_TEST_PAUSE_AT"] = pause
    return env


def _torchrun(launch: list[str], args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [TORCHRUN, *launch, "-m", "layerlab", "train", *args],
        env=_env(kw.pop("pause", None)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


#: What a gloo process prints when the C++ runtime aborts it as its process group is torn down
#: (std::terminate from a gloo thread). One rank leaving the group while another still used it caused
#: most of them: 2 aborts in 30 two-process trainings of a loaded 2-core machine before the ranks met
#: at a barrier on the way out (distributed.stop), none in 70 after; it was still seen once, at the end
#: of a resume, in a full run of the suite on a heavily loaded machine. So the tests keep tolerating
#: it, and only it, after the run has completed. Nothing of layerlab's prints it.
GLOO_TEARDOWN_ABORT = "terminate called without an active exception"


def _run(launch: list[str], args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    proc = _torchrun(launch, args)
    out, err = proc.communicate(timeout=timeout)
    fresh = "--out" in args and "--resume" not in args
    if proc.returncode != 0 and GLOO_TEARDOWN_ABORT in err and fresh:
        # that abort, and only that, is tried once more: a fresh run into an emptied --out
        shutil.rmtree(args[args.index("--out") + 1], ignore_errors=True)
        proc = _torchrun(launch, args)
        out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0 and GLOO_TEARDOWN_ABORT in err and "--resume" in args:
        # a resume cannot be run again from the start; the abort is the teardown's only when rank 0
        # recorded the run completed, and the caller's checks of its weights then still apply
        if RunDir(args[args.index("--resume") + 1]).info().get("status") == "completed":
            return subprocess.CompletedProcess(proc.args, 0, out, err)
    assert proc.returncode == 0, err[-3000:]
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _single(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "layerlab", "train", *args], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _weights(run: Path) -> dict:
    return load_file(RunDir(run).weights("last"))


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STANDALONE = ["--standalone", "--nproc_per_node", "2"]


# ----------------------------------------------------------------------------------------------
# the pieces, in process
# ----------------------------------------------------------------------------------------------
def test_shards_of_a_step_are_the_single_process_batch():
    split = Split(torch.arange(23).float().reshape(23, 1), torch.arange(23))
    whole = list(iterate_batches(split, 8, shuffle=True, generator=torch.Generator().manual_seed(3)))
    parts = [
        list(iterate_batches(split, 8, shuffle=True, generator=torch.Generator().manual_seed(3), shard=(r, 2)))
        for r in range(2)
    ]
    assert len(parts[0]) == len(parts[1]) == len(whole) == 3
    for step, batch in enumerate(whole):
        assert torch.equal(torch.cat([parts[0][step].y, parts[1][step].y]), batch.y)
    assert [len(b) for b in parts[0]] == [4, 4, 4] and [len(b) for b in parts[1]] == [4, 4, 3]


def test_global_batch_must_split_over_the_ranks():
    distributed.check_batch(16, 91, 2)  # last batch 11: 6 and 5, weighted to the batch mean
    with pytest.raises(ConfigError, match="--batch-size 15 is the global batch and must be divisible by the 2"):
        distributed.check_batch(15, 90, 2)
    with pytest.raises(ConfigError, match="last batch of an epoch holds 1 of the 33"):
        distributed.check_batch(16, 33, 2)


def test_a_plain_process_is_not_distributed(monkeypatch):
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.context() is None and distributed.is_main_process()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: a plain run
    assert distributed.context() is None
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.context() == distributed.DistContext(1, 2, 0) and not distributed.is_main_process()


@pytest.mark.parametrize("finished", [True, False])
def test_ranks_meet_before_leaving_the_group_only_after_a_finished_run(monkeypatch, finished):
    calls = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    distributed.stop(finished)
    # a finished run: every rank is past its last collective before any tears its connections down;
    # a failed one: no barrier, which the ranks that did not fail might never reach
    assert calls == (["barrier", "destroy"] if finished else ["destroy"])


# ----------------------------------------------------------------------------------------------
# torchrun
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_train_the_single_process_model(tmp_path):
    # 91 samples in global batches of 16: 5 batches of 8 + 8 per rank, and a last one of 11 (6 + 5)
    data = make_idx_dir(tmp_path / "bars", n_train=91, n_test=40)
    args = [*FLAGS, "--data", str(data), "--epochs", "1", "--batch-size", "16"]
    _run(STANDALONE, [*args, "--out", str(tmp_path / "ddp"), "--json"])
    _single([*args, "--out", str(tmp_path / "one")])

    diff = _max_diff(_weights(tmp_path / "ddp"), _weights(tmp_path / "one"))
    assert diff < TOLERANCE, diff
    info = RunDir(tmp_path / "ddp").info()
    assert info["status"] == "completed"
    assert info["distributed"]["world_size"] == 2 and info["distributed"]["backend"] == "gloo"
    assert [d.split("/")[-1] for d in info["distributed"]["devices"]] == ["cpu", "cpu"]
    # the running train metrics are reduced over the ranks: the single-process numbers
    ddp_row, one_row = RunDir(tmp_path / "ddp").metrics()[0], RunDir(tmp_path / "one").metrics()[0]
    assert ddp_row["train_loss"] == pytest.approx(one_row["train_loss"], abs=1e-5)
    assert ddp_row["train_accuracy"] == one_row["train_accuracy"]
    # everything after training reads a DDP run as any other (weights saved unwrapped)
    ev_ddp, ev_one = api.evaluate_run(tmp_path / "ddp"), api.evaluate_run(tmp_path / "one")
    assert ev_ddp["loss"] == pytest.approx(ev_one["loss"], abs=1e-5)
    assert ev_ddp["accuracy"] == ev_one["accuracy"]


@pytest.mark.slow
def test_an_indivisible_global_batch_is_one_sentence_and_no_run(tmp_path):
    data = make_idx_dir(tmp_path / "bars", n_train=40, n_test=10)
    proc = _torchrun(STANDALONE, [*FLAGS, "--data", str(data), "--batch-size", "15", "--out", str(tmp_path / "r")])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "layerlab: error: --batch-size 15 is the global batch and must be divisible by the 2 processes" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_two_nodes_on_one_machine(tmp_path):
    data = make_idx_dir(tmp_path / "bars", n_train=64, n_test=16)
    port = _free_port()
    out = tmp_path / "run"
    launch = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d"]
    launch += ["--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "layerlab-test"]
    args = [*FLAGS, "--data", str(data), "--epochs", "1", "--batch-size", "16", "--out", str(out)]
    results = _two_nodes(launch, args)
    if any(code != 0 and GLOO_TEARDOWN_ABORT in err for code, err in results):  # that abort only, once more
        shutil.rmtree(out, ignore_errors=True)
        launch[-3] = f"127.0.0.1:{_free_port()}"
        results = _two_nodes(launch, args)
    for code, err in results:
        assert code == 0, err[-3000:]
    run = RunDir(out)
    info = run.info()
    assert info["status"] == "completed" and info["distributed"]["world_size"] == 2
    assert len(run.metrics()) == 1 and (out / "summary.json").is_file() and not run.lock_path.exists()
    assert run.resolve_weights() == "last"


def _two_nodes(launch: list[str], args: list[str]) -> list[tuple[int, str]]:
    """Start both nodes of a two-node job and give each one's exit code and stderr."""
    nodes = [_torchrun(launch, args) for _ in range(2)]
    errs = [p.communicate(timeout=180)[1] for p in nodes]
    return [(p.returncode, err) for p, err in zip(nodes, errs, strict=True)]


def _worker_pids(torchrun_pid: int) -> dict[int, int]:
    """RANK -> pid of the worker processes torchrun started (its children, by their environment)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != torchrun_pid:
                continue
            env = dict(e.split("=", 1) for e in (d / "environ").read_text().split("\0") if "=" in e)
        except (OSError, ValueError, IndexError):
            continue
        if "RANK" in env:
            out[int(env["RANK"])] = int(d.name)
    return out


@pytest.mark.slow
def test_resume_after_one_rank_is_killed(tmp_path):
    data = make_idx_dir(tmp_path / "bars", n_train=64, n_test=16)
    # 4 steps an epoch, 2 epochs, a mid-epoch checkpoint every 3 steps (after steps 3 and 6)
    args = [*FLAGS, "--data", str(data), "--epochs", "2", "--batch-size", "16", "--checkpoint-every", "3"]
    _run(STANDALONE, [*args, "--out", str(tmp_path / "whole")])

    out = tmp_path / "killed"
    proc = _torchrun(STANDALONE, [*args, "--out", str(out)], pause="step:7")  # epoch 2, after the step-6 checkpoint
    for line in proc.stderr:
        if "LAYERLAB_PAUSED step" in line:
            break
    time.sleep(1)  # both ranks are at the pause: the second line may follow the first
    pids = _worker_pids(proc.pid)
    assert set(pids) == {0, 1}, pids
    os.kill(pids[1], signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    info = RunDir(out).info()
    assert info["status"] in ("interrupted", "failed")  # rank 0 recorded how the job ended
    assert RunDir(out).kept() == "the checkpoint after step 2 of epoch 2 is kept"

    _run(STANDALONE, ["--resume", str(out), "--threads", "1", "--quiet"])
    info = RunDir(out).info()
    assert info["status"] == "completed" and info["resumed_from_epoch"] == 1 and info["resumed_from_step"] == 2
    assert _max_diff(_weights(out), _weights(tmp_path / "whole")) == 0.0  # same world size: bit for bit
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2


_EVAL_SCRIPT = """
import json, sys
import torch
from layerlab import distributed
from layerlab.data import load_dataset
from layerlab.models import create_model
from layerlab.training import evaluate

ctx = distributed.context()
if ctx is not None:
    distributed.start(ctx)
torch.manual_seed(0)
model = create_model("article-cnn", (1, 28, 28), 10)
rows = {}
for name, path in (("memory", sys.argv[1]), ("packed", sys.argv[2])):
    ds = load_dataset(path)
    rows[name] = evaluate(model, ds.test, batch_size=16, dist=ctx, prefix="test_", metrics=sys.argv[3])
if ctx is None or ctx.is_main:
    print(json.dumps(rows))
if ctx is not None:
    distributed.stop()
"""


def test_two_processes_evaluate_every_held_out_sample_exactly_once(tmp_path):
    """A held-out split of odd size (101) over 2 ranks: each rank evaluates its share and the sums
    are added, so accuracy and count are exactly the single process's (before: every rank
    evaluated the whole split, and a DistributedSampler would pad it with a repeated sample).
    Metrics by name are the single process's too (before: refused under torchrun)."""
    from layerlab.data import load_dataset
    from layerlab.data.pack import pack

    data = make_idx_dir(tmp_path / "bars", n_train=20, n_test=101)
    pack(load_dataset(str(data)), tmp_path / "packed")
    script = tmp_path / "ev.py"
    script.write_text(_EVAL_SCRIPT)
    args = [str(data), str(tmp_path / "packed"), "f1_macro,auroc,top3_accuracy"]
    one = subprocess.run([sys.executable, str(script), *args], env=_env(), capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [TORCHRUN, *STANDALONE, str(script), *args], env=_env(), capture_output=True, text=True, timeout=180
    )
    assert two.returncode == 0, two.stderr[-3000:]
    single, shared = json.loads(one.stdout.strip().splitlines()[-1]), json.loads(two.stdout.strip().splitlines()[-1])
    for name in ("memory", "packed"):
        assert shared[name]["test_n"] == single[name]["test_n"] == 101
        assert shared[name]["test_accuracy"] == single[name]["test_accuracy"]
        assert shared[name]["test_loss"] == pytest.approx(single[name]["test_loss"], rel=1e-6)
        # metrics by name that do not add up over shares (ranked, macro-averaged): from every share's outputs
        for metric in ("test_f1_macro", "test_auroc", "test_top3_accuracy"):
            assert shared[name][metric] == pytest.approx(single[name][metric], abs=1e-6), metric


_HASH_SCRIPT = """
import hashlib, json, sys
from layerlab import distributed
from layerlab.data import load_dataset
from layerlab.training import as_source

ctx = distributed.context()
if ctx is not None:
    distributed.start(ctx)
rank, world = (ctx.rank, ctx.world_size) if ctx is not None else (0, 1)
out = {}
for name, path, workers in (("memory", sys.argv[1], None), ("packed", sys.argv[2], 1)):
    source = as_source(load_dataset(path, workers=workers).train)
    hashes = []
    for epoch in range(2):
        for share in source.epoch(16, seed=5, epoch=epoch, rank=rank, world_size=world):
            mine = (share.batch.x.numpy().tobytes(), share.batch.y.numpy().tobytes())
            parts = distributed.gather(mine) if ctx is not None else [mine]
            whole = b"".join(x for x, _ in parts) + b"".join(y for _, y in parts)  # the global batch, rank order
            hashes.append(hashlib.sha256(whole).hexdigest()[:16])
    out[name] = hashes
if ctx is None or ctx.is_main:
    print(json.dumps(out))
if ctx is not None:
    distributed.stop(True)
"""


@pytest.mark.slow
def test_the_global_batches_hash_the_same_for_one_and_two_processes(tmp_path):
    """Each step's global batch (every rank's share, joined in rank order) under a real 2-process
    torchrun hashes to the single process's batch of that step, for 2 epochs, in memory and from
    packed shards read by a worker: the order depends on (seed, epoch) only, not on the world size."""
    from layerlab.data import load_dataset
    from layerlab.data.pack import pack

    data = make_idx_dir(tmp_path / "bars", n_train=70, n_test=10)  # 5 steps of 16, the last of 6
    pack(load_dataset(str(data)), tmp_path / "packed")
    script = tmp_path / "hashes.py"
    script.write_text(_HASH_SCRIPT)
    args = [str(data), str(tmp_path / "packed")]
    one = subprocess.run([sys.executable, str(script), *args], env=_env(), capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [TORCHRUN, *STANDALONE, str(script), *args], env=_env(), capture_output=True, text=True, timeout=180
    )
    assert two.returncode == 0, two.stderr[-3000:]
    single, shared = json.loads(one.stdout.strip().splitlines()[-1]), json.loads(two.stdout.strip().splitlines()[-1])
    assert len(single["memory"]) == 10 and len(set(single["memory"])) == 10  # 2 epochs of 5 distinct batches
    assert shared == single
    assert single["packed"] == single["memory"]  # the packed copy holds the same uint8 pixels, in order


@pytest.mark.slow
def test_two_processes_train_a_packed_dataset_with_workers_and_augmentation_as_one(tmp_path):
    """Streamed data, read by workers on each rank (each rank reads only its share of each batch)
    and augmented by (seed, epoch, index): 2 processes train the single process's model."""
    from layerlab.data import load_dataset
    from layerlab.data.pack import pack

    data = make_idx_dir(tmp_path / "bars", n_train=64, n_test=21)
    pack(load_dataset(str(data)), tmp_path / "packed")
    args = [*FLAGS, "--data", str(tmp_path / "packed"), "--epochs", "1", "--batch-size", "16"]
    args += ["--workers", "1", "--augment", "crop=2,flip,erase=0.5"]
    _run(STANDALONE, [*args, "--out", str(tmp_path / "ddp")])
    _single([*args, "--out", str(tmp_path / "one")])
    assert _max_diff(_weights(tmp_path / "ddp"), _weights(tmp_path / "one")) < TOLERANCE
    ddp_row, one_row = RunDir(tmp_path / "ddp").metrics()[0], RunDir(tmp_path / "one").metrics()[0]
    assert ddp_row["train_accuracy"] == one_row["train_accuracy"]
    assert ddp_row["test_n"] == one_row["test_n"] == 21
