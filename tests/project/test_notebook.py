"""``examples/first-week.ipynb`` executed by a real Jupyter kernel (nbclient, ipykernel): one-hot
labels, a torch Dataset, metrics by name in ``history.history``, early stopping, fine-tuning on a new
3-class task with a new head, save and load, ``lr_find`` and a plot. The saved notebook's progress
output is checked as a reader sees it: one bar per epoch, each left in its final state (every step
done), and no empty outputs beside them.

The kernel is this interpreter with this checkout's ``src`` on its path, from a kernel spec written
for the test (so no kernel installed elsewhere is picked up, and nothing is fetched)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

import layerlab

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "first-week.ipynb"

pytestmark = pytest.mark.slow  # about 35 s: a kernel, six trainings


def _text(output) -> str:
    data = output.get("data", {})
    return output.get("text", "") or data.get("text/plain", "")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("ipywidgets")
    pytest.importorskip("sklearn")
    tmp = tmp_path_factory.mktemp("notebook")
    spec = tmp / "jupyter" / "kernels" / "layerlab-test"
    spec.mkdir(parents=True)
    src = str(Path(layerlab.__file__).resolve().parents[1])
    env = {
        "PYTHONPATH": os.pathsep.join(p for p in [src, os.environ.get("PYTHONPATH", "")] if p),
        # one thread: torch's default (all cores) beside this process oversubscribes a small machine
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "layerlab test", "env": env}))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(tmp / "jupyter")  # searched before any installed kernel spec
    try:
        nb = nbformat.read(NOTEBOOK, as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=600, kernel_name="layerlab-test", resources={"metadata": {"path": str(tmp)}}
        )
        client.execute()  # a failing cell raises CellExecutionError, naming it
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old
    return nb


def _cell(nb, needle: str):
    return next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)


def test_the_shipped_notebook_has_no_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_the_notebook_trains_with_one_hot_labels_metrics_and_early_stopping(executed):
    cell = _cell(executed, "np.eye(10)[y_train]")
    result = next(o for o in cell.outputs if o.output_type == "execute_result")
    keys = eval(result["data"]["text/plain"])  # the list sorted(history.history) shows
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "val_top3_accuracy", "val_f1_macro"} <= set(keys)
    assert any("is one-hot: read as class ids 0..9" in _text(o) for o in cell.outputs)
    summary = "".join(_text(o) for o in _cell(executed, "stopped after").outputs)
    stopped, best = map(int, re.search(r"stopped after (\d+) epochs; best epoch (\d+)", summary).groups())
    assert stopped < 20 and stopped == best + 2  # early stopping, patience 2
    assert float(re.search(r"test accuracy ([0-9.]+)", summary).group(1)) > 0.8


def test_the_notebooks_progress_keeps_a_final_state_per_epoch_and_no_empty_outputs(executed):
    cell = _cell(executed, "np.eye(10)[y_train]")
    views = [o for o in cell.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    lines = [o for o in cell.outputs if re.match(r"epoch \d+ \|", _text(o))]
    assert len(views) == len(lines) > 1  # one bar per epoch, each followed by its epoch line
    displays = [o for o in cell.outputs if o.output_type == "display_data" and o not in views]
    assert all(_text(o).strip() for o in displays), "an empty output beside the bars"
    state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    for view in views:
        outputs = state[view["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]]["state"]["outputs"]
        assert outputs, "an empty progress widget"
        text = re.sub(r"\x1b\[[0-9;]*m", "", "".join(_text(o) for o in outputs))
        done = re.search(r"epoch \d+/20 .* (\d+)/(\d+) loss", text)
        assert done and done.group(1) == done.group(2) == "25", text  # 800 samples / batch 32: every step


def test_the_notebook_reads_a_dataset_fine_tunes_saves_loads_and_finds_a_rate(executed):
    dataset = "".join(_text(o) for o in _cell(executed, "class Digits").outputs)
    assert "epoch 2 |" in dataset and "test accuracy" in dataset
    tuned = "".join(_text(o) for o in _cell(executed, 'head="new"').outputs)
    assert "weights from" in tuned and tuned.split("weights from ")[1].split()[0].endswith("digits")
    assert float(re.search(r"test accuracy ([0-9.]+)", tuned).group(1)) > 0.5  # 3 classes: chance is about 1/3
    assert "['0', '1', '2'] True" in "".join(_text(o) for o in _cell(executed, "layerlab.load(path)").outputs)
    found = _cell(executed, "layerlab.lr_find")
    assert re.search(r"suggested learning rate [0-9.e-]+", "".join(_text(o) for o in found.outputs))
    plots = [c for c in executed.cells if c.cell_type == "code" and "plt.show()" in c.source]
    assert len(plots) == 2 and all(any("image/png" in o.get("data", {}) for o in c.outputs) for c in plots)
