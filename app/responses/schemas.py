"""The create request, validated the way OpenAI validates it: unknown fields are a 400 that
names the field, and every limit is the documented one."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def validate_metadata(value: dict[str, Any] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_METADATA_PAIRS:
        raise ValueError(
            f"too many properties. Expected an object with at most {MAX_METADATA_PAIRS} "
            f"properties, but got an object with {len(value)} properties instead"
        )
    for key, val in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise ValueError(
                f"metadata key '{key[:20]}…' is {len(key)} characters long; "
                f"at most {MAX_METADATA_KEY} are allowed"
            )
        if not isinstance(val, str):
            raise ValueError(f"metadata value for '{key}' must be a string")
        if len(val) > MAX_METADATA_VALUE:
            raise ValueError(
                f"metadata value for '{key}' is {len(val)} characters long; "
                f"at most {MAX_METADATA_VALUE} are allowed"
            )
    return value


class CreateResponseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    input: str | list[Any] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    store: bool = True
    background: bool = False
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_output_tokens: int | None = Field(default=None, ge=16)
    max_tool_calls: int | None = Field(default=None, ge=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] = "disabled"
    include: list[str] | None = None
    prompt: dict[str, Any] | None = None

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: dict[str, Any] | None) -> dict[str, str] | None:
        return validate_metadata(value)


class ListQuery(BaseModel):
    # Query strings carry extras (the SDK's `include[]`); ignoring them is what OpenAI does.
    model_config = ConfigDict(extra="ignore")

    after: str | None = None
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
