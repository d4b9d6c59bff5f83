"""``layerlab explore``'s safety rules, over plain HTTP (urllib) against a real server on a free port:
no path traversal through URLs or run fields, names sent as data, non-local clients refused, the
listing without torch. Hand-written run records: no training, no model."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from explore_runs import write_record
from layerlab.explore.server import CSP, is_local, make_server

EVIL = '<img src=x onerror="window.PWNED=1">'


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    write_record(root / "plain")
    write_record(root / f"{EVIL[:20]}&<b>bold<b>", classes=[EVIL, "</script><script>window.PWNED=2</script>"])
    write_record(root / "secret-data", data="/etc/passwd", config_extra="")
    (tmp_path / "outside").mkdir()
    write_record(tmp_path / "outside" / "not-given")
    return root


def serve(folders, **kw):
    server = make_server(folders, "127.0.0.1", 0, **kw)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def server(runs):
    s = serve([runs])
    yield s
    s.shutdown()
    s.server_close()


def get(server, path: str, *, method: str = "GET", body: bytes | None = None, ctype: str | None = None):
    """(status, headers, body) of a raw request: the path is sent exactly as given."""
    import http.client

    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": ctype} if ctype else {}
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


TRAVERSALS = [
    "/api/run/../../etc/passwd",
    "/api/run/%2e%2e/%2e%2e/etc/passwd",
    "/api/run/%2e%2e%2f%2e%2e%2fetc%2fpasswd/curves",
    "/api/run/..%2f..%2f..%2fetc%2fpasswd",
    "/static/../server.py",
    "/static/%2e%2e/server.py",
    "/static/..%2f..%2flisting.py",
    "//etc/passwd",
    "/../../../../etc/passwd",
    "/static/app.js/../../../../etc/passwd",
    "/api/run/ffffffffffff/curves",
    "/api/run/%00/curves",
    "/api/runs/../../etc/passwd",
    "/api/../../etc/passwd",
    "/index.html%00.txt",
    "/api/run/" + "a" * 12 + "/../../../etc/passwd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_reaches_a_file(server, path):
    status, _, body = get(server, path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body and b"def " not in body and b"import" not in body


def test_runs_are_named_by_assigned_ids_only(server, runs):
    status, headers, body = get(server, "/api/runs")
    assert status == 200 and headers["Content-Security-Policy"] == CSP
    listing = json.loads(body)
    names = {r["name"] for r in listing["runs"]}
    assert "plain" in names and not any("not-given" in n for n in names)  # only the folder given
    text = body.decode()
    assert str(runs) not in text and str(runs.parent) not in text  # no absolute path is sent
    for r in listing["runs"]:
        assert len(r["id"]) == 12 and all(c in "0123456789abcdef" for c in r["id"])
        assert get(server, f"/api/run/{r['id']}/curves")[0] == 200
    # a run directory's name as an id is nothing
    assert get(server, "/api/run/plain/curves")[0] == 404


def test_names_with_html_are_sent_as_json_data(server):
    _, headers, body = get(server, "/api/runs")
    assert headers["Content-Type"] == "application/json" and headers["X-Content-Type-Options"] == "nosniff"
    rows = json.loads(body)["runs"]
    evil = next(r for r in rows if "<b>" in r["name"])
    info = json.loads(get(server, f"/api/run/{evil['id']}/info")[2])
    assert info["classes"][0] == EVIL  # the page receives the text, and puts it in with textContent
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP  # an injected handler would not run


def test_a_run_field_naming_a_system_file_gives_a_sentence_not_the_file(server):
    rows = json.loads(get(server, "/api/runs")[2])["runs"]
    rid = next(r["id"] for r in rows if r["name"] == "secret-data")
    status, _, body = get(server, f"/api/run/{rid}/samples?start=0&count=4")
    assert status in (400, 500) and b"root:" not in body
    assert list(json.loads(body)) == ["error"]


def test_static_files_are_the_packaged_ones_only(server):
    assert get(server, "/")[0] == 200
    status, headers, body = get(server, "/static/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript") and b"layerlab explore" in body
    for path in ("/static/server.py", "/static/index.html/", "/static/__init__.py", "/static/"):
        assert get(server, path)[0] == 404


def test_posts_need_json_and_a_bounded_body(server):
    rows = json.loads(get(server, "/api/runs")[2])["runs"]
    rid = rows[0]["id"]
    # a cross-site form can send text/plain or form data without asking: refused
    assert get(server, f"/api/run/{rid}/input", method="POST", body=b"pixels=1", ctype="text/plain")[0] == 415
    # a body announced larger than the limit is refused before it is read
    import socket

    with socket.create_connection(server.server_address[:2], timeout=30) as sock:
        sock.sendall(
            f"POST /api/run/{rid}/input HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {64 * 2**20}\r\n\r\n".encode()
        )
        assert sock.recv(100).split(b" ")[1] == b"413"
    assert get(server, f"/api/run/{rid}/input", method="POST", body=b"{nope", ctype="application/json")[0] == 400
    assert get(server, f"/api/run/{rid}/input", method="POST", body=b"[1]", ctype="application/json")[0] == 400


class _RemoteServer:
    """Serve with every connection seen as coming from 203.0.113.9 (a documentation address): what
    a request from another computer looks like to the handler."""

    def __init__(self, runs, **kw):
        self.server = make_server([runs], "127.0.0.1", 0, **kw)
        real = self.server.get_request

        def get_request():
            sock, _ = real()
            return sock, ("203.0.113.9", 40000)

        self.server.get_request = get_request
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_non_local_client_is_refused(runs):
    remote = _RemoteServer(runs)
    try:
        for path in ("/", "/api/runs", "/static/app.js"):
            status, _, body = get(remote.server, path)
            assert status == 403 and b"--allow-remote" in body
        assert get(remote.server, "/api/runs", method="POST", body=b"{}", ctype="application/json")[0] == 403
    finally:
        remote.close()
    allowed = _RemoteServer(runs, allow_remote=True)
    try:
        assert get(allowed.server, "/api/runs")[0] == 200
    finally:
        allowed.close()


def _with_host(server, host: str) -> int:
    import socket

    with socket.create_connection(server.server_address[:2], timeout=30) as sock:
        sock.sendall(f"GET /api/runs HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return int(sock.recv(100).split(b" ")[1])


def test_a_page_of_another_site_pointed_at_this_computer_is_refused(server):
    """DNS rebinding: another site's page, its name now resolving to 127.0.0.1, sends its own Host."""
    port = server.server_address[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil.example"):
        assert _with_host(server, host) == 403, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}", "127.0.0.1"):
        assert _with_host(server, host) == 200, host


@pytest.mark.parametrize(
    "address, local",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.168.1.2", False),
        ("0.0.0.0", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("localhost", False),  # a name is not an address: the socket gives addresses
        ("", False),
    ],
)
def test_is_local(address, local):
    assert is_local(address) is local


def test_listing_and_runs_table_need_no_torch(runs):
    """The command's parser, the listing and the runs table answer in a process where importing torch fails."""
    code = f"""
import sys, json, threading, urllib.request
sys.modules["torch"] = None
from layerlab.cli import build_parser
from layerlab.explore.server import make_server
args = build_parser().parse_args(["explore", {str(runs)!r}, "--port", "0"])
s = make_server(args.runs, args.host, args.port)
threading.Thread(target=s.serve_forever, daemon=True).start()
host, port = s.server_address[:2]
rows = json.load(urllib.request.urlopen(f"http://{{host}}:{{port}}/api/runs"))["runs"]
curves = json.load(urllib.request.urlopen(f"http://{{host}}:{{port}}/api/run/{{rows[0]['id']}}/curves"))
print(len(rows), len(curves["curves"]["epoch"]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3", "2"]


def test_cli_refuses_bad_input_in_one_sentence(tmp_path, capsys):
    from layerlab.cli import main

    assert main(["explore", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("layerlab: error:") and "no such folder" in err and len(err.strip().splitlines()) == 1
    assert main(["explore", str(tmp_path), "--port", "70000"]) == 2
    assert "--port must be below 65536" in capsys.readouterr().err
    assert main(["explore", str(tmp_path), str(tmp_path), "--static", str(tmp_path / "x.html")]) == 2
    assert "one run directory" in capsys.readouterr().err and not (tmp_path / "x.html").exists()
