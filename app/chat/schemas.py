"""A chat completion request: what we check ourselves; everything else goes to the upstream
as sent (a faithful proxy: tools, response_format, logprobs, n, stop, seed, ...)."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.kit.metadata import Metadata


class CreateChatCompletion(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)  # the chat_completions.model column
    messages: list[dict[str, Any]] = Field(min_length=1)
    store: bool = False
    metadata: Metadata = None
    stream: bool = False
    # Checked here, not only upstream: a streamed answer cannot turn into a 400 half-way.
    stream_options: dict[str, Any] | None = None

    def upstream_payload(self) -> dict[str, Any]:
        """The body for the upstream: ours minus `store` and `metadata`, which are Tether's to
        keep (self-hosted servers may reject what they do not know)."""
        return self.model_dump(exclude={"store", "metadata"}, exclude_unset=True) | {
            "model": self.model,
            "messages": self.messages,
        }


class UpdateChatCompletion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metadata: Metadata
