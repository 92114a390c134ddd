"""What every request passes before FastAPI reads it: the API key, then the whole body.

FastAPI parses a route's body before it solves the route's dependencies, so a key check made
only as a dependency came after the parse: a malformed body without a key was a 422 (an
anonymous client learnt how its body was read), and the parser's own failures (a body past
``BodyLimit`` while streaming, JSON deeper than the interpreter's recursion limit, a number
past Python's digit limit) were a bare 400 or a 500. ``GuardedRoute`` checks the key first,
then reads the body (an oversized chunked body is a 413 here), then refuses a JSON body that
cannot be read or that nests deeper than ``MAX_JSON_DEPTH``, each as ``ApiError`` naming the
field. ``read_json`` applies the same rules to JSON held in a form field.

The key is also a FastAPI security dependency (``require_key``, over ``HTTPBearer`` and
``APIKeyHeader``), so that the OpenAPI document declares both ways of presenting it on the
routes that need it. A router declares that its routes need the key when it is built
(``guarded_router(needs_key=True)``), not when the app includes it: FastAPI (0.165) keeps the
dependencies given to ``include_router`` off the route object that builds the handler, where
``GuardedRoute`` could not see them, and the key would then be checked after the parse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.params import Form
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from salesfusion.serving.errors import ApiError
from salesfusion.serving.security import key_digest, key_matches, presented_key

# Request bodies are shallow (the deepest schema is 4 levels); free-form ``metadata`` gets the
# rest. Validating or echoing JSON nested hundreds deep exhausts the recursion limit.
MAX_JSON_DEPTH = 32

# The two ways a client presents its key, as OpenAPI security schemes. Neither refuses a
# request itself (auto_error=False): ``KeyCheck`` answers a missing and a wrong key alike.
BEARER = HTTPBearer(scheme_name="bearerKey", auto_error=False,
                    description="The API key as `Authorization: Bearer KEY`.")
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", scheme_name="apiKeyHeader", auto_error=False,
                              description="The API key as `X-API-Key: KEY`.")


class KeyCheck:
    """An app's API keys, held as their digests (``create_app`` puts one on
    ``app.state.key_check``)."""

    def __init__(self, keys: list[bytes]) -> None:
        self.digests = [key_digest(key) for key in keys]

    def check(self, authorization: str | None, x_api_key: str | None) -> None:
        """Refuse (401) a request whose ``Authorization`` / ``X-API-Key`` headers hold no
        valid key."""
        presented = presented_key(authorization, x_api_key)
        if presented is None or not key_matches(presented, self.digests):
            raise ApiError(401, "unauthorized", "a valid API key is required (Authorization: "
                                                "Bearer KEY or X-API-Key: KEY)")


def app_key_check(request: Request) -> KeyCheck:
    """The keys of the app answering ``request``."""
    return request.app.state.key_check


async def require_key(request: Request,
                      bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
                      api_key: Annotated[str | None, Security(API_KEY_HEADER)]) -> None:
    """The security dependency of the routes that need a key. ``GuardedRoute`` has already
    checked the raw headers before the body; this run is what the OpenAPI document is built
    from, and it keeps the key checked on a route that is not a ``GuardedRoute``."""
    authorization = f"{bearer.scheme} {bearer.credentials}" if bearer is not None else None
    app_key_check(request).check(authorization, api_key)


class GuardedRoute(APIRoute):
    """A route that checks its key, then reads and checks its body, before FastAPI parses it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        needs_key = any(d.dependency is require_key for d in self.dependencies)
        takes_body = self.body_field is not None
        takes_json = takes_body and not isinstance(self.body_field.field_info, Form)

        async def guarded(request: Request) -> Response:
            if needs_key:
                app_key_check(request).check(request.headers.get("authorization"),
                                             request.headers.get("x-api-key"))
            if takes_body:
                body = await request.body()  # BodyTooLarge past the limit: the app's 413
                if takes_json and body and _is_json(request.headers.get("content-type")):
                    read_json(body)
            return await handler(request)

        return guarded


def guarded_router(*, needs_key: bool) -> APIRouter:
    """A router of ``GuardedRoute``s; with ``needs_key``, each of its routes requires the key."""
    return APIRouter(route_class=GuardedRoute,
                     dependencies=[Depends(require_key)] if needs_key else [])


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
