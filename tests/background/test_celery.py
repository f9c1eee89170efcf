"""background=true on real Celery workers: queued -> in_progress -> terminal, cancel, retries,
idempotent creates, and nothing lost when a worker dies."""

from collections.abc import Callable

import openai
import pytest
from redis import Redis

from app.config import Settings
from app.jobs import RUN_RESPONSE_TASK, celery_client
from tests.background.harness import Worker
from tests.conftest import sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import poll_status, query, running_server, streamed_background, wait_until


class TestLifecycle:
    def test_poll_to_completion(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="done in the background")
        created = bg_client.responses.create(model=model, input="work", background=True)
        assert created.status == "queued"
        assert created.background is True
        finished = poll_status(bg_client, created.id)
        assert finished.status == "completed"
        assert finished.output_text == "done in the background"
        assert finished.completed_at is not None
        assert finished.usage is not None
        assert finished.usage.output_tokens == 4

    def test_in_progress_is_visible_while_the_model_works(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, delay=1.0)
        created = bg_client.responses.create(model=model, input="slow", background=True)
        poll_status(bg_client, created.id, until=("in_progress",))
        assert poll_status(bg_client, created.id).status == "completed"

    def test_background_turns_chain(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        first = bg_client.responses.create(
            model=model, input="t0", background=True, instructions="rules"
        )
        poll_status(bg_client, first.id)
        second = bg_client.responses.create(
            model=model, input="t1", background=True, previous_response_id=first.id
        )
        assert poll_status(bg_client, second.id).status == "completed"
        assert fake_upstream.requests(model)[-1]["messages"] == [
            {"role": "user", "content": "t0"},
            {"role": "assistant", "content": "reply to: t0"},
            {"role": "user", "content": "t1"},
        ]

    def test_an_unfinished_previous_response_cannot_be_continued(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, delay=2.0)
        first = bg_client.responses.create(model=model, input="t0", background=True)
        with pytest.raises(openai.BadRequestError) as err:
            bg_client.responses.create(model=model, input="t1", previous_response_id=first.id)
        assert err.value.body["code"] == "previous_response_in_progress"  # type: ignore[index]
        poll_status(bg_client, first.id)


class TestUpstreamFailures:
    def test_a_client_error_fails_at_once(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, status=400, error_message="bad prompt")
        created = bg_client.responses.create(model=model, input="x", background=True)
        failed = poll_status(bg_client, created.id)
        assert failed.status == "failed"
        assert failed.error is not None
        assert (failed.error.code, failed.error.message) == ("invalid_prompt", "bad prompt")
        assert len(fake_upstream.requests(model)) == 1  # not worth retrying

    def test_transient_failures_are_retried(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, status=503, fail_times=2, reply="third time lucky")
        created = bg_client.responses.create(model=model, input="x", background=True)
        done = poll_status(bg_client, created.id)
        assert (done.status, done.output_text) == ("completed", "third time lucky")
        assert len(fake_upstream.requests(model)) == 3

    def test_retries_are_bounded(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, status=429, error_message="busy")
        created = bg_client.responses.create(model=model, input="x", background=True)
        failed = poll_status(bg_client, created.id)
        assert failed.status == "failed"
        assert failed.error is not None
        assert failed.error.code == "rate_limit_exceeded"
        assert len(fake_upstream.requests(model)) == 3  # job_upstream_retries=2, plus the first


class TestCancel:
    def test_cancel_while_running_stops_the_model_call(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, delay=30.0)
        created = bg_client.responses.create(model=model, input="long", background=True)
        poll_status(bg_client, created.id, until=("in_progress",))
        wait_until(lambda: len(fake_upstream.requests(model)) == 1, what="the model call")
        cancelled = bg_client.responses.cancel(created.id)
        assert cancelled.status == "cancelled"
        # The worker notices within its poll interval and closes its upstream request.
        wait_until(
            lambda: fake_upstream.abandoned(model) == 1,
            timeout=5,
            what="the upstream request to be closed",
        )
        assert bg_client.responses.retrieve(created.id).status == "cancelled"

    def test_cancel_twice_returns_the_same_object(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, delay=30.0)
        created = bg_client.responses.create(model=model, input="long", background=True)
        first = bg_client.responses.cancel(created.id)
        again = bg_client.responses.cancel(created.id)
        assert first.status == again.status == "cancelled"
        assert again.model_dump() == first.model_dump()

    def test_a_finished_response_is_returned_as_it_finished(
        self, bg_client: openai.OpenAI, model: str
    ) -> None:
        created = bg_client.responses.create(model=model, input="quick", background=True)
        finished = poll_status(bg_client, created.id)
        assert bg_client.responses.cancel(created.id).model_dump() == finished.model_dump()

    def test_only_background_responses_can_be_cancelled(
        self, bg_client: openai.OpenAI, model: str
    ) -> None:
        created = bg_client.responses.create(model=model, input="sync")
        with pytest.raises(openai.BadRequestError):
            bg_client.responses.cancel(created.id)
        with pytest.raises(openai.NotFoundError):
            bg_client.responses.cancel("resp_unknown")

    def test_cancel_while_queued_runs_nothing(
        self, private_queue: Callable[[], Settings], fake_upstream: FakeUpstream, model: str
    ) -> None:
        settings = private_queue()
        with running_server(settings) as srv, sdk(srv.url) as client:
            created = client.responses.create(model=model, input="never", background=True)
            assert client.responses.cancel(created.id).status == "cancelled"
            worker = Worker(settings).start()
            try:
                # Queued behind the cancelled one: once it is done, the worker has had the
                # cancelled task in hand too.
                after = client.responses.create(model=model, input="after", background=True)
                poll_status(client, after.id)
            finally:
                worker.stop()
            assert client.responses.retrieve(created.id).status == "cancelled"
        assert [r["messages"][-1]["content"] for r in fake_upstream.requests(model)] == ["after"]


class TestIdempotency:
    def test_a_retried_create_returns_the_first_response(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        headers = {"Idempotency-Key": f"key-{model}"}
        first = bg_client.responses.create(
            model=model, input="once", background=True, extra_headers=headers
        )
        again = bg_client.responses.create(
            model=model, input="once", background=True, extra_headers=headers
        )
        assert again.id == first.id
        poll_status(bg_client, first.id)
        later = bg_client.responses.create(
            model=model, input="once", background=True, extra_headers=headers
        )
        assert (later.id, later.status) == (first.id, "completed")
        assert len(fake_upstream.requests(model)) == 1

    def test_the_same_key_with_another_body_is_a_400(
        self, bg_client: openai.OpenAI, model: str
    ) -> None:
        headers = {"Idempotency-Key": f"key-{model}"}
        bg_client.responses.create(model=model, input="one", background=True, extra_headers=headers)
        with pytest.raises(openai.BadRequestError) as err:
            bg_client.responses.create(
                model=model, input="two", background=True, extra_headers=headers
            )
        assert err.value.body["code"] == "idempotency_key_reused"  # type: ignore[index]

    def test_synchronous_creates_are_idempotent_too(
        self, bg_client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        headers = {"Idempotency-Key": f"key-{model}"}
        first = bg_client.responses.create(model=model, input="x", extra_headers=headers)
        again = bg_client.responses.create(model=model, input="x", extra_headers=headers)
        assert again.model_dump() == first.model_dump()
        assert len(fake_upstream.requests(model)) == 1


class TestNothingLost:
    def test_a_task_delivered_twice_runs_once(
        self,
        bg_client: openai.OpenAI,
        celery_settings: Settings,
        fake_upstream: FakeUpstream,
        model: str,
    ) -> None:
        fake_upstream.script(model, delay=0.5)
        created = bg_client.responses.create(model=model, input="once", background=True)
        sender = celery_client(celery_settings)
        for _ in range(2):  # the same task again, as a redelivery or the sweeper would send it
            sender.send_task(RUN_RESPONSE_TASK, args=[created.id])
        assert poll_status(bg_client, created.id).status == "completed"
        # A third run would have started by now: the later copies were queued behind the first.
        second = bg_client.responses.create(model=model, input="marker", background=True)
        poll_status(bg_client, second.id)
        assert [r["messages"][-1]["content"] for r in fake_upstream.requests(model)] == [
            "once",
            "marker",
        ]

    def test_a_worker_killed_mid_job_does_not_lose_it(
        self, private_queue: Callable[[], Settings], fake_upstream: FakeUpstream, model: str
    ) -> None:
        settings = private_queue()
        fake_upstream.script(model, delay=2.0)
        first = Worker(settings).start()
        with running_server(settings) as srv, sdk(srv.url) as client:
            created = client.responses.create(model=model, input="survive", background=True)
            poll_status(client, created.id, until=("in_progress",))
            first.kill()
            second = Worker(settings).start()
            try:
                # The lease runs out, the new worker's sweeper queues it again and runs it.
                done = poll_status(client, created.id, timeout=30)
            finally:
                second.stop()
                first.stop()
        assert done.status == "completed"
        attempts = query(
            settings.database_url, "SELECT attempts FROM responses WHERE id = :i", i=created.id
        )
        assert attempts == [(2,)]

    def test_a_worker_told_to_stop_gives_back_what_it_cannot_finish(
        self, private_queue: Callable[[], Settings], fake_upstream: FakeUpstream, model: str
    ) -> None:
        """SIGTERM (docker stop): no more jobs taken; after WORKER_DRAIN_SECONDS a job still
        running is queued again, its attempt not counted, and another worker completes it."""
        settings = private_queue().model_copy(update={"worker_drain_seconds": 0.5})
        fake_upstream.script(model, delay=4.0)
        first = Worker(settings).start()
        with running_server(settings) as srv, sdk(srv.url) as client:
            created = client.responses.create(model=model, input="hand over", background=True)
            poll_status(client, created.id, until=("in_progress",))
            # Its exit is not timed: that it gave the job back, not waited for the 4 s call,
            # is what its log and the attempts below show.
            assert first.terminate() == 0
            assert "released to the queue" in first.output()
            # Queued again: any worker's sweeper may send it out now (the suite's own may).
            second = Worker(settings).start()
            try:
                done = poll_status(client, created.id, timeout=30)
            finally:
                second.stop()
                first.stop()
        assert done.status == "completed"
        assert query(
            settings.database_url, "SELECT attempts FROM responses WHERE id = :i", i=created.id
        ) == [(1,)]
        assert len(fake_upstream.requests(model)) == 2

    def test_a_job_given_back_mid_stream_replays_whole_from_redis(
        self, private_queue: Callable[[], Settings], fake_upstream: FakeUpstream, model: str
    ) -> None:
        """A job given back at shutdown is attempt 1 again when it re-runs: its events in the
        Redis stream must number on after what the first run logged (Redis refuses an entry id
        it already has), so that a replay from the start is whole (issue 14, point 2)."""
        settings = private_queue().model_copy(update={"worker_drain_seconds": 0.2})
        reply = "one two three four five six seven eight"
        fake_upstream.script(model, reply=reply, chunks=8, chunk_delay=0.3)
        first = Worker(settings).start()
        with running_server(settings) as srv, sdk(srv.url) as client:
            created = streamed_background(client, model=model, input="go")
            with client.responses.retrieve(created.id, stream=True) as stream:
                for event in stream:
                    if event.type == "response.output_text.delta":
                        break  # some of the answer is logged: now stop the worker
            first.terminate()
            second = Worker(settings).start()
            try:
                done = poll_status(client, created.id, timeout=30)
                with client.responses.retrieve(created.id, stream=True) as stream:
                    events = list(stream)
            finally:
                second.stop()
                first.stop()
        assert (done.status, done.output_text) == ("completed", reply)
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert events[-1].type == "response.completed"
        rerun = events[[e.type for e in events].index("response.in_progress", 3) :]
        assert "".join(e.delta for e in rerun if e.type == "response.output_text.delta") == reply

    def test_a_worker_told_to_stop_finishes_a_short_job_first(
        self, private_queue: Callable[[], Settings], fake_upstream: FakeUpstream, model: str
    ) -> None:
        settings = private_queue().model_copy(update={"worker_drain_seconds": 10.0})
        fake_upstream.script(model, delay=1.0)
        worker = Worker(settings).start()
        try:
            with running_server(settings) as srv, sdk(srv.url) as client:
                created = client.responses.create(model=model, input="finish", background=True)
                poll_status(client, created.id, until=("in_progress",))
                worker.terminate()
                assert client.responses.retrieve(created.id).status == "completed"
        finally:
            worker.stop()
        assert len(fake_upstream.requests(model)) == 1


class TestStreaming:
    """Background streams whose events a Celery worker logs in Redis."""

    def test_stream_resumed_from_another_api_process(
        self,
        bg_client: openai.OpenAI,
        celery_settings: Settings,
        fake_upstream: FakeUpstream,
        model: str,
    ) -> None:
        fake_upstream.script(model, reply="word " * 30, chunk_delay=0.02)
        with bg_client.responses.create(
            model=model, input="x", background=True, stream=True
        ) as stream:
            seen = [next(stream) for _ in range(6)]
        response_id = seen[0].response.id
        with (
            running_server(celery_settings) as other,
            sdk(other.url) as client,
            client.responses.retrieve(response_id, stream=True, starting_after=5) as stream,
        ):
            rest = list(stream)
        everything = seen + rest
        assert [e.sequence_number for e in everything] == list(range(len(everything)))
        assert everything[-1].type == "response.completed"
        text = "".join(e.delta for e in everything if e.type == "response.output_text.delta")
        assert text == "word " * 30

    def test_an_expired_redis_log_is_rebuilt(
        self, bg_client: openai.OpenAI, celery_settings: Settings, model: str
    ) -> None:
        created = streamed_background(bg_client, model=model, input="old")
        poll_status(bg_client, created.id)
        redis = Redis.from_url(str(celery_settings.redis_url))
        try:
            assert redis.delete(f"tether:events:{created.id}") == 1
        finally:
            redis.close()
        with bg_client.responses.retrieve(created.id, stream=True) as stream:
            events = list(stream)
        assert events[-1].type == "response.completed"
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
            "reply to: old"
        )

    def test_the_log_expires(
        self, bg_client: openai.OpenAI, celery_settings: Settings, model: str
    ) -> None:
        created = streamed_background(bg_client, model=model, input="x")
        poll_status(bg_client, created.id)
        redis = Redis.from_url(str(celery_settings.redis_url))
        try:
            ttl = redis.ttl(f"tether:events:{created.id}")
        finally:
            redis.close()
        assert 0 < ttl <= celery_settings.stream_retention_seconds
