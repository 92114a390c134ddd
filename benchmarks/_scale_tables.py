"""The tables ``scale.py`` prints: one per size, and the ratios of every size."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def brief(record: dict[str, Any]) -> str:
    if record["status"] != "ok":
        return f"{record['status']}: {record.get('reason', '')}"
    return f"{_num(record['seconds'])} s, {record['peak_mib']:,.0f} MiB"


def _note(row: dict[str, Any]) -> str:
    ours, ref = row["ours"], row["reference"] or {}
    if ours["status"] != "ok":
        return ours.get("reason", "")
    if ref.get("status") not in (None, "ok"):
        return ref.get("reason", "")
    if "common_wape" in row:  # on the rows both forecast
        series = [p.get("series", 0) for p in ref.get("parts", {}).values()]
        return f"series {ours['series']:,}/{max(series, default=0):,}, WAPE " + ", ".join(
            f"{m} {v['ours']:.1f}/{v['peer']:.1f}" for m, v in (row["common_wape"] or {}).items())
    if "samples" in ours:
        work = (f"; dataset MiB {ours['work_mib']:,.0f} vs {ref['work_mib']:,.0f} "
                f"(x{row['ratio_work']:.2f})" if "ratio_work" in row else "")
        return f"samples {ours['samples']:,} vs {ref.get('samples', 0):,}{work}"
    if "train_windows" in ours:
        return f"{ours['train_windows'] or 0:,} training windows"
    if "mib_per_million_rows" in ours:
        return f"panel: {ours['mib_per_million_rows']:.1f} MiB per million rows"
    if "ratio_seconds" in row and "workers" in ours:
        return f"speed-up x{row['ratio_seconds']:.2f}"
    return f"fit {_num(ours['fit_s'])} s vs {_num(ref['fit_s'])} s" if "fit_s" in ref else ""


def size_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"{result['size']} series: wall seconds and peak RSS (MiB), each in "
                        "its own process")
    for column in ("step", "ours s", "ours MiB", "reference", "ref s", "ref MiB", "s ratio",
                   "MiB ratio", "note"):
        table.add_column(column, justify="left" if column in ("step", "reference", "note")
                         else "right")
    for row in result["rows"]:
        cells = []
        for record in (row["ours"], row["reference"]):
            ok = record is not None and record["status"] == "ok"
            cells += ([_num(record["seconds"]), f"{record['peak_mib']:,.0f}"] if ok
                      else [record["status"] if record else "", ""])
        ratios = [_num(row[k]) if k in row else "" for k in ("ratio_seconds", "ratio_peak")]
        table.add_row(row["step"], *cells[:2], row["reference_name"] or "", *cells[2:],
                      *ratios, _note(row))
    return table


def summary_table(results: list[dict[str, Any]]) -> Table:
    labels = list(dict.fromkeys(row["step"] for r in results for row in r["rows"]))
    title = "ours / reference: seconds (peak RSS); ray: 1 worker / 2 workers"
    table = Table(title=title, min_width=len(title) + 4)
    for column in ("series", *labels):
        table.add_column(column, justify="right")
    for result in results:
        cells = {row["step"]: f"{_num(row['ratio_seconds'])} ({_num(row['ratio_peak'])})"
                 for row in result["rows"] if "ratio_seconds" in row}
        table.add_row(result["size"], *(cells.get(label, "-") for label in labels))
    return table
