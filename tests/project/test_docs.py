"""The documentation site: a page and a worked example per command, the typed re-exports of the
package root, and the strict build (the whole site; and a broken link and a failing tutorial cell
each failing it). Building needs the docs extra (`pip install -e ".[docs]"`); those tests skip
without it."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from layerlab.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "markdown_exec")


def _load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_hooks"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()


def _missing_docs_packages() -> list[str]:
    missing = []
    for name in DOCS_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


needs_docs_extra = pytest.mark.skipif(
    bool(_missing_docs_packages()),
    reason=f"the docs extra is not installed (pip install -e '.[docs]'): missing {_missing_docs_packages()}",
)


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


# ---- a page per command --------------------------------------------------------------------------


def test_every_command_has_an_example_and_every_example_a_command():
    names = [c.name for c in hooks.commands()]
    assert len(names) == len(set(names))
    assert "train" in names and "inspect-gradflow" in names and "data-list" in names
    assert sorted(names) == sorted(hooks.EXAMPLES), "scripts/docs_hooks.py EXAMPLES must match the CLI's commands"


@pytest.mark.parametrize("name", sorted(hooks.EXAMPLES))
def test_each_example_is_a_valid_command_line(name):
    """Every worked example parses with the real parser, as the command it illustrates."""
    example, what = hooks.EXAMPLES[name]
    words = shlex.split(example)
    assert words[0] == "layerlab" and what
    args = build_parser().parse_args(words[1:])
    command = [w for w in words[1:] if not w.startswith("-")][: len(name.split("-"))]
    assert "-".join(command) == name or args.command == name


def test_command_pages_hold_usage_every_option_and_the_example():
    for cmd in hooks.commands():
        page = hooks.command_page(cmd)
        assert page.startswith(f"# `layerlab {' '.join(cmd.words)}`")
        assert "usage: layerlab " + " ".join(cmd.words) in page
        for action in cmd.parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                assert f"`{option}" in page, f"{cmd.name}: {option} missing from its page"
        assert hooks.EXAMPLES[cmd.name][0] in page


def test_a_new_option_appears_on_its_page():
    """The pages are written from the parser, so they follow it: an option added shows up."""
    parser = argparse.ArgumentParser(prog="layerlab")
    sub = parser.add_subparsers(dest="command")
    models = sub.add_parser("models", help="registered models")
    models.add_argument("--shiny", metavar="N", help="a brand new option")
    (cmd,) = hooks.commands(parser)
    page = hooks.command_page(cmd)
    assert "`--shiny N` | a brand new option" in page and "registered models" in page


def test_every_command_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [c.name for c in hooks.commands() if f"commands/{c.name}.md" not in config]
    assert not missing, f"mkdocs.yml nav lacks the command pages {missing}"


def test_links_outside_docs_are_resolved_from_the_page():
    reference = "src/layerlab/reference/rnn.py"
    assert hooks._repo_target("docs/equations.md", f"../{reference}") == reference
    assert hooks._repo_target("benchmarks/README.md", "results/adding.md#x") == "benchmarks/results/adding.md"
    assert hooks._repo_target("docs/a.md", "https://example.org/x") is None
    assert hooks._repo_target("docs/a.md", "#anchor") is None
    assert hooks._repo_target("docs/a.md", "../../outside.md") is None  # never a path out of the repository


# ---- types ------------------------------------------------------------------------------------------


def test_typed_reexports_match_the_lazy_exports():
    """``layerlab/__init__.py`` imports its public names lazily; the ``TYPE_CHECKING`` block names the
    same ones from the same modules, so type checkers and the API reference see what users get."""
    tree = ast.parse((ROOT / "src" / "layerlab" / "__init__.py").read_text(encoding="utf-8"))
    exports = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "_EXPORTS"
    )
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING")
    typed = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name}: re-export it as `{alias.name} as {alias.name}`"
            typed[alias.name] = node.module
    assert typed == exports
    assert (ROOT / "src" / "layerlab" / "py.typed").is_file()


# ---- the strict build -----------------------------------------------------------------------------


def _tiny_site(tmp_path: Path, page: str) -> Path:
    """A one-page site built with the project's own mkdocs.yml (theme, plugins, strict validation)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(page, encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: {docs}\nhooks: []\nnav:\n  - index.md\n", encoding="utf-8"
    )
    return config


GOOD_PAGE = '# Tiny\n\n```python exec="on" result="text"\nprint(6 * 7)\n```\n'


@needs_docs_extra
def test_tiny_site_builds_and_runs_its_cell(tmp_path):
    done = _mkdocs(_tiny_site(tmp_path, GOOD_PAGE), tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "42" in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")


@needs_docs_extra
def test_a_broken_link_fails_the_strict_build(tmp_path):
    done = _mkdocs(_tiny_site(tmp_path, GOOD_PAGE + "\nSee [the missing page](missing.md).\n"), tmp_path / "site")
    assert done.returncode != 0
    assert "missing.md" in done.stderr and "Aborted" in done.stdout + done.stderr


@needs_docs_extra
def test_a_failing_tutorial_cell_fails_the_strict_build(tmp_path):
    page = GOOD_PAGE + '\n```python exec="on"\nraise ValueError("this cell fails")\n```\n'
    done = _mkdocs(_tiny_site(tmp_path, page), tmp_path / "site")
    assert done.returncode != 0
    assert "code block exited with errors" in done.stderr and "this cell fails" in done.stderr
    assert "Aborted" in done.stdout + done.stderr


@pytest.mark.slow
@needs_docs_extra
def test_the_site_builds_strict(tmp_path):
    """The whole site: API reference, command pages, the tutorials executed, benchmarks; no warning."""
    site = tmp_path / "site"
    done = _mkdocs(ROOT / "mkdocs.yml", site)
    assert done.returncode == 0, done.stderr[-5000:]
    for page in ("index.html", "api/training.html", "commands/train.html", "tutorials/first-cnn.html"):
        assert (site / page).is_file(), page
    assert "layerlab.fit" in (site / "api" / "training.html").read_text(encoding="utf-8")
    tutorial = (site / "tutorials" / "first-cnn.html").read_text(encoding="utf-8")
    assert "test accuracy" in tutorial and "data:image/png;base64," in tutorial  # outputs and a figure
    assert (site / "benchmarks" / "index.html").is_file()
    assert (site / "src" / "layerlab" / "reference" / "rnn.py").is_file()  # linked from the equations page
    # the tutorials that run other processes printed what they ran: a torchrun job, a study, packed shards
    ran = {"several-machines": "world_size", "tuning": "fANOVA", "image-folder": "layerlab-pack.json"}
    for page, printed in ran.items():
        assert printed in (site / "tutorials" / f"{page}.html").read_text(encoding="utf-8"), page


def test_sphinx_roles_in_docstrings_render_as_code():
    html = ":class:<code>History</code>, :func:<code>~layerlab.training.fit</code>, :mod:<code>layerlab.deploy</code>"
    assert hooks.on_page_content(html, None, None, None) == (
        "<code>History</code>, <code>fit</code>, <code>layerlab.deploy</code>"
    )


# ---- the pages' Python, run as written (README.md's own blocks: tests/project/test_readme.py) ----------------

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
RUN_AS_WRITTEN = ["index.md", "usage.md"]  # pages whose plain ```python blocks are complete programs


def _plain_python_blocks(page: str) -> list[str]:
    """The ```python blocks a reader copies (the tutorials' ``exec`` blocks run at build time instead)."""
    import re

    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.S | re.M)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "index"), [(p, i) for p in RUN_AS_WRITTEN for i in range(len(_plain_python_blocks(p)))]
)
def test_page_python_block_runs_as_written(page, index, tmp_path):
    code = _plain_python_blocks(page)[index]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed layerlab, as a reader has
    env["PYTHONPATH"] = str(ROOT / "src")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    if proc.returncode != 0 and "'fashion-mnist' not found" in proc.stderr and not FASHION_MNIST.is_dir():
        pytest.skip(f"{page} block {index + 1} trains on Fashion-MNIST, not installed at {FASHION_MNIST}")
    assert proc.returncode == 0, f"docs/{page} python block {index + 1} failed:\n{code}\n{proc.stderr[-3000:]}"


def test_the_pages_that_run_as_written_have_python():
    assert all(_plain_python_blocks(p) for p in RUN_AS_WRITTEN)


def test_the_generator_writes_the_pages_to_a_folder(tmp_path):
    """``python scripts/docs_hooks.py OUT`` writes what the site shows, to read without building it."""
    assert hooks.main([str(tmp_path)]) == 0
    written = sorted(p.stem for p in tmp_path.glob("*.md"))
    assert written == sorted([*hooks.EXAMPLES, "index"])
    assert "`layerlab inspect gradflow`" in (tmp_path / "index.md").read_text(encoding="utf-8")
    assert hooks.main([]) == 2
