"""/v1/webhook_endpoints, as the `openai` SDK's `client.webhooks.*` calls it, and the operators'
view of an endpoint's deliveries."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from app.auth import ProjectDep, require_admin
from app.config import Settings
from app.db import EngineDep
from app.kit.http import json_response
from app.kit.listing import PageQuery
from app.routing import GuardedRoute
from app.webhooks import service
from app.webhooks.outbox import EVENT_TYPES
from app.webhooks.schemas import CreateEndpoint, RotateSecret, TestEndpoint, UpdateEndpoint

router = APIRouter(prefix="/v1", tags=["webhooks"], route_class=GuardedRoute)
admin_router = APIRouter(include_in_schema=False)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


@router.post("/webhook_endpoints")
async def create_webhook_endpoint(
    body: CreateEndpoint, engine: EngineDep, settings: SettingsDep, project_id: ProjectDep
) -> Response:
    """A new endpoint for the project, with its signing secret (shown only here and when it
    is rotated). Tether emits response.completed, .failed, .cancelled and .incomplete for
    background responses."""
    return json_response(await service.create(engine, settings, project_id, body))


@router.get("/webhook_endpoints")
async def list_webhook_endpoints(
    query: Annotated[PageQuery, Query()], engine: EngineDep, project_id: ProjectDep
) -> Response:
    """The project's endpoints, newest first."""
    return json_response(await service.list_page(engine, project_id, query))


@router.get("/webhook_endpoints/{webhook_endpoint_id}")
async def retrieve_webhook_endpoint(
    webhook_endpoint_id: str, engine: EngineDep, project_id: ProjectDep
) -> Response:
    return json_response(await service.get(engine, project_id, webhook_endpoint_id))


@router.post("/webhook_endpoints/{webhook_endpoint_id}")
async def update_webhook_endpoint(
    webhook_endpoint_id: str,
    body: UpdateEndpoint,
    engine: EngineDep,
    settings: SettingsDep,
    project_id: ProjectDep,
) -> Response:
    """Change the name, URL or the full set of event types. Also re-enables an endpoint that
    a 410 Gone disabled."""
    return json_response(
        await service.update(engine, settings, project_id, webhook_endpoint_id, body)
    )


@router.delete("/webhook_endpoints/{webhook_endpoint_id}")
async def delete_webhook_endpoint(
    webhook_endpoint_id: str, engine: EngineDep, project_id: ProjectDep
) -> Response:
    """Deleted at once, with the deliveries it was still owed."""
    return json_response(await service.delete(engine, project_id, webhook_endpoint_id))


@router.post("/webhook_endpoints/{webhook_endpoint_id}/rotate_secret")
async def rotate_webhook_secret(
    webhook_endpoint_id: str, body: RotateSecret, engine: EngineDep, project_id: ProjectDep
) -> Response:
    """A new signing secret; with keep_old_secret_active_for_24_hours, deliveries carry a
    signature by each secret for the next 24 hours."""
    keep = body.keep_old_secret_active_for_24_hours
    return json_response(await service.rotate_secret(engine, project_id, webhook_endpoint_id, keep))


@router.post("/webhook_endpoints/{webhook_endpoint_id}/test")
async def test_webhook_endpoint(
    webhook_endpoint_id: str,
    body: TestEndpoint,
    request: Request,
    engine: EngineDep,
    project_id: ProjectDep,
) -> Response:
    """Send a sample event of `event_type` now, and answer with the receiver's status code."""
    sender = request.app.state.webhook_sender
    return json_response(
        await service.test(engine, sender, project_id, webhook_endpoint_id, body.event_type)
    )


@router.get("/webhook_event_types")
async def list_webhook_event_types(project_id: ProjectDep) -> Response:
    """The event types Tether emits."""
    return json_response({"object": "list", "data": list(EVENT_TYPES)})


@admin_router.get("/admin/webhook_endpoints/{webhook_endpoint_id}/deliveries")
async def list_deliveries(
    webhook_endpoint_id: str,
    request: Request,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    """An endpoint's recent deliveries, newest first (state, attempts, last error, next
    retry). Needs the admin key."""
    require_admin(request)
    return json_response(await service.deliveries(engine, webhook_endpoint_id, limit))
