"""Encoders by name, so that configs and the CLI can pick them."""

from __future__ import annotations

from typing import Any

from salesfusion.encoders.base import Encoder
from salesfusion.registry import Registry


def _load() -> None:
    from salesfusion.encoders import clip, image, static, text  # noqa: F401


ENCODERS: Registry[Encoder] = Registry("encoder", _load)
register_encoder = ENCODERS.register
encoder_class = ENCODERS.get


def create_encoder(name: str, **params: Any) -> Encoder:
    return encoder_class(name)(**params)


def registered_encoders(modality: str | None = None) -> list[str]:
    return ENCODERS.names(lambda c: modality in (None, c.modality))
