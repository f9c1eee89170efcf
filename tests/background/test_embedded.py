"""Embedded mode (no REDIS_URL): the API process runs background jobs itself, with real cancel,
and jobs accepted before a restart finish after it."""

import openai
import pytest

from app.config import Settings
from tests.background.conftest import JOB_SETTINGS
from tests.conftest import sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import (
    migrated_database,
    poll_status,
    query,
    running_server,
    streamed_background,
    wait_until,
)


def test_background_runs_to_completion(client: openai.OpenAI, model: str) -> None:
    created = client.responses.create(model=model, input="embedded", background=True)
    assert created.status == "queued"
    finished = poll_status(client, created.id)
    assert (finished.status, finished.output_text) == ("completed", "reply to: embedded")


def test_a_job_created_without_stream_logs_nothing_and_replays_whole_at_its_end(
    client: openai.OpenAI, fake_upstream: FakeUpstream, settings: Settings, model: str
) -> None:
    """Only a background response created with stream=true can be streamed as it runs (as on
    OpenAI), so any other costs no event log: its model call is one answer, not a stream, and
    following it gives its whole stream, rebuilt from what was stored, once it has ended."""
    fake_upstream.script(model, reply="alpha beta gamma", delay=0.5)
    created = client.responses.create(model=model, input="quiet", background=True)
    with client.responses.retrieve(created.id, stream=True) as stream:
        events = list(stream)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert (events[0].type, events[-1].type) == ("response.created", "response.completed")
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "alpha beta gamma"
    assert not fake_upstream.requests(model)[0].get("stream")
    logged = query(
        settings.database_url,
        "SELECT count(*) FROM response_events WHERE response_id = :id",
        id=created.id,
    )
    assert logged == [(0,)]


def test_a_job_created_with_stream_is_logged_as_it_runs(
    client: openai.OpenAI, fake_upstream: FakeUpstream, settings: Settings, model: str
) -> None:
    fake_upstream.script(model, reply="one two three", chunks=3, chunk_delay=0.2)
    created = streamed_background(client, model=model, input="loud")
    with client.responses.retrieve(created.id, stream=True, starting_after=0) as stream:
        events = list(stream)
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
    assert fake_upstream.requests(model)[0]["stream"] is True
    logged = query(
        settings.database_url,
        "SELECT count(*) FROM response_events WHERE response_id = :id",
        id=created.id,
    )
    assert logged == [(len(events) + 1,)]


def test_cancel_stops_the_model_call(
    client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
) -> None:
    fake_upstream.script(model, delay=30.0)
    created = client.responses.create(model=model, input="long", background=True)
    poll_status(client, created.id, until=("in_progress",))
    assert client.responses.cancel(created.id).status == "cancelled"
    wait_until(
        lambda: fake_upstream.abandoned(model) == 1,
        timeout=5,
        what="the upstream request to be closed",
    )
    assert client.responses.retrieve(created.id).status == "cancelled"


def test_a_job_accepted_before_a_restart_finishes_after_it(
    settings: Settings,
    fake_upstream: FakeUpstream,
    model: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    fake_upstream.script(model, delay=1.5)
    with migrated_database("sqlite", str(tmp_path_factory.mktemp("restart"))) as url:
        own = settings.model_copy(update={"database_url": url, **JOB_SETTINGS})
        with running_server(own) as first, sdk(first.url) as client:
            created = client.responses.create(model=model, input="survive", background=True)
            poll_status(client, created.id, until=("in_progress",))
        # The first process is gone mid-job; a new one on the same database takes over.
        with running_server(own) as second, sdk(second.url) as client:
            done = poll_status(client, created.id, timeout=30)
    assert (done.status, done.output_text) == ("completed", "reply to: survive")


def test_a_job_released_mid_stream_streams_its_rerun_whole(
    settings: Settings,
    fake_upstream: FakeUpstream,
    model: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Shutdown gives a running job back (its attempt not counted), so its re-run is attempt 1
    again: its events must number on after what the first run logged, not collide with it."""
    fake_upstream.script(model, reply="one two three four five six", chunks=6, chunk_delay=0.15)
    with migrated_database("sqlite", str(tmp_path_factory.mktemp("release"))) as url:
        own = settings.model_copy(update={"database_url": url, **JOB_SETTINGS})
        with running_server(own) as first, sdk(first.url) as client:
            created = streamed_background(client, model=model, input="go")
            with client.responses.retrieve(created.id, stream=True) as stream:
                for event in stream:
                    if event.type == "response.output_text.delta":
                        break  # the first run has logged some of its answer: now stop it
        with running_server(own) as second, sdk(second.url) as client:
            done = poll_status(client, created.id, timeout=30)
            assert done.status == "completed"
            with client.responses.retrieve(created.id, stream=True) as stream:
                events = list(stream)
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(len(events)))
    assert events[-1].type == "response.completed"
    # The re-run streamed its whole answer after whatever the first run had logged.
    rerun = events[[e.type for e in events].index("response.in_progress", 3) :]
    text = "".join(e.delta for e in rerun if e.type == "response.output_text.delta")
    assert text == "one two three four five six"
