"""The measured steps of ``scale.py``, one per process: ``python _scale_steps.py STEP DATA [opts]``
prints one JSON line with the step's wall ``seconds`` (the work only: imports and reading the
inputs are not timed) and ``peak_mib`` (``ru_maxrss`` of this process: interpreter, imports,
inputs and the work; ``before_work_mib``: its value when the work started), ``work_mib`` (the
memory the work itself added: see ``work_mib``) and the 1-minute load average when the work
started and ended (``load_1min``: other work on the machine inflates wall times). Pools are
other processes: ``children_peak_mib`` is the largest pool process that ended (statsforecast's,
our iMAPA's); Ray's workers are in neither.

DATA is a folder written by ``scale.py``: ``sales.parquet`` (item_id, market, week, quantity)
and ``spec.yaml``; ours reads the spec, the peers read the Parquet file. The backtest steps
leave their forecasts there (``cv_<side>.parquet``) for ``compare``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from _provenance import requested_threads, thread_settings

MONDAY = "1970-01-05"  # pytorch-forecasting's time_idx: weeks since a Monday
CV = {"h": 4, "n_windows": 3, "step_size": 4}  # ours: BacktestProtocol(4, 3, 4, refit=True)
LOOKBACK = 16
BEFORE: dict[str, float] = {}  # ru_maxrss and the load average when the timed work starts


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mib(field: str) -> float | None:
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith(field)), None)


def timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    if "mib" not in BEFORE:  # the step's first timed call: its work starts here
        BEFORE["mib"], BEFORE["rss_mib"] = _peak_mib(), _status_mib("VmRSS")
        BEFORE["load"] = os.getloadavg()[0]  # other work on the machine inflates wall times
        try:  # Linux: restart the high-water mark, so that it measures the work alone
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            BEFORE["rss_mib"] = None
    started = time.perf_counter()
    return call(*args, **kwargs), time.perf_counter() - started


def work_mib() -> float | None:
    """The memory the work added: the resident set's high-water mark since the work started,
    less the resident set then (interpreter, imports and inputs); None where Linux's
    ``clear_refs`` is not available."""
    high = _status_mib("VmHWM")
    return None if BEFORE.get("rss_mib") is None or high is None else high - BEFORE["rss_mib"]


def our_panel(folder: Path) -> Any:
    if folder.name == "or":  # the bundled dataset's own panel, covariates and all
        from salesfusion.datasets.online_retail import online_retail

        return online_retail().panel("W")
    from salesfusion.data.panel import build_panel
    from salesfusion.data.spec import load_spec
    from salesfusion.data.validate import load_tables

    return build_panel(load_tables(load_spec(folder / "spec.yaml")), "W")


def peer_frame(folder: Path) -> Any:
    """unique_id, ds, y (pandas) for statsforecast and mlforecast: the series longer than the
    12 test weeks (statsforecast refuses the others; every synthetic series is longer, the
    Online Retail panel has late launches, which ours forecasts from their first week)."""
    test_weeks = CV["h"] + CV["step_size"] * (CV["n_windows"] - 1)
    return pl.read_parquet(folder / "sales.parquet").select(
        pl.concat_str("item_id", "market", separator="|").alias("unique_id"),
        pl.col("week").cast(pl.Datetime("ns")).alias("ds"),
        pl.col("quantity").cast(pl.Float64).alias("y")).filter(
        pl.len().over("unique_id") > test_weeks).to_pandas()


def pf_dataset(folder: Path) -> tuple[Any, float]:
    """pytorch-forecasting's TimeSeriesDataSet of the panel and the seconds it took (the
    pandas frame it reads is not timed)."""
    from pytorch_forecasting import GroupNormalizer, TimeSeriesDataSet

    weeks = (pl.col("week") - pl.lit(MONDAY).str.to_date()).dt.total_days() // 7
    frame = pl.read_parquet(folder / "sales.parquet").select(
        "item_id", "market", weeks.cast(pl.Int64).alias("time_idx"),
        pl.col("quantity").cast(pl.Float32).alias("y")).to_pandas()
    keys = ["item_id", "market"]
    return timed(TimeSeriesDataSet, frame, time_idx="time_idx", target="y", group_ids=keys,
                 max_encoder_length=LOOKBACK, min_encoder_length=1, max_prediction_length=4,
                 min_prediction_length=1, static_categoricals=["market"],
                 time_varying_unknown_reals=["y"], allow_missing_timesteps=True,
                 target_normalizer=GroupNormalizer(groups=keys))


def torch_setup() -> None:
    import logging
    import warnings

    import lightning  # noqa: F401  (our fit imports it: before the clock starts)
    import torch

    torch.set_num_threads(requested_threads())
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_forecasting"):
        logging.getLogger(name).setLevel(logging.ERROR)


# --- steps: each returns its record -----------------------------------------------------------
def panel_ours(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    import salesfusion.data.panel  # noqa: F401  (imported before the clock starts)

    panel, seconds = timed(our_panel, data)
    return {"seconds": seconds, "rows": panel.data.height, "series": panel.n_series,
            "mib_per_million_rows": panel.data.estimated_size() / panel.data.height
            * 1e6 / 2**20}


def panel_reference(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    frame, seconds = timed(lambda: pl.scan_parquet(data / "sales.parquet").group_by(
        "item_id", "market", "week").agg(pl.col("quantity").sum()).collect())
    return {"seconds": seconds, "rows": frame.height}


def windows_ours(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    from salesfusion.features.lags import to_wide
    from salesfusion.training.windows import window_samples

    def one_pass(panel: Any) -> tuple[int, int]:
        samples = window_samples(to_wide(panel), "W", LOOKBACK, CV["h"])
        wanted = min(len(samples), opts.samples)
        return len(samples), sum(len(samples.gather(slice(i, min(i + 4096, wanted))))
                                 for i in range(0, wanted, 4096))

    (total, passed), seconds = timed(one_pass, our_panel(data))
    return {"seconds": seconds, "samples": total, "passed": passed}


def windows_peer(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    torch_setup()
    dataset, built = pf_dataset(data)

    def one_pass() -> int:
        passed = 0
        for _, y in dataset.to_dataloader(train=False, batch_size=4096, num_workers=0):
            passed += len(y[0])
            if passed >= opts.samples:
                break
        return passed

    passed, seconds = timed(one_pass)
    return {"seconds": built + seconds, "dataset_s": built, "samples": len(dataset),
            "passed": passed}


def multimodal(opts: argparse.Namespace) -> Any:
    from salesfusion.models.registry import create_model

    return create_model("multimodal", epochs=1, hidden=16, lookback=LOOKBACK, horizon=4,
                        accelerator="cpu", max_train_windows=opts.max_train_windows)


def epoch_ours(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    import salesfusion.models.multimodal as module

    torch_setup()
    counted, loader = [], module.gathered_loader

    def counting(samples: Any, *args: Any, **kwargs: Any) -> Any:
        counted.append(len(samples))  # the first loader built is the training one
        return loader(samples, *args, **kwargs)

    module.gathered_loader = counting
    model, panel = multimodal(opts), our_panel(data)
    _, seconds = timed(model.fit, panel)
    shutil.rmtree(data / "multimodal", ignore_errors=True)
    model.save(data / "multimodal")  # the predict step forecasts with this fit
    return {"seconds": seconds, "train_windows": counted[0] if counted else None,
            "notes": model.notes}


def epoch_peer(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    import lightning
    from pytorch_forecasting import TemporalFusionTransformer
    from pytorch_forecasting.metrics import QuantileLoss

    torch_setup()
    lightning.seed_everything(0, verbose=False)
    dataset, built = pf_dataset(data)
    net = TemporalFusionTransformer.from_dataset(
        dataset, hidden_size=16, attention_head_size=4, hidden_continuous_size=8, dropout=0.1,
        learning_rate=0.003, loss=QuantileLoss([0.1, 0.5, 0.9]), log_interval=-1)
    batches = math.ceil(opts.samples / 256)  # as many samples as our epoch, batches of 256
    trainer = lightning.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, limit_train_batches=batches,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        gradient_clip_val=1.0, num_sanity_val_steps=0)
    _, seconds = timed(trainer.fit, net, train_dataloaders=dataset.to_dataloader(
        train=True, batch_size=256, num_workers=0))
    return {"seconds": built + seconds, "dataset_s": built, "dataset_samples": len(dataset),
            "train_windows": min(batches * 256, len(dataset))}


def predict_multimodal(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    from salesfusion.models.base import Forecaster

    torch_setup()
    fit_s = None
    if (data / "multimodal").is_dir():  # the epoch step's fit
        model = Forecaster.load(data / "multimodal")
    else:
        model = multimodal(opts)
        _, fit_s = timed(model.fit, our_panel(data))
    frame, seconds = timed(model.predict, 4)
    return {"seconds": seconds, "rows": frame.height, "fit_s": fit_s}


def our_lightgbm(rounds: int) -> Any:
    from salesfusion.models.registry import create_model

    return create_model("lightgbm", horizon=4, max_rounds=rounds, early_stopping=False)


def predict_lightgbm(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    model = our_lightgbm(opts.rounds)
    _, fit_s = timed(model.fit, our_panel(data))
    frame, seconds = timed(model.predict, 4)
    return {"seconds": seconds, "rows": frame.height, "fit_s": fit_s}


def mlforecast(rounds: int) -> Any:
    """Our BoosterConfig's settings and the same rounds; one model per step (direct, as ours).
    ``min_samples=1`` (with ``dropna=False`` when fitting) trains on every origin from a
    series' first week, as ours does (LightGBM reads a missing lag as missing); mlforecast's
    defaults would drop each series' first 26 weeks, half the rows of a 52-week panel."""
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    booster = lgb.LGBMRegressor(
        objective="l1", learning_rate=0.05, num_leaves=31, min_child_samples=50,
        colsample_bytree=0.8, subsample=0.8, subsample_freq=1, reg_lambda=1.0,
        n_estimators=rounds, n_jobs=requested_threads(), random_state=0, verbosity=-1)
    return MLForecast(models={"lgbm": booster}, freq="W-MON", lags=list(range(1, 9)),
                      lag_transforms={1: [RollingMean(w, min_samples=1) for w in (4, 8, 13, 26)]},
                      date_features=[week, month])


def week(dates: Any) -> Any:  # pandas 2 has no DatetimeIndex.week
    return dates.isocalendar().week.to_numpy()


def month(dates: Any) -> Any:
    return dates.month


def predict_mlforecast(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    frame, forecaster = peer_frame(data), mlforecast(opts.rounds)
    _, fit_s = timed(forecaster.fit, frame, max_horizon=4, static_features=[], dropna=False)
    forecasts, seconds = timed(forecaster.predict, 4)
    return {"seconds": seconds, "rows": len(forecasts), "fit_s": fit_s}


# --- backtest ---------------------------------------------------------------------------------
def _wape(frame: pl.DataFrame) -> dict[str, float]:
    """100 * sum|y - y_pred| / sum|y| per model."""
    return dict(frame.group_by("model").agg(
        100 * (pl.col("y") - pl.col("y_pred")).abs().sum() / pl.col("y").abs().sum()).iter_rows())


def _kept(frame: pl.DataFrame, data: Path, side: str) -> dict[str, Any]:
    """The CV rows (unique_id, ds, model, y, y_pred) kept for ``compare``; their WAPE."""
    frame.write_parquet(data / f"cv_{side}.parquet")
    return {"wape": _wape(frame), "rows": frame.height, "series": frame["unique_id"].n_unique()}


def backtest_ours(data: Path, opts: argparse.Namespace, on_ray: bool = False) -> dict[str, Any]:
    from salesfusion.evaluation.protocol import BacktestProtocol
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


STEPS = {f.__name__: f for f in (
    panel_ours, panel_reference, windows_ours, windows_peer, epoch_ours, epoch_peer,
    predict_multimodal, predict_lightgbm, predict_mlforecast, backtest_ours,
    backtest_statsforecast, backtest_mlforecast, compare, ray)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("data", type=Path)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--max-train-windows", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=100_000,
                        help="the windows passed over (windows) or trained on (epoch_peer)")
    parser.add_argument("--workers", type=int, default=1)
    opts = parser.parse_args()
    try:
        record = {"status": "ok", **STEPS[opts.step](opts.data, opts)}
    except MemoryError:
        record = {"status": "not run", "reason": "MemoryError"}
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({**record, "peak_mib": _peak_mib(), "before_work_mib": BEFORE.get("mib"),
                      "work_mib": work_mib(),
                      "load_1min": [BEFORE.get("load"), os.getloadavg()[0]],
                      "children_peak_mib": children or None, "threads": thread_settings()},
                     default=str))


if __name__ == "__main__":
    main()
