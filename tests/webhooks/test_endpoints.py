"""Webhook endpoints as the `openai` SDK's `client.webhooks.*` calls them: create, retrieve,
list, update, delete, rotate_secret, test and event_types; refused input in OpenAI's shape; one
project's endpoints out of another's reach; and the operators' view of the deliveries (the
admin route and `tether webhooks deliveries`). Both backends.

The endpoints made here live in the webhook database's default project, which other tests'
background responses also send to: each test deletes what it made (the `made` fixture).
"""

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import orjson
import pytest
from openai.types.webhooks import (
    ResponseCancelledWebhookEvent,
    ResponseCompletedWebhookEvent,
    ResponseFailedWebhookEvent,
    ResponseIncompleteWebhookEvent,
    WebhookEndpointWithSecret,
)

from app.config import Settings
from tests.auth.harness import Cli, make_key, project_name
from tests.conftest import sdk
from tests.harness import (
    ServerThread,
    execute,
    free_port,
    migrated_database,
    poll_status,
    running_server,
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
# `tether webhooks deliveries` prints these columns (app/ops/cli.py).
CLI_COLUMNS = ["ID", "EVENT", "STATE", "ATTEMPTS", "CREATED", "LAST STATUS", "NEXT ATTEMPT"]
CLI_COLUMNS += ["LAST ERROR"]


# -- helpers ----------------------------------------------------------------------------------


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


@pytest.fixture
def made(client: openai.OpenAI, receiver: Receiver) -> Iterator[Made]:
    helper = Made(client, receiver)
    yield helper
    helper.cleanup()


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


# -- create, retrieve, list -------------------------------------------------------------------


class TestCreate:
    def test_returns_the_secret_with_a_hint_and_deduplicated_event_types(
        self, client: openai.OpenAI, made: Made, receiver: Receiver, hook: str
    ) -> None:
        before = int(time.time())
        created = made.endpoint(
            hook,
            name="Orders",
            event_types=["response.failed", "response.completed", "response.failed"],
        )
        after = int(time.time())

        assert isinstance(created, WebhookEndpointWithSecret)
        assert created.object == "webhook_endpoint"
        assert created.id.startswith("whe_")
        assert (created.name, created.url) == ("Orders", receiver.url_for(hook))
        assert created.event_types == ["response.failed", "response.completed"]
        secret = created.signing_secret
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 32
        hint = created.signing_secret_hint
        assert hint
        assert secret not in hint
        assert secret.removeprefix("whsec_") not in hint
        # Seconds, as OpenAI's timestamps (not milliseconds), and one moment for both.
        assert before - 1 <= created.created_at <= after + 1
        assert created.updated_at == created.created_at

    def test_each_create_has_its_own_secret(self, made: Made, hook: str) -> None:
        first, second = made.endpoint(hook), made.endpoint(hook)
        assert first.id != second.id
        assert first.signing_secret != second.signing_secret

    def test_retrieve_and_list_never_show_the_secret(
        self, client: openai.OpenAI, made: Made, hook: str
    ) -> None:
        created = made.endpoint(hook, event_types=["response.cancelled"])
        secret = created.signing_secret

        raw = client.webhooks.with_raw_response.retrieve(created.id)
        assert secret not in raw.text
        assert "signing_secret" not in raw.http_response.json()
        retrieved = raw.parse()
        assert "signing_secret" not in retrieved.model_dump()
        assert retrieved.model_dump(exclude={"disabled"}) == created.model_dump(
            exclude={"signing_secret", "disabled"}
        )

        listed = client.webhooks.with_raw_response.list(limit=100)
        assert secret not in listed.text
        [mine] = [e for e in listed.http_response.json()["data"] if e["id"] == created.id]
        assert "signing_secret" not in mine
        assert mine["signing_secret_hint"] == created.signing_secret_hint

    def test_retrieve_unknown_is_404(self, client: openai.OpenAI) -> None:
        missing = "whe_" + "0" * 48
        with pytest.raises(openai.NotFoundError) as caught:
            client.webhooks.retrieve(missing)
        assert missing in assert_error(caught.value, 404, None)

    def test_event_types_are_the_four_response_events(self, client: openai.OpenAI) -> None:
        listed = client.webhooks.event_types.list()
        assert listed.object == "list"
        assert sorted(listed.data) == sorted(EMITTED)
        assert len(listed.data) == len(EMITTED)


class TestList:
    def test_newest_first_in_pages(self, client: openai.OpenAI, made: Made, hook: str) -> None:
        first, second, third = (made.endpoint(hook, name=f"n{i}") for i in range(3))

        page = client.webhooks.list(limit=2)
        assert [e.id for e in page.data] == [third.id, second.id]
        assert page.has_more is True
        after = client.webhooks.list(limit=2, after=second.id)
        assert after.data[0].id == first.id

        # The SDK's auto-pagination walks every page: each endpoint once, newest first.
        walked = [e.id for e in client.webhooks.list(limit=2)]
        assert len(walked) == len(set(walked))
        assert walked == sorted(walked, reverse=True)
        assert [i for i in walked if i in {first.id, second.id, third.id}] == [
            third.id,
            second.id,
            first.id,
        ]

    def test_deleted_endpoints_are_not_listed(
        self, client: openai.OpenAI, made: Made, hook: str
    ) -> None:
        kept, gone = made.endpoint(hook), made.endpoint(hook)
        client.webhooks.delete(gone.id)
        walked = [e.id for e in client.webhooks.list(limit=100)]
        assert kept.id in walked
        assert gone.id not in walked


# -- update -----------------------------------------------------------------------------------


class TestUpdate:
    def test_each_field_changes(
        self, client: openai.OpenAI, made: Made, receiver: Receiver, hook: str
    ) -> None:
        created = made.endpoint(hook, name="before")

        renamed = client.webhooks.update(created.id, name="after")
        assert (renamed.name, renamed.url, renamed.event_types) == (
            "after",
            created.url,
            created.event_types,
        )
        moved = client.webhooks.update(created.id, url=receiver.url_for(f"{hook}-2"))
        assert (moved.name, moved.url) == ("after", receiver.url_for(f"{hook}-2"))
        retyped = client.webhooks.update(created.id, event_types=["response.incomplete"])
        assert retyped.event_types == ["response.incomplete"]

        stored = client.webhooks.retrieve(created.id)
        assert (stored.name, stored.url, stored.event_types) == (
            "after",
            receiver.url_for(f"{hook}-2"),
            ["response.incomplete"],
        )
        assert stored.signing_secret_hint == created.signing_secret_hint
        assert "signing_secret" not in renamed.model_dump()

    def test_event_types_are_replaced_as_a_whole(
        self, client: openai.OpenAI, made: Made, hook: str
    ) -> None:
        created = made.endpoint(hook, event_types=["response.completed", "response.failed"])
        updated = client.webhooks.update(
            created.id, event_types=["response.cancelled", "response.completed"]
        )
        assert updated.event_types == ["response.cancelled", "response.completed"]
        assert client.webhooks.retrieve(created.id).event_types == [
            "response.cancelled",
            "response.completed",
        ]

    def test_updated_at_moves_only_when_something_changed(
        self, client: openai.OpenAI, made: Made, hook: str, webhook_database_url: str
    ) -> None:
        created = made.endpoint(hook, name="same", event_types=["response.failed"])
        backdate(webhook_database_url, created.id)
        old = client.webhooks.retrieve(created.id)
        assert old.created_at == created.created_at - 1000
        assert old.updated_at == old.created_at

        # The same values again: nothing changed, so nothing moves.
        unchanged = client.webhooks.update(
            created.id, name="same", url=created.url, event_types=["response.failed"]
        )
        assert (unchanged.created_at, unchanged.updated_at) == (old.created_at, old.updated_at)
        assert client.webhooks.retrieve(created.id).updated_at == old.updated_at

        changed = client.webhooks.update(created.id, name="other")
        assert changed.created_at == old.created_at
        assert changed.updated_at is not None
        assert created.updated_at is not None
        assert changed.updated_at >= created.updated_at  # now, not the backdated time
        assert client.webhooks.retrieve(created.id).updated_at == changed.updated_at

    def test_refused_changes_leave_the_endpoint_as_it_was(
        self, client: openai.OpenAI, made: Made, hook: str
    ) -> None:
        created = made.endpoint(hook, name="kept")
        with pytest.raises(openai.BadRequestError) as caught:
            client.webhooks.update(created.id, name="new", url="ftp://example.com/hook")
        assert_error(caught.value, 400, "invalid_url", "url")
        with pytest.raises(openai.BadRequestError) as caught:
            client.webhooks.update(created.id, event_types=[])
        assert_error(caught.value, 400, "empty_array", "event_types")
        with pytest.raises(openai.BadRequestError) as caught:
            client.webhooks.update(created.id, event_types=cast(Any, ["batch.completed"]))
        assert_error(caught.value, 400, "unsupported_value", "event_types[0]")

        stored = client.webhooks.retrieve(created.id)
        assert (stored.name, stored.url, stored.event_types) == (
            "kept",
            created.url,
            created.event_types,
        )

    def test_unknown_endpoint_is_404(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.NotFoundError) as caught:
            client.webhooks.update("whe_" + "0" * 48, name="x")
        assert_error(caught.value, 404, None)


# -- delete -----------------------------------------------------------------------------------


class TestDelete:
    def test_deleted_then_404_and_a_second_delete_is_404(
        self, client: openai.OpenAI, made: Made, hook: str
    ) -> None:
        created = made.endpoint(hook)
        deleted = client.webhooks.delete(created.id)
        assert (deleted.id, deleted.object, deleted.deleted) == (
            created.id,
            "webhook_endpoint.deleted",
            True,
        )
        with pytest.raises(openai.NotFoundError) as caught:
            client.webhooks.retrieve(created.id)
        assert created.id in assert_error(caught.value, 404, None)
        with pytest.raises(openai.NotFoundError) as caught:
            client.webhooks.delete(created.id)
        assert_error(caught.value, 404, None)
        with pytest.raises(openai.NotFoundError):
            client.webhooks.test(created.id, event_type="response.completed")


# -- rotate_secret ----------------------------------------------------------------------------


class TestRotateSecret:
    def test_a_new_secret_and_hint(
        self, client: openai.OpenAI, made: Made, hook: str, webhook_database_url: str
    ) -> None:
        created = made.endpoint(hook)
        backdate(webhook_database_url, created.id)
        rotated = client.webhooks.rotate_secret(created.id)

        assert isinstance(rotated, WebhookEndpointWithSecret)
        assert rotated.id == created.id
        assert rotated.signing_secret.startswith("whsec_")
        assert rotated.signing_secret != created.signing_secret
        assert rotated.signing_secret_hint != created.signing_secret_hint
        assert rotated.signing_secret not in (rotated.signing_secret_hint or "")
        # A new secret is a change: updated_at moves, created_at stays.
        assert rotated.created_at == created.created_at - 1000
        assert rotated.updated_at is not None
        assert rotated.updated_at >= created.created_at
        stored = client.webhooks.retrieve(created.id)
        assert stored.signing_secret_hint == rotated.signing_secret_hint
        assert stored.updated_at == rotated.updated_at

    def test_keeping_the_old_secret_signs_with_both(
        self, client: openai.OpenAI, made: Made, receiver: Receiver, hook: str
    ) -> None:
        created = made.endpoint(hook)
        rotated = client.webhooks.rotate_secret(
            created.id, keep_old_secret_active_for_24_hours=True
        )
        assert rotated.signing_secret != created.signing_secret

        client.webhooks.test(created.id, event_type="response.completed")
        [received] = receiver.wait_for(hook, 1)
        assert len(received.headers["webhook-signature"].split()) == 2
        for secret in (created.signing_secret, rotated.signing_secret):
            event = unwrap(client, received, secret)
            assert isinstance(event, ResponseCompletedWebhookEvent)
        with pytest.raises(openai.InvalidWebhookSignatureError):
            unwrap(client, received, made.endpoint(hook).signing_secret)  # anyone else's

    def test_without_keeping_only_the_new_secret_verifies(
        self, client: openai.OpenAI, made: Made, receiver: Receiver, hook: str
    ) -> None:
        created = made.endpoint(hook)
        kept = client.webhooks.rotate_secret(created.id, keep_old_secret_active_for_24_hours=True)
        rotated = client.webhooks.rotate_secret(created.id)

        client.webhooks.test(created.id, event_type="response.failed")
        [received] = receiver.wait_for(hook, 1)
        assert len(received.headers["webhook-signature"].split()) == 1
        assert isinstance(
            unwrap(client, received, rotated.signing_secret), ResponseFailedWebhookEvent
        )
        # Neither the secret just replaced nor the one kept before it signs any more.
        for old in (created.signing_secret, kept.signing_secret):
            with pytest.raises(openai.InvalidWebhookSignatureError):
                unwrap(client, received, old)

    def test_unknown_endpoint_is_404(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.NotFoundError) as caught:
            client.webhooks.rotate_secret("whe_" + "0" * 48)
        assert_error(caught.value, 404, None)


# -- test (a sample event) --------------------------------------------------------------------


class TestSampleEvent:
    @pytest.mark.parametrize("answer", [None, 500, 404])
    def test_answers_with_the_receivers_status_code(
        self,
        client: openai.OpenAI,
        made: Made,
        receiver: Receiver,
        hook: str,
        answer: int | None,
    ) -> None:
        if answer is not None:
            receiver.script(hook, answer)
        created = made.endpoint(hook)
        result = client.webhooks.test(created.id, event_type="response.completed")
        assert result.object == "webhook_endpoint.test"
        assert result.webhook_endpoint_id == created.id
        assert result.event_type == "response.completed"
        assert result.status_code == (answer or 200)
        assert result.success is True
        assert len(receiver.received(hook)) == 1  # sent once, not retried

    @pytest.mark.parametrize("event_type", EMITTED)
    def test_the_sample_unwraps_to_the_typed_event(
        self,
        client: openai.OpenAI,
        made: Made,
        receiver: Receiver,
        hook: str,
        event_type: str,
        webhook_database_url: str,
    ) -> None:
        created = made.endpoint(hook)  # subscribed to response.completed only: any type tests
        backdate(webhook_database_url, created.id)
        before = client.webhooks.retrieve(created.id)

        client.webhooks.test(created.id, event_type=cast(Any, event_type))
        [received] = receiver.wait_for(hook, 1)
        event = unwrap(client, received, created.signing_secret)
        assert isinstance(event, EVENT_CLASSES[event_type])
        assert event.type == event_type
        assert event.object == "event"
        assert event.id.startswith("evt_")
        assert event.data.id.startswith("resp_")
        assert received.headers["content-type"].startswith("application/json")
        assert received.headers["webhook-id"]
        # A test is not a change to the endpoint.
        assert client.webhooks.retrieve(created.id).updated_at == before.updated_at

    def test_an_unreachable_url_is_the_callers_problem(
        self, client: openai.OpenAI, made: Made, hook: str
    ) -> None:
        # The receiver failed, not Tether: a 400 that says why (app/webhooks/service.py; a 5xx
        # would have the SDK retry, and would say the fault is the server's).
        created = made.endpoint(hook, url=f"http://127.0.0.1:{free_port()}/{hook}")
        with pytest.raises(openai.BadRequestError) as caught:
            client.webhooks.test(created.id, event_type="response.completed")
        message = assert_error(caught.value, 400, "webhook_unreachable", "url")
        assert created.url in message
        assert "connection refused" in message

    def test_an_event_type_tether_never_emits_is_refused(
        self, client: openai.OpenAI, made: Made, receiver: Receiver, hook: str
    ) -> None:
        created = made.endpoint(hook)
        with pytest.raises(openai.BadRequestError) as caught:
            client.webhooks.test(created.id, event_type="batch.completed")
        assert "batch.completed" in assert_error(
            caught.value, 400, "unsupported_value", "event_type"
        )
        assert receiver.received(hook) == []


# -- refused input ----------------------------------------------------------------------------

LONG_NAME = "n" * 257
# (name, url, event_types), the code and param of the refusal, and a word its message has.
REFUSED: dict[str, tuple[Any, Any, Any, str, str, str]] = {
    "an event type Tether never emits": (
        "x",
        "URL",
        ["response.completed", "batch.completed"],
        "unsupported_value",
        "event_types[1]",
        "batch.completed",
    ),
    "an unknown event type": (
        "x",
        "URL",
        ["response.started"],
        "invalid_value",
        "event_types[0]",
        "response.started",
    ),
    "no event types": ("x", "URL", [], "empty_array", "event_types", "event_types"),
    "no name": (openai.omit, "URL", EMITTED, "missing_required_parameter", "name", "name"),
    "an empty name": ("", "URL", EMITTED, "invalid_value", "name", "name"),
    "a name over 256 characters": (LONG_NAME, "URL", EMITTED, "invalid_value", "name", "256"),
    "no url": ("x", openai.omit, EMITTED, "missing_required_parameter", "url", "url"),
    "a url that is not a url": ("x", "not a url", EMITTED, "invalid_url", "url", "url"),
    "a url with no host": ("x", "http://", EMITTED, "invalid_url", "url", "host"),
    "an unparsable url": ("x", "http://[::1", EMITTED, "invalid_url", "url", "url"),
    "an ftp url": ("x", "ftp://example.com/hook", EMITTED, "invalid_url", "url", "https://"),
    "a url with a password": (
        "x",
        "http://user:pw@example.com/hook",
        EMITTED,
        "invalid_url",
        "url",
        "password",
    ),
    "a url over 2048 characters": (
        "x",
        "https://example.com/" + "a" * 2048,
        EMITTED,
        "invalid_value",
        "url",
        "2048",
    ),
}


class TestRefusedInput:
    @pytest.mark.parametrize("case", list(REFUSED))
    def test_refused_in_openais_shape(
        self, client: openai.OpenAI, receiver: Receiver, hook: str, case: str
    ) -> None:
        name, url, event_types, code, param, word = REFUSED[case]
        if name is not openai.omit and name:
            name = f"{name}-{hook}"
        with pytest.raises(openai.BadRequestError) as caught:
            client.webhooks.create(
                name=name,
                url=receiver.url_for(hook) if url == "URL" else url,
                event_types=event_types,
            )
        assert word in assert_error(caught.value, 400, code, param)
        if isinstance(name, str) and name:
            assert name not in names_listed(client)

    def test_a_name_of_256_characters_is_accepted(self, made: Made, hook: str) -> None:
        name = (hook * 30)[:256]
        assert made.endpoint(hook, name=name).name == name

    def test_the_refusal_of_a_foreign_event_type_names_it(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            client.webhooks.create(
                name="batches", url="https://example.com/hook", event_types=["batch.completed"]
            )
        message = assert_error(caught.value, 400, "unsupported_value", "event_types[0]")
        assert "'batch.completed'" in message
        for emitted in EMITTED:
            assert emitted in message  # and says what Tether does emit

    def test_an_unknown_field_is_refused(self, client: openai.OpenAI, hook: str) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            client.webhooks.create(
                name=hook,
                url="https://example.com/hook",
                event_types=["response.completed"],
                extra_body={"secret": "whsec_mine"},
            )
        assert_error(caught.value, 400, "unknown_parameter", "secret")


@pytest.fixture(scope="class")
def public_only_client(webhook_settings: Settings) -> Iterator[openai.OpenAI]:
    """A server on the webhook database that takes only public https URLs, as by default.

    (Class-scoped, where start_webhook_server is per test: one server for the whole table.)
    """
    strict = webhook_settings.model_copy(
        update={"webhook_allow_http": False, "webhook_allow_private": False}
    )
    with running_server(strict) as srv, sdk(srv.url) as c:
        yield c


class TestPublicOnly:
    @pytest.mark.parametrize(
        ("url", "word"),
        [
            ("http://example.com/hook", "https://"),
            ("https://127.0.0.1/x", "loopback"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://localhost/x", "loopback"),
            ("https://[::1]/x", "loopback"),
            ("https://10.0.0.7/x", "private"),
            ("https://[::ffff:127.0.0.1]/x", "127.0.0.1"),
        ],
    )
    def test_a_url_it_must_not_reach_is_refused(
        self, public_only_client: openai.OpenAI, url: str, word: str
    ) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            public_only_client.webhooks.create(
                name="ssrf", url=url, event_types=["response.completed"]
            )
        assert word in assert_error(caught.value, 400, "invalid_url", "url")

    def test_a_public_name_is_accepted_without_resolving_it(
        self, public_only_client: openai.OpenAI, client: openai.OpenAI, made: Made
    ) -> None:
        created = public_only_client.webhooks.create(
            name="public", url="https://example.com/hook", event_types=["response.failed"]
        )
        made.ids.append(created.id)
        assert created.url == "https://example.com/hook"

        # And an update is held to the same rule.
        with pytest.raises(openai.BadRequestError) as caught:
            public_only_client.webhooks.update(created.id, url="https://127.0.0.1/x")
        assert_error(caught.value, 400, "invalid_url", "url")
        assert client.webhooks.retrieve(created.id).url == "https://example.com/hook"


# -- one project's endpoints are out of another's reach ---------------------------------------


@dataclass
class Tenants:
    server: ServerThread
    a: openai.OpenAI
    b: openai.OpenAI


@pytest.fixture(scope="class")
def tenants(
    backend: str, webhook_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tenants]:
    """Two projects' keys on a database of their own: a key in the shared webhook database
    would end keyless mode for every other test's server."""
    with migrated_database(backend, str(tmp_path_factory.mktemp("tenants"))) as url:
        settings = webhook_settings.model_copy(
            update={"database_url": url, "admin_api_key": ADMIN_KEY}
        )
        _, key_a = make_key(settings, project_name())
        _, key_b = make_key(settings, project_name())
        with (
            running_server(settings) as srv,
            openai.OpenAI(base_url=f"{srv.url}/v1", api_key=key_a, max_retries=0) as a,
            openai.OpenAI(base_url=f"{srv.url}/v1", api_key=key_b, max_retries=0) as b,
        ):
            yield Tenants(srv, a, b)


class TestTenancy:
    def test_another_project_cannot_see_or_touch_an_endpoint(
        self, tenants: Tenants, receiver: Receiver, hook: str
    ) -> None:
        a, b = tenants.a, tenants.b
        theirs = a.webhooks.create(
            name="A's", url=receiver.url_for(hook), event_types=["response.completed"]
        )
        job = a.responses.create(model="echo", input="hi", background=True)
        assert poll_status(a, job.id).status == "completed"
        [owed] = settled(tenants.server, theirs.id, 1)
        never = "whe_" + uuid.uuid4().hex + uuid.uuid4().hex[:16]

        calls: dict[str, Any] = {
            "retrieve": lambda i: b.webhooks.retrieve(i),
            "update": lambda i: b.webhooks.update(i, name="B's now"),
            "test": lambda i: b.webhooks.test(i, event_type="response.completed"),
            "rotate": lambda i: b.webhooks.rotate_secret(i),
            "delete": lambda i: b.webhooks.delete(i),
        }
        for what, call in calls.items():
            with pytest.raises(openai.NotFoundError) as caught:
                call(theirs.id)
            message = assert_error(caught.value, 404, None)
            # Indistinguishable from an endpoint that never existed.
            with pytest.raises(openai.NotFoundError) as caught_never:
                call(never)
            assert message.replace(theirs.id, "<id>") == assert_error(
                caught_never.value, 404, None
            ).replace(never, "<id>"), what

        assert [e.id for e in b.webhooks.list()] == []
        assert len(receiver.received(hook)) == 1  # A's event; B's test sent nothing
        # B's delete took nothing with it: A's deliveries are all there.
        assert deliveries(tenants.server, theirs.id) == [owed]
        # A's endpoint is as A made it: not renamed, not rotated, not deleted.
        stored = a.webhooks.retrieve(theirs.id)
        assert (stored.name, stored.signing_secret_hint) == ("A's", theirs.signing_secret_hint)
        assert [e.id for e in a.webhooks.list()] == [theirs.id]
        a.webhooks.test(theirs.id, event_type="response.completed")
        received = receiver.wait_for(hook, 2)
        unwrap(a, received[-1], theirs.signing_secret)  # still A's secret

    def test_each_project_lists_only_its_own(self, tenants: Tenants, receiver: Receiver) -> None:
        made = {
            name: client.webhooks.create(
                name=name, url=receiver.url_for(name), event_types=["response.failed"]
            ).id
            for name, client in (("a1", tenants.a), ("b1", tenants.b), ("a2", tenants.a))
        }
        a_ids = [e.id for e in tenants.a.webhooks.list()]
        b_ids = [e.id for e in tenants.b.webhooks.list()]
        assert made["a2"] in a_ids
        assert made["a1"] in a_ids
        assert a_ids.index(made["a2"]) < a_ids.index(made["a1"])
        assert made["b1"] not in a_ids
        assert b_ids == [made["b1"]]


# -- the operators' view of the deliveries ----------------------------------------------------


@pytest.fixture(scope="class")
def admin_server(webhook_settings: Settings) -> Iterator[ServerThread]:
    with running_server(webhook_settings.model_copy(update={"admin_api_key": ADMIN_KEY})) as srv:
        yield srv


def deliver_twice(client: openai.OpenAI, receiver: Receiver, hook: str) -> list[dict[str, Any]]:
    """Two background responses, one after the other; the events the receiver got, in order."""
    events = []
    for n in (1, 2):
        job = client.responses.create(model="echo", input=f"hi {n}", background=True)
        assert poll_status(client, job.id).status == "completed"
        received = receiver.wait_for(hook, n)
        event = orjson.loads(received[-1].body)
        assert event["data"]["id"] == job.id
        events.append(event)
    return events


def table(stdout: str) -> list[dict[str, str]]:
    lines = stdout.splitlines()
    assert lines, "no output"
    header = lines[0].split("\t")
    assert header == CLI_COLUMNS, lines[0]
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


class TestOperatorsView:
    def test_the_admin_route_needs_the_admin_key(
        self, admin_server: ServerThread, made: Made, hook: str
    ) -> None:
        created = made.endpoint(hook)
        path = f"{admin_server.url}/admin/webhook_endpoints/{created.id}/deliveries"
        for headers in ({}, {"Authorization": "Bearer sk-test"}):
            answer = httpx.get(path, headers=headers)
            assert answer.status_code == 401, answer.text
            assert set(answer.json()["error"]) == ERROR_KEYS
            assert answer.json()["error"]["code"] == "invalid_api_key"
        assert deliveries(admin_server, created.id) == []

        unknown = httpx.get(
            f"{admin_server.url}/admin/webhook_endpoints/whe_{'0' * 48}/deliveries",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert unknown.status_code == 404, unknown.text
        assert set(unknown.json()["error"]) == ERROR_KEYS

    def test_lists_deliveries_newest_first(
        self,
        admin_server: ServerThread,
        client: openai.OpenAI,
        made: Made,
        receiver: Receiver,
        hook: str,
    ) -> None:
        created = made.endpoint(hook, event_types=["response.completed"])
        first, second = deliver_twice(client, receiver, hook)

        found = settled(admin_server, created.id, 2)
        assert [d["event_id"] for d in found] == [second["id"], first["id"]]
        for delivery in found:
            assert delivery["webhook_endpoint_id"] == created.id
            assert delivery["event_type"] == "response.completed"
            assert (delivery["state"], delivery["attempts"]) == ("delivered", 1)
            assert (delivery["last_status_code"], delivery["last_error"]) == (200, None)
            assert delivery["next_attempt_at"] is None
            assert delivery["delivered_at"] is not None
        # The `webhook-id` header is the delivery's id.
        ids = [r.headers["webhook-id"] for r in receiver.received(hook)]
        assert ids == [found[1]["id"], found[0]["id"]]

        newest = deliveries(admin_server, created.id, limit=1)
        assert [d["id"] for d in newest] == [found[0]["id"]]

    def test_a_failing_receiver_shows_the_error_and_the_next_attempt(
        self,
        admin_server: ServerThread,
        client: openai.OpenAI,
        made: Made,
        receiver: Receiver,
        hook: str,
        webhook_settings: Settings,
        tmp_path: Path,
    ) -> None:
        receiver.script(hook, *[500] * 30)
        created = made.endpoint(hook, event_types=["response.completed"])
        job = client.responses.create(model="echo", input="fail", background=True)
        assert poll_status(client, job.id).status == "completed"

        found: list[dict[str, Any]] = []

        def failed_once() -> bool:
            found[:] = deliveries(admin_server, created.id)
            return bool(found) and found[0]["last_status_code"] == 500

        wait_until(failed_once, timeout=15, what="a failed attempt")
        [delivery] = found
        assert delivery["state"] == "pending"
        assert delivery["attempts"] >= 1
        assert delivery["last_error"].startswith("HTTP 500")
        assert delivery["next_attempt_at"] is not None
        assert delivery["next_attempt_at"] > delivery["last_attempt_at"]
        assert delivery["delivered_at"] is None

        [row] = table(Cli(webhook_settings, tmp_path).ok("webhooks", "deliveries", created.id))
        assert (row["ID"], row["STATE"], row["LAST STATUS"]) == (delivery["id"], "pending", "500")
        assert row["LAST ERROR"].startswith("HTTP 500")
        assert row["NEXT ATTEMPT"] != "-"

    def test_the_cli_prints_one_line_per_delivery(
        self,
        admin_server: ServerThread,
        client: openai.OpenAI,
        made: Made,
        receiver: Receiver,
        hook: str,
        webhook_settings: Settings,
        tmp_path: Path,
    ) -> None:
        created = made.endpoint(hook, event_types=["response.completed"])
        deliver_twice(client, receiver, hook)
        found = settled(admin_server, created.id, 2)
        cli = Cli(webhook_settings, tmp_path)

        rows = table(cli.ok("webhooks", "deliveries", created.id))
        assert [r["ID"] for r in rows] == [d["id"] for d in found]
        for row in rows:
            assert (row["EVENT"], row["STATE"], row["ATTEMPTS"]) == (
                "response.completed",
                "delivered",
                "1",
            )
            assert (row["LAST STATUS"], row["NEXT ATTEMPT"], row["LAST ERROR"]) == ("200", "-", "-")
            assert row["CREATED"].endswith("Z")

        [newest] = table(cli.ok("webhooks", "deliveries", created.id, "--limit", "1"))
        assert newest["ID"] == found[0]["id"]

        # An endpoint with no deliveries: the header alone.
        assert table(cli.ok("webhooks", "deliveries", made.endpoint(hook).id)) == []

    def test_the_cli_names_an_unknown_endpoint_and_exits_1(
        self, webhook_settings: Settings, tmp_path: Path
    ) -> None:
        unknown = "whe_" + "0" * 48
        done = Cli(webhook_settings, tmp_path).run("webhooks", "deliveries", unknown)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert unknown in done.stderr
