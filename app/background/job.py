"""One background response, from claim to terminal status (DESIGN §6.2).

The model call is built and the turn ended by app/responses/turn.py, as for every other turn;
what is the job's own is the claim, the retries of transient upstream failures, the event log,
and the time limit.
"""

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from app.background.repository import Claim
from app.config import Settings
from app.errors import APIError
from app.kit.eventlog import JobEvents
from app.ops.metrics import JOB_RETRIES
from app.providers.base import UpstreamFailure
from app.providers.registry import Providers
from app.responses import turn
from app.responses.domain import FinalValues, ResponseStatus
from app.responses.events import TurnEvents
from app.responses.render import render_response
from app.responses.repository import ResponsesRepository
from app.responses.translate import OutputOptions

log_ = logging.getLogger(__name__)

Ending = tuple[FinalValues, list[dict[str, object]]]


async def claim(engine: AsyncEngine, response_id: str, settings: Settings) -> Claim | None:
    async with engine.begin() as conn:
        row = await ResponsesRepository(conn).claim(response_id, settings.job_lease_seconds)
    return Claim(row) if row is not None else None


async def execute(
    engine: AsyncEngine, providers: Providers, settings: Settings, events: JobEvents, job: Claim
) -> Ending:
    """Stream the model's answer for a claimed job into the event log.

    Returns the row's final values and the closing events, which the caller appends only once
    its final compare-and-set succeeded: no stream ever says `completed` for a response the
    database says was cancelled.
    """
    # A re-run after a lost worker continues the numbering: a resuming client never sees a
    # sequence number twice (it may see the lost attempt's partial output before this one's).
    options = OutputOptions.of(job.row["params"])
    next_seq = await _next_seq(events, job)
    stream = TurnEvents(render_response(job.row), next_seq=next_seq, options=options)
    events.add([stream.lifecycle("response.in_progress", status=ResponseStatus.IN_PROGRESS)])
    limit = settings.job_time_limit_seconds
    try:
        async with asyncio.timeout(limit):
            return await _run(engine, providers, settings, events, job, stream)
    except TimeoutError:
        log_.warning("response %s: ran past its time limit of %ss; failed", job.id, limit)
        message = f"The response ran past its time limit of {limit:g} seconds (JOB_TIME_LIMIT)."
        return stream.fail(UpstreamFailure("timeout", message))
    except Exception:
        # A fault of ours (a row this version cannot read, say): failed now, with the reason
        # in the log, rather than crashing every attempt until the sweeper gives up on it.
        log_.exception("response %s: the job failed on the server's side", job.id)
        return stream.fail(UpstreamFailure("server", "The job failed on the server's side."))


async def _run(
    engine: AsyncEngine,
    providers: Providers,
    settings: Settings,
    events: JobEvents,
    job: Claim,
    stream: TurnEvents,
) -> Ending:
    try:
        params = job.row["params"]
        provider = providers.for_model(
            job.row["model"], tier=params.get("service_tier"), background=True
        )
        payload = await turn.build_payload(engine, providers, job.row, accepted=True)
    except APIError as exc:  # the model or the conversation went away since the create
        return stream.fail(UpstreamFailure("client", exc.message))
    for retry in range(settings.job_upstream_retries + 1):
        try:
            async for delta in provider.stream(payload):
                events.add(stream.delta(delta))
            return stream.finish(job.row["messages"])
        except UpstreamFailure as failure:
            # Retried only while nothing was streamed: a client may already hold those deltas.
            if not failure.transient or retry == settings.job_upstream_retries or stream.items:
                return stream.fail(failure)
            log_.info(
                "response %s: transient upstream failure (%s), retrying", job.id, failure.message
            )
            JOB_RETRIES.inc()
            await asyncio.sleep(settings.job_retry_backoff * 2**retry)
    raise AssertionError("unreachable")


async def _next_seq(events: JobEvents, job: Claim) -> int:
    """Where this attempt's events start: after whatever is logged (the create's
    response.created and .queued, 0 and 1, and anything an earlier attempt streamed). Read even
    on a first attempt: a job released at shutdown is claimed again as attempt 1, and numbering
    from 2 again would collide with what its first run logged."""
    try:
        last = await events.log.last(job.id)
    except Exception:
        log_.exception("event log of %s unreadable; its stream ends early", job.id)
        events.broken = True
        return 2
    return 0 if last is None else int(last["sequence_number"]) + 1


async def finish(engine: AsyncEngine, job: Claim, values: FinalValues) -> bool:
    """The job's end, written as every turn's is (app/responses/turn.py), as its attempt."""
    return await turn.end(engine, job.row, values, attempt=job.attempt)


async def release(engine: AsyncEngine, job: Claim) -> None:
    async with engine.begin() as conn:
        await ResponsesRepository(conn).release(job.id, job.attempt)
