"""knn_analogue's numerical edge cases: no analogue at all, an attribute with no value."""

import warnings

import polars as pl
import pytest

from salesfusion.errors import InputError
from salesfusion.models.registry import create_model


def test_no_item_with_both_content_and_sales_is_an_input_error(shop_panel):
    """Were it not refused, every forecast would average over no analogue (NaN)."""
    shop_panel.items = shop_panel.items.with_columns(
        (pl.lit("X-") + pl.col("item_id")).alias("item_id"))
    with pytest.raises(InputError, match="no analogue") as error:
        create_model("knn_analogue", horizon=3).fit(shop_panel)
    assert "X-P000" in str(error.value) and "P000" in str(error.value)


def test_an_attribute_with_no_value_leaves_forecasts_finite_and_quiet(shop_panel):
    shop_panel.items = shop_panel.items.with_columns(pl.lit(None, pl.Float64).alias("weight"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's RuntimeWarnings included
        model = create_model("knn_analogue", horizon=3).fit(shop_panel)
        forecast = model.predict(3, history=shop_panel)
    assert forecast.height == 3 * shop_panel.n_series
    assert forecast["y_pred"].is_finite().all()
