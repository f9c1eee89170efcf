"""Server-sent events for responses: a synchronous stream, and following a background one.

A synchronous stream writes its row `in_progress` before the first event and always leaves it
terminal: if the client goes away mid-answer the upstream call is closed and the row keeps what
was generated, `incomplete` with reason `client_disconnected`.

Following a background response reads its event log from `starting_after`, then tails it live
until a terminal event; any API replica can serve it. A finished response whose log expired
(or that never had one) is replayed from what was stored.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from app.background.eventlog import EventLog
from app.conversations.repository import record_turn
from app.providers.base import ModelProvider, UpstreamFailure
from app.responses.events import (
    TERMINAL_EVENTS,
    TurnEvents,
    final_event_type,
    replay_finished,
)
from app.responses.render import render_response
from app.responses.repository import ResponsesRepository

log = logging.getLogger(__name__)

IN_FLIGHT = ("queued", "in_progress")
# How often a follower with nothing new checks the row (the log's read blocks this long).
FOLLOW_BLOCK = 1.0


def sse(event: dict[str, Any]) -> bytes:
    kind = str(event["type"]).encode()
    return b"event: " + kind + b"\ndata: " + orjson.dumps(event) + b"\n\n"


async def synchronous(
    engine: AsyncEngine,
    provider: ModelProvider,
    payload: dict[str, Any],
    row: dict[str, Any],
    store: bool,
) -> AsyncIterator[dict[str, Any]]:
    """The events of a turn streamed as the model answers; `row` is already stored if `store`."""
    turn = TurnEvents(render_response(row))
    yield turn.lifecycle("response.created")
    yield turn.lifecycle("response.in_progress")
    finished = False
    try:
        try:
            async for delta in provider.stream(payload):
                for event in turn.delta(delta):
                    yield event
            values, closing = turn.finish(row["messages"])
        except UpstreamFailure as failure:
            values, closing = turn.fail(failure)
        await _finish(engine, row, values, store, record=True)
        finished = True
        for event in closing:
            yield event
    finally:
        if store and not finished:
            # Cancelled (the client went away) or failed on our side: never left in_progress.
            abandoned = turn.abandon(row["messages"])
            await asyncio.shield(_finish(engine, row, abandoned, store, record=False))


async def _finish(
    engine: AsyncEngine, row: dict[str, Any], values: dict[str, Any], store: bool, record: bool
) -> None:
    """The stream's end written: the row (if stored) and, for a turn that ended normally, its
    items appended to the response's conversation."""
    async with engine.begin() as conn:
        if store and not await ResponsesRepository(conn).finish_in_progress(row["id"], values):
            return
        if record and values["status"] in ("completed", "incomplete"):
            items = row["input"] + values.get("output", [])
            await record_turn(conn, row["project_id"], row["params"], items)


async def follow(
    engine: AsyncEngine, events: EventLog, project_id: str, response_id: str, after: int
) -> AsyncIterator[dict[str, Any]]:
    """Every event after `after`, then live ones until the response ends."""
    last = after
    quiet_since_finished = 0
    while True:
        batch = await events.read(response_id, last, block=FOLLOW_BLOCK)
        for event in batch:
            yield event
            last = event["sequence_number"]
            if event["type"] in TERMINAL_EVENTS:
                return
        if batch:
            continue
        async with engine.connect() as conn:
            row = await ResponsesRepository(conn).get(project_id, response_id)
        if row is None or row["status"] in IN_FLIGHT:
            if row is None:
                return  # deleted meanwhile
            continue
        logged = await events.last_seq(response_id)
        if logged < 0:  # never logged, or expired: rebuild from what was stored
            for event in replay_finished(render_response(row), bool(row["background"])):
                if event["sequence_number"] > after:
                    yield event
            return
        if row["status"] == "cancelled":
            return  # no event says "cancelled": the stream ends
        if quiet_since_finished >= 1:
            # The worker committed but died before logging its closing events: the row
            # still says how it ended.
            yield {
                "type": final_event_type(row["status"]),
                "sequence_number": last + 1,
                "response": render_response(row),
            }
            return
        quiet_since_finished += 1
