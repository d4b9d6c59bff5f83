"""The reference is the fast path's independent witness: it must never import torch."""

import ast
import pathlib
import subprocess
import sys

import layerlab.reference

REFERENCE_DIR = pathlib.Path(layerlab.reference.__file__).parent


def test_importing_the_reference_does_not_import_torch():
    code = "import sys, layerlab.reference, layerlab.reference.network; sys.exit(1 if 'torch' in sys.modules else 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, "importing layerlab.reference imported torch" + (
        f": {result.stderr}" if result.stderr else " (check layerlab/__init__.py: it must import torch lazily)"
    )


def test_no_reference_module_mentions_torch_in_an_import():
    """Catches a torch import in the reference itself, even one inside a function."""
    for path in sorted(REFERENCE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "torch" for n in names), f"{path.name} imports torch"
