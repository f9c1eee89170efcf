"""Chat messages shaped for what self-hosted chat templates accept, on every path to the
upstream (the Responses path and the Chat Completions proxy alike).

- `developer` is sent as `system`: most templates know no other role for it.
- With UPSTREAM_MERGE_MESSAGES, strict templates (Mistral's, Gemma's) get what they insist on:
  one system message, first; no two user (or two plain assistant) messages in a row. A Responses
  turn easily has several of each: instructions, developer items, a conversation's earlier
  items. Merged contents are joined by a blank line, in order; nothing is dropped.
"""

from typing import Any


def fit_template(messages: list[dict[str, Any]], merge: bool) -> list[dict[str, Any]]:
    shaped = [_system_role(m) for m in messages]
    return _merged(shaped) if merge else shaped


def _system_role(message: dict[str, Any]) -> dict[str, Any]:
    return {**message, "role": "system"} if message.get("role") == "developer" else message


def _merged(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    systems = [m for m in messages if m.get("role") == "system"]
    out: list[dict[str, Any]] = []
    if systems:
        head = systems[0]
        for more in systems[1:]:
            head = _join(head, more)
        out.append(head)
    for message in messages:
        if message.get("role") == "system":
            continue
        last = out[-1] if out else None
        if last is not None and _joinable(last, message):
            out[-1] = _join(last, message)
        else:
            out.append(message)
    return out


def _joinable(first: dict[str, Any], second: dict[str, Any]) -> bool:
    role = first.get("role")
    if role != second.get("role") or role not in ("user", "assistant"):
        return False
    # An assistant message that calls tools is answered by tool messages: keep it whole.
    return not (first.get("tool_calls") or second.get("tool_calls"))


def _join(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    a, b = first.get("content"), second.get("content")
    if isinstance(a, str | None) and isinstance(b, str | None):
        content: Any = "\n\n".join(text for text in (a, b) if text)
    else:
        content = [*_parts(a), {"type": "text", "text": "\n\n"}, *_parts(b)]
    joined = {**first, "content": content}
    reasoning = [r for r in (first.get("reasoning_content"), second.get("reasoning_content")) if r]
    if reasoning:
        joined["reasoning_content"] = "\n\n".join(reasoning)
    return joined


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if content else []
