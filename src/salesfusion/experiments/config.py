"""The experiment configuration (YAML, validated before any data is read) and its cells.

An experiment runs every model on every dataset, ``trials`` times (seeds), under one
evaluation; an ablation grid expands one model into every combination of its axes. A cell is
one (dataset, model variant, trial). For example, the ablation grid of seed 004 table 4::

    name: seed004_ablation
    datasets: [synthetic]
    evaluation: {kind: backtest, horizon: 4, windows: 2}
    trials: 5
    metric: rmsse          # what ranks and tests the models (scoring.selection)
    models:
      - {name: lightgbm, baseline: true}
      - {name: resnet_biattn_bilstm, params: {epochs: 20}}
    ablation:
      model: resnet_biattn_bilstm
      axes:
        image: {resnet18: {image_encoder: resnet18}, resnet101: {image_encoder: resnet101}}
        attention: {"on": {fusion: bidirectional}, "off": {fusion: concat}}
        recurrence: {lstm: {backbone: lstm}, bilstm: {backbone: bilstm}}
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from salesfusion.data.yamlfile import read_mapping, validated
from salesfusion.errors import InputError
from salesfusion.scoring.selection import (
    DEFAULT_METRIC,
    METRIC_HELP,
    SelectionMetric,
    check_metric,
    metric_label,
)

METRICS = ("WAPE", "RMSSE", "WRMSSE", "bias_pct", "RMSE", "MAE", "MSE", "MASE", "sMAPE", "MAPE",
           "R2", "direction_accuracy", "direction_AUC", "pinball", "coverage")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetEntry(_Strict):
    """A bundled dataset (``name``) or a spec file (``spec``, relative to the config file)."""

    name: str | None = None
    spec: str | None = None
    label: str | None = None
    freq: Literal["D", "W", "M"] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatasetEntry:
        if (self.name is None) == (self.spec is None):
            raise ValueError("give exactly one of name (a bundled dataset) or spec (a file)")
        return self

    @property
    def key(self) -> str:
        return self.label or self.name or Path(str(self.spec)).stem


class TuneStep(_Strict):
    """A search on the validation part before the trials (``salesfusion tune``'s)."""

    searcher: str = "random"
    budget: int = Field(10, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)
    space: str | None = None  # a search space file; default: the preset's


class ModelEntry(_Strict):
    name: str  # a registered model or preset, or a preset YAML file
    label: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    baseline: bool = False  # the best baseline is what relative improvements are against
    tune: TuneStep | None = None

    @property
    def key(self) -> str:
        return self.label or Path(self.name).stem


class Evaluation(_Strict):
    """``split``: chronological train / validation / test (7:2:1 by default, seed 003) with the
    test part forecast in non-overlapping windows of ``horizon`` by the model trained once;
    ``backtest``: the rolling-origin backtest (the dataset's own protocol by default);
    ``launch``: items held out as new, forecast from their launch (``LaunchProtocol``)."""

    kind: Literal["split", "backtest", "launch"] = "backtest"
    fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)
    horizon: int | None = Field(None, ge=1)
    windows: int | None = Field(None, ge=1)
    step: int | None = Field(None, ge=1)
    refit: bool | None = None
    launch: dict[str, Any] = Field(default_factory=dict)  # LaunchProtocol fields


class Ablation(_Strict):
    model: str  # the label of one entry of ``models``
    axes: dict[str, dict[str, dict[str, Any]]] = Field(min_length=1)

    @field_validator("axes")
    @classmethod
    def _levels(cls, axes: dict[str, dict[str, dict[str, Any]]]) -> dict:
        for axis, levels in axes.items():
            if len(levels) < 2:
                raise ValueError(f"axis '{axis}' needs 2 or more levels")
        return axes


class ExperimentConfig(_Strict):
    name: str
    description: str = ""
    datasets: list[DatasetEntry] = Field(min_length=1)
    models: list[ModelEntry] = Field(min_length=1)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    trials: int = Field(5, ge=1, description="Repeated trials (seeds 0..trials-1), as seed 004.")
    seeds: list[int] | None = None
    metrics: list[str] = Field(default_factory=lambda: ["RMSSE", "WAPE", "bias_pct", "MAE",
                                                        "MASE", "direction_accuracy"])
    metric: SelectionMetric = Field(DEFAULT_METRIC, description=METRIC_HELP)
    max_series: int | None = Field(None, ge=1, description=(
        "Keep the series with the most demand (a smaller, faster experiment)."))
    ablation: Ablation | None = None

    @field_validator("datasets", "models", mode="before")
    @classmethod
    def _shorthand(cls, entries: Any) -> Any:
        """``- synthetic`` for ``- {name: synthetic}``; a spec path for ``{spec: ...}``."""
        if not isinstance(entries, list):
            return entries
        return [({"spec": e} if e.endswith((".yaml", ".yml")) and "/" in e else {"name": e})
                if isinstance(e, str) else e for e in entries]

    @model_validator(mode="before")
    @classmethod
    def _primary_metric(cls, data: Any) -> Any:
        """``primary_metric`` (configs written before ``metric``) named what ranks: read as
        ``metric`` where it is one of the selection metrics (``WAPE`` is ``wape``)."""
        if not isinstance(data, dict) or "primary_metric" not in data:
            return data
        data = dict(data)
        legacy = data.pop("primary_metric")
        try:
            chosen = check_metric(legacy)
        except InputError:
            raise ValueError(f"primary_metric {legacy} cannot rank the models: give metric, "
                             f"one of rmsse, wape, mae, bias_abs, pinball") from None
        given = data.get("metric")
        if given is not None and str(given).lower() != chosen:
            raise ValueError(f"primary_metric {legacy} contradicts metric {given}: give "
                             f"metric only")
        data["metric"] = chosen
        return data

    @field_validator("metric", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @property
    def headline_metric(self) -> str:
        """The column the headline, ranking, ablation and plots show (``RMSSE``,
        ``bias_abs``...)."""
        return metric_label(self.metric)

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        for field_name, keys in (("datasets", [d.key for d in self.datasets]),
                                 ("models", [m.key for m in self.models])):
            repeated = sorted({k for k in keys if keys.count(k) > 1})
            if repeated:
                raise ValueError(f"{field_name} {repeated} appear twice: give each a label")
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; use {', '.join(METRICS)}")
        if self.seeds is not None and len(self.seeds) != self.trials:
            raise ValueError(f"{len(self.seeds)} seeds for {self.trials} trials")
        if self.ablation is not None and self.ablation.model not in [m.key for m in self.models]:
            raise ValueError(f"ablation model '{self.ablation.model}' is not one of the models "
                             f"({', '.join(m.key for m in self.models)})")
        ablated = [m for m in self.models if self.ablation and m.key == self.ablation.model]
        if ablated and ablated[0].tune is not None:
            raise ValueError(f"model '{ablated[0].key}' is ablated and tuned: an ablation "
                             f"compares fixed settings, so give it no tune step")
        if self.evaluation.kind == "launch":
            from salesfusion.data.launch_splits import LaunchProtocol

            LaunchProtocol(**{"horizon": self.evaluation.horizon or 8,
                              **self.evaluation.launch})
        return self

    @property
    def trial_seeds(self) -> list[int]:
        return list(self.seeds) if self.seeds is not None else list(range(self.trials))

    def variants(self) -> list[Variant]:
        """Every model to run: the entries, with the ablation model expanded into its grid."""
        found = []
        for entry in self.models:
            if self.ablation is None or entry.key != self.ablation.model:
                found.append(Variant(entry.key, entry, dict(entry.params), {}))
                continue
            axes = self.ablation.axes
            for combo in itertools.product(*(list(levels.items()) for levels in axes.values())):
                levels = dict(zip(axes, (label for label, _ in combo), strict=True))
                params = dict(entry.params)
                for _, overrides in combo:
                    params.update(overrides)
                label = f"{entry.key}[{','.join(f'{a}={v}' for a, v in levels.items())}]"
                found.append(Variant(label, entry, params, levels))
        return found


@dataclass(frozen=True)
class Variant:
    """A model as run: its label, the config entry, its parameters, and its ablation levels."""

    label: str
    entry: ModelEntry
    params: dict[str, Any]
    levels: dict[str, str]


@dataclass(frozen=True)
class Cell:
    dataset: DatasetEntry
    variant: Variant
    trial: int  # the trial's index
    seed: int

    @property
    def folder(self) -> str:
        return f"{_safe(self.dataset.key)}/{_safe(self.variant.label)}/trial-{self.trial}"

    def key(self, evaluation: Evaluation, max_series: int | None,
            tuned: dict[str, Any] | None) -> str:
        """What decides the cell's result: a finished cell with this key is not run again."""
        record = {"dataset": self.dataset.model_dump(), "model": self.variant.entry.name,
                  "params": self.variant.params, "tuned": tuned, "seed": self.seed,
                  "evaluation": evaluation.model_dump(), "max_series": max_series}
        return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()
                              ).hexdigest()[:16]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=," else "_" for c in name)


def load_experiment(path: Path) -> ExperimentConfig:
    """The experiment file, validated; spec paths made absolute (relative to the file)."""
    raw = read_mapping(path, "experiment")
    config = validated(ExperimentConfig, raw, path, "experiment")
    datasets = [d.model_copy(update={"spec": str((path.parent / d.spec).resolve())})
                if d.spec else d for d in config.datasets]
    models = [m.model_copy(update={"name": str((path.parent / m.name).resolve())})
              if m.name.endswith((".yaml", ".yml")) else m for m in config.models]
    config = config.model_copy(update={"datasets": datasets, "models": models})
    check_models(config, path)
    return config


def check_models(config: ExperimentConfig, path: Path) -> None:
    """Every model variant's parameters are valid for its model (before any data is read)."""
    from salesfusion.models.config import validate_config
    from salesfusion.models.presets import resolve_model

    for variant in config.variants():
        try:
            model_type = resolve_model(variant.entry.name)
        except InputError as exc:
            raise InputError(f"{path}: model '{variant.entry.name}': {exc}") from None
        validate_config(model_type.Config, {**model_type.preset_params, **variant.params},
                        owner=variant.label, source=str(path))
