"""Server-sent events for responses: a synchronous stream, and following a background one.

A synchronous stream writes its row `in_progress` before the first event and always leaves it
terminal: if the client goes away mid-answer the upstream call is closed and the row keeps what
was generated, `incomplete` with reason `client_disconnected`; if the process itself dies, its
lease runs out and the sweeper fails it (app/responses/leases.py).

Following a background response reads its event log from `starting_after`, then tails it live
until a terminal event; any API replica can serve it. A finished response whose log expired
(or that never had one) is replayed from what was stored.
"""

import asyncio
import logging
import secrets
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit.eventlog import EventLog
from app.ops.metrics import STREAM_FOLLOWERS
from app.providers.base import ModelProvider, UpstreamFailure
from app.responses import turn
from app.responses.domain import IN_FLIGHT, ResponseRecord, ResponseStatus, StoredResponse
from app.responses.events import (
    TERMINAL_EVENTS,
    TurnEvents,
    final_event_type,
    replay_finished,
)
from app.responses.leases import TurnLeases
from app.responses.render import render_response
from app.responses.repository import ResponsesRepository
from app.responses.translate import OutputOptions

log = logging.getLogger(__name__)

# How long a follower's read of the log waits for something new before it checks the row.
FOLLOW_BLOCK = 1.0


def obfuscated(event: dict[str, Any]) -> dict[str, Any]:
    """stream_options.include_obfuscation: a delta padded with random characters, so that the
    size of an encrypted event does not tell an observer the size of its token. Off unless
    asked for (OpenAI pads by default; on one's own network the cost buys little)."""
    if not str(event["type"]).endswith(".delta"):
        return event
    return {**event, "obfuscation": secrets.token_urlsafe(1 + secrets.randbelow(16))}


def error_event(sequence_number: int) -> dict[str, Any]:
    """OpenAI's `error` stream event: how a stream that failed on our side ends."""
    return {
        "type": "error",
        "sequence_number": sequence_number,
        "code": "server_error",
        "message": "The stream failed on the server's side; retrieve the response to see how "
        "it ended.",
        "param": None,
    }


def sse(event: dict[str, Any]) -> bytes:
    kind = str(event["type"]).encode()
    return b"event: " + kind + b"\ndata: " + orjson.dumps(event) + b"\n\n"


async def synchronous(
    engine: AsyncEngine,
    leases: TurnLeases,
    provider: ModelProvider,
    payload: dict[str, Any],
    row: ResponseRecord,
    options: OutputOptions,
) -> AsyncGenerator[dict[str, Any], None]:
    """The events of a turn streamed as the model answers; `row` is already stored if `store`
    (and this request owns it as attempt 0, under a lease: it is never claimed by a worker)."""
    events = TurnEvents(render_response(row), options=options)
    if not row["params"]["store"]:
        async for event in _synchronous(engine, provider, payload, row, events):
            yield event
        return
    with leases.hold(row["id"], lambda: (events.seq, events.so_far())):
        async for event in _synchronous(engine, provider, payload, row, events):
            yield event


async def _synchronous(
    engine: AsyncEngine,
    provider: ModelProvider,
    payload: dict[str, Any],
    row: ResponseRecord,
    events: TurnEvents,
) -> AsyncGenerator[dict[str, Any], None]:
    attempt = 0 if row["params"]["store"] else None
    yield events.lifecycle("response.created")
    yield events.lifecycle("response.in_progress")
    finished = False
    try:
        try:
            # Closed with this stream, whichever way it ends: a client gone, a stall.
            async with aclosing(provider.stream(payload)) as deltas:
                async for delta in deltas:
                    for event in events.delta(delta):
                        yield event
            values, closing = events.finish(row["messages"])
        except UpstreamFailure as failure:
            values, closing = events.fail(failure)
        await turn.end(engine, row, values, attempt=attempt)
        finished = True
        for event in closing:
            yield event
    finally:
        if attempt is not None and not finished:
            # Cancelled (the client went away) or failed on our side: never left in_progress.
            # Cut short, it does not join its conversation.
            abandoned = events.abandon(row["messages"])
            ending = turn.end(engine, row, abandoned, attempt=attempt, join_conversation=False)
            await asyncio.shield(ending)


async def follow(
    engine: AsyncEngine, events: EventLog, project_id: str, response_id: str, after: int
) -> AsyncGenerator[dict[str, Any], None]:
    """Every event after `after`, then live ones until the response ends.

    The first read does not wait, so a finished response answers at once: with what its log
    holds after `after` (nothing, past its end), or, if its log is gone, with the events
    rebuilt from the stored response.
    """
    STREAM_FOLLOWERS.inc()
    try:
        last = after
        block = 0.0
        waited_for_end = False
        while True:
            batch = await events.read(response_id, last, block=block)
            if batch and batch[0]["sequence_number"] != last + 1:
                # The log lost what came before these (Redis restarted empty, say): it is no
                # longer the whole stream. Rebuilt from the stored response once it ends.
                async for event in _rebuilt(engine, project_id, response_id, last):
                    yield event
                return
            for event in batch:
                yield event
                last = event["sequence_number"]
                if event["type"] in TERMINAL_EVENTS:
                    return
            if batch:
                continue
            async with engine.connect() as conn:
                row = await ResponsesRepository(conn).get(project_id, response_id)
            if row is None:
                return  # deleted meanwhile
            block = FOLLOW_BLOCK
            if row["status"] in IN_FLIGHT:
                continue
            ending = await _ending(events, row, last, waited_for_end)
            if ending is None:
                waited_for_end = True
                continue
            for event in ending:
                yield event
            return
    finally:
        STREAM_FOLLOWERS.dec()


async def _rebuilt(
    engine: AsyncEngine, project_id: str, response_id: str, last: int
) -> AsyncGenerator[dict[str, Any], None]:
    """The events after `last` of a response whose log is not whole, rebuilt from what was
    stored, once it has ended (until then there is nothing whole to send)."""
    while True:
        async with engine.connect() as conn:
            row = await ResponsesRepository(conn).get(project_id, response_id)
        if row is None:
            return  # deleted meanwhile
        if row["status"] not in IN_FLIGHT:
            options = OutputOptions.of(row["params"])
            replayed = replay_finished(render_response(row), row["background"], options)
            for event in replayed:
                if event["sequence_number"] > last:
                    yield event
            return
        await asyncio.sleep(FOLLOW_BLOCK)


async def _ending(
    events: EventLog, row: StoredResponse, last: int, waited_for_end: bool
) -> list[dict[str, Any]] | None:
    """What follows `last` of a finished response whose log has nothing after it; None to
    look at the log once more first."""
    logged = await events.last(row["id"])
    if logged is None:  # never logged, or expired: rebuild from what was stored
        options = OutputOptions.of(row["params"])
        replayed = replay_finished(render_response(row), row["background"], options)
        return [event for event in replayed if event["sequence_number"] > last]
    if logged["sequence_number"] > last:
        return None  # logged since our read (the closing events, say): read them
    if row["status"] == ResponseStatus.CANCELLED or logged["type"] in TERMINAL_EVENTS:
        return []  # the log is whole and we are past its end (no event says "cancelled")
    if not waited_for_end:
        # A worker commits its end first and logs the closing events after: give it a
        # moment before deciding it died in between.
        return None
    # The worker committed but died before logging its closing events: the row still says
    # how it ended, numbered on from what was logged.
    end = logged["sequence_number"] + 1
    if end <= last:
        return []
    final = {"type": final_event_type(row["status"]), "sequence_number": end}
    return [{**final, "response": render_response(row)}]
