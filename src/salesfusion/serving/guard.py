"""What every request passes before FastAPI reads it: the API key, then the whole body.

FastAPI parses a route's body before it solves the route's dependencies, so a key check made
only as a dependency came after the parse: a malformed body without a key was a 422 (an
anonymous client learnt how its body was read), and the parser's own failures (a body past
``BodyLimit`` while streaming, JSON deeper than the interpreter's recursion limit, a number
past Python's digit limit) were a bare 400 or a 500. ``GuardedRoute`` checks the key first,
then reads the body (an oversized chunked body is a 413 here), then refuses a JSON body that
cannot be read or that nests deeper than ``MAX_JSON_DEPTH``, each as ``ApiError`` naming the
field. ``read_json`` applies the same rules to JSON held in a form field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Header, Request, Response
from fastapi.params import Form
from fastapi.routing import APIRoute

from salesfusion.serving.errors import ApiError
from salesfusion.serving.security import key_digest, key_matches, presented_key

# Request bodies are shallow (the deepest schema is 4 levels); free-form ``metadata`` gets the
# rest. Validating or echoing JSON nested hundreds deep exhausts the recursion limit.
MAX_JSON_DEPTH = 32


class KeyCheck:
    """The API key dependency of the routes that need one (``dependencies=[Depends(...)]``),
    also run by ``GuardedRoute`` before the body is read."""

    def __init__(self, keys: list[bytes]) -> None:
        self.digests = [key_digest(key) for key in keys]

    def __call__(self, authorization: Annotated[str | None, Header()] = None,
                 x_api_key: Annotated[str | None, Header()] = None) -> None:
        presented = presented_key(authorization, x_api_key)
        if presented is None or not key_matches(presented, self.digests):
            raise ApiError(401, "unauthorized", "a valid API key is required (Authorization: "
                                                "Bearer KEY or X-API-Key: KEY)")


class GuardedRoute(APIRoute):
    """A route that checks its key, then reads and checks its body, before FastAPI parses it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        checks = [d.dependency for d in self.dependencies if isinstance(d.dependency, KeyCheck)]
        takes_body = self.body_field is not None
        takes_json = takes_body and not isinstance(self.body_field.field_info, Form)

        async def guarded(request: Request) -> Response:
            for check in checks:
                check(request.headers.get("authorization"), request.headers.get("x-api-key"))
            if takes_body:
                body = await request.body()  # BodyTooLarge past the limit: the app's 413
                if takes_json and body and _is_json(request.headers.get("content-type")):
                    read_json(body)
            return await handler(request)

        return guarded


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would parse the body as JSON (no type, or ``application/*json``)."""
    if not content_type:
        return True
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/")
                                          and kind.endswith("+json"))


def read_json(data: bytes | str, param: str = "body") -> Any:
    """``data`` parsed, or an ``ApiError`` (422) naming ``param`` (and the top-level field that
    nests too deeply) for JSON that cannot be read or nests deeper than ``MAX_JSON_DEPTH``."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise _too_deep(param) from None
    except json.JSONDecodeError as exc:
        raise ApiError(422, "invalid_json", f"{param}: not JSON ({exc.msg} at line {exc.lineno}, "
                                            f"column {exc.colno})", param) from None
    except ValueError as exc:  # a number past the digit limit, bytes in no Unicode encoding
        reason = (str(exc).splitlines() or [""])[0][:200]
        raise ApiError(422, "invalid_json", f"{param}: cannot be read as JSON ({reason})",
                       param) from None
    field = _too_deep_field(value)
    if field is not None:
        raise _too_deep(field if param == "body" else f"{param}.{field}")
    return value


def _too_deep(param: str) -> ApiError:
    return ApiError(422, "too_deep", f"{param}: JSON nested deeper than {MAX_JSON_DEPTH} levels",
                    param)


def _too_deep_field(value: Any) -> str | None:
    """The top-level key (or index) under which ``value`` nests deeper than ``MAX_JSON_DEPTH``,
    else None; walked without recursion."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, top = stack.pop()
        children = (node.items() if isinstance(node, dict)
                    else enumerate(node) if isinstance(node, list) else None)
        if children is None:
            continue
        if depth > MAX_JSON_DEPTH:
            return top
        for key, child in children:
            stack.append((child, depth + 1, top if depth > 1 else str(key)))
    return None
