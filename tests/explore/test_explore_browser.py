"""``layerlab explore`` in a real browser: the system Chromium driven by Playwright (no browser
download: ``executable_path`` is the installed one). Two tiny runs trained once (a CNN and an LSTM
on bar images); the multiply-add the page shows, the LSTM's gates and its gradient are checked
against the NumPy reference (:mod:`layerlab.reference`) to 1e-5."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from browser import find_chromium
from explore_runs import train_runs, write_record

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed"),
]
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("explore")
    return train_runs(root)


@pytest.fixture(scope="module")
def server(runs):
    from layerlab.explore.server import make_server

    s = make_server([runs["cnn"].parent], "127.0.0.1", 0)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    yield s
    s.shutdown()
    s.server_close()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    # bypass_csp: the test waits with page functions (eval); the page itself needs none (see the last test)
    ctx = browser.new_context(viewport={"width": 1300, "height": 1000}, bypass_csp=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.base = "http://{}:{}/".format(*server.server_address[:2])
    yield pg
    ctx.close()
    assert not errors, errors


def ids(server) -> dict[str, str]:
    return {e.name: e.id for e in server.explorer.index.entries()}


def test_runs_table_sort_filter_and_overlaid_curves(page, server, runs):
    page.goto(page.base)
    page.wait_for_selector("#runs-table tbody tr")
    assert page.locator("#runs-table tbody tr").count() == 2
    # sortable: params descending puts the larger model first
    page.click('th[data-key="params"]')
    page.click('th[data-key="params"]')
    names = page.locator("#runs-table tbody tr td:nth-child(2)").all_inner_texts()
    rows = {r["name"]: r for r in server.explorer.index.rows()}
    assert names == sorted(rows, key=lambda n: -rows[n]["params"])
    # filterable
    page.fill("#filter", "lstm")
    assert page.locator("#runs-table tbody tr").count() == 1
    page.fill("#filter", "")
    # tick both: every chart overlays both runs
    for rid in ids(server).values():
        page.check(f'input[data-run="{rid}"]')
    page.wait_for_selector('svg[data-title="loss"] path[data-series="lstm val_loss"]')
    series = page.locator('svg[data-title="loss"] path').evaluate_all("ps => ps.map(p => p.dataset.series)")
    assert {"cnn train_loss", "cnn val_loss", "lstm train_loss", "lstm val_loss"} <= set(series)
    assert page.locator('svg[data-title="accuracy"] path').count() == 4
    # parallel coordinates: one line per run
    assert page.locator("#parcoords polyline").count() == 2
    # a run trained since the page opened appears when the folders are listed again
    write_record(runs["cnn"].parent / "later")
    page.click("#refresh")
    page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 3")
    (runs["cnn"].parent / "later" / "run.json").unlink()
    page.click("#refresh")
    page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 2")


def _click_cell(page, selector: str, i: int, j: int, rows: int, cols: int) -> None:
    loc = page.locator(selector)
    loc.scroll_into_view_if_needed()
    box = loc.bounding_box()
    loc.click(position={"x": (j + 0.5) * box["width"] / cols, "y": (i + 0.5) * box["height"] / rows})


def reference_convs(run_dir, k: int):
    """The two conv layers' outputs (before ReLU) for test sample ``k``, by the NumPy reference:
    conv1 -> ReLU -> 2x2 max pool -> conv2, with the run's weights, in float64."""
    from layerlab.reference.conv import conv2d_forward
    from layerlab.reference.pool import maxpool2d_forward
    from layerlab.rundir import RunDir

    run = RunDir(run_dir)
    model = run.model()
    x = run.dataset().test.x[k].double().numpy()[None]  # (1, 1, 28, 28)
    convs = [m for m in model.modules() if m.__class__.__name__ == "Conv2d"]
    W1, b1 = (t.detach().double().numpy() for t in (convs[0].weight, convs[0].bias))
    W2, b2 = (t.detach().double().numpy() for t in (convs[1].weight, convs[1].bias))
    y1, _ = conv2d_forward(x, W1, b1)
    p1, _ = maxpool2d_forward(np.maximum(y1, 0), 2)
    y2, _ = conv2d_forward(p1, W2, b2)
    return y1, y2


def test_cnn_multiply_add_equals_the_numpy_reference(page, server, runs):
    page.goto(page.base + "#run=" + ids(server)["cnn"])
    page.wait_for_selector("#gallery canvas[data-index='3']")
    # choices overtaking each other: only the last one's answer is drawn, whatever order they arrive in
    page.evaluate("() => { const e = window.layerlabExplore; e.showInput('test:7'); e.showInput('test:5'); }")
    page.click("#gallery canvas[data-index='3']")
    page.wait_for_function("window.layerlabExplore.cnn && window.layerlabExplore.cnn.input === 'test:3'")
    assert page.locator("#prediction tr[data-rank]").count() == 5
    y1, y2 = reference_convs(runs["cnn"], 3)
    for layer, ch, (i, j), ref, c_in in ((0, 1, (20, 7), y1, 1), (2, 5, (4, 9), y2, 4)):
        page.locator(f'#layers canvas[data-layer="{layer}"][data-ch="{ch}"]').click(timeout=5000)
        rows, cols = ref.shape[2:]
        _click_cell(page, "#map-zoom", i, j, rows, cols)
        page.wait_for_selector("#madd-sum")
        page.wait_for_function(f"document.querySelector('#madd h4').textContent.endsWith('({i}, {j})')")
        shown = float(page.get_attribute("#madd-sum", "data-value"))
        assert abs(shown - ref[0, ch, i, j]) < 1e-5, (layer, shown, ref[0, ch, i, j])
        assert abs(float(page.get_attribute("#madd-torch", "data-value")) - ref[0, ch, i, j]) < 1e-5
        assert f"channel {ch} at ({i}, {j})" in page.inner_text("#madd h4")
        # the kernel beside it is this channel's
        assert page.locator("#kernel canvas").count() == c_in
        assert page.locator("#madd .grid").count() == 3 * c_in  # window, kernel, products per input channel
    # the test images that excite each channel of conv1 most: one row per channel (drawn once, not per input)
    page.wait_for_selector("#excite .gallery")
    assert page.locator("#excite .gallery").count() == 4
    assert page.locator("#excite .gallery canvas").count() == 4 * 6
    # filters and the confusion matrix whose cells open their mistakes
    assert page.locator("#filters canvas").count() == 4 + 8
    page.wait_for_selector("#confusion td[data-cell]")
    matrix = np.array(
        page.locator("#confusion tr").evaluate_all(
            "rs => rs.slice(1).map(r => Array.from(r.querySelectorAll('td')).map(td => +td.textContent))"
        )
    )
    a, b = np.argwhere((matrix - np.diag(np.diag(matrix))) > 0)[0]
    page.click(f'#confusion td[data-cell="{a},{b}"]')
    page.wait_for_selector("#mistake-gallery canvas")
    assert page.locator("#mistake-gallery canvas").count() == matrix[a, b]


def test_cnn_uploaded_image(page, server, runs, tmp_path):
    from layerlab.explore.views import RunViews

    v = RunViews(runs["cnn"], "cnn")
    x, _ = v.sample(8)
    png = tmp_path / "eight.png"
    from PIL import Image

    Image.fromarray(np.rint(x[0].numpy() * 255).astype(np.uint8)).save(png)
    page.goto(page.base + "#run=" + ids(server)["cnn"])
    page.wait_for_selector("#prediction tr[data-rank]")
    page.set_input_files("#upload", str(png))
    page.wait_for_function("window.layerlabExplore.cnn && window.layerlabExplore.cnn.input.startsWith('upload:')")
    # the browser decoded the PNG to the run's pixels: the same prediction as the test image itself
    top = page.inner_text("#prediction tr[data-rank='0'] td.cls")
    assert top == v.cnn("test:8")["prediction"]["top"][0]["class"]
    probs = page.evaluate("window.layerlabExplore.cnn.prediction.top.map(t => t.p)")
    assert np.allclose(probs, [t["p"] for t in v.cnn("test:8")["prediction"]["top"]], atol=1e-5)


def test_cnn_drawn_input(page, server):
    page.goto(page.base + "#run=" + ids(server)["cnn"])
    page.wait_for_selector("#prediction tr[data-rank]")
    page.locator("#draw").scroll_into_view_if_needed()
    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + 40)
    page.mouse.down()
    for k in range(20):
        page.mouse.move(box["x"] + 10 + 3 * k, box["y"] + 40)
    page.mouse.up()
    # the drawing reached the canvas: a white stroke across the middle row
    assert page.evaluate("document.getElementById('draw').getContext('2d').getImageData(70, 66, 1, 1).data[0]") == 255
    page.click("#draw-go")
    page.wait_for_function("window.layerlabExplore.cnn && window.layerlabExplore.cnn.input.startsWith('upload:')")
    assert page.locator("#layers .layer").count() == 4
    assert page.locator("#prediction tr[data-rank]").count() == 5


def test_lstm_gates_and_gradient_equal_the_numpy_reference(page, server, runs):
    import torch

    from layerlab.reference.lstm import lstm_cell_backward, lstm_forward
    from layerlab.rundir import RunDir

    page.goto(page.base + "#run=" + ids(server)["lstm"])
    page.wait_for_selector("#gallery canvas[data-index='2']")
    page.click("#gallery canvas[data-index='2']")
    page.wait_for_function("window.layerlabExplore.rnnView && window.layerlabExplore.rnnView.input === 'test:2'")
    gates = page.locator(".gate").evaluate_all("es => es.map(e => e.dataset.gate)")
    assert gates == ["input gate i", "forget gate f", "candidate g", "output gate o", "cell c"]
    assert page.locator("#grad-chart-1 path").count() == 1
    # the unit selection: one row per test sequence, however often it is asked for
    page.fill("#sel-units", "0,3")
    # two requests in flight at once (nothing kept yet): only the latest draws
    page.evaluate(
        "() => { window.layerlabExplore.sel = null; const b = document.getElementById('sel-go');"
        " b.click(); b.click(); }"
    )
    page.wait_for_selector("#selection .fired")
    page.wait_for_timeout(300)
    assert page.locator("#selection .fired").count() == 24

    def shown(expr):  # a packed array of the page's answer, decoded as the page decodes it
        return np.array(
            page.evaluate(
                f"""() => {{ const p = {expr}; const bin = atob(p.b64); const u8 = new Uint8Array(bin.length);
                for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
                return [p.shape, Array.from(new Float32Array(u8.buffer))]; }}"""
            )[1]
        ).reshape(page.evaluate(f"{expr}.shape"))

    run = RunDir(runs["lstm"])
    model = run.model()
    test = run.dataset().test
    x = test.x[2].double().numpy()[None]  # (1, T, F)
    y = int(test.y[2])
    f = model.rnn.fused
    W, U = f.weight_ih_l0.detach().double().numpy(), f.weight_hh_l0.detach().double().numpy()
    b = (f.bias_ih_l0 + f.bias_hh_l0).detach().double().numpy()
    h, cache = lstm_forward(x, None, None, W, U, b)
    steps = cache["steps"]
    state = "window.layerlabExplore.rnnView"
    for name, key in (("input gate i", "i"), ("forget gate f", "f"), ("candidate g", "g"), ("output gate o", "o")):
        ref = np.stack([s[key][0] for s in steps], axis=1)  # (H, T)
        assert np.abs(shown(f"{state}.gates[0].gates['{name}']") - ref).max() < 1e-5, name
    assert np.abs(shown(f"{state}.gates[0].gates['cell c']") - cache["c"][0].T).max() < 1e-5
    assert np.abs(shown(f"{state}.layers[0].hidden") - h[0].T).max() < 1e-5
    # dL/dh_t by BPTT with the reference cells: the loss reads h_T through the dense head
    V, c = (t.detach().double().numpy() for t in (model.out.weight, model.out.bias))
    z = h[0, -1] @ V.T + c
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    dh = (p - np.eye(len(p))[y]) @ V  # (H,)
    dh, dc = dh[None], np.zeros_like(dh[None])
    grads = []
    for t in reversed(range(len(steps))):
        grads.append(dh[0])
        g = lstm_cell_backward(dh, dc, steps[t])
        dh, dc = g["h_prev"], g["c_prev"]
    ref = np.stack(grads[::-1], axis=1)  # (H, T)
    assert np.abs(shown(f"{state}.layers[0].grad") - ref).max() < 1e-5
    norms = page.evaluate(f"{state}.layers[0].grad_norm")
    assert np.allclose(norms, np.linalg.norm(ref, axis=0), atol=1e-5)
    assert torch.is_tensor(test.x)


def test_static_file_opens_from_file_url_without_network(browser, runs, tmp_path):
    from layerlab.explore.static_page import build_static

    out = tmp_path / "cnn.html"
    r = build_static(runs["cnn"], out)
    assert r["family"] == "cnn" and r["inputs"] == 8
    ctx = browser.new_context(offline=True)
    requests: list[str] = []
    ctx.on("request", lambda req: requests.append(req.url))
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(out.as_uri())
    pg.wait_for_selector("#layers .layer")
    assert pg.locator("#layers .layer").count() == 4
    assert pg.locator('svg[data-title="loss"] path').count() == 2  # the run's curves
    pg.click("#gallery canvas[data-index='5']")
    pg.wait_for_function("window.layerlabExplore.cnn.input === 'test:5'")
    assert pg.locator("#filters canvas").count() == 12
    # the multiply-add, computed in the page from the values the file holds, equals the reference
    y1, y2 = reference_convs(runs["cnn"], 5)
    for layer, ch, (i, j), ref in ((0, 2, (11, 13), y1), (2, 6, (7, 2), y2)):
        pg.click(f'#layers canvas[data-layer="{layer}"][data-ch="{ch}"]')
        _click_cell(pg, "#map-zoom", i, j, *ref.shape[2:])
        pg.wait_for_selector("#madd-sum")
        assert pg.inner_text("#madd h4").endswith(f"channel {ch} at ({i}, {j})")
        assert abs(float(pg.get_attribute("#madd-sum", "data-value")) - ref[0, ch, i, j]) < 1e-5
    # the LSTM's file: its gates and gradient for the inputs it holds
    out = tmp_path / "lstm.html"
    assert build_static(runs["lstm"], out)["family"] == "recurrent"
    pg.goto(out.as_uri())
    pg.wait_for_selector(".gate")
    assert pg.locator(".gate").count() == 5 and pg.locator("#grad-chart-1 path").count() == 1
    assert pg.locator("#selection .fired").count() == 24  # the unit selection over 24 test sequences
    assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests
    assert not errors, errors
    ctx.close()


def test_static_file_keeps_html_names_as_text(browser, tmp_path):
    from layerlab.explore.static_page import build_static

    evil = '</script><img src=x onerror="window.PWNED=1">'
    run = write_record(tmp_path / "<b>run<b>", classes=[evil, "b"], data=evil)
    out = tmp_path / "x.html"
    build_static(run, out)
    assert "</script><img" not in out.read_text()
    ctx = browser.new_context(offline=True)
    pg = ctx.new_page()
    pg.goto(out.as_uri())
    pg.wait_for_selector("#runs-table tbody tr")
    assert pg.evaluate("window.PWNED") is None
    assert pg.locator("#runs-table b, #runs-table img").count() == 0
    assert "<b>run<b>" in pg.inner_text("#runs-table")
    assert evil in pg.inner_text("#runs-table")
    ctx.close()


def test_server_page_keeps_html_names_as_text(browser, tmp_path):
    from layerlab.explore.server import make_server

    evil = '<img src=x onerror="window.PWNED=1">'
    write_record(tmp_path / "runs" / "<i>italic<i>", classes=[evil, "b"], data=evil)
    s = make_server([tmp_path / "runs"], "127.0.0.1", 0)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        pg = browser.new_page()
        pg.goto("http://{}:{}/".format(*s.server_address[:2]))
        pg.wait_for_selector("#runs-table tbody tr")
        assert pg.evaluate("window.PWNED") is None
        assert pg.locator("#runs-table i, #runs-table img").count() == 0
        assert "<i>italic<i>" in pg.inner_text("#runs-table") and evil in pg.inner_text("#runs-table")
        pg.close()
    finally:
        s.shutdown()
        s.server_close()
