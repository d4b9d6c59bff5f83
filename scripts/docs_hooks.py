"""MkDocs hooks for layerlab's site (``mkdocs.yml`` names this file under ``hooks``).

Two jobs, both done while the site is built so nothing generated is kept in the repository:

- **a page per command**, written from ``layerlab.cli``'s argparse parser (usage, every option and
  its help) plus one worked example from :data:`EXAMPLES`, so the pages cannot drift from the CLI;
- **pages and files outside ``docs/``**: ``benchmarks/README.md`` is a site page, and a link from a
  page to a file of the repository outside ``docs/`` (a reference module, a test, a benchmark
  result) brings that file into the site at its repository path, with the link rewritten to it.
  A link to a file that does not exist is left as written, so ``mkdocs build --strict`` fails on it.

``python scripts/docs_hooks.py OUT_DIR`` writes the command pages to a folder, to read them without
building the site.
"""

from __future__ import annotations

import argparse
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Pages of the repository outside docs/ that are part of the site, by their repository path.
EXTRA_PAGES = ["benchmarks/README.md"]

# One worked example per command, by its words joined with "-" (the page's name): a command and what
# it shows. tests/project/test_docs.py checks that every command of the parser has one and no other is here.
EXAMPLES: dict[str, tuple[str, str]] = {
    "train": (
        "layerlab train --model article-cnn --data fashion-mnist --epochs 2 --out runs/cnn",
        "Trains the article's CNN for two epochs and keeps the run directory `runs/cnn` (config, metrics per "
        "epoch, checkpoints); `layerlab train --resume runs/cnn --epochs 4` continues it exactly.",
    ),
    "evaluate": (
        "layerlab evaluate runs/cnn --json",
        "Test-set loss, accuracy and per-class accuracy of the run's final weights, as one JSON object.",
    ),
    "predict": (
        "layerlab predict runs/cnn shoe.png bag.png --top-k 3",
        "The three likeliest classes of each image, read through the run's input spec.",
    ),
    "generate": (
        "layerlab generate runs/char-lstm --prompt 'The ' --length 200 --temperature 0.8",
        "Samples 200 characters from a character-level language model run, after the prompt.",
    ),
    "data-list": (
        "layerlab data list",
        "The named datasets, where each is looked for and whether it is there.",
    ),
    "data-pack": (
        "layerlab data pack photos/ photos-packed/ --image-size 64,64",
        "An image folder written as memory-mapped uint8 shards; `layerlab train --data photos-packed/` trains on it.",
    ),
    "models": (
        "layerlab models",
        "The registered models (the built-in ones and any a plugin registered) and their options.",
    ),
    "presets": (
        "layerlab presets",
        "The training presets that ship inside the package, for `layerlab train --config NAME`.",
    ),
    "inspect-gradflow": (
        "layerlab inspect gradflow runs/cnn --out runs/cnn/inspect",
        "The gradient norm of every layer on a batch: where gradients vanish or explode.",
    ),
    "inspect-filters": (
        "layerlab inspect filters runs/cnn",
        "The first convolution layer's learned filters, as an image.",
    ),
    "inspect-features": (
        "layerlab inspect features runs/cnn shoe.png",
        "The output of every convolution and pool layer for one image (without a file: the first test sample).",
    ),
    "inspect-summary": (
        "layerlab inspect summary runs/cnn",
        "Every layer with its output shape and parameter count.",
    ),
    "inspect-curves": (
        "layerlab inspect curves runs/cnn",
        "The training and held-out loss and accuracy per epoch, as a figure and its CSV.",
    ),
    "inspect-errors": (
        "layerlab inspect errors runs/cnn",
        "The test samples the model gets wrong, with the confusion matrix.",
    ),
    "compare-cells": (
        "layerlab compare-cells --task adding --length 100 --epochs 2",
        "Trains the plain RNN, LSTM, GRU and residual RNN briefly on the adding problem with 100 steps and "
        "overlays their gradient flow through time.",
    ),
    "report": (
        "layerlab report runs/cnn",
        "One self-contained HTML page of the run (curves, errors, filters, gradient flow) at `runs/cnn/report.html`.",
    ),
    "export": (
        "layerlab export runs/cnn --out cnn.onnx",
        "Writes the run's model as ONNX with its input spec in the metadata, checked against PyTorch with "
        "onnxruntime; `layerlab predict --onnx cnn.onnx shoe.png` then predicts without torch.",
    ),
    "claims": (
        "layerlab claims --quick",
        "Measures each claim of the article on a small budget and writes the claims page.",
    ),
    "explore": (
        "layerlab explore runs/",
        "Serves a local web app on 127.0.0.1 over every run under `runs/`: the runs table and curves, feature "
        "maps with the multiply-add behind a value, hidden states, gates and dL/dh_t.",
    ),
    "tune": (
        "layerlab tune --config article_cnn_fast --validation 0.1 --space benchmarks/spaces/article_cnn_fast.toml "
        "--trials 40 --metric val_accuracy --prune median --workers 2",
        "Searches the fast CNN preset's space with Optuna on two worker processes, pruning trials below the "
        "median; each trial is a run directory under `runs/tune/article_cnn_fast/`.",
    ),
    "lr-find": (
        "layerlab lr-find --model article-cnn --data fashion-mnist --num-iter 100 --out runs/lr",
        "Runs the learning-rate range test on the article's CNN (the rate growing from 1e-7 to 10 over 100 "
        "steps), writes `runs/lr/lr_find.png` and `runs/lr/lr_find.csv`, and prints the suggested rate.",
    ),
}


@dataclass
class Command:
    """One runnable command of the CLI: its words (``["inspect", "gradflow"]``) and its parser."""

    words: list[str]
    parser: argparse.ArgumentParser
    help: str

    @property
    def name(self) -> str:
        return "-".join(self.words)


def commands(parser: argparse.ArgumentParser | None = None) -> list[Command]:
    """Every command that runs something (a leaf of the sub-command tree), in the parser's order."""
    if parser is None:
        from layerlab.cli import build_parser

        parser = build_parser()
    found: list[Command] = []

    def walk(p: argparse.ArgumentParser, words: list[str]) -> None:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found.append(Command(words, p, helps.get(tuple(words), "")))
            return
        for action in subs:
            for choice in action._choices_actions:
                helps[(*words, choice.dest)] = choice.help or ""
            for name, sub in action.choices.items():
                walk(sub, [*words, name])

    helps: dict[tuple[str, ...], str] = {}
    walk(parser, [])
    return found


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _option_rows(p: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """(how the argument is written, what it does) for every argument, as ``--help`` shows them."""
    formatter = p._get_formatter()
    rows = []
    for a in p._actions:
        if isinstance(a, argparse._HelpAction) or a.help == argparse.SUPPRESS:
            continue
        invocation = formatter._format_action_invocation(a)  # "--weights {auto,best}", "-o, --out FILE"
        names = ", ".join(f"`{part}`" for part in invocation.split(", "))
        text = formatter._expand_help(a) if a.help else ""  # argparse's %(default)s substitutions
        if a.option_strings and a.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += f" (default: `{a.default}`)"
        rows.append((names, _escape(" ".join(text.split()))))
    return rows


def command_page(cmd: Command) -> str:
    """The Markdown page of one command: what it does, its usage as ``--help`` prints it, a table of
    its arguments and options, and its worked example."""
    title = "layerlab " + " ".join(cmd.words)
    formatter = cmd.parser._get_formatter()
    formatter._width = 100  # type: ignore[attr-defined]
    formatter.add_usage(cmd.parser.usage, cmd.parser._actions, cmd.parser._mutually_exclusive_groups)
    usage = formatter.format_help().strip()
    lines = [f"# `{title}`", ""]
    about = cmd.parser.description or cmd.help
    if about:
        lines += [about[0].upper() + about[1:] + ("" if about.endswith(".") else "."), ""]
    lines += ["## Usage", "", "```text", usage, "```", ""]
    rows = _option_rows(cmd.parser)
    if rows:
        lines += ["## Arguments and options", "", "| argument | what it does |", "| --- | --- |"]
        lines += [f"| {n} | {h} |" for n, h in rows]
        lines.append("")
    if cmd.parser.epilog:
        lines += [cmd.parser.epilog, ""]
    example, what = EXAMPLES[cmd.name]
    lines += ["## Example", "", "```bash", example, "```", "", what, ""]
    lines += ["Errors: bad input prints one sentence on stderr and exits with code 2.", ""]
    return "\n".join(lines)


def commands_index(cmds: list[Command]) -> str:
    lines = [
        "# Commands",
        "",
        "After `bash scripts/setup.sh` the command line is `.venv/bin/layerlab` (or `python -m layerlab`); "
        "`layerlab COMMAND --help` prints what each page below says. Each page is written from the command's "
        "own argument parser when this site is built.",
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    lines += [f"| [`layerlab {' '.join(c.words)}`]({c.name}.md) | {_escape(c.help)} |" for c in cmds]
    return "\n".join(lines) + "\n"


# ---- MkDocs events -----------------------------------------------------------------------------

_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def _repo_target(page_repo_path: str, href: str) -> str | None:
    """The repository path a relative link of a page points to, or None (absolute, an anchor, outside)."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", href) or href.startswith(("#", "/")):
        return None
    path = href.split("#", 1)[0]
    if not path:
        return None
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page_repo_path), path))
    if target.startswith(".."):
        return None
    return target


def _docs_dir(config) -> str:
    """The docs folder's path relative to the repository root, as the links of its pages see it."""
    return Path(posixpath.relpath(Path(config["docs_dir"]).resolve().as_posix(), ROOT.as_posix())).as_posix()


def _repo_path(file, docs_dir: str) -> str:
    """A site file's path in the repository: docs/<src_uri>, or its own path for a file brought in."""
    return file.src_uri if file.src_uri in _brought else f"{docs_dir}/{file.src_uri}"


_brought: dict[str, str] = {}  # repository path outside docs/ -> its path in the site (the same; a folder: its index)


def on_files(files, config):
    from mkdocs.structure.files import File

    _brought.clear()  # `mkdocs serve` builds again in the same process
    docs_dir = _docs_dir(config)
    for cmd in (cmds := commands()):
        files.append(File.generated(config, f"commands/{cmd.name}.md", content=command_page(cmd)))
    files.append(File.generated(config, "commands/index.md", content=commands_index(cmds)))

    def bring(repo_path: str) -> None:
        if repo_path in _brought or repo_path.startswith(docs_dir + "/"):
            return
        source = ROOT / repo_path
        if source.is_dir():  # a folder: a generated page listing its files, each brought too
            names = sorted(p.name for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
            index = posixpath.join(repo_path, "index.md")
            _brought[repo_path] = index
            _brought[index] = index
            listing = [f"# `{repo_path}/`", ""] + [f"- [{n}]({n})" for n in names]
            files.append(File.generated(config, index, content="\n".join(listing) + "\n"))
            for n in names:
                bring(posixpath.join(repo_path, n))
            return
        if not source.is_file():
            return  # left to MkDocs's link check, which fails the strict build
        _brought[repo_path] = repo_path
        files.append(File.generated(config, repo_path, abs_src_path=str(source)))
        if repo_path.endswith(".md"):
            scan(repo_path, source.read_text(encoding="utf-8"))

    def scan(repo_path: str, text: str) -> None:
        for _, href, _ in _LINK.findall(text):
            target = _repo_target(repo_path, href)
            if target is not None and not target.startswith(docs_dir + "/"):
                bring(target)

    for page in EXTRA_PAGES:
        bring(page)
    for f in list(files):
        if f.src_uri.endswith(".md") and f.abs_src_path:
            scan(f"{docs_dir}/{f.src_uri}", Path(f.abs_src_path).read_text(encoding="utf-8"))
    return files


def on_page_markdown(markdown, page, config, files):
    """Links to repository files outside docs/ point at their copies in the site."""
    docs_dir = _docs_dir(config)
    here = _repo_path(page.file, docs_dir)
    site_dir_of_page = posixpath.dirname(page.file.src_uri)

    def fix(m: re.Match) -> str:
        href = m.group(2)
        target = _repo_target(here, href)
        if target is None:
            return m.group(0)
        anchor = "#" + href.split("#", 1)[1] if "#" in href else ""
        if target.startswith(docs_dir + "/"):
            site_path = target[len(docs_dir) + 1 :]
        elif target in _brought:
            site_path = _brought[target]
        else:
            return m.group(0)
        rel = posixpath.relpath(site_path, site_dir_of_page or ".")
        return f"{m.group(1)}{rel}{anchor}{m.group(3)}"

    return _LINK.sub(fix, markdown)


_ROLE_FULL = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):(<code>[\w.]+</code>)")


def on_page_content(html, page, config, files):
    """The docstrings' Sphinx roles (``:func:`fit```) as plain code: ``~a.b.c`` shows ``c``, as Sphinx does."""
    html = re.sub(
        r":(?:class|func|meth|mod|data|attr|exc|obj):<code>~(?:[\w.]+\.)?(\w+)</code>", r"<code>\1</code>", html
    )
    return _ROLE_FULL.sub(r"\1", html)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/docs_hooks.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    cmds = commands()
    for cmd in cmds:
        (out / f"{cmd.name}.md").write_text(command_page(cmd), encoding="utf-8")
    (out / "index.md").write_text(commands_index(cmds), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
