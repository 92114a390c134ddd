"""YAML the user writes (dataset specs, presets, model and experiment configs, search spaces,
option values): read as data and validated by a pydantic model, every problem one
``InputError`` naming the file and the field.

Two things a plain ``yaml.safe_load`` lets through are refused here: a mapping that holds the
same key twice (``freq: W`` then ``freq: D`` would silently keep ``D``), named with both lines,
and nesting deeper than ``MAX_DEPTH`` (the composer recurses once per level, so 20,000 levels
end in a ``RecursionError``), named with the line where it goes too deep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from salesfusion.errors import InputError

M = TypeVar("M", bound=BaseModel)
MAX_DEPTH = 100  # far beyond any config's structure, far below Python's recursion limit
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Refused(Exception):
    """A reason the loader stops, turned into an ``InputError`` by the caller (which knows the
    file's name)."""


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys and deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise _Refused(f"nests more than {MAX_DEPTH} levels deep (from line {line})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Checked before the merge keys ('<<') are flattened in: a merged key that the mapping
        # overrides is YAML's documented way to reuse a block, not a mistake.
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _Refused(f"key '{key}' appears twice in one mapping (line {seen[key]} and "
                               f"line {line}); keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
    """The data of one YAML document; ``where`` (a file, an option) starts every message."""
    try:
        # A loader instance per call: the depth counter and caches are per document.
        loader = _StrictLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as exc:
        raise InputError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML ({exc})".replace("\n", " ")) from None
    except RecursionError:
        # The depth limit bounds the composer; this guards the constructor and whatever
        # recursion a future PyYAML adds.
        raise InputError(f"{where}: YAML nested too deeply to read") from None


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
    raw = parse_yaml(text, str(path))
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
