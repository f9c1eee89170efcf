"""The Responses streaming events (DESIGN §5), numbered from a sequence_number on.

TurnEvents turns the model's deltas into events and assembles the output as it goes, so the
stored response is exactly what was streamed. As OpenAI does, each output item is closed (its
`.done` events sent) before the next one opens: a reasoning model's reasoning item ends when
its answer's message begins. replay_finished() rebuilds the events of a finished response from
its row, for a stream whose event log has expired, through the same TurnEvents.
"""

from collections.abc import Iterator
from typing import Any

from app.kit.ids import new_id
from app.providers.base import ChatDelta, UpstreamFailure
from app.responses.domain import FinalValues, ResponseStatus
from app.responses.translate import (
    failed_values,
    finish_status,
    finished_values,
    function_call_item,
    message_item,
    reasoning_item,
)

TERMINAL_EVENTS = ("response.completed", "response.failed", "response.incomplete")


def final_event_type(status: str) -> str:
    return {
        ResponseStatus.FAILED: "response.failed",
        ResponseStatus.INCOMPLETE: "response.incomplete",
    }.get(ResponseStatus(status), "response.completed")


class TurnEvents:
    def __init__(self, response: dict[str, Any], next_seq: int = 0) -> None:
        self.response = response  # the rendered Response object, updated as the turn goes
        self.seq = next_seq
        self.items: list[dict[str, Any]] = []  # output items, in stream order
        self.open: dict[str, dict[str, Any]] = {}  # "reasoning" / "message" -> item
        self.texts: dict[str, str] = {}
        self.calls: dict[str, int] = {}  # tool-call key -> its index in items
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        out = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return out

    def lifecycle(self, kind: str, **changes: Any) -> dict[str, Any]:
        """response.created / queued / in_progress / completed ...: with the whole response."""
        self.response = {**self.response, **changes}
        return self.event(kind, response=self.response)

    def delta(self, delta: ChatDelta) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if delta.reasoning:
            out += self._piece("reasoning", delta.reasoning)
        if delta.text:
            out += self._piece("message", delta.text)
        for call in delta.tool_calls:
            out += self._call_piece(call)
        self.finish_reason = delta.finish_reason or self.finish_reason
        self.usage = delta.usage or self.usage
        return out

    def _piece(self, kind: str, text: str, item_id: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        item = self.open.get(kind)
        if item is None:
            item = self._open(kind, out, item_id)
        index = self.items.index(item)
        self.texts[kind] += text
        name = (
            "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        )
        extra: dict[str, Any] = {"logprobs": []} if kind == "message" else {}
        out.append(
            self.event(
                name, item_id=item["id"], output_index=index, content_index=0, delta=text, **extra
            )
        )
        return out

    def _open(
        self, kind: str, out: list[dict[str, Any]], item_id: str | None = None
    ) -> dict[str, Any]:
        out += self._close_open()
        if kind == "message":
            item: dict[str, Any] = {
                "id": item_id or new_id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            part: dict[str, Any] = {
                "type": "output_text",
                "text": "",
                "annotations": [],
                "logprobs": [],
            }
        else:
            item = {
                "id": item_id or new_id("rs"),
                "type": "reasoning",
                "summary": [],
                "content": [],
            }
            part = {"type": "reasoning_text", "text": ""}
        self.items.append(item)
        self.open[kind] = item
        self.texts[kind] = ""
        index = len(self.items) - 1
        out.append(self.event("response.output_item.added", output_index=index, item=item))
        out.append(
            self.event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            )
        )
        return item

    def _call_piece(self, call: dict[str, Any], item_id: str | None = None) -> list[dict[str, Any]]:
        """A streamed tool-call delta: the function_call item opens on its first piece, then
        its arguments arrive as response.function_call_arguments.delta events."""
        key = f"call:{call.get('index', 0)}"
        function = call.get("function") or {}
        out: list[dict[str, Any]] = []
        item = self.open.get(key)
        if item is None and key in self.texts:
            # A piece of a call already closed (an upstream interleaving parallel calls): the
            # stored call gets it; its events were sent, so no event can carry it any more.
            done = self.items[self.calls[key]]
            done["arguments"] += function.get("arguments") or ""
            return out
        if item is None:
            out += self._close_open()
            item = {
                "id": new_id("fc"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": call.get("id") or new_id("call"),
                "name": function.get("name") or "",
                "arguments": "",
            }
            self.items.append(item)
            self.open[key] = item
            self.texts[key] = ""
            self.calls[key] = len(self.items) - 1
            out.append(
                self.event(
                    "response.output_item.added", output_index=len(self.items) - 1, item=item
                )
            )
        arguments = function.get("arguments") or ""
        if arguments:
            self.texts[key] += arguments
            out.append(
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self.items.index(item),
                    delta=arguments,
                )
            )
        return out

    def _close_call(self, key: str) -> list[dict[str, Any]]:
        item = self.open.pop(key)
        index = self.items.index(item)
        done = function_call_item(item["id"], item["call_id"], item["name"], self.texts[key])
        self.items[index] = done
        return [
            self.event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=done["arguments"],
            ),
            self.event("response.output_item.done", output_index=index, item=done),
        ]

    def _close_open(self, status: str = ResponseStatus.COMPLETED) -> list[dict[str, Any]]:
        """Close every open item (at most one, since each opening closes the others)."""
        out: list[dict[str, Any]] = []
        for kind in list(self.open):
            out += self._close(kind, status)
        return out

    def _close(self, kind: str, status: str) -> list[dict[str, Any]]:
        if kind.startswith("call:"):
            return self._close_call(kind)
        item = self.open.pop(kind)
        index = self.items.index(item)
        text = self.texts[kind]
        extra: dict[str, Any]
        if kind == "message":
            done = message_item(item["id"], text, status)
            name, extra = "response.output_text.done", {"logprobs": []}
        else:
            done = reasoning_item(item["id"], text)
            name, extra = "response.reasoning_text.done", {}
        out = [
            self.event(
                name, item_id=item["id"], output_index=index, content_index=0, text=text, **extra
            )
        ]
        self.items[index] = done
        out.append(
            self.event(
                "response.content_part.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=done["content"][0],
            )
        )
        out.append(self.event("response.output_item.done", output_index=index, item=done))
        return out

    def finish(
        self, input_messages: list[dict[str, Any]]
    ) -> tuple[FinalValues, list[dict[str, Any]]]:
        """The row's final values and the closing events, once the model stopped."""
        status, incomplete = finish_status(self.finish_reason)
        out: list[dict[str, Any]] = []
        if not any(item["type"] in ("message", "function_call") for item in self.items):
            self._open("message", out)  # an empty answer still has its message
        out += self._close_open(status)
        values = finished_values(status, incomplete, self.items, self.usage, input_messages)
        return values, [*out, self._final(values)]

    def abandon(self, input_messages: list[dict[str, Any]]) -> FinalValues:
        """The row's values when the stream's client went away mid-answer: what was generated
        so far, `incomplete` with reason `client_disconnected` (no events: nobody listens)."""
        self._close_open(ResponseStatus.INCOMPLETE)
        return finished_values(
            ResponseStatus.INCOMPLETE,
            {"reason": "client_disconnected"},
            self.items,
            self.usage,
            input_messages,
        )

    def _final(self, values: FinalValues) -> dict[str, Any]:
        return self.lifecycle(final_event_type(values["status"]), **_shown(values))

    def replay_item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """The events of one finished output item, as if streamed in one delta."""
        if item["type"] == "function_call":
            index = len(self.items)
            function = {"name": item["name"], "arguments": item["arguments"]}
            call = {"index": index, "id": item["call_id"], "function": function}
            out = self._call_piece(call, item["id"])
            return out + self._close(f"call:{index}", ResponseStatus.COMPLETED)
        kind = "message" if item["type"] == "message" else "reasoning"
        part = item["content"][0] if item.get("content") else {}
        out = self._piece(kind, part.get("text") or part.get("refusal") or "", item["id"])
        return out + self._close(kind, item.get("status", ResponseStatus.COMPLETED))

    def fail(self, failure: UpstreamFailure) -> tuple[FinalValues, list[dict[str, Any]]]:
        """The model failed mid-answer: an `error` event, then response.failed."""
        values = failed_values(failure)
        error = values.get("error") or {}
        out = [self.event("error", code=error["code"], message=error["message"], param=None)]
        out.append(self.lifecycle("response.failed", **_shown(values)))
        return values, out


def _shown(values: FinalValues) -> dict[str, Any]:
    """Row values that also appear on the Response object."""
    return {k: v for k, v in values.items() if k != "messages"}


def replay_finished(response: dict[str, Any], background: bool) -> Iterator[dict[str, Any]]:
    """The events of a finished response, rebuilt from what was stored (one delta per part)."""
    start = {
        **response,
        "status": ResponseStatus.QUEUED if background else ResponseStatus.IN_PROGRESS,
        "output": [],
        "usage": None,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
    }
    turn = TurnEvents(start)
    yield turn.lifecycle("response.created")
    if background:
        yield turn.lifecycle("response.queued")
    yield turn.lifecycle("response.in_progress", status=ResponseStatus.IN_PROGRESS)
    for item in response["output"]:
        yield from turn.replay_item(item)
    if response["status"] == ResponseStatus.FAILED:
        error = response.get("error") or {}
        yield turn.event(
            "error", code=error.get("code"), message=error.get("message", ""), param=None
        )
    if response["status"] == ResponseStatus.CANCELLED:
        return  # no event says "cancelled": the stream simply ends, as a live one does
    yield turn.event(final_event_type(response["status"]), response=response)
