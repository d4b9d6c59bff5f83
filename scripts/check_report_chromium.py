#!/usr/bin/env python3
"""Check that a run's HTML report renders in headless Chromium with every image loaded.

    python scripts/check_report_chromium.py RUN_DIR/report.html [--screenshot shot.png]

Exit 0: every <img> decoded; 1: some did not; 77: Chromium is not installed (skipped).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# the browser check is a test helper (tests/browser.py), not part of the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import check_report, find_chromium


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("html", help="the report.html to load")
    p.add_argument("--screenshot", help="also save a full-page PNG screenshot here")
    p.add_argument("--height", type=int, default=3000, help="window height for the screenshot (px)")
    args = p.parse_args(argv)
    if find_chromium() is None:
        print("skipped: Chromium is not installed (apt-get install chromium, or set LAYERLAB_CHROMIUM)")
        return 77
    r = check_report(args.html, screenshot=args.screenshot, height=args.height)
    print(
        f"{args.html}: {r['loaded']}/{r['total']} images loaded in Chromium"
        + (f"; screenshot {r['screenshot']}" if r.get("screenshot") else "")
    )
    return 0 if r["total"] > 0 and r["loaded"] == r["total"] else 1


if __name__ == "__main__":
    sys.exit(main())
