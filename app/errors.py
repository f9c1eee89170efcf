"""One error tree, one wire shape: {"error": {"message", "type", "param", "code"}}.

Every failure a client can see goes through here, so the OpenAI SDK maps it to the same
exception class it would raise against OpenAI, and no stack trace ever leaves the process.
"""

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger(__name__)


class APIError(Exception):
    status_code = 500
    type = "server_error"
    # Whether the SDK should retry (it retries 408/409/429/5xx by default): a failure that
    # will happen again the same way says so.
    should_retry: bool | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(APIError):
    status_code = 400
    type = "invalid_request_error"
    should_retry = False


class NotFound(APIError):
    status_code = 404
    type = "invalid_request_error"
    should_retry = False


class Unauthorized(APIError):
    status_code = 401
    type = "invalid_request_error"
    should_retry = False


class PayloadTooLarge(APIError):
    status_code = 413
    type = "invalid_request_error"
    should_retry = False


class Conflict(APIError):
    """The request collides with another still in progress; retrying later can succeed."""

    status_code = 409
    type = "invalid_request_error"


class UpstreamError(APIError):
    """The model server failed us: unreachable, timed out or answered 5xx."""

    status_code = 502
    type = "server_error"


class RateLimited(APIError):
    """Ours (a project over its limits) or the upstream's: the SDK backs off and retries."""

    status_code = 429
    type = "rate_limit_error"


def error_response(
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    should_retry: bool | None = None,
) -> Response:
    out = dict(headers or {})
    if should_retry is not None:
        out["x-should-retry"] = "true" if should_retry else "false"
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=out
    )


NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)

# Pydantic puts the union member it tried into the location ('input', 'str'); a param never
# has these names.
_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none"}


def _param_from_loc(loc: tuple[Any, ...]) -> str | None:
    """('body', 'input', 0, 'content') -> 'input[0].content', as OpenAI names params."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part not in _TYPE_TAGS and "[" not in part:
            out += f".{part}" if out else part
    return out or None


def _validation_message(err: dict[str, Any], param: str | None) -> tuple[str, str | None]:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"Unknown parameter: '{param}'.", "unknown_parameter"
    if kind == "missing":
        return f"Missing required parameter: '{param}'.", "missing_required_parameter"
    if kind == "json_invalid":
        return NOT_JSON, None
    msg = str(err.get("msg", "Invalid value"))
    msg = msg.removeprefix("Value error, ")
    return f"Invalid '{param}': {msg}." if param else f"{msg}.", "invalid_value"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> Response:
        return error_response(exc.status_code, exc.body(), exc.headers, exc.should_retry)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        err = exc.errors()[0]
        param = _param_from_loc(tuple(err.get("loc", ())))
        message, code = _validation_message(err, param)
        body = InvalidRequest(message, param=param, code=code).body()
        return error_response(400, body, should_retry=False)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        message = {404: "Not found.", 405: "Method not allowed."}.get(
            exc.status_code, str(exc.detail)
        )
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
        return error_response(exc.status_code, body, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        body = APIError("The server had an error while processing your request.").body()
        return error_response(500, body)
