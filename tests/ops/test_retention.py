"""Retention (app/ops/retention.py) on real databases: rows back-dated in the database, then
purged by the rule, by the embedded supervisor, and claimed once per interval across workers."""

import asyncio
import time
import uuid

import openai
import pytest

from app.config import Settings
from app.db import create_engine
from app.ops import retention
from app.ops.retention import Purged, RetentionSchedule
from tests.conftest import sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import (
    TEST_REDIS_URL,
    execute,
    poll_status,
    query,
    running_server,
    streamed_background,
    wait_until,
)

DAY = 86_400


def backdate(url: str, ids: list[str], days: float = 40) -> None:
    for response_id in ids:
        execute(
            url,
            "UPDATE responses SET created_at = created_at - :s WHERE id = :id",
            s=int(days * DAY),
            id=response_id,
        )


def backdate_chat(url: str, ids: list[str], days: float = 40) -> None:
    for completion_id in ids:
        execute(
            url,
            "UPDATE chat_completions SET created = created - :s WHERE id = :id",
            s=int(days * DAY),
            id=completion_id,
        )


def purge(settings: Settings, days: float = 30) -> Purged:
    async def run() -> Purged:
        engine = create_engine(settings)
        try:
            return await retention.purge(engine, days)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def response_ids(url: str) -> set[object]:
    return {row[0] for row in query(url, "SELECT id FROM responses")}


def sent_texts(fake: FakeUpstream, model: str) -> list[str]:
    """The contents of the messages the model was last sent."""
    return [str(m.get("content")) for m in fake.requests(model)[-1]["messages"]]


class TestRule:
    def test_old_rows_go_threads_stay_whole(
        self, own_settings: Settings, fake_upstream: FakeUpstream, model: str
    ) -> None:
        url = own_settings.database_url
        with running_server(own_settings) as server, sdk(server.url) as client:
            leaf = client.responses.create(model=model, input="an old leaf")
            b1 = client.responses.create(model=model, input="My name is Ada.")
            b2 = client.responses.create(model=model, input="Hi", previous_response_id=b1.id)
            c1 = client.responses.create(model=model, input="gone one")
            c2 = client.responses.create(model=model, input="gone two", previous_response_id=c1.id)
            conversation = client.conversations.create()
            in_conversation = client.responses.create(
                model=model, input="kept in its conversation", conversation=conversation.id
            )
            job = streamed_background(client, model=model, input="a background one")
            poll_status(client, job.id)
            keyed = client.responses.create(
                model=model, input="keyed", extra_headers={"Idempotency-Key": "retention-key"}
            )
            old_chat = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "old"}], store=True
            )
            new_chat = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "new"}], store=True
            )
            old = [leaf.id, b1.id, c1.id, c2.id, in_conversation.id, job.id, keyed.id]
            backdate(url, old)
            backdate_chat(url, [old_chat.id])
            events = "SELECT count(*) FROM response_events WHERE response_id = :id"
            assert query(url, events, id=job.id)[0][0] > 0
            items = "SELECT count(*) FROM response_items WHERE response_id = :id"
            assert query(url, items, id=leaf.id)[0][0] > 0

            assert purge(own_settings) == Purged(responses=6, tombstoned=1, chat_completions=1)

            assert response_ids(url) == {b1.id, b2.id}
            deleted = query(url, "SELECT deleted_at FROM responses WHERE id = :id", id=b1.id)
            assert deleted[0][0] is not None  # a tombstone, as a delete makes it
            with pytest.raises(openai.NotFoundError):
                client.responses.retrieve(b1.id)
            # The kept turn still continues with its whole thread.
            b3 = client.responses.create(
                model=model, input="What is my name?", previous_response_id=b2.id
            )
            assert "My name is Ada." in sent_texts(fake_upstream, model)
            assert b3.status == "completed"
            # Conversations are exempt.
            assert client.conversations.retrieve(conversation.id).id == conversation.id
            assert len(client.conversations.items.list(conversation.id).data) == 2
            # What hung on the purged rows went with them.
            assert query(url, events, id=job.id)[0][0] == 0
            assert query(url, items, id=leaf.id)[0][0] == 0
            again = client.responses.create(
                model=model, input="keyed", extra_headers={"Idempotency-Key": "retention-key"}
            )
            assert again.id != keyed.id  # the key went with its response
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.retrieve(old_chat.id)
            assert client.chat.completions.retrieve(new_chat.id).id == new_chat.id

            assert purge(own_settings) == Purged()  # nothing left to do
            # Once the rest of the thread is old too, the tombstone goes with it.
            backdate(url, [b2.id, b3.id])
            assert purge(own_settings) == Purged(responses=3)
            assert response_ids(url) == {again.id}

    def test_a_tombstone_left_with_nothing_hanging_goes(
        self, own_settings: Settings, model: str
    ) -> None:
        url = own_settings.database_url
        with running_server(own_settings) as server, sdk(server.url) as client:
            first = client.responses.create(model=model, input="one")
            second = client.responses.create(
                model=model, input="two", previous_response_id=first.id
            )
            client.responses.delete(first.id)  # a tombstone: `second` chains through it
            backdate(url, [second.id])
            assert purge(own_settings) == Purged(responses=2)
            assert response_ids(url) == set()

    def test_a_job_still_running_is_kept(self, own_settings: Settings, model: str) -> None:
        url = own_settings.database_url
        with running_server(own_settings) as server, sdk(server.url) as client:
            done = client.responses.create(model=model, input="over")
        # Stuck in progress (its worker gone): kept until it ends, whatever its age.
        execute(url, "UPDATE responses SET status = 'in_progress' WHERE id = :id", id=done.id)
        backdate(url, [done.id])
        assert purge(own_settings) == Purged()
        assert response_ids(url) == {done.id}


class TestBatches:
    """Purges of more rows than a batch: every row is read once (a keyset over (created_at,
    id), newest first), threads inside a batch and across batches go whole, a thread that
    reaches a kept turn keeps its old turns as tombstones, and rows that share a second all go."""

    def layout(self, url: str, old: int) -> dict[str, list[str]]:
        """Threads written straight to the tables, `old` seconds ago unless said otherwise."""
        now = int(time.time())
        made: dict[str, list[str]] = {}

        def add(name: str, created: int, parent: str | None, status: str = "completed") -> str:
            response_id = f"resp_{name}_{uuid.uuid4().hex[:8]}"
            execute(
                url,
                "INSERT INTO responses (id, project_id, status, model, background, created_at,"
                " previous_response_id, input, messages, params, output, metadata, attempts)"
                " VALUES (:id, 'p', :status, 'm', false, :created, :parent, '[]', '[]', '{}',"
                " '[]', '{}', 0)",
                id=response_id,
                status=status,
                created=created,
                parent=parent,
            )
            execute(
                url,
                "INSERT INTO response_items (project_id, item_id, response_id)"
                " VALUES ('p', :item, :id)",
                item=f"msg_{response_id}",
                id=response_id,
            )
            made.setdefault(name, []).append(response_id)
            return response_id

        parent = None
        for turn in range(7):  # an old thread longer than a batch: goes whole
            parent = add("gone", now - old - 100 + turn, parent)
        parent = None
        for turn in range(5):  # old turns under a kept one: tombstones
            parent = add("kept", now - old - 50 + turn, parent)
        add("kept", now, parent)
        for _ in range(5):  # leaves that share their second
            add("tie", now - old - 10, None)
        running = add("run", now - old - 5, None)
        add("run", now - old - 4, running, status="in_progress")  # kept, and so its parent
        for n in range(5):
            execute(
                url,
                "INSERT INTO chat_completions (id, project_id, model, created, metadata,"
                " messages, request, completion) VALUES (:id, 'p', 'm', :created, '{}', '[]',"
                " '{}', '{}')",
                id=f"chatcmpl-{n}-{uuid.uuid4().hex[:8]}",
                created=now - old - (n // 3),  # ties across a batch's end too
            )
        return made

    @pytest.mark.parametrize("batch", [2, 3, 500])
    def test_every_batch_size_leaves_the_same(self, own_database_url: str, batch: int) -> None:
        url = own_database_url
        made = self.layout(url, old=40 * DAY)

        async def work() -> Purged:
            engine = create_engine(Settings(database_url=url))
            try:
                return await retention.purge(engine, 30, batch=batch)
            finally:
                await engine.dispose()

        assert asyncio.run(work()) == Purged(responses=12, tombstoned=6, chat_completions=5)
        kept = {*made["kept"], *made["run"]}
        assert response_ids(url) == kept
        tombstones = query(url, "SELECT id FROM responses WHERE deleted_at IS NOT NULL")
        assert {row[0] for row in tombstones} == {*made["kept"][:5], made["run"][0]}
        items = {row[0] for row in query(url, "SELECT response_id FROM response_items")}
        assert items == kept
        assert query(url, "SELECT count(*) FROM chat_completions") == [(0,)]


class TestSchedule:
    def test_the_embedded_supervisor_purges(
        self, own_settings: Settings, fake_upstream: FakeUpstream, model: str
    ) -> None:
        url = own_settings.database_url
        settings = own_settings.model_copy(update={"retention_interval": 0.2})
        with running_server(settings) as server, sdk(server.url) as client:
            old = client.responses.create(model=model, input="old")
            kept = client.responses.create(model=model, input="new")
            chat = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "old"}], store=True
            )
            backdate(url, [old.id])
            backdate_chat(url, [chat.id])
            wait_until(
                lambda: (
                    response_ids(url) == {kept.id}
                    and not query(url, "SELECT id FROM chat_completions")
                ),
                what="the supervisor's purge",
            )

    def test_retention_days_zero_keeps_everything(self, own_settings: Settings) -> None:
        async def run(days: float) -> bool:
            settings = own_settings.model_copy(
                update={"retention_days": days, "retention_interval": 0.01}
            )
            engine = create_engine(settings)
            schedule = RetentionSchedule(engine, settings)
            schedule.next_at = 0.0  # due
            try:
                schedule.tick()
                return schedule.task is not None
            finally:
                await schedule.stop()
                await engine.dispose()

        assert asyncio.run(run(0)) is False
        assert asyncio.run(run(30)) is True

    def test_one_worker_claims_each_interval(self, own_settings: Settings) -> None:
        settings = own_settings.model_copy(
            update={"redis_url": TEST_REDIS_URL, "celery_queue": f"q-{uuid.uuid4().hex[:8]}"}
        )

        async def claims() -> list[bool]:
            engine = create_engine(settings)
            try:
                workers = [RetentionSchedule(engine, settings) for _ in range(3)]
                return [await w._claim() for w in workers]
            finally:
                await engine.dispose()

        assert asyncio.run(claims()) == [True, False, False]
