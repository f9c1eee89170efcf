"""What the webhook endpoint tests share: endpoints made through the SDK and deleted after the
test, OpenAI's error shape checked exactly, and the operators' view of the deliveries."""

import uuid
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import openai
from openai.types.webhooks import (
    ResponseCancelledWebhookEvent,
    ResponseCompletedWebhookEvent,
    ResponseFailedWebhookEvent,
    ResponseIncompleteWebhookEvent,
    WebhookEndpointWithSecret,
)

from tests.harness import (
    ServerThread,
    execute,
    wait_until,
)
from tests.webhooks.receiver import Received, Receiver

EMITTED = ["response.completed", "response.failed", "response.cancelled", "response.incomplete"]
EVENT_CLASSES: dict[str, type[Any]] = {
    "response.completed": ResponseCompletedWebhookEvent,
    "response.failed": ResponseFailedWebhookEvent,
    "response.cancelled": ResponseCancelledWebhookEvent,
    "response.incomplete": ResponseIncompleteWebhookEvent,
}
ERROR_KEYS = {"message", "type", "param", "code"}
ADMIN_KEY = f"admin-{uuid.uuid4().hex}"


@dataclass
class Made:
    """Makes endpoints through the SDK and deletes them when the test ends."""

    client: openai.OpenAI
    receiver: Receiver
    ids: list[str] = field(default_factory=list)

    def endpoint(
        self,
        hook: str,
        *,
        event_types: list[str] | None = None,
        name: str | None = None,
        url: str | None = None,
        client: openai.OpenAI | None = None,
    ) -> WebhookEndpointWithSecret:
        made = (client or self.client).webhooks.create(
            name=name or f"endpoint {hook}",
            url=url or self.receiver.url_for(hook),
            event_types=cast(Any, event_types or ["response.completed"]),
        )
        self.ids.append(made.id)
        return made

    def cleanup(self) -> None:
        for endpoint_id in self.ids:
            try:
                self.client.webhooks.delete(endpoint_id)
            except openai.NotFoundError:
                pass  # the test deleted it itself


def assert_error(
    exc: openai.APIStatusError,
    status: int,
    code: str | None,
    param: str | None = None,
    kind: str = "invalid_request_error",
) -> str:
    """OpenAI's error shape, exactly, as the SDK got it; the message."""
    assert exc.status_code == status, (exc.status_code, exc.response.text)
    assert exc.response.headers["content-type"].startswith("application/json")
    body = exc.response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert (error["type"], error["code"], error["param"]) == (kind, code, param), error
    assert (exc.type, exc.code, exc.param) == (kind, code, param)
    assert isinstance(error["message"], str)
    assert error["message"]
    return str(error["message"])


def backdate(database_url: str, endpoint_id: str, seconds: int = 1000) -> None:
    """Move created_at and updated_at into the past, so that a new updated_at shows (the
    timestamps are whole seconds: without this, "unchanged" and "moved" could look alike)."""
    execute(
        database_url,
        "UPDATE webhook_endpoints SET created_at = created_at - :s, updated_at = updated_at - :s "
        "WHERE id = :id",
        s=seconds,
        id=endpoint_id,
    )


def unwrap(client: openai.OpenAI, received: Received, secret: str) -> Any:
    return client.webhooks.unwrap(received.body, received.headers, secret=secret)


def names_listed(client: openai.OpenAI) -> set[str]:
    return {endpoint.name for endpoint in client.webhooks.list(limit=100)}


def deliveries(server: ServerThread, endpoint_id: str, **params: Any) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{server.url}/admin/webhook_endpoints/{endpoint_id}/deliveries",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        params=params,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "list"
    return list(body["data"])


def settled(server: ServerThread, endpoint_id: str, count: int) -> list[dict[str, Any]]:
    """The endpoint's deliveries once `count` of them are delivered (the receiver records a
    delivery before its answer is written back)."""
    found: list[dict[str, Any]] = []

    def done() -> bool:
        found[:] = deliveries(server, endpoint_id)
        delivered: int = sum(d["state"] == "delivered" for d in found)
        return delivered >= count

    wait_until(done, timeout=15, what=f"{count} deliveries to {endpoint_id}")
    return found
