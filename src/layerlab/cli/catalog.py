"""What there is to train on and with: ``layerlab data list``, ``layerlab models`` and ``layerlab presets``."""

from __future__ import annotations

import json

from .options import Text


def cmd_data_list(args) -> int:
    from ..data.catalog import availability, known_datasets

    rows = availability(args.data_dir)
    if args.json:
        print(json.dumps(rows))
        return 0
    named = {r["name"] for r in rows}
    table = [(r["name"], "yes" if r["available"] else "no", r["description"], _where(r)) for r in rows]
    table += [
        (name, "yes", desc, "generated or bundled") for name, desc in known_datasets().items() if name not in named
    ]
    from rich.console import Console

    render_data_table(table, Console())
    return 0


def _where(row: dict) -> str:
    return row["path"] or f"download from {row['download']}"


def render_data_table(rows: list[tuple[str, str, str, str]], console) -> None:
    """``data list``'s rows (name, here, description, where) on ``console``. Paths and URLs are
    printed whole, never folded, since they are what one copies: as a table's last column on a
    terminal wide enough for them, else (a narrow terminal, a pipe, a file) as a listing with the
    location on its own line, in plain text that no one wraps."""
    name_w = max(len(r[0]) for r in rows)
    where_w = max(len(r[3]) for r in rows)
    # name, here and where whole, 30 columns for the description, 13 for borders and padding
    if console.is_terminal and console.width >= name_w + 4 + where_w + 30 + 13:
        from rich.table import Table

        t = Table("name", "here", "description", "where / how to get it")
        t.columns[0].no_wrap = True
        t.columns[3].no_wrap = True
        t.columns[3].min_width = where_w
        for r in rows:
            t.add_row(*r)
        console.print(t)
        return
    indent = " " * (name_w + 2 + 5)  # under the description
    lines = [f"{'name':<{name_w}}  here description / where"]
    for name, here, desc, where in rows:
        lines += [f"{name:<{name_w}}  {here:<4} {desc}", f"{indent}{where}"]
    print("\n".join(lines), file=console.file)


def cmd_presets(args) -> int:
    from ..presets import list_presets

    presets = list_presets()
    if args.json:
        print(json.dumps(presets))
        return 0
    width = max(map(len, presets))
    for name, desc in presets.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def cmd_models(args) -> int:
    from ..models import list_models

    models = list_models()
    if args.json:
        print(json.dumps(models))
        return 0
    width = max(map(len, models))
    for name, desc in models.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def register(sub) -> None:
    """Add ``data list``, ``models`` and ``presets`` to the ``layerlab`` sub-parsers."""
    d = sub.add_parser("data", help="datasets: what is available where", description="Dataset commands.")
    dsub = d.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    dl = dsub.add_parser(
        "list",
        help="named datasets, whether they are here and where",
        description="List the named datasets, where each was found or where it downloads from.",
    )
    dl.add_argument("--data-dir", action=Text, help="directory to look in first for named datasets")
    dl.add_argument("--json", action="store_true", help="print a JSON list, one object per dataset")
    dl.set_defaults(func=cmd_data_list)
    from .pack import register_pack

    register_pack(dsub)

    m = sub.add_parser("models", help="registered models", description="List the registered models.")
    m.add_argument("--json", action="store_true", help="print a JSON object: name to description")
    m.set_defaults(func=cmd_models)

    pr = sub.add_parser(
        "presets",
        help="the packaged training presets (train --config NAME)",
        description="List the TOML presets that ship with layerlab, one line each; "
        "train one with `layerlab train --config NAME` (flags override it).",
    )
    pr.add_argument("--json", action="store_true", help="print a JSON object: name to description")
    pr.set_defaults(func=cmd_presets)
