"""``layerlab explore RUN --static out.html``: the explorer's page as one self-contained file.

The file holds the page, its script and style inline and the server's answers for a fixed set of
requests (the runs table, the run's curves, its first test inputs and their activations, filters and
the confusion matrix of a CNN run, hidden states, gates and gradients of a recurrent one); the page
reads those answers instead of asking a server, so it opens from ``file://`` with no network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import LayerlabError
from .server import Explorer

#: Test inputs the file holds the activations of.
STATIC_INPUTS = 8


def _script_json(obj) -> str:
    """JSON safe inside a <script> element: no ``</script>``, no ``<!--``, no U+2028/9 line breaks."""
    text = json.dumps(obj, allow_nan=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def build_static(run: str | Path, out: str | Path, *, inputs: int = STATIC_INPUTS) -> dict:
    """Write the static page of the run directory ``run`` to ``out``; returns what it holds."""
    run = Path(run)
    explorer = Explorer([run])
    entries = explorer.index.entries()
    if len(entries) != 1:
        raise LayerlabError(f"{run}: give one run directory for --static (found {len(entries)} runs there)")
    entry = entries[0]
    rid, fam = entry.id, explorer.index.rows()[0]["family"]
    responses: dict[str, Any] = {}

    def keep(url: str, route: str, run_id, q: dict) -> None:
        responses[url] = explorer.get(route, run_id, q)

    keep("/api/runs", "runs", None, {})
    keep(f"/api/run/{rid}/curves", "curves", rid, {})
    keep(f"/api/run/{rid}/info", "info", rid, {})
    held = 0
    if fam in ("cnn", "recurrent"):
        v = explorer.views(rid)
        held = min(inputs, v.n_test())
        keep(f"/api/run/{rid}/samples?start=0&count=40", "samples", rid, {"start": "0", "count": str(held)})
        responses[f"/api/run/{rid}/samples?start=0&count=40"]["n"] = held
        view = "cnn" if fam == "cnn" else "rnn"
        for k in range(held):
            keep(f"/api/run/{rid}/{view}?input=test%3A{k}", view, rid, {"input": f"test:{k}"})
        if fam == "recurrent":
            keep(f"/api/run/{rid}/rnn_many?count=24", "rnn_many", rid, {"count": "24"})
        if fam == "cnn":
            keep(f"/api/run/{rid}/filters", "filters", rid, {})
            try:
                keep(f"/api/run/{rid}/confusion", "confusion", rid, {})
                conf = responses[f"/api/run/{rid}/confusion"]
                shown = sorted({i for cell in conf["mistakes"].values() for i in cell[:8]})
                conf["mistakes"] = {c: [i for i in cell[:8]] for c, cell in conf["mistakes"].items()}
                if shown:
                    keep(
                        f"/api/run/{rid}/samples?indices={','.join(map(str, shown))}",
                        "samples",
                        rid,
                        {"indices": ",".join(map(str, shown))},
                    )
                    # the page asks per cell: answer each cell's request from the same samples
                    by = {
                        s["index"]: s
                        for s in responses[f"/api/run/{rid}/samples?indices={','.join(map(str, shown))}"]["samples"]
                    }
                    for cell in conf["mistakes"].values():
                        responses[f"/api/run/{rid}/samples?indices={','.join(map(str, cell))}"] = {
                            "n": held,
                            "samples": [by[i] for i in cell],
                        }
            except LayerlabError:
                pass
    files = explorer.files
    page = files["index.html"].decode()
    data = {"responses": responses, "tick": [rid]}
    page = page.replace(
        '<link rel="stylesheet" href="/static/style.css">', "<style>\n" + files["style.css"].decode() + "</style>"
    )
    script = files["app.js"].decode().replace("</script", "<\\/script")
    page = page.replace(
        '<script src="/static/app.js"></script>',
        f"<script>window.LAYERLAB_STATIC = {_script_json(data)};</script>\n<script>\n{script}</script>",
    )
    if fam in ("cnn", "recurrent"):
        page = page.replace("<body>", f'<body data-open="{rid}">', 1)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")  # whole or not at all: a reader never sees half a file
    os.replace(tmp, out)
    return {"out": str(out), "run": entry.name, "family": fam, "inputs": held, "bytes": out.stat().st_size}
