"""One background response, from claim to terminal status (DESIGN §6.2)."""

import asyncio
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.background.repository import Claim, JobsRepository
from app.config import Settings
from app.providers.base import UpstreamFailure
from app.providers.registry import Providers
from app.responses.repository import ResponsesRepository
from app.responses.translate import chat_payload, completed_values, failed_values

log = logging.getLogger(__name__)


async def claim(engine: AsyncEngine, response_id: str, settings: Settings) -> Claim | None:
    async with engine.begin() as conn:
        return await JobsRepository(conn).claim(response_id, settings.job_lease_seconds)


async def execute(
    engine: AsyncEngine, providers: Providers, settings: Settings, job: Claim
) -> dict[str, Any]:
    """Call the model for a claimed job; the row's new values, success or failure."""
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
    try:
        provider = providers.for_model(job.model)
    except Exception as exc:  # the model went away since the create: not worth retrying
        return failed_values(UpstreamFailure("client", str(exc)))
    for retry in range(settings.job_upstream_retries + 1):
        try:
            return completed_values(await provider.complete(payload), job.messages)
        except UpstreamFailure as failure:
            if not failure.transient or retry == settings.job_upstream_retries:
                return failed_values(failure)
            log.info(
                "response %s: transient upstream failure (%s), retrying", job.id, failure.message
            )
            await asyncio.sleep(settings.job_retry_backoff * 2**retry)
    raise AssertionError("unreachable")


async def finish(engine: AsyncEngine, job: Claim, values: dict[str, Any]) -> bool:
    async with engine.begin() as conn:
        return await JobsRepository(conn).finish(job, values)


async def release(engine: AsyncEngine, job: Claim) -> None:
    async with engine.begin() as conn:
        await JobsRepository(conn).release(job)
