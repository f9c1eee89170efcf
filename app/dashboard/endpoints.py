"""/dashboard: server-rendered pages over the API's own repositories, one project at a time.

GET pages are addresses people can bookmark (filters in the query string); every change is a
POST form carrying the session's CSRF token, answered with a redirect back (so a reload does
not post twice). Who may look, and how the session is kept: app/dashboard/session.py.
"""

import asyncio
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse, Response, StreamingResponse

from app.auth import is_admin_key
from app.dashboard import service
from app.dashboard import session as sessions
from app.dashboard.filters import ResponseFilter, read_filter
from app.dashboard.web import (
    STATIC,
    DashboardRoute,
    Refused,
    ViewerDep,
    back_to,
    checked_form,
    project_of,
    render,
    settings_of,
    templates,
)
from app.ops.export import Kind
from app.responses.domain import IN_FLIGHT, logs_events

router = APIRouter(prefix="/dashboard", include_in_schema=False, route_class=DashboardRoute)

# A wrong admin key costs the guesser this long (one guess at a time per connection).
FAILED_LOGIN_PAUSE = 0.5
# What a redirect after an action says, by code (never text from the address).
NOTICES = {
    "cancelled": "Cancelled {id}: its status is now {status}.",
    "requeued": "Queued {id} again.",
    "not_requeued": "{id} was not requeued: only a failed (or stuck) background job can be.",
}


def install(app: FastAPI) -> None:
    """The pages, and the files they use (CSS, htmx, the live page's script)."""
    # The files first: the pages' router ends with a catch-all for unknown addresses.
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
    app.include_router(router)


def _notice(request: Request) -> str | None:
    template = NOTICES.get(request.query_params.get("done", ""))
    if template is None:
        return None
    return template.format(
        id=request.query_params.get("id", ""), status=request.query_params.get("status", "")
    )


# Logging in and out, and choosing the project.


@router.get("/login")
async def login_page(request: Request) -> Response:
    """The login form; someone the dashboard already serves goes on to the overview."""
    if await sessions.viewer(request) is not None:
        return RedirectResponse(_next(request.query_params.get("next")), status_code=303)
    return _login_form(request, None, 200, request.query_params.get("next"))


def _login_form(request: Request, problem: str | None, status: int, target: str | None) -> Response:
    settings = settings_of(request)
    # The anonymous session carries the login form's CSRF token.
    session = sessions.read(request) or sessions.Session.new(admin=False)
    plain_http = request.url.scheme == "http" and request.url.hostname not in (
        "localhost",
        "127.0.0.1",
        "::1",
    )
    context = {
        "problem": problem,
        "csrf": session.csrf,
        "next": _next(target),
        "no_admin_key": not settings.admin_api_key,
        "plain_http": plain_http,
    }
    response = templates.TemplateResponse(request, "login.html", context, status_code=status)
    sessions.store(response, session, settings)
    return response


def _next(target: str | None) -> str:
    if target and target.startswith("/dashboard") and "//" not in target:
        return target
    return "/dashboard"


@router.post("/login")
async def login(request: Request) -> Response:
    settings = settings_of(request)
    anonymous = sessions.read(request)
    form = await checked_form(request, anonymous)
    key = form.get("key")
    if not is_admin_key(settings, key if isinstance(key, str) else None):
        await asyncio.sleep(FAILED_LOGIN_PAUSE)
        problem = (
            "The dashboard needs ADMIN_API_KEY to be set on the server."
            if not settings.admin_api_key
            else "That is not the admin key."
        )
        target = form.get("next")
        return _login_form(request, problem, 401, target if isinstance(target, str) else None)
    project = anonymous.project if anonymous else None
    response = RedirectResponse(back_to(form, "/dashboard"), status_code=303)
    # A new token on login: one an attacker planted before cannot be used after.
    sessions.store(response, sessions.Session.new(admin=True, project=project), settings)
    return response


@router.post("/logout")
async def logout(request: Request, seen: ViewerDep) -> Response:
    await checked_form(request, seen.session)
    response = RedirectResponse("/dashboard/login", status_code=303)
    sessions.forget(response)
    request.state.viewer = None  # no fresh cookie set again
    return response


@router.post("/project")
async def select_project(request: Request, seen: ViewerDep) -> Response:
    form = await checked_form(request, seen.session)
    settings = settings_of(request)
    wanted = form.get("project")
    known = await service.projects(request.app.state.engine, settings.default_project_id)
    if not isinstance(wanted, str) or wanted not in {p["id"] for p in known}:
        raise Refused(400, "No such project.")
    response = RedirectResponse(back_to(form, "/dashboard"), status_code=303)
    sessions.store(response, seen.session.with_project(wanted), settings)
    request.state.viewer = None
    return response


# The pages.


@router.get("")
async def overview(request: Request, seen: ViewerDep) -> Response:
    project = project_of(seen, settings_of(request))
    counts, recent = await service.overview(request.app.state.engine, project)
    return await render(request, "overview.html", seen, {"counts": counts, "recent": recent.rows})


@router.get("/responses")
async def responses(request: Request, seen: ViewerDep) -> Response:
    project = project_of(seen, settings_of(request))
    wanted = read_filter(request.query_params)
    after = request.query_params.get("after") or None
    page = service.Page([], None)
    if not wanted.problems:
        page = await service.responses(request.app.state.engine, project, wanted, after)
    context = {"filter": wanted, "page": page, "statuses": service.ALL_STATUSES, "after": after}
    return await render(request, "responses.html", seen, context, 400 if wanted.problems else 200)


@router.get("/responses/{response_id}")
async def response_detail(request: Request, response_id: str, seen: ViewerDep) -> Response:
    project = project_of(seen, settings_of(request))
    detail = await service.response(request.app.state.engine, project, response_id)
    if detail is None:
        raise Refused(404, f"No response '{response_id}' in this project.")
    context = {
        "d": detail,
        "cancellable": service.cancellable(detail.row),
        "notice": _notice(request),
    }
    return await render(request, "response.html", seen, context)


@router.get("/responses/{response_id}/live")
async def live(request: Request, response_id: str, seen: ViewerDep) -> Response:
    project = project_of(seen, settings_of(request))
    detail = await service.response(request.app.state.engine, project, response_id)
    if detail is None:
        raise Refused(404, f"No response '{response_id}' in this project.")
    if not detail.row["background"]:
        raise Refused(400, "Only a background response has a stream to follow after it began.")
    context = {
        "d": detail,
        "in_flight": detail.row["status"] in IN_FLIGHT,
        # Created without stream=true: nothing is logged as it runs (app/background/job.py).
        "logged": logs_events(detail.row["params"]),
    }
    return await render(request, "live.html", seen, context)


@router.post("/responses/{response_id}/cancel")
async def cancel(request: Request, response_id: str, seen: ViewerDep) -> Response:
    form = await checked_form(request, seen.session)
    project = project_of(seen, settings_of(request))
    status = await service.cancel(request.app.state.engine, project, response_id)
    target = back_to(form, f"/dashboard/responses/{response_id}")
    return _done(target, "cancelled", response_id, status)


@router.post("/responses/{response_id}/requeue")
async def requeue(request: Request, response_id: str, seen: ViewerDep) -> Response:
    form = await checked_form(request, seen.session)
    settings = settings_of(request)
    state = request.app.state
    done = await service.requeue(
        state.engine,
        settings,
        project_of(seen, settings),
        response_id,
        (state.event_log, state.enqueuer),
    )
    target = back_to(form, "/dashboard/jobs")
    return _done(target, "requeued" if done else "not_requeued", response_id)


def _done(target: str, code: str, response_id: str, status: str = "") -> Response:
    path = target.partition("#")[0]
    joiner = "&" if "?" in path else "?"
    query = f"done={code}&id={response_id}" + (f"&status={status}" if status else "")
    return RedirectResponse(f"{path}{joiner}{query}", status_code=303)


@router.get("/conversations")
async def conversations(request: Request, seen: ViewerDep) -> Response:
    project = project_of(seen, settings_of(request))
    after = request.query_params.get("after") or None
    page = await service.conversations(request.app.state.engine, project, after)
    return await render(request, "conversations.html", seen, {"page": page})


@router.get("/conversations/{conversation_id}")
async def conversation(request: Request, conversation_id: str, seen: ViewerDep) -> Response:
    project = project_of(seen, settings_of(request))
    found = await service.conversation(request.app.state.engine, project, conversation_id)
    if found is None:
        raise Refused(404, f"No conversation '{conversation_id}' in this project.")
    row, items = found
    return await render(request, "conversation.html", seen, {"c": row, "items": items})


@router.get("/chat")
async def chats(request: Request, seen: ViewerDep) -> Response:
    project = project_of(seen, settings_of(request))
    wanted = read_filter(request.query_params)
    after = request.query_params.get("after") or None
    page = service.Page([], None)
    if not wanted.problems:
        page = await service.chats(
            request.app.state.engine, project, wanted.model, wanted.metadata, after
        )
    context = {"filter": wanted, "page": page}
    return await render(request, "chats.html", seen, context, 400 if wanted.problems else 200)


@router.get("/chat/{completion_id}")
async def chat(request: Request, completion_id: str, seen: ViewerDep) -> Response:
    project = project_of(seen, settings_of(request))
    found = await service.chat(request.app.state.engine, project, completion_id)
    if found is None:
        raise Refused(404, f"No stored chat completion '{completion_id}' in this project.")
    completion, messages = found
    return await render(request, "chat.html", seen, {"c": completion, "messages": messages})


@router.get("/jobs")
async def jobs(request: Request, seen: ViewerDep) -> Response:
    settings = settings_of(request)
    state = request.app.state
    found = await service.jobs(
        state.engine, project_of(seen, settings), settings, state.redis, state.enqueuer
    )
    context = {"jobs": found, "notice": _notice(request), "queue": settings.celery_queue}
    return await render(request, "jobs.html", seen, context)


@router.get("/webhooks")
async def webhooks(request: Request, seen: ViewerDep) -> Response:
    project = project_of(seen, settings_of(request))
    endpoints = await service.webhooks(request.app.state.engine, project)
    return await render(request, "webhooks.html", seen, {"endpoints": endpoints})


@router.get("/export")
async def export(request: Request, seen: ViewerDep) -> Response:
    """The current filter as JSON Lines (`tether export`'s lines), as a download."""
    project = project_of(seen, settings_of(request))
    asked = request.query_params.get("kind", "responses")
    if asked not in ("responses", "chat"):
        raise Refused(400, "Export kind must be 'responses' or 'chat'.")
    kind: Kind = "chat" if asked == "chat" else "responses"
    wanted = read_filter(request.query_params)
    if wanted.problems:
        raise Refused(400, " ".join(wanted.problems))
    # Written to a spooled file first (memory up to 8 MB, then disk): the export pages through
    # the project at its own pace, and the download streams from the file at the client's.
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    engine = request.app.state.engine
    await service.export(engine, project, kind, wanted, spool.write)
    spool.seek(0)
    name = f"tether-{kind}-{project}.jsonl"
    return StreamingResponse(
        _chunks(spool),
        media_type="application/jsonl",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _chunks(spool: Any) -> AsyncIterator[bytes]:
    try:
        while chunk := spool.read(64 * 1024):
            yield chunk
    finally:
        spool.close()


@router.get("/{unknown:path}")
async def not_a_page(unknown: str, seen: ViewerDep) -> Response:
    """An address the dashboard does not have: its own 404 page (after the login, as every
    page), not the API's JSON."""
    raise Refused(404, f"The dashboard has no page '/dashboard/{unknown}'.")


def export_link(wanted: ResponseFilter, kind: str) -> str:
    return f"/dashboard/export?{wanted.query(kind=kind)}"


templates.env.globals["export_link"] = export_link
