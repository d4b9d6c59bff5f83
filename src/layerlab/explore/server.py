"""The explorer's HTTP server: the standard library's ``ThreadingHTTPServer`` (no framework: the
app is a handful of JSON routes and a few static files, and the standard library keeps
``layerlab explore`` free of a web stack's dependencies and their updates).

Safety rules, each tested in ``tests/explore/test_explore_safety.py``:

- bound to 127.0.0.1 by default; a request from a non-loopback address is refused (403) unless the
  server was started with ``allow_remote``, and so is one whose Host is not ``localhost`` or a
  loopback address (DNS rebinding: another site's page reaching this computer under its own name);
- the only files served are those shipped in ``layerlab/explore/static`` (read once at start, by
  name from a fixed table: a URL never becomes a path);
- runs are named by the id :class:`~layerlab.explore.listing.RunIndex` assigned, looked up in a
  table; an unknown id is 404 and nothing from the URL or from a run's files is used as a path;
- every name (runs, classes, files, config values) is sent as JSON data and put in the page with
  ``textContent`` or escaped, never as HTML; responses carry a Content-Security-Policy that allows
  no script or connection from anywhere but the server itself.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from ..errors import LayerlabError
from .listing import RunIndex, curves, family, step_curves

log = logging.getLogger(__name__)

STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Host names a local page may use (besides loopback addresses).
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
#: Largest request body (an uploaded image's pixels as JSON).
MAX_BODY = 4 * 2**20
_RUN_ROUTE = re.compile(r"^/api/run/([0-9a-f]{12})/([a-z_]+)$")


def static_files() -> dict[str, bytes]:
    """The page's files, from the package."""
    root = resources.files("layerlab.explore") / "static"
    return {name: (root / name).read_bytes() for name in STATIC}


def is_local(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class Explorer:
    """The state behind the routes: the run index and each run's loaded views."""

    def __init__(self, folders, *, allow_remote: bool = False):
        self.index = RunIndex(folders)
        self.allow_remote = allow_remote
        self.files = static_files()
        self._views: dict[str, object] = {}
        self._lock = threading.Lock()

    def views(self, rid: str):
        entry = self.index.get(rid)  # KeyError: 404
        with self._lock:
            v = self._views.get(rid)
            if v is None:
                from .views import RunViews  # torch, only now

                v = self._views[rid] = RunViews(entry.path, family(entry.record))
            return v

    # --- the routes: (status, JSON-able)
    def get(self, route: str, rid: str | None, q: dict) -> object:
        if rid is None:
            if route == "runs":
                return {"runs": self.index.rows(), "problems": self.index.problems}
            raise KeyError(route)
        entry = self.index.get(rid)
        if route == "curves":
            return {"id": rid, "name": entry.name, "curves": curves(entry), "steps": step_curves(entry)}
        if route == "info":
            rec = entry.record
            return {
                "id": rid,
                "name": entry.name,
                "model": rec.model,
                "family": family(rec),
                "task": rec.task,
                "classes": list(rec.classes),
                "input_spec": rec.input_spec,
            }
        v = self.views(rid)
        if route == "samples":
            if "indices" in q:
                idx = [_int(s, "indices") for s in q["indices"].split(",") if s][:200]
            else:
                start, count = _int(q.get("start", "0"), "start"), min(_int(q.get("count", "40"), "count"), 200)
                idx = list(range(start, min(start + count, v.n_test())))
            return {"n": v.n_test(), "samples": v.samples(idx)}
        key = q.get("input", "test:0")
        if route == "cnn":
            return v.cnn(key)
        if route == "conv":
            pos = [_int(s, "pos") for s in q.get("pos", "").split(",") if s]
            return v.conv_detail(key, _int(q.get("layer", "0"), "layer"), _int(q.get("channel", "0"), "channel"), pos)
        if route == "filters":
            return v.filters()
        if route == "excite":
            return v.excite(_int(q.get("layer", "0"), "layer"))
        if route == "confusion":
            return v.confusion()
        if route == "rnn":
            return v.rnn(key)
        if route == "rnn_many":
            return v.rnn_many(min(_int(q.get("count", "24"), "count"), 200))
        raise KeyError(route)

    def post(self, route: str, rid: str | None, body: dict) -> object:
        if rid is not None and route == "input":
            return {"input": self.views(rid).upload(body)}
        if rid is None and route == "refresh":
            self.index.refresh()
            return {"runs": len(self.index.entries())}
        raise KeyError(route)


def _int(s: str, what: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise LayerlabError(f"{what} must be a whole number") from None
    if not -(2**31) < v < 2**31:
        raise LayerlabError(f"{what} is out of range")
    return v


class Handler(BaseHTTPRequestHandler):
    server_version = "layerlab-explore"
    explorer: Explorer  # set on the subclass make_server builds

    def log_message(self, fmt, *args):  # through logging (-v), not stderr
        log.info("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        body = json.dumps(obj, allow_nan=False, separators=(",", ":")).encode()
        self._send(status, body, "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _allowed(self) -> bool:
        if self.explorer.allow_remote:
            return True
        if not is_local(self.client_address[0]):
            self._error(
                HTTPStatus.FORBIDDEN, "layerlab explore answers this computer only (start it with --allow-remote)"
            )
            return False
        # a page of another site that made its name point at 127.0.0.1 (DNS rebinding) sends its own
        # name as Host: only this computer's names are answered
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.strip("[]").lower() not in LOCAL_NAMES and not is_local(name.strip("[]")):
            self._error(HTTPStatus.FORBIDDEN, f"layerlab explore answers requests for localhost, not {host[:100]!r}")
            return False
        return True

    def _route(self):
        """``(route, run id or None, query)`` of the URL, or None for a static file or nothing."""
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        m = _RUN_ROUTE.match(parts.path)
        if m:
            return m.group(2), m.group(1), q
        if parts.path.startswith("/api/") and re.fullmatch(r"/api/[a-z_]+", parts.path):
            return parts.path[5:], None, q
        return None, None, parts.path

    def _answer(self, call) -> None:
        started = time.perf_counter()
        try:
            obj = call()
        except KeyError:
            self._error(HTTPStatus.NOT_FOUND, "no such run or view")
        except LayerlabError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except Exception as e:  # one sentence to the page; the details to the log
            log.exception("explore: %s failed", self.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")
        else:
            self._json(HTTPStatus.OK, obj)
        log.info("%s answered in %.1f ms", self.path, 1000 * (time.perf_counter() - started))

    def do_GET(self):
        if not self._allowed():
            return
        route, rid, q = self._route()
        if route is None:
            name = {"/": "index.html", "/index.html": "index.html", "/static/app.js": "app.js"}.get(q)
            name = name or {"/static/style.css": "style.css"}.get(q)
            if q == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, b"", "text/plain")
            elif name is None:
                self._error(HTTPStatus.NOT_FOUND, "not found")
            else:
                self._send(HTTPStatus.OK, self.explorer.files[name], STATIC[name])
            return
        self._answer(lambda: self.explorer.get(route, rid, q))

    do_HEAD = do_GET

    def do_POST(self):
        if not self._allowed():
            return
        route, rid, _ = self._route()
        if route is None:
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            # a form post from another site cannot send this type without a CORS preflight
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
            return
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            n = -1
        if not 0 <= n <= MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a request body is at most {MAX_BODY} bytes")
            return
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            self._error(HTTPStatus.BAD_REQUEST, "the body is not JSON")
            return
        if not isinstance(body, dict):
            self._error(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
            return
        self._answer(lambda: self.explorer.post(route, rid, body))


def make_server(folders, host: str = "127.0.0.1", port: int = 8765, *, allow_remote: bool = False):
    """A ready :class:`ThreadingHTTPServer` (``server.explorer`` its state); port 0 picks a free one."""
    explorer = Explorer(folders, allow_remote=allow_remote)
    handler = type("ExploreHandler", (Handler,), {"explorer": explorer})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise LayerlabError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    server.daemon_threads = True
    server.explorer = explorer  # type: ignore[attr-defined]  # (the handlers read it)
    # a page closed while an answer was being sent: a line in the log (-v), not a traceback on the terminal
    server.handle_error = lambda request, address: log.info(  # type: ignore[method-assign,assignment]
        "explore: the connection from %s broke", address[0]
    )
    return server
