"""Two processes that find the same stale lock at the same moment: exactly one takes it.

Old code read the stale lock, removed it and created a new one with O_EXCL; the second process could
remove the first one's fresh lock in between, and both wrote the run (31 races of 60). The takeover
now happens under the lock file's flock (see :mod:`layerlab.lock`)."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform

import pytest

from layerlab.errors import LayerlabError
from layerlab.rundir import RunDir

TRIALS = 200
DEAD_PID = 99_999_999  # above any pid_max: no such process


def _contender(path: str, trials: int, ready, tried, checked, results) -> None:
    """For each trial: take the run's lock when the parent has made it stale and both contenders are
    ready, report, wait while the parent reads the lock, then let go of it (the winner releases)."""
    run = RunDir(path)
    for _ in range(trials):
        ready.wait(30)
        try:
            run.acquire_lock()
            won = 1
        except LayerlabError:
            won = 0
        except BaseException as e:
            won = repr(e)
        results.put((os.getpid(), won))
        tried.wait(30)  # the winner holds the lock while the other tries and the parent reads it
        checked.wait(30)
        if won == 1:
            run.release_lock()
    os._exit(0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_two_processes_racing_for_a_stale_lock_exactly_one_wins(tmp_path):
    ctx = multiprocessing.get_context("fork")  # the parent has layerlab imported: children start in ms
    run = tmp_path / "run"
    run.mkdir()
    ready, tried, checked, results = ctx.Barrier(3), ctx.Barrier(3), ctx.Barrier(3), ctx.SimpleQueue()
    procs = [ctx.Process(target=_contender, args=(str(run), TRIALS, ready, tried, checked, results)) for _ in "ab"]
    for p in procs:
        p.start()
    wins = []
    try:
        for trial in range(TRIALS):
            (run / "lock").write_text(json.dumps({"pid": DEAD_PID, "host": platform.node()}))
            ready.wait(30)
            outcome = [results.get() for _ in procs]
            tried.wait(30)
            assert all(w in (0, 1) for _, w in outcome), f"trial {trial}: {outcome}"
            wins.append(sum(w for _, w in outcome))
            if wins[-1] == 1:  # the lock names the winner
                assert json.loads((run / "lock").read_text())["pid"] == next(p for p, w in outcome if w), trial
            checked.wait(30)
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert wins == [1] * TRIALS, f"{wins.count(2)} of {TRIALS} trials had two winners, {wins.count(0)} none"


def test_a_live_holder_keeps_its_lock_and_a_released_lock_is_free(tmp_path):
    """The flock is held for the holder's lifetime: a second RunDir in another process is refused
    while it lives, and takes the lock once it has released it."""
    ctx = multiprocessing.get_context("fork")
    run = RunDir(tmp_path)
    run.acquire_lock()
    try:
        holder = json.loads(run.lock_path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == platform.node()
        q = ctx.SimpleQueue()

        def try_lock():
            try:
                RunDir(tmp_path).acquire_lock()
                q.put("won")
            except LayerlabError as e:
                q.put(str(e))
            os._exit(0)

        p = ctx.Process(target=try_lock)
        p.start()
        msg = q.get()
        p.join(30)
        assert f"is locked by process {os.getpid()}" in msg
    finally:
        run.release_lock()
    assert not run.lock_path.exists()
    run.acquire_lock()  # free again
    run.release_lock()
