"""ASGI middleware of the forecast service: a request-body size limit and structured logs.

Both are plain ASGI (not Starlette's ``BaseHTTPMiddleware``) so that the body limit counts the
bytes as they stream in, before anything buffers a large body, and so that a log line is
written for every response, those of refused requests included.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]

LOGGER_NAME = "salesfusion.serve"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, event and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        body = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                "event": record.getMessage(), **getattr(record, "fields", {})}
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(body, default=str)


def service_logger() -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    service_logger().log(level, event, extra={"fields": fields})


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class BodyTooLarge(Exception):
    """Raised by ``BodyLimit``'s receive once a streamed body passes the limit; the app answers
    it with ``too_large_body`` (``serving.guard`` reads every body before FastAPI does, whose
    parser would otherwise take it for a malformed body and answer 400)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"request body larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


def too_large_body(max_bytes: int) -> dict[str, Any]:
    return {"error": {"code": "payload_too_large", "param": "body",
                      "message": f"request body larger than {max_bytes} bytes",
                      "type": "invalid_request_error"}}


class BodyLimit:
    """Refuse (413) a request whose body is larger than ``max_bytes``: at once when its
    Content-Length says so, else as soon as the streamed bytes pass the limit."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        message = too_large_body(self.max_bytes)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_json(send, 413, message)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return incoming

        async def tracked_send(outgoing: Message) -> None:
            nonlocal started
            started = started or outgoing["type"] == "http.response.start"
            await send(outgoing)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, message)


class RequestLog:
    """A JSON log line per request: id, method, path, status, duration, client; the id is the
    caller's ``X-Request-ID`` when given, and is returned in the same header."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client = scope.get("client")
            log_event("request", request_id=request_id, method=scope.get("method"),
                      path=scope.get("path"), status=status,
                      duration_ms=round((time.perf_counter() - started) * 1000, 2),
                      client=client[0] if client else None)
