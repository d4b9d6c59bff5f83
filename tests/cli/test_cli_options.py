"""Options the CLI cannot honour are one sentence and exit 2 before any work, and leave nothing
behind: numbers and lists checked as they are read (layerlab.cli.options), training options this
machine cannot run (--cuda-graph off a GPU, a --tensorboard folder that cannot be made) refused before
the run directory exists, a --threads on resume that would change the numbers, files that are not
regular files (a FIFO blocks its reader), and what the operating system refuses."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from layerlab import api
from layerlab.cli import main, os_error_sentence
from layerlab.cli.options import parse_int_list, parse_number
from layerlab.config import RunConfig, check_channels, split_list
from layerlab.errors import ConfigError
from layerlab.preflight import checked_resume_threads
from layerlab.rundir import RunDir


def refused(capsys, argv, *fragments) -> str:
    """Run ``layerlab ARGV`` in this process: exit 2 and one line on stderr holding ``fragments``."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("layerlab: error: "), err
    for f in fragments:
        assert f in err, (f, err)
    return err


def one_sentence(proc: subprocess.CompletedProcess, *fragments) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    for f in fragments:
        assert f in proc.stderr, (f, proc.stderr)


def cli(*args, timeout: float = 120, cwd=None) -> subprocess.CompletedProcess:
    """``layerlab ARGS`` in a subprocess, killed after ``timeout`` seconds (a hang fails the test)."""
    return subprocess.run(
        [sys.executable, "-m", "layerlab", *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


# ----------------------------------------------------------------------------------------------
# Training options this machine cannot honour: refused before the run directory exists
# ----------------------------------------------------------------------------------------------
def test_cuda_graph_on_a_cpu_leaves_no_run_directory(idx_dir, tmp_path, capsys):
    """Old code: refused inside engine.fit, after RunDir.create: a `failed` run directory was left."""
    out = tmp_path / "run"
    argv = ["train", "--data", idx_dir, "--device", "cpu", "--cuda-graph", "--epochs", "1", "--out", out]
    refused(capsys, argv, "--cuda-graph needs a CUDA device")
    assert not out.exists()


@pytest.mark.parametrize("under", ["/dev/null", "file"])
def test_tensorboard_folder_that_cannot_be_made_leaves_no_run_directory(under, idx_dir, tmp_path, capsys):
    """Old code: SummaryWriter failed once training began, leaving a `failed` run directory."""
    pytest.importorskip("tensorboard")
    if under == "file":
        under = tmp_path / "file"
        under.write_text("a file, so no folder can be made in it (for root too)")
    out = tmp_path / "run"
    argv = ["train", "--data", idx_dir, "--device", "cpu", "--epochs", "1", "--out", out]
    refused(capsys, [*argv, "--tensorboard", f"{under}/x"], f"--tensorboard {under}/x", "cannot make this folder")
    assert not out.exists()
    (tmp_path / "logs").write_text("a file where the folder goes")
    refused(capsys, [*argv, "--tensorboard", tmp_path / "logs"], "exists and is not a folder")
    assert not out.exists()


def test_the_tensorboard_check_leaves_nothing_behind(idx_dir, tmp_path, capsys):
    """The folder is checked by making it and removing it again: a run refused later (here for its
    data) leaves no empty log folder either; a run that trains writes its logs there."""
    pytest.importorskip("tensorboard")
    from layerlab.preflight import check_writable_dir

    check_writable_dir(tmp_path / "a" / "b" / "c", "--tensorboard")
    assert not (tmp_path / "a").exists()
    logs, out = tmp_path / "logs" / "run1", tmp_path / "run"
    argv = ["train", "--device", "cpu", "--epochs", "1", "--tensorboard", logs, "--out", out, "--quiet"]
    refused(capsys, [*argv, "--data", tmp_path / "no-such-data"], "no-such-data")
    assert not (tmp_path / "logs").exists() and not out.exists()
    assert main([str(a) for a in [*argv, "--data", idx_dir]]) == 0
    assert any(logs.iterdir())


def test_fit_with_cuda_graph_on_a_cpu_leaves_no_run_directory(tmp_path):
    x = np.random.default_rng(0).random((8, 4, 4, 1), dtype=np.float32)
    y = np.arange(8) % 2
    with pytest.raises(ConfigError, match="--cuda-graph needs a CUDA device"):
        api.fit("article-cnn", x, y, epochs=1, run_dir=tmp_path / "r", cuda_graph=True, device="cpu", verbose=0)
    assert not (tmp_path / "r").exists()


def test_resume_refuses_an_option_the_machine_cannot_honour_and_keeps_the_status(trained_run, tmp_path, capsys):
    """A run whose config asks for --cuda-graph on the CPU stays as it was (not marked running, then failed)."""
    run = tmp_path / "run"
    # the shared run may hold another test's report: these tests need a run without one
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("report", "report.html"))
    cfg = RunConfig.from_toml(run / "config.toml")
    cfg.train.cuda_graph, cfg.train.device = True, "cpu"
    (run / "config.toml").write_text(cfg.to_toml())
    before = json.loads((run / "run.json").read_text())
    refused(capsys, ["train", "--resume", run, "--epochs", "3"], "--cuda-graph needs a CUDA device")
    after = json.loads((run / "run.json").read_text())
    assert after["status"] == before["status"] == "completed" and "error" not in after


# ----------------------------------------------------------------------------------------------
# --threads on resume: another thread count sums in another order
# ----------------------------------------------------------------------------------------------
def test_resume_with_another_thread_count_is_refused(idx_dir, tmp_path, capsys):
    """Old code: accepted, and the resumed weights differed from the unbroken run's (by 1e-8 on this
    run after one epoch, 1e-5 on larger ones): not the bit-identical resume the README promises."""
    run = tmp_path / "run"
    flags = [
        "--model",
        "article-cnn",
        "--data",
        str(idx_dir),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--batch-size",
        "64",
    ]
    flags.append(
        "--quiet"
    )  # the model named: --data alone would choose a one-cycle recipe, which --epochs 2 cannot extend
    assert main(["train", *flags, "--epochs", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    before = (run / "run.json").read_text()
    refused(capsys, ["train", "--resume", run, "--epochs", "2", "--threads", "2"], "--threads 2", "bit-identical")
    assert (run / "run.json").read_text() == before  # nothing was touched
    assert main(["train", "--resume", str(run), "--epochs", "2", "--threads", "1", "--quiet"]) == 0  # its own count


def test_checked_resume_threads():
    cfg = RunConfig().train
    cpu = {"device": "cpu", "environment": {"cpu_threads": 4}}
    assert checked_resume_threads(cfg, cpu, 4) == 4  # the count torch chose for a run without --threads
    with pytest.raises(ConfigError, match="differs from the 4 CPU threads"):
        checked_resume_threads(cfg, cpu, 2)
    cfg.threads = 2
    assert checked_resume_threads(cfg, cpu, 2) == 2
    with pytest.raises(ConfigError, match="give --threads 2 or leave it out"):
        checked_resume_threads(cfg, cpu, 3)
    assert checked_resume_threads(cfg, {"device": "cuda:0"}, 3) == 3  # a GPU's sums do not depend on them


# ----------------------------------------------------------------------------------------------
# Numbers and lists checked as they are read
# ----------------------------------------------------------------------------------------------
CC = ["compare-cells", "--task", "adding", "--length", "5"]


@pytest.mark.parametrize(
    "argv, says",
    [
        (["generate", "RUN", "--seed", "1e23"], "--seed must be a whole number, got '1e23'"),
        (["generate", "RUN", "--seed", str(10**23)], "--seed must be below"),
        (["generate", "RUN", "--length", "-1"], "--length must be at least 0"),
        (["generate", "RUN", "--temperature", "inf"], "--temperature must be a finite number"),
        (["inspect", "gradflow", "lstm", "--data", "adding", "--samples", "0"], "--samples must be at least 1"),
        (["inspect", "gradflow", "lstm", "--data", "adding", "--probes", "-1"], "--probes must be at least 0"),
        (["inspect", "gradflow", "lstm", "--data", "adding", "--hidden", "0"], "--hidden must be at least 1"),
        (["inspect", "summary", "cnn", "--input-shape", "1,,28"], "--input-shape has an empty item"),
        (["inspect", "summary", "cnn", "--input-shape", "1,0,28"], "--input-shape must be at least 1, got 0"),
        (["inspect", "summary", "cnn", "--input-shape", "1,2.5"], "--input-shape must be a whole number"),
        (["inspect", "summary", "cnn", "--outputs", "0"], "--outputs must be at least 1"),
        (["inspect", "errors", "RUN", "--top", "-3"], "--top must be at least 0"),
        (["report", "RUN", "--samples", "0"], "--samples must be at least 1"),
        (["report", "RUN", "--probes", "-1"], "--probes must be at least 0"),
        ([*CC, "--epochs", "0"], "--epochs must be at least 1"),
        ([*CC, "--batch-size", "0"], "--batch-size must be at least 1"),
        ([*CC, "--lr", "nan"], "--lr must be a finite number"),
        ([*CC, "--seed", "-1"], "--seed must be at least 0"),
        ([*CC, "--clip", "-1"], "--clip must be at least 0.0"),
        ([*CC, "--threads", "0"], "--threads must be at least 1"),
        ([*CC, "--n-train", "0"], "--n-train must be at least 1"),
        ([*CC, "--cells", "rnn,,gru"], "--cells has an empty item"),
        (["compare-cells", "--task", "adding", "--length", "0"], "--length must be at least 1"),
        (["predict", "RUN", "FILE", "--top-k", "0"], "--top-k must be at least 1"),
        (["claims", "--seeds", "0"], "--seeds must be at least 1"),
        (["claims", "--only", "gated,", "--quick"], "--only has an empty item"),
        (["export", "RUN", "--opset", "-1"], "--opset must be at least 1"),
        (["train", "--model", "cnn", "--channels", "32,,64"], "--channels has an empty item in '32,,64'"),
        (["train", "--model", "cnn", "--channels", "32,-8"], "got '-8' in '32,-8'"),
        (["train", "--model", "cnn", "--channels", "32,0,M"], "got '0'"),
    ],
)
def test_an_option_out_of_range_is_one_sentence_before_any_work(argv, says, tmp_path, capsys, monkeypatch):
    """Old code: tracebacks (compare-cells --epochs 0: IndexError, --batch-size 0: ZeroDivisionError,
    --lr nan, --seed -1; gradflow --probes -1), silent acceptance (--clip -1, --threads 0, --channels
    32,,64, 1,,28), or another flag's name (gradflow --samples 0 said --n-test)."""
    monkeypatch.chdir(tmp_path)  # anything a command would write lands here: nothing may
    refused(capsys, argv, says)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "options, says",
    [
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"clip": -1.0}, "clip must be above 0.0"),
        ({"threads": 0}, "threads must be at least 1"),
        ({"samples": 0}, "samples must be at least 1"),
        ({"probes": -1}, "probes must be at least 0"),
        ({"hidden": 0}, "hidden must be at least 1"),
        ({"cells": []}, "at least one cell name"),
    ],
)
def test_compare_cells_in_python_checks_its_options_first(options, says, tmp_path):
    """Old code: IndexError (epochs 0), ZeroDivisionError (batch_size 0), torch's ValueError (lr nan),
    NumPy's (seed -1), or silently ran (threads 0)."""
    from layerlab import experiments
    from layerlab.errors import LayerlabError

    kw = {"cells": ["rnn"], "hidden": 4, "n_train": 32, "n_test": 8, "out": tmp_path / "cc", **options}
    with pytest.raises(LayerlabError, match=says):
        experiments.compare_cells("adding", 5, kw.pop("cells"), **kw)
    assert not (tmp_path / "cc").exists()


def test_gradflow_and_report_in_python_check_samples_and_probes(trained_run, tmp_path):
    """Old code: samples=0 said "--n-test must be at least 1" (a flag not given); probes=-1 was a
    RuntimeError from torch (a negative dimension)."""
    from layerlab.inspect import views
    from layerlab.inspect.report import write_report

    with pytest.raises(ConfigError, match="--samples must be at least 1, got 0"):
        views.gradflow("lstm", data="adding", length=5, samples=0)
    with pytest.raises(ConfigError, match="--probes must be at least 0, got -1"):
        views.gradflow("lstm", data="adding", length=5, probes=-1)
    run = tmp_path / "run"
    # the shared run may hold another test's report: these tests need a run without one
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("report", "report.html"))
    with pytest.raises(ConfigError, match="--probes must be at least 0"):
        write_report(run, probes=-2)
    assert not (run / "report.html").exists() and not (run / "report").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--out", ""],
        ["train", "--data", " "],
        ["train", "--tensorboard", ""],
        ["train", "--config", ""],
        ["train", "--resume", ""],
        ["evaluate", "RUN", "--data-dir", ""],
        ["inspect", "curves", "RUN", "--out", ""],
        ["compare-cells", "--task", "adding", "--length", "5", "--out", ""],
        ["export", "RUN", "--out", ""],
        ["claims", "--results", ""],
        ["report", "RUN", "--image", ""],
    ],
)
def test_an_empty_path_or_name_is_refused(argv, tmp_path, capsys, monkeypatch):
    """Old code: `train --out ""` trained into the default runs/ folder, `inspect --out ""` named the
    working directory, `--tensorboard ""` was ignored: an unset shell variable taken for a choice."""
    monkeypatch.chdir(tmp_path)
    flag = argv[argv.index("") - 1] if "" in argv else "--data"
    err = refused(capsys, argv, flag)
    assert "needs a value" in err or "must not be empty" in err
    assert list(tmp_path.iterdir()) == []


def test_channels_in_a_preset_are_checked_too(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('[model]\nname = "cnn"\nchannels = "32,,64"\n')
    with pytest.raises(ConfigError, match=r"\[model\] channels has an empty item"):
        RunConfig.from_toml(preset)


def test_claims_text_not_utf8_is_refused_before_any_claim_runs(tmp_path, capsys):
    """Old code: the deeper-RNN claim read --text after the others had run, and raised UnicodeDecodeError."""
    text = tmp_path / "latin1.txt"
    text.write_bytes("caf\xe9 au lait".encode("latin-1"))
    results = tmp_path / "results"
    argv = ["claims", "--quick", "--only", "deeper", "--text", text, "--results", results, "--out", tmp_path / "c.md"]
    refused(capsys, argv, f"--text {text}: not UTF-8 text (byte 3")
    assert not results.exists()


ints = st.integers(-(10**30), 10**30)


@hypothesis.settings(max_examples=300, deadline=None, database=None)
@hypothesis.given(text=st.one_of(st.text(max_size=12), ints.map(str), st.floats().map(repr)))
def test_parse_number_property(text):
    """Any text is either a finite number in range, equal to what Python reads, or one ConfigError sentence."""
    for kind, bounds in ((int, {"ge": 1}), (int, {"ge": 0, "lt": 2**63}), (float, {"gt": 0.0}), (float, {})):
        try:
            value = parse_number(text, "--x", kind, **bounds)
        except ConfigError as e:
            assert str(e).startswith("--x must be ") and "\n" not in str(e)
            continue
        assert type(value) is kind and value == kind(text.strip()) and math.isfinite(value)
        assert value >= bounds.get("ge", -np.inf) and value > bounds.get("gt", -np.inf)
        assert value < bounds.get("lt", np.inf)


@hypothesis.settings(max_examples=200, deadline=None, database=None)
@hypothesis.given(
    values=st.lists(st.integers(1, 10**6), min_size=1, max_size=6), gap=st.integers(0, 6), sep=st.sampled_from(",x")
)
def test_parse_int_list_property(values, gap, sep):
    """A list of whole numbers reads back as written; the same list with an empty item is refused."""
    text = sep.join(map(str, values))
    assert parse_int_list(text, "--shape", ge=1) == values
    items = [str(v) for v in values]
    items.insert(min(gap, len(items)), "")
    with pytest.raises(ConfigError, match=r"empty item|at least one item"):
        parse_int_list(",".join(items), "--shape", ge=1)


@hypothesis.settings(max_examples=200, deadline=None, database=None)
@hypothesis.given(text=st.text(alphabet="0123456789Mm,- x", max_size=14))
def test_check_channels_property(text):
    """Accepted exactly when every comma-separated item is a width from 1 or M; otherwise one sentence."""
    items = text.split(",")
    valid = all(s.strip().upper() == "M" or (s.strip().isdigit() and int(s.strip()) >= 1) for s in items)
    try:
        check_channels(text, "--channels")
    except ConfigError as e:
        assert not valid and "\n" not in str(e)
    else:
        assert valid and split_list(text, "--channels") == [s.strip() for s in items]


# ----------------------------------------------------------------------------------------------
# What the operating system refuses: one sentence naming the path and its reason
# ----------------------------------------------------------------------------------------------
def test_os_error_sentence():
    assert os_error_sentence(PermissionError(13, "Permission denied", "/r/report.html")) == (
        "/r/report.html: permission denied"
    )
    assert (
        os_error_sentence(OSError(18, "Invalid cross-device link", "a", None, "b"))
        == "a -> b: invalid cross-device link"
    )
    assert os_error_sentence(OSError(28, "No space left on device")) == "no space left on device"


def test_an_out_name_too_long_is_one_sentence(idx_dir, tmp_path, capsys):
    """Old code: OSError [Errno 36] traceback."""
    out = tmp_path / ("a" * 300)
    refused(capsys, ["train", "--data", idx_dir, "--epochs", "1", "--out", out], "file name too long")


@pytest.mark.parametrize("out", ["/proc/layerlab-x", "FILE/x"])
def test_inspect_out_that_cannot_be_made_is_one_sentence(out, trained_run, tmp_path, capsys):
    """Old code: FileNotFoundError / NotADirectoryError tracebacks from mkdir. (A path under /proc or
    under a regular file cannot be made by root either, where a chmod would not stop it.)"""
    blocker = tmp_path / "FILE"
    blocker.write_text("a file")
    out = out.replace("FILE", str(blocker))
    refused(capsys, ["inspect", "curves", trained_run, "--out", out], f"{out}: --out cannot be made")


def test_inspect_out_made_for_a_view_that_fails_is_removed(tmp_path, capsys):
    out = tmp_path / "new"
    refused(capsys, ["inspect", "summary", "no-such-model", "--out", out], "neither a run directory")
    assert not out.exists()


@pytest.mark.parametrize("blocked", ["report", "report.html"])
def test_report_that_cannot_be_written_is_one_sentence(blocked, trained_run, tmp_path, capsys):
    """Old code: FileExistsError / IsADirectoryError tracebacks; an unwritable run directory is the
    same sentence (the path and the system's reason), for root too."""
    run = tmp_path / "run"
    # the shared run may hold another test's report: these tests need a run without one
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("report", "report.html"))
    if blocked == "report":
        (run / "report").write_text("a file where the figures' folder goes")
    else:
        (run / "report.html").mkdir()
    refused(capsys, ["report", run], str(run / blocked))


def test_any_os_error_of_a_command_is_one_sentence(monkeypatch, capsys):
    """The read-only or immutable run directory, the full disk: whatever command meets them."""
    from layerlab.cli import catalog

    def full(args):
        raise OSError(28, "No space left on device", "/runs/r/run.json")

    monkeypatch.setattr(catalog, "cmd_models", full)
    refused(capsys, ["models"], "/runs/r/run.json: no space left on device")


# ----------------------------------------------------------------------------------------------
# Files that are not regular files: refused before they are opened (a FIFO blocks its reader)
# ----------------------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_not_read(trained_run, tmp_path):
    """Old code: `predict RUN fifo` and `train --config fifo` waited forever for a writer."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    one_sentence(cli("predict", trained_run, fifo, timeout=60), f"{fifo}: a named pipe (FIFO)")
    one_sentence(cli("train", "--config", fifo, "--out", tmp_path / "r", timeout=60), "where a config file is expected")
    one_sentence(cli("inspect", "features", trained_run, fifo, timeout=60), "a named pipe (FIFO)")
    one_sentence(cli("predict", "--onnx", fifo, fifo, timeout=60), "a named pipe (FIFO)")
    assert not (tmp_path / "r").exists()


def test_a_device_or_a_folder_is_refused_where_a_file_is_expected(trained_run, tmp_path, capsys):
    refused(capsys, ["predict", trained_run, "/dev/zero"], "/dev/zero: a character device")
    refused(capsys, ["predict", trained_run, tmp_path], f"{tmp_path}: a directory, where an input file is expected")
    refused(capsys, ["report", trained_run, "--image", tmp_path], "a directory, where an image file is expected")
    run = RunDir(trained_run)
    assert run.info()["status"] == "completed"


# ----------------------------------------------------------------------------------------------
# Sizes beyond this machine's memory: one sentence, not a traceback
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "error, says",
    [
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                "tried to allocate 40000000000000 bytes. Error code 12 (Cannot allocate memory)"
            ),
            "out of memory (40000000000000 bytes asked for at once)",
        ),
        (MemoryError(), "out of memory; a smaller --batch-size"),
    ],
)
def test_out_of_memory_is_one_sentence(error, says, monkeypatch, capsys):
    """What torch's CPU allocator raises for an absurd count or size (here a command that raises it)."""
    from layerlab.cli import catalog

    def oom(args):
        raise error

    monkeypatch.setattr(catalog, "cmd_models", oom)
    refused(capsys, ["models"], says)


def test_another_runtime_error_is_not_taken_for_memory(monkeypatch):
    from layerlab.cli import catalog

    def bug(args):
        raise RuntimeError("a bug, which keeps its traceback")

    monkeypatch.setattr(catalog, "cmd_models", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["models"])
