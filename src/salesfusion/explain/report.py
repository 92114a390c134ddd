"""The HTML report of ``salesfusion explain``: one self-contained page built from the tables the
pipeline wrote (``explain.pipeline``), so every number shown is one a user can reload from
the folder. Plotly's JavaScript is embedded once, in the first figure, so the page works
offline. Each plot has a one-sentence reading guide and its table under it."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl

from salesfusion.evaluation.report import STYLE, colour, html_table

MAX_ROWS = 40  # rows of a table shown in the page; the CSV beside it has them all
CONTENT = ("text", "image", "static")


class _Page:
    """Sections of the page; figures share one copy of plotly.js (the first one carries it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parts: list[str] = []
        self.figures = 0

    def read(self, name: str) -> pl.DataFrame | None:
        path = self.folder / f"{name}.parquet"
        return pl.read_parquet(path) if path.is_file() else None

    def add(self, text: str) -> None:
        self.parts.append(text)

    def plot(self, figure: go.Figure, guide: str) -> None:
        figure.update_layout(height=380, margin={"l": 50, "r": 10, "t": 40, "b": 40})
        self.add(f"<p class='note'>{html.escape(guide)}</p>")
        self.add(figure.to_html(full_html=False, include_plotlyjs=self.figures == 0))
        self.figures += 1

    def table(self, frame: pl.DataFrame, name: str) -> None:
        more = (f" (first {MAX_ROWS} of {frame.height:,} rows)" if frame.height > MAX_ROWS
                else "")
        self.add(f"{html_table(frame.head(MAX_ROWS))}<p class='note'>Table "
                 f"{html.escape(name)}.csv / .parquet{more}.</p>")


def _lines(frame: pl.DataFrame, x: str, y: str, by: str, title: str,
           band: tuple[str, str] | None = None) -> go.Figure:
    """One line per value of ``by``, with its ``band`` (lo, hi columns) shaded."""
    figure = go.Figure()
    for index, name in enumerate(frame[by].unique().sort().to_list()):
        part = frame.filter(pl.col(by) == name).sort(x)
        shade = colour(index)
        # The band where it is known (a cell of one item, a lag no bootstrap reached has none).
        if band and (known := part.drop_nulls(list(band))).height:
            figure.add_trace(go.Scatter(
                x=[*known[x], *known[x].reverse()],
                y=[*known[band[1]], *known[band[0]].reverse()],
                fill="toself", fillcolor=shade, opacity=0.15, line={"width": 0},
                showlegend=False, hoverinfo="skip", legendgroup=str(name)))
        figure.add_trace(go.Scatter(x=part[x], y=part[y], name=str(name), mode="lines+markers",
                                    line={"color": shade}, legendgroup=str(name)))
    figure.update_layout(title=title, xaxis_title=x, yaxis_title=y)
    return figure


def _holdout(page: _Page, summary: dict[str, Any]) -> None:
    holdout = summary["holdout"]
    fit = ("a clone refitted up to the origin (out of sample)" if holdout["refit"]
           else "the loaded model, not refitted (errors may be in-sample)")
    page.add(f"<h2>Holdout errors by segment</h2><p>Origin {holdout['origin']}, horizon "
             f"{holdout['horizon']}, {holdout['n_series']:,} series; {fit}.</p>")
    by_step = page.read("errors_by_segment_step")
    if by_step is not None:
        page.plot(_lines(by_step, "step", "wape", "segment", "WAPE (%) by segment and step"),
                  "Each line is a segment's WAPE at each forecast step: a line above the others "
                  "is a segment the model forecasts worse; a rising line, errors growing "
                  "with the step.")
        page.table(by_step, "errors_by_segment_step")
    overall = page.read("errors_by_segment")
    if overall is not None:
        page.table(overall, "errors_by_segment")


def _gradients(page: _Page, summary: dict[str, Any]) -> None:
    guides = {"shares_by_step": ("step", "Each line is a modality's mean share of the "
                                 "attributions at each forecast step (band: 95% interval); "
                                 "a line that rises leans more on that modality further ahead."),
              "shares_by_time": ("timestamp", "Modality shares by forecast period: a line that "
                                 "moves shows the model leaning on a modality at some dates "
                                 "more than others (seasons, events).")}
    for name, (x, guide) in guides.items():
        frame = page.read(name)
        if frame is not None:
            page.plot(_lines(frame, x, "share", "group", f"Modality share by {x}",
                             ("share_lo", "share_hi")), guide)
            page.table(frame, name)
    by_age = page.read("shares_by_age")
    if by_age is not None:
        figure = _lines(by_age, "age", "share", "group", "Modality share over the life cycle")
        content = (by_age.filter(pl.col("group").is_in(CONTENT)).group_by("age")
                   .agg(pl.col("share").sum()).sort("age"))
        curve = page.read("inverted_u_curve")
        if content.height:
            figure.add_trace(go.Scatter(x=content["age"], y=content["share"], mode="markers",
                                        name="content (text+image+static)",
                                        marker={"color": "black"}))
        if curve is not None:
            figure.add_trace(go.Scatter(x=[*curve["x"], *curve["x"].reverse()],
                                        y=[*curve["hi"], *curve["lo"].reverse()], fill="toself",
                                        fillcolor="grey", opacity=0.25, line={"width": 0},
                                        name="fit 95% band", hoverinfo="skip"))
            figure.add_trace(go.Scatter(x=curve["x"], y=curve["share"], name="quadratic fit",
                                        line={"color": "black", "dash": "dash"}))
        page.plot(figure, "Shares by the series' age at the origin (periods since its first "
                  "sale); the black points are the content modalities together and the dashed "
                  "curve their quadratic fit: an arch means content matters most mid-life.")
        verdict = (summary["explanations"].get("inverted_u") or {}).get("verdict")
        if verdict:
            page.add(f"<p>Inverted-U test of the content share over age: "
                     f"<b>{html.escape(verdict)}</b> (summary.json has the curvature, vertex "
                     f"and their intervals).</p>")
        page.table(by_age, "shares_by_age")
    by_segment = page.read("shares_by_segment")
    if by_segment is not None:
        figure = go.Figure()
        for index, group in enumerate(by_segment["group"].unique().sort().to_list()):
            part = by_segment.filter(pl.col("group") == group).sort("segment")
            figure.add_trace(go.Bar(x=part["segment"], y=part["share"], name=group,
                                    marker_color=colour(index), error_y={
                                        "type": "data", "symmetric": False,
                                        "array": (part["share_hi"] - part["share"]).to_list(),
                                        "arrayminus": (part["share"] - part["share_lo"])
                                        .to_list()}))
        figure.update_layout(barmode="group", title="Modality share by segment")
        page.plot(figure, "Bars compare each modality's share between segments: a taller bar "
                  "in one segment means its forecasts lean more on that modality there.")
        page.table(by_segment, "shares_by_segment")
    _selection_and_attention(page, summary)


def _selection_and_attention(page: _Page, summary: dict[str, Any]) -> None:
    weights = page.read("selection_weights")
    if weights is not None:
        page.add("<h3>TFT variable selection weights</h3>")
        mean = (weights.group_by("kind", "variable").agg(pl.col("weight").mean())
                .sort("kind", "weight", descending=[False, True]))
        figure = go.Figure()
        for index, kind in enumerate(mean["kind"].unique().sort().to_list()):
            part = mean.filter(pl.col("kind") == kind)
            figure.add_trace(go.Bar(x=part["variable"], y=part["weight"], name=kind,
                                    marker_color=colour(index)))
        figure.update_layout(barmode="group", title="Mean selection weight per variable",
                             yaxis_title="weight")
        page.plot(figure, "The TFT's own weighting of its inputs, averaged over windows: within "
                  "a kind (static, history, future) the weights sum to 1, so a tall bar is a "
                  "variable the network selects more.")
        page.table(mean, "selection_weights (means; per window in the file)")
    for name in summary["explanations"].get("attention", []):
        values = np.load(page.folder / name)
        values = values.reshape(1, -1) if values.ndim < 2 else values
        matrix = values.reshape(-1, *values.shape[-2:]).mean(axis=0)  # mean over leading axes
        figure = go.Figure(go.Heatmap(z=matrix, colorscale="Viridis"))
        figure.update_layout(title=f"Attention map: {Path(name).stem}",
                             xaxis_title="attended position", yaxis_title="query position")
        page.plot(figure, "Each row is a query position, each column the position it attends "
                  "to; bright cells are the periods the model looked at (mean over windows "
                  "and heads).")


def _importance(page: _Page) -> None:
    table = page.read("importance")
    if table is None:
        return
    figure = go.Figure(go.Bar(x=table["group"], y=table["increase"],
                              error_y={"type": "data", "array": table["increase_sd"].to_list()}))
    figure.update_layout(title="WAPE increase when an input group is permuted",
                         yaxis_title="WAPE points")
    page.plot(figure, "A taller bar is an input group whose scrambling costs more accuracy: "
              "the model relies on it more (bars: standard deviation over repeats).")
    page.table(table, "importance")


def _kol(page: _Page) -> None:
    for source, title in (("event_response", "from the data (event study)"),
                          ("model_response", "implied by the model (counterfactual)")):
        curves = page.read(f"{source}_curves")
        if curves is None:
            continue
        page.add(f"<h3>Response {title}</h3>")
        page.plot(_lines(curves, "lag", "uplift", "segment", f"KOL uplift {title}",
                         ("lo", "hi")),
                  "Each line is a segment's log uplift of a featured item's demand at each lag "
                  "after a live stream (band: bootstrap interval where given); a fast fall is "
                  "a short half-life.")
        page.table(curves, f"{source}_curves")
        summary = page.read(f"{source}_summary")
        if summary is not None:
            page.table(summary, f"{source}_summary")


def _cycles(page: _Page) -> None:
    periods = page.read("cycle_periods")
    if periods is None:
        return
    figure = go.Figure()
    for index, name in enumerate(periods["segment"].unique().sort().to_list()):
        part = periods.filter(pl.col("segment") == name)
        figure.add_trace(go.Scatter(
            x=part["period"], y=part["power_share"], mode="markers", name=name,
            marker={"color": colour(index), "size": 12,
                    "symbol": ["circle" if s else "circle-open" for s in part["significant"]]}))
    figure.update_layout(title="Top cycles per segment", xaxis_title="period (periods)",
                         yaxis_title="share of detrended variance")
    page.plot(figure, "Each point is one of a segment's largest spectral peaks: filled when it "
              "beats red noise, higher when it explains more of the demand's variation.")
    page.table(periods, "cycle_periods")
    comparison = page.read("cycle_comparison")
    if comparison is not None and comparison.height:
        page.table(comparison, "cycle_comparison")


def write_report(folder: Path, title: str) -> Path:
    """Write ``folder/report.html`` from ``folder``'s ``summary.json`` and tables."""
    summary = json.loads((folder / "summary.json").read_text())
    page = _Page(folder)
    model, data, origin = summary["model"], summary["data"], summary["provenance"]
    page.add(f"<h1>{html.escape(title)}</h1><p class='note'>Generated "
             f"{html.escape(str(origin['date_utc']))} by salesfusion, commit "
             f"{html.escape(str(origin['commit']))}.</p><h2>Model and data</h2><p>Model "
             f"<b>{html.escape(model['name'])}</b> (freq {model['freq']}); "
             f"{data['n_series']:,} series over {data['n_periods']} periods from "
             f"{html.escape(str(data['source']))}.</p>")
    segments = page.read("segments")
    page.add(f"<h2>Segments</h2><p>{html.escape(summary['segments']['source'])}: "
             f"{summary['segments']['k']} segment(s).</p>")
    if segments is not None:
        page.table(segments, "segments")
    _holdout(page, summary)
    page.add("<h2>What the model leans on</h2>")
    method = summary["explanations"].get("method")
    if method == "integrated_gradients":
        page.add("<p>Integrated-gradients attributions of the loaded model's forecasts, "
                 "summed per modality; a modality's share is its absolute attribution over "
                 "the total at each window and step.</p>")
        _gradients(page, summary)
    elif method == "permutation_importance":
        _importance(page)
    else:
        page.add("<p>This model has no explanation method (see the notes).</p>")
    page.add("<h2>KOL / live-stream response</h2>")
    _kol(page)
    page.add("<h2>Demand cycles</h2>")
    _cycles(page)
    notes = summary.get("notes") or []
    page.add("<h2>Notes</h2>" + ("<ul>" + "".join(
        f"<li><b>{html.escape(n['step'])}</b>: {html.escape(n['note'])}</li>" for n in notes)
        + "</ul>" if notes else "<p>Every analysis applied.</p>"))
    path = folder / "report.html"
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>"
                    f"{html.escape(title)}</title><style>{STYLE}</style></head><body>"
                    f"{''.join(page.parts)}</body></html>")
    return path
