"""The screenshots of ``layerlab explore`` in the README (docs/explore/*.png), taken with the system
Chromium through Playwright: trains the article's CNN and LSTM and four small CNNs on synthetic bar
images (in a temporary folder), serves them and photographs each view.

    python scripts/explore_screenshots.py [--out docs/explore]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def bars(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 10, n)
    x = (rng.random((n, 28, 28)) * 90).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 2 * k + 3 : 2 * k + 5, 4 + k : 24 - k // 2] = 255
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/explore")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    from layerlab import fit
    from layerlab.explore.server import make_server
    from layerlab.explore.static_page import build_static

    tmp = Path(tempfile.mkdtemp(prefix="explore-shots-"))
    try:
        x, y = bars(3000, np.random.default_rng(0))
        runs = tmp / "runs"
        fit("article-cnn", x, y, validation_split=0.2, epochs=3, run_dir=runs / "article-cnn", verbose=0)
        fit("article-lstm", x, y, validation_split=0.2, epochs=3, run_dir=runs / "article-lstm", verbose=0)
        for lr, ch in ((3e-4, "8,M,16,M"), (1e-3, "8,M,16,M"), (3e-3, "4,M,8,M"), (1e-2, "4,M,8,M")):
            fit(
                "cnn",
                x[:1000],
                y[:1000],
                validation_split=0.2,
                epochs=2,
                lr=lr,
                channels=ch,
                verbose=0,
                run_dir=runs / "sweep" / f"cnn-{ch.replace(',', '')}-lr{lr:g}",
            )
        server = make_server([runs], "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = "http://{}:{}/".format(*server.server_address[:2])
        ids = {e.name: e.id for e in server.explorer.index.entries()}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
            page.goto(base)
            page.wait_for_selector("#runs-table tbody tr")
            for name in ("article-cnn", "sweep/cnn-8M16M-lr0.001", "sweep/cnn-4M8M-lr0.01"):
                page.check(f'input[data-run="{ids[name]}"]')
            page.select_option("#pc-metric", "best_val_accuracy")
            page.wait_for_selector('svg[data-title="loss"] path')
            page.wait_for_timeout(500)
            page.locator("#runs-view").screenshot(path=out / "runs.png")

            page.goto(base + "#run=" + ids["article-cnn"])
            page.wait_for_selector("#gallery canvas[data-index='4']")
            page.click("#gallery canvas[data-index='4']")
            page.wait_for_function("window.layerlabExplore.cnn && window.layerlabExplore.cnn.input === 'test:4'")
            page.click('#layers canvas[data-layer="2"][data-ch="1"]')
            z = page.locator("#map-zoom")
            z.scroll_into_view_if_needed()
            box = z.bounding_box()
            z.click(position={"x": 4.5 * box["width"] / 11, "y": 5.5 * box["height"] / 11})
            page.wait_for_selector("#madd-sum")
            page.wait_for_timeout(300)
            page.locator("#run-title").scroll_into_view_if_needed()
            page.screenshot(path=out / "cnn-maps.png", full_page=False, clip=_clip(page, "#run-title", "#layer-1"))
            page.locator("#detail").screenshot(path=out / "cnn-multiply-add.png")
            page.wait_for_selector("#excite canvas")
            page.wait_for_selector("#confusion td[data-cell]")
            page.click('#confusion td[data-cell="3,3"]')
            page.wait_for_selector("#mistake-gallery canvas, #mistakes h4")
            page.wait_for_timeout(300)
            page.screenshot(path=out / "cnn-filters-confusion.png", clip=_clip(page, "#excite-wrap", "#confusion"))

            page.goto(base + "#run=" + ids["article-lstm"])
            page.wait_for_selector("#gallery canvas[data-index='1']")
            page.click("#gallery canvas[data-index='1']")
            page.wait_for_function("window.layerlabExplore.rnnView?.input === 'test:1'")
            page.fill("#sel-units", "3,7")
            page.fill("#sel-threshold", "0.2")
            page.click("#sel-go")
            page.wait_for_timeout(500)
            page.screenshot(path=out / "lstm.png", clip=_clip(page, "#rnn", "#rnn"))

            static = tmp / "static.html"
            build_static(runs / "article-cnn", static)
            sp = browser.new_page(viewport={"width": 1280, "height": 900})
            sp.goto(static.as_uri())
            sp.wait_for_selector("#layers .layer")
            sp.screenshot(path=out / "static.png")
            browser.close()
        server.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in sorted(out.glob("*.png")):
        print(f, f.stat().st_size)


def _clip(page, first: str, last: str) -> dict:
    """The page area from the top of ``first`` to the bottom of ``last`` (full width, page coordinates)."""
    top = page.evaluate(f"document.querySelector('{first}').getBoundingClientRect().top + window.scrollY")
    bottom = page.evaluate(f"document.querySelector('{last}').getBoundingClientRect().bottom + window.scrollY")
    page.set_viewport_size({"width": 1280, "height": int(bottom) + 20})
    return {"x": 0, "y": top - 8, "width": 1280, "height": bottom - top + 16}


if __name__ == "__main__":
    main()
