"""YAML files the user writes (dataset specs, presets, model configs): read as a mapping and
validated by a pydantic model, every problem one ``InputError`` naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from salesfusion.errors import InputError

M = TypeVar("M", bound=BaseModel)


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """The YAML mapping in ``path`` (``what`` names the kind of file in messages)."""
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} file: {exc.strerror or exc}") from None
    try:
        # Decoded explicitly: the locale's encoding would read Latin-1 bytes as something else.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise InputError(f"{path}: {what} file is not UTF-8 text (byte "
                         f"0x{exc.object[exc.start]:02x} on line {line}); save it as UTF-8"
                         ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a {what} must be a YAML mapping")
    return raw


def validated(model_type: type[M], raw: dict[str, Any], path: Path, what: str) -> M:
    """``raw`` as a ``model_type``; the first problem names the file and the field."""
    try:
        return model_type.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(f"{path}: invalid {what} at '{where}': {first['msg']}") from None
