"""CSV tables, and figures written with the CSV of their numbers: shared by the inspection views,
the experiments and the claims. Torch-free (NumPy and matplotlib at most)."""

from __future__ import annotations

import csv
from pathlib import Path


def write_csv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Write dict rows as CSV (columns: the given ones, else the union in first-seen order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return path


def write_table(path: str | Path, header: list[str], rows: list[list]) -> Path:
    """Write a CSV of positional rows under ``header``: any names (a class called ``true``, two
    classes of one name, commas or quotes in a name) stay in their own column."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([["" if v is None else v for v in r] for r in rows])
    return path


def save_figure(fig, out: Path, stem: str, rows: list, columns: list[str] | None = None) -> dict:
    """``out/stem.png`` and ``out/stem.csv`` (dict rows, or list rows under ``columns``); returns both paths."""
    from . import plots  # matplotlib, loaded when a figure is written

    png = plots.save(fig, out / f"{stem}.png")
    if rows and isinstance(rows[0], list):
        data = write_table(out / f"{stem}.csv", columns or [], rows)
    else:
        data = write_csv(out / f"{stem}.csv", rows, columns)
    return {"png": str(png), "csv": str(data)}
