"""stream=true: the SDK's typed events, for synchronous and background responses, resumed."""

from typing import Any

import openai
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import execute, poll_status, streamed_background

TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
CLOSING = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


def kinds(events: list[Any]) -> list[str]:
    """Event types with runs of deltas collapsed to one."""
    out: list[str] = []
    for event in events:
        if not (out and out[-1] == event.type and event.type.endswith(".delta")):
            out.append(event.type)
    return out


def assert_numbered(events: list[Any], start: int = 0) -> None:
    assert [e.sequence_number for e in events] == list(range(start, start + len(events)))


def deltas(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


class TestSynchronous:
    def test_text_stream(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="one two three four")
        with client.responses.create(model=model, input="count", stream=True) as stream:
            events = list(stream)
        assert kinds(events) == [
            *TEXT_EVENTS,
            "response.output_text.delta",
            *CLOSING,
            "response.completed",
        ]
        assert_numbered(events)
        assert len([e for e in events if e.type == "response.output_text.delta"]) == 4
        assert events[0].response.status == "in_progress"
        final = events[-1].response
        assert final.status == "completed"
        assert deltas(events) == final.output_text == "one two three four"
        stored = client.responses.retrieve(final.id)
        assert stored.output_text == "one two three four"
        assert stored.output[0].id == events[2].item.id  # the streamed item is the stored one
        assert fake_upstream.requests(model)[0]["stream"] is True  # the upstream streams too

    def test_the_sdk_stream_helper(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="helper works")
        with client.responses.stream(model=model, input="hi") as stream:
            texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
        assert "".join(texts) == final.output_text == "helper works"

    def test_max_output_tokens_ends_incomplete(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="cut", finish_reason="length")
        with client.responses.create(
            model=model, input="x", stream=True, max_output_tokens=16
        ) as stream:
            events = list(stream)
        assert events[-1].type == "response.incomplete"
        assert events[-1].response.incomplete_details.reason == "max_output_tokens"
        assert client.responses.retrieve(events[-1].response.id).status == "incomplete"

    def test_failure_mid_stream(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="a b c d e f", drop_after_chunks=2)
        with client.responses.create(model=model, input="x", stream=True) as stream:
            events = list(stream)
        assert kinds(events)[-2:] == ["error", "response.failed"]
        assert_numbered(events)
        assert events[-2].code == "server_error"
        failed = events[-1].response
        assert client.responses.retrieve(failed.id).status == "failed"

    def test_unstored_stream_stores_nothing(self, client: openai.OpenAI, model: str) -> None:
        with client.responses.create(model=model, input="x", stream=True, store=False) as s:
            events = list(s)
        assert events[-1].type == "response.completed"
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(events[-1].response.id)

    def test_a_client_that_disconnects_leaves_it_incomplete(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="word " * 200, chunk_delay=0.05)
        with client.responses.create(model=model, input="x", stream=True) as stream:
            first = [next(stream) for _ in range(6)]  # some deltas, then hang up
        response_id = first[0].response.id
        left = poll_status(client, response_id, until=("incomplete", "completed", "failed"))
        assert left.status == "incomplete"
        assert left.incomplete_details is not None
        # OpenAI has no reason for it: null, which strict clients accept; the cause is kept.
        assert left.incomplete_details.reason is None
        assert left.incomplete_details.model_extra == {"tether_reason": "client_disconnected"}
        assert left.output_text  # what was generated before the client left is kept
        assert len(left.output_text) < len("word " * 200)

    def test_validation_errors_are_plain_400s(self, client: openai.OpenAI, model: str) -> None:
        with pytest.raises(openai.BadRequestError):
            client.responses.create(model=model, input="x", stream=True, temperature=9)


class TestBackground:
    def test_background_stream(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="in the background")
        with client.responses.create(
            model=model, input="x", background=True, stream=True
        ) as stream:
            events = list(stream)
        assert kinds(events)[:3] == ["response.created", "response.queued", "response.in_progress"]
        assert events[0].response.status == "queued"
        assert events[-1].type == "response.completed"
        assert_numbered(events)
        assert deltas(events) == "in the background"

    def test_resume_after_a_dropped_connection(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="word " * 40, chunk_delay=0.02)
        with client.responses.create(
            model=model, input="x", background=True, stream=True
        ) as stream:
            seen = [next(stream) for _ in range(8)]
        response_id = seen[0].response.id
        with client.responses.retrieve(response_id, stream=True, starting_after=7) as stream:
            rest = list(stream)
        assert rest[0].sequence_number == 8
        everything = seen + rest
        assert_numbered(everything)
        assert everything[-1].type == "response.completed"
        assert deltas(everything) == everything[-1].response.output_text == "word " * 40

    def test_a_late_client_gets_every_event(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        created = streamed_background(client, model=model, input="late")
        poll_status(client, created.id)
        with client.responses.retrieve(created.id, stream=True) as stream:
            events = list(stream)
        assert_numbered(events)
        assert deltas(events) == "reply to: late"
        with client.responses.retrieve(created.id, stream=True, starting_after=3) as stream:
            assert [e.sequence_number for e in stream] == [e.sequence_number for e in events[4:]]

    def test_an_expired_log_is_rebuilt_from_the_stored_response(
        self, client: openai.OpenAI, database_url: str, model: str
    ) -> None:
        created = streamed_background(client, model=model, input="old")
        poll_status(client, created.id)
        execute(database_url, "DELETE FROM response_events WHERE response_id = :i", i=created.id)
        with client.responses.retrieve(created.id, stream=True) as stream:
            events = list(stream)
        assert kinds(events) == [
            "response.created",
            "response.queued",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            *CLOSING,
            "response.completed",
        ]
        assert_numbered(events)
        assert deltas(events) == "reply to: old"

    def test_a_synchronous_response_can_be_streamed_later(
        self, client: openai.OpenAI, model: str
    ) -> None:
        created = client.responses.create(model=model, input="sync")
        with client.responses.retrieve(created.id, stream=True) as stream:
            events = list(stream)
        assert events[-1].type == "response.completed"
        assert deltas(events) == "reply to: sync"
