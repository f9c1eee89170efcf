"""What a request may carry, checked before anything is parsed, stored or sent to the model.

- The body is at most MAX_REQUEST_BYTES: a Content-Length over it is refused before a byte is
  read, and a body without one is counted as it arrives and refused as soon as it passes the
  limit (413), so an oversized body never sits in memory.
- A JSON body is parsed once, with orjson, and walked: no NUL character (PostgreSQL refuses it
  in text and JSON), no lone surrogate (orjson refuses it while parsing), no integer outside 64
  bits, no nesting deeper than MAX_DEPTH. Each is a 400 naming the field, on either database,
  before the model is called. FastAPI then uses the parsed body as it is.
- A NUL in the path or the query string is a 400 too.
"""

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import NOT_JSON, InvalidRequest, PayloadTooLarge, error_response

MAX_DEPTH = 64
INT64 = (-(2**63), 2**63 - 1)


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Request body too large: at most {limit} bytes are accepted (MAX_REQUEST_BYTES).",
        code="request_too_large",
    )


class RequestGuardMiddleware:
    """The body's size (413) and NUL characters in the path or query (400)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope["query_string"].lower():
            error = InvalidRequest(
                "The request's path or query string contains a NUL character.",
                code="invalid_value",
            )
            await _answer(error, scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await _answer(too_large(self.max_bytes), scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the route, where the error handlers answer it.
                    raise too_large(self.max_bytes)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _answer(
    error: InvalidRequest | PayloadTooLarge, scope: Scope, r: Receive, s: Send
) -> None:
    response = error_response(error.status_code, error.body(), should_retry=error.should_retry)
    await response(scope, r, s)


def check_json(value: Any, path: str = "", depth: int = 0) -> None:
    """Walk a parsed body; a 400 naming the first field that cannot be stored or sent."""
    if depth > MAX_DEPTH:
        raise InvalidRequest(
            f"Invalid '{path or 'body'}': JSON nested deeper than {MAX_DEPTH} levels.",
            param=path or None,
            code="invalid_value",
        )
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidRequest(
                f"Invalid '{path or 'body'}': strings may not contain NUL characters.",
                param=path or None,
                code="invalid_value",
            )
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise InvalidRequest(
                f"Invalid '{path or 'body'}': integer out of the 64-bit range.",
                param=path or None,
                code="invalid_value",
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                raise InvalidRequest(
                    "Invalid key: object keys may not contain NUL characters.",
                    param=path or None,
                    code="invalid_value",
                )
            check_json(item, where, depth + 1)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            check_json(item, f"{path}[{n}]", depth + 1)


class GuardedRoute(APIRoute):
    """Parses a JSON body with orjson and checks it (check_json) before FastAPI validates it;
    FastAPI then takes the parsed body from the request (Starlette caches request.json())."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            body = await request.body()
            if body and "json" in request.headers.get("content-type", "json"):
                try:
                    parsed = orjson.loads(body)
                except orjson.JSONDecodeError as exc:  # lone surrogates included
                    raise InvalidRequest(NOT_JSON) from exc
                check_json(parsed)
                request._json = parsed
            return await handler(request)

        return guarded
