"""Structured output, token counting, truncation: what agent frameworks lean on."""

import openai
import pydantic
import pytest

from tests.conftest import StartServer, sdk
from tests.fakes.upstream import FakeUpstream


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def test_responses_parse_with_a_pydantic_model(
    client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
) -> None:
    fake_upstream.script(model, reply='{"city": "Oslo", "celsius": 7}')
    parsed = client.responses.parse(model=model, input="Weather?", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Oslo", celsius=7)
    sent = fake_upstream.requests(model)[0]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "Weather"
    assert sent["json_schema"]["strict"] is True


def test_json_object_format(client: openai.OpenAI, fake_upstream: FakeUpstream, model: str) -> None:
    client.responses.create(model=model, input="x", text={"format": {"type": "json_object"}})
    assert fake_upstream.requests(model)[0]["response_format"] == {"type": "json_object"}


def test_input_tokens_count(client: openai.OpenAI, model: str) -> None:
    short = client.responses.input_tokens.count(model=model, input="hi")
    first = client.responses.create(model=model, input="a question of some length")
    longer = client.responses.input_tokens.count(
        model=model, input="hi", previous_response_id=first.id
    )
    assert short.object == "response.input_tokens"
    assert 0 < short.input_tokens < longer.input_tokens


class TestTruncation:
    def _chain(self, client: openai.OpenAI, model: str, turns: int) -> str:
        previous = None
        for n in range(turns):
            previous = client.responses.create(
                model=model, input=f"turn {n} " + "words " * 20, previous_response_id=previous
            ).id
        assert previous is not None
        return previous

    def test_auto_drops_the_oldest_turns_to_fit(
        self, start_server: StartServer, fake_upstream: FakeUpstream, model: str
    ) -> None:
        with start_server(context_window_tokens=200) as srv, sdk(srv.url) as client:
            last = self._chain(client, model, 6)
            client.responses.create(
                model=model, input="now", previous_response_id=last, truncation="auto"
            )
        sent = fake_upstream.requests(model)[-1]["messages"]
        assert sent[-1] == {"role": "user", "content": "now"}
        assert sent[0]["role"] == "user"
        assert sent[0]["content"].startswith("turn ")
        assert sent[0]["content"] != "turn 0 " + "words " * 20  # the oldest went
        assert len(sent) < 13

    def test_disabled_fails_with_the_context_length_error(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(
            model,
            status=400,
            error_message=(
                "This model's maximum context length is 8192 tokens. However, you requested 9000."
            ),
        )
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(model=model, input="x")
        assert err.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
