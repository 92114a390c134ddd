"""JSON the program reads back (model manifests, search logs, experiment records): whatever
way a damaged or planted file fails to be JSON, the reader gets one ``InputError`` naming it.

``json.loads`` raises three unrelated kinds of error: ``JSONDecodeError`` for bad syntax, a
plain ``ValueError`` for an integer longer than Python's int-to-string limit (4,300 digits),
and ``RecursionError`` for deep nesting; callers that caught only the first printed a
traceback for the other two.
"""

from __future__ import annotations

import json
from typing import Any

from salesfusion.errors import InputError


def parse_json(text: str | bytes, where: str) -> Any:
    """The value of ``text``; ``where`` (a file, a file and line) starts every message."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: not UTF-8 (byte {exc.start})") from None
    except ValueError as exc:
        # The rest of the message suggests sys.set_int_max_str_digits(): not the user's fix.
        reason = str(exc).split(";")[0]
        raise InputError(f"{where}: cannot be read as JSON ({reason})") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply to read") from None
