"""Issue 18: Codex CLI's requests, from the exact JSON it sends.

fixtures/codex-0.169.0-request.json is the first request `codex exec "say hello"` (npm
@openai/codex 0.169.0) sent to a recording server, its ids, paths and timestamps scrubbed:
store false, stream, include reasoning.encrypted_content, reasoning.summary auto,
prompt_cache_key, parallel_tool_calls, client_metadata, function tools, a `namespace` tool,
the hosted web_search tool, and two developer then two user messages. Raw HTTP sends it as
Codex does (the SDK's types lack client_metadata and namespace tools); tests/clients runs
Codex itself.
"""

import base64
import copy
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from app.config import Settings
from app.kit.logs import Scrubber, secrets_of
from tests.auth.harness import http, make_key, own_settings, project_name
from tests.conftest import StartServer
from tests.fakes.upstream import FakeUpstream
from tests.harness import (
    ServerThread,
    migrated_database,
    poll_status,
    query,
    running_server,
    wait_until,
)
from tests.ops.harness import scrape, value

FIXTURE = Path(__file__).parent / "fixtures" / "codex-0.169.0-request.json"
CODEX: dict[str, Any] = json.loads(FIXTURE.read_text())
PLAIN = ["exec_command", "write_stdin", "request_user_input", "view_image"]
AGENTS = ["close_agent", "resume_agent", "send_input", "spawn_agent", "wait_agent"]
GOALS = ["get_goal", "create_goal", "update_goal"]
SPAWN = {"name": "multi_agent_v1__spawn_agent", "arguments": '{"message":"look around"}'}
KEY_A = "a" * 32 + "-first-deployment-key"
KEY_B = "b" * 32 + "-second-deployment-key"


def codex_request(model: str, **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(CODEX), "model": model, **changes}


def create(server: ServerThread, body: dict[str, Any]) -> httpx.Response:
    """A create sent as Codex sends it; a streamed one read whole."""
    with httpx.stream("POST", f"{server.url}/v1/responses", json=body, timeout=15.0) as answer:
        answer.read()
    return answer


def events(answer: httpx.Response) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    lines = answer.text.splitlines()
    return [json.loads(line[6:]) for line in lines if line.startswith("data: ")]


def completed(answer: httpx.Response) -> dict[str, Any]:
    (last,) = [e for e in events(answer) if e["type"] == "response.completed"]
    return dict(last["response"])


def error(answer: httpx.Response, param: str, code: str) -> dict[str, Any]:
    assert answer.status_code == 400, answer.text
    body = answer.json()["error"]
    assert (body["type"], body["param"], body["code"]) == ("invalid_request_error", param, code)
    return dict(body)


def next_turn(
    first: dict[str, Any], output: list[dict[str, Any]], tool_output: str | None = None
) -> list[dict[str, Any]]:
    """Codex's next input: the thread so far, the answer's items as it got them, and the
    outputs of the calls it ran (what tests/clients saw Codex 0.169.0 send)."""
    items = [*first["input"], *output]
    calls = [item for item in output if item["type"] == "function_call"]
    for call in calls:
        items.append(
            {"type": "function_call_output", "call_id": call["call_id"], "output": tool_output}
        )
    return items


def metric(server: ServerThread, kind: str) -> float:
    return value(scrape(server.url, key=None), "tether_hosted_tools_omitted_total", type=kind)


def base64_of(text: str) -> str:
    """What earlier Tether versions put in encrypted_content: the text in base64."""
    return base64.b64encode(text.encode()).decode()


class TestFirstRequest:
    def test_codex_first_request_answers(
        self, server: ServerThread, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="Hello.", reasoning_content="A greeting.")
        answer = create(server, codex_request(model))
        response = completed(answer)
        assert response["status"] == "completed"
        reasoning, message = response["output"]
        assert message["content"][0]["text"] == "Hello."
        # reasoning.summary "auto": honoured, the reasoning is its own summary (issue 10).
        assert reasoning["summary"] == [{"type": "summary_text", "text": "A greeting."}]
        assert reasoning["encrypted_content"].startswith("tether1.")
        # The tools are echoed as sent; web_search was left out of the model call, and said so.
        assert response["tools"][4]["type"] == "namespace"
        assert response["tools"][-1] == {"type": "web_search", "external_web_access": True}
        assert answer.headers["x-tether-omitted-tools"] == "web_search"
        (sent,) = fake_upstream.requests(model)
        assert "client_metadata" not in sent
        assert sent["prompt_cache_key"] == CODEX["prompt_cache_key"]
        assert sent["parallel_tool_calls"] is True
        names = [tool["function"]["name"] for tool in sent["tools"]]
        assert names == [*PLAIN, *(f"multi_agent_v1__{n}" for n in AGENTS), *GOALS]
        # Developer messages go as system ones (issue 10), in order, nothing dropped.
        assert [m["role"] for m in sent["messages"]] == ["system", "system", "user", "user"]

    def test_strict_templates_get_one_system_message_and_one_user_message(
        self, start_server: StartServer, fake_upstream: FakeUpstream, model: str
    ) -> None:
        with start_server(upstream_merge_messages=True) as srv:
            completed(create(srv, codex_request(model)))
        (sent,) = fake_upstream.requests(model)
        system, user = sent["messages"]
        assert (system["role"], user["role"]) == ("system", "user")
        texts = [part["text"] for item in CODEX["input"] for part in item["content"]]
        merged = json.dumps([system, user])
        for text in texts:  # every developer and user text is there, in one message each
            assert json.dumps(text)[1:-1] in merged

    def test_a_stored_codex_request_keeps_its_client_metadata(
        self,
        server: ServerThread,
        database_url: str,
        fake_upstream: FakeUpstream,
        model: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger="tether.request")
        body = codex_request(model, store=True, stream=False)
        answer = httpx.post(f"{server.url}/v1/responses", json=body, timeout=15.0)
        assert answer.status_code == 200, answer.text
        # Kept with the response (OpenAI's Response object has no field to show it in).
        ((params,),) = query(
            database_url, "SELECT params FROM responses WHERE id = :id", id=answer.json()["id"]
        )
        stored = json.loads(params) if isinstance(params, str) else params
        assert stored["client_metadata"] == CODEX["client_metadata"]  # type: ignore[index]
        assert "client_metadata" not in answer.json()
        # The request's line is written once its answer is sent: looked for with a deadline.
        wait_until(lambda: metadata_lines(caplog) != [], what="the request's log line")
        assert metadata_lines(caplog) == [CODEX["client_metadata"]]
        assert "client_metadata" not in fake_upstream.requests(model)[0]


def metadata_lines(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r.client_metadata for r in caplog.records if getattr(r, "client_metadata", None)]


class TestClientMetadata:
    @pytest.mark.parametrize(
        "metadata",
        [
            {"turn_id": 1},
            {f"k{i}": "v" for i in range(33)},
            {"k" * 65: "v"},
            {"turn": "v" * 8193},
            "not an object",
        ],
        ids=["not a string", "too many", "key too long", "value too long", "not an object"],
    )
    def test_a_bad_client_metadata_is_a_400(
        self, server: ServerThread, fake_upstream: FakeUpstream, model: str, metadata: Any
    ) -> None:
        body = {"model": model, "input": "x", "client_metadata": metadata}
        answer = httpx.post(f"{server.url}/v1/responses", json=body)
        error(answer, "client_metadata", "invalid_value")
        assert fake_upstream.requests(model) == []


class TestNamespaceTools:
    def test_a_call_to_a_namespaced_function_names_its_namespace(
        self, server: ServerThread, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, tool_calls=[SPAWN], tool_calls_times=1, reply="Spawned.")
        first = codex_request(model)
        answer = create(server, first)
        stream = events(answer)
        (call,) = completed(answer)["output"]
        assert call == {
            "id": call["id"],
            "type": "function_call",
            "call_id": call["call_id"],
            "name": "spawn_agent",
            "arguments": SPAWN["arguments"],
            "status": "completed",
            "namespace": "multi_agent_v1",
        }
        added = [e["item"] for e in stream if e["type"] == "response.output_item.added"]
        assert (added[0]["namespace"], added[0]["name"]) == ("multi_agent_v1", "spawn_agent")
        sent = fake_upstream.requests(model)[0]
        (spawn,) = [t for t in sent["tools"] if t["function"]["name"] == SPAWN["name"]]
        described = spawn["function"]["description"]
        assert described.startswith("Tools for spawning and managing sub-agents.\n\n")
        # Codex routes the call by namespace and name, and sends it back as it got it.
        second = codex_request(model, input=next_turn(first, [call], '{"agent_id":"a1"}'))
        assert completed(create(server, second))["output"][0]["content"][0]["text"] == "Spawned."
        replayed = fake_upstream.requests(model)[1]["messages"]
        assert replayed[-2]["tool_calls"][0]["function"]["name"] == SPAWN["name"]
        assert replayed[-1] == {
            "role": "tool",
            "tool_call_id": call["call_id"],
            "content": '{"agent_id":"a1"}',
        }

    def test_a_stored_call_replays_with_its_namespace(
        self, server: ServerThread, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, tool_calls=[SPAWN])
        body = codex_request(model, store=True, stream=False)
        created = httpx.post(f"{server.url}/v1/responses", json=body, timeout=15.0).json()
        url = f"{server.url}/v1/responses/{created['id']}"
        assert httpx.get(url).json()["output"][0]["namespace"] == "multi_agent_v1"
        replay = httpx.get(url, params={"stream": "true"})
        (done,) = [e for e in events(replay) if e["type"] == "response.output_item.done"]
        assert done["item"] == created["output"][0]

    def test_a_namespace_name_the_model_would_see_twice_is_a_400(
        self, server: ServerThread, fake_upstream: FakeUpstream, model: str
    ) -> None:
        body = codex_request(model)
        body["tools"].append({**body["tools"][0], "name": SPAWN["name"]})
        answer = create(server, body)
        message = error(answer, "tools[9].name", "invalid_value")["message"]
        assert "tools[4].tools[3].name" in message
        assert fake_upstream.requests(model) == []

    @pytest.mark.parametrize(
        ("namespace", "param", "code"),
        [
            (
                {"tools": [{"type": "custom", "name": "x"}]},
                "tools[0].tools[0].type",
                "unsupported_value",
            ),
            ({"tools": []}, "tools[0].tools", "missing_required_parameter"),
            ({"name": "has space"}, "tools[0].name", "invalid_value"),
            ({"color": "red"}, "tools[0].color", "unknown_parameter"),
        ],
        ids=["custom tool inside", "no tools", "bad name", "unknown key"],
    )
    def test_a_bad_namespace_is_a_400(
        self, server: ServerThread, model: str, namespace: dict[str, Any], param: str, code: str
    ) -> None:
        tool = {**CODEX["tools"][4], **namespace}
        answer = httpx.post(
            f"{server.url}/v1/responses", json={"model": model, "input": "x", "tools": [tool]}
        )
        error(answer, param, code)


class TestHostedTools:
    def test_omitted_tools_are_named_logged_and_counted(
        self,
        start_server: StartServer,
        fake_upstream: FakeUpstream,
        model: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger="app.responses.service")
        tools = [{"type": "file_search", "vector_store_ids": ["vs_1"]}, {"type": "mcp"}]
        body = {"model": model, "input": "x", "tools": [*CODEX["tools"][:1], *tools]}
        with start_server(metrics_public=True) as srv:
            before = metric(srv, "file_search")
            answer = httpx.post(f"{srv.url}/v1/responses", json=body)
            assert answer.status_code == 200, answer.text
            assert metric(srv, "file_search") == before + 1
        assert answer.headers["x-tether-omitted-tools"] == "file_search, mcp"
        assert answer.json()["tools"][1:] == tools
        sent = fake_upstream.requests(model)[0]["tools"]
        assert [t["function"]["name"] for t in sent] == ["exec_command"]
        (line,) = [r for r in caplog.records if getattr(r, "omitted_tools", None)]
        assert line.omitted_tools == ["file_search", "mcp"]  # type: ignore[attr-defined]

    def test_reject_keeps_the_400(
        self, start_server: StartServer, fake_upstream: FakeUpstream, model: str
    ) -> None:
        with start_server(hosted_tools="reject") as srv:
            answer = create(srv, codex_request(model))
        message = error(answer, "tools[8].type", "unsupported_value")["message"]
        assert "web_search" in message
        assert "HOSTED_TOOLS" in message
        assert fake_upstream.requests(model) == []

    def test_only_hosted_tools_cannot_be_required(self, server: ServerThread, model: str) -> None:
        body = {"model": model, "input": "x", "tools": [{"type": "web_search"}]}
        answer = httpx.post(f"{server.url}/v1/responses", json={**body, "tool_choice": "required"})
        error(answer, "tool_choice", "invalid_value")


class TestEncryptedReasoning:
    def test_reasoning_comes_back_into_the_history(
        self, server: ServerThread, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(
            model,
            reasoning_content="I will look first.",
            tool_calls=[{"name": "exec_command", "arguments": '{"cmd":"ls"}'}],
            tool_calls_times=1,
            reply_with_tool_output=True,
        )
        first = codex_request(model)
        answer = create(server, first)
        output = completed(answer)["output"]
        reasoning, call = output
        # The item a stream's output_item.done carries is the one to send back (OpenAI's rule).
        done = [e["item"] for e in events(answer) if e["type"] == "response.output_item.done"]
        assert done[0] == reasoning
        second = codex_request(model, input=next_turn(first, output, "README.md"))
        final = completed(create(server, second))
        assert final["output"][-1]["content"][0]["text"] == "The tool returned: README.md"
        history = fake_upstream.requests(model)[1]["messages"]
        assert history[-2] == {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["call_id"],
                    "type": "function",
                    "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'},
                }
            ],
            "reasoning_content": "I will look first.",
        }

    def test_the_sealed_text_is_what_the_model_sees(
        self, server: ServerThread, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reasoning_content="The real thought.", reply="Hi.")
        first = codex_request(model)
        output = completed(create(server, first))["output"]
        # A client that edits the plain copy does not change what the model is told it thought.
        output[0]["content"] = [{"type": "reasoning_text", "text": "An invented thought."}]
        completed(create(server, codex_request(model, input=next_turn(first, output))))
        history = fake_upstream.requests(model)[1]["messages"]
        assert history[-1]["reasoning_content"] == "The real thought."

    def test_tampered_content_is_a_400(
        self, server: ServerThread, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reasoning_content="Secret plan.", reply="Hi.")
        first = codex_request(model)
        output = completed(create(server, first))["output"]
        token = output[0]["encrypted_content"]
        flipped = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
        for bad in (flipped, "gAAAAABnot-ours==", base64_of("Secret plan.")):
            output[0]["encrypted_content"] = bad
            answer = create(server, codex_request(model, input=next_turn(first, output)))
            message = error(answer, "input[4].encrypted_content", "invalid_encrypted_content")
            assert "could not be verified" in message["message"]
        assert len(fake_upstream.requests(model)) == 1

    def test_another_deployment_cannot_open_it_and_rotation_can(
        self, start_server: StartServer, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reasoning_content="Plan A.", reply="Hi.")
        first = codex_request(model)
        with start_server(encryption_key=KEY_A) as old:
            output = completed(create(old, first))["output"]
        later = codex_request(model, input=next_turn(first, output))
        with start_server(encryption_key=KEY_B) as other:
            error(create(other, later), "input[4].encrypted_content", "invalid_encrypted_content")
        # Rotated: the new key first seals, the old one still opens.
        with start_server(encryption_key=f"{KEY_B}, {KEY_A}") as rotated:
            answer = create(rotated, later)
            resealed = completed(answer)["output"][0]["encrypted_content"]
            assert (
                fake_upstream.requests(model)[-1]["messages"][-1]["reasoning_content"] == "Plan A."
            )
        with start_server(encryption_key=KEY_B) as other:
            output[0]["encrypted_content"] = resealed
            completed(create(other, codex_request(model, input=next_turn(first, output))))

    def test_another_project_cannot_open_it(
        self, backend: str, tmp_path: Path, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reasoning_content="Project A's thought.", reply="Hi.")
        first = codex_request(model)
        with migrated_database(backend, str(tmp_path)) as url:
            settings = own_settings(url, fake_upstream)
            keys = [make_key(settings, project_name())[1] for _ in range(2)]
            with running_server(settings) as srv:
                mine, theirs = (http(srv.url, key) for key in keys)
                with mine, theirs:
                    answer = mine.post("/v1/responses", json=first)
                    output = completed(answer)["output"]
                    later = codex_request(model, input=next_turn(first, output))
                    refused = theirs.post("/v1/responses", json=later)
                    completed(mine.post("/v1/responses", json=later))
        error(refused, "input[4].encrypted_content", "invalid_encrypted_content")
        assert "another project" in refused.json()["error"]["message"]

    def test_without_encryption_key_every_process_shares_the_database_key(
        self,
        server: ServerThread,
        start_server: StartServer,
        fake_upstream: FakeUpstream,
        model: str,
    ) -> None:
        fake_upstream.script(model, reasoning_content="Shared.", reply="Hi.")
        first = codex_request(model)
        output = completed(create(server, first))["output"]
        with start_server() as replica:
            completed(create(replica, codex_request(model, input=next_turn(first, output))))
        assert fake_upstream.requests(model)[-1]["messages"][-1]["reasoning_content"] == "Shared."

    def test_a_background_response_seals_its_reasoning(
        self, server: ServerThread, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reasoning_content="In the background.", reply="Hi.")
        body = codex_request(model, store=True, stream=False, background=True)
        created = httpx.post(f"{server.url}/v1/responses", json=body, timeout=15.0).json()
        assert poll_status(client, created["id"]).status == "completed"
        output = httpx.get(f"{server.url}/v1/responses/{created['id']}").json()["output"]
        output[0]["content"] = []  # only the sealed copy is left to tell the model
        later = codex_request(model, input=next_turn(body, output))
        completed(create(server, later))
        history = fake_upstream.requests(model)[-1]["messages"]
        assert history[-1]["reasoning_content"] == "In the background."

    def test_a_short_key_is_refused_at_start(self) -> None:
        with pytest.raises(ValueError, match="shorter than 32"):
            Settings(encryption_key=f"{KEY_A},short")

    def test_the_keys_never_reach_a_log_line(self) -> None:
        settings = Settings(encryption_key=f"{KEY_B},{KEY_A}")
        line = Scrubber(secrets_of(settings)).clean(f"keys {KEY_A} and {KEY_B}")
        assert KEY_A not in line
        assert KEY_B not in line
