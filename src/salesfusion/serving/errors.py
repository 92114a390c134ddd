"""The service's error answers: ``{"error": {"code", "message", "param", "type"}}`` for every
refusal, whichever layer refuses (a route, request validation, the body limit, Starlette's
404/405, FastAPI's body parser), so a client reads one shape and ``param`` names the field."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from salesfusion.serving.middleware import BodyTooLarge, log_event, too_large_body
from salesfusion.serving.schemas import ErrorBody

HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed",
              413: "payload_too_large", 415: "unsupported_media_type"}


class ApiError(Exception):
    """A refusal of the request, answered with ``status`` and the error body."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


def error_body(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": ErrorBody(code=code, message=message, param=param).model_dump()}


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(error_body(exc.code, exc.message, exc.param), exc.status,
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        first = problems[0] if problems else {"loc": (), "msg": "invalid request", "type": ""}
        # A JSON decode error's location is the character offset, not a field.
        param = ("body" if first.get("type") == "json_invalid" else
                 ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "path")))
        body = error_body("invalid_request", f"{param or 'request'}: {first['msg']}", param)
        body["detail"] = [{"loc": [str(part) for part in problem["loc"]],
                           "msg": str(problem["msg"]), "type": str(problem["type"])}
                          for problem in problems]
        return JSONResponse(body, 422)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(too_large_body(exc.max_bytes), 413)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        # FastAPI's 400 is a body its parser could not read (a malformed multipart form).
        param = "body" if exc.status_code in (400, 413, 415) else None
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail), param), exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log_event("unhandled error", level=40, path=request.url.path,
                  error=f"{type(exc).__name__}: {exc}")
        return JSONResponse(error_body("internal_error", "the server failed to answer; see "
                                                         "its log"), 500)
