"""The dashboard's HTTP plumbing: the route class that guards every page (security headers,
HTML error pages, the session cookie), the templates, and the checks of who is looking and of
the CSRF token. The pages themselves are in endpoints.py."""

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from app.config import Settings
from app.dashboard import service, views
from app.dashboard import session as sessions
from app.errors import APIError

HERE = Path(__file__).parent
STATIC = HERE / "static"

# Nothing runs but our own files: no inline script or style, no other origin, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    # The pages show stored conversations: never kept by a shared cache or the back button's.
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(when=views.when, ago=views.ago, span=views.span, pretty=views.pretty)
templates.env.filters["bubble"] = views.item_bubble
templates.env.filters["message_bubbles"] = views.message_bubbles


class LoginNeeded(Exception):
    """Nobody the dashboard serves: to the login page."""


class Refused(Exception):
    """An HTML error page: a bad filter, a missing object, a form without its token."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_page(request: Request, status: int, message: str) -> Response:
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


class DashboardRoute(APIRoute):
    """Every dashboard answer gets the security headers; the dashboard's refusals (and the
    API's errors of the services it calls) become HTML pages, not JSON; a viewer whose session
    is new gets its cookie."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginNeeded:
                if request.method != "GET":
                    response = error_page(request, 403, "Your session has ended: log in again.")
                else:
                    target = here(request)
                    response = RedirectResponse(
                        f"/dashboard/login?next={quote(target, safe='')}", status_code=303
                    )
            except Refused as exc:
                response = error_page(request, exc.status, exc.message)
            except APIError as exc:
                response = error_page(request, exc.status_code, exc.message)
            seen: sessions.Viewer | None = getattr(request.state, "viewer", None)
            if seen is not None and seen.fresh and "set-cookie" not in response.headers:
                sessions.store(response, seen.session, request.app.state.settings)
            response.headers.update(HEADERS)
            return response

        return guarded


async def require_viewer(request: Request) -> sessions.Viewer:
    seen = await sessions.viewer(request)
    if seen is None:
        raise LoginNeeded
    request.state.viewer = seen
    return seen


ViewerDep = Annotated[sessions.Viewer, Depends(require_viewer)]


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def project_of(seen: sessions.Viewer, settings: Settings) -> str:
    return seen.session.project or settings.default_project_id


def _same_origin(request: Request) -> bool:
    """A form posted from a page of ours: its Origin (when the browser sends one, as all
    current ones do on POST) names this host."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def checked_form(request: Request, session: sessions.Session | None) -> FormData:
    """A POSTed form whose CSRF token is the session's; else a 403 page."""
    form = await request.form()
    token = form.get("csrf_token")
    if not _same_origin(request) or not sessions.csrf_matches(
        session, token if isinstance(token, str) else None
    ):
        raise Refused(
            403,
            "This form was refused: its security token is missing or out of date. Reload "
            "the page and try again.",
        )
    return form


def back_to(form: FormData, default: str) -> str:
    """Where a form returns to: a dashboard address of ours, never another site."""
    target = form.get("next")
    if isinstance(target, str) and target.startswith("/dashboard") and "//" not in target:
        return target
    return default


def here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


async def render(
    request: Request, name: str, seen: sessions.Viewer, context: dict[str, Any], status: int = 200
) -> Response:
    """A page, with what every page's header needs (the project selector's list among it)."""
    settings = settings_of(request)
    project = project_of(seen, settings)
    choices = await service.projects(request.app.state.engine, settings.default_project_id)
    base = {
        "csrf": seen.session.csrf,
        "project": project,
        "project_name": next((p["name"] for p in choices if p["id"] == project), project),
        "projects": choices,
        "admin": seen.session.admin,
        "here": here(request),
        # The section the page belongs to: the nav marks it, and switching project lands on it
        # (a detail page of one project is not found in another).
        "section": request.url.path.removeprefix("/dashboard").strip("/").split("/")[0],
    }
    return templates.TemplateResponse(request, name, base | context, status_code=status)
