"""Encoders by name, so that configs and the CLI can pick them."""

from __future__ import annotations

from typing import Any

from salesfusion.components import ENCODERS
from salesfusion.encoders.base import Encoder

register_encoder = ENCODERS.register
encoder_class = ENCODERS.get


def create_encoder(name: str, **params: Any) -> Encoder:
    return encoder_class(name)(**params)


def registered_encoders(modality: str | None = None) -> list[str]:
    return ENCODERS.names(lambda c: modality in (None, c.modality))
