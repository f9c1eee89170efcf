"""What the pages draw, shaped from stored objects: items and chat messages as a chat's
bubbles, a thread as a tree, times as people read them. No SQL here, no HTTP."""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson


@dataclass(slots=True)
class Bubble:
    """One entry of a chat: a message, a tool call, a tool's result, reasoning, or another item
    (shown as its JSON)."""

    kind: str  # message | tool_call | tool_result | reasoning | other
    role: str = ""
    text: str = ""
    name: str = ""
    call_id: str = ""
    raw: str = ""


def pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def _parts_text(content: Any) -> str:
    """The text of a message's content: a string, or its parts joined (an image or a file
    part named, not inlined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    out = []
    for part in content if isinstance(content, list) else [content]:
        if not isinstance(part, dict):
            out.append(str(part))
            continue
        kind = part.get("type", "")
        if "text" in part and isinstance(part["text"], str):
            out.append(part["text"])
        elif kind == "refusal" or "refusal" in part:
            out.append(f"(refused) {part.get('refusal', '')}")
        elif "image" in kind:
            out.append(f"[image: {part.get('image_url') or part.get('file_id') or '…'}]")
        elif "file" in kind:
            out.append(f"[file: {part.get('filename') or part.get('file_id') or '…'}]")
        elif "audio" in kind:
            out.append("[audio]")
        else:
            out.append(pretty(part))
    return "\n".join(out)


def item_bubble(item: dict[str, Any]) -> Bubble:
    """A Responses API item (input or output) as a bubble."""
    kind = item.get("type", "message")
    if kind == "message":
        return Bubble(
            "message", role=str(item.get("role", "")), text=_parts_text(item.get("content"))
        )
    if kind in ("function_call", "custom_tool_call"):
        args = item.get("arguments", item.get("input", ""))
        return Bubble(
            "tool_call",
            name=str(item.get("name", "")),
            call_id=str(item.get("call_id", "")),
            text=str(args),
        )
    if kind in ("function_call_output", "custom_tool_call_output"):
        output = item.get("output", "")
        text = output if isinstance(output, str) else _parts_text(output)
        return Bubble("tool_result", call_id=str(item.get("call_id", "")), text=text)
    if kind == "reasoning":
        parts = (item.get("summary") or []) + (item.get("content") or [])
        return Bubble("reasoning", text=_parts_text(parts))
    return Bubble("other", name=str(kind), raw=pretty(item))


def message_bubbles(message: dict[str, Any]) -> list[Bubble]:
    """A chat-completions message: its text, then each tool call it made."""
    role = str(message.get("role", ""))
    out: list[Bubble] = []
    if role == "tool":
        out.append(
            Bubble(
                "tool_result",
                call_id=str(message.get("tool_call_id", "")),
                text=_parts_text(message.get("content")),
            )
        )
        return out
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        out.append(Bubble("reasoning", text=reasoning))
    text = _parts_text(message.get("content"))
    if message.get("refusal"):
        text = (text + "\n" if text else "") + f"(refused) {message['refusal']}"
    if text or not message.get("tool_calls"):
        out.append(Bubble("message", role=role, text=text))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        out.append(
            Bubble(
                "tool_call",
                name=str(function.get("name", "")),
                call_id=str(call.get("id", "")),
                text=str(function.get("arguments", "")),
            )
        )
    return out


def snippet(items: list[dict[str, Any]] | None, size: int = 80) -> str:
    """A line of what a turn asked: its last user message, or the kind of its last item."""
    for item in reversed(items or []):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            text = " ".join(_parts_text(item.get("content")).split())
            return text if len(text) <= size else text[: size - 1] + "…"
    if items:
        return f"({items[-1].get('type', 'item')})"
    return ""


@dataclass(slots=True)
class Node:
    id: str
    status: str
    model: str
    created_at: int
    deleted: bool
    snippet: str
    current: bool = False
    children: list["Node"] = field(default_factory=list)


def tree(rows: list[dict[str, Any]], root_id: str, current_id: str) -> Node | None:
    """The rows of a thread (root and descendants) as nested nodes, forks in creation order."""
    nodes = {
        row["id"]: Node(
            row["id"],
            row["status"],
            row["model"],
            int(row["created_at"]),
            row["deleted_at"] is not None,
            snippet(row["input"]),
            row["id"] == current_id,
        )
        for row in rows
    }
    for row in sorted(rows, key=lambda r: str(r["id"])):
        parent = nodes.get(row["previous_response_id"] or "")
        if parent is not None and row["id"] != root_id:
            parent.children.append(nodes[row["id"]])
    return nodes.get(root_id)


def when(seconds: float | None) -> str:
    """A time as people read it (UTC, to the second); an empty string for none."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(seconds: float | None) -> str:
    if seconds is None:
        return ""
    gone = max(0.0, time.time() - seconds)
    if gone < 60:
        return f"{gone:.0f} s ago"
    if gone < 3600:
        return f"{gone / 60:.0f} min ago"
    if gone < 86400:
        return f"{gone / 3600:.1f} h ago"
    return f"{gone / 86400:.1f} days ago"


def span(start: float | None, end: float | None) -> str:
    """How long from start to end, in whole seconds (created_at and completed_at are whole
    seconds, as OpenAI's); empty if either is unknown."""
    if start is None or end is None:
        return ""
    seconds = end - start
    return "under 1 s" if seconds < 1 else f"{seconds:.0f} s"
