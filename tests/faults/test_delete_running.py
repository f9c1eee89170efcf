"""Deleting a background response that is running stops its model call, as a cancel does
(issue 14, point 6): its worker asks which of its jobs are still its own, and a deleted one is
not. Before, the call ran on to its end (or its timeout) and only its result was dropped."""

import openai
import pytest

from tests.conftest import StartServer, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import poll_status, wait_until


def test_deleting_a_running_job_stops_its_model_call(
    start_server: StartServer, fake_upstream: FakeUpstream, model: str
) -> None:
    # A model call that would outlast the test: only stopping it ends it in time.
    fake_upstream.script(model, delay=120)
    with start_server(upstream_timeout=300.0) as server, sdk(server.url) as client:
        made = client.responses.create(model=model, input="a long job", background=True)
        poll_status(client, made.id, until=("in_progress",))
        wait_until(lambda: bool(fake_upstream.requests(model)), what="the model to have it")

        client.responses.delete(made.id)

        # The fake counts a request whose client hung up while it was still waiting to answer.
        wait_until(lambda: fake_upstream.abandoned(model) == 1, timeout=10, what="call closed")
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(made.id)
        assert len(fake_upstream.requests(model)) == 1
