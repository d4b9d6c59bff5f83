#!/usr/bin/env python3
"""Screenshots of the built documentation site, for docs/screenshots/: its home, an API page
(``layerlab.fit``), a command page (``export``) and an executed tutorial (gradient flow figures).

    bash scripts/docs.sh && python scripts/docs_screenshots.py [SITE_DIR] [--out docs/screenshots]

Headless Chromium opens the built pages from the disk (the site fetches nothing). Exit 0: every
screenshot written; 1: one was not; 77: Chromium is not installed (skipped).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the Chromium finder and flags of the report-rendering test (a test helper, not part of the package)
sys.path.insert(0, str(ROOT / "tests"))
from browser import FLAGS, find_chromium  # noqa: E402

#: screenshot name -> (page of the site, window height in pixels)
SHOTS = {
    "index": ("index.html", 900),
    "api": ("api/training.html", 1100),
    "command": ("commands/export.html", 1000),
    "tutorial": ("tutorials/looking-inside.html", 1900),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("site", nargs="?", default=str(ROOT / "site"), help="the built site (default site/)")
    p.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="folder for the PNGs")
    p.add_argument("--width", type=int, default=1280, help="window width (px)")
    args = p.parse_args(argv)
    exe = find_chromium()
    if exe is None:
        print("skipped: Chromium is not installed (apt-get install chromium, or set LAYERLAB_CHROMIUM)")
        return 77
    site, out = Path(args.site).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, (page, height) in SHOTS.items():
        html = site / page
        if not html.is_file():
            failed.append(f"{html}: not built")
            continue
        png = out / f"{name}.png"
        with tempfile.TemporaryDirectory(prefix="layerlab-docs-shot-") as profile:
            cmd = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={args.width},{height}"]
            cmd += [f"--screenshot={png.resolve()}", html.as_uri()]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or not png.is_file():
            failed.append(f"{page}: Chromium exited {done.returncode} ({done.stderr.strip()[-300:]})")
        else:
            print(f"{png}  ({page})")
    for line in failed:
        print(line, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
