"""The route class of every /v1 router: who is asking first, then the body's guard.

A request without a valid key is a 401 whatever its body; then the JSON body is parsed once,
with orjson, and checked (app/limits/guard.py) before FastAPI validates it. FastAPI takes the
parsed body from the request (Starlette caches request.json()).
"""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from app.auth import get_caller
from app.dashboard.session import api_caller
from app.limits.guard import parse_json


class GuardedRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            await get_caller(request)
            body = await request.body()
            if body:  # every guarded route takes JSON, whatever the Content-Type's case
                request._json = parse_json(body)
            return await handler(request)

        return guarded


class SessionReadableRoute(GuardedRoute):
    """A /v1 route the dashboard's session cookie may read too (with no key): the live page
    follows a stream with EventSource, which cannot send an Authorization header. Keys work
    here as everywhere; a request that carries one is judged by it alone."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_session(request: Request) -> Response:
            caller = await api_caller(request)
            if caller is not None:
                request.state.caller = caller  # get_caller takes it as already known
                request.state.project_id = caller.project_id
            return await handler(request)

        return with_session
