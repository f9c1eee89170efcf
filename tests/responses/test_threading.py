"""previous_response_id: the model sees the whole branch, in order, and nothing else."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
import pytest
from sqlalchemy import event

from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread, query


def _turns(
    client: openai.OpenAI, model: str, texts: list[str], previous: str | None = None, **kwargs: Any
) -> list[str]:
    ids = []
    for text in texts:
        previous = client.responses.create(
            model=model, input=text, previous_response_id=previous, **kwargs
        ).id
        ids.append(previous)
    return ids


def _history(n: int) -> list[dict[str, str]]:
    """What the model must see after n turns "t0".."t{n-1}" answered by the fake's default."""
    out = []
    for i in range(n):
        out += [
            {"role": "user", "content": f"t{i}"},
            {"role": "assistant", "content": f"reply to: t{i}"},
        ]
    return out


class TestThreading:
    def test_deep_chain_forwards_every_turn_in_order(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        ids = _turns(client, model, [f"t{i}" for i in range(30)])
        client.responses.create(model=model, input="last", previous_response_id=ids[-1])
        sent = fake_upstream.requests(model)[-1]["messages"]
        assert sent == [*_history(30), {"role": "user", "content": "last"}]

    def test_instructions_are_not_carried_over(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        first = client.responses.create(model=model, input="t0", instructions="Old rules.")
        second = client.responses.create(
            model=model, input="t1", previous_response_id=first.id, instructions="New rules."
        )
        client.responses.create(model=model, input="t2", previous_response_id=second.id)
        calls = [r["messages"] for r in fake_upstream.requests(model)]
        assert calls[1] == [
            {"role": "system", "content": "New rules."},
            *_history(1),
            {"role": "user", "content": "t1"},
        ]
        assert calls[2] == [*_history(2), {"role": "user", "content": "t2"}]
        assert client.responses.retrieve(second.id).instructions == "New rules."

    def test_forks_see_only_their_own_branch(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        (root,) = _turns(client, model, ["t0"])
        left = _turns(client, model, ["left-1", "left-2"], previous=root)
        _turns(client, model, ["right-1"], previous=root)
        client.responses.create(model=model, input="left-3", previous_response_id=left[-1])
        sent = fake_upstream.requests(model)[-1]["messages"]
        assert [m["content"] for m in sent] == [
            "t0",
            "reply to: t0",
            "left-1",
            "reply to: left-1",
            "left-2",
            "reply to: left-2",
            "left-3",
        ]

    def test_list_input_continues_a_thread(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        (root,) = _turns(client, model, ["t0"])
        resp = client.responses.create(
            model=model,
            previous_response_id=root,
            input=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        )
        assert resp.previous_response_id == root
        sent = fake_upstream.requests(model)[-1]["messages"]
        assert sent == [
            *_history(1),
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
        ]

    def test_unknown_previous_response(self, client: openai.OpenAI, model: str) -> None:
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(model=model, input="x", previous_response_id="resp_nope")
        assert err.value.body == {
            "message": "Previous response with id 'resp_nope' not found.",
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }

    def test_usage_counts_the_replayed_chain(self, client: openai.OpenAI, model: str) -> None:
        # The fake counts prompt words: the replay makes each turn's prompt grow.
        first = client.responses.create(model=model, input="one two")
        second = client.responses.create(model=model, input="three", previous_response_id=first.id)
        assert first.usage is not None
        assert second.usage is not None
        assert first.usage.input_tokens == 2
        assert second.usage.input_tokens == 2 + 4 + 1  # "one two" + "reply to: one two" + "three"


@contextmanager
def _statements(server: ServerThread) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    engine = server.app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


class TestOneQuery:
    def test_the_context_is_read_with_one_query_whatever_the_depth(
        self, client: openai.OpenAI, server: ServerThread, model: str
    ) -> None:
        ids = _turns(client, model, [f"t{i}" for i in range(25)])
        seen_per_depth = []
        for previous in (ids[0], ids[-1]):
            with _statements(server) as seen:
                client.responses.create(model=model, input="x", previous_response_id=previous)
            seen_per_depth.append(seen)
        # Only the request's own statements on the responses table: the server's supervisor
        # (sweeps, retention) and the key cache run on the same engine at their own times.
        own = [
            [
                s
                for s in seen
                if "responses" in s and s.lstrip().upper().startswith(("SELECT", "WITH", "INSERT"))
            ]
            for seen in seen_per_depth
        ]
        shallow, deep = own
        assert len(shallow) == len(deep)
        reads = [[s for s in statements if "INSERT" not in s.upper()] for statements in own]
        assert [len(r) for r in reads] == [1, 1]


class TestDeleteInAChain:
    """Deleting a middle turn hides it, but never takes it out of later turns' context."""

    def test_descendants_keep_their_full_context(
        self, client: openai.OpenAI, fake_upstream: FakeUpstream, model: str
    ) -> None:
        ids = _turns(client, model, ["t0", "t1", "t2"])
        client.responses.delete(ids[1])

        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(ids[1])
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(model=model, input="x", previous_response_id=ids[1])
        assert err.value.body["code"] == "previous_response_not_found"

        client.responses.create(model=model, input="t3", previous_response_id=ids[2])
        sent = fake_upstream.requests(model)[-1]["messages"]
        assert sent == [*_history(3), {"role": "user", "content": "t3"}]

    def test_tombstones_are_purged_when_nothing_hangs_from_them(
        self, client: openai.OpenAI, database_url: str, model: str
    ) -> None:
        ids = _turns(client, model, ["t0", "t1", "t2"])
        client.responses.delete(ids[1])  # tombstone: t2 still needs it
        client.responses.delete(ids[0])  # tombstone: t1 still hangs from it

        def stored() -> set[object]:
            rows = query(
                database_url,
                "SELECT id FROM responses WHERE id IN (:a, :b, :c)",
                a=ids[0],
                b=ids[1],
                c=ids[2],
            )
            return {row[0] for row in rows}

        assert stored() == set(ids)
        client.responses.delete(ids[2])  # the leaf goes, and with it both tombstones
        assert stored() == set()

    def test_deleting_a_leaf_leaves_its_live_parent(
        self, client: openai.OpenAI, model: str
    ) -> None:
        ids = _turns(client, model, ["t0", "t1"])
        client.responses.delete(ids[1])
        assert client.responses.retrieve(ids[0]).status == "completed"
