"""Encoders by name, so that configs and the CLI can pick them."""

from __future__ import annotations

from typing import Any, TypeVar

from salesfusion.encoders.base import Encoder
from salesfusion.errors import InputError

ENCODERS: dict[str, type[Encoder]] = {}
EncoderType = TypeVar("EncoderType", bound=type[Encoder])


def register_encoder(cls: EncoderType) -> EncoderType:
    if cls.name in ENCODERS:
        raise ValueError(f"encoder name '{cls.name}' is registered twice")
    ENCODERS[cls.name] = cls
    return cls


def _ensure_loaded() -> None:
    # Importing the encoder modules registers them.
    from salesfusion.encoders import clip, image, static, text  # noqa: F401


def encoder_class(name: str) -> type[Encoder]:
    _ensure_loaded()
    if name not in ENCODERS:
        raise InputError(f"unknown encoder '{name}'; registered encoders are {sorted(ENCODERS)}")
    return ENCODERS[name]


def create_encoder(name: str, **params: Any) -> Encoder:
    return encoder_class(name)(**params)


def registered_encoders(modality: str | None = None) -> list[str]:
    _ensure_loaded()
    return sorted(n for n, c in ENCODERS.items() if modality in (None, c.modality))
