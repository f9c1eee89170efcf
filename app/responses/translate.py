"""Responses <-> Chat Completions: the request as a chat payload, the chat result as output."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.kit.ids import new_id, now_seconds
from app.kit.items import namespaced, to_chat_messages
from app.providers.base import ChatResult, UpstreamFailure
from app.providers.templates import fit_template
from app.responses.domain import FinalValues, ResponseStatus, TurnParams

# Parameters Chat Completions has under the same name: forwarded when the client set them.
FORWARDED = (
    "temperature",
    "top_p",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
)


def wants_sealed_reasoning(params: Mapping[str, Any]) -> bool:
    return "reasoning.encrypted_content" in (params.get("include") or [])


@dataclass(frozen=True, slots=True)
class OutputOptions:
    """What the output carries beyond the answer, as the request asked (include, top_logprobs,
    reasoning.summary), and how the model's tool names read back (`namespace` tools). One
    reading of the parameters for the stored, streamed and replayed output alike."""

    logprobs: bool = False
    summary: bool = False
    encrypted_reasoning: bool = False
    # Seals a reasoning text for this response's project (app/kit/sealing.py); None where no
    # new reasoning is sealed (a replay keeps what was stored).
    seal: Callable[[str], str] | None = None
    # A namespaced function's name upstream -> (namespace, name).
    namespaced: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, params: Mapping[str, Any], seal: Callable[[str], str] | None = None
    ) -> "OutputOptions":
        include = params.get("include") or []
        return cls(
            logprobs="message.output_text.logprobs" in include or bool(params.get("top_logprobs")),
            summary=bool((params.get("reasoning") or {}).get("summary")),
            encrypted_reasoning=wants_sealed_reasoning(params),
            seal=seal,
            namespaced={
                namespaced(tool["name"], function["name"]): (tool["name"], function["name"])
                for tool in params.get("tools") or []
                if tool["type"] == "namespace"
                for function in tool["tools"]
            },
        )

    def function(self, upstream_name: str) -> tuple[str | None, str]:
        """(namespace, name) of a function the model called by its upstream name."""
        return self.namespaced.get(upstream_name) or (None, upstream_name)


def upstream_functions(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The function tools the model is offered: functions as they are, a namespace's functions
    under their namespaced names (its description first), built-in tools left out."""
    out = []
    for tool in tools:
        if tool["type"] == "function":
            out.append(tool)
        elif tool["type"] == "namespace":
            for function in tool["tools"]:
                about = [tool["description"], function.get("description")]
                out.append(
                    {
                        **function,
                        "name": namespaced(tool["name"], function["name"]),
                        "description": "\n\n".join(text for text in about if text) or None,
                    }
                )
    return out


def _tools_payload(params: TurnParams) -> dict[str, Any]:
    tools = upstream_functions(params.get("tools") or [])
    if not tools:
        return {}
    choice = params.get("tool_choice", "auto")
    if isinstance(choice, dict) and choice["type"] == "allowed_tools":
        # Chat Completions has no allowed_tools: the upstream is offered only those.
        allowed = {tool["name"] for tool in choice["tools"]}
        tools = [tool for tool in tools if tool["name"] in allowed]
        choice = choice["mode"]
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
    merge_messages: bool = False,
) -> dict[str, Any]:
    """The chat-completions request: instructions (this request's only), the thread's messages,
    then this turn's. Built from the stored parameters, so a worker builds the same one."""
    system = [{"role": "system", "content": instructions}] if instructions else []
    messages = fit_template([*system, *history, *new_messages], merge_messages)
    payload: dict[str, Any] = {"model": model, "messages": messages}
    for key in FORWARDED:
        if params.get(key) is not None:
            payload[key] = params[key]  # type: ignore[literal-required]
    if params.get("max_output_tokens") is not None:
        payload[max_tokens_param] = params["max_output_tokens"]
    if OutputOptions.of(params).logprobs:
        payload["logprobs"] = True
        payload["top_logprobs"] = params.get("top_logprobs") or 0
    response_format = _response_format(params["text"])
    if response_format is not None:
        payload["response_format"] = response_format
    if params["text"].get("verbosity") is not None:
        payload["verbosity"] = params["text"]["verbosity"]
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


def completed_values(
    result: ChatResult,
    input_messages: list[dict[str, Any]],
    options: OutputOptions,
    tier: str | None = None,
) -> FinalValues:
    """The row's new values once the model answered; `tier`: the one it was scheduled at."""
    status, incomplete, output = to_output(result, options)
    values = finished_values(status, incomplete, output, result.usage, input_messages)
    served = served_tier(result.service_tier, tier)
    return {**values, "service_tier": served, "deployment": result.deployment}


def served_tier(reported: str | None, scheduled: str | None) -> str | None:
    """The upstream's word on its tier, else the tier the turn was scheduled at
    (app/kit/tiers.py)."""
    return reported or scheduled


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


def map_logprobs(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat logprobs (choices[].logprobs.content) as output_text.logprobs."""

    def one(entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "token": entry.get("token", ""),
            "bytes": entry.get("bytes") or [],
            "logprob": entry.get("logprob", 0.0),
        }

    return [
        {**one(entry), "top_logprobs": [one(top) for top in entry.get("top_logprobs") or []]}
        for entry in entries
    ]


def failed_values(failure: UpstreamFailure) -> FinalValues:
    return {
        "status": ResponseStatus.FAILED,
        "error": {"code": FAILURE_CODES[failure.kind], "message": failure.message},
        "deployment": failure.deployment,
    }


def output_text(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def message_item(item_id: str, status: str, part: dict[str, Any]) -> dict[str, Any]:
    """An assistant message of one part: output_text, or a refusal."""
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [part],
    }


def reasoning_item(
    item_id: str, text: str, options: OutputOptions, sealed: str | None = None
) -> dict[str, Any]:
    """The model's reasoning. Self-hosted models show it whole: as the reasoning_text content,
    and, when a summary was asked for, as the summary too (it is all there is to summarise).
    `encrypted_content`, when included, is that text sealed for this deployment and project
    (app/kit/sealing.py), accepted back in a later input; `sealed`: the one already made."""
    item: dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if options.summary else [],
        "content": [{"type": "reasoning_text", "text": text}],
    }
    if options.encrypted_reasoning:
        if sealed is None and options.seal is not None:
            sealed = options.seal(text)
        if sealed is not None:
            item["encrypted_content"] = sealed
    return item


def finish_status(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    """(status, incomplete_details) for an upstream finish_reason."""
    if finish_reason == "length":
        return ResponseStatus.INCOMPLETE, {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return ResponseStatus.INCOMPLETE, {"reason": "content_filter"}
    return ResponseStatus.COMPLETED, None


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, namespace: str | None = None
) -> dict[str, Any]:
    """A call the model made; to a function of a `namespace` tool, with its `namespace` (and
    the function's own name), as OpenAI reports it, so the client can route it."""
    item = {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }
    if namespace is not None:
        item["namespace"] = namespace
    return item


def to_output(
    result: ChatResult, options: OutputOptions
) -> tuple[str, dict[str, Any] | None, list[dict[str, Any]]]:
    """(status, incomplete_details, output items) for a finished chat completion."""
    status, incomplete = finish_status(result.finish_reason)
    output: list[dict[str, Any]] = []
    if result.reasoning:
        output.append(reasoning_item(new_id("rs"), result.reasoning, options))
    logprobs = map_logprobs(result.logprobs) if options.logprobs else []
    if result.text or not (result.tool_calls or result.refusal):  # calls alone: no message
        part = output_text(result.text or "", logprobs)
        output.append(message_item(new_id("msg"), status, part))
    if result.refusal:
        refusal = {"type": "refusal", "refusal": result.refusal}
        output.append(message_item(new_id("msg"), status, refusal))
    for call in result.tool_calls:
        function = call.get("function") or {}
        namespace, name = options.function(str(function.get("name", "")))
        output.append(
            function_call_item(
                new_id("fc"),
                str(call.get("id") or new_id("call")),
                name,
                str(function.get("arguments") or ""),
                namespace,
            )
        )
    return status, incomplete, output
