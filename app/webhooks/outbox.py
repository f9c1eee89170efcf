"""The outbox: a background response's terminal status and the events it owes its project's
webhook endpoints are written in one transaction, so an event can be neither lost (a crash after
the status write) nor sent for a status that was rolled back. app/webhooks/delivery.py sends
them from there.

Called by the one writer of `responses.status` (app/responses/repository.py) inside its
transaction, for background responses only: OpenAI sends these events for background responses.
"""

import time
from typing import Any, cast

import orjson
from sqlalchemy import Table, bindparam, insert, select

from app.kit.driver import Db, DriverStatement
from app.kit.ids import new_id
from app.models import WebhookDeliveryRow, WebhookEndpointRow

endpoints = cast(Table, WebhookEndpointRow.__table__)
deliveries = cast(Table, WebhookDeliveryRow.__table__)

# What Tether emits: the Responses events. The SDK's other types (batch, eval, fine-tuning,
# realtime, video, agent, safety) name APIs Tether does not have; an endpoint asking for one is
# refused (app/webhooks/service.py) rather than left waiting for an event that never comes.
EVENT_TYPES = (
    "response.completed",
    "response.failed",
    "response.cancelled",
    "response.incomplete",
)
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

# On every background job's end, endpoints or none: on the driver.
SUBSCRIBED = DriverStatement(
    select(endpoints.c.id, endpoints.c.event_types).where(
        endpoints.c.project_id == bindparam("project_id"), endpoints.c.disabled_at.is_(None)
    )
)
INSERT = insert(deliveries)


def envelope(event_type: str, data_id: str, created_at: int) -> dict[str, Any]:
    """OpenAI's event object, as `client.webhooks.unwrap` parses it."""
    return {
        "id": new_id("evt"),
        "object": "event",
        "created_at": created_at,
        "type": event_type,
        "data": {"id": data_id},
    }


def new_delivery(
    endpoint_id: str, project_id: str, event: dict[str, Any], now: float
) -> dict[str, Any]:
    """An outbox row for one endpoint, due at once."""
    return {
        "id": new_id("wh"),
        "endpoint_id": endpoint_id,
        "project_id": project_id,
        "event_id": event["id"],
        "type": event["type"],
        "payload": orjson.dumps(event).decode(),
        "state": PENDING,
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
        "last_attempt_at": None,
        "last_status": None,
        "last_error": None,
        "delivered_at": None,
    }


async def record(db: Db, project_id: str, response_id: str, status: str) -> int:
    """Owe `response.<status>` to every endpoint of the project that asked for it; how many.
    Within the caller's transaction."""
    event_type = f"response.{status}"
    found = await SUBSCRIBED.fetch(db, project_id=project_id)
    wanted = [row["id"] for row in found if event_type in row["event_types"]]
    if not wanted:
        return 0
    now = time.time()
    # One event, one id, whichever endpoints it goes to (as OpenAI's `evt_` ids).
    event = envelope(event_type, response_id, int(now))
    rows = [new_delivery(endpoint_id, project_id, event, now) for endpoint_id in wanted]
    await db.execute(INSERT, rows)
    return len(rows)
