"""One conformance suite over every registered model."""

import json
from itertools import pairwise

import numpy as np
import polars as pl
import pytest

from salesfusion.data.panel import SERIES_KEY
from salesfusion.data.splits import BacktestProtocol
from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster, NotFittedError
from salesfusion.models.registry import create_model, model_class, registered_models


@pytest.fixture(scope="module")
def _embedding_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


_FITTED: dict[str, Forecaster] = {}


def _is_neural(name: str) -> bool:
    return _model(name).supports_distributed_training


# Each model's tests run on one xdist worker (--dist loadgroup), so it is fitted there once.
MODELS = [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in registered_models()]


def _model(name: str) -> Forecaster:
    """The model with its class's own fast test parameters."""
    return create_model(name, horizon=3, **model_class(name).test_params())


@pytest.fixture
def fitted(module_shop_panel, _embedding_cache, monkeypatch):
    """``fitted(name)``: the model fitted once on the conformance panel (fitting is what makes
    the neural part of this suite slow; predictions never change a fitted model)."""
    monkeypatch.setattr("salesfusion.models.multimodal.fitting.DEFAULT_CACHE", _embedding_cache)

    def get(name: str) -> Forecaster:
        if name not in _FITTED:
            _FITTED[name] = _model(name).fit(module_shop_panel)
        return _FITTED[name]

    return get


@pytest.fixture
def shop_panel(module_shop_panel):
    """The tiny shop with events and exogenous covariates, built once for the module."""
    return module_shop_panel


@pytest.mark.parametrize("name", MODELS)
def test_fit_predict_shapes_and_values(name, shop_panel, fitted):
    forecast = fitted(name).predict(3)
    assert forecast.columns[:4] == ["item_id", "market", "timestamp", "y_pred"]
    assert forecast.height == shop_panel.n_series * 3
    assert forecast["y_pred"].is_finite().all()
    last = shop_panel.data["timestamp"].max()
    assert forecast["timestamp"].min() > last
    assert forecast["timestamp"].n_unique() == 3
    quantiles = [c for c in forecast.columns if c.startswith("q")]
    assert bool(quantiles) == fitted(name).supports_quantiles
    for lower, upper in pairwise(quantiles):
        assert (forecast[lower] <= forecast[upper]).all()
    if quantiles and fitted(name).point == "median":  # the median lies between the quantiles;
        # a mean need not (it exceeds the 0.9 quantile when nine periods in ten sell nothing)
        assert (forecast[quantiles[0]] <= forecast["y_pred"]).all()
        assert (forecast["y_pred"] <= forecast[quantiles[-1]]).all()


@pytest.mark.parametrize("name", MODELS)
def test_save_load_gives_identical_forecasts(name, fitted, tmp_path):
    model = fitted(name)
    before = model.predict(3)
    model.save(tmp_path / "m")
    loaded = Forecaster.load(tmp_path / "m")
    after = loaded.predict(3)
    assert before.equals(after)
    # What y_pred is travels with the model.
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["point"] == model.point == loaded.point


@pytest.mark.parametrize("name", MODELS)
def test_deterministic_refit_and_parameters_kept(name, shop_panel, fitted):
    """Under a seed, a new instance gives the same forecasts; and, as scikit-learn checks, fit
    does not change the given parameters and fitting the same instance again reproduces."""
    first = fitted(name).predict(3)
    model = _model(name)
    given = model.params
    assert model.fit(shop_panel).predict(3).equals(first)
    assert model.params == given
    assert model.fit(shop_panel).predict(3).equals(first)
    assert model.clone().params == given


@pytest.mark.parametrize("name", MODELS)
def test_capabilities_belong_to_the_configured_instance(name):
    model = _model(name)
    fields = type(model).Config.model_fields
    if "quantiles" in fields:
        point = create_model(name, **{**type(model).test_params(), "quantiles": []})
        assert not point.supports_quantiles
        assert create_model(name, quantiles=[0.1, 0.5, 0.9]).supports_quantiles
    assert model.min_history >= 1
    # Every model says what its point forecast is; where it is configurable, mean is the default.
    assert model.point in ("mean", "median")
    if "point" in fields:
        assert fields["point"].default == "mean"
        # A preset that names a mean loss (the seed papers' MSE) needs a median loss named too.
        median_loss = {"loss": "mae"} if "loss" in fields else {}
        assert create_model(name, point="median", **median_loss).point == "median"


@pytest.mark.parametrize("name", MODELS)
def test_what_a_fitted_model_says_it_can_do_it_provides(name, shop_panel, fitted):
    unfitted = _model(name)
    assert not (unfitted.explains_by_gradients or unfitted.has_feature_importance
                or unfitted.supports_new_items)
    with pytest.raises(NotFittedError, match="no history"):
        unfitted.history  # noqa: B018
    model = fitted(name)
    assert model.history.data.height == shop_panel.data.height
    if model.explains_by_gradients:
        windows = model.explanation_windows(shop_panel, np.array([shop_panel.periods.len() - 1]))
        assert windows.tensors and model.network.parameters()
    if model.has_feature_importance:
        matrix, side = model.importance_design(shop_panel, 2)
        assert matrix.shape == (len(side["target"]), len(model.feature_names))
        assert (model.predict_design(matrix, side["scale"]) >= 0).all()
    if model.supports_new_items:
        item = pl.DataFrame({"item_id": ["NEW"], "title": ["a red mug"]})
        with model.items_described(item) as read:
            assert ("text" in read) == ("text" in model.network.modalities)


@pytest.mark.parametrize("name", MODELS)
def test_too_short_a_panel_is_refused_before_any_work(name, shop_panel):
    model = _model(name)
    if model.min_history <= 1:
        pytest.skip("fits on a single period")
    periods = shop_panel.periods.sort()
    short = shop_panel.until(periods[model.min_history - 2])
    with pytest.raises(InputError, match=f"needs at least {model.min_history} periods"):
        model.fit(short)


@pytest.mark.parametrize("name", MODELS)
def test_cold_start_series(name, fitted):
    model = fitted(name)
    new = pl.DataFrame({"item_id": ["P012"], "market": ["GB"]})  # in items, never sold
    if model.supports_cold_start:
        forecast = model.predict(3, series=new)
        assert forecast.height == 3 and forecast["y_pred"].is_finite().all()
    else:
        with pytest.raises(InputError, match="without history"):
            model.predict(3, series=new)


@pytest.mark.parametrize("name", MODELS)
def test_backtest_contract(name, shop_panel, fitted):
    fitted(name)  # the embedding cache is warm for the refits
    # Neural models fit once and roll forward (refitting them is the same code path as fit).
    protocol = BacktestProtocol(horizon=3, windows=2, step=2, refit=not _is_neural(name))
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


NEURAL = [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in registered_models()
          if _is_neural(n)]


@pytest.mark.parametrize("name", NEURAL)
def test_gradient_reaches_every_trainable_component(name, shop_panel, fitted):
    """One training step of the fitted network: no parameter is a dead branch."""
    import numpy as np

    from salesfusion.features.lags import to_wide
    from salesfusion.training.lightning_module import forecast_loss
    from salesfusion.training.windows import make_windows

    model = fitted(name)
    net = model.network.train()
    wide = to_wide(shop_panel)
    windows = make_windows(wide, shop_panel.freq, model.params["lookback"], 3,
                           covariates=model.inputs.covariates(shop_panel, wide))
    windows = windows.subset(windows.target_mask.any(axis=1))
    tensors = model.inputs.series_inputs(wide)(windows.subset(np.arange(min(256, len(windows)))))
    tensors["items"][:2] = -1  # items with no content: the "nothing known" paths
    output = net(tensors)
    quantiles = tuple(float(q) for q in model.params["quantiles"])
    forecast_loss(model.params["loss"], quantiles, model.params["tweedie_power"], model.point)(
        output, tensors["target"], tensors["target_mask"]).backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    net.zero_grad()
    net.eval()
    assert dead == []
