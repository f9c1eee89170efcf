"""Who is asking: the project of the caller's API key, or, in keyless mode, the default project.

Modes (AUTH), like Redis's protected mode:
- unset: while no key exists, Tether serves without keys, but only to loopback clients that
  address it by a loopback name (a page in a browser reaching 127.0.0.1 through DNS rebinding
  sends its own hostname as Host, and is refused). Once any key exists, every /v1 request needs
  one.
- `required`: every /v1 request needs a key, even before one exists.
- `none`: no keys at all (behind a gateway that checks them); everyone is the default project.

A key's lookup is cached for AUTH_CACHE_SECONDS (unknown keys too, so a flood of made-up keys
does not reach the database), which is also how long a revocation takes to reach every replica.
Dependencies are `async def` on purpose: FastAPI runs plain `def` ones in its thread pool, which
costs more than a whole indexed lookup on the retrieve path.
"""

import hmac
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.errors import Unauthorized
from app.keys.repository import KeysRepository
from app.keys.service import key_hash
from app.kit.ids import now_seconds
from app.limits.ratelimit import RateLimiter

log = logging.getLogger(__name__)

# How stale a key's last-used time may be: it is written at most this often per key.
TOUCH_EVERY = 60


@dataclass(frozen=True, slots=True)
class Caller:
    project_id: str
    rpm: int  # 0: no limit
    max_background: int  # 0: no limit
    key_id: str | None = None


def is_loopback_client(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_name(host_header: str | None) -> bool:
    """A Host value that names this machine by loopback: localhost, 127.x.y.z, [::1]."""
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# A request a proxy passed on comes from wherever the proxy took it from, not from this machine.
FORWARDING = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip", "via")


def _forwarded(request: Request) -> bool:
    return any(name in request.headers for name in FORWARDING)


def _local(request: Request) -> bool:
    """From this machine, by a loopback name, not passed on by a proxy."""
    return (
        is_loopback_client(request.client.host if request.client else None)
        and is_loopback_name(request.headers.get("host"))
        and not _forwarded(request)
    )


def _mask(key: str) -> str:
    return f"{key[:10]}{'*' * 8}{key[-4:]}" if len(key) > 16 else "*" * len(key)


class Authenticator:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.mode = settings.auth
        self.pepper = settings.api_key_pepper
        self.ttl = settings.auth_cache_seconds
        self.default = Caller(
            settings.default_project_id,
            settings.default_project_rpm,
            settings.default_project_max_background,
        )
        self.rpm = settings.default_project_rpm
        self.max_background = settings.default_project_max_background
        self._keys: dict[str, tuple[float, Caller | None]] = {}  # hash -> (until, caller)
        self._any_key: tuple[float, bool] = (0.0, False)

    async def keyless(self) -> bool:
        """Whether requests go without keys: AUTH=none, or no key exists yet (AUTH unset)."""
        if self.mode == "none":
            return True
        if self.mode == "required":
            return False
        until, exists = self._any_key
        if time.monotonic() >= until:
            async with self.engine.connect() as conn:
                exists = await KeysRepository(conn).any_key()
            self._any_key = (time.monotonic() + self.ttl, exists)
        return not exists

    async def local_keyless(self, request: Request) -> bool:
        """Keyless mode, and the request comes from this machine, addressed by a loopback
        name, not through a proxy: what is served without a key (the dashboard too)."""
        return await self.keyless() and _local(request)

    async def identify(self, request: Request) -> Caller:
        if await self.keyless():
            if self.mode == "none" or _local(request):
                return self.default
            raise Unauthorized(
                "Tether has no API keys yet, so it answers only clients on this machine that "
                "address it as localhost. Create a key with `tether keys create --project NAME` "
                "and send it as 'Authorization: Bearer <key>'.",
                code="invalid_api_key",
            )
        key = _bearer(request.headers.get("authorization"))
        if key is None:
            raise Unauthorized(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="invalid_api_key",
            )
        caller = await self._lookup(key)
        if caller is None:
            raise Unauthorized(f"Incorrect API key provided: {_mask(key)}.", code="invalid_api_key")
        return caller

    async def _lookup(self, key: str) -> Caller | None:
        digest = key_hash(key, self.pepper)
        cached = self._keys.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self.engine.connect() as conn:
            row = await KeysRepository(conn).by_hash(digest)
        caller = None
        if row is not None:
            caller = Caller(
                row["project_id"],
                self.rpm if row["rpm"] is None else row["rpm"],
                self.max_background if row["max_background"] is None else row["max_background"],
                row["id"],
            )
            if (row["last_used_at"] or 0) < now_seconds() - TOUCH_EVERY:
                async with self.engine.begin() as conn:
                    await KeysRepository(conn).touch(row["id"])
        if len(self._keys) > 100_000:  # made-up keys must not grow this without bound
            self._keys.clear()
        self._keys[digest] = (time.monotonic() + self.ttl, caller)
        return caller


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


async def get_caller(request: Request) -> Caller:
    """Who is asking, admitted by the project's request rate (429 past it). Once a request:
    the guarded routes ask before parsing the body (app/limits/guard.py), the endpoints after."""
    known: Caller | None = getattr(request.state, "caller", None)
    if known is not None:
        return known
    auth: Authenticator = request.app.state.auth
    caller = await auth.identify(request)
    request.state.project_id = caller.project_id  # for the request's log line
    limiter: RateLimiter = request.app.state.rate_limiter
    await limiter.admit(request, caller.project_id, caller.rpm)
    request.state.caller = caller
    return caller


async def get_project_id(caller: Annotated[Caller, Depends(get_caller)]) -> str:
    return caller.project_id


CallerDep = Annotated[Caller, Depends(get_caller)]
ProjectDep = Annotated[str, Depends(get_project_id)]


def is_admin_key(settings: Settings, key: str | None) -> bool:
    """Whether `key` is the operators' key (ADMIN_API_KEY); never, while none is set."""
    if not settings.admin_api_key or key is None:
        return False
    return hmac.compare_digest(key.encode(), settings.admin_api_key.encode())


def require_admin(request: Request) -> None:
    """The operators' routes (/metrics): `Authorization: Bearer <ADMIN_API_KEY>`, else 401."""
    settings: Settings = request.app.state.settings
    if not settings.admin_api_key:
        raise Unauthorized(
            "This route needs the admin key, and none is set: set ADMIN_API_KEY and send it as "
            "'Authorization: Bearer <key>' (or METRICS_PUBLIC=true to serve /metrics to anyone).",
            code="invalid_api_key",
        )
    if not is_admin_key(settings, _bearer(request.headers.get("authorization"))):
        raise Unauthorized(
            "This route needs the admin key: 'Authorization: Bearer <ADMIN_API_KEY>'.",
            code="invalid_api_key",
        )
