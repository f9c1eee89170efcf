"""One background response, from claim to terminal status (DESIGN §6.2)."""

import asyncio
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.background.eventlog import JobEvents
from app.background.repository import Claim, JobsRepository
from app.config import Settings
from app.conversations.repository import record_turn
from app.providers.base import UpstreamFailure
from app.providers.registry import Providers
from app.responses.events import TurnEvents
from app.responses.render import render_response
from app.responses.repository import ResponsesRepository
from app.responses.translate import chat_payload

log_ = logging.getLogger(__name__)


async def claim(engine: AsyncEngine, response_id: str, settings: Settings) -> Claim | None:
    async with engine.begin() as conn:
        return await JobsRepository(conn).claim(response_id, settings.job_lease_seconds)


async def execute(
    engine: AsyncEngine, providers: Providers, settings: Settings, events: JobEvents, job: Claim
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Stream the model's answer for a claimed job into the event log.

    Returns the row's final values and the closing events, which the caller appends only once
    its final compare-and-set succeeded: no stream ever says `completed` for a response the
    database says was cancelled.
    """
    history: list[dict[str, Any]] = []
    if job.previous_response_id is not None:
        async with engine.connect() as conn:
            chain = await ResponsesRepository(conn).chain(
                job.project_id, job.previous_response_id, head_may_be_deleted=True
            )
        history = chain.messages
    payload = chat_payload(
        job.model, job.instructions, job.params, history, job.messages, providers.max_tokens_param
    )
    # A re-run after a lost worker continues the numbering: a resuming client never sees a
    # sequence number twice (it may see the lost attempt's partial output before this one's).
    turn = TurnEvents(render_response(job.row), next_seq=await _next_seq(events, job))
    events.add([turn.lifecycle("response.in_progress", status="in_progress")])
    try:
        provider = providers.for_model(job.model)
    except Exception as exc:  # the model went away since the create: not worth retrying
        return turn.fail(UpstreamFailure("client", str(exc)))
    for retry in range(settings.job_upstream_retries + 1):
        try:
            async for delta in provider.stream(payload):
                events.add(turn.delta(delta))
            return turn.finish(job.messages)
        except UpstreamFailure as failure:
            # Retried only while nothing was streamed: a client may already hold those deltas.
            if not failure.transient or retry == settings.job_upstream_retries or turn.items:
                return turn.fail(failure)
            log_.info(
                "response %s: transient upstream failure (%s), retrying", job.id, failure.message
            )
            await asyncio.sleep(settings.job_retry_backoff * 2**retry)
    raise AssertionError("unreachable")


async def _next_seq(events: JobEvents, job: Claim) -> int:
    """Where this attempt's events start. The create logged response.created and .queued (0
    and 1); a re-run after a lost worker continues after whatever the lost attempt logged."""
    if job.attempt == 1:
        return 2
    try:
        return await events.log.last_seq(job.id) + 1
    except Exception:
        log_.exception("event log of %s unreadable; its stream ends early", job.id)
        events.broken = True
        return 2


async def finish(engine: AsyncEngine, job: Claim, values: dict[str, Any]) -> bool:
    """The final compare-and-set; a turn that ended normally joins its conversation in the
    same transaction."""
    async with engine.begin() as conn:
        if not await JobsRepository(conn).finish(job, values):
            return False
        if values["status"] in ("completed", "incomplete"):
            items = job.row["input"] + values.get("output", [])
            await record_turn(conn, job.project_id, job.params, items)
        return True


async def release(engine: AsyncEngine, job: Claim) -> None:
    async with engine.begin() as conn:
        await JobsRepository(conn).release(job)
