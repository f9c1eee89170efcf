"""The response's states and the typed shapes a turn moves through (rows, parameters, endings).

Rows stay dicts (the driver fast path and the renderer both want mappings), but typed ones:
mypy sees a misspelt column or a status that does not exist.
"""

from enum import StrEnum
from typing import Any, NotRequired, TypedDict


class ResponseStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INCOMPLETE = "incomplete"


# Someone owns it (a worker, or the request streaming it): not over yet.
IN_FLIGHT = frozenset({ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS})
# A turn that ended with an answer (whole or cut short): it joins its conversation.
ANSWERED = frozenset({ResponseStatus.COMPLETED, ResponseStatus.INCOMPLETE})


class TurnParams(TypedDict):
    """The request parameters kept with a response: echoed on the object, and all a worker
    needs (with the row's model, instructions and messages) to build the same model call."""

    store: bool
    stream: NotRequired[bool]  # absent from rows stored before it was kept
    max_output_tokens: int | None
    max_tool_calls: int | None
    parallel_tool_calls: bool
    temperature: float | None
    top_p: float | None
    top_logprobs: int | None
    text: dict[str, Any]
    reasoning: dict[str, Any]
    tool_choice: Any
    tools: list[dict[str, Any]]
    truncation: str
    user: str | None
    safety_identifier: str | None
    prompt_cache_key: str | None
    prompt_cache_retention: str | None
    service_tier: str | None
    include: list[str]
    context_management: list[dict[str, Any]] | None
    conversation_id: str | None
    client_metadata: NotRequired[dict[str, str] | None]  # rows made before it lack it


def logs_events(params: TurnParams) -> bool:
    """Whether a background response's events go to the event log as it runs: only one created
    with stream=true can be streamed (as on OpenAI), so only its events are kept. Rows from
    before this was recorded were always logged, and still are."""
    return params.get("stream", True)


class StoredResponse(TypedDict):
    """The columns the Response object is rendered from (app/responses/render.py)."""

    id: str
    project_id: str
    status: str
    model: str
    background: bool
    created_at: int
    completed_at: int | None
    previous_response_id: str | None
    instructions: str | None
    params: TurnParams
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None
    error: dict[str, Any] | None
    incomplete_details: dict[str, Any] | None
    metadata: dict[str, str]
    service_tier: NotRequired[str | None]
    # When its current attempt began (not part of the Response object: the dashboard's).
    started_at: NotRequired[float | None]
    deployment: NotRequired[str | None]  # not on the object: x-tether-deployment


class ResponseRecord(StoredResponse):
    """A whole row: what a create inserts and a worker claims."""

    input: list[dict[str, Any]]  # this turn's input items, normalised
    messages: list[dict[str, Any]]  # this turn as chat messages: what later turns replay
    idempotency_key: str | None
    request_hash: str | None
    enqueued_at: float | None
    attempts: NotRequired[int]
    lease_expires_at: NotRequired[float | None]
    deleted_at: NotRequired[int | None]


class FinalValues(TypedDict, total=False):
    """What a turn's end writes; a column left out keeps the row's value."""

    status: str
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None
    error: dict[str, Any] | None
    incomplete_details: dict[str, Any] | None
    completed_at: int | None
    messages: list[dict[str, Any]]
    service_tier: str | None  # the one the upstream says it used
    deployment: str | None  # the catalog deployment that answered (or failed last)


FINAL_COLUMNS = (
    "status",
    "output",
    "usage",
    "error",
    "incomplete_details",
    "completed_at",
    "messages",
    "service_tier",
    "deployment",
)
