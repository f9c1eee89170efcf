"""The OpenAPI document (/openapi.json) as the API really answers.

Handlers return raw responses (app/kit/http.py), so FastAPI's generated document knows the
requests but nothing of the answers, and it advertises a 422 that is never sent (app/errors.py
answers every validation failure with a 400). This module post-processes FastAPI's output:

* every 200 gets the JSON schema of the object it returns (a Response, a list page, a deleted
  object, a conversation, a chat completion, the models list), and `text/event-stream` as a
  second content type where `stream=true` answers with server-sent events;
* the 422 goes, and each operation lists the errors it can send, all in OpenAI's shape
  (`ErrorResponse`): 400 (a parameter or body refused), 401 (a bad API key), 404 (the id in the
  path names nothing), 409 and 502 where the code raises them, 413 (a body too large) and 429
  (rate limited);
* the `metadata[key]=value` filters of the two metadata lists, which the handlers read from the
  raw query string, appear as one `deepObject` parameter, and `metadata` in request bodies
  carries OpenAI's limits (app/kit/metadata.py); `input` is required on a create;
* links say where an answer's ids lead, and the creates carry request examples.

Response schemas are permissive (`additionalProperties: true`) but name the keys Tether always
sends, with their types: tests/test_openapi.py runs Schemathesis against a live server and
validates every answer against them.
"""

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.kit.metadata import MAX_METADATA_KEY, MAX_METADATA_PAIRS, MAX_METADATA_VALUE
from app.responses.domain import ResponseStatus

JSON = "application/json"
SSE = "text/event-stream"
Operation = tuple[str, str]  # (method, path) as in the document: ("get", "/v1/responses")


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
NUMBER = {"type": "number"}
OBJECT = {"type": "object", "additionalProperties": True}
NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_INTEGER = {"type": ["integer", "null"]}
_WEBHOOK_ENDPOINT = {
    "id": STRING,
    "object": {"const": "webhook_endpoint"},
    "created_at": INTEGER,
    "updated_at": INTEGER,
    "name": STRING,
    "url": STRING,
    "event_types": {"type": "array", "items": STRING},
    "signing_secret_hint": STRING,
}


def _object(
    properties: dict[str, Any], required: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        "additionalProperties": True,
        **extra,
    }


def _page(item: str, description: str) -> dict[str, Any]:
    """OpenAI's cursor page (app/kit/http.page)."""
    return _object(
        {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref(item)},
            "first_id": NULLABLE_STRING,
            "last_id": NULLABLE_STRING,
            "has_more": BOOLEAN,
        },
        description=description,
    )


def _deleted(kind: str) -> dict[str, Any]:
    return _object(
        {"id": STRING, "object": {"const": kind}, "deleted": {"const": True}},
        description=f"A deleted object: `object` is `{kind}`.",
    )


METADATA = {
    "type": "object",
    "description": (
        f"At most {MAX_METADATA_PAIRS} string pairs; keys at most {MAX_METADATA_KEY} "
        f"characters, values at most {MAX_METADATA_VALUE}."
    ),
    "maxProperties": MAX_METADATA_PAIRS,
    "propertyNames": {"maxLength": MAX_METADATA_KEY},
    "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE},
}

# What a stored metadata object reads back as: string values, nothing else promised.
METADATA_OUT = {"type": "object", "additionalProperties": STRING}

# The answers' schemas, added to components.schemas.
SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _object(
        {
            "message": STRING,
            "type": STRING,
            "param": NULLABLE_STRING,
            "code": NULLABLE_STRING,
        },
        description="OpenAI's error object.",
    ),
    "ErrorResponse": _object(
        {"error": _ref("Error")},
        description="Every error Tether answers, whatever the status (app/errors.py).",
    ),
    "Item": _object(
        {"id": STRING, "type": STRING},
        description=(
            "An input or output item (`message`, `function_call`, `function_call_output`, "
            "`reasoning`), with its id."
        ),
    ),
    "Response": _object(
        {
            "id": STRING,
            "object": {"const": "response"},
            "created_at": INTEGER,
            "status": {"enum": [s.value for s in ResponseStatus]},
            "background": BOOLEAN,
            "completed_at": NULLABLE_INTEGER,
            "error": _nullable(OBJECT),
            "incomplete_details": _nullable(OBJECT),
            "instructions": NULLABLE_STRING,
            "max_output_tokens": NULLABLE_INTEGER,
            "max_tool_calls": NULLABLE_INTEGER,
            "model": STRING,
            "output": {"type": "array", "items": _ref("Item")},
            "parallel_tool_calls": BOOLEAN,
            "previous_response_id": NULLABLE_STRING,
            "conversation": _nullable(_object({"id": STRING})),
            "prompt_cache_key": NULLABLE_STRING,
            "prompt_cache_retention": NULLABLE_STRING,
            "reasoning": OBJECT,
            "safety_identifier": NULLABLE_STRING,
            "service_tier": STRING,
            "store": BOOLEAN,
            "temperature": NUMBER,
            "text": OBJECT,
            "tool_choice": {"anyOf": [STRING, OBJECT]},
            "tools": {"type": "array", "items": OBJECT},
            "top_logprobs": INTEGER,
            "top_p": NUMBER,
            "truncation": {"enum": ["auto", "disabled"]},
            "usage": _nullable(OBJECT),
            "user": NULLABLE_STRING,
            "metadata": METADATA_OUT,
        },
        description="A model response (app/responses/render.py).",
    ),
    "ResponseStreamEvent": _object(
        {
            "type": STRING,
            "sequence_number": {"type": "integer", "minimum": 0},
            "response": _ref("Response"),
        },
        required=["type", "sequence_number"],
        description=(
            "One event of a response stream: `response.created`, `response.in_progress`, "
            "`response.output_text.delta`, ..., `response.completed`. Lifecycle events carry "
            "the whole `response`."
        ),
    ),
    "ResponseList": _page("Response", "A page of stored responses."),
    "ItemList": _page("Item", "A page of items."),
    "ResponseDeleted": _deleted("response.deleted"),
    "InputTokens": _object(
        {"object": {"const": "response.input_tokens"}, "input_tokens": INTEGER},
        description="How many input tokens a create with these parameters would use.",
    ),
    "Conversation": _object(
        {
            "id": STRING,
            "object": {"const": "conversation"},
            "created_at": INTEGER,
            "metadata": METADATA_OUT,
        },
        description="A conversation.",
    ),
    "ConversationDeleted": _deleted("conversation.deleted"),
    "ChatCompletion": _object(
        {
            "id": STRING,
            "object": STRING,
            "created": INTEGER,
            "model": STRING,
            "choices": {"type": "array", "items": OBJECT},
            "usage": _nullable(OBJECT),
        },
        required=["id"],
        description=(
            "A chat completion as the upstream answered it, under Tether's own id (a faithful "
            "proxy: every other field is the upstream's)."
        ),
    ),
    "ChatCompletionChunk": _object(
        {"id": STRING, "object": STRING, "choices": {"type": "array", "items": OBJECT}},
        required=["id"],
        description="One streamed chat completion chunk, as the upstream sent it, with our id.",
    ),
    "StoredChatCompletion": {
        "allOf": [
            _ref("ChatCompletion"),
            _object({"metadata": METADATA_OUT}),
        ],
        "description": "A stored chat completion, with its metadata.",
    },
    "StoredChatCompletionList": _page("StoredChatCompletion", "A page of stored completions."),
    "ChatCompletionMessage": _object(
        {"id": STRING},
        description="A request message of a stored chat completion, with its id (`<id>-<n>`).",
    ),
    "ChatCompletionMessageList": _page(
        "ChatCompletionMessage", "A page of a stored completion's request messages."
    ),
    "ChatCompletionDeleted": _deleted("chat.completion.deleted"),
    "Model": _object(
        {"id": STRING, "object": STRING, "created": INTEGER, "owned_by": STRING},
        required=["id"],
        description="A model, as the upstream lists it (or the built-in `echo`).",
    ),
    "ModelList": _object(
        {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Model")}},
        description="The models the upstream serves, or the built-in `echo`.",
    ),
    "WebhookEndpoint": _object(
        _WEBHOOK_ENDPOINT, description="A webhook endpoint (its secret is never shown again)."
    ),
    "WebhookEndpointWithSecret": _object(
        {**_WEBHOOK_ENDPOINT, "signing_secret": STRING},
        description="A webhook endpoint with its signing secret (`whsec_…`), shown only here.",
    ),
    "WebhookEndpointList": _page("WebhookEndpoint", "A page of webhook endpoints."),
    "WebhookEndpointDeleted": _deleted("webhook_endpoint.deleted"),
    "WebhookEndpointTestResult": _object(
        {
            "object": {"const": "webhook_endpoint.test"},
            "webhook_endpoint_id": STRING,
            "event_type": STRING,
            "status_code": INTEGER,
            "success": {"const": True},
        },
        description="What the receiver answered to a sample event.",
    ),
    "WebhookEventTypeList": _object(
        {"object": {"const": "list"}, "data": {"type": "array", "items": STRING}},
        description="The event types Tether emits.",
    ),
}


# One server-sent event of a response stream, as OpenAPI 3.1 tools read a stream (an object per
# event: `event`, `data`, `id`, `retry`): `event` names the type, `data` is its JSON.
RESPONSE_SSE_EVENT = _object(
    {
        "event": STRING,
        "data": {
            "type": "string",
            "contentMediaType": JSON,
            "contentSchema": _ref("ResponseStreamEvent"),
        },
    }
)
# A chat completion stream: `data:` lines only, each a chunk, and `[DONE]` last.
CHAT_SSE_EVENT = _object(
    {
        "data": {
            "type": "string",
            "if": {"const": "[DONE]"},
            "else": {"contentMediaType": JSON, "contentSchema": _ref("ChatCompletionChunk")},
        }
    }
)


# The 200 of each operation: (schema, description, event schema when stream=true streams).
_WEBHOOK = "/v1/webhook_endpoints/{webhook_endpoint_id}"
OK: dict[Operation, tuple[str, str, dict[str, Any] | None]] = {
    ("post", "/v1/responses"): (
        "Response",
        "The response; with `stream=true`, its events as server-sent events.",
        RESPONSE_SSE_EVENT,
    ),
    ("get", "/v1/responses"): ("ResponseList", "A page of stored responses.", None),
    ("post", "/v1/responses/input_tokens"): ("InputTokens", "The input token count.", None),
    ("get", "/v1/responses/{response_id}"): (
        "Response",
        "The response; with `stream=true`, its events after `starting_after`.",
        RESPONSE_SSE_EVENT,
    ),
    ("delete", "/v1/responses/{response_id}"): ("ResponseDeleted", "Deleted.", None),
    ("post", "/v1/responses/{response_id}/cancel"): ("Response", "The response.", None),
    ("get", "/v1/responses/{response_id}/input_items"): (
        "ItemList",
        "A page of the response's input items.",
        None,
    ),
    ("post", "/v1/chat/completions"): (
        "ChatCompletion",
        "The completion; with `stream=true`, its chunks, then `data: [DONE]`.",
        CHAT_SSE_EVENT,
    ),
    ("get", "/v1/chat/completions"): (
        "StoredChatCompletionList",
        "A page of stored chat completions.",
        None,
    ),
    ("get", "/v1/chat/completions/{completion_id}"): (
        "StoredChatCompletion",
        "The stored completion.",
        None,
    ),
    ("post", "/v1/chat/completions/{completion_id}"): (
        "StoredChatCompletion",
        "The completion with its new metadata.",
        None,
    ),
    ("delete", "/v1/chat/completions/{completion_id}"): ("ChatCompletionDeleted", "Deleted.", None),
    ("get", "/v1/chat/completions/{completion_id}/messages"): (
        "ChatCompletionMessageList",
        "A page of the completion's request messages.",
        None,
    ),
    ("post", "/v1/conversations"): ("Conversation", "The new conversation.", None),
    ("get", "/v1/conversations/{conversation_id}"): ("Conversation", "The conversation.", None),
    ("post", "/v1/conversations/{conversation_id}"): (
        "Conversation",
        "The conversation with its new metadata.",
        None,
    ),
    ("delete", "/v1/conversations/{conversation_id}"): ("ConversationDeleted", "Deleted.", None),
    ("post", "/v1/conversations/{conversation_id}/items"): (
        "ItemList",
        "The items added, as one page.",
        None,
    ),
    ("get", "/v1/conversations/{conversation_id}/items"): ("ItemList", "A page of items.", None),
    ("get", "/v1/conversations/{conversation_id}/items/{item_id}"): ("Item", "The item.", None),
    ("delete", "/v1/conversations/{conversation_id}/items/{item_id}"): (
        "Conversation",
        "The item is gone; the answer is its conversation.",
        None,
    ),
    ("get", "/v1/models"): ("ModelList", "The models.", None),
    ("get", "/v1/models/{model_id}"): ("Model", "The model.", None),
    ("post", "/v1/webhook_endpoints"): (
        "WebhookEndpointWithSecret",
        "The new endpoint, with its signing secret.",
        None,
    ),
    ("get", "/v1/webhook_endpoints"): ("WebhookEndpointList", "A page of endpoints.", None),
    ("get", _WEBHOOK): ("WebhookEndpoint", "The endpoint.", None),
    ("post", _WEBHOOK): ("WebhookEndpoint", "The endpoint as updated.", None),
    ("delete", _WEBHOOK): ("WebhookEndpointDeleted", "Deleted.", None),
    ("post", _WEBHOOK + "/rotate_secret"): (
        "WebhookEndpointWithSecret",
        "The endpoint with its new signing secret.",
        None,
    ),
    ("post", _WEBHOOK + "/test"): (
        "WebhookEndpointTestResult",
        "The receiver's answer.",
        None,
    ),
    ("get", "/v1/webhook_event_types"): ("WebhookEventTypeList", "The event types.", None),
}

# Operations that never answer 200: the 400 is all they send.
ALWAYS_REFUSED = {("post", "/v1/responses/compact")}

# Statuses raised by the code of one operation only (beyond the ones every operation gets).
NO_CONVERSATION = "The `conversation` named in the body does not exist."
EXTRA_ERRORS: dict[Operation, dict[str, str]] = {
    ("post", "/v1/responses"): {
        "404": NO_CONVERSATION,
        "409": "A create with this Idempotency-Key is still running (`idempotency_key_in_use`).",
        "502": "The model server failed: unreachable, timed out or answered 5xx.",
    },
    ("post", "/v1/responses/input_tokens"): {"404": NO_CONVERSATION},
    ("post", "/v1/chat/completions"): {
        "502": "The model server failed: unreachable, timed out or answered 5xx.",
    },
    ("get", "/v1/models"): {"502": "The model server failed to list its models."},
    ("get", "/v1/models/{model_id}"): {"502": "The model server failed to list its models."},
}

# OpenAPI links: where an answer's ids lead (clients, and Schemathesis's stateful phase, follow
# them). Source operation -> {target operation: {target parameter: runtime expression}}; each
# link is named after its target's operationId.
_RESPONSE = "/v1/responses/{response_id}"
_CONVERSATION = "/v1/conversations/{conversation_id}"
_COMPLETION = "/v1/chat/completions/{completion_id}"
_ITEM = _CONVERSATION + "/items/{item_id}"
_ID = "$response.body#/id"
LINKS: dict[Operation, dict[Operation, dict[str, str]]] = {
    ("post", "/v1/responses"): {
        ("get", _RESPONSE): {"response_id": _ID},
        ("delete", _RESPONSE): {"response_id": _ID},
        ("post", _RESPONSE + "/cancel"): {"response_id": _ID},
        ("get", _RESPONSE + "/input_items"): {"response_id": _ID},
    },
    ("post", "/v1/conversations"): {
        ("get", _CONVERSATION): {"conversation_id": _ID},
        ("post", _CONVERSATION): {"conversation_id": _ID},
        ("delete", _CONVERSATION): {"conversation_id": _ID},
        ("post", _CONVERSATION + "/items"): {"conversation_id": _ID},
        ("get", _CONVERSATION + "/items"): {"conversation_id": _ID},
    },
    ("post", _CONVERSATION + "/items"): {
        (method, _ITEM): {
            "conversation_id": "$request.path.conversation_id",
            "item_id": "$response.body#/data/0/id",
        }
        for method in ("get", "delete")
    },
    ("post", "/v1/chat/completions"): {
        ("get", _COMPLETION): {"completion_id": _ID},
        ("post", _COMPLETION): {"completion_id": _ID},
        ("delete", _COMPLETION): {"completion_id": _ID},
        ("get", _COMPLETION + "/messages"): {"completion_id": _ID},
    },
    ("get", "/v1/models"): {
        ("get", "/v1/models/{model_id}"): {"model_id": "$response.body#/data/0/id"},
    },
}

# Request examples, as in the README (the built-in `echo` model answers without an upstream);
# Schemathesis's examples phase sends each of them.
_HELLO = [{"role": "user", "content": "Hello, Tether"}]
EXAMPLES: dict[Operation, dict[str, dict[str, Any]]] = {
    ("post", "/v1/responses"): {
        "text": {"model": "echo", "input": "Hello, Tether", "metadata": {"job": "nightly"}},
        "streamed": {"model": "echo", "input": "Hello, Tether", "stream": True},
        "background": {"model": "echo", "input": "Hello, Tether", "background": True},
        "streamed in the background": {
            "model": "echo",
            "input": _HELLO,
            "background": True,
            "stream": True,
            "stream_options": {"include_obfuscation": True},
        },
    },
    ("post", "/v1/responses/input_tokens"): {"text": {"model": "echo", "input": "Hello, Tether"}},
    ("post", "/v1/chat/completions"): {
        "stored": {"model": "echo", "messages": _HELLO, "store": True, "metadata": {"k": "v"}},
        "streamed": {
            "model": "echo",
            "messages": _HELLO,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    },
    ("post", "/v1/conversations"): {"with items": {"items": _HELLO, "metadata": {"k": "v"}}},
    ("post", "/v1/webhook_endpoints"): {
        "completed and failed": {
            "name": "jobs",
            "url": "https://hooks.example.com/tether",
            "event_types": ["response.completed", "response.failed"],
        }
    },
}

ERRORS = {
    "400": "Invalid request: a parameter or the body is refused (`invalid_request_error`).",
    "401": "Invalid API key (`invalid_api_key`).",
    "404": "Nothing has the id given in the path.",
    "413": "The request body is too large.",
    "429": "Rate limited (`rate_limit_exceeded`); retry after a while.",
}

REQUEST_ID = {
    "x-request-id": {
        "description": "The request's id, on every answer.",
        "required": True,
        "schema": {"type": "string"},
    }
}


def expected_errors(method: str, path: str, operation: dict[str, Any]) -> set[str]:
    """The error statuses an operation declares: 400 wherever there is a parameter or a body,
    401 and 429 on every /v1 route, 404 for an id in the path, 413 for a body, and EXTRA_ERRORS
    (tests/test_openapi.py checks the same rules on the document)."""
    statuses = set(EXTRA_ERRORS.get((method, path), {}))
    if (
        operation.get("parameters")
        or "requestBody" in operation
        or (method, path) in ALWAYS_REFUSED
    ):
        statuses.add("400")
    if path.startswith("/v1/"):
        statuses |= {"401", "429"}
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        statuses.add("404")
    if "requestBody" in operation:
        statuses.add("413")
    return statuses


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": copy.deepcopy(REQUEST_ID),
        "content": {JSON: {"schema": _ref("ErrorResponse")}},
    }


# The lists whose handlers read `metadata[key]=value` filters (app/kit/listing.MetadataFilter,
# from the raw query string, so FastAPI does not see them).
METADATA_FILTERED = {("get", "/v1/responses"), ("get", "/v1/chat/completions")}

METADATA_FILTER = {
    "name": "metadata",
    "in": "query",
    "required": False,
    "style": "deepObject",
    "explode": True,
    "description": (
        "Only objects whose metadata has these pairs: `metadata[key]=value`, several combine "
        "with AND. A bare `metadata=` is refused (400)."
    ),
    "schema": METADATA,
}


def _limit_request_metadata(schemas: dict[str, Any]) -> None:
    """`metadata` in request bodies: OpenAI's limits, as app/kit/metadata.py enforces them."""
    for schema in schemas.values():
        prop = schema.get("properties", {}).get("metadata")
        if prop is None:
            continue
        branches = prop.get("anyOf", [])
        if {"type": "null"} in branches and any(b.get("type") == "object" for b in branches):
            schema["properties"]["metadata"] = {
                "anyOf": [copy.deepcopy(METADATA), {"type": "null"}],
                "title": prop.get("title", "Metadata"),
            }


def _add_links(doc: dict[str, Any]) -> None:
    paths = doc.get("paths", {})
    for (method, path), targets in LINKS.items():
        ok = paths.get(path, {}).get(method, {}).get("responses", {}).get("200")
        if ok is None:
            continue
        for (target_method, target_path), parameters in targets.items():
            target = paths.get(target_path, {}).get(target_method)
            if target is None:
                continue
            operation_id = target["operationId"]
            ok.setdefault("links", {})[operation_id] = {
                "operationId": operation_id,
                "parameters": parameters,
            }


def _require_input(schemas: dict[str, Any]) -> None:
    """A create without `input` is refused (app/responses/params.check_request): it is required,
    and null is no value for it."""
    create = schemas.get("CreateResponseRequest")
    if create is None or "input" not in create.get("properties", {}):
        return
    prop = create["properties"]["input"]
    prop["anyOf"] = [b for b in prop.get("anyOf", []) if b != {"type": "null"}]
    create["required"] = sorted({*create.get("required", []), "input"})


def describe(doc: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's document, made to say what the API answers (see the module docstring)."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    _limit_request_metadata(schemas)
    _require_input(schemas)
    schemas.update(copy.deepcopy(SCHEMAS))
    components["securitySchemes"] = {
        "ApiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "A project's API key (`tether keys create`). While no key exists, "
            "Tether serves loopback clients without one (README, API keys).",
        }
    }

    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            key = (method, path)
            if path.startswith("/v1/"):
                operation["security"] = [{"ApiKey": []}, {}]  # {}: the keyless mode
            if key in METADATA_FILTERED:
                operation.setdefault("parameters", []).append(copy.deepcopy(METADATA_FILTER))
            if key in EXAMPLES:
                body = operation["requestBody"]["content"][JSON]
                body["examples"] = {
                    name: {"value": copy.deepcopy(value)} for name, value in EXAMPLES[key].items()
                }
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            if key in ALWAYS_REFUSED:
                responses.pop("200", None)
            elif key in OK:
                name, description, event = OK[key]
                content: dict[str, Any] = {JSON: {"schema": _ref(name)}}
                if event is not None:
                    content[SSE] = {"schema": copy.deepcopy(event)}
                responses["200"] = {
                    "description": description,
                    "headers": copy.deepcopy(REQUEST_ID),
                    "content": content,
                }
            extra = EXTRA_ERRORS.get(key, {})
            for status in sorted(expected_errors(method, path, operation)):
                description = extra.get(status) or ERRORS[status]
                responses[status] = _error_response(description)
    _add_links(doc)
    return doc


def build_openapi(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    return describe(doc)


def install_openapi(app: FastAPI) -> None:
    """Serve build_openapi's document as /openapi.json (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
