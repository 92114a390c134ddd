"""API keys and request limits of the forecast service.

Keys come from the environment (``SALESFUSION_API_KEYS``: comma-separated) and/or a file (one
key per line; blank lines and ``#`` comments skipped). A request carries its key as
``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. The server holds only the keys' SHA-256
digests and compares the presented key's digest with every one of them (``hmac.compare_digest``
of two 32-byte values, and no early exit), so response timing tells neither whether a prefix
matched, nor which key did, nor how long the keys are.
"""

from __future__ import annotations

import hashlib
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


def key_digest(key: bytes) -> bytes:
    """The fixed-length (32-byte) form a key is held and compared in."""
    return hashlib.sha256(key).digest()


def key_matches(presented: bytes, digests: list[bytes]) -> bool:
    """Whether ``presented`` is one of the keys whose ``key_digest`` is in ``digests``.

    ``compare_digest`` is constant-time only between equal lengths: comparing the raw keys
    would leak a configured key's length through the time a wrong-length key takes."""
    if any(len(digest) != hashlib.sha256().digest_size for digest in digests):
        raise ValueError("key_matches takes the keys' digests (key_digest), not the keys")
    presented_digest = key_digest(presented)
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(presented_digest, digest)
    return matched
