"""x-request-id on every answer (errors included), as OpenAI sends it; and the headers a
handler or dependency left in `request.state.headers` (the rate-limit headers), which a
handler returning its own Response could not carry otherwise.

A plain ASGI middleware: BaseHTTPMiddleware would add a task and a copy per request.
"""

import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{secrets.token_hex(16)}".encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
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

        await self.app(scope, receive, send_with_id)
