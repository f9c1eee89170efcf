"""The official OpenAI Agents SDK runs a tool-using agent against Tether, unchanged."""

import asyncio
from typing import Any

import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread

set_tracing_disabled(True)  # its tracer would export to OpenAI's servers

ANSWER = "It is sunny in Oslo."


def run_agent(server: ServerThread, model: str, **run_kwargs: Any) -> tuple[Any, list[str]]:
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"sunny in {city}"

    async def main() -> Any:
        client = AsyncOpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)
        try:
            agent = Agent(
                name="weather",
                instructions="Answer with the weather tool.",
                tools=[get_weather],
                model=OpenAIResponsesModel(model=model, openai_client=client),
            )
            if run_kwargs.pop("conversation", False):
                conversation = await client.conversations.create()
                run_kwargs["conversation_id"] = conversation.id
            return await Runner.run(agent, "Weather in Oslo?", **run_kwargs)
        finally:
            await client.close()

    return asyncio.run(main()), asked


@pytest.mark.parametrize(
    "state",
    [
        pytest.param({}, id="client-side history"),
        pytest.param({"auto_previous_response_id": True}, id="previous_response_id"),
        pytest.param({"conversation": True}, id="conversation"),
    ],
)
def test_a_tool_using_agent(
    server: ServerThread, fake_upstream: FakeUpstream, model: str, state: dict[str, Any]
) -> None:
    fake_upstream.script(
        model,
        tool_calls=[{"name": "get_weather", "arguments": '{"city": "Oslo"}'}],
        tool_calls_times=1,
        reply=ANSWER,
    )
    result, asked = run_agent(server, model, **state)
    assert asked == ["Oslo"]  # the tool really ran
    assert result.final_output == ANSWER
    first, second = fake_upstream.requests(model)
    assert first["tools"][0]["function"]["name"] == "get_weather"
    # The model's second call saw its own call and the tool's result, matched by id.
    call, result_message = second["messages"][-2:]
    assert call["tool_calls"][0]["function"]["name"] == "get_weather"
    assert result_message == {
        "role": "tool",
        "tool_call_id": call["tool_calls"][0]["id"],
        "content": "sunny in Oslo",
    }
