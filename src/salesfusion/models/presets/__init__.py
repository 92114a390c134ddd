"""Named model presets: YAML configurations of the multimodal model, one per seed system.

A preset is configuration, not a class hierarchy: each file gives parameters on top of the
multimodal defaults, the seed section it follows and its deviations. Its parameters are
validated against ``MultimodalConfig`` when the file is loaded, so a misspelt key or a wrong
type is an error naming the file and the key; registering it makes a named subclass whose only
difference is its ``preset_params``. A user's own preset file (same format) loads through
``load_preset`` and ``salesfusion train --preset FILE``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from salesfusion.data.yamlfile import read_mapping, validated
from salesfusion.models.base import Forecaster
from salesfusion.models.config import validate_config
from salesfusion.models.multimodal import MultimodalForecaster
from salesfusion.models.registry import register
from salesfusion.models.search_space import parse_space

PRESET_DIR = Path(str(files("salesfusion.models") / "presets"))


class PresetFile(BaseModel):
    """The fields of a preset YAML file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    seed_paper: str
    description: str
    deviations: str
    params: dict[str, Any]
    # What ``salesfusion tune`` searches by default (``models.search_space``).
    search_space: dict[str, Any] | None = None


def read_preset(path: Path) -> PresetFile:
    """A preset file, its parameters validated; every problem names the file and the key."""
    preset = validated(PresetFile, read_mapping(path, "preset"), path, "preset")
    validate_config(MultimodalForecaster.Config, preset.params, owner=preset.name,
                    source=str(path))
    if preset.search_space is not None:
        parse_space(preset.search_space, str(path)).check_against(
            MultimodalForecaster.Config, preset.params, owner=preset.name, source=str(path))
    return preset


def preset_class(preset: PresetFile) -> type[Forecaster]:
    """A named model class whose defaults are the preset's parameters."""
    return type(f"Preset_{preset.name}", (MultimodalForecaster,), {
        "name": preset.name,
        "__doc__": f"{preset.description}\n\nSeed: {preset.seed_paper}. Deviations: "
                   f"{preset.deviations}",
        "preset_params": dict(preset.params),
        "search_space": (parse_space(preset.search_space, preset.name)
                         if preset.search_space is not None else None),
    })


def load_preset(path: str | Path) -> type[Forecaster]:
    """A user's preset file as a model class (not registered)."""
    return preset_class(read_preset(Path(path)))


def resolve_model(reference: str) -> type[Forecaster]:
    """A model class from its registered name (a model or preset) or a preset YAML file."""
    from salesfusion.models.registry import model_class

    if Path(reference).suffix.lower() in (".yaml", ".yml"):
        return load_preset(reference)
    return model_class(reference)


def load_presets() -> dict[str, dict[str, Any]]:
    """Every bundled preset file, validated, by name."""
    return {p.stem: read_preset(p).model_dump() for p in sorted(PRESET_DIR.glob("*.yaml"))}


for _path in sorted(PRESET_DIR.glob("*.yaml")):
    register(preset_class(read_preset(_path)))
