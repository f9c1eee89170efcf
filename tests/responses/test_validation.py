"""Every way a create can be wrong: a 400 in OpenAI's shape that names the param, never a 500."""

from typing import Any

import httpx
import openai
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread

IMAGE = {"type": "input_image", "image_url": "https://example.test/a.png"}

# (extra body fields, param, code); each case is sent with model + input unless it sets them.
CASES: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    ("missing model", {"model": None}, "model", "missing_required_parameter"),
    ("empty model", {"model": ""}, "model", "invalid_value"),
    ("missing input", {"input": None}, "input", "missing_required_parameter"),
    ("unknown field", {"frobnicate": 1}, "frobnicate", "unknown_parameter"),
    ("input of wrong type", {"input": 42}, "input", "invalid_value"),
    ("item not an object", {"input": ["hi"]}, "input[0]", "invalid_type"),
    ("bad role", {"input": [{"role": "bot", "content": "x"}]}, "input[0].role", "invalid_value"),
    ("missing role", {"input": [{"content": "x"}]}, "input[0].role", "invalid_value"),
    (
        "unknown item field",
        {"input": [{"role": "user", "content": "x", "name": "n"}]},
        "input[0].name",
        "unknown_parameter",
    ),
    (
        "unsupported item type",
        {"input": [{"type": "web_search_call", "id": "ws_1"}]},
        "input[0].type",
        "unsupported_value",
    ),
    (
        "content of wrong type",
        {"input": [{"role": "user", "content": 5}]},
        "input[0].content",
        "invalid_type",
    ),
    (
        "bad part type",
        {"input": [{"role": "user", "content": [{"type": "audio"}]}]},
        "input[0].content[0].type",
        "invalid_value",
    ),
    (
        "output part in a user message",
        {"input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]},
        "input[0].content[0].type",
        "invalid_value",
    ),
    (
        "input part in an assistant message",
        {"input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]},
        "input[0].content[0].type",
        "invalid_value",
    ),
    (
        "text part without text",
        {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
        "input[0].content[0].text",
        "invalid_type",
    ),
    (
        "unknown part field",
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": "x", "x": 1}]}]},
        "input[0].content[0].x",
        "unknown_parameter",
    ),
    (
        "image by file id",
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
        "input[0].content[0].file_id",
        "unsupported_value",
    ),
    (
        "image bad detail",
        {"input": [{"role": "user", "content": [{**IMAGE, "detail": "max"}]}]},
        "input[0].content[0].detail",
        "invalid_value",
    ),
    (
        "input file by id (no Files API)",
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
        "input[0].content[0].file_id",
        "unsupported_value",
    ),
    (
        "duplicate item ids",
        {
            "input": [
                {"id": "msg_1", "role": "user", "content": "a"},
                {"id": "msg_1", "role": "user", "content": "b"},
            ]
        },
        "input[1].id",
        "invalid_value",
    ),
    ("temperature too high", {"temperature": 2.5}, "temperature", "invalid_value"),
    ("top_p negative", {"top_p": -0.1}, "top_p", "invalid_value"),
    ("max_output_tokens too small", {"max_output_tokens": 4}, "max_output_tokens", "invalid_value"),
    ("top_logprobs too large", {"top_logprobs": 21}, "top_logprobs", "invalid_value"),
    ("truncation unknown", {"truncation": "sometimes"}, "truncation", "invalid_value"),
    ("store not a bool", {"store": "maybe"}, "store", "invalid_value"),
    (
        "metadata too many",
        {"metadata": {f"k{i}": "v" for i in range(17)}},
        "metadata",
        "invalid_value",
    ),
    ("metadata key too long", {"metadata": {"k" * 65: "v"}}, "metadata", "invalid_value"),
    ("metadata value too long", {"metadata": {"k": "v" * 513}}, "metadata", "invalid_value"),
    ("metadata value not a string", {"metadata": {"k": 1}}, "metadata", "invalid_value"),
    (
        "function tool without a name",
        {"tools": [{"type": "function", "parameters": {}}]},
        "tools[0].name",
        "missing_required_parameter",
    ),
    (
        "function tool with an unknown key",
        {"tools": [{"type": "function", "name": "f", "color": "red"}]},
        "tools[0].color",
        "unknown_parameter",
    ),
    (
        "tool_choice naming an unknown function",
        {
            "tools": [{"type": "function", "name": "f"}],
            "tool_choice": {"type": "function", "name": "g"},
        },
        "tool_choice.name",
        "invalid_value",
    ),
    (
        "function call output without call_id",
        {"input": [{"type": "function_call_output", "output": "x"}]},
        "input[0].call_id",
        "invalid_type",
    ),
    # A client's own freeform tool; built-in ones (web_search...) are left out: test_codex_shapes.
    (
        "custom tool",
        {"tools": [{"type": "custom", "name": "x"}]},
        "tools[0].type",
        "unsupported_value",
    ),
    ("tool_choice without tools", {"tool_choice": "required"}, "tool_choice", "invalid_value"),
    (
        "text format unknown",
        {"text": {"format": {"type": "yaml"}}},
        "text.format.type",
        "invalid_value",
    ),
    (
        "json_schema without schema",
        {"text": {"format": {"type": "json_schema", "name": "x"}}},
        "text.format.schema",
        "missing_required_parameter",
    ),
    (
        "reasoning effort unknown",
        {"reasoning": {"effort": "extreme"}},
        "reasoning.effort",
        "invalid_value",
    ),
    (
        "background without store",
        {"background": True, "store": False},
        "background",
        "invalid_value",
    ),
    (
        "conversation with previous_response_id",
        {"conversation": "conv_1", "previous_response_id": "resp_1"},
        "previous_response_id",
        "invalid_value",
    ),
]


@pytest.mark.parametrize(
    ("extra", "param", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_request_names_the_param(
    client: openai.OpenAI,
    fake_upstream: FakeUpstream,
    model: str,
    extra: dict[str, Any],
    param: str,
    code: str,
) -> None:
    body = {"model": model, "input": "hello", **extra}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/responses", body=body, cast_to=object)
    assert err.value.status_code == 400
    error = err.value.body
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)
    assert error["message"]
    assert err.value.response.headers["x-should-retry"] == "false"
    assert fake_upstream.requests(model) == []  # nothing reached the model


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "We could not parse the JSON body"),
        (b"[1, 2]", "Input should be a valid dictionary"),
    ],
)
def test_malformed_body(server: ServerThread, content: bytes, expected: str) -> None:
    answer = httpx.post(
        f"{server.url}/v1/responses", content=content, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert expected in answer.json()["error"]["message"]
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_unknown_route_is_an_openai_shaped_404(server: ServerThread) -> None:
    answer = httpx.get(f"{server.url}/v1/nothing-here")
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_wrong_method_is_an_openai_shaped_405(server: ServerThread) -> None:
    answer = httpx.put(f"{server.url}/v1/responses")
    assert answer.status_code == 405
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
