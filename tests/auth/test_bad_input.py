"""Input that cannot be stored or sent: NUL characters (bodies, ids, query parameters), lone
surrogates, integers past 64 bits, JSON nested past a fixed bound, names and ids longer than
their columns. Each is a 400 in OpenAI's shape (never a 500), the same on PostgreSQL and SQLite,
and refused before the model is called.

Every case is sent to two servers at once, one per database, and their answers compared.
"""

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.auth.harness import own_settings, replace_ids
from tests.fakes.upstream import FakeUpstream
from tests.harness import migrated_database, running_server

BIG = 99999999999999999999999  # past 64 bits either way
LONG_ID = "x" * 300  # past every 64-character id column
NUL = "\x00"
LONE = "\ud800"


@dataclass
class Target:
    base_url: str
    ids: dict[str, str]  # objects of this server's own, named {resp}, {conv}, {item}, {cc}


@pytest.fixture(scope="module")
def targets(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Target]]:
    """A keyless server on each database, each with a stored response, a conversation with an
    item and a stored chat completion to aim at."""
    setup_model = f"m-{uuid.uuid4().hex[:12]}"
    with (
        migrated_database("postgres", str(tmp_path_factory.mktemp("pg"))) as pg_url,
        migrated_database("sqlite", str(tmp_path_factory.mktemp("sqlite"))) as sqlite_url,
        running_server(own_settings(pg_url, fake_upstream)) as pg,
        running_server(own_settings(sqlite_url, fake_upstream)) as lite,
    ):
        found = {}
        for backend, srv in (("postgres", pg), ("sqlite", lite)):
            with httpx.Client(base_url=srv.url, timeout=30) as api:
                resp = api.post("/v1/responses", json={"model": setup_model, "input": "hi"})
                conv = api.post(
                    "/v1/conversations", json={"items": [{"role": "user", "content": "hi"}]}
                ).json()["id"]
                item = api.get(f"/v1/conversations/{conv}/items").json()["data"][0]["id"]
                cc = api.post(
                    "/v1/chat/completions",
                    json={
                        "model": setup_model,
                        "messages": [{"role": "user", "content": "hi"}],
                        "store": True,
                    },
                )
                ids = {"resp": resp.json()["id"], "conv": conv, "item": item, "cc": cc.json()["id"]}
            found[backend] = Target(srv.url, ids)
        yield found


Body = Callable[[str], bytes] | None  # the raw body, given the case's model name


def as_json(**fields: Any) -> Callable[[str], bytes]:
    """A JSON body (escapes as json.dumps writes them: \\u0000, \\ud800), "MODEL" replaced."""

    def build(model: str) -> bytes:
        text = json.dumps(fields)
        return text.replace('"MODEL', f'"{model}').encode()

    return build


def raw(template: bytes) -> Callable[[str], bytes]:
    """A body as bytes (a raw NUL byte, invalid UTF-8), b"MODEL" replaced."""
    return lambda model: template.replace(b"MODEL", model.encode())


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


def deeply_nested_body(depth: int) -> Callable[[str], bytes]:
    def build(model: str) -> bytes:
        deep = '{"a":' * depth + "1" + "}" * depth
        return f'{{"model": "{model}", "input": "x", "metadata": {deep}}}'.encode()

    return build


USER = {"role": "user", "content": "hi"}
MESSAGES = [USER]
SCHEMA_FORMAT = {"type": "json_schema", "name": "s", "strict": False}


def case(
    name: str,
    method: str,
    path: str,
    body: Body = None,
    status: int = 400,
    headers: dict[str, str] | None = None,
) -> Any:
    return pytest.param(method, path, body, status, headers or {}, id=name)


RESPONSES = [
    case("responses: NUL in input", "POST", "/v1/responses", as_json(model="MODEL", input="a\0b")),
    case(
        "responses: raw NUL byte in a string",
        "POST",
        "/v1/responses",
        raw(b'{"model": "MODEL", "input": "a\x00b"}'),
    ),
    case(
        "responses: NUL in instructions",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x", instructions=NUL),
    ),
    case(
        "responses: NUL in a content part",
        "POST",
        "/v1/responses",
        as_json(
            model="MODEL",
            input=[{"role": "user", "content": [{"type": "input_text", "text": f"a{NUL}"}]}],
        ),
    ),
    case(
        "responses: NUL in a metadata value",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x", metadata={"k": f"v{NUL}"}),
    ),
    case(
        "responses: NUL in a metadata key",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x", metadata={f"k{NUL}": "v"}),
    ),
    case(
        "responses: NUL in an input item id",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input=[{**USER, "id": f"msg_{NUL}"}]),
    ),
    case(
        "responses: NUL in previous_response_id",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x", previous_response_id=f"resp_{NUL}"),
    ),
    case(
        "responses: NUL in conversation",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x", conversation=f"conv_{NUL}"),
    ),
    case(
        "responses: NUL in a tool's description",
        "POST",
        "/v1/responses",
        as_json(
            model="MODEL",
            input="x",
            tools=[{"type": "function", "name": "f", "description": NUL, "parameters": {}}],
        ),
    ),
    case(
        "responses: NUL in the model name",
        "POST",
        "/v1/responses",
        as_json(model=f"MODEL{NUL}", input="x"),
    ),
    case(
        "responses: NUL streamed",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input=NUL, stream=True),
    ),
    case(
        "responses: NUL in background",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input=NUL, background=True),
    ),
    case(
        "responses: lone surrogate in input",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input=f"a{LONE}b"),
    ),
    case(
        "responses: lone surrogate as raw bytes",
        "POST",
        "/v1/responses",
        raw(b'{"model": "MODEL", "input": "a\xed\xa0\x80b"}'),
    ),
    case(
        "responses: lone surrogate in a metadata value",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x", metadata={"k": LONE}),
    ),
    case(
        "responses: max_output_tokens 1e30",
        "POST",
        "/v1/responses",
        raw(b'{"model": "MODEL", "input": "x", "max_output_tokens": 1e30}'),
    ),
    case(
        "responses: max_output_tokens past 64 bits",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x", max_output_tokens=BIG),
    ),
    case(
        "responses: max_output_tokens past 64 bits, negative",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x", max_output_tokens=-BIG),
    ),
    case(
        "responses: top_logprobs 2**64",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x", top_logprobs=2**64),
    ),
    case(
        "responses: integer past 64 bits in a schema",
        "POST",
        "/v1/responses",
        as_json(
            model="MODEL",
            input="x",
            text={"format": {**SCHEMA_FORMAT, "schema": {"type": "integer", "maximum": BIG}}},
        ),
    ),
    case(
        "responses: metadata nested 200 deep",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x", metadata=nested(200)),
    ),
    case(
        "responses: text.format.schema nested 200 deep",
        "POST",
        "/v1/responses",
        as_json(
            model="MODEL", input="x", text={"format": {**SCHEMA_FORMAT, "schema": nested(200)}}
        ),
    ),
    case(
        "responses: tool parameters nested 200 deep",
        "POST",
        "/v1/responses",
        as_json(
            model="MODEL",
            input="x",
            tools=[{"type": "function", "name": "f", "parameters": nested(200)}],
        ),
    ),
    case("responses: nested 100000 deep", "POST", "/v1/responses", deeply_nested_body(100_000)),
    case(
        "responses: model name of 300 characters",
        "POST",
        "/v1/responses",
        as_json(model="MODEL" + "x" * 300, input="x"),
    ),
    case(
        "responses: input item id of 65 characters",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input=[{**USER, "id": "msg_" + "x" * 61}]),
    ),
    case(
        "responses: function_call id of 65 characters",
        "POST",
        "/v1/responses",
        as_json(
            model="MODEL",
            input=[
                USER,
                {
                    "type": "function_call",
                    "id": "fc_" + "x" * 62,
                    "call_id": "c1",
                    "name": "f",
                    "arguments": "{}",
                },
                {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            ],
        ),
    ),
    case(
        "responses: item_reference id of 300 characters",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input=[{"type": "item_reference", "id": LONG_ID}]),
    ),
    case(
        "responses: previous_response_id of 300 characters",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x", previous_response_id=LONG_ID),
    ),
    case(
        "responses: conversation id of 300 characters",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x", conversation=LONG_ID),
        status=404,
    ),
    case(
        "responses: Idempotency-Key of 300 characters",
        "POST",
        "/v1/responses",
        as_json(model="MODEL", input="x"),
        headers={"idempotency-key": "k" * 300},
    ),
    case(
        "input_tokens: NUL in input",
        "POST",
        "/v1/responses/input_tokens",
        as_json(model="MODEL", input=NUL),
    ),
    case(
        "input_tokens: previous_response_id of 300 characters",
        "POST",
        "/v1/responses/input_tokens",
        as_json(model="MODEL", input="x", previous_response_id=LONG_ID),
    ),
]

CONVERSATIONS = [
    case(
        "conversations: NUL in an item",
        "POST",
        "/v1/conversations",
        as_json(items=[{"role": "user", "content": NUL}]),
    ),
    case(
        "conversations: NUL in a metadata key",
        "POST",
        "/v1/conversations",
        as_json(metadata={f"k{NUL}": "v"}),
    ),
    case(
        "conversations: item id of 65 characters",
        "POST",
        "/v1/conversations",
        as_json(items=[{**USER, "id": "msg_" + "x" * 61}]),
    ),
    case(
        "conversations: lone surrogate in an item",
        "POST",
        "/v1/conversations",
        as_json(items=[{"role": "user", "content": LONE}]),
    ),
    case(
        "conversations: integer past 64 bits in metadata",
        "POST",
        "/v1/conversations",
        as_json(metadata={"k": BIG}),
    ),
    case(
        "conversations: items nested 200 deep",
        "POST",
        "/v1/conversations",
        as_json(items=[nested(200)]),
    ),
    case(
        "conversations: item_reference id of 300 characters",
        "POST",
        "/v1/conversations",
        as_json(items=[{"type": "item_reference", "id": LONG_ID}]),
    ),
    case(
        "conversation items: NUL in an item",
        "POST",
        "/v1/conversations/{conv}/items",
        as_json(items=[{"role": "user", "content": f"a{NUL}"}]),
    ),
    case(
        "conversation items: item id of 65 characters",
        "POST",
        "/v1/conversations/{conv}/items",
        as_json(items=[{**USER, "id": "msg_" + "x" * 61}]),
    ),
    case(
        "conversation items: lone surrogate",
        "POST",
        "/v1/conversations/{conv}/items",
        as_json(items=[{"role": "user", "content": LONE}]),
    ),
    case(
        "conversation items: integer past 64 bits",
        "POST",
        "/v1/conversations/{conv}/items",
        as_json(items=[{"role": "user", "content": "x", "n": BIG}]),
    ),
    case(
        "conversation update: NUL in a metadata value",
        "POST",
        "/v1/conversations/{conv}",
        as_json(metadata={"k": NUL}),
    ),
]

CHAT = [
    case(
        "chat: NUL in a message",
        "POST",
        "/v1/chat/completions",
        as_json(model="MODEL", store=True, messages=[{"role": "user", "content": NUL}]),
    ),
    case(
        "chat: raw NUL byte in a message",
        "POST",
        "/v1/chat/completions",
        raw(
            b'{"model": "MODEL", "store": true, "messages": [{"role": "user", "content": "\x00"}]}'
        ),
    ),
    case(
        "chat: NUL in a message, streamed",
        "POST",
        "/v1/chat/completions",
        as_json(
            model="MODEL", store=True, stream=True, messages=[{"role": "user", "content": NUL}]
        ),
    ),
    case(
        "chat: model name of 300 characters",
        "POST",
        "/v1/chat/completions",
        as_json(model="MODEL" + "x" * 300, store=True, messages=MESSAGES),
    ),
    case(
        "chat: NUL in a metadata key",
        "POST",
        "/v1/chat/completions",
        as_json(model="MODEL", store=True, messages=MESSAGES, metadata={f"k{NUL}": "v"}),
    ),
    case(
        "chat: seed past 64 bits",
        "POST",
        "/v1/chat/completions",
        as_json(model="MODEL", store=True, messages=MESSAGES, seed=BIG),
    ),
    case(
        "chat: seed 2**63",
        "POST",
        "/v1/chat/completions",
        as_json(model="MODEL", store=True, messages=MESSAGES, seed=2**63),
    ),
    case(
        "chat: seed 2**64",
        "POST",
        "/v1/chat/completions",
        as_json(model="MODEL", store=True, messages=MESSAGES, seed=2**64),
    ),
    case(
        "chat: seed -2**63 - 1",
        "POST",
        "/v1/chat/completions",
        as_json(model="MODEL", store=True, messages=MESSAGES, seed=-(2**63) - 1),
    ),
    case(
        "chat: lone surrogate in a message",
        "POST",
        "/v1/chat/completions",
        as_json(model="MODEL", store=True, messages=[{"role": "user", "content": LONE}]),
    ),
    case(
        "chat: response_format schema nested 200 deep",
        "POST",
        "/v1/chat/completions",
        as_json(
            model="MODEL",
            store=True,
            messages=MESSAGES,
            response_format={"type": "json_schema", "json_schema": {"schema": nested(200)}},
        ),
    ),
    case(
        "chat update: NUL in a metadata value",
        "POST",
        "/v1/chat/completions/{cc}",
        as_json(metadata={"k": NUL}),
    ),
]

PATHS = [
    case("path: NUL in a response id", "GET", "/v1/responses/resp_%00x"),
    case("path: NUL in a response id, delete", "DELETE", "/v1/responses/resp_%00x"),
    case("path: NUL in a response id, cancel", "POST", "/v1/responses/resp_%00x/cancel"),
    case("path: NUL in a conversation id", "GET", "/v1/conversations/conv_%00/items"),
    case("path: NUL in an item id", "GET", "/v1/conversations/{conv}/items/msg_%00"),
    case("path: NUL in a chat completion id", "GET", "/v1/chat/completions/chatcmpl-%00"),
    case("query: NUL in after", "GET", "/v1/responses?after=%00"),
    case("query: NUL in after, chat", "GET", "/v1/chat/completions?after=%00"),
    case("query: NUL in after, items", "GET", "/v1/conversations/{conv}/items?after=%00"),
    case("query: NUL in after, messages", "GET", "/v1/chat/completions/{cc}/messages?after=%00"),
    case("query: NUL in a metadata filter", "GET", "/v1/responses?metadata[k]=%00"),
    case("query: NUL in a metadata filter key", "GET", "/v1/chat/completions?metadata[k%00]=v"),
    case("query: NUL in model", "GET", "/v1/responses?model=a%00"),
    case("query: limit past 64 bits", "GET", f"/v1/responses?limit={BIG}"),
    case(
        "query: limit past 64 bits, items", "GET", f"/v1/conversations/{{conv}}/items?limit={BIG}"
    ),
    case(
        "query: starting_after past 64 bits",
        "GET",
        f"/v1/responses/{{resp}}?stream=true&starting_after={BIG}",
    ),
    case(
        "query: starting_after past 64 bits, negative",
        "GET",
        f"/v1/responses/{{resp}}?stream=true&starting_after=-{BIG}",
    ),
    case("path: response id of 300 characters", "GET", f"/v1/responses/{LONG_ID}", status=404),
    case(
        "path: conversation id of 300 characters",
        "GET",
        f"/v1/conversations/{LONG_ID}/items",
        status=404,
    ),
    case(
        "path: item id of 300 characters",
        "GET",
        f"/v1/conversations/{{conv}}/items/{LONG_ID}",
        status=404,
    ),
    case(
        "path: chat completion id of 300 characters",
        "GET",
        f"/v1/chat/completions/{LONG_ID}",
        status=404,
    ),
    case("query: after of 300 characters", "GET", f"/v1/responses?after=a{LONG_ID}", status=200),
    case(
        "query: model of 300 characters",
        "GET",
        f"/v1/chat/completions?model={LONG_ID}",
        status=200,
    ),
]


def normalized(answer: httpx.Response, target: Target) -> tuple[int, str]:
    return answer.status_code, replace_ids(
        answer.text, {value: f"<{name}>" for name, value in target.ids.items()}
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "headers"), RESPONSES + CONVERSATIONS + CHAT + PATHS
)
def test_refused_alike_on_both_databases_before_the_model(
    targets: dict[str, Target],
    fake_upstream: FakeUpstream,
    model: str,
    method: str,
    path: str,
    body: Body,
    status: int,
    headers: dict[str, str],
) -> None:
    content = body(model) if body else None
    if content is not None:
        headers = {"content-type": "application/json", **headers}
    answers = {}
    for backend, target in targets.items():
        with httpx.Client(base_url=target.base_url, timeout=30) as api:
            answers[backend] = api.request(
                method, path.format(**target.ids), content=content, headers=headers
            )
    for backend, answer in answers.items():
        assert answer.status_code == status, (backend, answer.status_code, answer.text)
        if status >= 400:
            error = answer.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}, (backend, error)
            assert error["type"] == "invalid_request_error", (backend, error)
    assert normalized(answers["postgres"], targets["postgres"]) == normalized(
        answers["sqlite"], targets["sqlite"]
    )
    assert [r for r in fake_upstream.requests() if str(r.get("model")).startswith(model)] == []
