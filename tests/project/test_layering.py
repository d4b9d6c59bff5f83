"""The package's layering, as the design draws it: no circle among layerlab's imports, and the
import-linter contracts of ``pyproject.toml`` (reference imports no torch; models import neither data
nor engine; nothing imports cli; inspect imports neither api nor cli), which ``scripts/test.sh`` also
runs as ``lint-imports``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import deque
from itertools import pairwise
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]


def import_edges(graph) -> dict[str, set[str]]:
    """Each layerlab module -> the layerlab modules it imports, at the top of the file or inside a
    function (grimp reads every import statement, wherever it is)."""
    return without_own_submodules({m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules})


def without_own_submodules(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """``edges`` less a package's imports of its own submodules: importing ``a.b`` always runs ``a``'s
    ``__init__`` first, so a package that gathers (or lazily loads) its submodules, as the model
    registry does, would otherwise be a circle by construction. Two siblings importing each other,
    or a submodule importing a module that imports it back, stay circles."""
    return {m: {t for t in targets if not t.startswith(m + ".")} for m, targets in edges.items()}


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that reach each other through imports (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    group.append(m)
                    if m == node:
                        break
                if len(group) > 1 or node in edges[node]:
                    groups.append(sorted(group))
    return groups


def shortest_circle(edges: dict[str, set[str]], group: list[str]) -> list[str]:
    """The shortest circle through the first module of ``group``: [m, ..., m]."""
    start, members = group[0], set(group)
    previous = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(edges[node] & members):
            if child == start:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"no circle through {start}")


def describe(graph, circle: list[str]) -> str:
    lines = [circle[0]]
    for importer, imported in pairwise(circle):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = "; ".join(f"l.{d['line_number']}: {d['line_contents']}" for d in details[:2])
        lines.append(f"  -> {imported}    ({importer} {where})")
    return "\n".join(lines)


def test_the_helpers_find_a_circle_and_ignore_a_package_gathering_its_submodules():
    edges = without_own_submodules({"p": {"p.a", "p.b"}, "p.a": {"p"}, "p.b": {"p.c"}, "p.c": {"p.b"}, "q": {"p"}})
    assert strongly_connected(edges) == [["p.b", "p.c"]]
    assert shortest_circle(edges, ["p.b", "p.c"]) == ["p.b", "p.c", "p.b"]
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert shortest_circle({"a": {"b", "c"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c"]) == ["a", "c", "a"]


def test_no_module_of_layerlab_imports_itself_back():
    graph = grimp.build_graph("layerlab", cache_dir=None)
    assert "layerlab.reference" in graph.modules and "layerlab.models" in graph.modules
    edges = import_edges(graph)
    circles = [shortest_circle(edges, g) for g in strongly_connected(edges)]
    assert not circles, "imports that form a circle (each line: the import that leads on):\n\n" + "\n\n".join(
        describe(graph, c) for c in circles
    )


def test_the_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None, "lint-imports is not installed: pip install -e '.[test]' (import-linter)"
    proc = subprocess.run([exe, "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout and "reference imports no torch" in proc.stdout
