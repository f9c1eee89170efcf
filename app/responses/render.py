"""A stored (or unstored) response as the Response object OpenAI returns."""

from collections.abc import Mapping
from typing import Any, NamedTuple

from app.providers.base import DEPLOYMENT_HEADER


class Answer(NamedTuple):
    """A rendered response and the headers that go with it."""

    body: dict[str, Any]
    headers: dict[str, str] | None = None


def answer(row: Mapping[Any, Any]) -> Answer:
    deployment = row.get("deployment")
    return Answer(render_response(row), {DEPLOYMENT_HEADER: deployment} if deployment else None)


def render_response(row: Mapping[Any, Any]) -> dict[str, Any]:
    params: Mapping[str, Any] = row["params"]
    return {
        "id": row["id"],
        "object": "response",
        "created_at": row["created_at"],
        "status": row["status"],
        "background": row["background"],
        "completed_at": row["completed_at"],
        "error": row["error"],
        "incomplete_details": row["incomplete_details"],
        "instructions": row["instructions"],
        "max_output_tokens": params.get("max_output_tokens"),
        "max_tool_calls": params.get("max_tool_calls"),
        "model": row["model"],
        "output": row["output"],
        "parallel_tool_calls": params.get("parallel_tool_calls", True),
        "previous_response_id": row["previous_response_id"],
        "conversation": {"id": params["conversation_id"]}
        if params.get("conversation_id")
        else None,
        "prompt_cache_key": params.get("prompt_cache_key"),
        "prompt_cache_retention": params.get("prompt_cache_retention"),
        "reasoning": params.get("reasoning") or {"effort": None, "summary": None},
        "safety_identifier": params.get("safety_identifier"),
        # The tier the upstream says it served (OpenAI's do); a server without tiers: default.
        "service_tier": row.get("service_tier") or "default",
        "store": params.get("store", True),
        # OpenAI echoes the effective sampling defaults; params keep what the client sent.
        "temperature": 1.0 if params.get("temperature") is None else params["temperature"],
        "text": params.get("text") or {"format": {"type": "text"}},
        "tool_choice": params.get("tool_choice", "auto"),
        "tools": params.get("tools") or [],
        "top_logprobs": params.get("top_logprobs") or 0,
        "top_p": 1.0 if params.get("top_p") is None else params["top_p"],
        "truncation": params.get("truncation", "disabled"),
        "usage": row["usage"],
        "user": params.get("user"),
        "metadata": row["metadata"] or {},
    }
