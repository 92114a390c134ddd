"""One conformance suite over every registered model."""

import polars as pl
import pytest

from salesfusion.data.panel import SERIES_KEY
from salesfusion.errors import InputError
from salesfusion.evaluation.protocol import BacktestProtocol
from salesfusion.models.base import Forecaster
from salesfusion.models.registry import create_model, model_class, registered_models

FAST = {"lightgbm": {"max_rounds": 40}}
NEURAL_FAST = {"epochs": 2, "lookback": 8, "hidden": 16, "fusion_dim": 16, "batch_size": 64}


@pytest.fixture(autouse=True)
def _embedding_cache(tmp_path, monkeypatch):
    monkeypatch.setattr("salesfusion.models.multimodal.DEFAULT_CACHE", tmp_path / "cache")


def _model(name: str) -> Forecaster:
    from salesfusion.models.multimodal import MultimodalForecaster

    fast = NEURAL_FAST if issubclass(model_class(name), MultimodalForecaster) else FAST.get(name,
                                                                                            {})
    return create_model(name, horizon=3, **fast)


@pytest.mark.parametrize("name", registered_models())
def test_fit_predict_shapes_and_values(name, shop_panel):
    forecast = _model(name).fit(shop_panel).predict(3)
    assert forecast.columns[:4] == ["item_id", "market", "timestamp", "y_pred"]
    assert forecast.height == shop_panel.n_series * 3
    assert forecast["y_pred"].is_finite().all()
    last = shop_panel.data["timestamp"].max()
    assert forecast["timestamp"].min() > last
    assert forecast["timestamp"].n_unique() == 3
    quantiles = [c for c in forecast.columns if c.startswith("q")]
    assert bool(quantiles) == model_class(name).supports_quantiles
    if quantiles:
        assert (forecast[quantiles[0]] <= forecast["y_pred"]).all()
        assert (forecast["y_pred"] <= forecast[quantiles[-1]]).all()


@pytest.mark.parametrize("name", registered_models())
def test_save_load_gives_identical_forecasts(name, shop_panel, tmp_path):
    model = _model(name).fit(shop_panel)
    before = model.predict(3)
    model.save(tmp_path / "m")
    after = Forecaster.load(tmp_path / "m").predict(3)
    assert before.equals(after)


@pytest.mark.parametrize("name", registered_models())
def test_deterministic_under_a_seed(name, shop_panel):
    first = _model(name).fit(shop_panel).predict(3)
    second = _model(name).fit(shop_panel).predict(3)
    assert first.equals(second)


@pytest.mark.parametrize("name", registered_models())
def test_cold_start_series(name, shop_panel):
    model = _model(name).fit(shop_panel)
    new = pl.DataFrame({"item_id": ["P012"], "market": ["GB"]})  # in items, never sold
    if model.supports_cold_start:
        forecast = model.predict(3, series=new)
        assert forecast.height == 3 and forecast["y_pred"].is_finite().all()
    else:
        with pytest.raises(InputError, match="without history"):
            model.predict(3, series=new)


@pytest.mark.parametrize("name", registered_models())
def test_backtest_contract(name, shop_panel):
    protocol = BacktestProtocol(horizon=3, windows=2, step=2)
    forecasts = _model(name).backtest(shop_panel, protocol)
    assert forecasts.columns[:7] == ["item_id", "market", "timestamp", "model", "window",
                                     "y_true", "y_pred"]
    assert sorted(forecasts["window"].unique()) == [0, 1]
    assert (forecasts["y_pred"] >= 0).all()
    origins = protocol.origins(shop_panel.periods)
    for window, origin in enumerate(origins):
        rows = forecasts.filter(pl.col("window") == window)
        assert rows["timestamp"].min() > origin
        assert rows.group_by(SERIES_KEY).len()["len"].max() == 3


def test_tampered_artefact_is_refused(shop_panel, tmp_path):
    model = create_model("moving_average").fit(shop_panel)
    model.save(tmp_path / "m")
    with (tmp_path / "m" / "history.parquet").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(InputError, match="checksum"):
        Forecaster.load(tmp_path / "m")


def test_unknown_parameter_is_refused():
    with pytest.raises(InputError, match="no parameter"):
        create_model("naive", window=3)


def test_knn_uses_similar_items(shop_panel):
    """Odd items (RED MUG) sell about three times the even ones (BLUE LAMP): analogues found by
    title must carry that, although the item's own history is never used."""
    forecast = create_model("knn_analogue", k=3).fit(shop_panel).predict(1)
    forecast = forecast.with_columns(pl.col("item_id").str.slice(1).cast(pl.Int64).mod(2)
                                     .alias("odd"))
    means = forecast.group_by("odd").agg(pl.col("y_pred").mean()).sort("odd")["y_pred"]
    assert means[1] > 2 * means[0]


def test_moving_average_and_naive_values(shop_panel):
    series = shop_panel.data.filter((pl.col("item_id") == "P001") & (pl.col("market") == "GB"))
    naive = create_model("naive").fit(shop_panel).predict(2)
    ma = create_model("moving_average", window=4).fit(shop_panel).predict(2)
    key = (pl.col("item_id") == "P001") & (pl.col("market") == "GB")
    assert naive.filter(key)["y_pred"].to_list() == [series["y"][-1]] * 2
    assert ma.filter(key)["y_pred"][0] == pytest.approx(series["y"].tail(4).mean())
