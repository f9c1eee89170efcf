"""The turn engine on real Celery workers: a background turn sees what a synchronous one sees,
a finished stream resumes to its true end, and a stuck job is ended at JOB_TIME_LIMIT."""

from collections.abc import Callable
from typing import Any

import openai

from app.config import Settings
from tests.background.harness import Worker
from tests.conftest import sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread, poll_status, running_server
from tests.responses.test_turn_engine import (
    CONVERSATION,
    SEEN_FIRST,
    TIME_LIMIT,
    assert_items_closed_in_order,
    replay,
)


class TestBackgroundTurnsSeeTheirConversation:
    def test_a_background_turn_sends_the_conversation_first(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        synchronous = bg_client.conversations.create(items=CONVERSATION)
        bg_client.responses.create(model=model, input="t1", conversation=synchronous.id)
        sync_sent = fake_upstream.requests(model)[-1]["messages"]

        background = bg_client.conversations.create(items=CONVERSATION)
        created = bg_client.responses.create(
            model=model, input="t1", conversation=background.id, background=True
        )
        assert poll_status(bg_client, created.id).status == "completed"
        bg_sent = fake_upstream.requests(model)[-1]["messages"]

        assert sync_sent == [*SEEN_FIRST, {"role": "user", "content": "t1"}]
        assert bg_sent == sync_sent


class TestBackgroundTruncation:
    def test_auto_truncation_drops_the_same_turns_as_a_synchronous_create(
        self, private_queue: Callable[[], Settings], fake_upstream: FakeUpstream, model: str
    ) -> None:
        settings = private_queue().model_copy(update={"context_window_tokens": 200})
        worker = Worker(settings).start()
        try:
            with running_server(settings) as srv, sdk(srv.url) as client:
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
        finally:
            worker.stop()
        bg_sent = fake_upstream.requests(model)[-1]["messages"]
        assert len(sync_sent) < 13  # 6 turns of 2 messages plus "now", truncated
        assert sync_sent[-1] == {"role": "user", "content": "now"}
        assert bg_sent == sync_sent


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
        self, celery_server: ServerThread, bg_client: openai.OpenAI, model: str
    ) -> None:
        response_id, n = self.finished_stream(bg_client, model)
        assert replay(celery_server, response_id, after=n) == []
        final = replay(celery_server, response_id, after=n - 1)
        assert [(e["type"], e["sequence_number"]) for e in final] == [("response.completed", n)]

    def test_from_past_its_end_sends_nothing(
        self, celery_server: ServerThread, bg_client: openai.OpenAI, model: str
    ) -> None:
        response_id, n = self.finished_stream(bg_client, model)
        assert replay(celery_server, response_id, after=n + 5) == []


class TestOutputItemsCloseInOrder:
    def test_background_stream(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(
            model, reasoning_content="first I think it over", reply="then I answer", chunks=3
        )
        with bg_client.responses.create(
            model=model, input="x", background=True, stream=True
        ) as stream:
            events: list[Any] = list(stream)
        assert events[-1].type == "response.completed"
        assert_items_closed_in_order(events)


class TestJobTimeLimit:
    def test_a_stuck_job_fails_at_the_time_limit_and_frees_the_worker_thread(
        self, private_queue: Callable[[], Settings], fake_upstream: FakeUpstream, model: str
    ) -> None:
        slow, fast = f"{model}-slow", f"{model}-fast"
        fake_upstream.script(slow, delay=30.0)
        settings = private_queue().model_copy(
            update={"job_time_limit": 1.5, "upstream_timeout": 60.0}
        )
        worker = Worker(settings, concurrency=1).start()
        try:
            with running_server(settings) as srv, sdk(srv.url) as client:
                stuck = client.responses.create(model=slow, input="hang", background=True)
                failed = poll_status(client, stuck.id, timeout=15)
                assert failed.status == "failed"
                assert failed.error is not None
                assert failed.error.code == "server_error"
                assert TIME_LIMIT.search(failed.error.message), failed.error.message
                # The worker's one thread is free again: the next job runs.
                quick = client.responses.create(model=fast, input="quick", background=True)
                done = poll_status(client, quick.id, timeout=15)
        finally:
            worker.stop()
        assert (done.status, done.output_text) == ("completed", "reply to: quick")
