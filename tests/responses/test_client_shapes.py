"""Issue 10: every client's request shapes work; every parameter is honoured or refused.

Each request below is the shape a named client sends, written down from that client's own
source or the API reference (the path is named above each shape; the snapshots read were the
AI SDK `vercel/ai` HEAD ed857f50f1 and @ai-sdk/openai 2.0.118, `openai/openai-agents-python`
HEAD 7f7a44f8dc, `openai/openai-agents-js` HEAD 6d0c61a5f6, langchain-openai 1.7.4 and the
openai-python 3.57.0 generated types). The official SDK makes the call where it has it
(extra_body for what its types lack); raw HTTP is used where the SDK would hide the fault: a
JSON null or 0 it would parse alike, or an SSE field it drops.
"""

import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import ResponseRefusalDeltaEvent, ResponseRefusalDoneEvent

from tests.conftest import StartServer, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread, poll_status

PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
PDF = "data:application/pdf;base64,JVBERi0xLjQKJcfsj6IK"


def refused(call: Callable[[], object]) -> dict[str, Any]:
    """The OpenAI-shaped error body of a call that must be a 400."""
    with pytest.raises(openai.BadRequestError) as err:
        call()
    assert err.value.status_code == 400
    body = err.value.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error"
    assert body["message"]
    return body


def sse(server: ServerThread, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A streamed create over raw HTTP: its events' JSON, decoded as sent."""
    with httpx.stream("POST", f"{server.url}/v1/responses", json=body, timeout=15.0) as answer:
        answer.read()
    assert answer.status_code == 200, answer.text
    return [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: ")]


def estimated_tokens(messages: list[dict[str, Any]]) -> int:
    """The documented estimate (app/responses/tokens.py): 4 characters a token, plus 4 tokens
    a message; the messages here are plain strings without tool calls."""
    chars = sum(len(m["content"] or "") for m in messages)
    return math.ceil(chars / 4) + 4 * len(messages)


def chain(client: openai.OpenAI, model: str, turns: int) -> str:
    """A previous_response_id chain of `turns` long turns; the id of its last response."""
    last: str | None = None
    for n in range(turns):
        last = client.responses.create(
            model=model, input=f"turn {n} " + "words " * 20, previous_response_id=last
        ).id
    assert last is not None
    return last


# -- The Vercel AI SDK (@ai-sdk/openai), Responses model --------------------------------------


def ai_sdk_user(text: str) -> dict[str, Any]:
    # vercel/ai packages/openai/src/responses/convert-to-openai-responses-input.ts: a user text
    # part is sent as a message whose content is a list of input_text parts.
    return {"role": "user", "content": [{"type": "input_text", "text": text}]}


def item_reference(item_id: str) -> dict[str, Any]:
    # vercel/ai packages/openai/src/responses/convert-to-openai-responses-input.ts (~L561,
    # "item references reduce the payload size"; reasoning ~L1045): with `store` (its default,
    # `openaiOptions?.store ?? true`) and a known item id, earlier assistant text and reasoning
    # are re-sent as references, not in full.
    return {"type": "item_reference", "id": item_id}


# vercel/ai packages/openai/src/responses/openai-responses-prepare-tools.ts
# (prepareFunctionTool, L605): {type, name, description, parameters, strict?}.
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "getWeather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "getTime",
    "description": "Time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}
WEATHER_CALL = {"name": "getWeather", "arguments": '{"city":"SF"}'}


def upstream_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A Responses function tool as a chat-completions tool."""
    return {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}


class TestItemReferences:
    def test_ai_sdk_multi_turn_text_resolves_earlier_output(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        first = client.responses.create(model=model, input=[ai_sdk_user("Hi")])
        m1 = first.output[0].id
        second = client.responses.create(
            model=model, input=[ai_sdk_user("Hi"), item_reference(m1), ai_sdk_user("And then?")]
        )
        m2 = second.output[0].id
        # The third turn refers to an item held by two responses (first's output and second's
        # input) and to the second's output.
        third = client.responses.create(
            model=model,
            input=[
                ai_sdk_user("Hi"),
                item_reference(m1),
                ai_sdk_user("And then?"),
                item_reference(m2),
                ai_sdk_user("Last one"),
            ],
        )
        assert third.status == "completed"
        sent = fake_upstream.requests(model)
        assert sent[1]["messages"] == [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "reply to: Hi"},
            {"role": "user", "content": "And then?"},
        ]
        assert sent[2]["messages"] == [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "reply to: Hi"},
            {"role": "user", "content": "And then?"},
            {"role": "assistant", "content": "reply to: And then?"},
            {"role": "user", "content": "Last one"},
        ]
        # The stored input holds the items themselves, not the references.
        stored = list(client.responses.input_items.list(third.id, order="asc"))
        assert [item.type for item in stored] == ["message"] * 5
        assert (stored[1].id, stored[3].id) == (m1, m2)
        assert [getattr(item, "role", None) for item in stored] == [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
        ]
        assert stored[1].content[0].text == "reply to: Hi"  # type: ignore[union-attr]

    @pytest.mark.parametrize("ai_sdk", ["HEAD", "2.0.118"])
    def test_ai_sdk_tool_turn_resolves_reasoning_and_calls(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str, ai_sdk: str
    ) -> None:
        fake_upstream.script(
            model,
            tool_calls=[WEATHER_CALL],
            tool_calls_times=1,
            reasoning_content="The user wants the weather.",
            reply="18 degrees in SF.",
        )
        # The AI SDK's first request for a reasoning model with one tool (lm getArgs, L440).
        developer = {"role": "developer", "content": "You are a weather bot."}
        options: dict[str, Any] = {
            "reasoning": {"effort": "low", "summary": "detailed"},
            "tools": [WEATHER_TOOL],
            "tool_choice": "auto",
        }
        first = client.responses.create(
            model=model, input=[developer, ai_sdk_user("Weather in SF?")], **options
        )
        reasoning, call = first.output
        assert (reasoning.type, call.type) == ("reasoning", "function_call")
        call_id = call.call_id  # type: ignore[union-attr]
        if ai_sdk == "HEAD":
            # convert-to-openai-responses-input.ts at HEAD (commit 61bcdb5664, #15795): a
            # client-executed call is always sent in full, never as a reference.
            sent_call: dict[str, Any] = {
                "type": "function_call",
                "call_id": call_id,
                "name": "getWeather",
                "arguments": '{"city":"SF"}',
            }
        else:
            # @ai-sdk/openai@2.0.118, same file: with store and an id, a reference too.
            sent_call = item_reference(call.id)  # type: ignore[arg-type]
        # The doc's example second turn (section 1a): reasoning by reference, the call, its output.
        second = client.responses.create(
            model=model,
            input=[
                developer,
                ai_sdk_user("Weather in SF?"),
                item_reference(reasoning.id),
                sent_call,
                {"type": "function_call_output", "call_id": call_id, "output": '{"temp":18}'},
            ],
            **options,
        )
        assert second.output_text == "18 degrees in SF."
        tool_call = {"id": call_id, "type": "function", "function": WEATHER_CALL}
        # The reasoning item is resolved, and goes with the call it led to (issue 18: the model
        # is sent the history a stateless client's opened reasoning gives it).
        assert fake_upstream.requests(model)[-1]["messages"] == [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "Weather in SF?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [tool_call],
                "reasoning_content": "The user wants the weather.",
            },
            {"role": "tool", "tool_call_id": call_id, "content": '{"temp":18}'},
        ]
        stored = list(client.responses.input_items.list(second.id, order="asc"))
        assert [item.type for item in stored] == [
            "message",
            "message",
            "reasoning",
            "function_call",
            "function_call_output",
        ]
        assert stored[2].id == reasoning.id
        if ai_sdk == "2.0.118":
            assert stored[3].id == call.id

    def test_a_reference_to_an_earlier_responses_input_item(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        first = client.responses.create(model=model, input=[ai_sdk_user("Remember me")])
        (user_item,) = client.responses.input_items.list(first.id)
        client.responses.create(
            model=model, input=[item_reference(user_item.id), ai_sdk_user("Again")]
        )
        assert fake_upstream.requests(model)[-1]["messages"] == [
            {"role": "user", "content": "Remember me"},
            {"role": "user", "content": "Again"},
        ]

    def test_a_reference_to_a_conversation_item(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        conv = client.conversations.create(
            items=[{"type": "message", "role": "user", "content": "From the conversation"}]
        )
        (conv_item,) = client.conversations.items.list(conv.id)
        client.responses.create(
            model=model, input=[item_reference(conv_item.id), ai_sdk_user("Next")]
        )
        assert fake_upstream.requests(model)[-1]["messages"] == [
            {"role": "user", "content": "From the conversation"},
            {"role": "user", "content": "Next"},
        ]

    def test_a_background_turn_sends_the_resolved_item(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        first = client.responses.create(model=model, input=[ai_sdk_user("Hi")])
        created = client.responses.create(
            model=model,
            input=[ai_sdk_user("Hi"), item_reference(first.output[0].id), ai_sdk_user("More")],
            background=True,
        )
        assert poll_status(client, created.id).status == "completed"
        assert fake_upstream.requests(model)[-1]["messages"] == [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "reply to: Hi"},
            {"role": "user", "content": "More"},
        ]

    def test_an_unknown_id_is_a_400_naming_the_reference(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        error = refused(
            lambda: client.responses.create(
                model=model,
                input=[ai_sdk_user("Hi"), item_reference("msg_nothing_here"), ai_sdk_user("?")],
            )
        )
        assert error["param"] == "input[1].id"
        assert "msg_nothing_here" in error["message"]
        assert fake_upstream.requests(model) == []

    def test_an_item_of_a_deleted_response_is_not_found(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        first = client.responses.create(model=model, input=[ai_sdk_user("Hi")])
        client.responses.delete(first.id)
        error = refused(
            lambda: client.responses.create(
                model=model,
                input=[ai_sdk_user("Hi"), item_reference(first.output[0].id), ai_sdk_user("?")],
            )
        )
        assert error["param"] == "input[1].id"
        assert len(fake_upstream.requests(model)) == 1  # only the first turn

    def test_conversation_items_resolve_references(self, client: openai.OpenAI, model: str) -> None:
        answer = client.responses.create(model=model, input="Hi")
        message_id = answer.output[0].id
        conv = client.conversations.create()
        added = client.conversations.items.create(conv.id, items=[item_reference(message_id)])
        (item,) = added.data
        assert (item.type, item.id) == ("message", message_id)
        assert item.role == "assistant"  # type: ignore[union-attr]
        assert item.content[0].text == answer.output_text  # type: ignore[union-attr]
        listed = list(client.conversations.items.list(conv.id))
        assert [i.id for i in listed] == [message_id]

    def test_an_unknown_id_in_conversation_items_is_a_400(self, client: openai.OpenAI) -> None:
        conv = client.conversations.create()
        error = refused(
            lambda: client.conversations.items.create(
                conv.id,
                items=[
                    {"type": "message", "role": "user", "content": "x"},
                    item_reference("msg_nothing_here"),
                ],
            )
        )
        assert error["param"] == "items[1].id"
        assert list(client.conversations.items.list(conv.id)) == []  # nothing was added


# -- function_call_output as content parts ---------------------------------------------------


def called(client: openai.OpenAI, fake: FakeUpstream, model: str, calls: int = 1) -> Any:
    """A response in which the model called `getWeather` `calls` times."""
    fake.script(model, tool_calls=[WEATHER_CALL] * calls, tool_calls_times=1, reply="Done.")
    return client.responses.create(model=model, input="Weather?", tools=[WEATHER_TOOL])


def agents_python_output(call_id: str) -> dict[str, Any]:
    # openai/openai-agents-python src/agents/items.py (tool_call_output_item L852,
    # _convert_single_tool_output_pydantic_model L1010): a list of ToolOutputText,
    # ToolOutputImage and ToolOutputFileContent becomes these parts, each key only if set.
    return {
        "call_id": call_id,
        "output": [
            {"type": "input_text", "text": "Chart of SF:"},
            {"type": "input_image", "image_url": PNG, "detail": "low"},
            {"type": "input_file", "file_data": PDF, "filename": "sf.pdf"},
        ],
        "type": "function_call_output",
    }


def ai_sdk_content_output(call_id: str) -> dict[str, Any]:
    # vercel/ai packages/openai/src/responses/convert-to-openai-responses-input.ts
    # (convertFunctionToolResultOutput, L70; pushed ~L1497): a `content` tool result.
    return {
        "type": "function_call_output",
        "call_id": call_id,
        "output": [
            {"type": "input_text", "text": "chart:"},
            {"type": "input_image", "image_url": PNG, "detail": "high"},
        ],
    }


class TestToolOutputContentParts:
    def test_agents_python_parts_reach_the_model(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        first = called(client, fake_upstream, model)
        call_id = first.output[0].call_id
        answer = client.responses.create(
            model=model,
            previous_response_id=first.id,
            tools=[WEATHER_TOOL],
            input=[agents_python_output(call_id)],
        )
        assert answer.output_text == "Done."
        assert fake_upstream.requests(model)[-1]["messages"][2:] == [
            {"role": "tool", "tool_call_id": call_id, "content": "Chart of SF:"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"Returned by the tool call {call_id}:"},
                    {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                    {"type": "file", "file": {"file_data": PDF, "filename": "sf.pdf"}},
                ],
            },
        ]
        (stored,) = client.responses.input_items.list(answer.id)
        assert stored.type == "function_call_output"
        assert [p.type for p in stored.output] == [  # type: ignore[union-attr]
            "input_text",
            "input_image",
            "input_file",
        ]

    def test_parallel_calls_get_one_user_message_after_their_tool_messages(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        first = called(client, fake_upstream, model, calls=2)
        a, b = (item.call_id for item in first.output)
        client.responses.create(
            model=model,
            previous_response_id=first.id,
            tools=[WEATHER_TOOL],
            input=[ai_sdk_content_output(a), ai_sdk_content_output(b)],
        )
        image = {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}}
        assert fake_upstream.requests(model)[-1]["messages"][2:] == [
            {"role": "tool", "tool_call_id": a, "content": "chart:"},
            {"role": "tool", "tool_call_id": b, "content": "chart:"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"Returned by the tool call {a}:"},
                    image,
                    {"type": "text", "text": f"Returned by the tool call {b}:"},
                    image,
                ],
            },
        ]

    @pytest.mark.parametrize(
        ("part", "param"),
        [
            # openai/openai-agents-js packages/agents-openai/src/openaiResponsesModel.ts
            # (convertStructuredOutputToRequestItem, L1109): an http(s) file is a file_url;
            # the AI SDK sends a URL file result the same way (convertFunctionToolResultOutput).
            (
                {"type": "input_file", "file_url": "https://example.test/sf.pdf"},
                "input[0].output[1].file_url",
            ),
            # openai-agents-python src/agents/items.py: ToolOutputFileContent(file_id=...).
            ({"type": "input_file", "file_id": "file-abc123"}, "input[0].output[1].file_id"),
        ],
        ids=["file_url", "file_id"],
    )
    def test_a_file_by_reference_is_refused(
        self,
        client: openai.OpenAI,
        fake_upstream: FakeUpstream,
        model: str,
        part: dict[str, Any],
        param: str,
    ) -> None:
        first = called(client, fake_upstream, model)
        call_id = first.output[0].call_id
        output = {
            "type": "function_call_output",
            "call_id": call_id,
            "output": [{"type": "input_text", "text": "see file"}, part],
        }
        error = refused(
            lambda: client.responses.create(
                model=model, previous_response_id=first.id, tools=[WEATHER_TOOL], input=[output]
            )
        )
        assert (error["param"], error["code"]) == (param, "unsupported_value")
        assert len(fake_upstream.requests(model)) == 1


# -- tool_choice -------------------------------------------------------------------------------


class TestAllowedTools:
    @pytest.mark.parametrize("mode", ["auto", "required"])
    def test_ai_sdk_allowed_tools_offers_only_those(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str, mode: str
    ) -> None:
        # vercel/ai packages/openai/src/responses/openai-responses-prepare-tools.ts (commit
        # 29e6ac6f1f): providerOptions.openai.allowedTools = {toolNames, mode} gives
        # {type: 'allowed_tools', mode: allowedTools.mode ?? 'auto', tools: entries}.
        choice: Any = {
            "type": "allowed_tools",
            "mode": mode,
            "tools": [{"type": "function", "name": "getWeather"}],
        }
        response = client.responses.create(
            model=model, input="Weather?", tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice
        )
        (sent,) = fake_upstream.requests(model)
        assert sent["tools"] == [upstream_tool(WEATHER_TOOL)]
        assert sent["tool_choice"] == mode
        assert response.tool_choice.model_dump() == choice  # type: ignore[union-attr]
        assert [t.name for t in response.tools] == ["getWeather", "getTime"]  # type: ignore[union-attr]

    def test_a_name_not_among_the_tools_is_a_400(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        # The AI SDK sends unknown names as {type: 'function', name} (prepare-tools.ts).
        choice: Any = {
            "type": "allowed_tools",
            "mode": "auto",
            "tools": [{"type": "function", "name": "getStockPrice"}],
        }
        error = refused(
            lambda: client.responses.create(
                model=model, input="x", tools=[WEATHER_TOOL], tool_choice=choice
            )
        )
        assert error["param"] == "tool_choice.tools[0].name"
        assert fake_upstream.requests(model) == []

    def test_an_unknown_tool_choice_type_is_a_400(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        # vercel/ai openai-responses-prepare-tools.ts: a built-in tool's choice is {type}.
        error = refused(
            lambda: client.responses.create(
                model=model, input="x", tools=[WEATHER_TOOL], tool_choice={"type": "web_search"}
            )
        )
        assert error["param"] == "tool_choice.type"
        assert fake_upstream.requests(model) == []


# -- prompt_cache_retention, context_management, /responses/compact -------------------------


class TestPromptCacheRetention:
    @pytest.mark.parametrize(
        "retention",
        [
            # openai-agents-python ModelSettings.prompt_cache_retention: "in_memory" | "24h";
            # vercel/ai openai-responses-language-model-options.ts: 'in_memory' | '24h'.
            "in_memory",
            "24h",
            # openai-agents-js openaiResponsesModel.ts normalizePromptCacheRetention accepts
            # the reference's older spelling 'in-memory' from its users.
            "in-memory",
        ],
    )
    def test_forwarded_and_echoed(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str, retention: str
    ) -> None:
        response = client.responses.create(
            model=model, input="x", extra_body={"prompt_cache_retention": retention}
        )
        assert fake_upstream.requests(model)[0]["prompt_cache_retention"] == retention
        assert response.prompt_cache_retention == retention
        assert client.responses.retrieve(response.id).prompt_cache_retention == retention

    def test_unset_it_is_not_forwarded(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        response = client.responses.create(model=model, input="x")
        assert "prompt_cache_retention" not in fake_upstream.requests(model)[0]
        assert response.prompt_cache_retention is None  # present and null: TestResponseFields


class TestContextManagement:
    def test_agents_compaction_drops_the_oldest_turns_to_fit(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        last = chain(client, model, 6)
        client.responses.create(model=model, input="now", previous_response_id=last)
        full = fake_upstream.requests(model)[-1]["messages"]
        threshold = 150
        # openai-agents-python ModelSettings.context_management, documented as
        # [{"type": "compaction", "compact_threshold": 200000}] (models/openai_responses.py
        # L972 create_kwargs); the AI SDK sends the same (lm getArgs, contextManagement).
        client.responses.create(
            model=model,
            input="now",
            previous_response_id=last,
            context_management=[{"type": "compaction", "compact_threshold": threshold}],
        )
        kept = fake_upstream.requests(model)[-1]["messages"]
        assert estimated_tokens(full) > threshold
        assert len(kept) < len(full)
        assert kept == full[-len(kept) :]  # the oldest dropped, the newest kept
        assert kept[0]["role"] == "user"
        assert kept[-1] == {"role": "user", "content": "now"}
        assert estimated_tokens(kept) <= threshold
        # Not more than needed: one more turn would not have fitted.
        one_more = full[-len(kept) - 2 :]
        assert estimated_tokens(one_more) > threshold

    @pytest.mark.parametrize(
        ("entries", "param"),
        [
            ([{"type": "summarize", "compact_threshold": 1000}], "context_management[0].type"),
            (
                [{"type": "compaction", "compact_threshold": 0}],
                "context_management[0].compact_threshold",
            ),
            (
                [{"type": "compaction", "compactThreshold": 1000}],
                "context_management[0].compactThreshold",
            ),
        ],
        ids=["type", "threshold", "unknown key"],
    )
    def test_bad_entries_are_a_400(
        self,
        client: openai.OpenAI,
        fake_upstream: FakeUpstream,
        model: str,
        entries: list[Any],
        param: str,
    ) -> None:
        error = refused(
            lambda: client.responses.create(
                model=model, input="x", extra_body={"context_management": entries}
            )
        )
        assert error["param"] == param
        assert fake_upstream.requests(model) == []


class TestCompact:
    def test_agents_compaction_session_gets_an_openai_shaped_400(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        previous = client.responses.create(model=model, input="x")
        # openai-agents-python src/agents/memory/openai_responses_compaction_session.py
        # (~L232, run_compaction): compact_kwargs = {"model": ...} + previous_response_id,
        # then `await self.client.responses.compact(**compact_kwargs)`.
        error = refused(
            lambda: client.responses.compact(model=model, previous_response_id=previous.id)
        )
        assert error["code"] == "unsupported_endpoint"
        # openai-agents-js memory/openaiResponsesCompactionSession.ts (~L205): {model, input}.
        error = refused(lambda: client.responses.compact(model=model, input=[ai_sdk_user("x")]))
        assert error["code"] == "unsupported_endpoint"
        assert len(fake_upstream.requests(model)) == 1

    def test_it_is_a_400_not_a_405(self, server: ServerThread, model: str) -> None:
        answer = httpx.post(f"{server.url}/v1/responses/compact", json={"model": model})
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "unsupported_endpoint"
        assert answer.json()["error"]["type"] == "invalid_request_error"


# -- include, logprobs, reasoning, text, service tier, stream options -----------------------


def logprob_entry(token: str, top: int) -> dict[str, Any]:
    """What the fake gives a piece (-0.5, then -0.5 - n for its n-th alternative), as
    output_text.logprobs carries it."""

    def one(logprob: float) -> dict[str, Any]:
        return {"token": token, "bytes": list(token.encode()), "logprob": logprob}

    return {**one(-0.5), "top_logprobs": [one(-0.5 - n) for n in range(top)]}


class TestInclude:
    def test_an_invalid_value_is_a_400(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        error = refused(
            lambda: client.responses.create(
                model=model, input="x", extra_body={"include": ["message.output_text.bogus"]}
            )
        )
        assert (error["param"], error["code"]) == ("include[0]", "invalid_value")
        assert fake_upstream.requests(model) == []

    def test_ai_sdk_logprobs(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="one two")
        # vercel/ai openai-responses-language-model.ts getArgs: providerOptions.openai.logprobs
        # true gives top_logprobs 20 and adds "message.output_text.logprobs" to include.
        response = client.responses.create(
            model=model, input="x", include=["message.output_text.logprobs"], top_logprobs=20
        )
        (sent,) = fake_upstream.requests(model)
        assert (sent["logprobs"], sent["top_logprobs"]) == (True, 20)
        part = response.output[0].content[0]  # type: ignore[union-attr]
        logprobs = [entry.model_dump() for entry in part.logprobs]  # type: ignore[union-attr]
        assert logprobs == [logprob_entry("one ", 20), logprob_entry("two", 20)]
        assert response.top_logprobs == 20
        stored = client.responses.retrieve(response.id).output[0].content[0]  # type: ignore[union-attr]
        assert [e.model_dump() for e in stored.logprobs] == logprobs  # type: ignore[union-attr]

    def test_include_alone_asks_for_logprobs_without_alternatives(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="one two")
        # langchain-openai chat_models/base.py: `include` is passed as the user gives it.
        response = client.responses.create(
            model=model, input="x", include=["message.output_text.logprobs"]
        )
        (sent,) = fake_upstream.requests(model)
        assert (sent["logprobs"], sent["top_logprobs"]) == (True, 0)
        part = response.output[0].content[0]  # type: ignore[union-attr]
        logprobs = [entry.model_dump() for entry in part.logprobs]  # type: ignore[union-attr]
        assert logprobs == [logprob_entry("one ", 0), logprob_entry("two", 0)]

    def test_top_logprobs_alone_asks_for_logprobs(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="one two")
        response = client.responses.create(model=model, input="x", top_logprobs=3)
        (sent,) = fake_upstream.requests(model)
        assert (sent["logprobs"], sent["top_logprobs"]) == (True, 3)
        part = response.output[0].content[0]  # type: ignore[union-attr]
        assert [e.model_dump() for e in part.logprobs] == [  # type: ignore[union-attr]
            logprob_entry("one ", 3),
            logprob_entry("two", 3),
        ]

    def test_without_them_nothing_is_asked(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        response = client.responses.create(model=model, input="x")
        (sent,) = fake_upstream.requests(model)
        assert "logprobs" not in sent
        assert "top_logprobs" not in sent
        assert response.output[0].content[0].logprobs == []  # type: ignore[union-attr]

    def test_streamed_deltas_carry_their_logprobs(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="one two three")
        # openai-agents-python models/openai_responses.py create_kwargs: extra_args add
        # top_logprobs and "message.output_text.logprobs" to include; stream=True.
        with client.responses.create(
            model=model,
            input="x",
            include=["message.output_text.logprobs"],
            top_logprobs=2,
            stream=True,
        ) as stream:
            events = list(stream)
        deltas = [e for e in events if e.type == "response.output_text.delta"]
        assert [e.delta for e in deltas] == ["one ", "two ", "three"]
        for event in deltas:
            (entry,) = event.logprobs
            assert (entry.token, entry.logprob) == (event.delta, -0.5)
            assert [(t.token, t.logprob) for t in entry.top_logprobs or []] == [
                (event.delta, -0.5),
                (event.delta, -1.5),
            ]
        final = events[-1].response
        part = final.output[0].content[0]
        assert [e.model_dump() for e in part.logprobs] == [
            logprob_entry(piece, 2) for piece in ("one ", "two ", "three")
        ]

    def test_encrypted_reasoning(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reasoning_content="Thinking it over.", reply="Yes.")
        # vercel/ai openai-responses-language-model.ts getArgs: on a reasoning model with
        # store false, "reasoning.encrypted_content" is added to include (langchain-openai
        # passes the same include when its user gives it).
        response = client.responses.create(
            model=model,
            input="x",
            store=False,
            include=["reasoning.encrypted_content"],
            reasoning={"effort": "low"},
        )
        reasoning = response.output[0]
        assert reasoning.type == "reasoning"
        # Sealed for this deployment (tests/responses/test_codex_shapes.py opens it again).
        assert reasoning.encrypted_content is not None
        assert reasoning.encrypted_content.startswith("tether1.")
        assert "Thinking" not in reasoning.encrypted_content
        plain = client.responses.create(model=model, input="x", reasoning={"effort": "low"})
        assert plain.output[0].encrypted_content is None  # type: ignore[union-attr]


class TestTextAndReasoningOptions:
    def test_verbosity_is_forwarded(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        # vercel/ai getArgs: text: {verbosity: textVerbosity}; langchain-openai
        # _construct_responses_api_payload: `verbosity` becomes text.verbosity.
        response = client.responses.create(model=model, input="x", text={"verbosity": "low"})
        assert fake_upstream.requests(model)[0]["verbosity"] == "low"
        assert response.text is not None
        assert response.text.verbosity == "low"

    def test_an_invalid_verbosity_is_a_400(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        error = refused(
            lambda: client.responses.create(
                model=model, input="x", extra_body={"text": {"verbosity": "chatty"}}
            )
        )
        assert error["param"] == "text.verbosity"
        assert fake_upstream.requests(model) == []

    @pytest.mark.parametrize(
        "reasoning",
        [
            # openai-agents-python / langchain-openai: the reasoning config as the user sets it.
            {"summary": "auto"},
            # vercel/ai getArgs: summary 'detailed' when an effort is set (section 1c).
            {"effort": "low", "summary": "detailed"},
        ],
    )
    def test_a_summary_is_the_reasoning(
        self,
        client: openai.OpenAI,
        fake_upstream: FakeUpstream,
        model: str,
        reasoning: dict[str, Any],
    ) -> None:
        fake_upstream.script(model, reasoning_content="Let me think.", reply="Answer.")
        response = client.responses.create(
            model=model, input="x", extra_body={"reasoning": reasoning}
        )
        item = response.output[0]
        assert item.type == "reasoning"
        assert [s.model_dump() for s in item.summary] == [
            {"type": "summary_text", "text": "Let me think."}
        ]
        assert response.reasoning is not None
        assert response.reasoning.summary == reasoning["summary"]
        stored = client.responses.retrieve(response.id).output[0]
        assert stored.summary[0].text == "Let me think."  # type: ignore[union-attr]

    def test_without_a_summary_there_is_none(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reasoning_content="Let me think.", reply="Answer.")
        item = client.responses.create(model=model, input="x").output[0]
        assert item.type == "reasoning"
        assert item.summary == []
        assert [c.text for c in item.content or []] == ["Let me think."]

    def test_a_streamed_summary_has_summary_events(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reasoning_content="Let me think about it.", reply="Answer.")
        with client.responses.create(
            model=model, input="x", reasoning={"effort": "low", "summary": "auto"}, stream=True
        ) as stream:
            events = list(stream)
        kinds = [e.type for e in events]
        for kind in (
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
        ):
            assert kind in kinds, kind
        assert "response.reasoning_text.delta" not in kinds
        assert "response.reasoning_text.done" not in kinds
        order = [
            kinds.index("response.reasoning_summary_part.added"),
            kinds.index("response.reasoning_summary_text.delta"),
            kinds.index("response.reasoning_summary_text.done"),
            kinds.index("response.reasoning_summary_part.done"),
            kinds.index("response.output_text.delta"),
        ]
        assert order == sorted(order)
        text = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
        assert text == "Let me think about it."
        done = next(e for e in events if e.type == "response.reasoning_summary_text.done")
        assert (done.text, done.summary_index) == ("Let me think about it.", 0)
        final = events[-1].response
        assert final.output[0].summary[0].text == "Let me think about it."

    def test_an_invalid_summary_is_a_400(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        error = refused(
            lambda: client.responses.create(
                model=model, input="x", extra_body={"reasoning": {"summary": "verbose"}}
            )
        )
        assert error["param"] == "reasoning.summary"
        assert fake_upstream.requests(model) == []


class TestForwardedParameters:
    def test_service_tier_reports_the_tier_served(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, service_tier="flex")
        # vercel/ai getArgs: service_tier: serviceTier (auto|flex|priority|...).
        response = client.responses.create(model=model, input="x", service_tier="flex")
        assert fake_upstream.requests(model)[0]["service_tier"] == "flex"
        assert response.service_tier == "flex"
        assert client.responses.retrieve(response.id).service_tier == "flex"
        with client.responses.create(
            model=model, input="x", service_tier="flex", stream=True
        ) as stream:
            events = list(stream)
        assert events[-1].response.service_tier == "flex"

    def test_an_upstream_without_tiers_reports_default(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        response = client.responses.create(model=model, input="x", service_tier="auto")
        assert fake_upstream.requests(model)[0]["service_tier"] == "auto"
        assert response.service_tier == "default"

    def test_safety_identifier_and_prompt_cache_key(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        # vercel/ai getArgs: safety_identifier, prompt_cache_key; openai-agents-python
        # run_internal/prompt_cache_key.py generates a stable prompt_cache_key.
        response = client.responses.create(
            model=model, input="x", safety_identifier="user-hash-1", prompt_cache_key="agent-7"
        )
        (sent,) = fake_upstream.requests(model)
        assert (sent["safety_identifier"], sent["prompt_cache_key"]) == ("user-hash-1", "agent-7")
        assert (response.safety_identifier, response.prompt_cache_key) == (
            "user-hash-1",
            "agent-7",
        )


class TestStreamOptions:
    def body(self, model: str, **extra: Any) -> dict[str, Any]:
        return {
            "model": model,
            "input": "x",
            "tools": [WEATHER_TOOL],
            "stream": True,
            **extra,
        }

    def test_include_obfuscation_pads_every_delta(
        self, server: ServerThread, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(
            model, reasoning_content="Hmm, well.", reply="one two", tool_calls=[WEATHER_CALL]
        )
        # openai-python types/responses/response_create_params.py StreamOptions:
        # {"include_obfuscation": bool}, only with stream: true.
        events = sse(server, self.body(model, stream_options={"include_obfuscation": True}))
        deltas = [e for e in events if e["type"].endswith(".delta")]
        assert {e["type"] for e in deltas} == {
            "response.reasoning_text.delta",
            "response.output_text.delta",
            "response.function_call_arguments.delta",
        }
        for event in deltas:
            assert isinstance(event.get("obfuscation"), str), event
            assert event["obfuscation"]
        assert not [e for e in events if "obfuscation" in e and e not in deltas]
        assert events[-1]["type"] == "response.completed"

    def test_without_it_no_event_is_padded(
        self, server: ServerThread, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reasoning_content="Hmm.", reply="one two")
        events = sse(server, self.body(model))
        assert any(e["type"].endswith(".delta") for e in events)
        assert not [e for e in events if "obfuscation" in e]

    def test_an_unknown_stream_option_is_a_400(
        self, server: ServerThread, fake_upstream: FakeUpstream, model: str
    ) -> None:
        answer = httpx.post(
            f"{server.url}/v1/responses", json=self.body(model, stream_options={"foo": 1})
        )
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", "stream_options.foo")
        assert fake_upstream.requests(model) == []


# -- refusals ----------------------------------------------------------------------------------

REFUSAL = "I can't help with that."


class TestRefusals:
    def test_a_refusal_is_a_refusal_part(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, refusal=REFUSAL)
        response = client.responses.create(model=model, input="Something bad")
        (message,) = response.output  # no empty output_text message beside it
        assert message.type == "message"
        assert [p.model_dump() for p in message.content] == [
            {"type": "refusal", "refusal": REFUSAL}
        ]
        assert response.output_text == ""
        stored = client.responses.retrieve(response.id)
        assert stored.output[0].content[0].model_dump() == {  # type: ignore[union-attr]
            "type": "refusal",
            "refusal": REFUSAL,
        }

    def test_a_streamed_refusal(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, refusal=REFUSAL)
        with client.responses.create(model=model, input="Something bad", stream=True) as stream:
            events = list(stream)
        kinds = [e.type for e in events]
        assert "response.output_text.delta" not in kinds
        deltas = [e for e in events if e.type == "response.refusal.delta"]
        assert deltas
        assert all(isinstance(e, ResponseRefusalDeltaEvent) for e in deltas)
        assert "".join(e.delta for e in deltas) == REFUSAL
        (done,) = [e for e in events if e.type == "response.refusal.done"]
        assert isinstance(done, ResponseRefusalDoneEvent)
        assert done.refusal == REFUSAL
        assert done.item_id == deltas[0].item_id
        final = events[-1].response
        assert events[-1].type == "response.completed"
        (message,) = final.output
        assert [p.model_dump() for p in message.content] == [
            {"type": "refusal", "refusal": REFUSAL}
        ]

    def test_langchain_replays_a_refusal(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        # langchain-openai chat_models/base.py _construct_responses_api_input (L4938): refusal
        # blocks are sent as {"type": "refusal", "refusal": ...} inside the assistant message.
        client.responses.create(
            model=model,
            input=[
                {"type": "message", "role": "user", "content": "Something bad"},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "refusal", "refusal": REFUSAL}],
                },
                {"type": "message", "role": "user", "content": "Something good then"},
            ],
        )
        assert fake_upstream.requests(model)[0]["messages"] == [
            {"role": "user", "content": "Something bad"},
            {"role": "assistant", "content": REFUSAL},
            {"role": "user", "content": "Something good then"},
        ]


# -- truncation to the window the upstream publishes ------------------------------------------


class TestTruncationToThePublishedWindow:
    def test_a_published_window_is_honoured(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        window = 200
        # vLLM/SGLang publish data[].max_model_len in GET /v1/models (vllm
        # entrypoints/openai/models/serving.py; sglang srt/entrypoints/http_server.py).
        fake_upstream.script(model, max_model_len=window)
        last = chain(client, model, 6)
        client.responses.create(
            model=model, input="now", previous_response_id=last, truncation="disabled"
        )
        full = fake_upstream.requests(model)[-1]["messages"]
        client.responses.create(
            model=model, input="now", previous_response_id=last, truncation="auto"
        )
        kept = fake_upstream.requests(model)[-1]["messages"]
        assert estimated_tokens(full) > window
        assert len(kept) < len(full)
        assert kept == full[-len(kept) :]
        assert kept[-1] == {"role": "user", "content": "now"}
        assert estimated_tokens(kept) <= window

    def test_without_a_window_nothing_is_dropped(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        last = chain(client, model, 6)
        client.responses.create(
            model=model, input="now", previous_response_id=last, truncation="disabled"
        )
        full = fake_upstream.requests(model)[-1]["messages"]
        response = client.responses.create(
            model=model, input="now", previous_response_id=last, truncation="auto"
        )
        assert response.status == "completed"
        assert fake_upstream.requests(model)[-1]["messages"] == full
        assert len(full) == 13


# -- chat templates: developer as system, merged messages -------------------------------------

# vercel/ai openai-responses-language-model.ts: systemMessageMode 'developer' (reasoning
# models' default) gives {role: 'developer', content}; user text as input_text parts.
MERGE_INPUT: list[Any] = [
    {"role": "developer", "content": "Answer in French."},
    ai_sdk_user("Hello"),
    ai_sdk_user("How are you?"),
]
# openai-python types/chat/chat_completion_developer_message_param.py: {"role": "developer"}.
CHAT_MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "developer", "content": "Answer in French."},
    {"role": "user", "content": "Hello"},
    {"role": "user", "content": "How are you?"},
]
MERGED = [
    {"role": "system", "content": "Be brief.\n\nAnswer in French."},
    {"role": "user", "content": "Hello\n\nHow are you?"},
]
UNMERGED = [
    {"role": "system", "content": "Be brief."},
    {"role": "system", "content": "Answer in French."},
    {"role": "user", "content": "Hello"},
    {"role": "user", "content": "How are you?"},
]


class TestChatTemplates:
    def test_developer_is_sent_as_system(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        client.responses.create(model=model, instructions="Be brief.", input=MERGE_INPUT)
        assert fake_upstream.requests(model)[-1]["messages"] == UNMERGED
        client.chat.completions.create(model=model, messages=CHAT_MESSAGES)
        assert fake_upstream.requests(model)[-1]["messages"] == UNMERGED

    def test_merge_messages_on_the_responses_path(
        self, start_server: StartServer, fake_upstream: FakeUpstream, model: str
    ) -> None:
        with start_server(upstream_merge_messages=True) as srv, sdk(srv.url) as client:
            response = client.responses.create(
                model=model, instructions="Be brief.", input=MERGE_INPUT
            )
            assert fake_upstream.requests(model)[-1]["messages"] == MERGED
            # What the client sent is kept as sent.
            stored = list(client.responses.input_items.list(response.id, order="asc"))
            assert [getattr(item, "role", None) for item in stored] == [
                "developer",
                "user",
                "user",
            ]

    def test_merge_messages_on_the_chat_completions_proxy(
        self, start_server: StartServer, fake_upstream: FakeUpstream, model: str
    ) -> None:
        with start_server(upstream_merge_messages=True) as srv, sdk(srv.url) as client:
            client.chat.completions.create(model=model, messages=CHAT_MESSAGES)
            with client.chat.completions.create(
                model=model, messages=CHAT_MESSAGES, stream=True
            ) as stream:
                list(stream)
        plain, streamed = fake_upstream.requests(model)
        assert plain["messages"] == MERGED
        assert streamed["messages"] == MERGED


# -- Response fields as raw JSON ---------------------------------------------------------------


class TestResponseFields:
    def test_unset_fields_have_openai_defaults(self, server: ServerThread, model: str) -> None:
        url = f"{server.url}/v1/responses"
        created = httpx.post(url, json={"model": model, "input": "x"}).json()
        retrieved = httpx.get(f"{url}/{created['id']}").json()
        for body in (created, retrieved):
            assert "prompt_cache_retention" in body
            assert body["prompt_cache_retention"] is None
            # 0, not null nor false: strict clients read an integer.
            assert body["top_logprobs"] == 0
            assert type(body["top_logprobs"]) is int
            assert body["service_tier"] == "default"

    def test_set_fields_are_echoed(self, server: ServerThread, model: str) -> None:
        url = f"{server.url}/v1/responses"
        body = {"model": model, "input": "x", "top_logprobs": 4, "prompt_cache_retention": "24h"}
        created = httpx.post(url, json=body).json()
        assert (created["top_logprobs"], created["prompt_cache_retention"]) == (4, "24h")
