"""Integrated-gradients attributions of a neural forecaster's output, by input variable and
modality, per forecast step and origin.

What is attributed: the network's median (or point) output for each forecast step, in the
units the network computes it (the window's demand divided by its level, after the target
transform; for the count losses, its log mean). Inputs are every tensor the output depends on
continuously (``MultimodalNet.attribution_inputs``): the history window (value, calendar and
covariate channels), the forecast periods' known inputs, the level, the item's demand abroad,
the market embedding (and market attributes), the item's text and image vectors and its static
attributes' embeddings. Discrete lookups and masks (which content exists, which periods were
observed) are not varied.

Integrated gradients (Sundararajan et al. 2017, through captum) integrates the gradient along
the straight path from a baseline to the input; the attributions of a (window, step) sum to
output(input) - output(baseline) (completeness), and ``Attributions.completeness_gap`` reports
how far the numerical integral is from that. Baselines: ``"mean"`` (default) is the mean of
each input over the windows explained, so an attribution says how this window's input moves
its forecast away from the forecast of an average window; ``"zero"`` is the all-zero input
(no sales, no content vector), which makes every history attribution a contribution of demand
over none. Gradients run with cuDNN disabled: a cuDNN RNN has no backward pass in eval mode,
and ``train()`` would switch dropout on and make the attributions unrepeatable.

Variables and their modality (``group``): the demand history (``history``: the window's values,
``level``, ``abroad``), ``calendar`` (both the history's and the forecast periods'), each
covariate (``events:<channel>`` for the event channels, ``exogenous:<channel>`` for prices,
promotions and exogenous tables; its history and planned parts summed), ``market`` (the
embedding; ``market:<attribute>`` for each markets-table attribute), ``text``, ``image`` and
``static:<attribute>`` (a categorical attribute's embedding columns summed back to one value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import torch

from salesfusion.components import LOSSES
from salesfusion.data.panel import Panel
from salesfusion.errors import InputError
from salesfusion.features.calendar import CALENDAR_CHANNELS
from salesfusion.features.events import event_names
from salesfusion.models.base import Forecaster

GROUPS = ("history", "calendar", "static", "text", "image", "market", "exogenous", "events")
BASELINES = ("mean", "zero")


@dataclass
class Attributions:
    """``table``: one row per (window, step, variable) with ``item_id, market, origin, step,
    timestamp, age, group, variable, attribution``; ``age`` is the number of periods the series
    had sold for at the origin (0: a launch forecast, no history). ``output`` / ``base_output``
    (window, step) are the explained outputs at the input and at the baseline."""

    table: pl.DataFrame
    output: np.ndarray
    base_output: np.ndarray
    completeness_gap: float  # max |sum of attributions - (output - base output)|
    baseline: str
    steps: int
    quantile: float | None
    notes: list[str] = field(default_factory=list)

    def by_group(self) -> pl.DataFrame:
        """Mean absolute attribution per group and its share, largest first."""
        per_cell = (self.table.group_by("item_id", "market", "origin", "step", "group")
                    .agg(pl.col("attribution").sum()))
        out = per_cell.group_by("group").agg(pl.col("attribution").abs().mean()
                                             .alias("mean_abs"))
        return out.with_columns((pl.col("mean_abs") / pl.col("mean_abs").sum()).alias("share")
                                ).sort("mean_abs", descending=True)

    def summary(self) -> dict[str, Any]:
        spread = float(np.abs(self.output - self.base_output).max()) if self.output.size else 0.0
        return {"method": "integrated gradients (captum)", "baseline": self.baseline,
                "steps": self.steps, "quantile": self.quantile,
                "windows": int(self.output.shape[0]),
                "completeness_gap": self.completeness_gap,
                "largest_output_change": spread,
                "groups": self.by_group().to_dicts(), "notes": self.notes}


def explanation_origins(panel: Panel, count: int, lookback: int) -> np.ndarray:
    """``count`` period indices spread evenly from the first with half a lookback of history
    to the panel's last period."""
    n_periods = panel.data["timestamp"].n_unique()
    return spaced_origins(min(max(lookback // 2, 1), n_periods - 1), n_periods - 1, count)


def spaced_origins(first: int, last: int, count: int) -> np.ndarray:
    """``count`` period indices spread evenly from ``first`` to ``last`` (repeats dropped)."""
    return np.unique(np.linspace(first, last, max(count, 1)).round().astype(int))


def integrated_gradients(model: Forecaster, panel: Panel, origins: Sequence[int] | None = None,
                         max_windows: int = 400, steps: int = 32, baseline: str = "mean",
                         seed: int = 0, chunk: int = 64) -> Attributions:
    """Attributions of ``model``'s forecasts from the windows of ``panel`` at period indices
    ``origins`` (default: 6 spread over the panel, ``explanation_origins``), at most
    ``max_windows`` of them (a seeded sample), ``steps`` points of the path integral."""
    from captum.attr import IntegratedGradients

    if not model.explains_by_gradients:
        raise InputError(f"model '{model.name}' has no gradients to attribute (a fitted neural "
                         f"model is needed; LightGBM: explain.importance)")
    if baseline not in BASELINES:
        raise InputError(f"unknown baseline '{baseline}'; use one of {', '.join(BASELINES)}")
    config = model.config
    chosen = (explanation_origins(panel, 6, config.lookback) if origins is None
              else np.asarray(origins, dtype=int))
    found = model.explanation_windows(panel, chosen)
    n_windows = len(found.windows)
    if n_windows == 0:
        raise InputError(f"no window of the panel at origins {chosen.tolist()} has a series "
                         f"sold before or launched right after it")
    keep = np.arange(n_windows)
    if n_windows > max_windows:
        keep = np.sort(np.random.default_rng(seed).choice(n_windows, max_windows, replace=False))
    net = model.network
    net.eval()
    # The point forecast's channel: the mean channel (first), else the median quantile's.
    quantile_index = (config.quantiles.index(0.5)
                      if config.quantiles and config.point == "median" else 0)
    log_mean = quantile_index == 0 and config.point == "mean" and LOSSES.get(config.loss).log_link
    batch = {k: v[torch.as_tensor(keep)] for k, v in found.tensors.items()}
    with torch.no_grad():
        inputs = net.attribution_inputs(batch)
    names = list(inputs)
    bases = {n: (inputs[n].mean(0, keepdim=True).expand_as(inputs[n]) if baseline == "mean"
                 else torch.zeros_like(inputs[n])) for n in names}

    def forward(*tensors: torch.Tensor) -> torch.Tensor:
        *values, mask, items = tensors
        output = net.forward_from({"history_mask": mask, "items": items},
                                  dict(zip(names, values, strict=True)))[..., quantile_index]
        # Attributed in level-scaled units, whether the channel is a quantile or a log mean.
        return output.exp() if log_mean else output

    method = IntegratedGradients(forward)
    extra = (batch["history_mask"], batch["items"])
    with torch.no_grad():
        output = forward(*inputs.values(), *extra).numpy().astype(np.float64)
        base_output = forward(*bases.values(), *extra).numpy().astype(np.float64)
    per_step: list[dict[str, np.ndarray]] = []
    gap = 0.0
    with torch.backends.cudnn.flags(enabled=False):
        for step in range(config.horizon):
            parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
            for start in range(0, len(keep), chunk):
                rows = slice(start, start + chunk)
                attributed, delta = method.attribute(
                    tuple(inputs[n][rows] for n in names),
                    baselines=tuple(bases[n][rows] for n in names), target=step,
                    additional_forward_args=tuple(e[rows] for e in extra), n_steps=steps,
                    return_convergence_delta=True)
                gap = max(gap, float(delta.abs().max()))
                for name, values_attributed in zip(names, attributed, strict=True):
                    parts[name].append(values_attributed.detach().numpy())
            per_step.append({n: np.concatenate(p) for n, p in parts.items()})
    variables = _variables(model, names, found.history_channels, found.future_channels)
    table = _table(found, keep, per_step, variables)
    return Attributions(table=table, output=output, base_output=base_output,
                        completeness_gap=gap, baseline=baseline, steps=steps,
                        quantile=0.5 if config.quantiles else None)


def variable_group(channel: str) -> str:
    """The modality of a history / future channel."""
    if channel == "history":
        return "history"
    if channel in CALENDAR_CHANNELS:
        return "calendar"
    return "events" if channel in event_names() else "exogenous"


def channel_variable(channel: str) -> str:
    group = variable_group(channel)
    return group if group in ("history", "calendar") else f"{group}:{channel}"


@dataclass
class _Variables:
    """How each attributed tensor's values sum into named variables: per tensor, a list of
    (variable, group, index into the tensor's last axis or None for all of it)."""

    parts: dict[str, list[tuple[str, str, Any]]]

    def names(self) -> list[tuple[str, str]]:
        seen: dict[str, str] = {}
        for entries in self.parts.values():
            for variable, group, _ in entries:
                seen.setdefault(variable, group)
        return list(seen.items())


def _variables(model: Any, tensors: list[str], history_channels: list[str],
               future_channels: list[str]) -> _Variables:
    net = model.network
    parts: dict[str, list[tuple[str, str, Any]]] = {
        "history": [(channel_variable(c), variable_group(c), i)
                    for i, c in enumerate(history_channels)],
        "future": [(channel_variable(c), variable_group(c), i)
                   for i, c in enumerate(future_channels)],
        "log_level": [("level", "history", None)],
        "abroad": [("abroad", "history", None)],
        "market": [("market", "market", slice(0, net.market.embedding_dim))]
        + [(f"market:{name}", "market", span)
           for name, span in zip(model.config.market_attributes,
                                 net.market_attribute_spans(), strict=True)],
        # Each content modality is one variable of its own group (text, image, a plug-in's).
        **{name: [(name, name, None)] for name in net.content_modalities},
    }
    if "static" in net.modalities:
        parts["static"] = [(f"static:{name}", "static", span)
                           for name, span in net.static.spans(model.static_vocabulary).items()]
    return _Variables({name: entries for name, entries in parts.items() if name in tensors})


def _window_values(tensor: np.ndarray, index: Any) -> np.ndarray:
    """(windows,) sums of one variable's entries of an attributed tensor."""
    if index is not None:
        tensor = tensor[..., index]
    return tensor.reshape(tensor.shape[0], -1).sum(axis=1)


def _table(found: Any, keep: np.ndarray, per_step: list[dict[str, np.ndarray]],
           variables: _Variables) -> pl.DataFrame:
    windows, wide = found.windows, found.wide
    series = windows.series[keep]
    origin = windows.origin[keep]
    observed = ~np.isnan(wide.y)
    launch = np.where(observed.any(axis=1), observed.argmax(axis=1), wide.y.shape[1])
    age = np.clip(origin - launch[series] + 1, 0, None)
    periods = found.periods
    names = variables.names()
    column = {variable: i for i, (variable, _) in enumerate(names)}
    blocks = []
    for step, attributed in enumerate(per_step):
        matrix = np.zeros((len(keep), len(names)))
        for tensor, entries in variables.parts.items():
            if tensor not in attributed:
                continue
            for variable, _, index in entries:
                matrix[:, column[variable]] += _window_values(attributed[tensor], index)
        blocks.append((step, matrix))
    keys = wide.keys[series]
    rows = []
    for step, matrix in blocks:
        frame = pl.DataFrame({
            "item_id": np.repeat(keys["item_id"].to_numpy(), len(names)),
            "market": np.repeat(keys["market"].to_numpy(), len(names)),
            "origin": np.repeat(periods[origin], len(names)),
            "step": np.full(len(keep) * len(names), step + 1, dtype=np.int32),
            "timestamp": np.repeat(periods[origin + step + 1], len(names)),
            "age": np.repeat(age, len(names)).astype(np.int32),
            "group": np.tile([g for _, g in names], len(keep)),
            "variable": np.tile([v for v, _ in names], len(keep)),
            "attribution": matrix.ravel(),
        })
        rows.append(frame)
    return pl.concat(rows)
