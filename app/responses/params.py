"""What a create may ask for: every parameter is honoured, forwarded, or refused with a 400
naming it; none is accepted and then ignored. check_request() returns what is kept with the
response (app/responses/domain.py, TurnParams); the README's parameter table says what each
one does."""

import re
from typing import Any

from app.errors import InvalidRequest
from app.kit.items import check_keys, namespaced
from app.responses.domain import TurnParams
from app.responses.schemas import CreateResponseRequest

TEXT_FORMATS = ("text", "json_schema", "json_object")
VERBOSITIES = ("low", "medium", "high")
REASONING_EFFORTS = (None, "none", "minimal", "low", "medium", "high", "xhigh")
SUMMARIES = (None, "auto", "concise", "detailed")
# OpenAI's values. Honoured: logprobs, reasoning.encrypted_content, and input image URLs
# (always kept). The others ask for parts of tool calls Tether never makes (web and file
# search, code interpreter, computer use): valid, and there is nothing they could add.
INCLUDABLE = (
    "message.output_text.logprobs",
    "reasoning.encrypted_content",
    "message.input_image.image_url",
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "code_interpreter_call.outputs",
    "computer_call_output.output.image_url",
)
FUNCTION_KEYS = {"type", "name", "description", "parameters", "strict"}
NAMESPACE_KEYS = {"type", "name", "description", "tools"}
# Built-in tools: OpenAI runs them, or has the model make its own kind of call for the client
# to run; a chat upstream has function tools only. The types of openai-python 3.57's `Tool`,
# less `function`, `namespace` and `custom` (a client's own tools, which are never dropped).
HOSTED_TOOLS = (
    "web_search",
    "web_search_2025_08_26",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "file_search",
    "code_interpreter",
    "image_generation",
    "computer",
    "computer_use_preview",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "tool_search",
    "programmatic_tool_calling",
)
# OpenAI's limits on tools: at most 128, named ^[a-zA-Z0-9_-]{1,64}$.
MAX_TOOLS = 128
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
TOOL_CHOICES = ("auto", "none", "required")
# The tools the model is offered (the others are built-in tools, left out).
CALLABLE = ("function", "namespace")
ALLOWED_TOOLS_MODES = ("auto", "required")


def _supported(values: tuple[Any, ...]) -> str:
    quoted = [f"'{v}'" for v in values if v is not None]
    return ", ".join(quoted[:-1]) + f" and {quoted[-1]}"


def _invalid(param: str, value: Any, values: tuple[Any, ...]) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid value: '{value}'. Supported values are: {_supported(values)}.",
        param=param,
        code="invalid_value",
    )


def _missing(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def check_request(req: CreateResponseRequest, hosted_tools: str = "omit") -> TurnParams:
    """Reject what we cannot honour; return the parameters kept with the response.
    `hosted_tools` is HOSTED_TOOLS: whether built-in tools are left out (`omit`) or a 400."""
    if req.input is None:
        raise _missing("input")
    if req.background and not req.store:
        raise InvalidRequest(
            "Background responses require store=true.", param="background", code="invalid_value"
        )
    if req.conversation is not None and req.previous_response_id is not None:
        raise InvalidRequest(
            "Use either 'conversation' or 'previous_response_id', not both.",
            param="previous_response_id",
            code="invalid_value",
        )
    if req.prompt is not None:
        raise InvalidRequest(
            "Prompt templates are not supported.", param="prompt", code="unsupported_value"
        )
    check_stream_options(req.stream_options)
    tools = check_tools(req.tools, hosted_tools)
    return {
        "store": req.store,
        # Whether its events are logged as it runs (a background response's only way to be
        # streamed: app/background/job.py).
        "stream": bool(req.stream),
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "parallel_tool_calls": req.parallel_tool_calls,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "top_logprobs": req.top_logprobs,
        "text": check_text(req.text),
        "reasoning": check_reasoning(req.reasoning),
        "tool_choice": check_tool_choice(req.tool_choice, tools),
        "tools": tools,
        "truncation": req.truncation,
        "user": req.user,
        "safety_identifier": req.safety_identifier,
        "prompt_cache_key": req.prompt_cache_key,
        "prompt_cache_retention": req.prompt_cache_retention,
        "service_tier": req.service_tier,
        "include": check_include(req.include),
        "context_management": check_context_management(req.context_management),
        "conversation_id": conversation_id(req.conversation),
        # Kept with the response (and in the request's log line), never sent to the model.
        "client_metadata": req.client_metadata,
    }


def conversation_id(conversation: str | dict[str, Any] | None) -> str | None:
    if conversation is None or isinstance(conversation, str):
        return conversation
    if not isinstance(conversation.get("id"), str):
        raise _missing("conversation.id")
    return str(conversation["id"])


def check_include(include: list[str] | None) -> list[str]:
    for i, value in enumerate(include or []):
        if value not in INCLUDABLE:
            raise _invalid(f"include[{i}]", value, INCLUDABLE)
    return list(dict.fromkeys(include or []))


def check_stream_options(options: dict[str, Any] | None) -> None:
    """Responses' only stream option: whether delta events carry obfuscation padding."""
    if options is None:
        return
    check_keys(options, {"include_obfuscation"}, "stream_options")
    value = options.get("include_obfuscation")
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest(
            "Invalid type for 'stream_options.include_obfuscation': expected a boolean.",
            param="stream_options.include_obfuscation",
            code="invalid_type",
        )


def check_context_management(entries: list[Any] | None) -> list[dict[str, Any]] | None:
    """[{"type": "compaction", "compact_threshold": N}]: honoured as truncation is (the oldest
    turns are dropped to fit N tokens); a chat upstream cannot summarise them for us."""
    if entries is None:
        return None
    out = []
    for i, entry in enumerate(entries):
        param = f"context_management[{i}]"
        if not isinstance(entry, dict):
            raise InvalidRequest(
                f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type"
            )
        check_keys(entry, {"type", "compact_threshold"}, param)
        if entry.get("type") != "compaction":
            raise _invalid(f"{param}.type", entry.get("type"), ("compaction",))
        threshold = entry.get("compact_threshold")
        if threshold is not None and (
            not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1
        ):
            raise InvalidRequest(
                f"Invalid '{param}.compact_threshold': expected a positive integer.",
                param=f"{param}.compact_threshold",
                code="invalid_value",
            )
        out.append({"type": "compaction", "compact_threshold": threshold})
    return out


def check_text(text: dict[str, Any] | None) -> dict[str, Any]:
    """The `text` config as echoed back; rejects what the upstream could not be asked for."""
    text = dict(text or {})
    check_keys(text, {"format", "verbosity"}, "text")
    fmt = text.get("format") or {"type": "text"}
    if not isinstance(fmt, dict) or fmt.get("type") not in TEXT_FORMATS:
        kind = fmt.get("type") if isinstance(fmt, dict) else fmt
        raise _invalid("text.format.type", kind, TEXT_FORMATS)
    if fmt["type"] == "json_schema":
        if not isinstance(fmt.get("name"), str):
            raise _missing("text.format.name")
        if not isinstance(fmt.get("schema"), dict):
            raise _missing("text.format.schema")
    if text.get("verbosity") not in (None, *VERBOSITIES):
        raise _invalid("text.verbosity", text["verbosity"], VERBOSITIES)
    text["format"] = fmt
    return text


def check_reasoning(reasoning: dict[str, Any] | None) -> dict[str, Any]:
    reasoning = reasoning or {}
    check_keys(reasoning, {"effort", "summary", "generate_summary"}, "reasoning")
    effort = reasoning.get("effort")
    if effort not in REASONING_EFFORTS:
        raise _invalid("reasoning.effort", effort, REASONING_EFFORTS)
    for key in ("summary", "generate_summary"):
        if reasoning.get(key) not in SUMMARIES:
            raise _invalid(f"reasoning.{key}", reasoning[key], SUMMARIES)
    # generate_summary is the deprecated name of summary.
    return {
        "effort": effort,
        "summary": reasoning.get("summary") or reasoning.get("generate_summary"),
    }


def check_tools(tools: list[dict[str, Any]], hosted_tools: str = "omit") -> list[dict[str, Any]]:
    """The tools as echoed back: function tools and `namespace` tools (groups of functions)
    normalised, built-in tools as sent (left out of the model call, app/responses/translate.py)
    or, with HOSTED_TOOLS=reject, a 400 naming the type. Any other type is a 400."""
    if len(tools) > MAX_TOOLS:
        raise InvalidRequest(
            f"Invalid 'tools': array too long. Expected an array with maximum length "
            f"{MAX_TOOLS}, but got an array with length {len(tools)} instead.",
            param="tools",
            code="array_above_max_length",
        )
    out = []
    upstream: dict[str, str] = {}  # the names the model will see -> the param that gave it
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        kind = tool.get("type")
        if kind == "function":
            out.append(_function(tool, param))
            _distinct(upstream, out[-1]["name"], f"{param}.name")
        elif kind == "namespace":
            out.append(_namespace(tool, param))
            for j, function in enumerate(out[-1]["tools"]):
                name = namespaced(out[-1]["name"], function["name"])
                _distinct(upstream, name, f"{param}.tools[{j}].name")
        elif kind in HOSTED_TOOLS and hosted_tools == "omit":
            out.append(dict(tool))
        elif kind in HOSTED_TOOLS:
            raise InvalidRequest(
                f"Tool type '{kind}' is not supported: the model server runs function tools "
                "only (set HOSTED_TOOLS=omit to leave such tools out of the model call).",
                param=f"{param}.type",
                code="unsupported_value",
            )
        else:
            raise InvalidRequest(
                f"Tool type '{kind}' is not supported: Tether runs function and namespace tools.",
                param=f"{param}.type",
                code="unsupported_value",
            )
    return out


def omitted_tools(tools: list[dict[str, Any]]) -> list[str]:
    """The types of the built-in tools among a response's tools: what its model call leaves
    out (HOSTED_TOOLS=omit), in order, each once."""
    return list(dict.fromkeys(t["type"] for t in tools if t.get("type") in HOSTED_TOOLS))


def _function(tool: dict[str, Any], param: str) -> dict[str, Any]:
    check_keys(tool, FUNCTION_KEYS, param)
    return {
        "type": "function",
        "name": _tool_name(tool, param),
        "description": tool.get("description"),
        "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
        "strict": tool.get("strict", True),
    }


def _namespace(tool: dict[str, Any], param: str) -> dict[str, Any]:
    """{"type": "namespace", "name", "description", "tools": [function tools]}, as Codex groups
    its sub-agent tools; a call to one is reported with `namespace` and `name`."""
    check_keys(tool, NAMESPACE_KEYS, param)
    name = _tool_name(tool, param)
    if not isinstance(tool.get("description"), str):
        raise _missing(f"{param}.description")
    inner = tool.get("tools")
    if not isinstance(inner, list) or not inner:
        raise _missing(f"{param}.tools")
    functions = []
    for j, function in enumerate(inner):
        where = f"{param}.tools[{j}]"
        if not isinstance(function, dict) or function.get("type") != "function":
            kind = function.get("type") if isinstance(function, dict) else function
            raise InvalidRequest(
                f"Tool type '{kind}' is not supported in a namespace: Tether runs function "
                "tools there.",
                param=f"{where}.type",
                code="unsupported_value",
            )
        functions.append(_function(function, where))
    description = tool["description"]
    return {"type": "namespace", "name": name, "description": description, "tools": functions}


def _tool_name(tool: dict[str, Any], param: str) -> str:
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        raise _missing(f"{param}.name")
    if not TOOL_NAME.fullmatch(tool["name"]):
        raise InvalidRequest(
            f"Invalid '{param}.name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
            param=f"{param}.name",
            code="invalid_value",
        )
    return str(tool["name"])


def _distinct(seen: dict[str, str], name: str, param: str) -> None:
    """Two tools the model would see under one name: it could not say which it calls."""
    if name in seen:
        raise InvalidRequest(
            f"Invalid '{param}': the model would see two tools named '{name}' (the other is "
            f"{seen[name]}); a namespace's functions are sent as '<namespace>__<name>'.",
            param=param,
            code="invalid_value",
        )
    seen[name] = param


def check_tool_choice(choice: str | dict[str, Any], tools: list[dict[str, Any]]) -> Any:
    """`auto` / `none` / `required`, one named function, or `allowed_tools` (a subset of the
    tools, with mode `auto` or `required`): as echoed back."""
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise _invalid("tool_choice", choice, TOOL_CHOICES)
        if choice == "required" and not any(t["type"] in CALLABLE for t in tools):
            raise InvalidRequest(
                "tool_choice 'required' needs function tools; none were given.",
                param="tool_choice",
                code="invalid_value",
            )
        return choice
    names = {tool["name"] for tool in tools if tool["type"] == "function"}
    kind = choice.get("type")
    if kind == "function":
        check_keys(choice, {"type", "name"}, "tool_choice")
        if choice.get("name") not in names:
            raise InvalidRequest(
                f"tool_choice names the function '{choice.get('name')}', which is not among "
                "the tools given.",
                param="tool_choice.name",
                code="invalid_value",
            )
        return {"type": "function", "name": choice["name"]}
    if kind == "allowed_tools":
        return _allowed_tools(choice, names)
    raise InvalidRequest(
        f"tool_choice of type '{kind}' is not supported: Tether runs function tools only; use "
        "'auto', 'none', 'required', a function, or 'allowed_tools'.",
        param="tool_choice.type",
        code="unsupported_value",
    )


def _allowed_tools(choice: dict[str, Any], names: set[str]) -> dict[str, Any]:
    check_keys(choice, {"type", "mode", "tools"}, "tool_choice")
    mode = choice.get("mode")
    if mode not in ALLOWED_TOOLS_MODES:
        raise _invalid("tool_choice.mode", mode, ALLOWED_TOOLS_MODES)
    allowed = choice.get("tools")
    if not isinstance(allowed, list) or not allowed:
        raise _missing("tool_choice.tools")
    out = []
    for i, tool in enumerate(allowed):
        param = f"tool_choice.tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequest(
                f"'{param}' must be a function tool: Tether runs function tools only.",
                param=param,
                code="unsupported_value",
            )
        if tool.get("name") not in names:
            raise InvalidRequest(
                f"'{param}' names the function '{tool.get('name')}', which is not among the "
                "tools given.",
                param=f"{param}.name",
                code="invalid_value",
            )
        out.append({"type": "function", "name": tool["name"]})
    return {"type": "allowed_tools", "mode": mode, "tools": out}
