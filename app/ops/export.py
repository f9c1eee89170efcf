"""`tether export`: a project's stored conversations as JSON Lines, for fine-tuning and evals.

- chat: one stored chat completion a line, in OpenAI's fine-tuning chat format:
  `{"messages": [the request's messages..., the assistant's answer], "tools": [...]}` (tools
  only if the request had them; the answer's tool calls as the assistant's `tool_calls`).
- responses: one completed response a line, with its whole thread:
  `{"id", "model", "created_at", "metadata", "messages"}`, the messages being its instructions
  (as a system message), every earlier turn up its previous_response_id chain (tombstones
  included, as the model saw them), then its own input and output, as chat messages.

Pages of PAGE rows in id order (keyset: `id > last`), written as they come: constant memory
however large the project.
"""

from collections.abc import Callable
from typing import Any, Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from app.chat.repository import ChatCompletionsRepository
from app.keys.repository import KeysRepository
from app.responses.housekeeping import HousekeepingRepository
from app.responses.repository import ResponsesRepository

PAGE = 200
Kind = Literal["chat", "responses"]
# What an assistant message keeps of the completion's (its other keys are not part of it).
ASSISTANT_KEYS = ("content", "refusal", "tool_calls")


async def project_id(engine: AsyncEngine, name: str, default_project_id: str) -> str | None:
    """The id of the project of this name; `default` is the keyless requests' project even
    before it has a row (no key was ever made)."""
    async with engine.connect() as conn:
        found = await KeysRepository(conn).project_by_name(name)
    if found is not None:
        return str(found["id"])
    return default_project_id if name == "default" else None


async def export(
    engine: AsyncEngine,
    project: str,
    kind: Kind,
    write: Callable[[bytes], Any],
    *,
    since: int | None = None,
    metadata: dict[str, str] | None = None,
    progress: Callable[[int], None] = lambda _: None,
    until: int | None = None,
    model: str | None = None,
) -> int:
    """Write the project's lines of `kind` (each ending in a newline); how many. `until`
    (exclusive) and `model` narrow it further (the dashboard's filter)."""
    after: str | None = None
    written = 0
    while True:
        async with engine.connect() as conn:
            pages = (
                ChatCompletionsRepository(conn) if kind == "chat" else HousekeepingRepository(conn)
            )
            rows = await pages.export_page(
                project, after, PAGE, since=since, metadata=metadata or {}, until=until, model=model
            )
            if kind == "chat":
                for row in rows:
                    write(orjson.dumps(chat_line(row)) + b"\n")
            else:
                # A line carries its whole thread: each is written as soon as it is built, so
                # memory holds one thread, not a page of them.
                repo = ResponsesRepository(conn)
                for row in rows:
                    write(orjson.dumps(await _response_line(repo, project, row)) + b"\n")
        written += len(rows)
        progress(written)
        if len(rows) < PAGE:
            return written
        after = rows[-1]["id"]


def chat_line(row: dict[str, Any]) -> dict[str, Any]:
    # Our message ids (`<completion id>-<n>`, for messages.list) are not part of a message.
    messages = [{k: v for k, v in m.items() if k != "id"} for m in row["messages"]]
    choices = row["completion"].get("choices") or []
    if choices:
        messages.append(_assistant(choices[0].get("message") or {}))
    line: dict[str, Any] = {"messages": messages}
    if row["request"].get("tools"):
        line["tools"] = row["request"]["tools"]
    if row["request"].get("parallel_tool_calls") is not None:
        line["parallel_tool_calls"] = row["request"]["parallel_tool_calls"]
    return line


def _assistant(message: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant"}
    for key in ASSISTANT_KEYS:
        if message.get(key) is not None:
            out[key] = message[key]
    out.setdefault("content", None if out.get("tool_calls") else "")
    if "tool_calls" in out:
        out["tool_calls"] = [
            {"id": call["id"], "type": "function", "function": call["function"]}
            for call in out["tool_calls"]
        ]
    return out


async def _response_line(
    repo: ResponsesRepository, project: str, row: dict[str, Any]
) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if row["instructions"]:
        messages.append({"role": "system", "content": row["instructions"]})
    if row["previous_response_id"] is not None:
        chain = await repo.chain(project, row["previous_response_id"], head_may_be_deleted=True)
        messages += chain.messages
    messages += row["messages"]
    return {
        "id": row["id"],
        "model": row["model"],
        "created_at": row["created_at"],
        "metadata": row["metadata"],
        "messages": messages,
    }
