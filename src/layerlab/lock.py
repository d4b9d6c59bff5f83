"""The run's lock: one writer at a time, with an atomic takeover of a stale lock (torch-free).

``RUN/lock`` holds the JSON ``{"pid", "host", "since"}`` of the process writing the run, which the
messages of a second writer name. The file is also held with ``flock`` for as long as the writer
lives: the kernel releases it when the process ends however it ends, and only the process that
holds it decides whether the lock is stale and rewrites it, so two processes that find the same
stale lock at the same moment cannot both take it (reading the file, removing it and creating it
again left a window where the second removed the first's fresh lock).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - a system without flock (Windows): the pid check alone
    fcntl = None  # type: ignore[assignment]

from .errors import RunError

log = logging.getLogger(__name__)

#: The open lock file of every run directory this process holds, by absolute path, with the pid that
#: opened it (a forked child inherits the table and shares the open file, flock included, until it
#: calls :func:`close_inherited`): the flock lives as long as the file stays open, so it is kept here
#: until the lock is released.
_HELD: dict[str, tuple[int, int]] = {}


def _held(lock_path: Path) -> int | None:
    """The open lock file of ``lock_path`` if this process holds it."""
    entry = _HELD.get(_key(lock_path))
    return entry[1] if entry and entry[0] == os.getpid() else None


def _key(path: Path) -> str:
    return str(Path(os.path.abspath(path)))


def read_holder(lock_path: Path) -> dict | None:
    """``{"pid", "host"}`` a lock file names, None without a lock file, and ``{"pid": None, "host": None}``
    for a file that names no process (empty, torn, hand-edited: ``[1, 2, 3]``, a pid ``"abc"``)."""
    try:
        raw = Path(lock_path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return {"pid": None, "host": None}
    try:
        holder = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return {"pid": None, "host": None}
    if not isinstance(holder, dict):
        return {"pid": None, "host": None}
    pid, host = holder.get("pid"), holder.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31 or not isinstance(host, str):
        return {"pid": None, "host": None}
    return {**holder, "pid": pid, "host": host}


def process_alive(holder: dict) -> bool:
    """Whether the process a lock names may still be running: on this host, whether it exists; a
    process of another host is taken to be alive (it cannot be checked from here)."""
    if holder.get("pid") is None:
        return False
    if holder.get("host") != platform.node():
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    except OSError:
        return False
    return True


def _flock(fd: int) -> bool:
    """Take the lock on ``fd`` without waiting; False when another open file holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a filesystem without flock: the pid check alone, as before
        return True
    return True


def _describe(holder: dict | None) -> str:
    if not holder or holder.get("pid") is None:
        return "a process that left no readable pid"
    return f"process {holder['pid']} on {holder['host']}"


def acquire(run_path: Path) -> None:
    """Take ``RUN/lock`` for this process, or raise a LayerlabError naming the process that holds it.

    A lock whose process is dead on this host (or whose file names no process) is taken over with a
    warning. The decision is made while holding the file's flock, so of several processes racing
    for one stale lock exactly one takes it; the others are told the run is locked."""
    run_path = Path(run_path)
    lock_path = run_path / "lock"
    if _held(lock_path) is not None:
        raise RunError(f"{run_path} is already locked by this process")
    for _ in range(20):  # only a lock file replaced between our open and our flock loops
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunError(f"{lock_path}: cannot create the run's lock ({e.strerror or e})") from None
        try:
            if not _flock(fd):
                holder = read_holder(lock_path)
                if holder and process_alive(holder):
                    raise RunError(_locked_message(run_path, holder))
                raise RunError(f"{run_path}: another process is taking over its lock at this moment; try again")
            try:  # the file we hold must still be the one at the path (a writer ending removes it)
                same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            holder = read_holder(lock_path)
            if holder is not None and os.fstat(fd).st_size > 0:
                if process_alive(holder):  # a writer that does not flock (an older layerlab): its pid decides
                    raise RunError(_locked_message(run_path, holder))
                log.warning("%s: taking over the lock of %s, which is no longer running", run_path, _describe(holder))
            record = json.dumps({"pid": os.getpid(), "host": platform.node(), "since": _now()}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        _HELD[_key(lock_path)] = (os.getpid(), fd)
        return
    raise RunError(f"{run_path}: its lock keeps being replaced by another process; try again")


def _locked_message(run_path: Path, holder: dict) -> str:
    return (
        f"{run_path} is locked by process {holder.get('pid')} on {holder.get('host')}, which is still writing "
        f"it; wait for it to end (or remove {run_path / 'lock'} if that process is gone)"
    )


def close_inherited() -> None:
    """In a forked child (a data-loading worker): close the lock files inherited from the parent.
    A child shares the parent's open file, and with it the flock, which would otherwise outlive a
    killed parent for as long as the child runs, and refuse the resume that follows."""
    for key, (pid, fd) in list(_HELD.items()):
        if pid != os.getpid():
            del _HELD[key]
            try:
                os.close(fd)
            except OSError:
                pass


def holds(run_path: Path) -> bool:
    """Whether this process holds the run's lock."""
    return _held(Path(run_path) / "lock") is not None


def release(run_path: Path) -> None:
    """Remove the run's lock if this process holds it (the file first, then its flock)."""
    lock_path = Path(run_path) / "lock"
    fd = _held(lock_path)
    if fd is None:
        holder = read_holder(lock_path)  # a lock this process wrote without keeping the file open
        if holder and holder.get("pid") == os.getpid() and holder.get("host") == platform.node():
            lock_path.unlink(missing_ok=True)
        return
    del _HELD[_key(lock_path)]
    try:
        if os.path.samestat(os.fstat(fd), os.stat(lock_path)):
            lock_path.unlink()
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
