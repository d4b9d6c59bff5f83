// layerlab explore: plain JavaScript, no build step, no library. Every name from a run (run, class,
// file, config value) is put in the page as text (textContent, SVG text nodes), never as HTML.
"use strict";

(function () {
  var STATIC = window.LAYERLAB_STATIC || null; // the --static file's answers, by URL
  var state = { runs: [], sort: { key: "name", dir: 1 }, ticked: {}, filter: "", run: null, input: "test:0", sel: null };
  var COLORS = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00acc1", "#6d4c41", "#3949ab", "#c0ca33", "#d81b60"];

  // ---- small helpers
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else if (k === "style") e.style.cssText = attrs[k]; // CSSOM: allowed by the page's CSP
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c == null) continue;
      e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  function svgEl(tag, attrs, text) {
    var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = String(text);
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }
  function fmt(v, d) {
    if (v == null || v === "") return "";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return String(v);
    return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toFixed(d == null ? 4 : d);
  }
  function unpack(p) { // {"shape", "b64"} -> {shape, data: Float32Array}
    var bin = atob(p.b64), buf = new ArrayBuffer(bin.length), u8 = new Uint8Array(buf);
    for (var i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    return { shape: p.shape, data: new Float32Array(buf) };
  }
  function status(text) { $("status").textContent = text; }
  function api(url, body) {
    if (STATIC) {
      if (body !== undefined || !(url in STATIC.responses))
        return Promise.reject(new Error("this file holds a fixed set of inputs; run `layerlab explore RUN` for the rest"));
      return Promise.resolve(JSON.parse(JSON.stringify(STATIC.responses[url])));
    }
    var t0 = performance.now();
    var opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    return fetch(url, opts).then(function (r) {
      return r.json().then(function (j) {
        status(url.split("?")[0].split("/").pop() + " " + Math.round(performance.now() - t0) + " ms");
        if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
        return j;
      });
    });
  }
  function showError(e) { $("run-error").textContent = e.message || String(e); }

  // ---- colour maps and canvases
  function viridis(t) { // a short piecewise-linear viridis
    var s = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
    t = Math.max(0, Math.min(1, t)) * 4; var i = Math.min(3, Math.floor(t)), f = t - i, a = s[i], b = s[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  }
  function diverging(t) { // -1 blue, 0 white, 1 red
    t = Math.max(-1, Math.min(1, t));
    return t < 0 ? [255 * (1 + t), 255 * (1 + t), 255] : [255, 255 * (1 - t), 255 * (1 - t)];
  }
  // draw rows x cols values of data (from offset) on a canvas; mode "gray" (0..max), "seq" or "div"
  function paint(canvas, data, offset, rows, cols, mode, lo, hi) {
    canvas.width = cols; canvas.height = rows;
    var ctx = canvas.getContext("2d"), img = ctx.createImageData(cols, rows);
    if (lo == null) {
      lo = Infinity; hi = -Infinity;
      for (var k = 0; k < rows * cols; k++) { var v = data[offset + k]; if (v < lo) lo = v; if (v > hi) hi = v; }
    }
    var m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    for (var p = 0; p < rows * cols; p++) {
      var x = data[offset + p], c;
      if (mode === "div") c = diverging(x / m);
      else if (mode === "gray") { var g = hi > lo ? 255 * (x - lo) / (hi - lo) : 0; c = [g, g, g]; }
      else c = viridis(hi > lo ? (x - lo) / (hi - lo) : 0);
      img.data[4 * p] = c[0]; img.data[4 * p + 1] = c[1]; img.data[4 * p + 2] = c[2]; img.data[4 * p + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    return canvas;
  }
  // an input sample as an image: (C,H,W) shown as gray (C=1) or RGB (C=3); (T,F) as F x T
  function paintInput(canvas, packed, scale) {
    var a = unpack(packed), s = a.shape;
    if (s.length === 3 && s[0] === 3) {
      var H = s[1], W = s[2]; canvas.width = W; canvas.height = H;
      var ctx = canvas.getContext("2d"), img = ctx.createImageData(W, H);
      for (var p = 0; p < H * W; p++) {
        for (var ch = 0; ch < 3; ch++) img.data[4 * p + ch] = 255 * Math.max(0, Math.min(1, a.data[ch * H * W + p]));
        img.data[4 * p + 3] = 255;
      }
      ctx.putImageData(img, 0, 0);
    } else if (s.length === 3) paint(canvas, a.data, 0, s[1], s[2], "gray");
    else if (s.length === 2) paintTransposed(canvas, a.data, s[0], s[1]);
    else paint(canvas, a.data, 0, 1, s[0], "seq");
    if (scale) { canvas.style.width = canvas.width * scale + "px"; canvas.style.height = canvas.height * scale + "px"; }
    return canvas;
  }
  function paintTransposed(canvas, data, T, F) { // (T, F) drawn as F rows by T steps
    var t = new Float32Array(T * F);
    for (var i = 0; i < T; i++) for (var j = 0; j < F; j++) t[j * T + i] = data[i * F + j];
    return paint(canvas, t, 0, F, T, "gray");
  }
  function heat(data, offset, rows, cols, mode, px, title) {
    var c = paint(el("canvas", { cls: "heat" }), data, offset, rows, cols, mode);
    var rowPx = Math.max(1, Math.min(px, Math.floor(320 / rows))); // many units: thinner rows, not a taller page
    c.style.width = cols * px + "px"; c.style.height = rows * rowPx + "px";
    if (title) c.title = title;
    return c;
  }

  // ---- SVG line charts
  function lineChart(title, series, opts) {
    opts = opts || {};
    var W = opts.width || 360, H = opts.height || 220, L = 48, R = 10, T = 22, B = 30;
    var svg = svgEl("svg", { width: W, height: H, "data-title": title });
    svg.appendChild(svgEl("text", { x: L, y: 14 }, title));
    var xs = [], ys = [];
    series.forEach(function (s) { s.xs.forEach(function (x, i) { if (s.ys[i] != null) { xs.push(x); ys.push(s.ys[i]); } }); });
    if (!ys.length) { svg.appendChild(svgEl("text", { x: L, y: H / 2 }, "nothing logged")); return svg; }
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs), y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (x1 === x0) x1 = x0 + 1; if (y1 === y0) { y1 = y0 + (Math.abs(y0) || 1) * 0.1; y0 = y0 - (Math.abs(y0) || 1) * 0.1; }
    function X(x) { return L + (W - L - R) * (x - x0) / (x1 - x0); }
    function Y(y) { return H - B - (H - T - B) * (y - y0) / (y1 - y0); }
    svg.appendChild(svgEl("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }));
    svg.appendChild(svgEl("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" }));
    var seenX = {};
    for (var k = 0; k <= 4; k++) {
      var yv = y0 + (y1 - y0) * k / 4, xv = x0 + (x1 - x0) * k / 4;
      svg.appendChild(svgEl("text", { x: 2, y: Y(yv) + 4 }, Number(yv.toPrecision(3)) === 0 ? "0" : fmt(Number(yv.toPrecision(3)), 4)));
      if (opts.integerX) xv = Math.round(xv);
      if (seenX[xv]) continue;
      seenX[xv] = 1;
      svg.appendChild(svgEl("text", { x: X(xv) - 6, y: H - B + 14 }, fmt(xv, 1)));
    }
    svg.appendChild(svgEl("text", { x: W - R - 40, y: H - 4 }, opts.xlabel || "epoch"));
    series.forEach(function (s, si) {
      var d = "", pen = false;
      s.xs.forEach(function (x, i) {
        if (s.ys[i] == null) { pen = false; return; }
        d += (pen ? "L" : "M") + X(x).toFixed(1) + "," + Y(s.ys[i]).toFixed(1); pen = true;
      });
      var path = svgEl("path", { d: d, fill: "none", stroke: s.color, "stroke-width": 1.6, "stroke-dasharray": s.dash || "" });
      path.setAttribute("data-series", s.name);
      path.appendChild(svgEl("title", {}, s.name));
      svg.appendChild(path);
      if (opts.legend !== false) {
        svg.appendChild(svgEl("line", { x1: L + 8, y1: T + 6 + 13 * si, x2: L + 24, y2: T + 6 + 13 * si, stroke: s.color, "stroke-width": 2, "stroke-dasharray": s.dash || "" }));
        svg.appendChild(svgEl("text", { x: L + 28, y: T + 10 + 13 * si }, s.name));
      }
    });
    return svg;
  }

  // ---- runs table
  var BASE_COLUMNS = [
    ["name", "run", true], ["model", "model", true], ["data", "data", true], ["params", "params"], ["epochs", "epochs"],
    ["status", "status", true], ["final_val_loss", "val loss"], ["final_val_accuracy", "val acc"],
    ["best_val_loss", "best val loss"], ["best_val_accuracy", "best val acc"],
    ["final_test_loss", "test loss"], ["final_test_accuracy", "test acc"]];
  function configKeys() { // config values that differ between runs (the rest say nothing)
    var seen = {};
    state.runs.forEach(function (r) { for (var k in r.config) (seen[k] = seen[k] || {})[JSON.stringify(r.config[k])] = 1; });
    return Object.keys(seen).filter(function (k) { return Object.keys(seen[k]).length > 1 || state.runs.length === 1 && /^(model|train\.(epochs|lr|batch_size))/.test(k); }).sort();
  }
  function value(r, key) { return key.indexOf("config:") === 0 ? r.config[key.slice(7)] : r[key]; }
  function visibleRuns() {
    var f = state.filter.toLowerCase();
    var rows = state.runs.filter(function (r) { return !f || JSON.stringify([r.name, r.model, r.data, r.status, r.config]).toLowerCase().indexOf(f) >= 0; });
    var key = state.sort.key, dir = state.sort.dir;
    rows.sort(function (a, b) {
      var x = value(a, key), y = value(b, key);
      if (x == null && y == null) return 0; if (x == null) return 1; if (y == null) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    return rows;
  }
  function renderRuns() {
    var cols = BASE_COLUMNS.slice(), ck = configKeys();
    ck.forEach(function (k) { cols.push(["config:" + k, k]); });
    var thead = clear($("runs-table").tHead), tr = el("tr", {}, el("th", { text: "curves" }));
    cols.forEach(function (c) {
      var arrow = state.sort.key === c[0] ? (state.sort.dir > 0 ? " \u25B2" : " \u25BC") : "";
      tr.appendChild(el("th", { "data-key": c[0], onclick: function () {
        state.sort = { key: c[0], dir: state.sort.key === c[0] ? -state.sort.dir : 1 }; renderRuns();
      } }, c[1] + arrow));
    });
    thead.appendChild(tr);
    var tbody = clear($("runs-table").tBodies[0]), rows = visibleRuns();
    rows.forEach(function (r) {
      var box = el("input", { type: "checkbox", "data-run": r.id, onchange: function () { state.ticked[r.id] = box.checked; renderCurves(); } });
      box.checked = !!state.ticked[r.id];
      var tr = el("tr", { "data-run": r.id }, el("td", {}, box));
      cols.forEach(function (c) {
        var v = value(r, c[0]), td;
        if (c[0] === "name") {
          td = el("td", { cls: "text" }, r.family === "other" ? el("span", { text: r.name }) : el("a", { href: "#run=" + r.id, text: r.name }));
        } else td = el("td", { cls: typeof v === "number" ? "" : "text", text: fmt(v) });
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    $("run-count").textContent = rows.length + " of " + state.runs.length + " runs";
    renderParcoords(rows);
  }
  function renderCurves() {
    var ids = state.runs.filter(function (r) { return state.ticked[r.id]; }).map(function (r) { return r.id; });
    var box = clear($("curves"));
    if (!ids.length) { box.appendChild(el("p", { cls: "note", text: "tick runs in the table to overlay their curves" })); return; }
    Promise.all(ids.map(function (id) { return api("/api/run/" + id + "/curves"); })).then(function (all) {
      clear(box);
      [["loss", ["train_loss", "val_loss", "test_loss"]], ["accuracy", ["train_accuracy", "val_accuracy", "test_accuracy"]], ["learning rate", ["lr"]]].forEach(function (chart) {
        var series = [];
        all.forEach(function (c, i) {
          chart[1].forEach(function (col, j) {
            if (!c.curves[col] || !c.curves[col].some(function (v) { return v != null; })) return;
            series.push({ name: c.name + " " + col, xs: c.curves.epoch, ys: c.curves[col], color: COLORS[i % COLORS.length], dash: ["", "5,3", "2,2"][j] });
          });
        });
        box.appendChild(lineChart(chart[0], series, { width: 420, height: 260, integerX: true }));
      });
      [["loss per step", ["loss", "batch_loss"]], ["learning rate per step", ["lr"]]].forEach(function (chart) {
        var series = [];
        all.forEach(function (c, i) {
          if (!c.steps || c.steps.error || !c.steps.step) return;
          chart[1].forEach(function (col, j) {
            if (c.steps[col]) series.push({ name: c.name + " " + col, xs: c.steps.step, ys: c.steps[col], color: COLORS[i % COLORS.length], dash: ["", "2,2"][j] });
          });
        });
        if (series.length) box.appendChild(lineChart(chart[0], series, { width: 420, height: 260, integerX: true, xlabel: "step" }));
      });
    }).catch(function (e) { box.appendChild(el("p", { cls: "error", text: e.message })); });
  }
  function metricKeys() {
    return ["final_val_loss", "final_val_accuracy", "best_val_loss", "best_val_accuracy", "final_test_loss", "final_test_accuracy"]
      .filter(function (k) { return state.runs.some(function (r) { return r[k] != null; }); });
  }
  function renderParcoords(rows) {
    var svg = clear($("parcoords")), sel = $("pc-metric"), metric = sel.value;
    if (!metric) return;
    var axes = configKeys().map(function (k) { return "config:" + k; }).concat([metric]);
    var W = +svg.getAttribute("width"), H = +svg.getAttribute("height"), T = 30, B = 40;
    var scales = axes.map(function (a) {
      var vals = rows.map(function (r) { return value(r, a); }).filter(function (v) { return v != null; });
      if (vals.every(function (v) { return typeof v === "number"; })) {
        var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals); if (hi === lo) { hi += 1; lo -= 1; }
        return { f: function (v) { return (v - lo) / (hi - lo); }, ticks: [[lo, 0], [hi, 1]] };
      }
      var cats = Array.from(new Set(vals.map(String))).sort();
      return { f: function (v) { return cats.length > 1 ? cats.indexOf(String(v)) / (cats.length - 1) : 0.5; }, ticks: cats.map(function (c, i) { return [c, cats.length > 1 ? i / (cats.length - 1) : 0.5]; }) };
    });
    var step = (W - 120) / Math.max(1, axes.length - 1);
    function X(i) { return 60 + i * step; }
    function Y(t) { return H - B - t * (H - T - B); }
    var ms = scales[axes.length - 1];
    rows.forEach(function (r) {
      var pts = [], ok = true;
      axes.forEach(function (a, i) { var v = value(r, a); if (v == null) ok = false; else pts.push(X(i).toFixed(1) + "," + Y(scales[i].f(v)).toFixed(1)); });
      if (!ok) return;
      var c = viridis(ms.f(value(r, metric)));
      var line = svgEl("polyline", { points: pts.join(" "), fill: "none", stroke: "rgb(" + c.map(Math.round).join(",") + ")", "stroke-width": 1.5, "data-run": r.id });
      line.appendChild(svgEl("title", {}, r.name + ": " + fmt(value(r, metric))));
      svg.appendChild(line);
    });
    axes.forEach(function (a, i) {
      svg.appendChild(svgEl("line", { x1: X(i), y1: T, x2: X(i), y2: H - B, stroke: "#555" }));
      svg.appendChild(svgEl("text", { x: X(i) - 30, y: H - B + 18 }, a.replace("config:", "")));
      scales[i].ticks.slice(0, 12).forEach(function (t) { svg.appendChild(svgEl("text", { x: X(i) + 4, y: Y(t[1]) + 4 }, fmt(t[0], 4))); });
    });
  }
  function loadRuns() {
    return api("/api/runs").then(function (j) {
      state.runs = j.runs;
      var sel = $("pc-metric"), keys = metricKeys();
      clear(sel); keys.forEach(function (k) { sel.appendChild(el("option", { value: k, text: k })); });
      var probs = Object.keys(j.problems || {});
      $("problems").textContent = probs.length ? probs.length + " folders could not be read: " + probs.map(function (p) { return p + " (" + j.problems[p] + ")"; }).join("; ") : "";
      renderRuns(); renderCurves();
    }).catch(function (e) { $("problems").textContent = e.message; });
  }

  // ---- one run
  function openRun(id) {
    var r = state.runs.filter(function (x) { return x.id === id; })[0];
    $("runs-view").hidden = true; $("run-view").hidden = false; $("run-error").textContent = "";
    state.run = r; state.input = "test:0";
    clear($("nav-run")).appendChild(document.createTextNode(r ? "\u203A " + r.name : ""));
    $("run-title").textContent = r ? r.name : "";
    $("run-sub").textContent = r ? r.model + " on " + r.data + ", " + r.epochs + " epochs, " + r.status : "";
    $("cnn").hidden = !r || r.family !== "cnn"; $("rnn").hidden = !r || r.family !== "recurrent";
    if (!r) return;
    api("/api/run/" + id + "/info").then(function (info) {
      var spec = info.input_spec || {};
      var images = !!(spec.image_shape || spec.kind === "image");
      $("upload-label").hidden = !images || STATIC;
      $("draw-tools").hidden = !images || STATIC || (spec.image_shape || spec.shape)[0] !== 1;
      $("text-tools").hidden = spec.kind !== "tokens" || STATIC;
      $("csv-tools").hidden = spec.kind !== "sequence" || !!spec.image_shape || STATIC;
      $("excite-wrap").hidden = !!STATIC;
      state.spec = spec; state.classes = info.classes;
      loadGallery(id);
    }).catch(showError);
    showInput("test:0");
    clear($("excite")); clear($("mistakes")); clear($("selection")); state.sel = null;
    if (r.family === "cnn") { loadFilters(id); loadConfusion(id); }
  }
  function loadGallery(id) {
    var g = clear($("gallery"));
    api("/api/run/" + id + "/samples?start=0&count=40").then(function (j) {
      $("sample-index").max = j.n - 1;
      j.samples.forEach(function (s) {
        var title = "test sample " + s.index + (s.label != null ? ", class " + state.classes[s.label] : "");
        var c;
        if (state.spec.kind === "tokens") { // a character model's sequence: its text
          var t = unpack(s.x).data, chars = "";
          for (var i = 0; i < t.length; i++) chars += state.classes[t[i]] || "?";
          c = el("button", { "data-index": s.index, cls: "tokens", title: title, text: chars.slice(0, 24) });
        } else c = paintInput(el("canvas", { "data-index": s.index, title: title }), s.x);
        c.addEventListener("click", function () { $("sample-index").value = s.index; showInput("test:" + s.index); });
        g.appendChild(c);
      });
      markGallery();
    }).catch(showError);
  }
  function markGallery() {
    Array.prototype.forEach.call($("gallery").children, function (c) { c.classList.toggle("on", "test:" + c.getAttribute("data-index") === state.input); });
  }
  function showInput(key) {
    state.input = key; markGallery();
    $("run-error").textContent = "";
    if (state.run.family === "cnn") return showCnn(key);
    if (state.run.family === "recurrent") return showRnn(key);
  }
  function predictionTable(table, p, classes) {
    clear(table);
    if (!p.top) { table.appendChild(el("tr", {}, el("td", { text: "outputs: " + p.values.map(function (v) { return fmt(v); }).join(", ") }))); return; }
    p.top.forEach(function (t, i) {
      table.appendChild(el("tr", { "data-rank": i }, el("td", { cls: "cls", text: t.class }), el("td", { text: (100 * t.p).toFixed(1) + "%" }),
        el("td", {}, el("span", { cls: "bar", style: "width:" + Math.round(120 * t.p) + "px" }))));
    });
    if (p.label_name != null) table.appendChild(el("tr", {}, el("td", { cls: "note", colspan: 3, text: "true class: " + p.label_name })));
  }

  // ---- CNN
  function showCnn(key) {
    var id = state.run.id;
    return api("/api/run/" + id + "/cnn?input=" + encodeURIComponent(key)).then(function (j) {
      if (key !== state.input || id !== state.run.id) return; // an answer overtaken by a later choice
      state.cnn = j;
      paintInput($("input-canvas"), j.x, 5);
      predictionTable($("prediction"), j.prediction);
      var box = clear($("layers")), sel = $("excite-layer"), keep = sel.value;
      clear(sel);
      j.layers.forEach(function (L) {
        var a = unpack(L.maps), s = a.shape, C = s[0], rows = s.length > 2 ? s[1] : 1, cols = s[s.length - 1], n = rows * cols;
        var scale = Math.max(1, Math.round(56 / Math.max(rows, cols)));
        var maps = el("div", { cls: "maps" });
        for (var ch = 0; ch < C; ch++) {
          var c = paint(el("canvas", { "data-layer": L.index, "data-ch": ch, title: L.name + " channel " + ch }), a.data, ch * n, rows, cols, "seq");
          c.style.width = cols * scale + "px"; c.style.height = rows * scale + "px";
          c.addEventListener("click", (function (ch) { return function (ev) { selectMap(L, a, ch, ev.target); }; })(ch));
          maps.appendChild(c);
        }
        box.appendChild(el("div", { cls: "layer", id: "layer-" + L.index }, el("h4", { text: L.label + " \u2014 " + C + " maps of " + s.slice(1).join("\u00D7") }), maps));
        sel.appendChild(el("option", { value: L.index, text: L.label }));
      });
      if (keep) sel.value = keep;
      $("detail").hidden = true;
      if (!STATIC && !$("excite").hasChildNodes()) loadExcite(); // per run and layer, not per input
    }).catch(showError);
  }
  function selectMap(L, a, ch, canvas) {
    Array.prototype.forEach.call(document.querySelectorAll(".maps canvas.on"), function (c) { c.classList.remove("on"); });
    canvas.classList.add("on");
    var s = a.shape, rows = s.length > 2 ? s[1] : 1, cols = s[s.length - 1];
    var z = $("map-zoom"), px = Math.max(4, Math.floor(300 / Math.max(rows, cols)));
    paint(z, a.data, ch * rows * cols, rows, cols, "seq");
    z.style.width = cols * px + "px"; z.style.height = rows * px + "px";
    z.setAttribute("data-layer", L.index); z.setAttribute("data-ch", ch); z.setAttribute("data-rows", rows); z.setAttribute("data-cols", cols);
    $("zoom-mark").hidden = true;
    $("zoom-title").textContent = L.label + ", channel " + ch + (L.conv ? " (click a position)" : " (a pooling layer: maxima, no kernel)");
    $("detail").hidden = false;
    clear($("madd"));
    var kbox = clear($("kernel"));
    state.zoom = { layer: L, ch: ch };
    if (L.conv && state.filters) {
      var F = state.filters.layers.filter(function (f) { return f.module === L.conv; })[0];
      if (F) {
        var w = unpack(F.weight), ws = w.shape, per = ws.slice(2).reduce(function (p, q) { return p * q; }, 1);
        var kh = ws.length > 3 ? ws[2] : 1, kw = ws[ws.length - 1];
        for (var c = 0; c < Math.min(ws[1], 16); c++) {
          kbox.appendChild(heat(w.data, (ch * ws[1] + c) * per, kh, kw, "div", 28, "input channel " + c));
        }
        if (ws[1] > 16) kbox.appendChild(el("p", { cls: "note", text: "first 16 of " + ws[1] + " input channels" }));
      }
    }
  }
  function zoomClick(ev) {
    var z = $("map-zoom"), rows = +z.getAttribute("data-rows"), cols = +z.getAttribute("data-cols");
    var r = z.getBoundingClientRect();
    var j = Math.floor((ev.clientX - r.left) / r.width * cols), i = Math.floor((ev.clientY - r.top) / r.height * rows);
    i = Math.max(0, Math.min(rows - 1, i)); j = Math.max(0, Math.min(cols - 1, j));
    var L = state.zoom.layer;
    if (!L.conv) return;
    var mark = $("zoom-mark"), cw = r.width / cols, ch = r.height / rows; // outline the clicked value
    mark.style.left = j * cw + "px"; mark.style.top = i * ch + "px"; mark.style.width = cw + "px"; mark.style.height = ch + "px";
    mark.hidden = false;
    var pos = rows > 1 || state.cnn.layers[L.index].maps.shape.length > 2 ? [i, j] : [j];
    if (STATIC) {
      var local = localMadd(L, state.zoom.ch, pos);
      if (local) renderMadd(local);
      else clear($("madd")).appendChild(el("p", { cls: "note", text: "this layer reads values the file does not hold: run `layerlab explore` on the run" }));
      return;
    }
    api("/api/run/" + state.run.id + "/conv?input=" + encodeURIComponent(state.input) + "&layer=" + L.index + "&channel=" + state.zoom.ch + "&pos=" + pos.join(","))
      .then(renderMadd).catch(showError);
  }
  // eq. 3.1.1 in the page, for the file without a server: the conv's input is the image or a map
  // shown before it (input_from), the kernel and bias are the filters' (float32 as the model holds them)
  function localMadd(L, ch, pos) {
    if (L.input_from == null || !state.filters || pos.length !== 2) return null;
    var src = unpack(L.input_from === -1 ? state.cnn.x : state.cnn.layers[L.input_from].maps);
    var F = state.filters.layers.filter(function (f) { return f.module === L.conv; })[0];
    if (!F || src.shape.length !== 3) return null;
    var w = unpack(F.weight), C = w.shape[1], kh = w.shape[2], kw = w.shape[3], H = src.shape[1], W = src.shape[2];
    var start = [L.stride[0] * pos[0], L.stride[1] * pos[1]], win = [], ker = [], prod = [], total = 0;
    for (var c = 0; c < C; c++) {
      var wc = [], kc = [], pc = [];
      for (var m = 0; m < kh; m++) {
        var wr = [], kr = [], pr = [];
        for (var n = 0; n < kw; n++) {
          var r = start[0] + m - L.padding[0], q = start[1] + n - L.padding[1];
          var xv = r >= 0 && r < H && q >= 0 && q < W ? src.data[(c * H + r) * W + q] : 0;
          var kv = w.data[((ch * C + c) * kh + m) * kw + n];
          wr.push(xv); kr.push(kv); pr.push(xv * kv); total += xv * kv;
        }
        wc.push(wr); kc.push(kr); pc.push(pr);
      }
      win.push(wc); ker.push(kc); prod.push(pc);
    }
    var a = unpack(L.maps), b = F.bias ? F.bias[ch] : 0;
    return { layer: L.index, name: L.name, channel: ch, pos: pos, start: start, padding: L.padding, stride: L.stride,
      window: win, kernel: ker, products: prod, bias: b, sum: total + b, torch: null,
      shown: a.data[(ch * a.shape[1] + pos[0]) * a.shape[2] + pos[1]] };
  }
  function grid(values, hiFn) { // a 2-D (or 1-D) list as a small table
    var t = el("table", { cls: "grid" });
    (Array.isArray(values[0]) ? values : [values]).forEach(function (row, i) {
      var tr = el("tr");
      row.forEach(function (v, j) { tr.appendChild(el("td", { cls: hiFn && hiFn(i, j) ? "hi" : "", text: fmt(v, 3) })); });
      t.appendChild(tr);
    });
    return t;
  }
  function renderMadd(d) {
    var box = clear($("madd"));
    box.appendChild(el("h4", { text: d.name + " channel " + d.channel + " at (" + d.pos.join(", ") + ")" }));
    box.appendChild(el("p", { cls: "note", text: "y[o,i,j] = \u03A3_c \u03A3_m \u03A3_n x_pad[c, s\u00B7i+m, s\u00B7j+n] \u00B7 W[o,c,m,n] + b[o]  (eq. 3.1.1; stride " + d.stride.join("\u00D7") + ", padding " + d.padding.join("\u00D7") + ", window starts at (" + d.start.join(", ") + ") of the padded input)" }));
    var terms = [], shown = 0;
    d.window.forEach(function (w, c) {
      if (c >= 4) return;
      shown++;
      box.appendChild(el("div", { cls: "row" },
        el("div", {}, el("div", { cls: "note", text: "input channel " + c + ": window" }), grid(w)),
        el("div", {}, el("div", { cls: "note", text: "\u00D7 kernel" }), grid(d.kernel[c])),
        el("div", {}, el("div", { cls: "note", text: "= products" }), grid(d.products[c]))));
    });
    if (d.window.length > shown) box.appendChild(el("p", { cls: "note", text: "(" + (d.window.length - shown) + " more input channels are in the sum)" }));
    var flat = [].concat.apply([], d.products.map(function (p) { return [].concat.apply([], p); }));
    var s = flat.reduce(function (a, b) { return a + b; }, 0);
    terms.push(el("div", { cls: "sum", id: "madd-terms", text: "sum of " + flat.length + " products = " + s.toPrecision(9) }));
    terms.push(el("div", { cls: "sum", text: "+ bias " + d.bias.toPrecision(9) }));
    terms.push(el("div", { cls: "sum", id: "madd-sum", "data-value": String(d.sum), text: "= " + d.sum.toPrecision(9) }));
    if (d.torch != null) terms.push(el("div", { cls: "note", id: "madd-torch", "data-value": String(d.torch), text: "torch's conv gives " + d.torch.toPrecision(9) + "; the map shows " + d.shown.toPrecision(9) + (d.shown !== d.torch ? " (after the activation)" : "") }));
    else terms.push(el("div", { cls: "note", text: "computed in this page from the input and the kernel; the map shows " + d.shown.toPrecision(9) + (Math.abs(d.shown - d.sum) > 1e-6 ? " (after the activation)" : "") }));
    terms.forEach(function (t) { box.appendChild(t); });
  }
  function loadFilters(id) {
    state.filters = null;
    api("/api/run/" + id + "/filters").then(function (j) {
      state.filters = j;
      var box = clear($("filters"));
      j.layers.forEach(function (F) {
        var w = unpack(F.weight), ws = w.shape, per = ws.slice(2).reduce(function (p, q) { return p * q; }, 1);
        var kh = ws.length > 3 ? ws[2] : 1, kw = ws[ws.length - 1], maps = el("div", { cls: "maps" });
        for (var o = 0; o < ws[0]; o++) maps.appendChild(heat(w.data, o * ws[1] * per, kh, kw, "div", 10, F.name + " filter " + o + " (input channel 0)"));
        box.appendChild(el("div", { cls: "layer" }, el("h4", { text: F.name + ": " + ws[0] + " filters of " + ws.slice(1).join("\u00D7") + " (input channel 0 shown; red positive, blue negative)" }), maps));
      });
    }).catch(showError);
  }
  function loadExcite() {
    var layer = $("excite-layer").value, box = clear($("excite"));
    if (layer === "") return;
    box.appendChild(el("p", { cls: "note", text: "reading the test images\u2026" }));
    var ticket = state.exciteTicket = (state.exciteTicket || 0) + 1; // only the latest request draws
    api("/api/run/" + state.run.id + "/excite?layer=" + layer).then(function (j) {
      var need = Array.from(new Set([].concat.apply([], j.top)));
      return api("/api/run/" + state.run.id + "/samples?indices=" + need.join(",")).then(function (s) {
        if (ticket !== state.exciteTicket) return;
        clear(box);
        var byIndex = {}; s.samples.forEach(function (x) { byIndex[x.index] = x; });
        j.top.slice(0, 16).forEach(function (idx, ch) {
          var row = el("div", { cls: "gallery" }, el("span", { cls: "note", text: "channel " + ch + " " }));
          idx.forEach(function (k) { row.appendChild(paintInput(el("canvas", { title: "test sample " + k }), byIndex[k].x)); });
          box.appendChild(row);
        });
        if (j.top.length > 16) box.appendChild(el("p", { cls: "note", text: "first 16 of " + j.top.length + " channels (of the first " + j.samples + " test samples)" }));
      });
    }).catch(showError);
  }
  function loadConfusion(id) {
    api("/api/run/" + id + "/confusion").then(function (j) {
      var t = el("table"), head = el("tr", {}, el("th", { text: "true \\ predicted" }));
      j.classes.forEach(function (c) { head.appendChild(el("th", { text: c })); });
      t.appendChild(head);
      var max = Math.max.apply(null, [].concat.apply([], j.matrix)) || 1;
      j.matrix.forEach(function (row, a) {
        var tr = el("tr", {}, el("th", { text: j.classes[a] }));
        row.forEach(function (v, b) {
          var c = a === b ? viridis(v / max) : diverging(v / max * 0.8), td = el("td", { "data-cell": a + "," + b, text: v });
          td.style.background = "rgb(" + c.map(Math.round).join(",") + ")";
          if (a === b && v / max > 0.5) td.style.color = "#000";
          td.addEventListener("click", function () { showMistakes(j, a, b); });
          tr.appendChild(td);
        });
        t.appendChild(tr);
      });
      clear($("confusion")).appendChild(t);
    }).catch(function (e) { clear($("confusion")).appendChild(el("p", { cls: "note", text: e.message })); });
  }
  function showMistakes(j, a, b) {
    var box = clear($("mistakes")), idx = j.mistakes[a + "," + b] || [];
    box.appendChild(el("h4", { text: a === b ? "correct: " + j.classes[a] : "true " + j.classes[a] + ", predicted " + j.classes[b] + ": " + idx.length + " shown" }));
    if (!idx.length) return;
    api("/api/run/" + state.run.id + "/samples?indices=" + idx.join(",")).then(function (s) {
      var g = el("div", { cls: "gallery", id: "mistake-gallery" });
      s.samples.forEach(function (x) {
        var c = paintInput(el("canvas", { "data-index": x.index, title: "test sample " + x.index }), x.x);
        c.addEventListener("click", function () { showInput("test:" + x.index); });
        g.appendChild(c);
      });
      box.appendChild(g);
    }).catch(showError);
  }

  // ---- recurrent
  function showRnn(key) {
    var id = state.run.id;
    return api("/api/run/" + id + "/rnn?input=" + encodeURIComponent(key)).then(function (j) {
      if (key !== state.input || id !== state.run.id) return; // an answer overtaken by a later choice
      state.rnnView = j;
      var inp = $("rnn-input");
      var txt = $("rnn-text");
      if (j.x.tokens) {
        inp.hidden = true; txt.hidden = false;
        txt.textContent = j.x.tokens.map(function (k) { return j.classes[k]; }).join("");
      } else { inp.hidden = false; txt.hidden = true; paintInput(inp, j.x, 4); }
      predictionTable($("rnn-prediction"), j.prediction);
      $("rnn-loss").textContent = j.loss == null ? "" : j.steps_target ? "loss " + fmt(j.loss) + ", the mean over the steps' targets" :
        "loss " + fmt(j.loss) + " for class " + j.classes[j.target] + (j.prediction.label == null ? " (the predicted class: an input without a label)" : "");
      var hb = clear($("hidden")), gb = clear($("grad"));
      j.layers.forEach(function (L, li) {
        var h = unpack(L.hidden), H = h.shape[0], T = h.shape[1], px = Math.max(3, Math.min(14, Math.floor(900 / T)));
        hb.appendChild(el("div", { cls: "note", text: "layer " + (li + 1) + ": " + H + " units \u00D7 " + T + " steps (blue \u22121, red +1)" }));
        hb.appendChild(heat(h.data, 0, H, T, "div", px, "h_t"));
        var g = unpack(L.grad);
        gb.appendChild(el("div", { cls: "note", text: "layer " + (li + 1) + ": dL/dh_t, units \u00D7 steps" }));
        gb.appendChild(heat(g.data, 0, H, T, "div", px, "dL/dh_t"));
        var ts = L.grad_norm.map(function (_, t) { return t + 1; });
        var chart = lineChart("||dL/dh_t|| layer " + (li + 1), [{ name: "||dL/dh_t||", xs: ts, ys: L.grad_norm, color: COLORS[li] }], { width: 520, height: 200, xlabel: "step t", integerX: true });
        chart.id = "grad-chart-" + (li + 1);
        gb.appendChild(chart);
      });
      var gw = clear($("gates"));
      $("gates-wrap").hidden = !j.gates.length;
      j.gates.forEach(function (G) {
        Object.keys(G.gates).forEach(function (name) {
          var a = unpack(G.gates[name]), H = a.shape[0], T = a.shape[1], px = Math.max(3, Math.min(14, Math.floor(900 / T)));
          var cell = /cell|candidate/.test(name);
          gw.appendChild(el("div", { cls: "note gate", "data-gate": name, text: "layer " + G.layer + ", " + name + (cell ? " (blue \u2212, red +)" : " (0 dark, 1 bright)") }));
          gw.appendChild(cell ? heat(a.data, 0, H, T, "div", px, name) : (function () {
            var c = paint(el("canvas", { cls: "heat", title: name }), a.data, 0, H, T, "seq", 0, 1);
            c.style.width = T * px + "px"; c.style.height = H * Math.max(1, Math.min(px, Math.floor(320 / H))) + "px"; return c;
          })());
        });
      });
      var ps = clear($("per-step"));
      if (j.per_step) {
        var p = unpack(j.per_step.p), K = p.shape[0], T = p.shape[1], px = Math.max(3, Math.min(14, Math.floor(900 / T)));
        ps.appendChild(el("div", { cls: "note", text: "probability of each class (rows) if the sequence ended at step t (columns); predicted: " + j.per_step.predicted.map(function (k) { return j.classes[k]; }).join(" ") }));
        ps.appendChild(heat(p.data, 0, K, T, "seq", px, "p(class | x_1..t)"));
      }
      loadSelection();
    }).catch(showError);
  }
  function loadSelection() {
    var units = $("sel-units").value.split(",").map(function (s) { return parseInt(s, 10); }).filter(function (v) { return v >= 0; });
    var th = parseFloat($("sel-threshold").value), box = clear($("selection"));
    var ticket = state.selTicket = (state.selTicket || 0) + 1; // only the latest request draws
    var go = function (j) {
      if (ticket !== state.selTicket) return;
      state.sel = j;
      j.sequences.forEach(function (s) {
        var h = unpack(s.hidden), H = h.shape[0], T = h.shape[1], fired = new Float32Array(T);
        for (var t = 0; t < T; t++) {
          var all = units.length > 0;
          units.forEach(function (u) { if (u >= H || h.data[u * T + t] < th) all = false; });
          fired[t] = all ? 1 : 0;
        }
        var row = el("div", { cls: "fired", "data-index": s.index }, el("span", { cls: "note", text: "sequence " + s.index + (s.label != null ? " (class " + state.rnnView.classes[s.label] + ")" : "") + " " }));
        row.appendChild(heat(fired, 0, 1, T, "seq", Math.max(3, Math.min(14, Math.floor(700 / T))), "steps where every selected unit is above the threshold"));
        box.appendChild(row);
      });
    };
    if (state.sel && state.sel.run === state.run.id) go(state.sel);
    else api("/api/run/" + state.run.id + "/rnn_many?count=24").then(function (j) { j.run = state.run.id; go(j); }).catch(showError);
  }

  // ---- inputs the user makes
  function sendPixels(pixels) {
    api("/api/run/" + state.run.id + "/input", { pixels: pixels }).then(function (j) { showInput(j.input); }).catch(showError);
  }
  function canvasPixels(source) { // any image or canvas -> the run's (C, H, W) 8-bit values
    var shape = state.spec.image_shape || state.spec.shape, C = shape[0], H = shape[1], W = shape[2];
    var c = el("canvas"); c.width = W; c.height = H;
    var ctx = c.getContext("2d"); ctx.fillStyle = "#000"; ctx.fillRect(0, 0, W, H); ctx.drawImage(source, 0, 0, W, H);
    var d = ctx.getImageData(0, 0, W, H).data, out = [];
    for (var ch = 0; ch < C; ch++) for (var p = 0; p < H * W; p++) out.push(C === 1 ? Math.round((d[4 * p] + d[4 * p + 1] + d[4 * p + 2]) / 3) : d[4 * p + ch]);
    return out;
  }
  function setupInputs() {
    $("sample-go").addEventListener("click", function () { showInput("test:" + $("sample-index").value); });
    $("upload").addEventListener("change", function (ev) {
      var f = ev.target.files[0]; if (!f) return;
      var img = new Image(), url = URL.createObjectURL(f);
      img.onload = function () { sendPixels(canvasPixels(img)); URL.revokeObjectURL(url); };
      img.onerror = function () { showError(new Error("the browser cannot read that file as an image")); };
      img.src = url;
    });
    var d = $("draw"), ctx = d.getContext("2d"), down = false;
    function reset() { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, d.width, d.height); }
    reset();
    d.addEventListener("mousedown", function () { down = true; });
    window.addEventListener("mouseup", function () { down = false; });
    d.addEventListener("mousemove", function (ev) {
      if (!down) return; var r = d.getBoundingClientRect();
      var sx = d.width / r.width, sy = d.height / r.height; // CSS pixels to the canvas's own
      ctx.fillStyle = "#fff"; ctx.beginPath(); ctx.arc((ev.clientX - r.left) * sx, (ev.clientY - r.top) * sy, 9, 0, 2 * Math.PI); ctx.fill();
    });
    $("draw-clear").addEventListener("click", reset);
    $("draw-go").addEventListener("click", function () { sendPixels(canvasPixels(d)); });
    $("csv").addEventListener("change", function (ev) {
      var f = ev.target.files[0]; if (!f) return;
      f.text().then(function (text) {
        var rows = text.split(/\r?\n/).map(function (line) { return line.trim(); }).filter(Boolean)
          .map(function (line) { return line.split(/[,;\t ]+/).map(Number); })
          .filter(function (r) { return r.every(function (v) { return isFinite(v); }); }); // a header row drops out
        return api("/api/run/" + state.run.id + "/input", { sequence: rows });
      }).then(function (j) { showInput(j.input); }).catch(showError);
    });
    $("text-go").addEventListener("click", function () {
      api("/api/run/" + state.run.id + "/input", { text: $("text-input").value }).then(function (j) { showInput(j.input); }).catch(showError);
    });
    $("map-zoom").addEventListener("click", zoomClick);
    $("excite-layer").addEventListener("change", loadExcite);
    $("sel-go").addEventListener("click", loadSelection);
    $("refresh").hidden = !!STATIC;
    $("refresh").addEventListener("click", function () { api("/api/refresh", {}).then(loadRuns).catch(function (e) { $("problems").textContent = e.message; }); });
    $("filter").addEventListener("input", function (ev) { state.filter = ev.target.value; renderRuns(); });
    $("pc-metric").addEventListener("change", function () { renderParcoords(visibleRuns()); });
  }

  function route() {
    var m = /^#run=([0-9a-f]{12})$/.exec(location.hash);
    if (m) openRun(m[1]);
    else { $("runs-view").hidden = false; $("run-view").hidden = true; clear($("nav-run")); }
  }
  setupInputs();
  window.addEventListener("hashchange", route);
  loadRuns().then(function () {
    if (STATIC && STATIC.tick) STATIC.tick.forEach(function (id) { state.ticked[id] = true; });
    if (STATIC) { renderRuns(); renderCurves(); }
    var open = document.body.getAttribute("data-open");
    if (STATIC && open && !location.hash) location.hash = "#run=" + open; // fires route()
    else route();
  });
  window.layerlabExplore = state; // for the tests and the curious
  state.showInput = showInput; // a promise that settles once the input's views are drawn (timed by benchmarks/)
})();
