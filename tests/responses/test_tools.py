"""Function tools: the model's calls come back as function_call items; the application's
results go back as function_call_output items, and the upstream sees one coherent chat."""

from typing import Any

import openai

from tests.fakes.upstream import FakeUpstream

WEATHER: list[Any] = [
    {
        "type": "function",
        "name": "weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
CALL = {"name": "weather", "arguments": '{"city": "Oslo"}'}


def _called(client: openai.OpenAI, fake: FakeUpstream, model: str, **kwargs: Any) -> Any:
    fake.script(model, tool_calls=[CALL])
    response = client.responses.create(
        model=model, input="Weather in Oslo?", tools=WEATHER, **kwargs
    )
    fake.script(model, reply="It is sunny in Oslo.")
    return response


class TestFunctionCalls:
    def test_the_model_calls_a_function(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        response = _called(client, fake_upstream, model)
        (call,) = response.output
        assert call.type == "function_call"
        assert (call.name, call.arguments, call.status) == (
            "weather",
            CALL["arguments"],
            "completed",
        )
        assert call.id.startswith("fc_")  # type: ignore[union-attr]
        assert call.call_id
        sent = fake_upstream.requests(model)[0]
        assert sent["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "Weather in a city",
                    "parameters": WEATHER[0]["parameters"],
                    "strict": True,
                },
            }
        ]
        assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("auto", True)
        assert response.tools[0].name == "weather"  # type: ignore[union-attr]

    def test_continued_by_previous_response_id(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        first = _called(client, fake_upstream, model)
        call = first.output[0]
        answer = client.responses.create(
            model=model,
            previous_response_id=first.id,
            tools=WEATHER,
            input=[
                {
                    "type": "function_call_output",
                    "call_id": call.call_id,  # type: ignore[union-attr]
                    "output": '{"sky": "clear"}',
                }
            ],
        )
        assert answer.output_text == "It is sunny in Oslo."
        assert fake_upstream.requests(model)[-1]["messages"] == [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.call_id,
                        "type": "function",  # type: ignore[union-attr]
                        "function": CALL,
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": call.call_id,  # type: ignore[union-attr]
                "content": '{"sky": "clear"}',
            },
        ]

    def test_continued_with_the_full_input(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        first = _called(client, fake_upstream, model, store=False)
        call = first.output[0].model_dump(exclude_none=True)
        client.responses.create(
            model=model,
            tools=WEATHER,
            input=[
                {"role": "user", "content": "Weather in Oslo?"},
                call,  # the item exactly as received, as agent loops send it back
                {"type": "function_call_output", "call_id": call["call_id"], "output": "clear"},
            ],
        )
        sent = fake_upstream.requests(model)[-1]["messages"]
        assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"] == call["call_id"]

    def test_tool_choice_is_forwarded(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        client.responses.create(
            model=model, input="x", tools=WEATHER, tool_choice="required", parallel_tool_calls=False
        )
        client.responses.create(
            model=model,
            input="x",
            tools=WEATHER,
            tool_choice={"type": "function", "name": "weather"},
        )
        first, named = fake_upstream.requests(model)
        assert (first["tool_choice"], first["parallel_tool_calls"]) == ("required", False)
        assert named["tool_choice"] == {"type": "function", "function": {"name": "weather"}}

    def test_streamed_calls(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, tool_calls=[CALL])
        with client.responses.create(model=model, input="x", tools=WEATHER, stream=True) as stream:
            events = list(stream)
        kinds = [e.type for e in events]
        assert "response.output_item.added" in kinds
        assert "response.function_call_arguments.delta" in kinds
        assert "response.output_text.delta" not in kinds
        done = next(e for e in events if e.type == "response.function_call_arguments.done")
        assert done.arguments == CALL["arguments"]
        deltas = "".join(
            e.delta for e in events if e.type == "response.function_call_arguments.delta"
        )
        assert deltas == CALL["arguments"]
        assert [e.sequence_number for e in events] == list(range(len(events)))
        final = events[-1].response
        assert [i.type for i in final.output] == ["function_call"]
        stored = client.responses.retrieve(final.id)
        assert stored.output[0].arguments == CALL["arguments"]  # type: ignore[union-attr]
        assert stored.output[0].id == done.item_id
