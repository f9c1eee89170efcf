"""Responses <-> Chat Completions: the request as a chat payload, the chat result as output."""

from typing import Any

from app.errors import InvalidRequest
from app.kit.ids import new_id, now_seconds
from app.kit.items import check_keys, to_chat_messages
from app.providers.base import ChatResult, UpstreamFailure
from app.responses.domain import FinalValues, ResponseStatus, TurnParams

TEXT_FORMATS = ("text", "json_schema", "json_object")
REASONING_EFFORTS = (None, "none", "minimal", "low", "medium", "high", "xhigh")


def check_text(text: dict[str, Any] | None) -> dict[str, Any]:
    """The `text` config as echoed back; rejects what the upstream could not be asked for."""
    text = dict(text or {})
    fmt = text.get("format") or {"type": "text"}
    if not isinstance(fmt, dict) or fmt.get("type") not in TEXT_FORMATS:
        kind = fmt.get("type") if isinstance(fmt, dict) else fmt
        raise InvalidRequest(
            f"Invalid value: '{kind}'. Supported values are: 'text', 'json_schema' and "
            "'json_object'.",
            param="text.format.type",
            code="invalid_value",
        )
    if fmt["type"] == "json_schema":
        if not isinstance(fmt.get("name"), str):
            raise InvalidRequest(
                "Missing required parameter: 'text.format.name'.",
                param="text.format.name",
                code="missing_required_parameter",
            )
        if not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest(
                "Missing required parameter: 'text.format.schema'.",
                param="text.format.schema",
                code="missing_required_parameter",
            )
    text["format"] = fmt
    return text


def check_reasoning(reasoning: dict[str, Any] | None) -> dict[str, Any]:
    reasoning = reasoning or {}
    for key in reasoning:
        if key not in ("effort", "summary", "generate_summary"):
            raise InvalidRequest(
                f"Unknown parameter: 'reasoning.{key}'.",
                param=f"reasoning.{key}",
                code="unknown_parameter",
            )
    effort = reasoning.get("effort")
    if effort not in REASONING_EFFORTS:
        raise InvalidRequest(
            f"Invalid value: '{effort}'.", param="reasoning.effort", code="invalid_value"
        )
    return {"effort": effort, "summary": reasoning.get("summary")}


FUNCTION_KEYS = {"type", "name", "description", "parameters", "strict"}
TOOL_CHOICES = ("auto", "none", "required")


def check_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Function tools, as echoed back. Tools we do not run (web_search, file_search, MCP...)
    are a 400 naming the type."""
    out = []
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        if tool.get("type") != "function":
            raise InvalidRequest(
                f"Tool type '{tool.get('type')}' is not supported: Tether runs function tools "
                "only.",
                param=f"{param}.type",
                code="unsupported_value",
            )
        check_keys(tool, FUNCTION_KEYS, param)
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequest(
                f"Missing required parameter: '{param}.name'.",
                param=f"{param}.name",
                code="missing_required_parameter",
            )
        out.append(
            {
                "type": "function",
                "name": tool["name"],
                "description": tool.get("description"),
                "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
                "strict": tool.get("strict", True),
            }
        )
    return out


def check_tool_choice(choice: str | dict[str, Any], tools: list[dict[str, Any]]) -> Any:
    names = {tool["name"] for tool in tools}
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise InvalidRequest(
                f"Invalid value: '{choice}'. Supported values are: 'auto', 'none' and 'required'.",
                param="tool_choice",
                code="invalid_value",
            )
        if choice == "required" and not tools:
            raise InvalidRequest(
                "tool_choice 'required' needs tools; none were given.",
                param="tool_choice",
                code="invalid_value",
            )
        return choice
    if choice.get("type") != "function" or choice.get("name") not in names:
        raise InvalidRequest(
            "tool_choice must name one of the function tools given.",
            param="tool_choice",
            code="invalid_value",
        )
    return {"type": "function", "name": choice["name"]}


def _tools_payload(params: TurnParams) -> dict[str, Any]:
    tools = params.get("tools") or []
    if not tools:
        return {}
    choice = params.get("tool_choice", "auto")
    return {
        "tools": [
            {
                "type": "function",
                "function": {k: v for k, v in tool.items() if k != "type" and v is not None},
            }
            for tool in tools
        ],
        "tool_choice": choice
        if isinstance(choice, str)
        else {"type": "function", "function": {"name": choice["name"]}},
        "parallel_tool_calls": params.get("parallel_tool_calls", True),
    }


def _response_format(text: dict[str, Any]) -> dict[str, Any] | None:
    fmt = text["format"]
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if fmt["type"] == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    return None


def chat_payload(
    model: str,
    instructions: str | None,
    params: TurnParams,
    history: list[dict[str, Any]],
    new_messages: list[dict[str, Any]],
    max_tokens_param: str,
) -> dict[str, Any]:
    """The chat-completions request: instructions (this request's only), the thread's messages,
    then this turn's. Built from the stored parameters, so a worker builds the same one."""
    system = [{"role": "system", "content": instructions}] if instructions else []
    payload: dict[str, Any] = {"model": model, "messages": [*system, *history, *new_messages]}
    for key in ("temperature", "top_p", "user"):
        if params.get(key) is not None:
            payload[key] = params[key]
    if params.get("max_output_tokens") is not None:
        payload[max_tokens_param] = params["max_output_tokens"]
    if params.get("top_logprobs"):
        payload["logprobs"] = True
        payload["top_logprobs"] = params["top_logprobs"]
    response_format = _response_format(params["text"])
    if response_format is not None:
        payload["response_format"] = response_format
    if params["reasoning"]["effort"] is not None:
        payload["reasoning_effort"] = params["reasoning"]["effort"]
    payload.update(_tools_payload(params))
    return payload


def map_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(prompt_details.get("cached_tokens") or 0)},
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)
        },
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


# Response.error.code for each way the model call can fail (codes the SDK knows).
FAILURE_CODES = {
    "client": "invalid_prompt",
    "rate_limited": "rate_limit_exceeded",
    "server": "server_error",
    "timeout": "server_error",
    "unreachable": "server_error",
}


def completed_values(result: ChatResult, input_messages: list[dict[str, Any]]) -> FinalValues:
    """The row's new values once the model answered."""
    status, incomplete, output = to_output(result)
    return finished_values(status, incomplete, output, result.usage, input_messages)


def finished_values(
    status: str,
    incomplete: dict[str, Any] | None,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    input_messages: list[dict[str, Any]],
) -> FinalValues:
    return {
        "status": status,
        "incomplete_details": incomplete,
        "output": output,
        "usage": map_usage(usage),
        "completed_at": now_seconds(),
        "messages": input_messages + to_chat_messages(output),
    }


def failed_values(failure: UpstreamFailure) -> FinalValues:
    return {
        "status": ResponseStatus.FAILED,
        "error": {"code": FAILURE_CODES[failure.kind], "message": failure.message},
    }


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


def finish_status(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    """(status, incomplete_details) for an upstream finish_reason."""
    if finish_reason == "length":
        return ResponseStatus.INCOMPLETE, {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return ResponseStatus.INCOMPLETE, {"reason": "content_filter"}
    return ResponseStatus.COMPLETED, None


def function_call_item(item_id: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def to_output(result: ChatResult) -> tuple[str, dict[str, Any] | None, list[dict[str, Any]]]:
    """(status, incomplete_details, output items) for a finished chat completion."""
    status, incomplete = finish_status(result.finish_reason)
    output: list[dict[str, Any]] = []
    if result.reasoning:
        output.append(reasoning_item(new_id("rs"), result.reasoning))
    if result.text or not result.tool_calls:  # an answer of calls only has no message
        output.append(message_item(new_id("msg"), result.text or "", status))
    for call in result.tool_calls:
        function = call.get("function") or {}
        output.append(
            function_call_item(
                new_id("fc"),
                str(call.get("id") or new_id("call")),
                str(function.get("name", "")),
                str(function.get("arguments") or ""),
            )
        )
    return status, incomplete, output
