"""Token counts without the model's tokenizer: a documented estimate.

Self-hosted upstreams expose no tokenizer through the OpenAI API, so Tether estimates: one token
per 4 characters of text (the usual rule of thumb for English), plus 4 per message for the chat
template's framing, plus the JSON of the tools. It errs high for code and low for CJK text.
"""

import math
from typing import Any

import orjson

PER_MESSAGE = 4


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def estimate(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    chars = 0
    for message in messages:
        chars += len(_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            chars += len(orjson.dumps(call))
    if tools:
        chars += len(orjson.dumps(tools))
    return math.ceil(chars / 4) + PER_MESSAGE * len(messages)


def truncate(
    system: list[dict[str, Any]],
    history: list[dict[str, Any]],
    new: list[dict[str, Any]],
    budget: int,
    tools: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """truncation="auto": drop the oldest turns of `history` until everything (the tools'
    definitions included, as the count counts them) fits `budget`. A kept history never starts
    with a tool result or an assistant turn cut from its user."""
    kept = list(history)
    while kept and estimate(system + kept + new, tools) > budget:
        kept.pop(0)
        while kept and kept[0]["role"] != "user":
            kept.pop(0)
    return kept
