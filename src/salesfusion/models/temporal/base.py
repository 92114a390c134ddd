"""What every temporal backbone declares and receives.

A backbone encodes a history window (with its observed mask) and the item/market context into
features for the head. The network builder reads two declarations, never a backbone's name:

- ``reads_future``: ``forward`` takes the forecast periods' known inputs (B, H, G) as a fourth
  argument; otherwise the builder joins them, flattened, to the backbone's output.
- ``max_lookback``: the longest history window it can take (a positional table's size), so a
  configuration with a longer ``lookback`` is refused when it is validated;
- ``selects_static``: the backbone weighs the static variables itself (the TFT's variable
  selection), so it receives them as a list of (B, d_i) tensors and no fusion runs before it;
  otherwise it receives the fused content + market + level as one (B, context_dim) tensor.

Every backbone is built as ``Backbone(shape, hidden=..., layers=..., dropout=..., **params)``
(``params``: its own ``Params``, e.g. a transformer's ``heads``) and sets ``out_dim``. A new
backbone is one file with a subclass and ``@BACKBONES.register``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import Field
from torch import nn

from salesfusion.registry import ComponentParams


@dataclass(frozen=True)
class BackboneShape:
    """The widths a backbone is built for."""

    input_dim: int  # one history step: value, calendar, dynamic covariates
    context_dim: int  # the fused context vector (backbones that do not select statics)
    horizon: int = 1
    future_dim: int = 0  # one forecast step's known inputs
    static_dims: tuple[int, ...] = field(default_factory=tuple)  # for selects_static
    lookback: int | None = None  # history periods per window (None: any)


class AttentionParams(ComponentParams):
    """What an attention backbone with a learned positional table takes."""

    heads: int = Field(4, ge=1, description="Attention heads (dividing hidden).")
    max_length: int = Field(512, ge=1, description=(
        "Rows of the positional table: the longest lookback."))


class TemporalBackbone(nn.Module):
    name: ClassVar[str]
    reads_future: ClassVar[bool] = False
    selects_static: ClassVar[bool] = False
    # The longest history window the backbone can take (positional tables); None: any. A
    # model's configuration is refused against it when validated, before any data is read.
    max_lookback: ClassVar[int | None] = None
    # What it takes beyond the shape, hidden, layers and dropout (``backbone: {name, params}``).
    Params: ClassVar[type[ComponentParams]] = ComponentParams

    @classmethod
    def longest_lookback(cls, params: ComponentParams) -> int | None:
        """The longest lookback the backbone built with ``params`` can take (None: any): its
        positional table's ``max_length`` where it has one, else ``max_lookback``."""
        return getattr(params, "max_length", cls.max_lookback)
    out_dim: int
