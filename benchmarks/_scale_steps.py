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
from pathlib import Path
from typing import Any

import polars as pl
from _provenance import requested_threads, thread_settings
from _scale_backtest import (
    backtest_mlforecast,
    backtest_ours,
    backtest_statsforecast,
    compare,
    ray,
)
from _scale_measure import (
    BEFORE,
    CV,
    LOOKBACK,
    MONDAY,
    mlforecast,
    our_lightgbm,
    our_panel,
    peak_mib,
    peer_frame,
    timed,
    work_mib,
)


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
    import salesfusion.models.multimodal.estimator as module

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


def predict_lightgbm(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    model = our_lightgbm(opts.rounds)
    _, fit_s = timed(model.fit, our_panel(data))
    frame, seconds = timed(model.predict, 4)
    return {"seconds": seconds, "rows": frame.height, "fit_s": fit_s}


def predict_mlforecast(data: Path, opts: argparse.Namespace) -> dict[str, Any]:
    frame, forecaster = peer_frame(data), mlforecast(opts.rounds)
    _, fit_s = timed(forecaster.fit, frame, max_horizon=4, static_features=[], dropna=False)
    forecasts, seconds = timed(forecaster.predict, 4)
    return {"seconds": seconds, "rows": len(forecasts), "fit_s": fit_s}


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
    print(json.dumps({**record, "peak_mib": peak_mib(), "before_work_mib": BEFORE.get("mib"),
                      "work_mib": work_mib(),
                      "load_1min": [BEFORE.get("load"), os.getloadavg()[0]],
                      "children_peak_mib": children or None, "threads": thread_settings()},
                     default=str))


if __name__ == "__main__":
    main()
