"""Metadata-filtered pages (app/kit/listing.py: filtered_page) on the real databases: whichever
plan serves a page on PostgreSQL (the bounded walk, or the GIN index when the walk comes back
short), every page holds exactly the rows of the plain filter, in order, once.

The data is laid out so that both plans must serve: pages of one row walk at most
WALK_ROWS_PER_ITEM * 2 rows, and the `legacy` rows sit below more new rows than that, as a job
that stopped long ago does; `nightly` rows are spread over the new ones, as a common filter is.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.chat.repository import ChatCompletionsRepository, completions
from app.config import Settings
from app.db import create_engine
from app.kit.listing import WALK_ROWS_PER_ITEM, PageQuery
from app.responses.domain import ResponseStatus
from app.responses.repository import ResponsesRepository, responses

OLD = 12  # legacy rows, oldest of all
NEW = WALK_ROWS_PER_ITEM * 2 + 60  # newer rows: more than a one-row page's walk
MODELS = ["m1", "m2", "m3"]


def run(database_url: str, work: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        engine = create_engine(Settings(database_url=database_url))  # the app's JSON codec
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def layout(project: str) -> list[dict[str, Any]]:
    """Rows oldest first: (id, model, status, deleted, metadata) of each, ids increasing."""
    stamp = uuid.uuid4().hex[:8]  # ids of this test only, sorting in creation order
    rows = []
    for n in range(OLD + NEW):
        if n < OLD:
            meta = {"job": "legacy", "env": "prod" if n % 2 else "dev"}
        else:
            meta = {"job": "nightly" if n % 9 == 0 else "other", "env": "prod"}
        rows.append(
            {
                "id": f"{stamp}-{n:05d}",
                "project_id": project,
                "model": MODELS[n % 3],
                "status": "failed" if n % 4 == 0 else "completed",
                "deleted": n % 7 == 3,  # tombstones: never listed
                "metadata": meta,
            }
        )
    return rows


def expected(
    rows: list[dict[str, Any]], metadata: dict[str, str], **fields: str | None
) -> list[str]:
    return [
        row["id"]
        for row in rows
        if all(row["metadata"].get(k) == v for k, v in metadata.items())
        and all(v is None or row[k] == v for k, v in fields.items())
    ]


CASES = [
    pytest.param({"job": "legacy"}, {}, id="old matches"),
    pytest.param({"job": "legacy", "env": "prod"}, {"model": "m2"}, id="old matches + model"),
    pytest.param({"job": "nightly"}, {}, id="spread matches"),
    pytest.param({"job": "nightly", "env": "prod"}, {"model": "m1"}, id="spread + model"),
    pytest.param({"job": "nobody"}, {}, id="no match"),
]


class TestChatCompletions:
    @pytest.mark.parametrize(("metadata", "fields"), CASES)
    @pytest.mark.parametrize("order", ["asc", "desc"])
    @pytest.mark.parametrize("limit", [1, 5])
    def test_pages_hold_exactly_the_filtered_rows(
        self,
        database_url: str,
        metadata: dict[str, str],
        fields: dict[str, str],
        order: Literal["asc", "desc"],
        limit: int,
    ) -> None:
        project = f"proj_{uuid.uuid4().hex[:12]}"
        rows = layout(project)

        async def work(conn: AsyncConnection) -> list[str]:
            await conn.execute(
                insert(completions),
                [
                    {
                        "id": row["id"],
                        "project_id": project,
                        "model": row["model"],
                        "created": 1,
                        "metadata": row["metadata"],
                        "messages": [],
                        "request": {},
                        "completion": {"id": row["id"]},
                    }
                    for row in rows
                ],
            )
            repo = ChatCompletionsRepository(conn)
            return await walk_pages(
                lambda page: repo.list_page(
                    project, page, model=fields.get("model"), metadata=metadata
                ),
                lambda row: str(row["completion"]["id"]),
                order,
                limit,
            )

        listed = run(database_url, work)
        want = expected(rows, metadata, model=fields.get("model"))
        assert listed == (want if order == "asc" else want[::-1])


class TestResponses:
    @pytest.mark.parametrize(("metadata", "fields"), CASES)
    @pytest.mark.parametrize("order", ["asc", "desc"])
    @pytest.mark.parametrize("status", [None, "failed"])
    def test_pages_hold_exactly_the_filtered_rows(
        self,
        database_url: str,
        metadata: dict[str, str],
        fields: dict[str, str],
        order: Literal["asc", "desc"],
        status: str | None,
    ) -> None:
        project = f"proj_{uuid.uuid4().hex[:12]}"
        rows = layout(project)

        async def work(conn: AsyncConnection) -> list[str]:
            await conn.execute(
                insert(responses),
                [
                    {
                        "id": row["id"],
                        "project_id": project,
                        "status": row["status"],
                        "model": row["model"],
                        "background": False,
                        "created_at": 1,
                        "input": [],
                        "messages": [],
                        "params": {},
                        "output": [],
                        "metadata": row["metadata"],
                        "deleted_at": 1 if row["deleted"] else None,
                        "attempts": 0,
                    }
                    for row in rows
                ],
            )
            repo = ResponsesRepository(conn)
            return await walk_pages(
                lambda page: repo.list_page(
                    project,
                    page,
                    model=fields.get("model"),
                    status=ResponseStatus(status) if status else None,
                    metadata=metadata,
                ),
                lambda row: str(row["id"]),
                order,
                1,
            )

        listed = run(database_url, work)
        visible = [row for row in rows if not row["deleted"]]
        want = expected(visible, metadata, model=fields.get("model"), status=status)
        assert listed == (want if order == "asc" else want[::-1])


async def walk_pages(
    fetch: Callable[[PageQuery], Awaitable[list[Any]]],
    row_id: Callable[[Any], str],
    order: Literal["asc", "desc"],
    limit: int,
) -> list[str]:
    """Every page in turn, the way a client follows last_id; each page at most `limit` rows
    (the repository returns one more, to tell has_more)."""
    listed: list[str] = []
    after: str | None = None
    for _ in range(OLD + NEW + 1):  # a cursor that does not move must fail, not loop
        found = await fetch(PageQuery(after=after, limit=limit, order=order))
        ids = [row_id(row) for row in found]
        assert len(ids) <= limit + 1
        listed += ids[:limit]
        if len(ids) <= limit:
            return listed
        after = ids[limit - 1]
    raise AssertionError(f"more pages than rows; listed so far: {listed[:10]}...")
