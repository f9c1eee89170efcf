"""The rules of responses: what a create may ask for, how a thread is continued, what is kept.

create() does not use a request-wide transaction: a model call can take minutes, and holding a
pooled connection (or, on SQLite, a transaction) for that long would starve every other request.
It reads the thread on one short connection, calls the model with no connection held, and writes
the response in one short transaction. A background create writes the row `queued`, commits,
and only then hands the id to the queue (DESIGN §6.1). Reads use a bare connection.
"""

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, cast

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.auth import Caller
from app.errors import Conflict, InvalidRequest, NotFound, RateLimited
from app.items.service import resolve_references
from app.jobs import Enqueuer
from app.kit.eventlog import EventLog
from app.kit.fair import QueuedJob
from app.kit.http import page
from app.kit.ids import new_id, now_seconds
from app.kit.items import normalize_input, to_chat_messages
from app.kit.listing import PageQuery, page_of_list
from app.kit.sealing import Keyring
from app.kit.tiers import tier_of
from app.ops.metrics import count_omitted_tools
from app.providers.base import DEPLOYMENT_HEADER, ModelProvider, UpstreamFailure, upstream_error
from app.providers.registry import Providers
from app.responses import reasoning, streaming, tokens, turn
from app.responses.domain import (
    IN_FLIGHT,
    FinalValues,
    ResponseRecord,
    ResponseStatus,
    StoredResponse,
    logs_events,
)
from app.responses.events import TurnEvents
from app.responses.leases import TurnLeases
from app.responses.params import check_request, omitted_tools
from app.responses.render import Answer, answer, render_response
from app.responses.repository import DuplicateKey, PreviousResponseGone, ResponsesRepository
from app.responses.schemas import CreateResponseRequest
from app.responses.translate import OutputOptions, completed_values, failed_values

log = logging.getLogger(__name__)


def not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.")


def request_hash(req: CreateResponseRequest) -> str:
    body = req.model_dump(exclude_unset=True)
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class Deps:
    """What a create needs of its process, made once in the app's lifespan."""

    engine: AsyncEngine
    providers: Providers
    enqueuer: Enqueuer
    events: EventLog
    leases: TurnLeases
    keyring: Keyring  # seals and opens reasoning items' encrypted_content
    # HOSTED_TOOLS: built-in tools left out of the model call (`omit`) or refused (`reject`).
    hosted_tools: str = "omit"
    # How long a create waits for a concurrent one with the same Idempotency-Key to finish
    # before answering 409: the longest a model call may take.
    idempotency_wait: float = 600.0


@dataclass(frozen=True, slots=True)
class Key:
    """A create's Idempotency-Key and the hash of its body (the same key, another body: 400)."""

    key: str
    hash: str


def idempotency(req: CreateResponseRequest, idempotency_key: str | None) -> Key | None:
    # An unstored response cannot be found again, so a key means nothing without store.
    if idempotency_key is None or not req.store:
        return None
    return Key(idempotency_key, request_hash(req))


async def _earlier(deps: Deps, project_id: str, key: Key, *, wait: bool) -> StoredResponse | None:
    """The response an earlier create with this key made, if any.

    One key means one model call: while that create is still answering synchronously, a
    retry waits for it (`wait`) and answers what it answered, up to `idempotency_wait`, then
    409 `idempotency_key_in_use`. A background one is answered as it stands (queued is its
    normal first answer).
    """
    deadline = time.monotonic() + deps.idempotency_wait
    pause = 0.02
    while True:
        async with deps.engine.connect() as conn:
            row = await ResponsesRepository(conn).get_by_idempotency_key(project_id, key.key)
        if row is None:
            return None
        if row["request_hash"] != key.hash:
            raise InvalidRequest(
                "Keys for idempotent requests can only be used with the same parameters they "
                "were first used with. Try using a key other than the one used in the original "
                "request.",
                code="idempotency_key_reused",
            )
        if not wait or row["background"] or row["status"] not in IN_FLIGHT:
            return cast(StoredResponse, row)
        if time.monotonic() > deadline:
            raise Conflict(
                "A request with this Idempotency-Key is still in progress; retry it later.",
                code="idempotency_key_in_use",
            )
        await asyncio.sleep(pause)  # another replica may own it: the row is what we can watch
        pause = min(pause * 2, 0.5)


@dataclass(slots=True)
class Turn:
    """A validated create, ready to run: its row (not yet stored) and the model call."""

    row: ResponseRecord
    provider: ModelProvider
    payload: dict[str, Any]
    options: OutputOptions  # how its output is written (app/responses/reasoning.py)

    @property
    def store(self) -> bool:
        return self.row["params"]["store"]

    @property
    def background(self) -> bool:
        return self.row["background"]


async def prepare(
    deps: Deps, project_id: str, req: CreateResponseRequest, key: Key | None = None
) -> Turn:
    """Validate a create and build its model call from its thread (app/responses/turn.py)."""
    engine = deps.engine
    params = check_request(req, deps.hosted_tools)
    provider = deps.providers.for_model(req.model, tier=req.service_tier)
    assert req.input is not None
    new_items = await resolve_references(engine, project_id, normalize_input(req.input))
    shown = await reasoning.opened(deps.keyring, project_id, new_items)
    row: ResponseRecord = {
        "id": new_id("resp"),
        "project_id": project_id,
        "status": ResponseStatus.QUEUED if req.background else ResponseStatus.IN_PROGRESS,
        "model": req.model,
        "background": req.background,
        "created_at": now_seconds(),
        "completed_at": None,
        "previous_response_id": req.previous_response_id,
        "instructions": req.instructions,
        "input": new_items,
        "messages": to_chat_messages(shown),
        "params": params,
        "error": None,
        "incomplete_details": None,
        "usage": None,
        "output": [],
        "metadata": req.metadata or {},
        # The tier it is scheduled at; the upstream's own word replaces it if it has one.
        "service_tier": tier_of(req.service_tier),
        "idempotency_key": key.key if key else None,
        "request_hash": key.hash if key else None,
        # To the fraction: in whole seconds, a job created late in a second looked queued for
        # most of a second already, and a short JOB_REQUEUE_AFTER sent it again before its
        # first publish had even reached the broker.
        "enqueued_at": time.time() if req.background else None,
        # A synchronous turn starts now; a background one when a worker claims it.
        "started_at": None if req.background else time.time(),
    }
    payload = await turn.build_payload(engine, deps.providers, row)
    options = await reasoning.output_options(deps.keyring, row)
    return Turn(row=row, provider=provider, payload=payload, options=options)


def note_omitted_tools(row: ResponseRecord) -> None:
    """The built-in tools a turn's model call leaves out (HOSTED_TOOLS=omit), logged and
    counted (the endpoint names them in a header)."""
    omitted = omitted_tools(row["params"]["tools"])
    if omitted:
        log.info(
            "response %s: built-in tools left out of the model call: %s",
            row["id"],
            ", ".join(omitted),
            extra={"response_id": row["id"], "omitted_tools": omitted},
        )
        count_omitted_tools(omitted)


async def create_response(
    deps: Deps, caller: Caller, req: CreateResponseRequest, idempotency_key: str | None = None
) -> Answer:
    project_id = caller.project_id
    key = idempotency(req, idempotency_key)
    if key and (earlier := await _earlier(deps, project_id, key, wait=True)):
        return answer(earlier)
    prepared = await prepare(deps, project_id, req, key)
    note_omitted_tools(prepared.row)
    if prepared.background:
        started = await _start_background(deps, prepared, caller.max_background)
        return answer(started or prepared.row)
    await reserve(prepared.provider)
    try:
        if key is not None:
            # The key is claimed by storing the row first: a concurrent retry finds it and waits.
            if earlier := await _store(deps, prepared.row, ended=False):
                return answer(earlier)
            with deps.leases.hold(prepared.row["id"]):
                failure = await _answer(deps, prepared, stored_first=True)
        else:
            failure = await _answer(deps, prepared, stored_first=False)
            await _keep(deps, prepared)
    finally:
        prepared.provider.release()
    if failure is not None:
        headers = {"x-tether-response-id": prepared.row["id"]} if prepared.store else {}
        if failure.deployment:
            headers[DEPLOYMENT_HEADER] = failure.deployment
        raise upstream_error(failure, headers or None)
    return answer(prepared.row)


async def reserve(provider: ModelProvider) -> None:
    """A place at the model for a synchronous turn, before anything is stored or streamed: a
    model at its concurrency limit (past MODEL_QUEUE_SECONDS) is a 429, a model whose every
    deployment is skipped as failing a 502, and nothing is left behind."""
    try:
        await provider.reserve()
    except UpstreamFailure as failure:
        raise upstream_error(failure, {"retry-after": "1"}) from failure


async def _answer(deps: Deps, prepared: Turn, *, stored_first: bool) -> UpstreamFailure | None:
    """Call the model once and put its answer (or failure) on the row; a row that was stored
    first is ended here, whatever happens."""
    row = prepared.row
    failure: UpstreamFailure | None = None
    try:
        result = await prepared.provider.complete(prepared.payload)
        values = completed_values(
            result, row["messages"], prepared.options, tier=row.get("service_tier")
        )
    except UpstreamFailure as exc:
        failure = exc
        values = failed_values(exc)
    except BaseException:
        if stored_first:  # never left in_progress by a failure of ours
            lost = failed_values(UpstreamFailure("server", "The request ended before the answer."))
            await asyncio.shield(turn.end(deps.engine, row, lost, attempt=0))
        raise
    if stored_first:
        await turn.end(deps.engine, row, values, attempt=0)
    row.update(values)  # type: ignore[typeddict-item]
    return failure


async def _keep(deps: Deps, prepared: Turn) -> None:
    """A synchronous turn that ended before it was stored: stored (with its conversation
    append), or, with store=false, only appended to its conversation."""
    if prepared.store:
        await _store(deps, prepared.row, ended=True)
    else:
        ended: FinalValues = {"status": prepared.row["status"], "output": prepared.row["output"]}
        await turn.end(deps.engine, prepared.row, ended, attempt=None)


async def create_stream(
    deps: Deps, caller: Caller, req: CreateResponseRequest, idempotency_key: str | None = None
) -> AsyncGenerator[dict[str, Any], None]:
    """stream=true: validated and stored before the first event (errors are plain 400s), then
    the events, live. A background one is followed through its event log."""
    engine, events, project_id = deps.engine, deps.events, caller.project_id
    key = idempotency(req, idempotency_key)
    if key and (earlier := await _earlier(deps, project_id, key, wait=False)):
        return streaming.follow(engine, events, project_id, earlier["id"], -1)
    prepared = await prepare(deps, project_id, req, key)
    note_omitted_tools(prepared.row)
    row = prepared.row
    if prepared.background:
        started = await _start_background(deps, prepared, caller.max_background)
        return streaming.follow(engine, events, project_id, (started or row)["id"], -1)
    await reserve(prepared.provider)  # used by the stream's model call
    try:
        # A retry that lost the race follows the first create's stream rather than wait for it.
        if prepared.store and (earlier := await _store(deps, row, ended=False, wait=False)):
            prepared.provider.release()
            return streaming.follow(engine, events, project_id, earlier["id"], -1)
    except BaseException:
        prepared.provider.release()
        raise
    return streaming.synchronous(
        engine, deps.leases, prepared.provider, prepared.payload, row, prepared.options
    )


async def _start_background(
    deps: Deps, prepared: Turn, max_in_flight: int
) -> StoredResponse | None:
    """Store the row queued, log its first events, then enqueue (DESIGN §6.1). A project at its
    limit of background responses in flight is answered 429 (concurrent creates may pass it
    by a few: the count and the insert are not one transaction)."""
    row = prepared.row
    if max_in_flight > 0:
        async with deps.engine.connect() as conn:
            running = await ResponsesRepository(conn).count_in_flight(row["project_id"])
        if running >= max_in_flight:
            raise RateLimited(
                f"This project has {running} background responses queued or in progress, its "
                f"limit; wait for some to finish.",
                code="rate_limit_exceeded",
            )
    if earlier := await _store(deps, row, ended=False):
        return earlier
    if logs_events(row["params"]):
        opening = TurnEvents(render_response(row))
        try:
            await deps.events.append(
                row["id"],
                [opening.lifecycle("response.created"), opening.lifecycle("response.queued")],
            )
        except Exception:  # the job runs all the same; only its stream lacks the first events
            log.exception("could not log the first events of %s", row["id"])
    # After the commit: a worker must find the row. Should this fail, the row is queued all
    # the same and the sweeper hands it to the queue again.
    tier = tier_of(row["params"]["service_tier"])
    await deps.enqueuer.submit([QueuedJob(row["id"], row["project_id"], tier)])
    log.info("response %s queued", row["id"], extra={"response_id": row["id"]})
    return None


async def _store(
    deps: Deps, row: ResponseRecord, *, ended: bool, wait: bool = True
) -> StoredResponse | None:
    """Insert the row (`ended`: a finished synchronous turn, with its conversation append).
    Returns the earlier response instead if a concurrent create with the same
    Idempotency-Key stored its row first."""
    try:
        if ended:
            await turn.store_ended(deps.engine, row)
        else:
            if not row["background"]:  # its request owns it: under a lease (leases.py)
                row["lease_expires_at"] = deps.leases.until()
            await turn.store_started(deps.engine, row)
    except PreviousResponseGone as exc:
        # The parent was deleted for good while the model was answering.
        assert row["previous_response_id"] is not None
        raise turn.previous_not_found(row["previous_response_id"]) from exc
    except DuplicateKey:
        assert row["idempotency_key"] is not None
        assert row["request_hash"] is not None
        key = Key(row["idempotency_key"], row["request_hash"])
        return await _earlier(deps, row["project_id"], key, wait=wait and not row["background"])
    return None


async def count_input_tokens(
    deps: Deps, project_id: str, req: CreateResponseRequest
) -> dict[str, Any]:
    """What a create with these parameters would send the model, counted (app/responses/tokens)."""
    prepared = await prepare(deps, project_id, req)
    count = tokens.estimate(prepared.payload["messages"], prepared.payload.get("tools"))
    return {"object": "response.input_tokens", "input_tokens": count}


async def get_response(engine: AsyncEngine, project_id: str, response_id: str) -> Answer:
    async with engine.connect() as conn:
        row = await ResponsesRepository(conn).get(project_id, response_id)
    if row is None:
        raise not_found(response_id)
    return answer(row)


async def cancel_response(engine: AsyncEngine, project_id: str, response_id: str) -> dict[str, Any]:
    """Cancel a background response. Idempotent; a finished one is returned as it finished.

    The worker running it sees the status change within a poll interval and stops its call.
    """
    async with engine.begin() as conn:
        repo = ResponsesRepository(conn)
        row = await repo.get(project_id, response_id)
        if row is None:
            raise not_found(response_id)
        if not row["background"]:
            raise InvalidRequest(
                "Only responses created with background=true can be cancelled.",
                param="response_id",
                code="invalid_value",
            )
        if row["status"] in IN_FLIGHT:
            await repo.cancel(project_id, response_id)
            row = await repo.get(project_id, response_id)
            assert row is not None
    return render_response(row)


async def delete_response(session: AsyncSession, project_id: str, response_id: str) -> None:
    if not await ResponsesRepository(session).delete(project_id, response_id):
        raise not_found(response_id)


async def list_responses(
    engine: AsyncEngine,
    project_id: str,
    query: PageQuery,
    *,
    model: str | None,
    status: ResponseStatus | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    async with engine.connect() as conn:
        rows = await ResponsesRepository(conn).list_page(
            project_id, query, model=model, status=status, metadata=metadata
        )
    return page([render_response(row) for row in rows], query.limit)


async def list_input_items(
    engine: AsyncEngine, project_id: str, response_id: str, query: PageQuery
) -> dict[str, Any]:
    async with engine.connect() as conn:
        items = await ResponsesRepository(conn).get_input(project_id, response_id)
    if items is None:
        raise not_found(response_id)
    return page_of_list(items, query)
