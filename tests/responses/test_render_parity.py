"""The Response object is rendered byte for byte the same on PostgreSQL and SQLite.

Two servers, one per backend, are put through the same sequence; every answer's raw bytes are
compared once ids and timestamps (which differ between any two runs) are replaced by
placeholders: each distinct id by the same placeholder wherever it appears, numbered in order of
first appearance, so the structure (which id is where) is compared exactly too.
"""

import re
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from tests.conftest import SMALL_POOL, UPSTREAM_TIMEOUT
from tests.fakes.upstream import FakeUpstream
from tests.harness import migrated_database, running_server

IDS = re.compile(rb"\b(?:resp|msg|rs|fc|call)_(?:[0-9a-f]{48}|\d+)\b")
TIMESTAMPS = re.compile(rb'"(created_at|completed_at)":\d+')
TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
TEXT_FORMAT = {
    "format": {
        "type": "json_schema",
        "name": "answer",
        "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        "strict": True,
    }
}


class Placeholders:
    """Replaces ids and timestamps; the same id gets the same placeholder every time."""

    def __init__(self) -> None:
        self.ids: dict[bytes, bytes] = {}

    def _id(self, match: re.Match[bytes]) -> bytes:
        found = match.group(0)
        if found not in self.ids:
            prefix = found.split(b"_", 1)[0]
            self.ids[found] = b"%s_<%d>" % (prefix, len(self.ids))
        return self.ids[found]

    def __call__(self, body: bytes) -> bytes:
        return TIMESTAMPS.sub(rb'"\1":<ts>', IDS.sub(self._id, body))


def first_difference(a: bytes, b: bytes) -> str:
    """Where two bodies part, with some context: PostgreSQL's bytes, then SQLite's."""
    at = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    start = max(0, at - 60)
    return f"{a[start : at + 60]!r} != {b[start : at + 60]!r}"


def exchange(url: str, fake: FakeUpstream, model: str) -> dict[str, bytes]:
    """The same requests against one server: every answer's raw body, by what it was."""
    out: dict[str, bytes] = {}
    responses = f"{url}/v1/responses"

    def create(name: str, body: dict[str, Any]) -> str:
        answer = httpx.post(responses, json={"model": model, **body}, timeout=15.0)
        assert answer.status_code == 200, answer.text
        out[f"create {name}"] = answer.content
        if body.get("stream"):
            found = IDS.search(answer.content)
            assert found is not None
            return found.group(0).decode()
        return str(answer.json()["id"])

    fake.script(model, reply='{"ok": true}')
    plain = create(
        "plain",
        {
            "input": "the weather?",
            "instructions": "Answer in JSON.",
            "metadata": {"topic": "parity", "b": "2", "a": "1"},
            "tools": TOOLS,
            "text": TEXT_FORMAT,
            "temperature": 0.5,
        },
    )
    fake.script(model, reply="streamed in the background", chunks=3)
    streamed = create("background stream", {"input": "go", "background": True, "stream": True})
    fake.script(model, reasoning_content="let me think", reply="thought through", chunks=2)
    reasoned = create("reasoning", {"input": "think", "reasoning": {"effort": "low"}})
    fake.script(model, tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}])
    called = create("tool call", {"input": "Paris?", "tools": TOOLS, "metadata": {"k": "v"}})

    for name, response_id in [
        ("plain", plain),
        ("background stream", streamed),
        ("reasoning", reasoned),
        ("tool call", called),
    ]:
        out[f"retrieve {name}"] = httpx.get(f"{responses}/{response_id}").content
        replay = httpx.get(f"{responses}/{response_id}", params={"stream": "true"}, timeout=15.0)
        out[f"replay {name}"] = replay.content
    out["list"] = httpx.get(responses, params={"model": model}).content
    return out


def served(backend: str, tmp: Path, fake: FakeUpstream, model: str) -> dict[str, bytes]:
    with migrated_database(backend, str(tmp)) as database_url:
        settings = Settings.model_validate(
            {
                "database_url": database_url,
                "upstream_base_url": f"{fake.url}/v1",
                "upstream_api_key": "sk-upstream-test",
                "upstream_timeout": UPSTREAM_TIMEOUT,
                **SMALL_POOL,
            }
        )
        with running_server(settings) as server:
            answers = exchange(server.url, fake, model)
    normalize = Placeholders()
    return {name: normalize(body) for name, body in answers.items()}


class TestRenderParity:
    def test_postgres_and_sqlite_answer_the_same_bytes(
        self, fake_upstream: FakeUpstream, tmp_path: Path, model: str
    ) -> None:
        on_postgres = served("postgres", tmp_path, fake_upstream, model)
        on_sqlite = served("sqlite", tmp_path, fake_upstream, model)
        assert list(on_postgres) == list(on_sqlite)
        differing = [name for name in on_postgres if on_postgres[name] != on_sqlite[name]]
        first = differing[0] if differing else ""
        assert differing == [], (
            f"rendered differently: {differing}; "
            f"{first}: {first_difference(on_postgres[first], on_sqlite[first])}"
        )
