"""Review texts feed the models (``encoders.review_text``): with the reviews table's
``text_embedding`` set, the mean minilm vector of each period's reviews, projected on axes
fitted on the training periods only, becomes past-only channels every covariate-reading model
reads; saved with the model and refused where the history lacks the texts.

The recovery test hides the star ratings (the spec maps no ``rating``), so the only way to the
planted review effect is through the words: LightGBM reading the text channels must beat
LightGBM reading the review count alone. Measured on this shop (3 windows of 4 weeks, LightGBM
seed 0): the RMSSE gain of 2 text axes over the count alone was 4.4 and 5.0 % (shop seeds 0, 1;
the stars themselves gave 5.9 and 6.3 %), and +0.2, +0.6 and -0.1 % with ``review_effect`` 0
(seeds 0-2), so the rating test's 3 % margin holds here too."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from salesfusion.data.panel import build_panel
from salesfusion.data.reviews import ReviewTexts
from salesfusion.data.spec import ReviewTextEmbedding, load_spec
from salesfusion.data.splits import BacktestProtocol
from salesfusion.data.validate import load_tables
from salesfusion.datasets.synthetic import generate
from salesfusion.encoders.review_text import ReviewTextProjection, review_text_channels
from salesfusion.errors import InputError
from salesfusion.evaluation.backtest import metrics_table
from salesfusion.models.backtest import run_backtest
from salesfusion.models.base import Forecaster
from salesfusion.models.registry import create_model

SHOP = {"n_items": 80, "n_weeks": 60, "image_size": 8, "events_per_market": 1, "reviews": True,
        "seed": 0}
LIGHTGBM = {"horizon": 4, "max_rounds": 100, "quantiles": [], "seed": 0}
MARGIN = 0.03  # as the rating's recovery test (tests/test_review_recovery.py)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setattr("salesfusion.encoders.review_text.DEFAULT_CACHE", tmp_path / "cache")


def _shop(folder: Path, text_embedding: dict | None, rating: bool = False):
    """The synthetic shop's panel with its reviews read as the spec says."""
    generate(folder, **{k: v for k, v in SHOP.items()})
    spec_file = folder / "spec.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    if not rating:
        spec["reviews"]["columns"].pop("rating")
        spec["reviews"].pop("rating_range", None)
    if text_embedding is not None:
        spec["reviews"]["text_embedding"] = text_embedding
    spec_file.write_text(yaml.safe_dump(spec))
    return build_panel(load_tables(load_spec(spec_file)))


def _rmsse(forecasts: pl.DataFrame) -> float:
    table = metrics_table(forecasts)
    return table.filter((pl.col("window") == "all") & (pl.col("segment") == "all")
                        & (pl.col("metric") == "RMSSE"))["value"].item()


def test_lightgbm_recovers_the_review_effect_from_the_words_alone(tmp_path):
    panel = _shop(tmp_path, {"encoder": "minilm", "dims": 2})
    assert "review_rating" not in panel.past_only and panel.review_texts is not None
    protocol = BacktestProtocol(horizon=4, windows=3)
    reading = _rmsse(run_backtest(create_model("lightgbm", **LIGHTGBM), panel, protocol))
    counting = _rmsse(run_backtest(create_model("lightgbm", **LIGHTGBM),
                                   _shop(tmp_path / "plain", None), protocol))
    assert reading < (1 - MARGIN) * counting, (reading, counting)

    model = create_model("lightgbm", **LIGHTGBM).fit(panel)
    gain = dict(zip(model.feature_names, model.booster.feature_importance("gain"), strict=True))
    text = sum(gain[f"cov_{c}"] for c in review_text_channels(2))
    assert text / sum(gain.values()) > 0.1, sorted(gain.items(), key=lambda i: -i[1])[:8]


def _texts(rows: list[tuple[str, str, str]], dims: int = 2) -> ReviewTexts:
    frame = pl.DataFrame(rows, schema=["item_id", "timestamp", "text"], orient="row")
    frame = frame.with_columns(pl.col("timestamp").str.to_datetime())
    return ReviewTexts(frame=frame, keys=("item_id", "timestamp"),
                       embedding=ReviewTextEmbedding(encoder="minilm", dims=dims), source="r")


def test_the_projection_is_fitted_on_training_periods_only():
    early = [("A", "2024-01-01", "Excellent, love it!"), ("A", "2024-01-08", "Awful, broke."),
             ("B", "2024-01-01", "Fine, does the job.")]
    late = [("B", "2024-01-15", "Arrived late, box crushed, but the blender is powerful.")]
    until = datetime(2024, 1, 8)
    alone = ReviewTextProjection.fit(_texts(early), until)
    with_later = ReviewTextProjection.fit(_texts(early + late), until)
    np.testing.assert_array_equal(alone.axes, with_later.axes)
    np.testing.assert_array_equal(alone.centre, with_later.centre)
    assert ReviewTextProjection.fit(_texts(early + late), datetime(2024, 1, 15)).axes.tolist() \
        != alone.axes.tolist()
    # Three training rows give two axes at most: the rest are zero, the channels stay four.
    four = ReviewTextProjection.fit(_texts(early, dims=4), until)
    assert four.channels == review_text_channels(4) and not four.axes[2:].any()


def test_a_period_without_reviews_holds_null_and_keys_follow_the_panel():
    texts = _texts([("A", "2024-01-01", "Excellent, love it!"),
                    ("A", "2024-01-01", "Wonderful, five stars."),
                    ("A", "2024-01-15", "Terrible, it broke after a week.")])
    projection = ReviewTextProjection.fit(texts, datetime(2024, 1, 15))
    panel = pl.DataFrame({"item_id": ["A"] * 3 + ["B"], "market": "UK",
                          "timestamp": [datetime(2024, 1, d) for d in (1, 8, 15, 1)]})
    table = projection.table(texts, panel)
    values = table.frame.sort("item_id", "timestamp")["review_text_1"].to_list()
    assert values[1] is None and values[3] is None  # A's quiet week, B's never-reviewed one
    assert values[0] != values[2]


def test_the_channels_are_saved_with_the_model_and_refused_without_texts(tmp_path):
    panel = _shop(tmp_path / "shop", {"encoder": "minilm", "dims": 2}, rating=True)
    model = create_model("lightgbm", **LIGHTGBM).fit(panel)
    assert set(review_text_channels(2)) <= set(model.history.past_only)
    expected = model.predict(4, history=panel)
    loaded = Forecaster.load(model.save(tmp_path / "model"))
    assert loaded.predict(4, history=panel).equals(expected)
    assert loaded.predict(4).equals(model.predict(4))
    plain = _shop(tmp_path / "plain", None, rating=True)
    with pytest.raises(InputError, match="trained with review-text channels"):
        loaded.predict(4, history=plain)


def test_an_encoder_that_learns_from_the_corpus_is_refused(tmp_path):
    panel = _shop(tmp_path, {"encoder": "tfidf", "dims": 2})
    with pytest.raises(InputError, match=r"'tfidf' is not a pretrained text encoder.*minilm"):
        create_model("lightgbm", **LIGHTGBM).fit(panel)


def test_the_neural_model_and_an_ensemble_read_the_text_channels(tmp_path, monkeypatch):
    monkeypatch.setattr("salesfusion.models.multimodal.fitting.DEFAULT_CACHE", tmp_path / "mm")
    panel = _shop(tmp_path / "shop", {"encoder": "minilm", "dims": 2})
    neural = create_model("multimodal", horizon=4, seed=0,
                          **create_model("multimodal").test_params())
    neural.fit(panel)
    assert set(review_text_channels(2)) <= set(neural.inputs.covariate_names)
    assert neural.predict(4, history=panel)["y_pred"].is_finite().all()
    # The ensemble derives the channels once; its members read them from the panel it hands on.
    ensemble = create_model("ensemble", horizon=4, members=["lightgbm", "naive"]).fit(panel)
    assert set(review_text_channels(2)) <= set(ensemble.history.past_only)
    assert ensemble.predict(4, history=panel).height == neural.predict(4).height
