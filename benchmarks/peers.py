"""Peer libraries on the OR-weekly benchmark: pytorch-forecasting and neuralforecast beside ours.

Every model runs the same protocol (``OR_WEEKLY``: horizon 4, 3 windows 4 weeks apart,
refit at each origin) through salesfusion's ``run_backtest`` on the same panel, and is scored by
the same ``metrics_table`` (overall row: all windows, all markets). Each model runs in its own
process, so its wall time (fit + predict over all windows) and peak RSS (``ru_maxrss``, which
includes the interpreter, the imports and the panel) are its own.

Peers, as adapters defined here (not registered in the package):

- ``pf_tft``: pytorch-forecasting ``TemporalFusionTransformer`` on a ``TimeSeriesDataSet``
  (target y, groups item_id + market, time_idx = weeks, encoder 1..16, prediction 4, static
  categorical market, relative time index, encoder length and target scales as inputs,
  ``GroupNormalizer`` per series without transformation, since ``softplus`` maps the many zeros
  of intermittent demand to about -36), ``QuantileLoss([0.1, 0.5, 0.9])``, hidden 32, 4 heads,
  hidden_continuous 16, dropout 0.1, lr 0.003, batch 256, gradient clip 1.0 (the size and
  optimiser settings of our ``multimodal``/``tft_multimodal``). Validation is the last 4 periods
  of the training part (one sample per series), early stopping on val_loss (patience 3), best
  checkpoint restored. ``max_epochs`` is 10, not our 30: one of its epochs is every (series,
  origin) window with 1..16 encoder steps, more samples than one of ours (``tft_speed.py``
  prints both counts), so it is capped to keep 3 refits within the benchmark's time; the epochs
  it ran per window are in the results file (``epochs_per_window``).
- ``nf_nhits`` / ``nf_tft``: neuralforecast ``NHITS`` and ``TFT`` (h 4, input_size 16,
  ``MQLoss(quantiles=[0.1, 0.5, 0.9])``, robust temporal scaler, ``start_padding_enabled``
  because the shortest series are shorter than input_size + h once the validation periods are cut,
  ``val_size=4`` with early stopping after 5 checks of 50 steps, max_steps 1000 (the library
  default), random_seed 0, ``freq="W-MON"``: the panel's weeks start on Mondays). NHITS keeps its
  library defaults otherwise; TFT uses hidden_size 32 (the size of ours; its default is 128).

Children run torch with ``OMP_NUM_THREADS`` threads (the core count when it is not set) and
``OMP_WAIT_POLICY=PASSIVE`` (see ``_provenance.py``). Wall times still grow when other work
shares the machine, so each child records the 1-minute load average (the ``load`` column; the
run itself counts for 1-2). The results file carries the commit, date, core count and thread
settings of the run (``provenance``, and each child's torch threads under ``threads``).

Series in the history that a peer does not forecast are filled with 0, counted and reported;
none is dropped.

Run: .venv/bin/python benchmarks/peers.py [--models lightgbm,pf_tft] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from _provenance import provenance, requested_threads, summary_line, thread_settings
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.models.base import Forecaster

OURS = ["lightgbm", "multimodal", "tft_multimodal"]
PEERS = ["pf_tft", "nf_nhits", "nf_tft"]
DEFAULT_JSON = Path(__file__).parent / "results" / "peers.json"
QUANTILES = [0.1, 0.5, 0.9]
SEED = 0
MONDAY = np.datetime64("1970-01-05")  # time_idx origin: weeks since a Monday
PASSIVE = "PASSIVE"  # OpenMP threads that wait without spinning (see _provenance.py)
FILLED: list[int] = []  # series filled with 0 per predict call (adapters are cloned per window)
EPOCHS: list[int] = []  # epochs trained per fit (pf_tft)


def _quiet() -> None:
    import logging

    import lightning.pytorch  # noqa: F401  (it sets its loggers' levels when imported)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning",
                 "neuralforecast", "pytorch_forecasting"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def _fill_missing(frame: pl.DataFrame, history: Panel, series: pl.DataFrame,
                  horizon: int) -> pl.DataFrame:
    """Every wanted series gets a forecast: missing ones are 0 (and counted in FILLED)."""
    from salesfusion.data.frequency import periods_after

    missing = series.join(frame.select(SERIES_KEY).unique(), on=SERIES_KEY, how="anti")
    FILLED.append(missing.height)
    if missing.height:
        future = pl.DataFrame({"timestamp": periods_after(history.periods.max(), history.freq,
                                                          horizon).to_list()})
        zeros = missing.join(future, how="cross").with_columns(
            *(pl.lit(0.0).alias(c) for c in frame.columns
              if c not in (*SERIES_KEY, "timestamp")))
        frame = pl.concat([frame, zeros.select(frame.columns)])
    return frame.join(series, on=SERIES_KEY, how="semi")


class _Peer(Forecaster):
    """A peer library's model behind salesfusion's interface (backtest only: not saved)."""

    supports_quantiles = True

    def _save_state(self, folder: Path) -> None:
        raise NotImplementedError("benchmark adapters are not saved")

    def _load_state(self, folder: Path) -> None:
        raise NotImplementedError("benchmark adapters are not saved")


# --- pytorch-forecasting ----------------------------------------------------------------------
class PFTemporalFusion(_Peer):
    name = "pf_tft"
    default_params: ClassVar[dict[str, Any]] = {
        "horizon": 4, "encoder": 16, "hidden": 32, "heads": 4, "hidden_continuous": 16,
        "dropout": 0.1, "lr": 0.003, "batch_size": 256, "gradient_clip": 1.0,
        "max_epochs": 10, "patience": 3, "seed": SEED,
    }

    @staticmethod
    def _frame(panel: Panel) -> Any:
        frame = panel.data.select(*SERIES_KEY, "timestamp", "y").to_pandas()
        frame["time_idx"] = ((frame["timestamp"].values.astype("datetime64[D]") - MONDAY)
                             .astype(np.int64) // 7)
        return frame

    def _dataset(self, frame: Any) -> Any:
        from pytorch_forecasting import GroupNormalizer, TimeSeriesDataSet

        p = self.params
        return TimeSeriesDataSet(
            frame, time_idx="time_idx", target="y", group_ids=SERIES_KEY,
            max_encoder_length=p["encoder"], min_encoder_length=1,
            max_prediction_length=p["horizon"], min_prediction_length=p["horizon"],
            static_categoricals=["market"], time_varying_unknown_reals=["y"],
            target_normalizer=GroupNormalizer(groups=SERIES_KEY, transformation=None),
            add_relative_time_idx=True, add_target_scales=True, add_encoder_length=True)

    def _fit(self, panel: Panel) -> None:
        import lightning
        import torch
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
        from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet
        from pytorch_forecasting.metrics import QuantileLoss

        p = self.params
        lightning.seed_everything(p["seed"], workers=True, verbose=False)
        frame = self._frame(panel)
        cutoff = frame["time_idx"].max() - p["horizon"]
        training = self._dataset(frame[frame["time_idx"] <= cutoff])
        validation = TimeSeriesDataSet.from_dataset(training, frame, predict=True,
                                                    stop_randomization=True)
        self._training = training
        self.train_samples = len(training)  # (series, origin) samples in one epoch
        train_loader = training.to_dataloader(train=True, batch_size=p["batch_size"],
                                              num_workers=0)
        val_loader = validation.to_dataloader(train=False, batch_size=4096, num_workers=0)
        self._net = TemporalFusionTransformer.from_dataset(
            training, hidden_size=p["hidden"], lstm_layers=1, attention_head_size=p["heads"],
            hidden_continuous_size=p["hidden_continuous"], dropout=p["dropout"],
            learning_rate=p["lr"], loss=QuantileLoss(QUANTILES), log_interval=-1)
        with tempfile.TemporaryDirectory() as scratch:
            checkpoint = ModelCheckpoint(dirpath=scratch, monitor="val_loss", save_top_k=1)
            trainer = lightning.Trainer(
                max_epochs=p["max_epochs"], accelerator="cpu", devices=1, logger=False,
                enable_progress_bar=False, enable_model_summary=False,
                gradient_clip_val=p["gradient_clip"], num_sanity_val_steps=0,
                callbacks=[EarlyStopping("val_loss", patience=p["patience"]), checkpoint])
            trainer.fit(self._net, train_dataloaders=train_loader, val_dataloaders=val_loader)
            self.epochs_run = trainer.current_epoch
            EPOCHS.append(self.epochs_run)
            state = torch.load(checkpoint.best_model_path, map_location="cpu",
                               weights_only=False)["state_dict"]
            self._net.load_state_dict(state)
        self._net.eval()

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        import pandas as pd
        from pytorch_forecasting import TimeSeriesDataSet

        p = self.params
        frame = self._frame(history)
        frame = frame.merge(series.to_pandas(), on=SERIES_KEY)
        last = frame.groupby(SERIES_KEY, as_index=False)["time_idx"].max()
        future = pd.concat([last.assign(time_idx=last["time_idx"] + k, y=0.0)
                            for k in range(1, p["horizon"] + 1)])
        data = pd.concat([frame.drop(columns="timestamp"), future], ignore_index=True)
        dataset = TimeSeriesDataSet.from_dataset(self._training, data, predict=True,
                                                 stop_randomization=True)
        result = self._net.predict(
            dataset, mode="quantiles", return_index=True, batch_size=4096,
            trainer_kwargs={"accelerator": "cpu", "logger": False,
                            "enable_progress_bar": False, "enable_model_summary": False})
        values = result.output.cpu().numpy()[:, :horizon, :]  # (series, horizon, quantile)
        index = result.index  # group ids and the first predicted time_idx
        rows = pl.DataFrame({
            "item_id": np.repeat(index["item_id"].astype(str).to_numpy(), horizon),
            "market": np.repeat(index["market"].astype(str).to_numpy(), horizon),
            "time_idx": (index["time_idx"].to_numpy()[:, None] + np.arange(horizon)).ravel(),
            **{_column(q): values[:, :, i].ravel().astype(np.float64)
               for i, q in enumerate(QUANTILES)}})
        rows = rows.with_columns(
            (pl.lit(MONDAY.astype("datetime64[us]").item())
             + pl.duration(weeks=pl.col("time_idx"))).cast(pl.Datetime("us")).alias("timestamp"))
        rows = rows.select(*SERIES_KEY, "timestamp", "y_pred", "q0.1", "q0.9")
        return _fill_missing(rows, history, series, horizon)


def _column(level: float) -> str:
    return "y_pred" if level == 0.5 else f"q{level}"


# --- neuralforecast ---------------------------------------------------------------------------
class _NeuralForecast(_Peer):
    network: ClassVar[str]

    def _model(self) -> Any:
        raise NotImplementedError

    @staticmethod
    def _frame(panel: Panel) -> Any:
        return (panel.data.select(
            pl.concat_str("item_id", "market", separator="\x1f").alias("unique_id"),
            pl.col("timestamp").alias("ds"), "y").to_pandas())

    def _fit(self, panel: Panel) -> None:
        from neuralforecast import NeuralForecast

        _quiet()
        self._forecaster = NeuralForecast(models=[self._model()], freq="W-MON")
        self._forecaster.fit(self._frame(panel), val_size=self.params["horizon"])

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        _quiet()
        wanted = history.select_series(series)
        raw = pl.from_pandas(self._forecaster.predict(df=self._frame(wanted)).reset_index())
        alias = self.network
        names = {f"{alias}-median": "y_pred"}
        for column in raw.columns:
            if column.startswith(f"{alias}-lo-"):
                names[column] = "q0.1"
            elif column.startswith(f"{alias}-hi-"):
                names[column] = "q0.9"
        keys = pl.col("unique_id").str.split_exact("\x1f", 1)
        rows = (raw.rename(names).with_columns(
            keys.struct.field("field_0").alias("item_id"),
            keys.struct.field("field_1").alias("market"),
            pl.col("ds").cast(pl.Datetime("us")).alias("timestamp"))
            .sort("unique_id", "timestamp").group_by("unique_id", maintain_order=True)
            .head(horizon))
        rows = rows.select(*SERIES_KEY, "timestamp",
                           *(pl.col(c).cast(pl.Float64) for c in ("y_pred", "q0.1", "q0.9")))
        return _fill_missing(rows, history, series, horizon)

    def _common(self) -> dict[str, Any]:
        from neuralforecast.losses.pytorch import MQLoss

        p = self.params
        return {"h": p["horizon"], "input_size": p["input_size"],
                "loss": MQLoss(quantiles=QUANTILES), "max_steps": p["max_steps"],
                "early_stop_patience_steps": p["patience_checks"], "val_check_steps": 50,
                "scaler_type": "robust", "start_padding_enabled": True,
                "random_seed": p["seed"], "accelerator": "cpu", "devices": 1, "logger": False,
                "enable_progress_bar": False, "enable_model_summary": False,
                "enable_checkpointing": False}


class NFNHITS(_NeuralForecast):
    name = "nf_nhits"
    network = "NHITS"
    default_params: ClassVar[dict[str, Any]] = {
        "horizon": 4, "input_size": 16, "max_steps": 1000, "patience_checks": 5, "seed": SEED}

    def _model(self) -> Any:
        from neuralforecast.models import NHITS

        return NHITS(**self._common())


class NFTFT(_NeuralForecast):
    name = "nf_tft"
    network = "TFT"
    default_params: ClassVar[dict[str, Any]] = {
        "horizon": 4, "input_size": 16, "hidden": 32, "max_steps": 1000, "patience_checks": 5,
        "seed": SEED}

    def _model(self) -> Any:
        from neuralforecast.models import TFT

        return TFT(hidden_size=self.params["hidden"], **self._common())


ADAPTERS: dict[str, type[Forecaster]] = {c.name: c for c in (PFTemporalFusion, NFNHITS, NFTFT)}


class LoadSampler:
    """The 1-minute load average every 5 s while in the block: other work on the machine
    inflates wall times, so the runs record it."""

    def __init__(self) -> None:
        self.loads: list[float] = []
        self._stop = threading.Event()

    def _sample(self) -> None:
        self.loads.append(os.getloadavg()[0])
        while not self._stop.wait(5.0):
            self.loads.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        return {"mean": round(float(np.mean(self.loads)), 2), "max": max(self.loads)}


# --- one model in this process ----------------------------------------------------------------
def run_one(name: str, out: Path) -> dict[str, Any]:
    import torch

    from salesfusion.data.splits import BacktestProtocol
    from salesfusion.datasets.online_retail import OR_WEEKLY, or_weekly
    from salesfusion.models.backtest import run_backtest
    from salesfusion.models.registry import create_model

    _quiet()
    torch.set_num_threads(requested_threads())
    panel = or_weekly()
    protocol = BacktestProtocol.from_benchmark(OR_WEEKLY)
    model = (ADAPTERS[name]() if name in ADAPTERS
             else create_model(name, horizon=protocol.horizon))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with LoadSampler() as load:
        started = time.perf_counter()
        forecasts = run_backtest(model, panel, protocol)
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    forecasts.write_parquet(out / f"{name}.parquet")
    return {"model": name, "seconds": seconds, "peak_mib": peak, "before_mib": before,
            "filled_series": int(sum(FILLED)) if name in ADAPTERS else 0,
            "params": model.params, "rows": forecasts.height, "epochs_per_window": EPOCHS,
            "load_1min": load.summary(), "series": panel.n_series, "threads": thread_settings()}


# --- all models, one process each -------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=",".join(OURS + PEERS))
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="folder for the forecasts and logs (temporary "
                                                  "when not given)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.out), default=str))
        return
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    console = Console(width=140)
    console.print(summary_line())
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        runs, frames = {}, []
        progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description:<16}"),
                            TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                            console=console)
        with progress:
            for name in names:
                task = progress.add_task(name, status="3 windows", total=1)
                log = out / f"{name}.log"
                with log.open("w") as stderr:
                    done = subprocess.run(
                        [sys.executable, __file__, "--one", name, "--out", str(out)],
                        stdout=subprocess.PIPE, stderr=stderr, text=True,
                        env={**os.environ, "HF_HUB_OFFLINE": "1",
                             "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", PASSIVE)})
                if done.returncode != 0:
                    progress.update(task, status=f"[red]failed (see {log})", completed=1)
                    console.print(log.read_text()[-3000:])
                    continue
                runs[name] = json.loads(done.stdout.strip().splitlines()[-1])
                frames.append(pl.read_parquet(out / f"{name}.parquet"))
                progress.update(task, completed=1,
                                status=f"{runs[name]['seconds']:.0f} s, "
                                       f"{runs[name]['peak_mib']:.0f} MiB")
        if not frames:
            raise SystemExit("no model finished")
        from salesfusion.evaluation.backtest import metrics_table

        metrics = metrics_table(pl.concat(frames, how="diagonal"))
    overall = metrics.filter((pl.col("window") == "all") & (pl.col("segment") == "all"))
    rows = []
    for name, run in runs.items():
        value = dict(overall.filter(pl.col("model") == name)
                     .select("metric", "value").iter_rows())
        rows.append({"model": name, "library": "salesfusion" if name in OURS else
                     ("pytorch-forecasting" if name.startswith("pf_") else "neuralforecast"),
                     **{m: value.get(m) for m in ("WAPE", "MASE", "RMSE", "sMAPE", "pinball",
                                                  "coverage")},
                     "wall_s": run["seconds"], "peak_mib": run["peak_mib"],
                     "filled_series": run["filled_series"], "forecast_rows": run["rows"],
                     "load_1min": run["load_1min"],
                     "epochs_per_window": run["epochs_per_window"] or None,
                     "params": run["params"], "threads": run["threads"]})
    series = next(iter(runs.values()))["series"]
    table = Table(title=f"OR-weekly ({series:,} series, horizon 4, 3 windows, refit): ours and "
                        "peers")
    for column in ("model", "WAPE", "MASE", "RMSE", "wall s", "peak MiB", "filled", "load"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        table.add_row(row["model"], f"{row['WAPE']:.2f}", f"{row['MASE']:.3f}",
                      f"{row['RMSE']:.2f}", f"{row['wall_s']:.0f}", f"{row['peak_mib']:.0f}",
                      str(row["filled_series"]), f"{row['load_1min']['mean']:.1f}")
    console.print(table)
    busy = [r["model"] for r in rows if r["load_1min"]["mean"] > (os.cpu_count() or 1) + 0.5]
    if busy:
        console.print(f"warning: other work was running (mean 1-min load above "
                      f"{os.cpu_count()} cores) during {', '.join(busy)}: wall times inflated")
    for row in rows:
        if row["filled_series"]:
            console.print(f"{row['model']}: {row['filled_series']} series-window(s) had no "
                          f"forecast from the library and were filled with 0")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "benchmark": "OR-weekly", "provenance": provenance(),
        "protocol": {"horizon": 4, "windows": 3, "step": 4, "refit": True},
        "metrics": "salesfusion.evaluation.backtest.metrics_table, window=all, segment=all",
        "cpu_threads": os.cpu_count(), "results": rows}, indent=2, default=str))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
