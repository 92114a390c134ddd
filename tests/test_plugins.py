"""Components from outside the package: a distribution installed on the path declares entry
points in the ``salesfusion.<kind>`` groups, and the CLI, ``Forecaster.load`` and the service
see its components without anything importing it.

The plug-in is installed the way an installer leaves it: the package's files and a
``<name>-<version>.dist-info`` folder with ``METADATA`` and ``entry_points.txt``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
import yaml
from fastapi.testclient import TestClient

from salesfusion.components import BACKBONES, MODELS, PluginWarning, refresh_plugins
from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster
from tests.conftest import make_shop
from tests.serving_fixtures import API_KEY

AUTH = {"X-API-Key": API_KEY}

PLUGIN = "sf_toy_plugin"
BACKBONE = "toy_plugin_mean"
MODEL = "toy_plugin_last"
CLI = [sys.executable, "-m", "salesfusion.cli"]

BACKBONE_SOURCE = '''
import torch
from torch import nn

from salesfusion.models.temporal.base import BackboneShape, TemporalBackbone


class ToyMeanBackbone(TemporalBackbone):
    """Mean-pools the observed history through one linear layer, with the context."""

    name = "toy_plugin_mean"

    def __init__(self, shape: BackboneShape, hidden: int = 8, layers: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.history = nn.Linear(shape.input_dim, hidden)
        self.context = nn.Linear(shape.context_dim, hidden)
        self.out_dim = hidden

    def forward(self, history: torch.Tensor, mask: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
        weights = mask.float()[..., None]
        pooled = (self.history(history) * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return torch.relu(pooled + self.context(context))
'''

MODEL_SOURCE = '''
from salesfusion.models.baselines.statistical import Naive
from salesfusion.models.registry import register


@register
class LastValue(Naive):
    """The last value, from a plug-in (registered by importing its module)."""

    name = "toy_plugin_last"
'''


def _install(site: Path, entry_points: str) -> Path:
    package = site / PLUGIN
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "backbone.py").write_text(BACKBONE_SOURCE)
    (package / "models.py").write_text(MODEL_SOURCE)
    info = site / f"{PLUGIN}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sf-toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    return site


@pytest.fixture
def plugin_site(tmp_path):
    return _install(tmp_path / "site", f"""
        [salesfusion.backbones]
        {BACKBONE} = {PLUGIN}.backbone:ToyMeanBackbone

        [salesfusion.models]
        toy_models = {PLUGIN}.models
        """)


@pytest.fixture
def on_path(monkeypatch):
    """Put a site folder on this process's path and read the entry points again; afterwards
    the plug-in's components and modules are gone."""
    def add(site: Path) -> None:
        monkeypatch.syspath_prepend(str(site))
        refresh_plugins()

    yield add
    BACKBONES.unregister(BACKBONE)
    MODELS.unregister(MODEL)
    for name in [m for m in sys.modules if m == PLUGIN or m.startswith(f"{PLUGIN}.")]:
        del sys.modules[name]
    refresh_plugins()


def _run(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_a_plugin_backbone_trains_saves_loads_and_serves(plugin_site, on_path, tmp_path):
    (tmp_path / "shop").mkdir()
    spec = make_shop(tmp_path / "shop", n_items=6, weeks=24)
    listed = _run(["components", "backbone"], plugin_site, tmp_path)
    assert listed.returncode == 0 and BACKBONE in listed.stdout, listed.stderr
    config = tmp_path / "plugin.yaml"
    config.write_text(yaml.safe_dump({"model": "multimodal", "params": {
        "backbone": BACKBONE, "epochs": 1, "lookback": 8, "hidden": 8, "fusion_dim": 8,
        "horizon": 3, "accelerator": "cpu", "modalities": ["static"],
        "cache_dir": str(tmp_path / "cache")}}))
    trained = _run(["train", "--config", str(config), "--spec", str(spec), "--out",
                    str(tmp_path / "model")], plugin_site, tmp_path)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    predicted = _run(["predict", "--model", str(tmp_path / "model"), "--spec", str(spec),
                      "--horizon", "3", "--out", str(tmp_path / "f.parquet")], plugin_site,
                     tmp_path)
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr
    forecasts = pl.read_parquet(tmp_path / "f.parquet")
    assert forecasts.height > 0 and forecasts["y_pred"].is_finite().all()

    # The same process that never imported the plug-in: load and serve the model.
    on_path(plugin_site)
    loaded = Forecaster.load(tmp_path / "model")
    assert type(loaded.network.backbone).__module__ == f"{PLUGIN}.backbone"
    from salesfusion.serving.api import create_app
    from salesfusion.serving.store import ModelStore

    store = ModelStore.load([tmp_path / "model"], warm=False)
    expected = loaded.predict(3)
    item, market = expected.row(0)[:2]
    body = {"model": "model", "options": {"horizon": 3},
            "inputs": [{"item_id": item, "market": market, "frequency": "W"}]}
    with TestClient(create_app(store, [API_KEY.encode()])) as client:
        answer = client.post("/v1/timeseries/forecast", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    content = answer.json()["outputs"][0]["content"][0]
    rows = expected.filter((pl.col("item_id") == item) & (pl.col("market") == market))
    assert content["mean_forecast"] == pytest.approx(rows["y_pred"].to_list(), rel=1e-6)


def test_a_plugin_module_registers_a_model(plugin_site, on_path, shop_panel):
    on_path(plugin_site)
    assert MODEL in MODELS.names()
    forecast = MODELS.get(MODEL)().fit(shop_panel).predict(2)
    assert forecast.height == 2 * shop_panel.n_series


def test_a_broken_plugin_is_one_line_naming_it(tmp_path, on_path):
    site = _install(tmp_path / "broken", f"""
        [salesfusion.backbones]
        {BACKBONE} = {PLUGIN}.missing:Nothing
        """)
    on_path(site)
    with pytest.raises(InputError, match=rf"plug-in '{BACKBONE}' \({PLUGIN}.missing:Nothing, "
                                         r"entry point group salesfusion.backbones, distribution "
                                         r"sf-toy-plugin 0.1\) cannot be loaded: "
                                         r"ModuleNotFoundError"):
        BACKBONES.names()


CLASH_SOURCE = MODEL_SOURCE + '''

class Clash(Naive):
    """Takes a built-in name."""

    name = "naive"
'''
CLASH = (rf"plug-in 'clash' \({PLUGIN}.models:Clash, entry point group salesfusion.models, "
         r"distribution sf-toy-plugin 0.1\) cannot be registered: model name 'naive' is "
         r"registered twice: salesfusion.models.baselines.statistical.Naive already holds it")


def _clashing(site: Path) -> Path:
    _install(site, f"""
        [salesfusion.models]
        clash = {PLUGIN}.models:Clash
        toy_models = {PLUGIN}.models
        """)
    (site / PLUGIN / "models.py").write_text(CLASH_SOURCE)
    return site


def test_a_broken_plugin_does_not_hide_the_good_ones(tmp_path, on_path):
    site = _clashing(tmp_path / "mixed")
    on_path(site)
    for _ in range(2):  # said again on the next read, never silent
        with pytest.raises(InputError, match=r"plug-in 'clash' .* cannot be registered"):
            MODELS.names()
    assert MODEL in MODELS  # the good plug-in of the same group is registered


def test_a_plugin_taking_a_built_in_name_is_an_error_when_that_name_is_looked_up(tmp_path,
                                                                              on_path):
    MODELS.get("naive")  # the built-in is in the registry before the plug-in is installed
    on_path(_clashing(tmp_path / "clash"))
    # Looking up another name reads the plug-ins: the clash is said, and that name answers.
    with pytest.warns(PluginWarning, match=CLASH):
        assert MODELS.get(MODEL).__module__ == f"{PLUGIN}.models"
    for _ in range(2):  # the plug-in's name is ambiguous on every lookup, never silent
        with pytest.raises(InputError, match=CLASH):
            MODELS.get("naive")
        with pytest.raises(InputError, match=CLASH):
            assert "naive" in MODELS


SHADOW_SOURCE = '''
from salesfusion.models.baselines.statistical import Naive
from salesfusion.models.registry import register


@register
class Shadow(Naive):
    """Takes the name of a built-in whose module nothing imported yet."""

    name = "mean_launch_curve"
'''
LOOK_UP = """
import json, warnings
from salesfusion.components import MODELS
from salesfusion.errors import InputError

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    found = {"naive": MODELS.get("naive").__module__}
found["warnings"] = [str(w.message) for w in caught]
try:
    found["curve"] = MODELS.get("mean_launch_curve").__module__
except InputError as exc:
    found["curve"] = str(exc)
print(json.dumps(found))
"""


def test_a_plugin_module_cannot_take_the_name_of_a_built_in_not_imported_yet(tmp_path):
    """In a fresh process, looking up ``naive`` imports its module alone; the plug-in's
    decorator then claims ``mean_launch_curve``, whose module is not imported: it clashes
    with the built-in instead of taking the name before the built-in registers."""
    site = _install(tmp_path / "shadow", f"""
        [salesfusion.models]
        shadow = {PLUGIN}.shadow
        """)
    (site / PLUGIN / "shadow.py").write_text(SHADOW_SOURCE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-c", LOOK_UP], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["naive"] == "salesfusion.models.baselines.statistical"
    clash = (f"plug-in 'shadow' ({PLUGIN}.shadow, entry point group salesfusion.models, "
             f"distribution sf-toy-plugin 0.1) cannot be registered: model name "
             f"'mean_launch_curve' is registered twice: "
             f"salesfusion.models.baselines.launch_curves.MeanLaunchCurve already holds it")
    assert found["warnings"] == [clash]
    assert found["curve"] == clash
