"""/v1/responses: thin handlers (parse, who is asking, call the service, answer)."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from app.auth import ProjectDep
from app.db import EngineDep, SessionDep
from app.errors import InvalidRequest
from app.kit.http import json_response
from app.responses import service
from app.responses.schemas import CreateResponseRequest, ListQuery

router = APIRouter(prefix="/v1/responses", tags=["responses"])


@router.post("")
async def create_response(
    body: CreateResponseRequest,
    request: Request,
    engine: EngineDep,
    project_id: ProjectDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Create a model response; stored (store=true, the default) it can be fetched and continued
    with previous_response_id. With background=true it returns at once, `queued`. A retried
    create with the same Idempotency-Key returns the first result."""
    state = request.app.state
    result = await service.create_response(
        engine, state.providers, state.enqueuer, project_id, body, idempotency_key
    )
    return json_response(result)


@router.get("/{response_id}")
async def retrieve_response(
    response_id: str, engine: EngineDep, project_id: ProjectDep, stream: bool = False
) -> Response:
    """Retrieve a stored response by id."""
    if stream:
        raise InvalidRequest(
            "Streaming is not available yet.", param="stream", code="unsupported_value"
        )
    return json_response(await service.get_response(engine, project_id, response_id))


@router.post("/{response_id}/cancel")
async def cancel_response(response_id: str, engine: EngineDep, project_id: ProjectDep) -> Response:
    """Cancel a background response. Cancelling again, or a finished response, returns it as
    it is."""
    return json_response(await service.cancel_response(engine, project_id, response_id))


@router.delete("/{response_id}")
async def delete_response(
    response_id: str, session: SessionDep, project_id: ProjectDep
) -> Response:
    """Delete a stored response. Later turns that chain through it keep their full context."""
    await service.delete_response(session, project_id, response_id)
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


@router.get("/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    query: Annotated[ListQuery, Query()],
    engine: EngineDep,
    project_id: ProjectDep,
) -> Response:
    """The input items of a stored response, newest first by default."""
    return json_response(await service.list_input_items(engine, project_id, response_id, query))
