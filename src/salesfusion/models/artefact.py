"""The manifest that makes a saved model folder tamper-evident.

``manifest.json`` holds ``format_version``, ``model``, ``params``, ``point`` (mean or median:
what y_pred is), ``freq``, ``covariates`` and ``files`` (the SHA-256 of every file of the
folder, sub-folders such as an ensemble's ``member_<i>/`` included; hidden files such as the
CLI's output record are not part of the artefact), and two fields that cover the manifest itself:

- ``checksum``: the SHA-256 of the manifest's own content (every other field as canonical JSON:
  sorted keys, ``","``/``":"`` separators, ASCII), so an edit to ``params``, ``model``, ``freq``
  or the file list is detected at load;
- ``signature`` (only when ``SALESFUSION_SIGNING_KEY`` is set at save): HMAC-SHA256 of the same
  content under that key.

A checksum catches damage and careless edits, not a forger: whoever can write the folder can
recompute it. A deployment that must refuse artefacts it did not produce sets the environment
variable ``SALESFUSION_SIGNING_KEY`` (a secret) wherever models are saved and loaded: ``save``
then signs, and ``load`` refuses an unsigned or wrongly signed artefact. Without the variable,
signatures are not checked.

``read_manifest`` refuses, each with one ``InputError`` line naming the folder or file: a
manifest that is not UTF-8 JSON (nesting too deep and integers too long for Python to convert
included), not an object, of another format version, with missing or mistyped fields, whose
checksum or signature does not match, a listed file that is missing, changed or outside the
folder, and a file the manifest does not list.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from salesfusion.errors import InputError
from salesfusion.jsonfile import parse_json

FORMAT_VERSION = 2  # 2: the manifest carries its own checksum (and optionally a signature)
MANIFEST = "manifest.json"
SIGNING_KEY_ENV = "SALESFUSION_SIGNING_KEY"
# An HMAC-SHA256 key shorter than the hash's 32 bytes is weaker than the signature it makes
# (and a short human-chosen secret can be guessed offline from one signed manifest).
MIN_SIGNING_KEY_BYTES = 32
_SIGNATURE_PREFIX = "hmac-sha256:"
_SELF_FIELDS = ("checksum", "signature")  # not part of the content they cover

Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CovariateTableMeta(_Strict):
    keys: list[str]
    channels: list[str]
    source: str


class Covariates(_Strict):
    past_only: list[str]
    future_known: list[str]
    tables: list[CovariateTableMeta] = []


class Manifest(_Strict):
    format_version: int
    model: str  # a registered model (or preset), what ``Forecaster.load`` builds
    params: dict[str, Any]  # every parameter resolved, so ``model`` rebuilds the same
    # The name it was trained under when that is not registered: a user's preset file.
    label: str | None = None
    # What y_pred is (mean or median); manifests written before it was recorded lack it.
    point: Literal["mean", "median"] | None = None
    freq: str | None
    files: dict[str, Digest]
    covariates: Covariates
    checksum: Digest
    signature: str | None = None


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_manifest(folder: Path, content: dict[str, Any]) -> None:
    """Write ``folder``'s manifest: ``content`` (model, params, freq, covariates) with the
    format version, every file's checksum, the manifest's own checksum and, when a signing key
    is set, its signature."""
    files = {name: sha256_file(folder / name) for name in _artefact_files(folder)}
    # Through JSON and back, so that what is hashed is exactly what load will read.
    body = json.loads(json.dumps({**content, "format_version": FORMAT_VERSION, "files": files},
                                 default=str))
    manifest = {**body, "checksum": hashlib.sha256(_canonical(body)).hexdigest()}
    key = _signing_key()
    if key is not None:
        manifest["signature"] = _sign(key, body)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def read_manifest(folder: Path, required: Iterable[str] = ()) -> Manifest:
    """``folder``'s manifest, refused unless it is intact, signed where a key is set, and
    describes exactly the files in the folder (``required`` among them)."""
    path = folder / MANIFEST
    if not path.is_file():
        raise InputError(f"{folder}: not a saved salesfusion model (no {MANIFEST})")
    raw = _parse(path)
    version = raw.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise InputError(f"{path}: model format version {version!r} is not supported (this "
                         f"salesfusion reads {FORMAT_VERSION}); save the model again")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"{path}: {_describe(exc)}") from None
    body = {k: v for k, v in raw.items() if k not in _SELF_FIELDS}
    if not hmac.compare_digest(manifest.checksum, hashlib.sha256(_canonical(body)).hexdigest()):
        raise InputError(f"{path}: the manifest's checksum does not match its content (model, "
                         f"params or file list edited); the artefact was modified")
    _check_signature(path, manifest, body)
    _check_files(folder, manifest, required)
    return manifest


@contextmanager
def state_errors(folder: Path) -> Iterator[None]:
    """Turn a failure to rebuild a model from a verified folder into one ``InputError`` line:
    the files passed their checksums, so they are damaged or forged to disagree with the
    manifest's parameters (whatever library reads them then raises its own error type)."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputError(f"{folder}: the saved state does not fit the manifest "
                         f"({type(exc).__name__}: {reason}); the artefact is damaged or was "
                         f"modified") from None


def _artefact_files(folder: Path) -> list[str]:
    """The artefact's files under ``folder``: all but the manifest and hidden ones."""
    names = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and name != MANIFEST and not _hidden(name):
            names.append(name)
    return names


def _hidden(name: str) -> bool:
    return any(part.startswith(".") for part in name.split("/"))


def _parse(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 (byte {exc.start}); not a manifest written by "
                         f"salesfusion") from None
    raw = parse_json(text, str(path))
    if not isinstance(raw, dict):
        raise InputError(f"{path}: the manifest is a JSON {_json_type(raw)}, not an object")
    return raw


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "missing":
        return f"field '{key}' is missing"
    if first["type"] == "extra_forbidden":
        return f"unknown field '{key}'"
    if first["type"] == "string_pattern_mismatch":
        return f"field '{key}' is not a SHA-256 hex digest (got {first['input']!r:.80})"
    return (f"field '{key}' has the wrong type: {first['msg'].lower()} "
            f"(got a JSON {_json_type(first['input'])})")


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _signing_key() -> bytes | None:
    key = os.environ.get(SIGNING_KEY_ENV)
    if key is None:
        return None
    if not key.strip():
        raise InputError(f"{SIGNING_KEY_ENV} is set but empty; set it to a secret, or unset it "
                         f"to neither sign nor check signatures")
    raw = key.encode("utf-8", "surrogateescape")
    if len(raw) < MIN_SIGNING_KEY_BYTES:
        raise InputError(f"{SIGNING_KEY_ENV} is {len(raw)} bytes long; a signing key needs at "
                         f"least {MIN_SIGNING_KEY_BYTES} (a random secret, e.g. the output of "
                         f"'python -c \"import secrets; print(secrets.token_hex(32))\"')")
    return raw


def _sign(key: bytes, body: dict[str, Any]) -> str:
    return _SIGNATURE_PREFIX + hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


def _check_signature(path: Path, manifest: Manifest, body: dict[str, Any]) -> None:
    key = _signing_key()
    if key is None:
        return
    if manifest.signature is None:
        raise InputError(f"{path}: the artefact is not signed and {SIGNING_KEY_ENV} is set; "
                         f"refusing a model this deployment did not produce")
    if not hmac.compare_digest(manifest.signature, _sign(key, body)):
        raise InputError(f"{path}: the signature does not match {SIGNING_KEY_ENV}; refusing a "
                         f"model signed with another key or modified after signing")


def _check_files(folder: Path, manifest: Manifest, required: Iterable[str]) -> None:
    root = folder.resolve()
    for name, digest in manifest.files.items():
        path = (folder / name).resolve()
        if name == MANIFEST or _hidden(name) or not path.is_relative_to(root) or path == root:
            raise InputError(f"{folder / MANIFEST}: lists '{name}', which is not a file of the "
                             f"model folder")
        if not path.is_file():
            raise InputError(f"{folder}: file '{name}' listed in the manifest is missing; the "
                             f"artefact is incomplete or was modified")
        if sha256_file(path) != digest:
            raise InputError(f"{folder}: file '{name}' does not match its checksum in the "
                             f"manifest; the artefact was modified")
    for name in required:
        if name not in manifest.files:
            raise InputError(f"{folder / MANIFEST}: does not list '{name}', which every saved "
                             f"model has")
    unlisted = [n for n in _artefact_files(folder) if n not in manifest.files]
    if unlisted:
        raise InputError(f"{folder}: file '{unlisted[0]}' is not listed in the manifest; a "
                         f"model folder holds only the files its manifest lists")
