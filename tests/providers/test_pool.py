"""The upstream connection pool: streams that hold their connections (a model still generating,
a client that stopped reading) never make an unrelated call wait for one, and a connection that
cannot be made in time says so, and says why, in the answer and in the log."""

import logging
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import openai
import pytest

from tests.conftest import StartServer, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import poll_status, wait_until

POOL = 4  # UPSTREAM_MAX_CONNECTIONS of the servers here
# Short, so that code which counted the wait for a pooled connection against it fails fast.
CONNECT_TIMEOUT = 0.5
# Each held stream's model sends a word every CHUNK_DELAY, 500 of them: still generating long
# after the test has finished, so its upstream connection stays taken until the test hangs up.
CHUNK_DELAY = 0.2
LONG_REPLY = "word " * 500


def hold_stream(client: openai.OpenAI, held: ExitStack, model: str) -> None:
    """A stream whose upstream connection is taken (its first word arrived), left unread."""
    stream = held.enter_context(client.responses.create(model=model, input="x", stream=True))
    for event in stream:
        if event.type == "response.output_text.delta":
            return
    raise AssertionError("the held stream ended before its first word")


class TestHeldStreams:
    @pytest.mark.parametrize("held_count", [POOL, 2 * POOL])
    def test_a_create_succeeds_while_streams_hold_the_pools_worth_of_connections(
        self, start_server: StartServer, fake_upstream: FakeUpstream, model: str, held_count: int
    ) -> None:
        slow = f"{model}-slow"
        fake_upstream.script(slow, reply=LONG_REPLY, chunk_delay=CHUNK_DELAY)
        fake_upstream.script(model, reply="still answered")
        with (
            start_server(
                upstream_max_connections=POOL,
                upstream_connect_timeout=CONNECT_TIMEOUT,
                upstream_timeout=60.0,
            ) as srv,
            sdk(srv.url) as client,
            ExitStack() as held,
        ):
            for _ in range(held_count):
                hold_stream(client, held, slow)
            # Every held stream is still open here (its model has minutes of words to go), so
            # neither call below can have had a connection one of them gave back.
            response = client.responses.create(model=model, input="unrelated")
            assert response.output_text == "still answered"
            completion = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "unrelated too"}]
            )
            assert completion.choices[0].message.content == "still answered"

    def test_calls_past_the_pool_get_connections_of_their_own(
        self, start_server: StartServer, fake_upstream: FakeUpstream, model: str
    ) -> None:
        """Past the pool a call's connection closes after it (`Connection: close`); once the
        burst is over, calls are on kept-alive connections again."""
        slow = f"{model}-slow"
        fake_upstream.script(slow, reply=LONG_REPLY, chunk_delay=CHUNK_DELAY)
        fake_upstream.script(model, reply="after the burst")
        with (
            start_server(upstream_max_connections=POOL, upstream_timeout=60.0) as srv,
            sdk(srv.url) as client,
        ):
            with ExitStack() as held:
                for _ in range(2 * POOL):
                    hold_stream(client, held, slow)
                closing = [h.get("connection") for h in fake_upstream.request_headers(slow)]
                assert closing == [None] * POOL + ["close"] * POOL

            def kept_alive() -> bool:
                response = client.responses.create(model=model, input="again")
                assert response.output_text == "after the burst"
                return fake_upstream.request_headers(model)[-1].get("connection") != "close"

            # The held streams' connections are given back as their server side notices the
            # hang-up; from then on every call is pooled again.
            wait_until(kept_alive, what="a call on a kept-alive connection")
            for _ in range(2 * POOL):
                assert kept_alive()


class TestBackgroundJobs:
    def test_more_jobs_in_flight_than_the_pool_all_complete(
        self, start_server: StartServer, fake_upstream: FakeUpstream, model: str
    ) -> None:
        """A worker runs many jobs at once (WORKER_CONCURRENCY): past the pool they are not
        failed for want of a pooled connection."""
        fake_upstream.script(model, reply="done", delay=2 * CONNECT_TIMEOUT)
        with (
            start_server(
                upstream_max_connections=POOL,
                upstream_connect_timeout=CONNECT_TIMEOUT,
                upstream_timeout=60.0,
                job_upstream_retries=0,  # a failed call fails its job: nothing hides it
            ) as srv,
            sdk(srv.url) as client,
        ):
            queued = [
                client.responses.create(model=model, input=f"job {n}", background=True)
                for n in range(3 * POOL)
            ]
            ended = [poll_status(client, r.id) for r in queued]
        assert [(r.status, r.output_text) for r in ended] == [("completed", "done")] * (3 * POOL)


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A port whose connects hang: a listener that never accepts, its backlog full, so the
    kernel drops further SYNs (Linux) and a TCP connect gets no answer at all."""
    with socket.socket() as listener, ExitStack() as fillers:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(8):  # more than a zero backlog admits
            filler = fillers.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(address)
        yield int(address[1])


class TestConnectTimeout:
    def test_a_connect_that_times_out_names_the_setting_and_is_logged(
        self, start_server: StartServer, model: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING)
        with (
            unanswered_port() as port,
            start_server(
                upstream_base_url=f"http://127.0.0.1:{port}/v1",
                upstream_connect_timeout=CONNECT_TIMEOUT,
                upstream_timeout=60.0,
            ) as srv,
            sdk(srv.url) as client,
        ):
            with pytest.raises(openai.InternalServerError) as err:
                client.responses.create(model=model, input="x")
        assert err.value.status_code == 502
        message = err.value.body["message"]  # type: ignore[index]
        assert "did not answer in time" not in message
        assert "UPSTREAM_CONNECT_TIMEOUT" in message
        # Not a call that ran out its whole timeout (those say "do not retry"): a retry may
        # well connect.
        assert err.value.response.headers.get("x-should-retry") != "false"
        logged = [r.getMessage() for r in caplog.records if r.name.startswith("app.providers")]
        assert any(model in line and "UPSTREAM_CONNECT_TIMEOUT" in line for line in logged)
