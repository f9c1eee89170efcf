"""The operators' commands (`tether status | jobs | purge | export | --version`), run as an
operator runs them: the venv's `tether` in a subprocess, configured by the environment."""

import asyncio
import importlib.metadata
import uuid
from pathlib import Path
from typing import Any, get_args

import orjson
import pytest
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionToolMessageParam,
    ChatCompletionToolParam,
    ChatCompletionUserMessageParam,
)
from pydantic import TypeAdapter

from app.config import Settings
from app.db import create_engine
from app.ops import export as exporting
from tests.auth.harness import Cli
from tests.conftest import sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import TEST_REDIS_URL, poll_status, query, running_server, streamed_background
from tests.ops.test_retention import backdate, backdate_chat

MESSAGE = TypeAdapter(ChatCompletionMessageParam)
TOOL = TypeAdapter(ChatCompletionToolParam)
BY_ROLE: dict[str, Any] = {
    "system": ChatCompletionSystemMessageParam,
    "user": ChatCompletionUserMessageParam,
    "assistant": ChatCompletionAssistantMessageParam,
    "tool": ChatCompletionToolMessageParam,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def valid_message(message: dict[str, Any]) -> None:
    """As the SDK types it: one of its message params, with no key that type does not have
    (pydantic alone would let extra keys through a TypedDict)."""
    MESSAGE.validate_python(message)
    typed = BY_ROLE[message["role"]]
    assert set(message) <= set(typed.__annotations__), message
    TypeAdapter(typed).validate_python(message)


def table(stdout: str) -> list[dict[str, str]]:
    lines = stdout.splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def fields(stdout: str) -> dict[str, str]:
    """`name: value` lines as a dict."""
    return dict(line.split(": ", 1) for line in stdout.splitlines())


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture
def cli(own_settings: Settings, tmp_path: Path) -> Cli:
    return Cli(own_settings, tmp_path)


def test_version(cli: Cli) -> None:
    assert cli.ok("--version").strip() == f"tether {importlib.metadata.version('tether')}"


class TestJobs:
    def test_status_list_and_requeue_of_a_failed_job(
        self, own_settings: Settings, cli: Cli, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, status=400, error_message="no such thing")
        with running_server(own_settings) as server, sdk(server.url) as client:
            job = streamed_background(client, model=model, input="try me")
            assert poll_status(client, job.id).status == "failed"
            fake_upstream.script(model, reply="Second time lucky.")

            status = fields(cli.ok("status"))
            assert status["mode"].startswith("embedded")
            assert status["database"].startswith("reachable")
            assert status["responses failed"] == "1"
            assert status["responses queued"] == "0"
            assert status["oldest queued"] == "-"

            [row] = table(cli.ok("jobs", "list", "--status", "failed"))
            assert row["ID"] == job.id
            assert row["PROJECT"] == own_settings.default_project_id
            assert (row["MODEL"], row["STATUS"], row["ATTEMPTS"]) == (model, "failed", "1")
            assert row["ERROR"] not in ("", "-")
            assert table(cli.ok("jobs", "list", "--status", "queued", "--limit", "5")) == []

            assert f"requeued {job.id}" in cli.ok("jobs", "requeue", job.id)
            done = poll_status(client, job.id)  # the embedded sweeper runs it
            assert done.status == "completed"
            assert done.output_text == "Second time lucky."
            assert done.error is None
            # Attempts keep counting across a requeue: they are the token a worker still holding
            # the failed attempt would write with, and must be refused.
            attempts = query(own_settings.database_url, "SELECT attempts FROM responses")
            assert attempts == [(2,)]
            # Its stream is the new run's, from the start, with no trace of the failure.
            with client.responses.retrieve(job.id, stream=True) as stream:
                kinds = [event.type for event in stream]
            assert kinds[:2] == ["response.created", "response.queued"]
            assert kinds[-1] == "response.completed"
            assert "response.failed" not in kinds
            numbers = query(
                own_settings.database_url,
                "SELECT sequence_number FROM response_events ORDER BY sequence_number",
            )
            assert [n for (n,) in numbers] == list(range(len(numbers)))

            # Only a failed (or stuck) background job can be requeued.
            refused = cli.run("jobs", "requeue", job.id)
            assert refused.returncode == 1
            assert "No background response" in refused.stderr
            synchronous = client.responses.create(model=model, input="not a job")
            assert cli.run("jobs", "requeue", synchronous.id).returncode == 1

    def test_status_in_celery_mode(self, own_settings: Settings, tmp_path: Path) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        settings = own_settings.model_copy(
            update={"redis_url": TEST_REDIS_URL, "celery_queue": queue}
        )
        status = fields(Cli(settings, tmp_path).ok("status"))
        assert status["mode"] == f"celery (queue '{queue}')"
        assert status["workers"] in ("0", "unknown")

    def test_status_of_an_unreachable_database(
        self, own_settings: Settings, tmp_path: Path
    ) -> None:
        gone = own_settings.model_copy(
            update={"database_url": "postgresql://nobody@127.0.0.1:1/none"}
        )
        done = Cli(gone, tmp_path).run("status")
        assert done.returncode == 1
        assert "database: unreachable" in done.stdout


class TestPurge:
    def test_dry_run_counts_what_purge_then_does(
        self, own_settings: Settings, cli: Cli, model: str
    ) -> None:
        url = own_settings.database_url
        with running_server(own_settings) as server, sdk(server.url) as client:
            leaf = client.responses.create(model=model, input="old")
            parent = client.responses.create(model=model, input="old parent")
            child = client.responses.create(
                model=model, input="new child", previous_response_id=parent.id
            )
            chat = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "old"}], store=True
            )
        backdate(url, [leaf.id, parent.id])
        backdate_chat(url, [chat.id])
        expected = {
            "responses would remove": "1",
            "responses would become tombstones": "1",
            "chat completions would remove": "1",
        }
        assert fields(cli.ok("purge", "--dry-run")) == expected
        assert len(query(url, "SELECT id FROM responses")) == 3  # nothing changed
        assert fields(cli.ok("purge", "--older-than", "100", "--dry-run")) == dict.fromkeys(
            expected, "0"
        )
        assert fields(cli.ok("purge")) == {
            "responses removed": "1",
            "responses made tombstones": "1",
            "chat completions removed": "1",
        }
        assert {r[0] for r in query(url, "SELECT id FROM responses")} == {parent.id, child.id}
        assert fields(cli.ok("purge", "--dry-run")) == dict.fromkeys(expected, "0")

    def test_retention_days_zero_purges_nothing(
        self, own_settings: Settings, tmp_path: Path, model: str
    ) -> None:
        with running_server(own_settings) as server, sdk(server.url) as client:
            old = client.responses.create(model=model, input="old")
        backdate(own_settings.database_url, [old.id], days=4000)
        off = Cli(own_settings.model_copy(update={"retention_days": 0}), tmp_path)
        assert "retention is off" in off.ok("purge")
        assert len(query(own_settings.database_url, "SELECT id FROM responses")) == 1


class TestExport:
    def test_chat_lines_are_fine_tuning_examples(
        self,
        own_settings: Settings,
        cli: Cli,
        fake_upstream: FakeUpstream,
        model: str,
        tmp_path: Path,
    ) -> None:
        tools_model = f"{model}-tools"
        fake_upstream.script(
            tools_model, tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}]
        )
        fake_upstream.script(model, reply="It is sunny in Paris.")
        with running_server(own_settings) as server, sdk(server.url) as client:
            asked = client.chat.completions.create(
                model=tools_model,
                messages=[
                    {"role": "system", "content": "You answer about the weather."},
                    {"role": "user", "content": "Weather in Paris?"},
                ],
                tools=[WEATHER],  # type: ignore[list-item]
                store=True,
                metadata={"set": "train"},
            )
            call = asked.choices[0].message.tool_calls
            assert call
            answered = client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "user", "content": "Weather in Paris?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [call[0].model_dump()],  # type: ignore[list-item]
                    },
                    {"role": "tool", "tool_call_id": call[0].id, "content": "sunny"},
                ],
                tools=[WEATHER],  # type: ignore[list-item]
                store=True,
                metadata={"set": "train"},
            )
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "not for training"}],
                store=True,
                metadata={"set": "eval"},
            )
        out = tmp_path / "chat.jsonl"
        flags = ["--kind", "chat", "--metadata", "set=train", "--output", str(out)]
        done = cli.run("export", "--project", "default", *flags)
        assert done.returncode == 0, done.stderr
        lines = jsonl(out)
        assert len(lines) == 2
        for line in lines:
            assert set(line) <= {"messages", "tools", "parallel_tool_calls"}
            for message in line["messages"]:
                valid_message(message)
            for tool in line["tools"]:
                TOOL.validate_python(tool)
            assert line["tools"] == [WEATHER]
        first, second = lines  # in id (creation) order
        assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
        assert first["messages"][-1]["tool_calls"] == [
            {
                "id": call[0].id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ]
        assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool", "assistant"]
        assert second["messages"][-1] == {"role": "assistant", "content": "It is sunny in Paris."}
        assert asked.id != answered.id

        # --since after everything: nothing; an unknown project: exit 1.
        assert (
            cli.ok("export", "--project", "default", "--kind", "chat", "--since", "2999-01-01")
            == ""
        )
        unknown = cli.run("export", "--project", "no-such-project", "--kind", "chat")
        assert unknown.returncode == 1
        assert "No project named 'no-such-project'" in unknown.stderr

    def test_responses_lines_carry_the_whole_thread(
        self, own_settings: Settings, cli: Cli, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="Noted.")
        with running_server(own_settings) as server, sdk(server.url) as client:
            one = client.responses.create(
                model=model, input="My name is Ada.", instructions="Be brief.", metadata={"k": "v"}
            )
            two = client.responses.create(
                model=model, input="I live in Paris.", previous_response_id=one.id
            )
            three = client.responses.create(
                model=model,
                input="Where do I live?",
                previous_response_id=two.id,
                instructions="Answer in French.",
                metadata={"k": "v"},
            )
            client.responses.delete(two.id)  # a tombstone still feeds the thread
        exported = cli.ok("export", "--project", "default", "--kind", "responses")
        lines = [orjson.loads(line) for line in exported.splitlines()]
        assert [line["id"] for line in lines] == [one.id, three.id]
        last = lines[-1]
        assert set(last) == {"id", "model", "created_at", "metadata", "messages"}
        assert (last["model"], last["metadata"]) == (model, {"k": "v"})
        assert last["created_at"] == three.created_at
        assert [(m["role"], m["content"]) for m in last["messages"]] == [
            ("system", "Answer in French."),
            ("user", "My name is Ada."),
            ("assistant", "Noted."),
            ("user", "I live in Paris."),
            ("assistant", "Noted."),
            ("user", "Where do I live?"),
            ("assistant", "Noted."),
        ]
        for message in last["messages"]:
            MESSAGE.validate_python(message)
        only = cli.ok(
            "export", "--project", "default", "--kind", "responses", "--metadata", "k=v"
        ).splitlines()
        assert len(only) == 2

    def test_pages_by_id_in_constant_memory(
        self, own_settings: Settings, model: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with running_server(own_settings) as server, sdk(server.url) as client:
            made = [
                client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": f"n{n}"}], store=True
                ).id
                for n in range(5)
            ]
        monkeypatch.setattr(exporting, "PAGE", 2)
        written: list[bytes] = []
        progress: list[int] = []

        async def run() -> int:
            engine = create_engine(own_settings)
            try:
                return await exporting.export(
                    engine,
                    own_settings.default_project_id,
                    "chat",
                    written.append,
                    progress=progress.append,
                )
            finally:
                await engine.dispose()

        assert asyncio.run(run()) == 5
        assert progress == [2, 4, 5]
        contents = [orjson.loads(line)["messages"][0]["content"] for line in written]
        assert contents == [f"n{n}" for n in range(5)]
        assert len(made) == 5


def test_the_sdk_message_union_has_these_roles() -> None:
    """The SDK's message param is the union this module checks against, role by role."""
    assert set(BY_ROLE.values()) <= set(get_args(ChatCompletionMessageParam))
