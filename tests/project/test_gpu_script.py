"""benchmarks/gpu.sh and gpu_bench.py, on the CPU: the tomli-w stand-in the script writes for a bare
GPU image, and a dry run of one case end to end (the script, its command and its report)."""

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from datagen import make_idx_dir
from layerlab import presets
from layerlab.config import RunConfig

ROOT = Path(__file__).resolve().parents[2]
GPU_SH = ROOT / "benchmarks" / "gpu.sh"


def stand_in(tmp_path: Path):
    text = GPU_SH.read_text()
    start = text.index("<<'PYEOF'\n", text.index('cat > "$SHIM/tomli_w.py"')) + len("<<'PYEOF'\n")
    path = tmp_path / "tomli_w_stand_in.py"
    path.write_text(text[start : text.index("\nPYEOF\n", start)] + "\n")
    spec = importlib.util.spec_from_file_location("tomli_w_stand_in", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(presets.list_presets()))
def test_the_tomli_w_stand_in_writes_what_tomli_w_writes(tmp_path, name):
    d = RunConfig.from_toml(presets.resolve(name)).to_dict()
    assert tomllib.loads(stand_in(tmp_path).dumps(d)) == tomllib.loads(tomli_w.dumps(d))


@pytest.mark.slow
def test_a_dry_run_writes_the_report(tmp_path):
    data = make_idx_dir(tmp_path / "data", n_train=2000, n_test=200)
    out = tmp_path / "gpu.md"
    cmd = ["bash", str(GPU_SH), "--dry-run", "--data-dir", str(data), "--only", "CNN recipe, batch 32, eager"]
    p = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, env={"PYTHON": sys.executable,
                       "PATH": "/usr/bin:/bin"}, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert "CPU dry run (numbers mean nothing)" in text
    row = next(line for line in text.splitlines() if line.startswith("| CNN recipe, batch 32, eager |"))
    assert "recipe <= 1 s/epoch" in row and "failed" not in row
