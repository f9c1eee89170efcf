"""One background response, from claim to terminal status (DESIGN §6.2).

The model call is built and the turn ended by app/responses/turn.py, as for every other turn;
what is the job's own is the claim, the retries of transient upstream failures, the event log,
and the time limit.

Only a job created with stream=true has an event log: as on OpenAI, only such a response can be
streamed while it runs. Any other asks the model for its answer in one piece, as a synchronous
create does, and logs nothing (following it gives its events rebuilt from the stored response
once it ends: app/responses/streaming.py). The log was most of such a job's cost.
"""

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from app.background.repository import Claim
from app.config import Settings
from app.errors import APIError
from app.kit.eventlog import JobEvents
from app.kit.sealing import Keyring
from app.ops.metrics import JOB_RETRIES
from app.providers.base import UpstreamFailure
from app.providers.registry import Providers
from app.responses import reasoning, turn
from app.responses.domain import FinalValues, ResponseStatus, logs_events
from app.responses.events import TurnEvents
from app.responses.render import render_response
from app.responses.repository import ResponsesRepository
from app.responses.translate import OutputOptions, completed_values, failed_values

log_ = logging.getLogger(__name__)

Ending = tuple[FinalValues, list[dict[str, object]]]


async def execute(
    engine: AsyncEngine,
    providers: Providers,
    keyring: Keyring,
    settings: Settings,
    events: JobEvents,
    job: Claim,
) -> Ending:
    """Stream the model's answer for a claimed job into the event log.

    Returns the row's final values and the closing events, which the caller appends only once
    its final compare-and-set succeeded: no stream ever says `completed` for a response the
    database says was cancelled.
    """
    stream: TurnEvents | None = None
    if logs_events(job.row["params"]):
        # A re-run after a lost worker continues the numbering: a resuming client never sees a
        # sequence number twice (it may see the lost attempt's partial output before this one's).
        next_seq = await _next_seq(events, job)
        stream = TurnEvents(render_response(job.row), next_seq=next_seq)
        events.add([stream.lifecycle("response.in_progress", status=ResponseStatus.IN_PROGRESS)])
    limit = settings.job_time_limit_seconds
    try:
        async with asyncio.timeout(limit):
            options = await reasoning.output_options(keyring, job.row)
            if stream is not None:
                stream.options = options
            return await _run(engine, providers, settings, events, job, stream, options)
    except TimeoutError:
        log_.warning("response %s: ran past its time limit of %ss; failed", job.id, limit)
        message = f"The response ran past its time limit of {limit:g} seconds (JOB_TIME_LIMIT)."
        return _failed(stream, UpstreamFailure("timeout", message))
    except Exception:
        # A fault of ours (a row this version cannot read, say): failed now, with the reason
        # in the log, rather than crashing every attempt until the sweeper gives up on it.
        log_.exception("response %s: the job failed on the server's side", job.id)
        return _failed(stream, UpstreamFailure("server", "The job failed on the server's side."))


def _failed(stream: TurnEvents | None, failure: UpstreamFailure) -> Ending:
    return stream.fail(failure) if stream is not None else (failed_values(failure), [])


async def _run(
    engine: AsyncEngine,
    providers: Providers,
    settings: Settings,
    events: JobEvents,
    job: Claim,
    stream: TurnEvents | None,
    options: OutputOptions,
) -> Ending:
    try:
        params = job.row["params"]
        provider = providers.for_model(
            job.row["model"], tier=params.get("service_tier"), background=True
        )
        payload = await turn.build_payload(engine, providers, job.row, accepted=True)
    except APIError as exc:  # the model or the conversation went away since the create
        return _failed(stream, UpstreamFailure("client", exc.message))
    messages = job.row["messages"]
    for retry in range(settings.job_upstream_retries + 1):
        try:
            if stream is None:
                result = await provider.complete(payload)
                tier = job.row.get("service_tier")
                return completed_values(result, messages, options, tier=tier), []
            async for delta in provider.stream(payload):
                events.add(stream.delta(delta))
            return stream.finish(messages)
        except UpstreamFailure as failure:
            # Retried only while nothing was streamed: a client may already hold those deltas.
            streamed_some = stream is not None and stream.items
            if not failure.transient or retry == settings.job_upstream_retries or streamed_some:
                return _failed(stream, failure)
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


async def release(engine: AsyncEngine, job: Claim) -> None:
    async with engine.begin() as conn:
        await ResponsesRepository(conn).release(job.id, job.attempt)
