"""The built-in `echo` model: answers with the last user message, so the whole API works offline.

Tokens are estimated at four characters each (the usual rule of thumb for English text); the
estimate also drives `max_output_tokens`, so the incomplete path can be seen without a model.
"""

import asyncio
import math
import re
import time
from collections.abc import AsyncGenerator
from typing import Any

from app.providers.base import ChatDelta, ChatResult, UpstreamFailure

ECHO_MODEL = "echo"
# Pieces between turns given to the event loop.
YIELD_EVERY = 64


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


class EchoProvider:
    deployment: str | None = None

    async def reserve(self) -> None:
        return None

    def release(self) -> None:
        return None

    async def complete(self, payload: dict[str, Any]) -> ChatResult:
        messages: list[dict[str, Any]] = payload["messages"]
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        text = _text_of(users[-1].get("content")) if users else ""
        finish = "stop"
        limit = payload.get("max_tokens") or payload.get("max_completion_tokens")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            # What a real server answers (as a 400) to a request it cannot read.
            raise UpstreamFailure("client", "Invalid type for 'max_tokens': expected an integer.")
        if limit is not None and estimate_tokens(text) > limit:
            text, finish = text[: limit * 4], "length"
        prompt_tokens = sum(
            estimate_tokens(_text_of(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        completion_tokens = estimate_tokens(text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return ChatResult(text=text, finish_reason=finish, usage=usage)

    async def stream(self, payload: dict[str, Any]) -> AsyncGenerator[ChatDelta, None]:
        """The same answer, a word at a time."""
        result = await self.complete(payload)
        for n, piece in enumerate(re.findall(r"\s*\S+\s*|\s+", result.text or "")):
            if n % YIELD_EVERY == YIELD_EVERY - 1:
                # A real model's stream waits on the network between pieces; this one never
                # would, and a long answer would hold the event loop (and every other job's
                # lease renewal on it) for seconds.
                await asyncio.sleep(0)
            yield ChatDelta(text=piece)
        yield ChatDelta(finish_reason=result.finish_reason, usage=result.usage)

    async def completion_raw(self, payload: dict[str, Any]) -> dict[str, Any]:
        result = await self.complete(payload)
        return {
            "id": "chatcmpl-echo",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload.get("model", ECHO_MODEL),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": result.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": result.usage,
        }

    async def chunks_raw(self, payload: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        base = {
            "id": "chatcmpl-echo",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": payload.get("model", ECHO_MODEL),
        }
        async for delta in self.stream(payload):
            if delta.text:
                choice = {"index": 0, "delta": {"content": delta.text}, "finish_reason": None}
                yield {**base, "choices": [choice]}
            if delta.finish_reason:
                choice = {"index": 0, "delta": {}, "finish_reason": delta.finish_reason}
                yield {**base, "choices": [choice]}
                if (payload.get("stream_options") or {}).get("include_usage"):
                    yield {**base, "choices": [], "usage": delta.usage}

    async def list_models(self) -> list[dict[str, Any]]:
        return [{"id": ECHO_MODEL, "object": "model", "created": 0, "owned_by": "tether"}]

    async def context_window(self, model: str) -> int | None:
        return None  # echo has no window: it answers whatever it gets

    async def close(self) -> None:
        return None
