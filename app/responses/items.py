"""Input items: normalised to the stored shape, and turned into chat-completions messages.

Every rejection names the exact `param` (e.g. `input[2].content[0].type`), as OpenAI does, so a
client can see which part of a long input is wrong.
"""

from typing import Any

from app.errors import InvalidRequest
from app.kit.ids import new_id

ROLES = ("user", "system", "developer", "assistant")
MESSAGE_KEYS = {"type", "role", "content", "id", "status"}
INPUT_PARTS: dict[str, set[str]] = {
    "input_text": {"type", "text"},
    "input_image": {"type", "image_url", "file_id", "detail"},
}
OUTPUT_PARTS: dict[str, set[str]] = {
    "output_text": {"type", "text", "annotations", "logprobs"},
    "refusal": {"type", "refusal"},
}
IMAGE_DETAILS = ("auto", "low", "high")


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


def _check_keys(obj: dict[str, Any], allowed: set[str], param: str) -> None:
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
        if kind == "input_file":
            raise InvalidRequest(
                "Input parts of type 'input_file' are not supported: Tether has no Files API.",
                param=f"{param}.type",
                code="unsupported_value",
            )
        raise InvalidRequest(
            f"Invalid value: '{kind}'. Supported values are: {_supported(list(allowed))}.",
            param=f"{param}.type",
            code="invalid_value",
        )
    _check_keys(part, allowed[kind], param)
    if kind in ("input_text", "output_text"):
        out: dict[str, Any] = {"type": kind, "text": _string(part.get("text"), f"{param}.text")}
        if kind == "output_text":
            out["annotations"] = part.get("annotations") or []
        return out
    if kind == "refusal":
        return {"type": "refusal", "refusal": _string(part.get("refusal"), f"{param}.refusal")}
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


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    _check_keys(item, MESSAGE_KEYS, param)
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
    item_id = item.get("id")
    if item_id is not None:
        _string(item_id, f"{param}.id")
    return {
        "id": item_id or new_id("msg"),
        "type": "message",
        "role": role,
        "content": parts,
        "status": "completed",
    }


def normalize_input(raw: str | list[Any]) -> list[dict[str, Any]]:
    """The request's `input` as stored items, each with an id."""
    if isinstance(raw, str):
        return [_message({"role": "user", "content": raw}, "input")]
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(
                f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type"
            )
        kind = item.get("type", "message")
        if kind != "message":
            raise InvalidRequest(
                f"Input items of type '{kind}' are not supported yet; send 'message' items.",
                param=f"{param}.type",
                code="unsupported_value",
            )
        normalized = _message(item, param)
        if normalized["id"] in seen:
            raise InvalidRequest(
                f"Duplicate item id '{normalized['id']}' in input.",
                param=f"{param}.id",
                code="invalid_value",
            )
        seen.add(normalized["id"])
        items.append(normalized)
    return items


def to_chat_message(item: dict[str, Any]) -> dict[str, Any] | None:
    """A stored item as a chat-completions message (None for items the model need not see).

    `developer` becomes `system`: most self-hosted servers' chat templates know no other role.
    """
    if item.get("type") != "message":
        return None
    role = item["role"]
    parts = item["content"]
    if role == "assistant":
        text = "".join(p.get("text") or p.get("refusal") or "" for p in parts)
        return {"role": "assistant", "content": text}
    chat_role = "system" if role == "developer" else role
    if len(parts) == 1 and parts[0]["type"] == "input_text":
        return {"role": chat_role, "content": parts[0]["text"]}
    content: list[dict[str, Any]] = []
    for p in parts:
        if p["type"] == "input_text":
            content.append({"type": "text", "text": p["text"]})
        else:
            content.append(
                {"type": "image_url", "image_url": {"url": p["image_url"], "detail": p["detail"]}}
            )
    return {"role": chat_role, "content": content}
