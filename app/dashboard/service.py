"""The dashboard's reads and its two actions, for one project at a time.

Every read goes through the repositories the API serves from, scoped by the selected project,
so a page shows exactly what that project's API key would see (plus, on a thread, its
tombstones, drawn as deleted). Cancel is the API's cancel; requeue is `tether jobs requeue`,
limited to the project.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.background.runtime import JobRuntime
from app.chat.repository import ChatCompletionsRepository
from app.config import Settings
from app.conversations.repository import ConversationsRepository
from app.dashboard.filters import ResponseFilter
from app.dashboard.views import Node, tree
from app.jobs import Enqueuer
from app.keys.repository import KeysRepository
from app.kit.eventlog import EventLog
from app.kit.listing import PageQuery
from app.ops import export as exporting
from app.ops import jobs as ops_jobs
from app.ops.workers import WorkerBeat, live_workers
from app.responses import service as responses_service
from app.responses.domain import IN_FLIGHT, ResponseStatus, StoredResponse
from app.responses.housekeeping import HousekeepingRepository, JobRow
from app.responses.render import render_response
from app.responses.repository import ResponsesRepository
from app.responses.tree import MAX_NODES, ThreadRepository
from app.webhooks.repository import DeliveriesRepository, EndpointsRepository

log = logging.getLogger(__name__)

PAGE = 25
# Deliveries shown per webhook endpoint, and jobs per list on the jobs page.
RECENT = 10
ALL_STATUSES = list(ResponseStatus)


async def projects(engine: AsyncEngine, default_project_id: str) -> list[dict[str, Any]]:
    """Every project, the default one (keyless requests' project) first even with no row."""
    async with engine.connect() as conn:
        found = await KeysRepository(conn).projects()
    if not any(p["id"] == default_project_id for p in found):
        found.insert(0, {"id": default_project_id, "name": "default"})
    return found


@dataclass(slots=True)
class Page:
    rows: list[dict[str, Any]]
    next_after: str | None  # the cursor of the next (older) page, if any


async def overview(engine: AsyncEngine, project_id: str) -> tuple[dict[str, int], Page]:
    """Responses by status, and the newest few."""
    async with engine.connect() as conn:
        counts = await HousekeepingRepository(conn).count_by_status(ALL_STATUSES, project_id)
    recent = await responses(engine, project_id, ResponseFilter(), None, limit=10)
    return counts, recent


async def responses(
    engine: AsyncEngine,
    project_id: str,
    wanted: ResponseFilter,
    after: str | None,
    limit: int = PAGE,
) -> Page:
    query = PageQuery(after=after, limit=limit, order="desc")
    async with engine.connect() as conn:
        rows = await ResponsesRepository(conn).list_page(
            project_id,
            query,
            model=wanted.model,
            status=wanted.status,
            metadata=wanted.metadata,
            since=wanted.since,
            until=wanted.until,
        )
    more = len(rows) > limit
    shown: list[dict[str, Any]] = [dict(row) for row in rows[:limit]]
    return Page(shown, shown[-1]["id"] if more and shown else None)


@dataclass(slots=True)
class Detail:
    row: StoredResponse
    input: list[dict[str, Any]]
    rendered: dict[str, Any]  # the Response object, as the API returns it
    thread: Node | None
    thread_cut: bool  # the thread has more turns than are drawn


async def response(engine: AsyncEngine, project_id: str, response_id: str) -> Detail | None:
    async with engine.connect() as conn:
        repo = ResponsesRepository(conn)
        row = await repo.get(project_id, response_id)
        if row is None:
            return None
        items = await repo.get_input(project_id, response_id) or []
        threads = ThreadRepository(conn)
        root = await threads.root(project_id, response_id)
        nodes = await threads.descendants(project_id, root) if root else []
    drawn = tree(nodes[:MAX_NODES], root, response_id) if root else None
    return Detail(row, items, render_response(row), drawn, len(nodes) > MAX_NODES)


async def conversations(engine: AsyncEngine, project_id: str, after: str | None) -> Page:
    query = PageQuery(after=after, limit=PAGE, order="desc")
    async with engine.connect() as conn:
        rows = await ConversationsRepository(conn).list_page(project_id, query)
    return Page(rows[:PAGE], rows[PAGE - 1]["id"] if len(rows) > PAGE else None)


async def conversation(
    engine: AsyncEngine, project_id: str, conversation_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    async with engine.connect() as conn:
        repo = ConversationsRepository(conn)
        found = await repo.get(project_id, conversation_id)
        if found is None:
            return None
        return found, await repo.items(conversation_id)


async def chats(
    engine: AsyncEngine,
    project_id: str,
    model: str | None,
    metadata: dict[str, str],
    after: str | None,
) -> Page:
    query = PageQuery(after=after, limit=PAGE, order="desc")
    async with engine.connect() as conn:
        rows = await ChatCompletionsRepository(conn).list_page(
            project_id, query, model=model, metadata=metadata
        )
    shown = [{**row["completion"], "metadata": row["metadata"]} for row in rows[:PAGE]]
    return Page(shown, shown[-1]["id"] if len(rows) > PAGE else None)


async def chat(
    engine: AsyncEngine, project_id: str, completion_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    async with engine.connect() as conn:
        repo = ChatCompletionsRepository(conn)
        found = await repo.get(project_id, completion_id)
        messages = await repo.messages(project_id, completion_id)
    if found is None or messages is None:
        return None
    return {**found["completion"], "metadata": found["metadata"]}, messages


@dataclass(slots=True)
class Jobs:
    counts: dict[str, int]
    oldest_queued: tuple[str, int] | None
    running: list[JobRow]  # queued and in progress: what may be cancelled
    failed: list[JobRow]
    mode: str  # "celery" or "embedded"
    workers: list[WorkerBeat] | None = None  # Celery mode; None: Redis did not answer
    in_flight_here: int | None = None  # embedded mode: jobs this process runs
    problems: list[str] = field(default_factory=list)


async def jobs(
    engine: AsyncEngine,
    project_id: str,
    settings: Settings,
    redis: Redis | None,
    enqueuer: Enqueuer,
) -> Jobs:
    async with engine.connect() as conn:
        repo = HousekeepingRepository(conn)
        counts = await repo.count_by_status(ALL_STATUSES, project_id)
        oldest = await repo.oldest_queued(project_id)
        running: list[JobRow] = []
        for status in (ResponseStatus.IN_PROGRESS, ResponseStatus.QUEUED):
            running += await repo.jobs(status, RECENT, project_id)
        failed = await repo.jobs(ResponseStatus.FAILED, RECENT, project_id)
    found = Jobs(counts, oldest, running, failed, "celery" if settings.redis_url else "embedded")
    if isinstance(enqueuer, JobRuntime):
        found.in_flight_here = len(enqueuer.running)
    if redis is not None:
        try:
            async with asyncio.timeout(2):
                found.workers = await live_workers(redis, settings.celery_queue)
        except Exception as exc:  # Redis away: the rest of the page is still worth having
            found.problems.append(
                f"Could not ask Redis for the live workers ({type(exc).__name__})."
            )
    return found


async def cancel(engine: AsyncEngine, project_id: str, response_id: str) -> str:
    """The API's cancel; the status the response has after it."""
    done = await responses_service.cancel_response(engine, project_id, response_id)
    return str(done["status"])


async def requeue(
    engine: AsyncEngine,
    settings: Settings,
    project_id: str,
    response_id: str,
    server: tuple[EventLog, Enqueuer],
) -> bool:
    return await ops_jobs.requeue(
        engine, settings, response_id, project_id=project_id, server=server
    )


def cancellable(row: StoredResponse) -> bool:
    return bool(row["background"]) and row["status"] in IN_FLIGHT


async def webhooks(engine: AsyncEngine, project_id: str) -> list[dict[str, Any]]:
    """The project's endpoints, each with its most recent deliveries."""
    async with engine.connect() as conn:
        found = await EndpointsRepository(conn).list_page(
            project_id, PageQuery(limit=100, order="asc")
        )
        deliveries = DeliveriesRepository(conn)
        return [
            {**row, "deliveries": await deliveries.list_for_endpoint(row["id"], RECENT)}
            for row in found[:100]
        ]


async def export(
    engine: AsyncEngine,
    project_id: str,
    kind: exporting.Kind,
    wanted: ResponseFilter,
    write: Callable[[bytes], Any],
) -> int:
    """`tether export` of the current filter (its status aside: an export holds the completed
    responses, as training data wants them)."""
    return await exporting.export(
        engine,
        project_id,
        kind,
        write,
        since=wanted.since,
        until=wanted.until,
        metadata=wanted.metadata,
        model=wanted.model,
    )
