"""``layerlab explore [RUN_OR_FOLDER ...]``: a local web app over the runs under the folders given
(see :mod:`layerlab.explore`), or with ``--static FILE`` one run as a self-contained HTML file."""

from __future__ import annotations

from ..errors import LayerlabError
from .options import Number


def cmd_explore(args) -> int:
    from ..explore.server import is_local, make_server

    folders = args.runs or ["runs"]
    if args.static:
        from ..explore.static_page import build_static

        if len(folders) != 1:
            raise LayerlabError("--static writes one run: give one run directory")
        r = build_static(folders[0], args.static)
        print(f"wrote {r['out']} ({r['bytes'] / 1e6:.1f} MB: {r['run']}, its curves and {r['inputs']} test inputs)")
        return 0
    server = make_server(folders, args.host, args.port, allow_remote=args.allow_remote)
    host, port = server.server_address[:2]
    n = len(server.explorer.index.entries())
    shown = f"[{host}]" if ":" in host else host
    print(f"layerlab explore: {n} runs at http://{shown}:{port}/ (Ctrl-C stops it)")
    if not args.allow_remote and not is_local(host):
        print("only this computer's requests are answered (--allow-remote answers others)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def register(sub) -> None:
    """Add ``explore`` to the ``layerlab`` sub-parsers."""
    e = sub.add_parser(
        "explore",
        help="a local web app over your runs: curves, feature maps, kernels, hidden states, gates",
        description="Serve a local web page over the runs under the folders given: a sortable table, overlaid "
        "curves and parallel coordinates; for a CNN run the feature maps of a test, uploaded or drawn image, "
        "the multiply-add behind any value, filters and the confusion matrix; for a recurrent run the hidden "
        "state, gates and the gradient of the loss with respect to each h_t. It reads only those folders and "
        "answers only this computer unless --allow-remote.",
    )
    e.add_argument("runs", nargs="*", metavar="RUN_OR_FOLDER", help="run directories or folders of runs (default runs)")
    e.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    e.add_argument(
        "--port", action=Number, default=8765, ge=0, lt=65536, help="port (default 8765; 0 picks a free one)"
    )
    e.add_argument("--allow-remote", action="store_true", help="answer requests from other computers too")
    e.add_argument("--static", metavar="FILE.html", help="write one run as a self-contained HTML file and exit")
    e.set_defaults(func=cmd_explore)
