"""Stored Chat Completions through the SDK: proxy, store, list/filter/page, messages, update,
delete."""

import uuid
from typing import Any

import openai
import pytest

from tests.fakes.upstream import FakeUpstream


def tag() -> str:
    """A metadata value of this test's own: lists filtered by it see only this test's rows."""
    return uuid.uuid4().hex[:10]


class TestProxy:
    def test_every_parameter_reaches_the_upstream(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        tools: list[Any] = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "hi"}],
            temperature=0.2,
            n=1,
            stop=["x"],
            seed=7,
            logprobs=True,
            top_logprobs=2,
            tools=tools,
            response_format={"type": "json_object"},
            store=True,
            metadata={"a": "b"},
        )
        (sent,) = fake_upstream.requests(model)
        assert sent["tools"] == tools
        assert (sent["temperature"], sent["n"], sent["stop"], sent["seed"]) == (0.2, 1, ["x"], 7)
        assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
        assert sent["response_format"] == {"type": "json_object"}
        assert "store" not in sent  # ours to keep
        assert "metadata" not in sent

    def test_unstored_completions_are_404(self, client: openai.OpenAI, model: str) -> None:
        made = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "x"}]
        )
        assert made.id.startswith("chatcmpl-")
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.retrieve(made.id)

    def test_upstream_errors_are_mapped(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, status=400, error_message="bad messages")
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        assert err.value.body["message"] == "bad messages"  # type: ignore[index]
        fake_upstream.script(model, status=503)
        with pytest.raises(openai.InternalServerError) as server:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        assert server.value.status_code == 502


class TestStored:
    def test_store_retrieve_messages_update_delete(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="stored answer")
        messages: list[Any] = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
        made = client.chat.completions.create(
            model=model, messages=messages, store=True, metadata={"k": "v"}
        )
        got = client.chat.completions.retrieve(made.id)
        assert got.id == made.id
        assert got.choices[0].message.content == "stored answer"
        assert got.model_dump()["metadata"] == {"k": "v"}
        listed = client.chat.completions.messages.list(made.id)
        assert [(m.role, m.content) for m in listed.data] == [("system", "s"), ("user", "u")]
        assert [m.id for m in listed.data] == [f"{made.id}-0", f"{made.id}-1"]
        updated = client.chat.completions.update(made.id, metadata={"k": "w", "x": "y"})
        assert updated.model_dump()["metadata"] == {"k": "w", "x": "y"}
        deleted = client.chat.completions.delete(made.id)
        assert (deleted.id, deleted.deleted, deleted.object) == (
            made.id,
            True,
            "chat.completion.deleted",
        )
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.retrieve(made.id)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.delete(made.id)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.update(made.id, metadata={})

    def test_a_streamed_completion_is_stored_assembled(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, reply="one two three")
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            store=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        cid = chunks[0].id
        assert {c.id for c in chunks} == {cid}
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "one two three"
        stored = client.chat.completions.retrieve(cid)
        assert stored.choices[0].message.content == "one two three"
        assert stored.choices[0].finish_reason == "stop"
        assert stored.usage is not None

    def test_streamed_tool_calls_are_assembled(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        fake_upstream.script(model, tool_calls=[{"name": "lookup", "arguments": '{"q": "x" }'}])
        chunks = list(
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "x"}], stream=True, store=True
            )
        )
        stored = client.chat.completions.retrieve(chunks[0].id)
        (call,) = stored.choices[0].message.tool_calls or []
        assert (call.function.name, call.function.arguments) == ("lookup", '{"q": "x" }')

    def test_messages_pagination(self, client: openai.OpenAI, model: str) -> None:
        messages: list[Any] = [{"role": "user", "content": f"m{i}"} for i in range(5)]
        made = client.chat.completions.create(model=model, messages=messages, store=True)
        walked = [m.content for m in client.chat.completions.messages.list(made.id, limit=2)]
        assert walked == [f"m{i}" for i in range(5)]
        desc = client.chat.completions.messages.list(made.id, order="desc", limit=2)
        assert [m.content for m in desc.data] == ["m4", "m3"]
        assert desc.has_more is True


class TestList:
    def _make(self, client: openai.OpenAI, model: str, n: int, **metadata: str) -> list[str]:
        return [
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": str(i)}],
                store=True,
                metadata=metadata,
            ).id
            for i in range(n)
        ]

    def test_filters_alone_and_combined(self, client: openai.OpenAI, model: str) -> None:
        run = tag()
        both = self._make(client, model, 2, run=run, job="nightly")
        only_run = self._make(client, model, 2, run=run, job="hourly")
        other_model = self._make(client, f"{model}-b", 1, run=run, job="nightly")

        def ids(**kwargs: Any) -> list[str]:
            return [c.id for c in client.chat.completions.list(limit=100, **kwargs)]

        assert ids(metadata={"run": run}) == both + only_run + other_model  # asc by default
        assert ids(metadata={"run": run, "job": "nightly"}) == both + other_model
        assert ids(metadata={"run": run, "job": "nightly"}, model=model) == both
        assert ids(metadata={"run": run}, model=f"{model}-b") == other_model
        assert ids(metadata={"run": "nobody"}) == []

    @pytest.mark.parametrize("order", ["asc", "desc"])
    @pytest.mark.parametrize("limit", [1, 2, 3, 7])
    def test_pages_cover_every_row_once(
        self, client: openai.OpenAI, model: str, order: str, limit: int
    ) -> None:
        run = tag()
        made = self._make(client, model, 7, run=run)
        seen: list[str] = []
        after: str | None = None
        while True:
            page = client.chat.completions.list(
                metadata={"run": run},
                limit=limit,
                order=order,  # type: ignore[arg-type]
                **({"after": after} if after else {}),
            )
            seen += [c.id for c in page.data]
            if not page.has_more:
                break
            after = page.data[-1].id
        assert seen == (made if order == "asc" else made[::-1])

    def test_sdk_auto_pagination(self, client: openai.OpenAI, model: str) -> None:
        run = tag()
        made = self._make(client, model, 5, run=run)
        assert [c.id for c in client.chat.completions.list(metadata={"run": run}, limit=2)] == made

    def test_bad_metadata_is_a_400(self, client: openai.OpenAI, model: str) -> None:
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "x"}],
                store=True,
                metadata={"k": "v" * 513},
            )
        assert err.value.body["param"] == "metadata"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.list(metadata={f"k{i}": "v" for i in range(17)})
