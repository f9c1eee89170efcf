"""Two model servers behind one catalog model: load spread by weight, failover before the
first token (never after), the circuit that skips a failing deployment and the probe that brings
it back, and the deployment that answered named in `x-tether-deployment`."""

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import poll_status, wait_until
from tests.ops.harness import scrape, value
from tests.routing.conftest import StartRouted, deployment

HEADER = "x-tether-deployment"


def answered_by(client: openai.OpenAI, model: str, **fields: object) -> str:
    raw = client.responses.with_raw_response.create(model=model, input="hi", **fields)  # type: ignore[arg-type]
    assert raw.parse().status == "completed"
    return raw.headers[HEADER]


def circuit(url: str, name: str, label: str) -> float:
    return value(scrape(url, None), "tether_upstream_circuit_open", model=name, deployment=label)


@pytest.fixture
def fake_a() -> Iterator[FakeUpstream]:
    """A model server of this test's own, which it may kill."""
    fake = FakeUpstream()
    fake.start()
    yield fake
    fake.stop()


class TestSpread:
    def test_an_idle_model_is_spread_by_weight(
        self,
        start_routed: StartRouted,
        fake_upstream: FakeUpstream,
        fake_b: FakeUpstream,
        name: str,
        model: str,
    ) -> None:
        spec = [
            deployment(fake_upstream, f"{model}-a", name="a", weight=2),
            deployment(fake_b, f"{model}-b", name="b"),
        ]
        with start_routed({name: spec}) as server:
            client = sdk(server.url)
            labels = [answered_by(client, name) for _ in range(6)]
            # Smooth weighted round robin: interleaved, in the weights' proportion.
            assert labels == ["a", "b", "a", "a", "b", "a"]
            created = client.responses.with_raw_response.create(model=name, input="7th")
            assert created.headers[HEADER] == "a"
            stored = client.responses.with_raw_response.retrieve(created.parse().id)
            assert stored.headers[HEADER] == "a"
            assert "x-tether-deployment" not in stored.parse().model_dump()  # not OpenAI's
        assert len(fake_upstream.requests(f"{model}-a")) == 5
        assert len(fake_b.requests(f"{model}-b")) == 2


class TestFailover:
    def test_a_failing_deployment_is_tried_again_elsewhere_then_skipped(
        self,
        start_routed: StartRouted,
        fake_upstream: FakeUpstream,
        fake_b: FakeUpstream,
        name: str,
        model: str,
    ) -> None:
        fake_upstream.script(f"{model}-a", status=500)
        spec = [
            deployment(fake_upstream, f"{model}-a", name="a"),
            deployment(fake_b, f"{model}-b", name="b"),
        ]
        settings = {"circuit_failures": 2, "circuit_open_seconds": 600, "metrics_public": True}
        with start_routed({name: spec}, **settings) as server:
            client = sdk(server.url)
            assert [answered_by(client, name) for _ in range(6)] == ["b"] * 6
            assert circuit(server.url, name, "a") == 1
            # Streamed, chat, and background turns fail over the same way.
            with client.responses.create(model=name, input="s", stream=True) as stream:
                assert list(stream)[-1].type == "response.completed"
            chat = client.chat.completions.with_raw_response.create(
                model=name, messages=[{"role": "user", "content": "c"}]
            )
            assert chat.headers[HEADER] == "b"
            job = client.responses.create(model=name, input="j", background=True)
            assert poll_status(client, job.id).status == "completed"
            assert client.responses.with_raw_response.retrieve(job.id).headers[HEADER] == "b"
        # Two failures opened its circuit: nothing more was sent to it.
        assert len(fake_upstream.requests(f"{model}-a")) == 2

    def test_when_every_deployment_fails_the_last_one_is_named(
        self,
        start_routed: StartRouted,
        fake_upstream: FakeUpstream,
        fake_b: FakeUpstream,
        name: str,
        model: str,
    ) -> None:
        fake_upstream.script(f"{model}-a", status=500, error_message="a is down")
        fake_b.script(f"{model}-b", status=503, error_message="b is down")
        spec = [
            deployment(fake_upstream, f"{model}-a", name="a"),
            deployment(fake_b, f"{model}-b", name="b"),
        ]
        with start_routed({name: spec}, circuit_failures=1, circuit_open_seconds=600) as server:
            client = sdk(server.url)
            with pytest.raises(openai.InternalServerError) as err:
                client.responses.create(model=name, input="x")
            assert err.value.status_code == 502
            assert err.value.response.headers[HEADER] == "b"
            assert err.value.body["message"] == "b is down"  # type: ignore[index]
            with pytest.raises(openai.InternalServerError) as err:
                client.responses.create(model=name, input="x")
            assert "No deployment of the model" in err.value.body["message"]  # type: ignore[index]
        assert len(fake_upstream.requests(f"{model}-a")) == 1

    def test_a_killed_deployment_is_skipped_then_probed_back(
        self,
        start_routed: StartRouted,
        fake_a: FakeUpstream,
        fake_b: FakeUpstream,
        name: str,
        model: str,
    ) -> None:
        spec = [
            deployment(fake_a, f"{model}-a", name="a"),
            deployment(fake_b, f"{model}-b", name="b"),
        ]
        settings = {"circuit_failures": 1, "circuit_open_seconds": 0.5, "metrics_public": True}
        with start_routed({name: spec}, **settings) as server:
            client = sdk(server.url)
            assert [answered_by(client, name) for _ in range(2)] == ["a", "b"]
            port = int(fake_a.url.rsplit(":", 1)[1])
            fake_a.stop()
            # Refused: answered by b, and a's circuit opens.
            assert [answered_by(client, name) for _ in range(3)] == ["b"] * 3
            assert circuit(server.url, name, "a") == 1
            fake_a.start(port=port)
            # Once its circuit half-opens, the next call probes it, and it answers again.
            wait_until(lambda: answered_by(client, name) == "a", what="a to be probed back")
            assert circuit(server.url, name, "a") == 0
        assert fake_a.requests(f"{model}-a")


class TestStreams:
    def test_a_stream_whose_deployment_dies_after_its_first_token_fails(
        self,
        start_routed: StartRouted,
        fake_upstream: FakeUpstream,
        fake_b: FakeUpstream,
        name: str,
        model: str,
    ) -> None:
        fake_upstream.script(
            f"{model}-a", reply="one two three four", chunks=4, drop_after_chunks=1
        )
        spec = [
            deployment(fake_upstream, f"{model}-a", name="a"),
            deployment(fake_b, f"{model}-b", name="b"),
        ]
        with start_routed({name: spec}) as server:  # a fresh server tries `a` first
            client = sdk(server.url)
            with client.responses.create(model=name, input="x", stream=True) as stream:
                events = list(stream)
            deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
            assert deltas == ["one "]
            assert events[-1].type == "response.failed"
            response_id = events[0].response.id  # type: ignore[union-attr]
            stored = client.responses.with_raw_response.retrieve(response_id)
            assert stored.parse().status == "failed"
            assert stored.headers[HEADER] == "a"
        assert fake_b.requests(f"{model}-b") == []  # no retry once a token was out

    def test_a_chat_stream_names_its_deployment_once_it_started(
        self,
        start_routed: StartRouted,
        fake_upstream: FakeUpstream,
        fake_b: FakeUpstream,
        name: str,
        model: str,
    ) -> None:
        fake_upstream.script(f"{model}-a", status=502)
        spec = [
            deployment(fake_upstream, f"{model}-a", name="a"),
            deployment(fake_b, f"{model}-b", name="b"),
        ]
        with start_routed({name: spec}) as server:
            body = {"model": name, "stream": True, "messages": [{"role": "user", "content": "x"}]}
            with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as answer:
                assert answer.status_code == 200
                assert answer.headers[HEADER] == "b"
                text = answer.read().decode()
        assert '"finish_reason":"stop"' in text
        assert text.endswith("data: [DONE]\n\n")
