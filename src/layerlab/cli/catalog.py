"""What there is to train on and with: ``layerlab data list`` and ``layerlab models``."""

from __future__ import annotations

import json


def cmd_data_list(args) -> int:
    from ..data.catalog import availability, known_datasets

    rows = availability(args.data_dir)
    named = {r["name"] for r in rows}
    if args.json:
        print(json.dumps(rows))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table("name", "available", "where / how to get it", "description")
    t.columns[2].overflow = "fold"
    for r in rows:
        t.add_row(
            r["name"],
            "yes" if r["available"] else "no",
            r["path"] or f"download from {r['download']}",
            r["description"],
        )
    for name, desc in known_datasets().items():
        if name not in named:
            t.add_row(name, "yes", "generated or bundled", desc)
    Console().print(t)
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
    """Add ``data list`` and ``models`` to the ``layerlab`` sub-parsers."""
    d = sub.add_parser("data", help="datasets: what is available where", description="Dataset commands.")
    dsub = d.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    dl = dsub.add_parser(
        "list",
        help="named datasets, whether they are here and where",
        description="List the named datasets, where each was found or where it downloads from.",
    )
    dl.add_argument("--data-dir", help="directory to look in first for named datasets")
    dl.add_argument("--json", action="store_true", help="print a JSON list, one object per dataset")
    dl.set_defaults(func=cmd_data_list)

    m = sub.add_parser("models", help="registered models", description="List the registered models.")
    m.add_argument("--json", action="store_true", help="print a JSON object: name to description")
    m.set_defaults(func=cmd_models)
