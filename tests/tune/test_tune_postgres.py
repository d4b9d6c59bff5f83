"""``layerlab tune`` against a real PostgreSQL server: two workers of one study, as on two machines.

The test starts a throwaway server from Debian's ``postgresql`` package (initdb and pg_ctl from
/usr/lib/postgresql/*/bin; the test command installs it through scripts/apt-install.sh) on a Unix
socket in a fresh folder, and stops it afterwards. PostgreSQL refuses to run as root: as root the
server runs as the ``postgres`` user. Skipped, saying why, where the package or the driver
(psycopg2, in the test extra) is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="layerlab tune needs the tune extra (optuna)")
pytest.importorskip("psycopg2", reason="the PostgreSQL driver psycopg2 (psycopg2-binary, in the test extra) is missing")

from layerlab import tuning  # noqa: E402
from test_tune import SPACE, _check_rundirs, write_base  # noqa: E402


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or (
        [shutil.which(name)] if shutil.which(name) else []
    )
    return found[-1] if found else None


@pytest.fixture
def postgres():
    """A database URL of a PostgreSQL server that lives as long as the test."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (Debian's postgresql package: initdb and pg_ctl)")
    root = Path(tempfile.mkdtemp(prefix="layerlab-pg-"))
    as_user: list[str] = []
    user = None
    if os.geteuid() == 0:  # the server will not run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        user = "postgres"
        try:
            shutil.chown(root, user)
        except (LookupError, PermissionError) as e:
            pytest.skip(f"running as root and no postgres user to run the server as ({e})")
        as_user = ["runuser", "-u", user, "--"]
    data, sock = root / "data", root
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-w", "-l", str(root / "log"), "start", "-o",
             f"-k {sock} -c listen_addresses='' -p 5433 -c fsync=off"],
            check=True,
            capture_output=True,
            timeout=120,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(root, ignore_errors=True)
        err = getattr(e, "stderr", b"") or b""
        pytest.skip(f"could not start PostgreSQL ({err.decode(errors='replace').strip()[:200] or e})")
    try:
        yield f"postgresql+psycopg2://postgres@/postgres?host={sock}&port=5433"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_one_study_on_postgresql(postgres, tmp_path):
    base = write_base(tmp_path)
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    args = ["--config", str(base), "--space", str(space), "--trials", "4", "--storage", postgres, "--study", "pg"]
    args += ["--prune", "none", "--quiet"]
    env = {**os.environ}
    env.pop("LAYERLAB_TEST_PAUSE_AT", None)
    # two separate commands, each its own out folder, as on two machines
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "layerlab", "tune", *args, "--out", str(tmp_path / f"machine{i}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="pg", storage=tuning.open_storage(postgres))
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(4))
    assert all(t.state.name == "COMPLETE" for t in trials)
    _check_rundirs(trials, "pg")
    machines = {Path(t.user_attrs["run_dir"]).parent.name for t in trials}
    assert machines == {"machine0", "machine1"}  # both took trials
    shown = tuning.show("pg", storage=postgres)
    assert shown.counts == {"COMPLETE": 4} and "postgres" in shown.storage


def test_an_unreachable_database_is_one_sentence_without_its_password(tmp_path):
    base = write_base(tmp_path)
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    url = "postgresql+psycopg2://user:s3cret@127.0.0.1:1/db"  # nothing listens on port 1
    p = subprocess.run(
        [sys.executable, "-m", "layerlab", "tune", "--config", str(base), "--space", str(space), "--trials", "1",
         "--storage", url, "--out", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "cannot open the study storage" in p.stderr and "127.0.0.1:1" in p.stderr
    assert "s3cret" not in p.stderr
