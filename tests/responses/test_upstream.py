"""When the model server fails, is slow, or is not configured at all."""

import openai
import pytest
from openai.types.responses import Response

from tests.conftest import StartServer, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import free_port


def _stored_failure(client: openai.OpenAI, err: openai.APIStatusError) -> Response:
    response_id = err.response.headers["x-tether-response-id"]
    stored = client.responses.retrieve(response_id)
    assert stored.status == "failed"
    assert stored.output == []
    return stored


class TestUpstreamFailures:
    def test_upstream_4xx_is_a_400_carrying_its_message(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, status=400, error_message="context too long for this model")
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(model=model, input="x")
        assert err.value.body["message"] == "context too long for this model"  # type: ignore[index]
        assert err.value.body["type"] == "invalid_request_error"  # type: ignore[index]
        stored = _stored_failure(client, err.value)
        assert stored.error is not None
        assert stored.error.message == "context too long for this model"

    def test_upstream_5xx_is_a_502_server_error(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, status=503, error_message="overloaded")
        with pytest.raises(openai.InternalServerError) as err:
            client.responses.create(model=model, input="x")
        assert err.value.status_code == 502
        assert err.value.body == {
            "message": "overloaded",
            "type": "server_error",  # type: ignore[comparison-overlap]
            "param": None,
            "code": "upstream_error",
        }
        stored = _stored_failure(client, err.value)
        assert stored.error is not None
        assert (stored.error.code, stored.error.message) == ("server_error", "overloaded")

    def test_upstream_rate_limit_is_a_429(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, status=429, error_message="slow down")
        with pytest.raises(openai.RateLimitError) as err:
            client.responses.create(model=model, input="x")
        assert _stored_failure(client, err.value).error.code == "rate_limit_exceeded"  # type: ignore[union-attr]

    def test_slow_upstream_past_the_timeout_is_a_502(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, delay=5.0)  # the test server's timeout is 2 s
        with pytest.raises(openai.InternalServerError) as err:
            client.responses.create(model=model, input="x")
        assert err.value.status_code == 502
        assert err.value.response.headers["x-should-retry"] == "false"
        assert "did not answer in time" in err.value.body["message"]  # type: ignore[index]
        _stored_failure(client, err.value)

    def test_unreachable_upstream_is_a_502(self, start_server: StartServer, model: str) -> None:
        dead = f"http://127.0.0.1:{free_port()}/v1"
        with start_server(upstream_base_url=dead) as srv, sdk(srv.url) as client:
            with pytest.raises(openai.InternalServerError) as err:
                client.responses.create(model=model, input="x")
            assert err.value.status_code == 502
            assert err.value.body["type"] == "server_error"  # type: ignore[index]
            assert "Could not reach the model server" in err.value.body["message"]  # type: ignore[index]
            _stored_failure(client, err.value)

    def test_unstored_failure_stores_nothing(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, status=500)
        with pytest.raises(openai.InternalServerError) as err:
            client.responses.create(model=model, input="x", store=False)
        assert "x-tether-response-id" not in err.value.response.headers

    def test_models_are_the_upstreams(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model)
        ids = [m.id for m in client.models.list()]
        assert "fake-model" in ids
        assert model in ids
        assert client.models.retrieve(model).id == model


class TestEchoModel:
    """No upstream configured: the built-in echo model answers, offline."""

    def test_echo_answers_and_threads(self, start_server: StartServer) -> None:
        with start_server(upstream_base_url=None) as srv, sdk(srv.url) as client:
            assert [m.id for m in client.models.list()] == ["echo"]
            first = client.responses.create(model="echo", input="hello there")
            assert first.output_text == "hello there"
            assert first.usage is not None
            assert first.usage.input_tokens > 0
            second = client.responses.create(
                model="echo", input="again", previous_response_id=first.id
            )
            assert second.output_text == "again"
            assert second.usage is not None
            assert second.usage.input_tokens > first.usage.input_tokens

    def test_echo_respects_max_output_tokens(self, start_server: StartServer) -> None:
        with start_server(upstream_base_url=None) as srv, sdk(srv.url) as client:
            created = client.responses.create(
                model="echo", input="word " * 100, max_output_tokens=16
            )
            assert created.status == "incomplete"
            assert len(created.output_text) == 64

    def test_other_models_are_a_clear_400(self, start_server: StartServer) -> None:
        with start_server(upstream_base_url=None) as srv, sdk(srv.url) as client:
            with pytest.raises(openai.BadRequestError) as err:
                client.responses.create(model="gpt-4o", input="x")
            assert err.value.body["param"] == "model"  # type: ignore[index]
            assert err.value.body["code"] == "model_not_found"  # type: ignore[index]
