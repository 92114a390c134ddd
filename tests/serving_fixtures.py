"""Models trained once per test module on a small synthetic shop, saved to folders, and the
API app over them (shared by the serving tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from salesfusion.datasets.synthetic import synthetic
from salesfusion.models.registry import create_model

API_KEY = "test-key-0123456789abcdef"


@dataclass
class ServedShop:
    shop: object
    panel: object
    folders: dict[str, Path]


def train_shop(root: Path) -> ServedShop:
    shop = synthetic(root / "shop", n_items=40, n_weeks=40, image_size=16, seed=3)
    panel = shop.panel()
    folders = {}
    for name, params in (("mm", {"epochs": 2, "lookback": 8, "hidden": 16, "fusion_dim": 16,
                                 "horizon": 4, "accelerator": "cpu"}),
                         ("gbm", {"max_rounds": 40})):
        model = create_model("multimodal" if name == "mm" else "lightgbm", **params)
        model.fit(panel)
        folders[name] = model.save(root / name)
    return ServedShop(shop, panel, folders)
