"""The CSV tables every figure is written with (layerlab.tables): shared by the views, the experiments
and the claims, and loading no torch."""

import csv
import subprocess
import sys

from layerlab.tables import write_csv, write_table


def test_write_csv_takes_the_union_of_columns_in_first_seen_order(tmp_path):
    path = write_csv(tmp_path / "sub" / "t.csv", [{"a": 1, "b": None}, {"c": 2.5, "a": 3}])
    with open(path, newline="") as f:
        assert list(csv.reader(f)) == [["a", "b", "c"], ["1", "", ""], ["3", "", "2.5"]]


def test_write_table_keeps_odd_names_in_their_columns(tmp_path):
    path = write_table(tmp_path / "t.csv", ["true", "a,b", 'q"'], [[1, None, "x"]])
    with open(path, newline="") as f:
        assert list(csv.reader(f)) == [["true", "a,b", 'q"'], ["1", "", "x"]]


def test_tables_and_choices_load_no_torch_nor_the_views():
    code = (
        "import sys, layerlab.tables, layerlab.choices; "
        "print('torch' in sys.modules, 'layerlab.inspect.views' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
