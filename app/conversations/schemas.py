"""Conversation requests, validated the OpenAI way."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from app.kit.listing import PageQuery
from app.kit.metadata import Metadata


class CreateConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Any] | None = None
    metadata: Metadata = None


class UpdateConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metadata: Metadata


class AddItems(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Any]


class ItemsQuery(PageQuery):
    order: Literal["asc", "desc"] = "desc"
