"""Webhook endpoint requests, as the `openai` SDK's `client.webhooks.*` sends them."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.webhooks.outbox import EVENT_TYPES

# The document names the types Tether emits; the check itself is the service's, so that a type
# it never emits (a batch event, say) is refused with a message that says why.
_TYPES: dict[str, Any] = {"items": {"type": "string", "enum": list(EVENT_TYPES)}}
_TYPE: dict[str, Any] = {"enum": list(EVENT_TYPES)}


class CreateEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    url: str = Field(min_length=1, max_length=2048)
    event_types: list[str] = Field(json_schema_extra=_TYPES)


class UpdateEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=256)
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    event_types: list[str] | None = Field(default=None, json_schema_extra=_TYPES)


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_old_secret_active_for_24_hours: bool = False


class TestEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_type: str = Field(json_schema_extra=_TYPE)
