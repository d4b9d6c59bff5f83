"""docs/equations.md links every equation to its code and its test; keep those links true."""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "equations.md"
LINK = re.compile(r"\[`?([^\]`]+)`?\]\(([^)#\s]+)\)")

pytestmark = pytest.mark.skipif(not DOC.exists(), reason="docs/equations.md is not in this checkout")


def defined_names(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def test_every_link_in_equations_md_points_at_what_it_names():
    links = LINK.findall(DOC.read_text())
    assert len(links) > 50
    for text, target in links:
        if target.startswith("http"):
            continue
        path = (DOC.parent / target).resolve()
        assert path.exists(), f"docs/equations.md links to missing {target}"
        if path.suffix == ".py" and re.fullmatch(r"\w+", text):
            assert text in defined_names(path), f"docs/equations.md: {target} defines no {text}"
