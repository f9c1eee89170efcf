"""Chat Completions inputs the fuzzer (tests/test_openapi.py) found answered 500 or cut off:
each is a clean error now, and stored message ids stay Tether's own."""

from typing import Any

import httpx
import pytest

from tests.conftest import StartServer
from tests.harness import ServerThread, free_port

ECHO_CASES: list[tuple[str, dict[str, Any]]] = [
    ("max_tokens not an integer", {"max_tokens": "x"}),
    ("stream_options not an object", {"stream": True, "stream_options": [1]}),
]


@pytest.mark.parametrize(("case", "extra"), ECHO_CASES, ids=[c[0] for c in ECHO_CASES])
def test_bad_chat_input_is_a_400_on_the_echo_model(
    start_server: StartServer, case: str, extra: dict[str, Any]
) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], **extra}
    with start_server(upstream_base_url=None) as srv:
        answer = httpx.post(f"{srv.url}/v1/chat/completions", json=body)
    assert answer.status_code == 400, (case, answer.text)
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


def test_a_user_message_without_content_is_answered(start_server: StartServer) -> None:
    body = {"model": "echo", "messages": [{"role": "user"}]}
    with start_server(upstream_base_url=None) as srv:
        answer = httpx.post(f"{srv.url}/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == ""


def test_stored_messages_keep_tethers_ids(server: ServerThread, model: str) -> None:
    body = {
        "model": model,
        "store": True,
        "messages": [{"role": "user", "content": "hi", "id": 7}],
    }
    created = httpx.post(f"{server.url}/v1/chat/completions", json=body).json()
    page = httpx.get(f"{server.url}/v1/chat/completions/{created['id']}/messages").json()
    assert [m["id"] for m in page["data"]] == [f"{created['id']}-0"]


def test_models_answer_502_when_the_upstream_is_down(start_server: StartServer) -> None:
    with start_server(upstream_base_url=f"http://127.0.0.1:{free_port()}/v1") as srv:
        for path in ("/v1/models", "/v1/models/anything"):
            answer = httpx.get(f"{srv.url}{path}")
            assert answer.status_code == 502, answer.text
            assert answer.json()["error"]["type"] == "server_error"
