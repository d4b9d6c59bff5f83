"""Check that an HTML report renders in a real browser: headless Chromium loads a copy of the page
with a small script that records, after the load event, how many images decoded (``naturalWidth``
> 0), then prints the DOM (``--dump-dom``); optionally it also takes a screenshot to look at.

A test helper (it lives in ``tests/``, not in the package): used by ``tests/inspect/test_report.py``
(skipped where Chromium is absent) and ``scripts/check_report_chromium.py``, which puts ``tests/`` on
``sys.path`` itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]

PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var result = {total: imgs.length,
                loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
                sizes: imgs.map(function (i) { return [i.naturalWidth, i.naturalHeight]; }),
                title: document.title};
  var pre = document.createElement('pre');
  pre.id = 'layerlab-image-check';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


def find_chromium() -> str | None:
    """The Chromium/Chrome executable (``$LAYERLAB_CHROMIUM`` first), or None."""
    env = os.environ.get("LAYERLAB_CHROMIUM")
    if env and shutil.which(env):
        return shutil.which(env)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def check_report(
    html_path: str | Path,
    *,
    screenshot: str | Path | None = None,
    width: int = 1280,
    height: int = 3000,
    timeout: float = 120.0,
    chromium: str | None = None,
) -> dict:
    """Load ``html_path`` in headless Chromium; returns ``{"total", "loaded", "sizes", "title"}``
    (and ``"screenshot"``). Raises RuntimeError when Chromium is missing or gives no answer."""
    exe = chromium or find_chromium()
    if exe is None:
        raise RuntimeError("Chromium is not installed (apt-get install chromium, or set LAYERLAB_CHROMIUM)")
    html_path = Path(html_path).resolve()
    page = html_path.read_text()
    with tempfile.TemporaryDirectory(prefix="layerlab-chromium-") as tmp:
        tmp = Path(tmp)
        probe = tmp / "report-probe.html"
        probe.write_text(page.replace("</body>", PROBE + "</body>", 1) if "</body>" in page else page + PROBE)
        profile = tmp / "profile"
        base = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        proc = subprocess.run(
            [*base, "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        m = re.search(r'<pre id="layerlab-image-check">(.*?)</pre>', proc.stdout, re.S)
        if not m:
            raise RuntimeError(
                f"Chromium gave no result for {html_path} (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
            )
        result = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        if screenshot is not None:
            shot = Path(screenshot).resolve()
            shot.parent.mkdir(parents=True, exist_ok=True)
            # the original page: the screenshot shows what a reader sees
            subprocess.run(
                [*base, "--virtual-time-budget=15000", f"--screenshot={shot}", html_path.as_uri()],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            result["screenshot"] = str(shot) if shot.is_file() else None
    return result
