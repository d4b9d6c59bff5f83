"""What the CLI says: a Ctrl-C or SIGTERM message names the real run directory and the command that
continues it (restarting from the seed when no checkpoint was written); ``data list`` prints paths
and URLs whole; ``compare-cells`` warms up before it times any cell."""

from __future__ import annotations

import io
import shlex
import signal
import subprocess
import sys

import pytest
from rich.console import Console

from layerlab import experiments
from layerlab.cli.catalog import render_data_table
from test_crash import FLAGS, _env, _wait_for_pause


def _stop(args: list[str], point: str, sig: int, cwd=None) -> tuple[int, str]:
    """Run ``layerlab ARGS`` until it pauses at ``point``, send it ``sig``; its exit code and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "layerlab", *args, "--quiet"],
        env=_env(point),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_pause(proc, point)
    proc.send_signal(sig)
    err = proc.stderr.read()
    return proc.wait(30), err


@pytest.mark.slow
def test_ctrl_c_before_a_checkpoint_names_the_run_and_restarts_it(tmp_path, idx_dir):
    """Old message: ``resume with `layerlab train --resume RUN_DIR``` (a placeholder), and nothing
    said that a run with no checkpoint is started again from its seed."""
    run = tmp_path / "run dir"  # a space: the command printed must still be one that works
    code, err = _stop(["train", "--data", str(idx_dir), "--out", str(run), *FLAGS], "step:1", signal.SIGINT)
    command = f"layerlab train --resume {shlex.quote(str(run))}"
    assert code == 130
    assert err.strip().endswith(
        f"interrupted; no checkpoint was written in {run}; `{command}` starts it again from its seed"
    )
    resumed = subprocess.run(
        [sys.executable, "-m", *shlex.split(command), "--quiet"], capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_sigterm_after_a_checkpoint_names_the_default_run_directory(tmp_path, idx_dir):
    """Without --out the run goes under runs/ in the working directory: the message names that path."""
    code, err = _stop(["train", "--data", str(idx_dir), *FLAGS], "after-epoch:1", signal.SIGTERM, cwd=tmp_path)
    (run,) = (tmp_path / "runs").iterdir()
    rel = run.relative_to(tmp_path)
    assert code == 143
    assert (
        f"terminated (SIGTERM); the checkpoint of epoch 1 is kept in {rel}; resume with `layerlab train --resume {rel}`"
        in err
    )


def test_data_table_prints_urls_whole():
    """Old table: rich folded the URL column at 80 columns (``https://ossci-datas`` / ``ets.s3...``)."""
    url = "download from https://ossci-datasets.s3.amazonaws.com/mnist/"
    rows = [("mnist", "no", "MNIST handwritten digits, 28x28 grey, 10 classes", url)]
    rows += [("PickupGestureWiimoteZ", "yes", "UCR/UEA time-series classification " * 2, "generated or bundled")]
    for width, terminal in ((80, True), (200, True), (80, False)):
        buf = io.StringIO()
        render_data_table(rows, Console(file=buf, width=width, force_terminal=terminal, color_system=None))
        text = buf.getvalue()
        assert url in text, (width, terminal, text)
        assert ("┃" in text) == (width == 200), text  # a table only where the URL fits in one


def test_compare_cells_warms_up_before_timing_any_cell(tmp_path, monkeypatch):
    """Old code: the first cell's seconds included the process's one-time costs (thread pools, kernel
    choice, allocator growth). Now every cell trains once on one batch, untimed, before any is timed."""
    calls = []
    real_fit = experiments.fit

    def recording_fit(model, ds, cfg, **kw):
        calls.append((type(model).__name__, len(ds.train)))
        return real_fit(model, ds, cfg, **kw)

    monkeypatch.setattr(experiments, "fit", recording_fit)
    out = experiments.compare_cells(
        "adding",
        6,
        ["rnn", "gru"],
        hidden=4,
        epochs=1,
        n_train=64,
        n_test=16,
        batch_size=16,
        samples=4,
        out=tmp_path / "cc",
    )
    assert [n for _, n in calls] == [16, 16, 64, 64]  # two warm-ups of one batch, then the two timed fits
    assert out["warmup_seconds"] > 0
    assert all(r["seconds"] > 0 for r in out["results"])
