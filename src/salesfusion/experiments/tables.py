"""An experiment's tables as Markdown, HTML and LaTeX, and its plots (one self-contained HTML
file: metric by model with error bars, the ablation heatmap, the critical-difference diagram).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from salesfusion.experiments.config import ExperimentConfig


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def headline_table(results: Any, config: ExperimentConfig) -> pl.DataFrame:
    """Per dataset and model: the primary metric (mean ± std over trials), its rank, the change
    against the best baseline, and every other metric's mean ± std."""
    wide = results.summary.with_columns(
        pl.format("{} ± {}", pl.col("mean").round(3), pl.col("std").fill_null(0).round(3))
        .alias("cell")).pivot(on="metric", index=["dataset", "model"], values="cell")
    head = results.headline.select(
        "dataset", "model", "rank", pl.col("vs_best_baseline_pct").round(1)
        .alias("vs best baseline %"), pl.col("baseline"))
    others = [m for m in config.metrics if m != config.headline_metric and m in wide.columns]
    return head.join(wide, on=["dataset", "model"], how="left").select(
        "dataset", "model", "baseline", config.headline_metric, "rank", "vs best baseline %",
        *others)


def significance_view(results: Any) -> pl.DataFrame:
    if not results.significance.height:
        return pl.DataFrame()
    return results.significance.select(
        "dataset", pl.col("model_a").alias("model"), pl.col("model_b").alias("vs baseline"),
        pl.col("dm_statistic").round(3).alias("DM (HLN)"),
        pl.col("dm_p_value").alias("DM p"), pl.col("wilcoxon_p_value").alias("Wilcoxon p"),
        pl.format("{}/{}/{}", "a_better", "tied", "b_better").alias("series better/tied/worse"),
        pl.col("loss").alias("tested on"), "note")


def ranking_view(results: Any) -> pl.DataFrame:
    ranking = results.ranking or {}
    if "mean_ranks" not in ranking:
        return pl.DataFrame()
    # A group is a run of models within one critical difference of each other (a CD bar).
    groups = {m: ",".join(str(i + 1) for i, group in enumerate(ranking["groups"])
                          if m in group) for m in ranking["mean_ranks"]}
    return pl.DataFrame({"model": list(ranking["mean_ranks"]),
                         "mean rank": list(ranking["mean_ranks"].values()),
                         "CD groups": [groups[m] for m in ranking["mean_ranks"]]})


def _markdown(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return "(none)"
    lines = ["| " + " | ".join(frame.columns) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    for row in frame.iter_rows():
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines)


def render_tables(results: Any, config: ExperimentConfig, folder: Path,
                  record: dict[str, Any]) -> list[str]:
    """``results.md``, ``results.html`` and ``results.tex``: the same tables in each."""
    label = config.headline_metric
    sections = [(f"Headline: {label} (mean ± std over trials; ranked by metric "
                 f"{config.metric})", headline_table(results, config)),
                (f"Paired significance against the best baseline, by {label}",
                 significance_view(results)),
                (f"Critical-difference ranking by {label}", ranking_view(results))]
    if results.ablation is not None:
        sections.append(("Ablation grid: " + config.headline_metric, results.ablation))
    if results.oracle.height:
        sections.append(("Oracle: the true mean's error on the same rows (the floor)",
                         results.oracle.pivot(on="metric", index=["dataset", "rows"],
                                              values="value")))
    provenance = record.get("provenance", {})
    caption = (f"Experiment `{config.name}`: `{record.get('command')}`; commit "
               f"{(provenance.get('commit') or 'unknown')[:12]}, {provenance.get('date_utc')}, "
               f"threads {provenance.get('threads', {}).get('env', {})}; "
               f"{len(config.trial_seeds)} trials; wall time "
               f"{record.get('wall_seconds', 0):,.0f} s over {len(record.get('sessions', []))} "
               f"run(s) of the command (cells' own compute {record.get('cell_seconds', 0):,.0f} s)")
    ranking = results.ranking or {}
    cd_note = (f"Critical difference {ranking['critical_difference']:.3f} over "
               f"{ranking['n_blocks']} blocks ({ranking['blocks']}), Friedman p "
               f"{ranking['friedman_p_value']:.3g} ({ranking['method']})."
               if "mean_ranks" in ranking else f"Ranking: {ranking.get('skipped', 'none')}")
    markdown = [f"# {config.name}", "", caption, ""]
    html = [f"<h1>{config.name}</h1>", f"<p>{caption}</p>"]
    latex = [f"% {caption}"]
    for title, frame in sections:
        markdown += [f"## {title}", "", _markdown(frame), ""]
        html += [f"<h2>{title}</h2>", frame.to_pandas().to_html(index=False, na_rep="")
                 if not frame.is_empty() else "<p>(none)</p>"]
        if not frame.is_empty():
            latex += [f"% {title}", frame.to_pandas().style.hide(axis="index").format(
                precision=3, na_rep="").to_latex(caption=title.replace("±", r"$\pm$"),
                                                 hrules=True)]
    markdown.append(cd_note)
    html.append(f"<p>{cd_note}</p>")
    (folder / "results.md").write_text("\n".join(markdown) + "\n")
    (folder / "results.html").write_text("<!doctype html><meta charset='utf-8'>\n"
                                         + "\n".join(html) + "\n")
    (folder / "results.tex").write_text("\n".join(latex).replace("±", r"$\pm$") + "\n")
    return ["results.md", "results.html", "results.tex"]


def write_plots(results: Any, config: ExperimentConfig, folder: Path) -> list[str]:
    """``plots.html``: the primary metric by model with error bars (std over trials) per
    dataset, the ablation heatmap, and the critical-difference diagram."""
    import plotly.graph_objects as go

    figures = []
    primary = results.summary.filter(pl.col("metric") == config.headline_metric)
    bars = go.Figure()
    for dataset in primary["dataset"].unique(maintain_order=True):
        part = primary.filter(pl.col("dataset") == dataset).sort("mean")
        bars.add_bar(name=str(dataset), x=part["model"].to_list(), y=part["mean"].to_list(),
                     error_y={"type": "data", "array": part["std"].fill_null(0).to_list()})
    bars.update_layout(title=f"{config.headline_metric} by model (mean ± std over trials)",
                       barmode="group", yaxis_title=config.headline_metric)
    figures.append(bars)
    if results.ablation is not None and results.ablation.height:
        axes = [a for a in config.ablation.axes]
        table = results.ablation.with_columns(
            pl.concat_str([pl.col(a) for a in axes[1:]] or [pl.lit("")], separator=", ")
            .alias("_rest"))
        for dataset in table["dataset"].unique(maintain_order=True):
            part = table.filter(pl.col("dataset") == dataset).pivot(
                on=axes[0], index="_rest", values="mean")
            columns = [c for c in part.columns if c != "_rest"]
            heat = go.Figure(go.Heatmap(z=part.select(columns).to_numpy(), x=columns,
                                        y=part["_rest"].to_list(), colorscale="Viridis",
                                        colorbar={"title": config.headline_metric}))
            heat.update_layout(title=f"Ablation on {dataset}: {config.headline_metric} by "
                                     f"{axes[0]} (columns) and {', '.join(axes[1:])} (rows)")
            figures.append(heat)
    ranking = results.ranking or {}
    if "mean_ranks" in ranking:
        names, ranks = list(ranking["mean_ranks"]), list(ranking["mean_ranks"].values())
        cd = go.Figure(go.Scatter(x=ranks, y=[0] * len(ranks), mode="markers+text",
                                  text=names, textposition="top center"))
        for level, group in enumerate(ranking["groups"], start=1):
            low = min(ranking["mean_ranks"][m] for m in group)
            high = max(ranking["mean_ranks"][m] for m in group)
            cd.add_shape(type="line", x0=low, x1=high, y0=-0.1 * level, y1=-0.1 * level,
                         line={"width": 4})
        start = min(ranks)
        cd.add_shape(type="line", x0=start, x1=start + ranking["critical_difference"],
                     y0=0.5, y1=0.5, line={"width": 2, "color": "red"})
        cd.update_layout(title=f"Critical difference diagram (CD "
                               f"{ranking['critical_difference']:.2f}, red; bars: groups not "
                               f"significantly different)", xaxis_title="mean rank",
                         yaxis={"visible": False})
        figures.append(cd)
    parts = [figure.to_html(full_html=False, include_plotlyjs=index == 0)
             for index, figure in enumerate(figures)]
    (folder / "plots.html").write_text("<!doctype html><meta charset='utf-8'>\n"
                                       + "\n".join(parts) + "\n")
    return ["plots.html"]
