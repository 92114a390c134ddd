"""Named model presets: YAML configurations of the multimodal model, one per seed system.

A preset is configuration, not a class hierarchy: each file gives parameters on top of the
multimodal defaults, the seed section it follows and its deviations; registering it makes a
named subclass whose only difference is its default parameters.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from salesfusion.models.multimodal import MultimodalForecaster
from salesfusion.models.registry import register

PRESET_DIR = Path(str(files("salesfusion.models") / "presets"))


def load_presets() -> dict[str, dict[str, Any]]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted(PRESET_DIR.glob("*.yaml"))}


for _name, _preset in load_presets().items():
    _params = {**MultimodalForecaster.default_params, **_preset["params"]}
    register(type(f"Preset_{_name}", (MultimodalForecaster,), {
        "name": _name,
        "supports_quantiles": bool(_params["quantiles"]),
        "__doc__": f"{_preset['description']}\n\nSeed: {_preset['seed_paper']}. Deviations: "
                   f"{_preset['deviations']}",
        "default_params": _params,
    }))
