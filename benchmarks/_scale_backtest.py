"""The backtest steps of ``_scale_steps.py``: ours (locally or as Ray tasks), statsforecast's and
mlforecast's cross-validation on the same windows, and ``compare`` (each side's WAPE on the rows
both forecast)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import polars as pl
from _scale_measure import CV, mlforecast, our_lightgbm, our_panel, peer_frame, timed


def _wape(frame: pl.DataFrame) -> dict[str, float]:
    """100 * sum|y - y_pred| / sum|y| per model."""
    return dict(frame.group_by("model").agg(
        100 * (pl.col("y") - pl.col("y_pred")).abs().sum() / pl.col("y").abs().sum()).iter_rows())


def _kept(frame: pl.DataFrame, data: Path, side: str) -> dict[str, Any]:
    """The CV rows (unique_id, ds, model, y, y_pred) kept for ``compare``; their WAPE."""
    frame.write_parquet(data / f"cv_{side}.parquet")
    return {"wape": _wape(frame), "rows": frame.height, "series": frame["unique_id"].n_unique()}


def backtest_ours(data: Path, opts: argparse.Namespace, on_ray: bool = False) -> dict[str, Any]:
    from salesfusion.data.splits import BacktestProtocol
    from salesfusion.evaluation.runner import backtest_models

    protocol = BacktestProtocol(horizon=CV["h"], windows=CV["n_windows"], step=CV["step_size"],
                                refit=True)
    run, seconds = timed(backtest_models, our_panel(data),
                         ["naive", "imapa", our_lightgbm(opts.rounds)], protocol, on_ray=on_ray)
    rows = run.forecasts.select(
        pl.concat_str("item_id", "market", separator="|").alias("unique_id"),
        pl.col("timestamp").alias("ds"), "model", pl.col("y_true").alias("y"), "y_pred")
    return {"seconds": seconds, "models_s": run.seconds, "failures": run.failures,
            **_kept(rows, data, "ray" if on_ray else "ours")}


def _long(cv: Any, models: list[str]) -> pl.DataFrame:
    frame = pl.from_pandas(cv[["unique_id", "ds", "y", *models]])
    return frame.unpivot(index=["unique_id", "ds", "y"], on=models, variable_name="model",
                         value_name="y_pred").with_columns(pl.col("ds").cast(pl.Datetime("us")))


def backtest_statsforecast(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    from statsforecast import StatsForecast
    from statsforecast.models import IMAPA, Naive

    def run(frame: Any) -> list[Any]:
        # Two runs: statsforecast refuses ``level`` for IMAPA (ours gives it no interval).
        return [StatsForecast(models=[Naive()], freq="W-MON", n_jobs=-1).cross_validation(
                    df=frame, level=[80], **CV),
                StatsForecast(models=[IMAPA()], freq="W-MON", n_jobs=-1).cross_validation(
                    df=frame, **CV)]

    (naive, imapa), seconds = timed(run, peer_frame(data))
    rows = pl.concat([_long(naive, ["Naive"]), _long(imapa, ["IMAPA"])])
    return {"seconds": seconds, **_kept(rows, data, "statsforecast")}


def backtest_mlforecast(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    frame, forecaster = peer_frame(data), mlforecast(opts.rounds)
    cv, seconds = timed(forecaster.cross_validation, frame, refit=True, max_horizon=4,
                        static_features=[], dropna=False, **CV)
    return {"seconds": seconds, **_kept(_long(cv, ["lgbm"]), data, "mlforecast")}


def compare(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    """Each side's WAPE on the rows both forecast (not a measured step)."""
    pairs = pl.DataFrame({"model": ["naive", "imapa", "lightgbm"],
                          "peer": ["Naive", "IMAPA", "lgbm"]})
    peers = pl.concat([pl.read_parquet(data / f"cv_{side}.parquet")
                       for side in ("statsforecast", "mlforecast")
                       if (data / f"cv_{side}.parquet").is_file()])
    both = pl.read_parquet(data / "cv_ours.parquet").join(pairs, on="model").join(
        peers.rename({"model": "peer", "y": "peer_y", "y_pred": "peer_pred"}),
        on=["unique_id", "ds", "peer"])
    ours = _wape(both)
    theirs = _wape(both.select("model", y="peer_y", y_pred="peer_pred"))
    rows = dict(both.group_by("model").len().iter_rows())
    return {"seconds": 0.0, "common_wape": {m: {"rows": rows[m], "ours": ours[m],
                                                "peer": theirs[m]} for m in ours}}


def ray(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    from salesfusion.distributed import ray_session

    started = time.perf_counter()
    with ray_session(None, opts.workers):
        session_s = time.perf_counter() - started
        record = backtest_ours(data, opts, on_ray=True)
    return {**record, "workers": opts.workers, "session_start_s": session_s}
