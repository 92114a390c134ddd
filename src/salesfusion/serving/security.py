"""API keys and request limits of the forecast service.

Keys come from the environment (``SALESFUSION_API_KEYS``: comma-separated) and/or a file (one
key per line; blank lines and ``#`` comments skipped). A request carries its key as
``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; it is compared with every configured key
in constant time (``hmac.compare_digest``, and no early exit), so response timing tells neither
whether a prefix matched nor which key did.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from salesfusion.errors import InputError

KEYS_ENV = "SALESFUSION_API_KEYS"
MIN_KEY_LENGTH = 16


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(10 * 2**20, ge=1024, description="Largest request body.")
    max_batch: int = Field(1000, ge=1, description="Most series in one forecast request.")
    max_horizon: int = Field(104, ge=1, description="Longest horizon a request may ask for.")
    max_image_bytes: int = Field(8 * 2**20, ge=1024, description="Largest uploaded image.")


def load_keys(keys_file: Path | None = None) -> list[bytes]:
    """The configured API keys; refuses a short key (guessable) and an empty configuration."""
    keys = [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
    where = {key: KEYS_ENV for key in keys}
    if keys_file is not None:
        try:
            lines = keys_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{keys_file}: cannot read the API keys file ({exc})") from None
        for number, line in enumerate(lines, start=1):
            key = line.strip()
            if key and not key.startswith("#"):
                keys.append(key)
                where[key] = f"{keys_file} line {number}"
    if not keys:
        raise InputError(f"no API key: set {KEYS_ENV} (comma-separated keys) or give "
                         f"--api-keys FILE (one key per line)")
    for key in keys:
        if len(key) < MIN_KEY_LENGTH:
            raise InputError(f"{where[key]}: an API key must have at least {MIN_KEY_LENGTH} "
                             f"characters (got {len(key)})")
    return [key.encode() for key in dict.fromkeys(keys)]


def presented_key(authorization: str | None, api_key: str | None) -> bytes | None:
    if api_key:
        return api_key.encode()
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip().encode()
    return None


def key_matches(presented: bytes, keys: list[bytes]) -> bool:
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key)
    return matched
