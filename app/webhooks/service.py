"""Webhook endpoints: a project's receivers, their event types and signing secrets."""

import time
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.errors import InvalidRequest, NotFound
from app.kit.http import page
from app.kit.ids import new_id, now_seconds
from app.kit.listing import PageQuery
from app.webhooks import signing
from app.webhooks.outbox import EVENT_TYPES, PENDING, envelope
from app.webhooks.repository import DeliveriesRepository, EndpointsRepository, signing_keys
from app.webhooks.schemas import CreateEndpoint, UpdateEndpoint
from app.webhooks.transport import Sender, url_problem

# The old secret's grace after a rotation that keeps it (keep_old_secret_active_for_24_hours).
KEEP_OLD_SECRET_SECONDS = 24 * 3600
# The event types the `openai` SDK knows and Tether never emits: refused, by name.
FOREIGN_FAMILIES = {
    "batch": "the Batch API",
    "eval": "Evals",
    "fine_tuning": "fine-tuning",
    "realtime": "the Realtime API",
    "video": "video generation",
    "agent": "hosted agents",
    "safety": "safety alerts",
}


def not_found(endpoint_id: str) -> NotFound:
    return NotFound(f"Webhook endpoint with id '{endpoint_id}' not found.")


def render(row: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "object": "webhook_endpoint",
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "name": row["name"],
        "url": row["url"],
        "event_types": row["event_types"],
        "signing_secret_hint": signing.hint(row["secret"]),
        # Not in OpenAI's object: whether a 410 from the receiver stopped deliveries (an update
        # starts them again).
        "disabled": row["disabled_at"] is not None,
    }
    if secret is not None:
        out["signing_secret"] = secret
    return out


def check_event_type(event_type: str, param: str) -> str:
    if event_type in EVENT_TYPES:
        return event_type
    family = FOREIGN_FAMILIES.get(event_type.split(".", 1)[0])
    emitted = ", ".join(EVENT_TYPES)
    if family is not None:
        raise InvalidRequest(
            f"Invalid '{param}': Tether has no {family}, so it never emits '{event_type}'. "
            f"It emits {emitted}.",
            param=param,
            code="unsupported_value",
        )
    raise InvalidRequest(
        f"Invalid '{param}': unknown event type '{event_type}'; expected one of {emitted}.",
        param=param,
        code="invalid_value",
    )


def check_event_types(event_types: list[str]) -> list[str]:
    if not event_types:
        raise InvalidRequest(
            "Invalid 'event_types': give at least one event type.",
            param="event_types",
            code="empty_array",
        )
    for n, event_type in enumerate(event_types):
        check_event_type(event_type, f"event_types[{n}]")
    return list(dict.fromkeys(event_types))  # each once, in the order given


def check_url(url: str, settings: Settings) -> str:
    problem = url_problem(
        url, allow_http=settings.webhook_allow_http, allow_private=settings.webhook_allow_private
    )
    if problem is not None:
        raise InvalidRequest(f"Invalid 'url': {problem}", param="url", code="invalid_url")
    return url


async def create(
    engine: AsyncEngine, settings: Settings, project_id: str, body: CreateEndpoint
) -> dict[str, Any]:
    now = now_seconds()
    row: dict[str, Any] = {
        "id": new_id("whe"),
        "project_id": project_id,
        "name": body.name,
        "url": check_url(body.url, settings),
        "event_types": check_event_types(body.event_types),
        "secret": signing.new_secret(),
        "previous_secret": None,
        "previous_secret_expires_at": None,
        "created_at": now,
        "updated_at": now,
        "disabled_at": None,
        "disabled_reason": None,
    }
    async with engine.begin() as conn:
        await EndpointsRepository(conn).create(row)
    return render(row, secret=row["secret"])


async def get_row(engine: AsyncEngine, project_id: str, endpoint_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = await EndpointsRepository(conn).get(project_id, endpoint_id)
    if row is None:
        raise not_found(endpoint_id)
    return row


async def get(engine: AsyncEngine, project_id: str, endpoint_id: str) -> dict[str, Any]:
    return render(await get_row(engine, project_id, endpoint_id))


async def list_page(engine: AsyncEngine, project_id: str, query: PageQuery) -> dict[str, Any]:
    async with engine.connect() as conn:
        rows = await EndpointsRepository(conn).list_page(project_id, query)
    return page([render(row) for row in rows], query.limit)


async def update(
    engine: AsyncEngine,
    settings: Settings,
    project_id: str,
    endpoint_id: str,
    body: UpdateEndpoint,
) -> dict[str, Any]:
    """Change what is given; an update also starts deliveries again after a 410 disabled
    them. `updated_at` moves only when something changed."""
    changes: dict[str, Any] = {}
    if body.name is not None:
        changes["name"] = body.name
    if body.url is not None:
        changes["url"] = check_url(body.url, settings)
    if body.event_types is not None:
        changes["event_types"] = check_event_types(body.event_types)
    async with engine.begin() as conn:
        repo = EndpointsRepository(conn)
        row = await repo.get(project_id, endpoint_id)
        if row is None:
            raise not_found(endpoint_id)
        changed = {k: v for k, v in changes.items() if row[k] != v}
        values: dict[str, Any] = {**changed, "disabled_at": None, "disabled_reason": None}
        if changed:
            values["updated_at"] = now_seconds()
        await repo.update(project_id, endpoint_id, values)
        row.update(values)
    return render(row)


async def delete(engine: AsyncEngine, project_id: str, endpoint_id: str) -> dict[str, Any]:
    async with engine.begin() as conn:
        if not await EndpointsRepository(conn).delete(project_id, endpoint_id):
            raise not_found(endpoint_id)
    return {"id": endpoint_id, "object": "webhook_endpoint.deleted", "deleted": True}


async def rotate_secret(
    engine: AsyncEngine, project_id: str, endpoint_id: str, keep_old: bool
) -> dict[str, Any]:
    """A new secret, shown once. Kept, the old one signs too (a second `v1,` signature) for
    24 hours, so receivers can switch over without dropping a delivery."""
    async with engine.begin() as conn:
        repo = EndpointsRepository(conn)
        row = await repo.get(project_id, endpoint_id)
        if row is None:
            raise not_found(endpoint_id)
        now = now_seconds()
        values: dict[str, Any] = {
            "secret": signing.new_secret(),
            "previous_secret": row["secret"] if keep_old else None,
            "previous_secret_expires_at": now + KEEP_OLD_SECRET_SECONDS if keep_old else None,
            "updated_at": now,
        }
        await repo.update(project_id, endpoint_id, values)
        row.update(values)
    return render(row, secret=row["secret"])


async def test(
    engine: AsyncEngine, sender: Sender, project_id: str, endpoint_id: str, event_type: str
) -> dict[str, Any]:
    """Send one sample event of `event_type` now, signed as a real one, and answer with the
    receiver's status code. Not retried, not kept."""
    check_event_type(event_type, "event_type")
    row = await get_row(engine, project_id, endpoint_id)
    event = envelope(event_type, new_id("resp"), now_seconds())
    body = orjson.dumps(event)
    keys = signing_keys(row, time.time())
    headers = signing.headers(keys, new_id("wh"), now_seconds(), body)
    sent = await sender.post(row["url"], body, headers)
    if sent.status is None:
        # The caller's receiver, not Tether, failed: a 400 that says why (a 5xx would have the
        # SDK retry, and would say the fault is ours).
        raise InvalidRequest(
            f"The test event could not be delivered to {row['url']}: {sent.error}",
            param="url",
            code="webhook_unreachable",
        )
    return {
        "object": "webhook_endpoint.test",
        "webhook_endpoint_id": endpoint_id,
        "event_type": event_type,
        "status_code": sent.status,
        "success": True,
    }


async def deliveries(engine: AsyncEngine, endpoint_id: str, limit: int) -> dict[str, Any]:
    """An endpoint's most recent deliveries, for operators (whatever its project)."""
    async with engine.connect() as conn:
        if await EndpointsRepository(conn).get_any(endpoint_id) is None:
            raise not_found(endpoint_id)
        rows = await DeliveriesRepository(conn).list_for_endpoint(endpoint_id, limit)
    return {"object": "list", "data": [render_delivery(row) for row in rows]}


def render_delivery(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "webhook_endpoint.delivery",
        "webhook_endpoint_id": row["endpoint_id"],
        "event_id": row["event_id"],
        "event_type": row["type"],
        "state": row["state"],
        "attempts": row["attempts"],
        "created_at": row["created_at"],
        "last_attempt_at": row["last_attempt_at"],
        "last_status_code": row["last_status"],
        "last_error": row["last_error"],
        "next_attempt_at": row["next_attempt_at"] if row["state"] == PENDING else None,
        "delivered_at": row["delivered_at"],
    }
