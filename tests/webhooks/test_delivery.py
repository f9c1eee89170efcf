"""Webhook events of background responses, end to end: a real job ends, its event goes through
the outbox and the dispatcher to a real receiver on loopback, and the `openai` SDK's own
`client.webhooks.unwrap` verifies and parses what arrived.

Every endpoint on the shared webhook database belongs to the default project, so each test
deletes its endpoints when it ends: a later test's responses owe them nothing. Tests that need
to be the only dispatcher on a database (a restart, a setting that decides an outcome) run
servers on a database of their own.
"""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import openai
import pytest
from openai.types.responses import Response
from openai.types.webhooks import (
    ResponseCancelledWebhookEvent,
    ResponseCompletedWebhookEvent,
    ResponseFailedWebhookEvent,
    ResponseIncompleteWebhookEvent,
    WebhookEndpointWithSecret,
)

from tests.conftest import sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import migrated_database, poll_status, query, wait_until
from tests.ops.harness import scrape, value
from tests.webhooks.conftest import StartServer
from tests.webhooks.receiver import Received, Receiver

EventType = Literal[
    "response.completed", "response.failed", "response.cancelled", "response.incomplete"
]
ALL_TYPES: list[EventType] = [
    "response.completed",
    "response.failed",
    "response.cancelled",
    "response.incomplete",
]
DELIVERED = "tether_webhook_delivery_attempts_total"


@dataclass(frozen=True, slots=True)
class Delivery:
    """A row of the outbox, as the dispatcher left it."""

    id: str
    event_id: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    payload: str


def deliveries(database_url: str, endpoint_id: str) -> list[Delivery]:
    rows = query(
        database_url,
        "SELECT id, event_id, state, attempts, last_status, last_error, payload "
        "FROM webhook_deliveries WHERE endpoint_id = :endpoint_id ORDER BY created_at, id",
        endpoint_id=endpoint_id,
    )
    return [Delivery(*row) for row in rows]  # type: ignore[arg-type]


def settled(database_url: str, endpoint_id: str, count: int, state: str) -> bool:
    found = deliveries(database_url, endpoint_id)
    return len(found) == count and all(d.state == state for d in found)


def finish(client: openai.OpenAI, model: str, text: str = "hi") -> Response:
    """A background response, run to its end."""
    created = client.responses.create(model=model, input=text, background=True)
    return poll_status(client, created.id)


ResponseEvent = (
    ResponseCompletedWebhookEvent
    | ResponseFailedWebhookEvent
    | ResponseCancelledWebhookEvent
    | ResponseIncompleteWebhookEvent
)


def unwrap(client: openai.OpenAI, got: Received, secret: str) -> ResponseEvent:
    """Verified and parsed by the SDK, into one of its response event types."""
    event = client.webhooks.unwrap(got.body, got.headers, secret=secret)
    assert isinstance(event, ResponseEvent), event
    return event


def disabled(client: openai.OpenAI, endpoint_id: str) -> object:
    """Tether's own field on the endpoint object (set by a 410 Gone)."""
    return (client.webhooks.retrieve(endpoint_id).model_extra or {}).get("disabled")


class Endpoints:
    """Creates endpoints on the receiver, and deletes them all when the test ends."""

    def __init__(self, client: openai.OpenAI, receiver: Receiver) -> None:
        self.client = client
        self.receiver = receiver
        self.created: list[str] = []

    def create(self, path: str, *event_types: EventType) -> WebhookEndpointWithSecret:
        endpoint = self.client.webhooks.create(
            name=path, url=self.receiver.url_for(path), event_types=list(event_types)
        )
        self.created.append(endpoint.id)
        return endpoint

    def delete_all(self) -> None:
        for endpoint_id in self.created:
            self.client.webhooks.delete(endpoint_id)


@pytest.fixture
def endpoints(client: openai.OpenAI, receiver: Receiver) -> Iterator[Endpoints]:
    made = Endpoints(client, receiver)
    yield made
    made.delete_all()


@pytest.fixture
def own_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database no other dispatcher looks at: the test decides which process sends."""
    with migrated_database(backend, str(tmp_path)) as url:
        yield url


class TestEventTypes:
    def _only_event(
        self, client: openai.OpenAI, receiver: Receiver, hook: str, secret: str
    ) -> ResponseEvent:
        [got] = receiver.wait_for(hook, 1)
        return unwrap(client, got, secret)

    def test_completed(
        self, client: openai.OpenAI, endpoints: Endpoints, receiver: Receiver, hook: str, model: str
    ) -> None:
        endpoint = endpoints.create(hook, *ALL_TYPES)
        done = finish(client, model)
        assert done.status == "completed"

        event = self._only_event(client, receiver, hook, endpoint.signing_secret)
        assert isinstance(event, ResponseCompletedWebhookEvent)
        assert (event.type, event.data.id) == ("response.completed", done.id)

    def test_failed(
        self,
        client: openai.OpenAI,
        endpoints: Endpoints,
        receiver: Receiver,
        hook: str,
        model: str,
        fake_upstream: FakeUpstream,
    ) -> None:
        endpoint = endpoints.create(hook, *ALL_TYPES)
        fake_upstream.script(model, status=400, error_message="bad prompt")  # not transient
        done = finish(client, model)
        assert done.status == "failed"

        event = self._only_event(client, receiver, hook, endpoint.signing_secret)
        assert isinstance(event, ResponseFailedWebhookEvent)
        assert (event.type, event.data.id) == ("response.failed", done.id)

    def test_cancelled(
        self,
        client: openai.OpenAI,
        endpoints: Endpoints,
        receiver: Receiver,
        hook: str,
        model: str,
        fake_upstream: FakeUpstream,
        webhook_database_url: str,
    ) -> None:
        endpoint = endpoints.create(hook, *ALL_TYPES)
        fake_upstream.script(model, delay=30.0)
        created = client.responses.create(model=model, input="long", background=True)
        poll_status(client, created.id, until=("in_progress",))
        assert client.responses.cancel(created.id).status == "cancelled"

        event = self._only_event(client, receiver, hook, endpoint.signing_secret)
        assert isinstance(event, ResponseCancelledWebhookEvent)
        assert (event.type, event.data.id) == ("response.cancelled", created.id)
        # The stopped job writes no end of its own, so no second event.
        wait_until(lambda: fake_upstream.abandoned(model) == 1, what="the model call stopped")
        [row] = deliveries(webhook_database_url, endpoint.id)
        assert row.event_id == event.id

    def test_incomplete(
        self,
        client: openai.OpenAI,
        endpoints: Endpoints,
        receiver: Receiver,
        hook: str,
        model: str,
        fake_upstream: FakeUpstream,
    ) -> None:
        endpoint = endpoints.create(hook, *ALL_TYPES)
        fake_upstream.script(model, reply="cut off", finish_reason="length")
        done = finish(client, model)
        assert done.status == "incomplete"

        event = self._only_event(client, receiver, hook, endpoint.signing_secret)
        assert isinstance(event, ResponseIncompleteWebhookEvent)
        assert (event.type, event.data.id) == ("response.incomplete", done.id)


class TestWhoGetsWhat:
    def test_only_subscribed_types_are_sent(
        self,
        client: openai.OpenAI,
        endpoints: Endpoints,
        receiver: Receiver,
        hook: str,
        model: str,
        webhook_database_url: str,
    ) -> None:
        failed_only = endpoints.create(f"{hook}-failed", "response.failed")
        endpoints.create(hook, "response.completed")
        finish(client, model)

        receiver.wait_for(hook, 1)
        # Written in the transaction that ended the job, or never: the outbox has none for it.
        assert deliveries(webhook_database_url, failed_only.id) == []
        assert receiver.received(f"{hook}-failed") == []

    def test_a_synchronous_response_sends_nothing(
        self,
        client: openai.OpenAI,
        endpoints: Endpoints,
        receiver: Receiver,
        hook: str,
        model: str,
        webhook_database_url: str,
    ) -> None:
        endpoint = endpoints.create(hook, *ALL_TYPES)
        sync = client.responses.create(model=model, input="now")
        assert sync.status == "completed"
        background = finish(client, model)

        [got] = receiver.wait_for(hook, 1)
        assert unwrap(client, got, endpoint.signing_secret).data.id == background.id
        [only] = deliveries(webhook_database_url, endpoint.id)
        assert json.loads(only.payload)["data"] == {"id": background.id}

    def test_two_endpoints_get_one_event_in_two_deliveries(
        self, client: openai.OpenAI, endpoints: Endpoints, receiver: Receiver, hook: str, model: str
    ) -> None:
        first = endpoints.create(f"{hook}-a", "response.completed")
        second = endpoints.create(f"{hook}-b", "response.completed")
        done = finish(client, model)

        [got_a] = receiver.wait_for(f"{hook}-a", 1)
        [got_b] = receiver.wait_for(f"{hook}-b", 1)
        event_a = unwrap(client, got_a, first.signing_secret)
        event_b = unwrap(client, got_b, second.signing_secret)
        assert event_a.id == event_b.id
        assert event_a.id.startswith("evt_")
        assert event_a.data.id == done.id
        assert got_a.headers["webhook-id"] != got_b.headers["webhook-id"]
        # Each is signed with its own endpoint's secret only.
        with pytest.raises(openai.InvalidWebhookSignatureError):
            unwrap(client, got_a, second.signing_secret)


class TestEnvelope:
    def test_body_and_headers(
        self,
        client: openai.OpenAI,
        endpoints: Endpoints,
        receiver: Receiver,
        hook: str,
        model: str,
        webhook_database_url: str,
    ) -> None:
        endpoints_made = endpoints.create(hook, "response.completed")
        done = finish(client, model)

        [got] = receiver.wait_for(hook, 1)
        body = json.loads(got.body)
        assert set(body) == {"id", "object", "created_at", "type", "data"}
        assert body["id"].startswith("evt_")
        assert body["object"] == "event"
        assert isinstance(body["created_at"], int)
        assert int(done.created_at) <= body["created_at"] <= time.time()
        assert body["type"] == "response.completed"
        assert body["data"] == {"id": done.id}

        [row] = deliveries(webhook_database_url, endpoints_made.id)
        assert got.headers["webhook-id"] == row.id
        assert row.id.startswith("wh_")
        assert row.event_id == body["id"]
        assert got.headers["webhook-timestamp"].isdigit()
        assert int(got.headers["webhook-timestamp"]) >= body["created_at"]
        [signature] = got.headers["webhook-signature"].split(" ")
        assert signature.startswith("v1,")
        assert got.headers["content-type"] == "application/json"

    def test_tampering_is_caught_by_unwrap(
        self, client: openai.OpenAI, endpoints: Endpoints, receiver: Receiver, hook: str, model: str
    ) -> None:
        endpoint = endpoints.create(hook, "response.completed")
        finish(client, model)
        [got] = receiver.wait_for(hook, 1)
        secret = endpoint.signing_secret
        unwrap(client, got, secret)  # as sent: fine

        body = got.body.replace(b'"response.completed"', b'"response.cancelled"')
        assert body != got.body
        with pytest.raises(openai.InvalidWebhookSignatureError):
            client.webhooks.unwrap(body, got.headers, secret=secret)
        # Within the SDK's five minutes of tolerance: only the signature can tell.
        earlier = str(int(got.headers["webhook-timestamp"]) - 1)
        with pytest.raises(openai.InvalidWebhookSignatureError):
            client.webhooks.unwrap(
                got.body, {**got.headers, "webhook-timestamp": earlier}, secret=secret
            )
        with pytest.raises(openai.InvalidWebhookSignatureError):
            client.webhooks.unwrap(
                got.body, {**got.headers, "webhook-id": "wh_other"}, secret=secret
            )


class TestRetries:
    def test_server_errors_are_retried_with_the_same_id_and_body(
        self,
        client: openai.OpenAI,
        endpoints: Endpoints,
        receiver: Receiver,
        hook: str,
        model: str,
        webhook_database_url: str,
    ) -> None:
        receiver.script(hook, 500, 500)  # then 200
        endpoint = endpoints.create(hook, "response.completed")
        done = finish(client, model)

        wait_until(
            lambda: settled(webhook_database_url, endpoint.id, 1, "delivered"),
            timeout=20,
            what="the delivery to be delivered",
        )
        [row] = deliveries(webhook_database_url, endpoint.id)
        assert (row.attempts, row.last_status, row.last_error) == (3, 200, None)
        got = receiver.received(hook)
        assert len(got) == 3
        assert {g.headers["webhook-id"] for g in got} == {row.id}
        assert {g.body for g in got} == {row.payload.encode()}
        for attempt in got:  # each attempt is signed when it is made
            assert unwrap(client, attempt, endpoint.signing_secret).data.id == done.id

    def test_a_receiver_too_slow_to_answer_gets_it_again(
        self,
        client: openai.OpenAI,
        endpoints: Endpoints,
        receiver: Receiver,
        hook: str,
        model: str,
        webhook_database_url: str,
    ) -> None:
        receiver.script(hook, 3.0)  # longer than webhook_timeout (1 s); then 200
        endpoint = endpoints.create(hook, "response.completed")
        finish(client, model)

        wait_until(
            lambda: settled(webhook_database_url, endpoint.id, 1, "delivered"),
            timeout=20,
            what="the delivery to be delivered",
        )
        [row] = deliveries(webhook_database_url, endpoint.id)
        assert (row.attempts, row.last_status) == (2, 200)
        got = receiver.received(hook)
        assert [g.headers["webhook-id"] for g in got] == [row.id, row.id]

    def test_a_receiver_down_for_a_while_gets_every_event(
        self,
        client: openai.OpenAI,
        endpoints: Endpoints,
        receiver: Receiver,
        hook: str,
        model: str,
        webhook_database_url: str,
    ) -> None:
        receiver.set_down(hook, True)
        endpoint = endpoints.create(hook, "response.completed")
        created = [
            client.responses.create(model=model, input=f"n{n}", background=True) for n in range(5)
        ]
        ids = {poll_status(client, c.id).id for c in created}

        def refused_once() -> bool:
            found = deliveries(webhook_database_url, endpoint.id)
            return len(found) == 5 and all(d.last_status == 503 for d in found)

        wait_until(refused_once, timeout=20, what="each delivery to fail once")
        receiver.set_down(hook, False)

        wait_until(
            lambda: settled(webhook_database_url, endpoint.id, 5, "delivered"),
            timeout=30,
            what="every delivery to be delivered",
        )
        events = [unwrap(client, g, endpoint.signing_secret) for g in receiver.received(hook)]
        assert len({e.id for e in events}) == 5
        assert {e.data.id for e in events} == ids


class TestRestart:
    def test_a_pending_delivery_survives_its_process(
        self,
        start_webhook_server: StartServer,
        own_database: str,
        receiver: Receiver,
        hook: str,
        model: str,
    ) -> None:
        """The process that ended the job, and tried the delivery, stops while the receiver
        is down; for a while no process runs at all. The next one to start on the database
        sends the delivery, with the same id. What this proves: an owed event lives in the
        database, not in a process. (A SIGKILL mid-attempt, the lease's case, is not tried.)"""
        receiver.set_down(hook, True)
        with start_webhook_server(database_url=own_database) as first, sdk(first.url) as client:
            endpoint = client.webhooks.create(
                name=hook, url=receiver.url_for(hook), event_types=["response.completed"]
            )
            done = finish(client, model)
            wait_until(
                lambda: any(d.last_status == 503 for d in deliveries(own_database, endpoint.id)),
                timeout=20,
                what="a first, refused attempt",
            )
        [row] = deliveries(own_database, endpoint.id)
        assert row.state == "pending"
        tried = len(receiver.received(hook))
        receiver.set_down(hook, False)

        with start_webhook_server(database_url=own_database) as second, sdk(second.url) as client:
            wait_until(
                lambda: settled(own_database, endpoint.id, 1, "delivered"),
                timeout=20,
                what="the delivery to be delivered by the second process",
            )
            got = receiver.received(hook)
            assert len(got) == tried + 1
            assert {g.headers["webhook-id"] for g in got} == {row.id}
            assert unwrap(client, got[-1], endpoint.signing_secret).data.id == done.id


class TestGone:
    def test_410_disables_until_an_update(
        self,
        client: openai.OpenAI,
        endpoints: Endpoints,
        receiver: Receiver,
        hook: str,
        model: str,
        webhook_database_url: str,
    ) -> None:
        receiver.script(hook, 410)
        endpoint = endpoints.create(hook, "response.completed")
        assert disabled(client, endpoint.id) is False
        finish(client, model)

        wait_until(lambda: disabled(client, endpoint.id) is True, what="the endpoint disabled")
        [gone] = deliveries(webhook_database_url, endpoint.id)
        assert (gone.state, gone.attempts, gone.last_status) == ("failed", 1, 410)
        # Disabled, it is owed nothing: the job's end wrote no delivery for it.
        finish(client, model)
        assert deliveries(webhook_database_url, endpoint.id) == [gone]

        updated = client.webhooks.update(endpoint.id, name="back again")
        assert (updated.model_extra or {}).get("disabled") is False
        again = finish(client, model)
        _, second = receiver.wait_for(hook, 2)
        assert unwrap(client, second, endpoint.signing_secret).data.id == again.id
        wait_until(
            lambda: (
                [d.state for d in deliveries(webhook_database_url, endpoint.id)]
                == ["failed", "delivered"]
            ),
            what="the new delivery to be delivered",
        )
        assert len(receiver.received(hook)) == 2


class TestOwnSettings:
    """Settings that decide an outcome: the server that has them is the only dispatcher on its
    database, else the shared server's dispatcher (other settings) could take the delivery."""

    def test_the_retry_window_closes(
        self,
        start_webhook_server: StartServer,
        own_database: str,
        receiver: Receiver,
        hook: str,
        model: str,
    ) -> None:
        receiver.set_down(hook, True)
        hours = 0.001  # 3.6 s: a few retries 0.2 s, 0.4 s, ... apart, then no more
        with (
            start_webhook_server(database_url=own_database, webhook_retry_hours=hours) as srv,
            sdk(srv.url) as client,
        ):
            endpoint = client.webhooks.create(
                name=hook, url=receiver.url_for(hook), event_types=["response.completed"]
            )
            finish(client, model)
            wait_until(
                lambda: settled(own_database, endpoint.id, 1, "failed"),
                timeout=30,
                what="the delivery to fail for good",
            )
        [row] = deliveries(own_database, endpoint.id)
        assert (row.last_status, row.last_error) == (503, "HTTP 503: down")
        assert row.attempts >= 2  # retried while the window was open
        got = receiver.received(hook)
        assert len(got) == row.attempts
        assert {g.headers["webhook-id"] for g in got} == {row.id}

    def test_a_private_address_is_refused_when_sending_too(
        self,
        start_webhook_server: StartServer,
        own_database: str,
        receiver: Receiver,
        hook: str,
        model: str,
    ) -> None:
        """An endpoint accepted while private addresses were allowed, sent from a process
        that does not allow them: the dispatcher's sender refuses it (the address checks
        themselves are in test_transport.py)."""
        with start_webhook_server(database_url=own_database) as srv, sdk(srv.url) as client:
            endpoint = client.webhooks.create(
                name=hook, url=receiver.url_for(hook), event_types=["response.completed"]
            )
        with (
            start_webhook_server(database_url=own_database, webhook_allow_private=False) as srv,
            sdk(srv.url) as client,
        ):
            finish(client, model)
            wait_until(
                lambda: any(d.last_error for d in deliveries(own_database, endpoint.id)),
                timeout=20,
                what="a refused attempt",
            )
        [row] = deliveries(own_database, endpoint.id)
        assert row.state == "pending"  # refused is a failed attempt, retried later
        assert row.last_status is None
        assert row.last_error == (
            "refused: 127.0.0.1 is a loopback address (WEBHOOK_ALLOW_PRIVATE=true allows it)"
        )
        assert receiver.received(hook) == []


class TestMetrics:
    def test_attempts_are_counted_by_outcome(
        self,
        start_webhook_server: StartServer,
        client: openai.OpenAI,
        endpoints: Endpoints,
        receiver: Receiver,
        hook: str,
        model: str,
    ) -> None:
        receiver.script(hook, 500)  # then 200
        with start_webhook_server(metrics_public=True) as srv:
            before = scrape(srv.url, key=None)
            endpoints.create(hook, "response.completed")
            finish(client, model)
            receiver.wait_for(hook, 2)

            def moved(name: str, **labels: str) -> float:
                return value(scrape(srv.url, key=None), name, **labels) - value(
                    before, name, **labels
                )

            wait_until(
                lambda: moved(DELIVERED, outcome="delivered") >= 1,
                what="a delivered attempt counted",
            )
            assert moved(DELIVERED, outcome="retry") >= 1
            assert moved("tether_webhook_delivery_latency_seconds_count") >= 1
