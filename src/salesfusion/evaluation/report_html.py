"""HTML building blocks shared by the backtest, forecast and explain reports: the style sheet,
tables, the colour palette, quantile bands on plotly figures and self-contained pages (plotly's
JavaScript embedded once, in the first figure, so a page works offline)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime

import plotly.graph_objects as go
import polars as pl

from salesfusion.data.forecast_frame import quantile_level

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left} th{background:#f3f3f3}
.best{font-weight:bold;background:#e8f5e9} .note{color:#666;font-size:.85rem}
.item{display:inline-flex;align-items:center;gap:.4rem;text-align:left}
.item img{width:40px;height:40px;object-fit:contain;border:1px solid #ddd}
.series-head .item img{width:64px;height:64px} .warn{background:#fff8e1;padding:.4rem .6rem}
"""
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def html_table(frame: pl.DataFrame, best_lowest: tuple[str, ...] = (),
               raw: tuple[str, ...] = ()) -> str:
    """``frame`` as an HTML table (floats to 3 decimals, missing and non-finite values blank),
    the lowest value of each ``best_lowest`` column marked. Cells of the ``raw`` columns are
    HTML the report built (item cells with thumbnails) and are inserted as they are."""
    best = {c: frame[c].min() for c in best_lowest if c in frame.columns}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.iter_rows(named=True):
        cells = []
        for column, value in row.items():
            marked = ' class="best"' if column in best and value == best[column] else ""
            text = "" if value is None else str(value) if column in raw else _cell(value)
            cells.append(f"<td{marked}>{text}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3f}" if math.isfinite(value) else ""
    return html.escape(str(value))


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def translucent(hex_colour: str, alpha: float = 0.18) -> str:
    """``#rrggbb`` as an ``rgba()`` fill, for bands that must not hide the lines under them."""
    red, green, blue = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def band_name(label: str, low: str, high: str) -> str:
    """A band's legend name, e.g. ``lightgbm 80% band (q0.1-q0.9)``."""
    return f"{label} {nominal_level(low, high):.0%} band ({low}-{high})"


def nominal_level(low: str, high: str) -> float:
    """The share of actuals a ``[low, high]`` quantile band should hold (``q0.9 - q0.1``)."""
    return round(quantile_level(high) - quantile_level(low), 6)


def add_band(figure: go.Figure, x: Sequence[object] | pl.Series, low: pl.Series,
             high: pl.Series, *, name: str, colour_hex: str, group: str,
             show_legend: bool = True, visible: bool | str = True) -> None:
    """A filled band between ``low`` and ``high``: an invisible upper edge, then the lower
    edge filled up to it (plotly fills ``tonexty`` towards the previous trace)."""
    common = {"x": x, "mode": "lines", "line": {"width": 0}, "legendgroup": group,
              "hoverinfo": "skip", "visible": visible}
    figure.add_trace(go.Scatter(y=high, name=f"{name} upper", showlegend=False, **common))
    figure.add_trace(go.Scatter(y=low, name=name, fill="tonexty",
                                fillcolor=translucent(colour_hex), showlegend=show_legend,
                                **common))


def figure_layout(figure: go.Figure, title: str, height: int = 330) -> go.Figure:
    figure.update_layout(title=title, height=height, yaxis_title="units",
                         margin={"l": 40, "r": 10, "t": 40, "b": 30})
    return figure


class Figures:
    """Renders figures in page order; the first carries plotly.js, the rest reuse it."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, figure: go.Figure) -> str:
        self.count += 1
        return figure.to_html(full_html=False, include_plotlyjs=self.count == 1)


def page(title: str, body: str) -> str:
    """A whole HTML document with the report style and a generated-at line under the title."""
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class=\"note\">Generated {stamp} UTC by salesfusion.</p>{body}</body></html>")


def section(anchor: str, heading: str, content: str) -> str:
    """A titled section with an id, so readers (and tests) can find it."""
    return f'<section id="{anchor}"><h2>{html.escape(heading)}</h2>{content}</section>'
