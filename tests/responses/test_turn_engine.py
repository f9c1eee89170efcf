"""One turn engine for every way a response is made (embedded mode, both backends).

A background turn must see what a synchronous one sees (its conversation, truncation), every
path must render the Response object the same way, streams must close each output item before
the next opens, and limits (item id length, idempotency, job time) must hold on every path.
"""

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response

from tests.conftest import StartServer, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread, poll_status

# Conversation items the model must see before a turn's own input.
CONVERSATION: Any = [
    {"type": "message", "role": "system", "content": "be brief"},
    {"type": "message", "role": "user", "content": "c0"},
    {"type": "message", "role": "assistant", "content": "a0"},
]
SEEN_FIRST = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "c0"},
    {"role": "assistant", "content": "a0"},
]
LONG_ID = "msg_" + "a" * 66  # 70 characters; ids are at most 64
TIME_LIMIT = re.compile(r"time.?limit", re.IGNORECASE)


def sse_events(answer: httpx.Response) -> list[dict[str, Any]]:
    """The JSON payloads of a server-sent-events body, decoded as sent (0 stays 0)."""
    assert answer.status_code == 200, answer.text
    return [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: ")]


@contextmanager
def streamed(method: str, url: str, **kwargs: Any) -> Iterator[list[dict[str, Any]]]:
    """A streamed request read to its end; the events it carried, decoded as sent."""
    with httpx.stream(method, url, timeout=15.0, **kwargs) as answer:
        answer.read()
        yield sse_events(answer)


def replay(
    server: ServerThread, response_id: str, after: int | None = None
) -> list[dict[str, Any]]:
    """GET /v1/responses/{id}?stream=true, from `after` if given."""
    params: dict[str, Any] = {"stream": "true"}
    if after is not None:
        params["starting_after"] = after
    with streamed("GET", f"{server.url}/v1/responses/{response_id}", params=params) as events:
        return events


def backgrounds(events: list[dict[str, Any]]) -> list[object]:
    """The `background` field of every event that carries the whole response."""
    return [e["response"]["background"] for e in events if "response" in e]


def assert_items_closed_in_order(events: list[Any]) -> None:
    """Each output item's events all come before any event of a later item, and the reasoning
    item is done before the message item is added."""
    indexes = [e.output_index for e in events if hasattr(e, "output_index")]
    assert indexes == sorted(indexes), f"output items interleave: {indexes}"
    kinds = [(e.type, e.output_index) for e in events if hasattr(e, "output_index")]
    assert kinds.index(("response.output_item.done", 0)) < kinds.index(
        ("response.output_item.added", 1)
    )
    final = events[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message"]


class TestBackgroundTurnsSeeTheirConversation:
    def test_a_background_turn_sends_the_conversation_first(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        synchronous = client.conversations.create(items=CONVERSATION)
        client.responses.create(model=model, input="t1", conversation=synchronous.id)
        sync_sent = fake_upstream.requests(model)[-1]["messages"]

        background = client.conversations.create(items=CONVERSATION)
        created = client.responses.create(
            model=model, input="t1", conversation=background.id, background=True
        )
        assert poll_status(client, created.id).status == "completed"
        bg_sent = fake_upstream.requests(model)[-1]["messages"]

        assert sync_sent == [*SEEN_FIRST, {"role": "user", "content": "t1"}]
        assert bg_sent == sync_sent

    def test_a_background_stream_sends_the_conversation_first(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        conv = client.conversations.create(items=CONVERSATION)
        with client.responses.create(
            model=model, input="t1", conversation=conv.id, background=True, stream=True
        ) as stream:
            events = list(stream)
        assert events[-1].type == "response.completed"
        assert fake_upstream.requests(model)[-1]["messages"] == [
            *SEEN_FIRST,
            {"role": "user", "content": "t1"},
        ]


class TestBackgroundTruncation:
    def test_auto_truncation_drops_the_same_turns_as_a_synchronous_create(
        self, start_server: StartServer, fake_upstream: FakeUpstream, model: str
    ) -> None:
        with start_server(context_window_tokens=200) as srv, sdk(srv.url) as client:
            last = None
            for n in range(6):
                last = client.responses.create(
                    model=model, input=f"turn {n} " + "words " * 20, previous_response_id=last
                ).id
            client.responses.create(
                model=model, input="now", previous_response_id=last, truncation="auto"
            )
            sync_sent = fake_upstream.requests(model)[-1]["messages"]
            created = client.responses.create(
                model=model,
                input="now",
                previous_response_id=last,
                truncation="auto",
                background=True,
            )
            assert poll_status(client, created.id).status == "completed"
        bg_sent = fake_upstream.requests(model)[-1]["messages"]
        # The synchronous path truncated: 6 turns of 2 messages plus "now" would be 13.
        assert len(sync_sent) < 13
        assert sync_sent[-1] == {"role": "user", "content": "now"}
        assert bg_sent == sync_sent


class TestBackgroundIsABoolean:
    """`background` is a JSON boolean everywhere, on every backend (SQLite stores 0/1)."""

    def test_create_retrieve_and_list_answer_booleans(
        self, server: ServerThread, model: str
    ) -> None:
        url = f"{server.url}/v1/responses"
        sync = httpx.post(url, json={"model": model, "input": "s"}).json()
        queued = httpx.post(url, json={"model": model, "input": "b", "background": True}).json()
        assert sync["background"] is False
        assert queued["background"] is True
        with sdk(server.url) as client:
            poll_status(client, queued["id"])
        assert httpx.get(f"{url}/{sync['id']}").json()["background"] is False
        assert httpx.get(f"{url}/{queued['id']}").json()["background"] is True
        listed = httpx.get(url, params={"model": model}).json()["data"]
        assert {r["id"]: r["background"] for r in listed} == {
            sync["id"]: False,
            queued["id"]: True,
        }
        assert [type(r["background"]) for r in listed] == [bool, bool]

    def test_stream_replays_carry_booleans(self, server: ServerThread, model: str) -> None:
        url = f"{server.url}/v1/responses"
        sync = httpx.post(url, json={"model": model, "input": "s"}).json()
        queued = httpx.post(url, json={"model": model, "input": "b", "background": True}).json()
        with sdk(server.url) as client:
            poll_status(client, queued["id"])
        sync_flags = backgrounds(replay(server, sync["id"]))
        bg_flags = backgrounds(replay(server, queued["id"]))
        assert sync_flags
        assert all(flag is False for flag in sync_flags), sync_flags
        assert bg_flags
        assert all(flag is True for flag in bg_flags), bg_flags

    def test_live_background_stream_events_carry_booleans(
        self, server: ServerThread, model: str
    ) -> None:
        body = {"model": model, "input": "b", "background": True, "stream": True}
        with streamed("POST", f"{server.url}/v1/responses", json=body) as events:
            flags = backgrounds(events)
        assert events[-1]["type"] == "response.completed"
        assert all(flag is True for flag in flags), flags


class TestItemIdLength:
    """Ids are at most 64 characters: a 400 before anything is stored or sent, on every backend."""

    @staticmethod
    def assert_too_long(error: Any, param_suffix: str = "") -> None:
        assert isinstance(error, dict)
        assert error["type"] == "invalid_request_error"
        assert error["code"] == "string_above_max_length"
        assert "64" in error["message"]
        assert str(len(LONG_ID)) in error["message"]
        if param_suffix:
            assert str(error["param"]).endswith(param_suffix), error["param"]

    def test_a_response_in_a_conversation_with_a_long_input_id(
        self, server: ServerThread, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        conv = client.conversations.create(items=CONVERSATION)
        before = [i.id for i in client.conversations.items.list(conv.id, order="asc")]
        answer = httpx.post(
            f"{server.url}/v1/responses",
            json={
                "model": model,
                "conversation": conv.id,
                "input": [{"type": "message", "role": "user", "content": "x", "id": LONG_ID}],
            },
        )
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        self.assert_too_long(error)
        assert error["param"] == "input[0].id"
        assert fake_upstream.requests(model) == []  # rejected before the model was called
        listed = httpx.get(f"{server.url}/v1/responses", params={"model": model}).json()
        assert listed["data"] == []  # nothing stored
        after = [i.id for i in client.conversations.items.list(conv.id, order="asc")]
        assert after == before

    def test_adding_an_item_with_a_long_id_to_a_conversation(self, client: openai.OpenAI) -> None:
        conv = client.conversations.create(items=CONVERSATION)
        before = [i.id for i in client.conversations.items.list(conv.id, order="asc")]
        long_item: Any = [{"type": "message", "role": "user", "content": "x", "id": LONG_ID}]
        with pytest.raises(openai.BadRequestError) as err:
            client.conversations.items.create(conv.id, items=long_item)
        self.assert_too_long(err.value.body, param_suffix="items[0].id")
        after = [i.id for i in client.conversations.items.list(conv.id, order="asc")]
        assert after == before

    def test_creating_a_conversation_with_a_long_item_id(self, client: openai.OpenAI) -> None:
        long_item: Any = [{"type": "message", "role": "user", "content": "x", "id": LONG_ID}]
        with pytest.raises(openai.BadRequestError) as err:
            client.conversations.create(items=long_item)
        self.assert_too_long(err.value.body, param_suffix="items[0].id")


class TestResumingAFinishedBackgroundStream:
    @staticmethod
    def finished_stream(client: openai.OpenAI, model: str) -> tuple[str, int]:
        """A background stream consumed to its end: its id and its last sequence number."""
        with client.responses.create(
            model=model, input="x", background=True, stream=True
        ) as stream:
            events = list(stream)
        assert events[-1].type == "response.completed"
        return events[-1].response.id, events[-1].sequence_number

    def test_from_its_last_event_sends_nothing_more(
        self, server: ServerThread, client: openai.OpenAI, model: str
    ) -> None:
        response_id, n = self.finished_stream(client, model)
        assert replay(server, response_id, after=n) == []
        final = replay(server, response_id, after=n - 1)
        assert [(e["type"], e["sequence_number"]) for e in final] == [("response.completed", n)]
        assert final[0]["response"]["id"] == response_id

    def test_from_past_its_end_sends_nothing(
        self, server: ServerThread, client: openai.OpenAI, model: str
    ) -> None:
        response_id, n = self.finished_stream(client, model)
        assert replay(server, response_id, after=n + 5) == []


class TestOutputItemsCloseInOrder:
    """A reasoning model streams its reasoning, then its answer: two items, one after the
    other, never both open."""

    def test_synchronous_stream(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(
            model, reasoning_content="first I think it over", reply="then I answer", chunks=3
        )
        with client.responses.create(model=model, input="x", stream=True) as stream:
            events = list(stream)
        assert events[-1].type == "response.completed"
        assert_items_closed_in_order(events)

    def test_background_stream(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(
            model, reasoning_content="first I think it over", reply="then I answer", chunks=3
        )
        with client.responses.create(
            model=model, input="x", background=True, stream=True
        ) as stream:
            events = list(stream)
        assert events[-1].type == "response.completed"
        assert_items_closed_in_order(events)


class TestConcurrentIdempotentCreates:
    def test_twenty_concurrent_creates_with_one_key_call_the_model_once(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, delay=0.5, reply="only once")
        headers = {"Idempotency-Key": f"key-{model}"}

        def create(_: int) -> Response:
            return client.responses.create(model=model, input="same", extra_headers=headers)

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(create, range(20)))
        assert {a.id for a in answers} == {answers[0].id}
        assert {(a.status, a.output_text) for a in answers} == {("completed", "only once")}
        assert len(fake_upstream.requests(model)) == 1


class TestJobTimeLimit:
    def test_a_job_past_the_time_limit_fails_and_frees_its_slot(
        self, start_server: StartServer, fake_upstream: FakeUpstream, model: str
    ) -> None:
        slow, fast = f"{model}-slow", f"{model}-fast"
        fake_upstream.script(slow, delay=30.0)
        with (
            start_server(job_time_limit=1.5, upstream_timeout=60.0, worker_concurrency=1) as srv,
            sdk(srv.url) as client,
        ):
            stuck = client.responses.create(model=slow, input="hang", background=True)
            failed = poll_status(client, stuck.id, timeout=15)
            assert failed.status == "failed"
            assert failed.error is not None
            assert failed.error.code == "server_error"
            assert TIME_LIMIT.search(failed.error.message), failed.error.message
            # The one slot of this process is free again.
            quick = client.responses.create(model=fast, input="quick", background=True)
            done = poll_status(client, quick.id, timeout=15)
        assert (done.status, done.output_text) == ("completed", "reply to: quick")
