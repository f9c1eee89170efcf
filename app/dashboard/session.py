"""Who is looking at the dashboard: a signed session cookie, and the CSRF token it carries.

The cookie holds `{admin, project, csrf, exp}` and an HMAC-SHA256 of it; nothing is kept on the
server, so any number of replicas accept it. It is `Secure; HttpOnly; SameSite=Strict; Path=/`:
script on a page cannot read it, another site's page cannot make the browser send it, and it
reaches /v1/responses/{id} too, whose stream the live page reads (app/responses/endpoints.py).

Its signing key is derived from ADMIN_API_KEY (HMAC of a fixed purpose string under the key),
not a setting of its own: every replica already shares the admin key, rotating that key logs
every session out at once (which is what an operator rotating it after a leak wants), and a
stolen cookie does not reveal the key. Without an admin key the dashboard opens only in keyless
mode to clients on this machine (app/auth.py); their cookie then only carries the selected
project and the CSRF token, signed under API_KEY_PEPPER, and grants nothing a request from
this machine is not served anyway.

Every form carries the session's CSRF token, and a POST whose token differs from the cookie's
is refused: the SameSite cookie already keeps other sites out; the token also covers browsers
that ignore SameSite, and the login form (whose cookie is the anonymous session's).
"""

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from app.auth import Authenticator, Caller
from app.config import Settings

COOKIE = "tether_dashboard"
# How long a login lasts; the cookie dies with it.
SESSION_SECONDS = 12 * 3600
PURPOSE = b"tether-dashboard-session-v1"


@dataclass(frozen=True, slots=True)
class Session:
    admin: bool  # logged in with the admin key (else: anonymous, or local in keyless mode)
    project: str | None  # the selected project; None: the default project
    csrf: str
    exp: int

    @classmethod
    def new(cls, *, admin: bool, project: str | None = None) -> "Session":
        return cls(admin, project, secrets.token_urlsafe(24), int(time.time()) + SESSION_SECONDS)

    def with_project(self, project: str) -> "Session":
        return replace(self, project=project)


def signing_key(settings: Settings) -> bytes:
    secret = settings.admin_api_key or settings.api_key_pepper
    return hmac.new(secret.encode(), PURPOSE, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(session: Session, settings: Settings) -> str:
    body = orjson.dumps(
        {
            "admin": session.admin,
            "project": session.project,
            "csrf": session.csrf,
            "exp": session.exp,
        }
    )
    mac = hmac.new(signing_key(settings), body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def decode(value: str, settings: Settings) -> Session | None:
    """The session a cookie value carries; None if it is forged, stale or from another key."""
    body_text, _, mac_text = value.partition(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except ValueError:
        return None
    expected = hmac.new(signing_key(settings), body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        fields: dict[str, Any] = orjson.loads(body)
        session = Session(
            bool(fields["admin"]), fields["project"], str(fields["csrf"]), int(fields["exp"])
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if session.exp < time.time() or (session.admin and not settings.admin_api_key):
        return None
    return session


def read(request: Request) -> Session | None:
    value = request.cookies.get(COOKIE)
    return decode(value, request.app.state.settings) if value else None


def store(response: Response, session: Session, settings: Settings) -> None:
    response.set_cookie(
        COOKIE,
        encode(session, settings),
        max_age=max(0, session.exp - int(time.time())),
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")


@dataclass(frozen=True, slots=True)
class Viewer:
    """Someone the dashboard serves, and the session to answer with (`fresh`: not yet in the
    browser's cookie, so the answer sets it)."""

    session: Session
    fresh: bool


async def viewer(request: Request) -> Viewer | None:
    """Who may look: a session logged in with the admin key, or anyone in keyless mode on this
    machine (the API serves them without a key too); None: nobody, log in first."""
    session = read(request)
    if session is not None and session.admin:
        return Viewer(session, fresh=False)
    auth: Authenticator = request.app.state.auth
    if await auth.local_keyless(request):
        if session is None:
            return Viewer(Session.new(admin=False), fresh=True)
        return Viewer(session, fresh=False)
    return None


def csrf_matches(session: Session | None, token: str | None) -> bool:
    if session is None or not token:
        return False
    return hmac.compare_digest(session.csrf.encode(), token.encode())


async def api_caller(request: Request) -> Caller | None:
    """The dashboard's session as the caller of the API routes that accept it (reading a
    response and its stream, for the live page: EventSource cannot send a key). Only a
    request with no Authorization header and a valid session cookie; the caller is the
    selected project, not rate-limited (it is an operator, not the project's client)."""
    if "authorization" in request.headers or COOKIE not in request.cookies:
        return None
    seen = await viewer(request)
    if seen is None or seen.fresh:
        return None
    settings: Settings = request.app.state.settings
    return Caller(seen.session.project or settings.default_project_id, rpm=0, max_background=0)
