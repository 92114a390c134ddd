"""Models given as files on the command line: a config (``model: NAME, params: {...}``) or a
preset file (the bundled presets' format), read and validated before any data is read, every
error naming the file and the key. ``train``, ``tune`` and ``backtest`` share them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from salesfusion.errors import InputError

MODEL_FILE_SUFFIXES = (".yaml", ".yml")


def is_model_file(reference: str) -> bool:
    return Path(reference).suffix.lower() in MODEL_FILE_SUFFIXES


def read_model_config(path: Path) -> tuple[str, dict[str, Any]]:
    """(model name or preset file, params) of a model config file."""
    from salesfusion.data.yamlfile import read_mapping

    raw = read_mapping(path, "model config")
    if "model" not in raw or set(raw) - {"model", "params"}:
        raise InputError(f"{path}: a model config is a mapping with 'model' (a registered "
                         f"model or preset) and optional 'params', got keys {sorted(raw)}")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise InputError(f"{path}: 'params' must be a mapping")
    return str(raw["model"]), params


def configured_model(name: str, params: dict[str, Any], horizon: int | None,
                     config: Path | None) -> Any:
    """The model a config file or a preset (a registered name or a preset YAML file) names,
    validated before any data is read; errors name the file and the key."""
    from salesfusion.models.presets import load_preset
    from salesfusion.models.registry import build_model, model_class

    if is_model_file(name):  # a preset file, named alone or by a config
        return build_model(load_preset(name), params, horizon, source=str(config or name))
    return build_model(model_class(name), params, horizon,
                       source=str(config) if config else None)


def model_from_file(path: Path, horizon: int) -> Any:
    """The model a config or preset file describes, built for ``horizon``, labelled by the
    file: a config by its file name without the suffix (so two configs of one model compare
    side by side), a preset by its own name."""
    from salesfusion.data.yamlfile import read_mapping

    raw = read_mapping(path, "model file")
    if "model" not in raw:  # a preset file
        return configured_model(str(path), {}, horizon, None)
    name, params = read_model_config(path)
    if "horizon" in params and params["horizon"] != horizon:
        raise InputError(f"{path}: 'horizon: {params['horizon']}' contradicts --horizon "
                         f"{horizon}; give one of them")
    model = configured_model(name, params, horizon, path)
    model.name = path.stem
    return model
