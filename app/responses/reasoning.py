"""Reasoning across stateless turns: sealed on the way out, opened on the way in.

With `include=["reasoning.encrypted_content"]` each reasoning item carries its text sealed for
this deployment and project (app/kit/sealing.py). A client that keeps its own thread
(`store=false`: Codex, OpenAI's zero-retention mode) sends those items back with its next
input; they are opened here, before the turn is built, so the model is sent the same history
as a stored thread gives it (app/kit/items.py: to_chat_messages).
"""

from functools import partial
from typing import Any

from app.kit.sealing import Keyring
from app.responses.domain import ResponseRecord
from app.responses.translate import OutputOptions, wants_sealed_reasoning


async def output_options(keyring: Keyring, row: ResponseRecord) -> OutputOptions:
    """How a turn's output is written; its reasoning sealed when the request asked for it."""
    seal = None
    if wants_sealed_reasoning(row["params"]):
        seal = partial((await keyring.sealer()).seal, row["project_id"])
    return OutputOptions.of(row["params"], seal)


async def opened(
    keyring: Keyring, project_id: str, items: list[dict[str, Any]], field: str = "input"
) -> list[dict[str, Any]]:
    """`items` with each sealed reasoning item's text opened into its `content` (what the model
    is shown); one that does not open is a 400 naming `{field}[i].encrypted_content`. The
    items as sent are what is stored; these only feed the model call."""
    if not any(item["type"] == "reasoning" and item.get("encrypted_content") for item in items):
        return items
    sealer = await keyring.sealer()
    out = []
    for i, item in enumerate(items):
        token = item.get("encrypted_content") if item["type"] == "reasoning" else None
        if token:
            if not isinstance(token, str):
                token = ""  # not one of ours either
            text = sealer.open(project_id, token, f"{field}[{i}].encrypted_content")
            item = {**item, "content": [{"type": "reasoning_text", "text": text}]}
        out.append(item)
    return out
