"""The README's Python code, run as written: each ```python block in a fresh interpreter, in an empty
working directory, so what a reader pastes into a notebook is what is tested."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
BUDGET_S = 120  # the README's block is meant to be a quick look, not the article's 10 epochs


def python_blocks(text: str) -> list[str]:
    """The code of every fenced ```python block of a Markdown text, in order."""
    return re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.S | re.M)


def test_python_blocks_are_found():
    assert python_blocks("a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n") == [
        "x = 1\n",
        "y = 2\n",
    ]
    assert python_blocks(README.read_text(encoding="utf-8")), "README.md has no ```python block"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text(encoding="utf-8")))))
def test_readme_python_block_runs_as_written(index, tmp_path):
    code = python_blocks(README.read_text(encoding="utf-8"))[index]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed layerlab, as a reader has
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BUDGET_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"README python block {index + 1} took more than {BUDGET_S}s; it should be a quick look")
    if proc.returncode != 0 and "'fashion-mnist' not found" in proc.stderr and not FASHION_MNIST.is_dir():
        pytest.skip(f"README python block {index + 1} trains on Fashion-MNIST, not installed at {FASHION_MNIST}")
    assert proc.returncode == 0, f"README python block {index + 1} failed:\n{code}\n{proc.stderr[-3000:]}"
