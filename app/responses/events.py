"""The Responses streaming events (DESIGN §5), numbered from a sequence_number on.

TurnEvents turns the model's deltas into events and assembles the output as it goes, so the
stored response is exactly what was streamed. As OpenAI does, each output item is closed (its
`.done` events sent) before the next one opens: a reasoning model's reasoning item ends when
its answer's message begins. replay_finished() rebuilds the events of a finished response from
its row, for a stream whose event log has expired, through the same TurnEvents.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app.kit.ids import new_id
from app.kit.items import namespaced
from app.providers.base import ChatDelta, UpstreamFailure
from app.responses.domain import FinalValues, ResponseStatus
from app.responses.translate import (
    OutputOptions,
    failed_values,
    finish_status,
    finished_values,
    function_call_item,
    map_logprobs,
    message_item,
    output_text,
    reasoning_item,
    served_tier,
)

TERMINAL_EVENTS = ("response.completed", "response.failed", "response.incomplete")


def final_event_type(status: str) -> str:
    return {
        ResponseStatus.FAILED: "response.failed",
        ResponseStatus.INCOMPLETE: "response.incomplete",
    }.get(ResponseStatus(status), "response.completed")


@dataclass(frozen=True, slots=True)
class _Part:
    """How one kind of streamed text is framed: its item, its part and its events."""

    item_type: str  # "message" or "reasoning"
    part: dict[str, Any]  # the empty part, as announced
    opened: str  # the part's .added event
    delta: str
    done: str
    closed: str  # the part's .done event
    index_field: str  # "content_index", or "summary_index" for summaries
    text_field: str  # where the .done event carries the whole text


PARTS = {
    "message": _Part(
        "message",
        output_text(""),
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "content_index",
        "text",
    ),
    "refusal": _Part(
        "message",
        {"type": "refusal", "refusal": ""},
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
        "content_index",
        "refusal",
    ),
    "reasoning": _Part(
        "reasoning",
        {"type": "reasoning_text", "text": ""},
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "content_index",
        "text",
    ),
    # Reasoning streamed as its summary, when reasoning.summary was asked for.
    "summary": _Part(
        "reasoning",
        {"type": "summary_text", "text": ""},
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "summary_index",
        "text",
    ),
}


class TurnEvents:
    def __init__(
        self,
        response: dict[str, Any],
        next_seq: int = 0,
        options: OutputOptions | None = None,
    ) -> None:
        self.response = response  # the rendered Response object, updated as the turn goes
        self.seq = next_seq
        self.options = options or OutputOptions()
        self.items: list[dict[str, Any]] = []  # output items, in stream order
        self.open: dict[str, dict[str, Any]] = {}  # kind ("message", "call:0", ...) -> item
        self.texts: dict[str, str] = {}
        self.logprobs: list[dict[str, Any]] = []  # the open message's
        self.calls: dict[str, int] = {}  # tool-call key -> its index in items
        # Replayed reasoning items' encrypted_content, kept as stored (item id -> token).
        self.sealed: dict[str, str] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.service_tier: str | None = None
        self.deployment: str | None = None  # the catalog deployment answering, once known

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
            kind = "summary" if self.options.summary else "reasoning"
            out += self._piece(kind, delta.reasoning)
        if delta.text:
            logprobs = map_logprobs(delta.logprobs) if self.options.logprobs else []
            out += self._piece("message", delta.text, logprobs=logprobs)
        if delta.refusal:
            out += self._piece("refusal", delta.refusal)
        for call in delta.tool_calls:
            out += self._call_piece(call)
        self.finish_reason = delta.finish_reason or self.finish_reason
        self.usage = delta.usage or self.usage
        self.service_tier = delta.service_tier or self.service_tier
        self.deployment = delta.deployment or self.deployment
        return out

    def _piece(
        self,
        kind: str,
        text: str,
        item_id: str | None = None,
        logprobs: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        spec = PARTS[kind]
        out: list[dict[str, Any]] = []
        item = self.open.get(kind) or self._open(kind, out, item_id)
        self.texts[kind] += text
        extra: dict[str, Any] = {}
        if kind == "message":
            self.logprobs += logprobs or []
            extra["logprobs"] = logprobs or []
        index = self.items.index(item)
        out.append(
            self.event(
                spec.delta,
                item_id=item["id"],
                output_index=index,
                **{spec.index_field: 0},
                delta=text,
                **extra,
            )
        )
        return out

    def _open(
        self, kind: str, out: list[dict[str, Any]], item_id: str | None = None
    ) -> dict[str, Any]:
        out += self._close_open()
        spec = PARTS[kind]
        item: dict[str, Any]
        if spec.item_type == "message":
            item = {
                "id": item_id or new_id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
        else:
            item = {
                "id": item_id or new_id("rs"),
                "type": "reasoning",
                "summary": [],
                "content": [],
            }
        self.items.append(item)
        self.open[kind] = item
        self.texts[kind] = ""
        self.logprobs = []
        index = len(self.items) - 1
        out.append(self.event("response.output_item.added", output_index=index, item=item))
        out.append(
            self.event(
                spec.opened,
                item_id=item["id"],
                output_index=index,
                **{spec.index_field: 0},
                part=spec.part,
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
            namespace, name = self.options.function(function.get("name") or "")
            item = {
                "id": item_id or new_id("fc"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": call.get("id") or new_id("call"),
                "name": name,
                "arguments": "",
            }
            if namespace is not None:
                item["namespace"] = namespace
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
        done = self._call_done(item, self.texts[key])
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

    @staticmethod
    def _call_done(item: dict[str, Any], arguments: str) -> dict[str, Any]:
        return function_call_item(
            item["id"], item["call_id"], item["name"], arguments, item.get("namespace")
        )

    def _close_open(self, status: str = ResponseStatus.COMPLETED) -> list[dict[str, Any]]:
        """Close every open item (at most one, since each opening closes the others)."""
        out: list[dict[str, Any]] = []
        for kind in list(self.open):
            out += self._close(kind, status)
        return out

    def _done_item(self, kind: str, item_id: str, status: str) -> tuple[dict[str, Any], Any]:
        """The finished item, and its finished part."""
        text = self.texts[kind]
        if kind == "message":
            part = output_text(text, self.logprobs)
            return message_item(item_id, status, part), part
        if kind == "refusal":
            part = {"type": "refusal", "refusal": text}
            return message_item(item_id, status, part), part
        done = reasoning_item(item_id, text, self.options, self.sealed.get(item_id))
        parts = done["summary"] if kind == "summary" else done["content"]
        return done, parts[0]

    def _close(self, kind: str, status: str) -> list[dict[str, Any]]:
        if kind.startswith("call:"):
            return self._close_call(kind)
        spec = PARTS[kind]
        item = self.open.pop(kind)
        index = self.items.index(item)
        done, part = self._done_item(kind, item["id"], status)
        where = {"item_id": item["id"], "output_index": index, spec.index_field: 0}
        extra: dict[str, Any] = {"logprobs": part["logprobs"]} if kind == "message" else {}
        self.items[index] = done
        return [
            self.event(spec.done, **where, **{spec.text_field: self.texts[kind]}, **extra),
            self.event(spec.closed, **where, part=part),
            self.event("response.output_item.done", output_index=index, item=done),
        ]

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
        values["service_tier"] = served_tier(self.service_tier, self.response.get("service_tier"))
        values["deployment"] = self.deployment
        return values, [*out, self._final(values)]

    def so_far(self) -> list[dict[str, Any]]:
        """The output as it stands, an open item as if cut here (`incomplete`); changes
        nothing, so the stream goes on (a checkpoint of a running turn)."""
        out = list(self.items)
        for kind, item in self.open.items():
            index = out.index(item)
            if kind.startswith("call:"):
                out[index] = self._call_done(item, self.texts[kind])
            else:
                out[index] = self._done_item(kind, item["id"], ResponseStatus.INCOMPLETE)[0]
        return out

    def abandon(self, input_messages: list[dict[str, Any]]) -> FinalValues:
        """The row's values when the stream's client went away mid-answer: what was generated
        so far, `incomplete` (no events: nobody listens). OpenAI has no reason for this, and
        strict clients accept only its reasons, so `reason` is null and the cause is named
        in a field of our own."""
        self._close_open(ResponseStatus.INCOMPLETE)
        values = finished_values(
            ResponseStatus.INCOMPLETE,
            {"reason": None, "tether_reason": "client_disconnected"},
            self.items,
            self.usage,
            input_messages,
        )
        values["deployment"] = self.deployment
        return values

    def _final(self, values: FinalValues) -> dict[str, Any]:
        return self.lifecycle(final_event_type(values["status"]), **_shown(values))

    def replay_item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """The events of one finished output item, as if streamed in one delta."""
        if item["type"] == "function_call":
            index = len(self.items)
            name = item["name"]
            if item.get("namespace"):  # as the model named it, to read back the same
                name = namespaced(item["namespace"], name)
            function = {"name": name, "arguments": item["arguments"]}
            call = {"index": index, "id": item["call_id"], "function": function}
            out = self._call_piece(call, item["id"])
            return out + self._close(f"call:{index}", ResponseStatus.COMPLETED)
        if item.get("encrypted_content"):
            self.sealed[item["id"]] = item["encrypted_content"]
        kind, part = _replayed_part(item)
        text = part.get("text") or part.get("refusal") or ""
        out = self._piece(kind, text, item["id"], logprobs=part.get("logprobs"))
        return out + self._close(kind, item.get("status", ResponseStatus.COMPLETED))

    def fail(self, failure: UpstreamFailure) -> tuple[FinalValues, list[dict[str, Any]]]:
        """The model failed mid-answer: an `error` event, then response.failed."""
        values = failed_values(failure)
        error = values.get("error") or {}
        out = [self.event("error", code=error["code"], message=error["message"], param=None)]
        out.append(self.lifecycle("response.failed", **_shown(values)))
        return values, out


def _replayed_part(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The kind of streamed text a stored message or reasoning item was, and its part."""
    if item["type"] == "message":
        part = item["content"][0] if item.get("content") else {}
        return ("refusal" if part.get("type") == "refusal" else "message"), part
    if item.get("summary"):
        return "summary", item["summary"][0]
    return "reasoning", item["content"][0] if item.get("content") else {}


def _shown(values: FinalValues) -> dict[str, Any]:
    """Row values that also appear on the Response object."""
    # Not OpenAI's: the replay form, and the deployment (a header, app/responses/endpoints.py).
    shown: dict[str, Any] = {k: v for k, v in values.items() if k not in ("messages", "deployment")}
    if "service_tier" in shown:
        shown["service_tier"] = shown["service_tier"] or "default"
    return shown


def replay_finished(
    response: dict[str, Any], background: bool, options: OutputOptions
) -> Iterator[dict[str, Any]]:
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
    turn = TurnEvents(start, options=options)
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
