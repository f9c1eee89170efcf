"""/openapi.json describes the API as it answers (app/openapi.py).

Schemathesis, run against a live server from that document (examples, coverage, fuzzing and
stateful phases), finds no server error and no answer the document does not describe: an
undocumented status, a wrong content type, a body or a stream event off its schema, a missing
header. Then every operation is called once with what it needs to answer 200, and each answer is
checked the same way. Each runs on both databases, with the fake upstream and with the built-in
echo model.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import Status, StopReason
from schemathesis.engine import events as st_events

from app.config import Settings
from app.main import create_app
from tests.conftest import SMALL_POOL, UPSTREAM_TIMEOUT
from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread, migrated_database, running_server
from tests.webhooks.receiver import Receiver

# Per operation and phase. With the coverage phase's own cases and the stateful scenarios, one
# run sends ~2,000 requests in ~10 s; there are four (two databases, two models).
MAX_EXAMPLES = 25
SEED = 20261130
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "use_after_free",  # a deleted object answers 404 afterwards
    "unsupported_method",  # a method a path does not document answers 405
)

STREAMED = {
    ("post", "/v1/responses"),
    ("get", "/v1/responses/{response_id}"),
    ("post", "/v1/chat/completions"),
}
METADATA_FILTERED = {("get", "/v1/responses"), ("get", "/v1/chat/completions")}
# Hypothesis warns when a generated case is too large to print; with warnings as errors that
# would end the run on a harmless case (a 70 kB input, say). It also deprecates the `random`
# module inside strategies, which Schemathesis' own (generation/dictionaries.py) still uses on
# some paths: with warnings as errors, that ended a CI run as a "Runtime Error" of the fuzzing.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies"
        ":hypothesis.errors.HypothesisDeprecationWarning"
    ),
]
NEVER_OK = {("post", "/v1/responses/compact")}  # answers 400, always


def document() -> dict[str, Any]:
    doc: dict[str, Any] = create_app(Settings(database_url="sqlite:///unused.db")).openapi()
    return doc


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_the_document_says_what_is_sent() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["Error"]["required"] == ["message", "type", "param", "code"]
    assert schemas["ErrorResponse"]["required"] == ["error"]

    problems = []
    for method, path, operation in operations(doc):
        label = f"{method.upper()} {path}"
        responses = operation["responses"]
        params = operation.get("parameters", [])
        has_body = "requestBody" in operation
        wanted = {"401", "429"} if path.startswith("/v1/") else set()
        if params or has_body or (method, path) in NEVER_OK:
            wanted.add("400")
        if any(p["in"] == "path" for p in params):
            wanted.add("404")
        if has_body:
            wanted.add("413")
        if "422" in responses:
            problems.append(f"{label}: declares a 422, which is never sent")
        for status in sorted(wanted):
            content = responses.get(status, {}).get("content", {})
            if content.get("application/json", {}).get("schema") != {
                "$ref": "#/components/schemas/ErrorResponse"
            }:
                problems.append(f"{label}: no {status} with an ErrorResponse body")
        if (method, path) in NEVER_OK:
            if "200" in responses:
                problems.append(f"{label}: never answers 200, yet declares it")
            continue
        ok = responses.get("200", {}).get("content", {})
        if not ok.get("application/json", {}).get("schema", {}).get("$ref"):
            problems.append(f"{label}: its 200 body has no schema")
        if ((method, path) in STREAMED) != ("text/event-stream" in ok):
            problems.append(f"{label}: text/event-stream declared where it is not sent, or not")
        metadata = [p for p in params if p["name"] == "metadata"]
        if (method, path) in METADATA_FILTERED:
            if not (
                metadata and metadata[0]["in"] == "query" and metadata[0]["style"] == "deepObject"
            ):
                problems.append(f"{label}: no metadata[key]=value filter parameter")
        elif metadata:
            problems.append(f"{label}: a metadata filter it does not read")
    assert not problems, "\n".join(problems)


@dataclass
class Findings:
    """What a Schemathesis run reported, gathered from its events."""

    # operation -> request that reproduces it (a curl command) -> what the checks said
    failures: dict[str, dict[str, set[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )
    errors: list[str] = field(default_factory=list)
    statuses: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    stop_reason: StopReason | None = None

    def scenario(self, event: st_events.ScenarioFinished) -> None:
        recorder = event.recorder
        for case_id, interaction in recorder.interactions.items():
            case = recorder.cases.get(case_id)
            if interaction.response is not None and case is not None:
                self.statuses[case.value.operation.label].add(interaction.response.status_code)
        for checks in recorder.checks.values():
            for check in checks:
                info = check.failure_info
                if check.status != Status.FAILURE or info is None:
                    continue
                failure = info.failure
                said = " ".join(f"{failure.title}. {failure.message}".split())
                where = failure.operation or recorder.label
                self.failures[where][info.code_sample].add(f"{check.name}: {said}")

    def report(self) -> str:
        lines = []
        for operation, cases in sorted(self.failures.items()):
            lines.append(f"{operation}:")
            for request, said in cases.items():
                lines += [f"  - {one}" for one in sorted(said)]
                lines.append(f"    {request}")
        lines += [f"error: {error}" for error in self.errors]
        return "\n".join(lines)


def load_schema(server: ServerThread, **extra: Any) -> Any:
    """Tether's /openapi.json as Schemathesis reads it, with this run's settings."""
    config = schemathesis.Config.from_dict(
        {
            **extra,
            "seed": SEED,
            "cache": {"enabled": False},  # no .schemathesis/ in the work tree
            "request-timeout": 30,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "database": "none",  # no example database either
                "no-shrink": True,  # a failure is reported as found: shrinking re-sends it
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config)


def run_schemathesis(server: ServerThread, **extra: Any) -> Findings:
    findings = Findings()
    for event in schemathesis.engine.from_schema(load_schema(server, **extra)).execute():
        if isinstance(event, st_events.ScenarioFinished):
            findings.scenario(event)
        elif isinstance(event, st_events.NonFatalError):
            findings.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, st_events.FatalError):
            findings.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, st_events.EngineFinished):
            findings.stop_reason = event.stop_reason
            for failure in event.failures:
                findings.failures[failure.operation or "run"]["(after the run)"].add(
                    f"{failure.title}. {failure.message}"
                )
    return findings


@dataclass
class Tether:
    server: ServerThread
    # Schemathesis settings for this server: with only the built-in echo model, most creates
    # name it (any other model is a 400, tested too).
    config: dict[str, Any]


@pytest.fixture(scope="module", params=["upstream", "echo"])
def tether(
    request: pytest.FixtureRequest,
    backend: str,
    fake_upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Tether]:
    """A server of its own on a fresh database, so what Schemathesis creates stays there; its
    model is the fake upstream (any model name answers), or the built-in echo model."""
    upstream: dict[str, Any] = {}
    config: dict[str, Any] = {
        "parameters": {"body.model": {"dictionary": "models", "probability": 0.8}},
        "dictionaries": {"models": {"values": ["echo"]}},
    }
    if request.param == "upstream":
        upstream = {
            "upstream_base_url": f"{fake_upstream.url}/v1",
            "upstream_api_key": "sk-upstream-test",
            "upstream_timeout": UPSTREAM_TIMEOUT,
        }
        config = {}
    # A webhook endpoint's `test` sends to a receiver on loopback, over http.
    hooks = {"webhook_allow_http": True, "webhook_allow_private": True}
    with migrated_database(backend, str(tmp_path_factory.mktemp("schemathesis"))) as url:
        settings = Settings(database_url=url, **upstream, **hooks, **SMALL_POOL)
        with running_server(settings) as server:
            yield Tether(server, config)


def test_schemathesis_finds_nothing(tether: Tether) -> None:
    findings = run_schemathesis(tether.server, **tether.config)
    if findings.failures or findings.errors:
        pytest.fail("Schemathesis found:\n" + findings.report(), pytrace=False)
    assert findings.stop_reason == StopReason.COMPLETED
    # The run reached the API: no operation bounced off authentication (keyless: no key exists
    # and the client is on loopback), and every one that needs no id from an earlier answer
    # succeeded at least once.
    assert not [op for op, seen in findings.statuses.items() if 401 in seen], findings.statuses
    for method, path, _ in operations(document()):
        label = f"{method.upper()} {path}"
        assert label in findings.statuses, f"{label} was never called"
        if "{" not in path and (method, path) not in NEVER_OK:
            assert 200 in findings.statuses[label], f"{label} never succeeded"


def test_every_answer_is_the_documented_one(tether: Tether) -> None:
    """Every operation called with what it needs to answer 200, the answers checked against the
    document as Schemathesis checks them: the objects by id and the streams, which the fuzzing
    above reaches only by chance."""
    schema = load_schema(tether.server)
    answered: set[str] = set()

    def call(method: str, path: str, status: int = 200, **parts: Any) -> Any:
        case = schema[path][method].Case(**parts)
        response = case.call_and_validate(base_url=tether.server.url)
        assert response.status_code == status, (method, path, response.text)
        if status == 200:
            answered.add(f"{method} {path}")
        is_json = response.headers["content-type"][0].startswith("application/json")
        return response.json() if is_json else response.text

    # Metadata of this run's own: the fuzzing before it created objects in the same database.
    tag = {"suite": uuid.uuid4().hex}
    one = {"model": "echo", "input": "Hello, Tether", "metadata": tag}
    made = call("POST", "/v1/responses", body={**one, "background": True})
    rid = {"response_id": made["id"]}
    stream = call("GET", "/v1/responses/{response_id}", path_parameters=rid, query={"stream": True})
    assert "event: response.completed" in stream
    call("GET", "/v1/responses/{response_id}", path_parameters=rid)
    # The wire form of the deepObject `metadata` filter (generated cases are serialised so).
    found = call("GET", "/v1/responses", query={"metadata[suite]": tag["suite"]})
    assert [r["id"] for r in found["data"]] == [made["id"]]
    call("GET", "/v1/responses/{response_id}/input_items", path_parameters=rid)
    call("POST", "/v1/responses/{response_id}/cancel", path_parameters=rid)
    assert "event: response.completed" in call(
        "POST", "/v1/responses", body={**one, "stream": True}
    )
    call("POST", "/v1/responses/input_tokens", body={"model": "echo", "input": "Hello"})
    call("POST", "/v1/responses/compact", 400)
    call("DELETE", "/v1/responses/{response_id}", path_parameters=rid)
    call("GET", "/v1/responses/{response_id}", 404, path_parameters=rid)

    hello = [{"role": "user", "content": "Hello, Tether"}]
    conversation = call("POST", "/v1/conversations", body={"items": hello})
    cid = {"conversation_id": conversation["id"]}
    call("POST", "/v1/conversations/{conversation_id}", path_parameters=cid, body={"metadata": {}})
    call("GET", "/v1/conversations/{conversation_id}", path_parameters=cid)
    added = call(
        "POST",
        "/v1/conversations/{conversation_id}/items",
        path_parameters=cid,
        body={"items": hello},
    )
    item = {**cid, "item_id": added["data"][0]["id"]}
    call("GET", "/v1/conversations/{conversation_id}/items", path_parameters=cid)
    call("GET", "/v1/conversations/{conversation_id}/items/{item_id}", path_parameters=item)
    call("DELETE", "/v1/conversations/{conversation_id}/items/{item_id}", path_parameters=item)
    call("DELETE", "/v1/conversations/{conversation_id}", path_parameters=cid)

    chat = {"model": "echo", "messages": hello, "metadata": tag}
    completion = call("POST", "/v1/chat/completions", body={**chat, "store": True})
    ccid = {"completion_id": completion["id"]}
    listed = call("GET", "/v1/chat/completions", query={"metadata[suite]": tag["suite"]})
    assert [c["id"] for c in listed["data"]] == [completion["id"]]
    call("GET", "/v1/chat/completions/{completion_id}", path_parameters=ccid)
    call("GET", "/v1/chat/completions/{completion_id}/messages", path_parameters=ccid)
    call(
        "POST", "/v1/chat/completions/{completion_id}", path_parameters=ccid, body={"metadata": {}}
    )
    call("DELETE", "/v1/chat/completions/{completion_id}", path_parameters=ccid)
    assert call("POST", "/v1/chat/completions", body={**chat, "stream": True}).endswith(
        "[DONE]\n\n"
    )

    models = call("GET", "/v1/models")
    call("GET", "/v1/models/{model_id}", path_parameters={"model_id": models["data"][0]["id"]})

    receiver = Receiver()
    receiver.start()
    try:
        hook = {"name": "jobs", "url": receiver.url_for("hook"), "event_types": ["response.failed"]}
        endpoint = call("POST", "/v1/webhook_endpoints", body=hook)
        wid = {"webhook_endpoint_id": endpoint["id"]}
        call("GET", "/v1/webhook_endpoints")
        call("GET", "/v1/webhook_endpoints/{webhook_endpoint_id}", path_parameters=wid)
        call(
            "POST",
            "/v1/webhook_endpoints/{webhook_endpoint_id}",
            path_parameters=wid,
            body={"name": "renamed"},
        )
        call(
            "POST",
            "/v1/webhook_endpoints/{webhook_endpoint_id}/rotate_secret",
            path_parameters=wid,
            body={"keep_old_secret_active_for_24_hours": True},
        )
        tested = call(
            "POST",
            "/v1/webhook_endpoints/{webhook_endpoint_id}/test",
            path_parameters=wid,
            body={"event_type": "response.completed"},
        )
        assert tested["status_code"] == 200
        call("GET", "/v1/webhook_event_types")
        call("DELETE", "/v1/webhook_endpoints/{webhook_endpoint_id}", path_parameters=wid)
    finally:
        receiver.stop()

    everything = {f"{m.upper()} {p}" for m, p, _ in operations(document())}
    assert everything - answered == {"POST /v1/responses/compact"}
