"""The create request, validated the way OpenAI validates it: unknown fields are a 400 that
names the field, and every limit is the documented one."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.kit.metadata import ClientMetadata, Metadata

# The longest model name the responses.model column holds; counts past int32 mean nothing.
MAX_MODEL = 256
INT32 = 2**31 - 1


class CreateResponseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=MAX_MODEL)
    input: str | list[Any] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    store: bool = True
    background: bool = False
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    metadata: Metadata = None
    # Free-form string pairs a client keeps with its request (Codex: turn and session ids).
    client_metadata: ClientMetadata = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_output_tokens: int | None = Field(default=None, ge=16, le=INT32)
    max_tool_calls: int | None = Field(default=None, ge=1, le=INT32)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    # OpenAI's reference writes "in-memory", its SDKs' types "in_memory": both are accepted,
    # echoed and forwarded as sent.
    prompt_cache_retention: Literal["in-memory", "in_memory", "24h"] | None = None
    context_management: list[Any] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] = "disabled"
    include: list[str] | None = None
    prompt: dict[str, Any] | None = None


class CountTokensRequest(BaseModel):
    """POST /v1/responses/input_tokens: the parts of a create that make up its input."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    input: str | list[Any] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] = "disabled"
