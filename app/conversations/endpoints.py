"""/v1/conversations: thin handlers."""

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from app.auth import ProjectDep
from app.conversations import service
from app.conversations.schemas import AddItems, CreateConversation, ItemsQuery, UpdateConversation
from app.db import EngineDep
from app.kit.http import json_response
from app.routing import GuardedRoute

router = APIRouter(prefix="/v1/conversations", tags=["conversations"], route_class=GuardedRoute)


@router.post("")
async def create_conversation(
    body: CreateConversation, engine: EngineDep, project_id: ProjectDep
) -> Response:
    """A new conversation, optionally with its first items (at most 20)."""
    return json_response(await service.create(engine, project_id, body.items, body.metadata or {}))


@router.get("/{conversation_id}")
async def retrieve_conversation(
    conversation_id: str, engine: EngineDep, project_id: ProjectDep
) -> Response:
    return json_response(await service.get(engine, project_id, conversation_id))


@router.post("/{conversation_id}")
async def update_conversation(
    conversation_id: str, body: UpdateConversation, engine: EngineDep, project_id: ProjectDep
) -> Response:
    metadata = body.metadata or {}
    return json_response(await service.update(engine, project_id, conversation_id, metadata))


@router.delete("/{conversation_id}")
async def delete_conversation(
    conversation_id: str, engine: EngineDep, project_id: ProjectDep
) -> Response:
    """Deleted at once, with its items."""
    return json_response(await service.delete(engine, project_id, conversation_id))


@router.post("/{conversation_id}/items")
async def create_items(
    conversation_id: str, body: AddItems, engine: EngineDep, project_id: ProjectDep
) -> Response:
    """Append items (at most 20) to the conversation, in order."""
    return json_response(await service.add_items(engine, project_id, conversation_id, body.items))


@router.get("/{conversation_id}/items")
async def list_items(
    conversation_id: str,
    query: Annotated[ItemsQuery, Query()],
    engine: EngineDep,
    project_id: ProjectDep,
) -> Response:
    return json_response(await service.list_items(engine, project_id, conversation_id, query))


@router.get("/{conversation_id}/items/{item_id}")
async def retrieve_item(
    conversation_id: str, item_id: str, engine: EngineDep, project_id: ProjectDep
) -> Response:
    return json_response(await service.get_item(engine, project_id, conversation_id, item_id))


@router.delete("/{conversation_id}/items/{item_id}")
async def delete_item(
    conversation_id: str, item_id: str, engine: EngineDep, project_id: ProjectDep
) -> Response:
    """Remove one item; answers with the conversation."""
    return json_response(await service.delete_item(engine, project_id, conversation_id, item_id))
