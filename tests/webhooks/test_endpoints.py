"""Webhook endpoints as the `openai` SDK's `client.webhooks.*` calls them: create, retrieve,
list, update, delete, rotate_secret, test and event_types. Both backends. Refused input and
tenancy are in test_endpoint_refusals.py, the operators' view in test_operators_view.py.

The endpoints made here live in the webhook database's default project, which other tests'
background responses also send to: each test deletes what it made (the `made` fixture).
"""

import base64
import time
from typing import Any, cast

import openai
import pytest
from openai.types.webhooks import (
    ResponseCompletedWebhookEvent,
    ResponseFailedWebhookEvent,
    WebhookEndpointWithSecret,
)

from tests.harness import (
    free_port,
)
from tests.webhooks.helpers import (
    EMITTED,
    EVENT_CLASSES,
    Made,
    assert_error,
    backdate,
    unwrap,
)
from tests.webhooks.receiver import Receiver


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
