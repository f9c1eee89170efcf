"""Webhook endpoints: refused input in OpenAI's shape (never a 500), public addresses only by
default, and one project's endpoints out of another's reach. Both backends."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from app.config import Settings
from tests.auth.harness import make_key, project_name
from tests.conftest import sdk
from tests.harness import (
    ServerThread,
    migrated_database,
    poll_status,
    running_server,
)
from tests.webhooks.helpers import (
    ADMIN_KEY,
    EMITTED,
    Made,
    assert_error,
    deliveries,
    names_listed,
    settled,
    unwrap,
)
from tests.webhooks.receiver import Receiver

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
