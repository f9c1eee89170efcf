"""What a request may carry, checked before anything is parsed, stored or sent to the model.

- The body is at most MAX_REQUEST_BYTES: a Content-Length over it is refused before a byte is
  read, and a body without one is counted as it arrives and refused as soon as it passes the
  limit (413), so an oversized body never sits in memory.
- A JSON body is parsed once, with orjson, and walked (parse_json, called by app/routing.py):
  no NUL character (PostgreSQL refuses it in text and JSON), no lone surrogate (orjson refuses
  it while parsing), no integer outside 64 bits, no nesting deeper than MAX_DEPTH. Each is a
  400 naming the field, on either database, before the model is called.
- A NUL in the path or the query string is a 400 too.
"""

import json
from typing import Any

import orjson
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


def _invalid(path: str, why: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid '{path or 'body'}': {why}.", param=path or None, code="invalid_value"
    )


def _check_scalar(value: Any, path: str) -> bool:
    """False if the value is an integral float past 64 bits: orjson reads an integer literal
    that large as a float, so it may have been one."""
    if isinstance(value, str):
        if "\x00" in value:
            raise _invalid(path, "strings may not contain NUL characters")
    elif isinstance(value, float):
        return not (abs(value) >= 2**63 and value.is_integer())
    elif isinstance(value, int) and not isinstance(value, bool):
        if not INT64[0] <= value <= INT64[1]:
            raise _invalid(path, "integer out of the 64-bit range")
    return True


def check_json(value: Any, path: str = "", depth: int = 0) -> bool:
    """Walk a parsed body; a 400 naming the first field that cannot be stored or sent.
    Returns False if it saw a float that may have been an integer past 64 bits."""
    if depth > MAX_DEPTH:
        raise _invalid(path, f"JSON nested deeper than {MAX_DEPTH} levels")
    exact = True
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                raise _invalid(path, "object keys may not contain NUL characters")
            exact = check_json(item, where, depth + 1) and exact
    elif isinstance(value, list):
        for n, item in enumerate(value):
            exact = check_json(item, f"{path}[{n}]", depth + 1) and exact
    else:
        exact = _check_scalar(value, path)
    return exact


def parse_json(body: bytes) -> Any:
    """A JSON body parsed and checked (check_json)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # lone surrogates included
        raise InvalidRequest(NOT_JSON) from exc
    if not check_json(parsed):
        # Rare (real bodies hardly hold such floats): the standard library's integers are
        # exact, so its reading tells an integer literal from a float one. The walk above
        # already bounded the depth, so this parse cannot recurse too deep.
        check_json(json.loads(body))
    return parsed
