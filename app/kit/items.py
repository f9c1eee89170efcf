"""Input items: normalised to the stored shape, and turned into chat-completions messages.

Every rejection names the exact `param` (e.g. `input[2].content[0].type`), as OpenAI does, so a
client can see which part of a long input is wrong.
"""

from collections.abc import Callable
from typing import Any

from app.errors import InvalidRequest
from app.kit.ids import new_id

ROLES = ("user", "system", "developer", "assistant")
# `phase` (an assistant message's "commentary" / "final_answer") is kept as sent.
MESSAGE_KEYS = {"type", "role", "content", "id", "status", "phase"}
INPUT_PARTS: dict[str, set[str]] = {
    "input_text": {"type", "text"},
    "input_image": {"type", "image_url", "file_id", "detail"},
    "input_file": {"type", "file_data", "file_url", "file_id", "filename", "detail"},
}
OUTPUT_PARTS: dict[str, set[str]] = {
    "output_text": {"type", "text", "annotations", "logprobs"},
    "refusal": {"type", "refusal"},
}
IMAGE_DETAILS = ("auto", "low", "high", "original")
# Item ids are stored in 64-character columns (conversation items); OpenAI's own are ~50.
MAX_ID_LENGTH = 64


def _supported(values: list[str] | tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + f" and {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(
            f"Invalid type for '{param}': expected a string, but got "
            f"{type(value).__name__} instead.",
            param=param,
            code="invalid_type",
        )
    return value


def _item_id(value: Any, default_prefix: str, param: str) -> str:
    """A client's item id (checked) or a new one."""
    if value is None or value == "":
        return new_id(default_prefix)
    item_id = _string(value, param)
    if len(item_id) > MAX_ID_LENGTH:
        raise InvalidRequest(
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{MAX_ID_LENGTH}, but got a string with length {len(item_id)} instead.",
            param=param,
            code="string_above_max_length",
        )
    return item_id


def check_keys(obj: dict[str, Any], allowed: set[str], param: str) -> None:
    for key in obj:
        if key not in allowed:
            raise InvalidRequest(
                f"Unknown parameter: '{param}.{key}'.",
                param=f"{param}.{key}",
                code="unknown_parameter",
            )


def _part(part: Any, role: str, param: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise InvalidRequest(
            f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type"
        )
    allowed = OUTPUT_PARTS if role == "assistant" else INPUT_PARTS
    kind = part.get("type")
    if kind not in allowed:
        raise InvalidRequest(
            f"Invalid value: '{kind}'. Supported values are: {_supported(list(allowed))}.",
            param=f"{param}.type",
            code="invalid_value",
        )
    check_keys(part, allowed[kind], param)
    if kind in ("input_text", "output_text"):
        out: dict[str, Any] = {"type": kind, "text": _string(part.get("text"), f"{param}.text")}
        if kind == "output_text":
            out["annotations"] = part.get("annotations") or []
        return out
    if kind == "refusal":
        return {"type": "refusal", "refusal": _string(part.get("refusal"), f"{param}.refusal")}
    if kind == "input_file":
        return _file(part, param)
    # input_image
    if part.get("file_id") is not None:
        raise InvalidRequest(
            "Images by 'file_id' are not supported: Tether has no Files API; pass 'image_url' "
            "(an https URL or a data: URL).",
            param=f"{param}.file_id",
            code="unsupported_value",
        )
    url = _string(part.get("image_url"), f"{param}.image_url")
    detail = part.get("detail", "auto")
    if detail not in IMAGE_DETAILS:
        raise InvalidRequest(
            f"Invalid value: '{detail}'. Supported values are: {_supported(IMAGE_DETAILS)}.",
            param=f"{param}.detail",
            code="invalid_value",
        )
    return {"type": "input_image", "image_url": url, "detail": detail}


def _file(part: dict[str, Any], param: str) -> dict[str, Any]:
    """A file given inline (`file_data`, a data: URL or base64), sent to the upstream as a chat
    `file` part. By id or URL it would need a Files API or a fetch Tether does not make."""
    for key, how in (("file_id", "by 'file_id'"), ("file_url", "by 'file_url'")):
        if part.get(key) is not None:
            raise InvalidRequest(
                f"Files {how} are not supported: Tether has no Files API and fetches nothing; "
                "pass the file inline as 'file_data'.",
                param=f"{param}.{key}",
                code="unsupported_value",
            )
    out = {"type": "input_file", "file_data": _string(part.get("file_data"), f"{param}.file_data")}
    if part.get("filename") is not None:
        out["filename"] = _string(part["filename"], f"{param}.filename")
    return out


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    check_keys(item, MESSAGE_KEYS, param)
    role = item.get("role")
    if role not in ROLES:
        raise InvalidRequest(
            f"Invalid value: '{role}'. Supported values are: {_supported(ROLES)}.",
            param=f"{param}.role",
            code="invalid_value",
        )
    content = item.get("content")
    if isinstance(content, str):
        kind = "output_text" if role == "assistant" else "input_text"
        parts: list[dict[str, Any]] = [{"type": kind, "text": content}]
        if role == "assistant":
            parts[0]["annotations"] = []
    elif isinstance(content, list):
        parts = [_part(p, role, f"{param}.content[{j}]") for j, p in enumerate(content)]
    else:
        raise InvalidRequest(
            f"Invalid type for '{param}.content': expected a string or an array of content parts.",
            param=f"{param}.content",
            code="invalid_type",
        )
    out = {
        "id": _item_id(item.get("id"), "msg", f"{param}.id"),
        "type": "message",
        "role": role,
        "content": parts,
        "status": "completed",
    }
    if item.get("phase") is not None:
        out["phase"] = _string(item["phase"], f"{param}.phase")
    return out


def namespaced(namespace: str, name: str) -> str:
    """The name a function of a `namespace` tool has upstream, where tools have no namespaces:
    readable to the model, and checked to collide with no other tool of the request
    (app/responses/params.py)."""
    return f"{namespace}__{name}"


def _function_call(item: dict[str, Any], param: str) -> dict[str, Any]:
    check_keys(item, {"type", "id", "call_id", "namespace", "name", "arguments", "status"}, param)
    out = {
        "id": _item_id(item.get("id"), "fc", f"{param}.id"),
        "type": "function_call",
        "call_id": _string(item.get("call_id"), f"{param}.call_id"),
        "name": _string(item.get("name"), f"{param}.name"),
        "arguments": _string(item.get("arguments"), f"{param}.arguments"),
        "status": "completed",
    }
    # A call to a function of a `namespace` tool names both, as OpenAI reports it.
    if item.get("namespace") is not None:
        out["namespace"] = _string(item["namespace"], f"{param}.namespace")
    return out


def _function_call_output(item: dict[str, Any], param: str) -> dict[str, Any]:
    """A tool's result: a string, or (as OpenAI accepts, and the Agents SDK sends for
    structured tool output) a list of input content parts."""
    check_keys(item, {"type", "id", "call_id", "output", "status"}, param)
    output = item.get("output")
    if isinstance(output, list):
        result: str | list[dict[str, Any]] = [
            _part(p, "tool", f"{param}.output[{j}]") for j, p in enumerate(output)
        ]
    else:
        result = _string(output, f"{param}.output")
    return {
        "id": _item_id(item.get("id"), "fco", f"{param}.id"),
        "type": "function_call_output",
        "call_id": _string(item.get("call_id"), f"{param}.call_id"),
        "output": result,
        "status": "completed",
    }


def _item_reference(item: dict[str, Any], param: str) -> dict[str, Any]:
    """An earlier item by id (the AI SDK re-sends stored output this way): kept as a
    reference here, replaced by the stored item before the turn is built
    (app/responses/references.py)."""
    check_keys(item, {"type", "id"}, param)
    return {"type": "item_reference", "id": _string(item.get("id"), f"{param}.id")}


def _reasoning(item: dict[str, Any], param: str) -> dict[str, Any]:
    """An earlier turn's reasoning sent back (agents do): kept as sent. The model is shown its
    text (an `encrypted_content` opened by app/responses/reasoning.py first)."""
    check_keys(item, {"type", "id", "summary", "content", "encrypted_content", "status"}, param)
    return {**item, "id": _item_id(item.get("id"), "rs", f"{param}.id")}


ITEM_PARSERS: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "message": _message,
    "function_call": _function_call,
    "function_call_output": _function_call_output,
    "reasoning": _reasoning,
    "item_reference": _item_reference,
}


def normalize_input(raw: str | list[Any], field: str = "input") -> list[dict[str, Any]]:
    """The request's `input` (or a conversation's `items`: `field` names it in errors) as
    stored items, each with an id."""
    if isinstance(raw, str):
        return [_message({"role": "user", "content": raw}, field)]
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        param = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(
                f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type"
            )
        kind = item.get("type", "message")
        parse = ITEM_PARSERS.get(kind)
        if parse is None:
            raise InvalidRequest(
                f"Input items of type '{kind}' are not supported; send 'message', "
                "'function_call', 'function_call_output', 'reasoning' or 'item_reference' "
                "items.",
                param=f"{param}.type",
                code="unsupported_value",
            )
        normalized = parse(item, param)
        if normalized["id"] in seen:
            raise InvalidRequest(
                f"Duplicate item id '{normalized['id']}' in {field}.",
                param=f"{param}.id",
                code="invalid_value",
            )
        seen.add(normalized["id"])
        items.append(normalized)
    return items


def to_chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items as chat-completions messages, dropping those the model need not see.

    A turn's function calls join the assistant message just before them (or open one), as
    `tool_calls`; each output becomes a `tool` message answering its call by id. A tool
    message carries text only, so images a tool returned follow the run of tool messages in a
    `user` message of their own. A reasoning item's text goes with the assistant message that
    follows it, as `reasoning_content` (what vLLM, SGLang and llama.cpp read back, and their
    chat templates keep or drop as the model was trained to); with none after it, nowhere.
    """
    out: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    reasoning = ""
    for item in items:
        kind = item.get("type")
        if images and kind != "function_call_output":
            out.append({"role": "user", "content": images})
            images = []
        if kind == "reasoning":
            reasoning += reasoning_text(item)
            continue
        if kind == "function_call":
            name = item["name"]
            if item.get("namespace"):
                name = namespaced(item["namespace"], name)
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": name, "arguments": item["arguments"]},
            }
            last = out[-1] if out else None
            if last is None or last["role"] != "assistant":
                last = {"role": "assistant", "content": None}
                out.append(last)
            last.setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            text, pictures = _tool_output(item["output"])
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
            if pictures:
                caption = f"Returned by the tool call {item['call_id']}:"
                images += [{"type": "text", "text": caption}, *pictures]
        elif (message := to_chat_message(item)) is not None:
            out.append(message)
        else:
            continue
        if reasoning and out[-1]["role"] == "assistant":
            _add_reasoning(out[-1], reasoning)
        if kind != "function_call_output":
            reasoning = ""  # not carried past a message of another role
    if images:
        out.append({"role": "user", "content": images})
    return out


def reasoning_text(item: dict[str, Any]) -> str:
    """A reasoning item's text: its reasoning_text parts (the summary is only a summary)."""
    parts = item.get("content")
    if not isinstance(parts, list):
        return ""
    return "".join(str(p.get("text") or "") for p in parts if isinstance(p, dict))


def _add_reasoning(message: dict[str, Any], text: str) -> None:
    earlier = message.get("reasoning_content")
    message["reasoning_content"] = f"{earlier}\n\n{text}" if earlier else text


def _tool_output(output: str | list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """A tool output's text, and its images and files as chat content parts."""
    if isinstance(output, str):
        return output, []
    text = "".join(p["text"] for p in output if p["type"] == "input_text")
    return text, [_chat_part(p) for p in output if p["type"] != "input_text"]


def _chat_part(part: dict[str, Any]) -> dict[str, Any]:
    if part["type"] == "input_text":
        return {"type": "text", "text": part["text"]}
    if part["type"] == "input_file":
        file = {k: part[k] for k in ("file_data", "filename") if k in part}
        return {"type": "file", "file": file}
    return {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part["detail"]}}


def to_chat_message(item: dict[str, Any]) -> dict[str, Any] | None:
    """A message item as a chat-completions message (None for other items). `developer` stays
    `developer` here; app/providers/templates.py decides what the upstream is sent."""
    if item.get("type") != "message":
        return None
    role = item["role"]
    parts = item["content"]
    if role == "assistant":
        text = "".join(p.get("text") or p.get("refusal") or "" for p in parts)
        return {"role": "assistant", "content": text}
    if len(parts) == 1 and parts[0]["type"] == "input_text":
        return {"role": role, "content": parts[0]["text"]}
    return {"role": role, "content": [_chat_part(p) for p in parts]}
