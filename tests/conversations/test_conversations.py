"""Conversations through the SDK: CRUD, items, and responses that read and extend them."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import poll_status


def texts(client: openai.OpenAI, conversation_id: str) -> list[tuple[str, str]]:
    """(role, text) of every item, oldest first."""
    out = []
    for item in client.conversations.items.list(conversation_id, order="asc", limit=100):
        content = item.content[0]  # type: ignore[union-attr]
        out.append((item.role, content.text))  # type: ignore[union-attr]
    return out


class TestCrud:
    def test_create_retrieve_update_delete(self, client: openai.OpenAI) -> None:
        made = client.conversations.create(
            items=[{"type": "message", "role": "user", "content": "hello"}],
            metadata={"topic": "demo"},
        )
        assert made.id.startswith("conv_")
        assert made.object == "conversation"
        assert client.conversations.retrieve(made.id).metadata == {"topic": "demo"}
        updated = client.conversations.update(made.id, metadata={"topic": "other"})
        assert updated.metadata == {"topic": "other"}
        assert client.conversations.delete(made.id).deleted is True
        with pytest.raises(openai.NotFoundError):
            client.conversations.retrieve(made.id)
        with pytest.raises(openai.NotFoundError):
            client.conversations.items.list(made.id)
        with pytest.raises(openai.NotFoundError):
            client.conversations.delete(made.id)

    def test_items(self, client: openai.OpenAI) -> None:
        conv = client.conversations.create()
        added = client.conversations.items.create(
            conv.id,
            items=[{"type": "message", "role": "user", "content": f"m{i}"} for i in range(5)],
        )
        assert len(added.data) == 5
        assert texts(client, conv.id) == [("user", f"m{i}") for i in range(5)]
        newest_first = client.conversations.items.list(conv.id, limit=2)
        assert [i.content[0].text for i in newest_first.data] == ["m4", "m3"]  # type: ignore[union-attr]
        assert newest_first.has_more is True
        walked = [i.content[0].text for i in client.conversations.items.list(conv.id, limit=2)]  # type: ignore[union-attr]
        assert walked == [f"m{i}" for i in reversed(range(5))]
        one = added.data[1]
        assert client.conversations.items.retrieve(one.id, conversation_id=conv.id).id == one.id
        after = client.conversations.items.delete(one.id, conversation_id=conv.id)
        assert after.id == conv.id
        assert [t for _, t in texts(client, conv.id)] == ["m0", "m2", "m3", "m4"]
        with pytest.raises(openai.NotFoundError):
            client.conversations.items.retrieve(one.id, conversation_id=conv.id)

    def test_at_most_20_items_per_call(self, client: openai.OpenAI) -> None:
        many: Any = [{"type": "message", "role": "user", "content": "x"}] * 21
        with pytest.raises(openai.BadRequestError) as err:
            client.conversations.create(items=many)
        assert err.value.body["param"] == "items"  # type: ignore[index]


class TestResponsesInAConversation:
    def test_each_turn_sees_the_conversation_and_extends_it(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        conv = client.conversations.create(
            items=[{"type": "message", "role": "system", "content": "be brief"}]
        )
        first = client.responses.create(model=model, input="t0", conversation=conv.id)
        assert first.conversation is not None
        assert first.conversation.id == conv.id
        client.responses.create(model=model, input="t1", conversation={"id": conv.id})
        assert fake_upstream.requests(model)[-1]["messages"] == [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "t0"},
            {"role": "assistant", "content": "reply to: t0"},
            {"role": "user", "content": "t1"},
        ]
        assert texts(client, conv.id) == [
            ("system", "be brief"),
            ("user", "t0"),
            ("assistant", "reply to: t0"),
            ("user", "t1"),
            ("assistant", "reply to: t1"),
        ]

    def test_background_and_streamed_turns_extend_it_too(
        self, client: openai.OpenAI, model: str
    ) -> None:
        conv = client.conversations.create()
        queued = client.responses.create(
            model=model, input="bg", conversation=conv.id, background=True
        )
        poll_status(client, queued.id)
        with client.responses.create(
            model=model, input="st", conversation=conv.id, stream=True
        ) as stream:
            list(stream)
        assert texts(client, conv.id) == [
            ("user", "bg"),
            ("assistant", "reply to: bg"),
            ("user", "st"),
            ("assistant", "reply to: st"),
        ]

    def test_concurrent_turns_keep_their_items_together(
        self, client: openai.OpenAI, model: str
    ) -> None:
        conv = client.conversations.create()

        def turn(n: int) -> None:
            client.responses.create(model=model, input=f"q{n}", conversation=conv.id)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(turn, range(8)))
        items = texts(client, conv.id)
        assert len(items) == 16
        for question, answer in zip(items[::2], items[1::2], strict=True):
            assert answer == ("assistant", f"reply to: {question[1]}")
        assert sorted(q for _, q in items[::2]) == sorted(f"q{n}" for n in range(8))

    def test_a_deleted_conversation_cannot_be_used(self, client: openai.OpenAI, model: str) -> None:
        conv = client.conversations.create()
        client.conversations.delete(conv.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model=model, input="x", conversation=conv.id)

    def test_a_failed_turn_adds_nothing(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        conv = client.conversations.create()
        fake_upstream.script(model, status=500)
        with pytest.raises(openai.InternalServerError):
            client.responses.create(model=model, input="x", conversation=conv.id)
        assert texts(client, conv.id) == []
