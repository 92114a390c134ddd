"""Every registry of components, in one place at the bottom of the layers: models, encoders,
fusions, temporal backbones, heads, losses and target transforms.

Each registry imports the modules that register its built-in components only when it is first
read, so importing this module is cheap and no layer has to import another to validate a name.
``salesfusion components`` lists them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from salesfusion.registry import Registry


def _importer(*modules: str) -> Callable[[], None]:
    def load() -> None:
        for module in modules:
            importlib.import_module(module)

    return load


MODELS: Registry[Any] = Registry("model", _importer(
    "salesfusion.models.baselines", "salesfusion.models.multimodal", "salesfusion.models.presets",
    "salesfusion.models.ensemble"))
ENCODERS: Registry[Any] = Registry("encoder", _importer(
    "salesfusion.encoders.text", "salesfusion.encoders.image", "salesfusion.encoders.static",
    "salesfusion.encoders.clip"))
FUSIONS: Registry[Any] = Registry("fusion", _importer("salesfusion.fusion"))
BACKBONES: Registry[Any] = Registry("backbone", _importer("salesfusion.models.temporal"))
HEADS: Registry[Any] = Registry("head", _importer("salesfusion.models.heads"))
LOSSES: Registry[Any] = Registry("loss", _importer("salesfusion.training.losses"))
TARGET_TRANSFORMS: Registry[Any] = Registry("target transform",
                                            _importer("salesfusion.training.transforms"))
SEARCHERS: Registry[Any] = Registry("searcher", _importer("salesfusion.tuning.searchers"))

ALL: dict[str, Registry[Any]] = {r.kind: r for r in (
    MODELS, ENCODERS, FUSIONS, BACKBONES, HEADS, LOSSES, TARGET_TRANSFORMS, SEARCHERS)}
