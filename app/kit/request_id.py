"""x-request-id on every answer (errors included), as OpenAI sends it; the headers a handler
or dependency left in `request.state.headers` (the rate-limit headers), which a handler
returning its own Response could not carry otherwise; and one log line per request: its id,
project, route, status and duration (and a create's client_metadata), which is also what the
request latency metric observes (app/ops/metrics.py: the route template, never the raw path).

A plain ASGI middleware: BaseHTTPMiddleware would add a task and a copy per request.
"""

import logging
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.ops.metrics import observe_request

log = logging.getLogger("tether.request")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{secrets.token_hex(16)}".encode()
        started = time.perf_counter()
        status = 500  # what the client gets if the app dies before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id)]
                extra: dict[str, str] = scope.get("state", {}).get("headers") or {}
                if extra:
                    present = {name.lower() for name, _ in headers}
                    headers += [
                        (name.encode(), value.encode())
                        for name, value in extra.items()
                        if name.encode() not in present
                    ]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _log_request(scope, request_id.decode(), status, time.perf_counter() - started)


def _log_request(scope: Scope, request_id: str, status: int, seconds: float) -> None:
    template = getattr(scope.get("route"), "path", None) or "unmatched"
    observe_request(scope["method"], template, status, seconds)
    if not log.isEnabledFor(logging.INFO):
        return
    state = scope.get("state", {})
    log.info(
        "%s %s %d",
        scope["method"],
        template,
        status,
        extra={
            "request_id": request_id,
            "project": state.get("project_id"),
            "route": template,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            # A create's client_metadata: with store=false, the only place it is kept.
            "client_metadata": state.get("client_metadata"),
        },
    )
