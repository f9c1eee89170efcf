"""What must hold after every fault, each as a function returning its violations (empty: it
holds), so that a failing run names every broken invariant with its evidence at once."""

import itertools
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import openai
import orjson
from openai.types.responses import Response

from tests.chaos.harness import Stack
from tests.chaos.load import TERMINAL, TERMINAL_EVENTS, Call, Job, Ledger, Outcome, classify
from tests.harness import query

ANSWERED = ("completed", "incomplete")  # the statuses whose turn joins its conversation
SHOWN = 5  # violations quoted per invariant


@dataclass
class Settled:
    finals: dict[str, Response] = field(default_factory=dict)  # terminal responses
    stuck: dict[str, str] = field(default_factory=dict)  # id -> status at the deadline
    lost: list[str] = field(default_factory=list)  # accepted, then 404 (never deleted)
    seconds: float = 0.0


def settle(client: openai.OpenAI, ledger: Ledger, jobs: list[Job], timeout: float) -> Settled:
    """Retrieve every accepted response until all are terminal or the deadline passes."""
    settled = Settled()
    started = time.monotonic()
    deadline = started + timeout
    pending = {job.id for job in jobs if not job.deleted}
    last: dict[str, str] = {}
    while pending:
        for response_id in sorted(pending):
            started_call = time.monotonic()
            try:
                found = client.responses.retrieve(response_id)
            except openai.NotFoundError:
                settled.lost.append(response_id)
                pending.discard(response_id)
                continue
            except openai.APIError as exc:
                ledger.record(
                    Call("settle retrieve", started_call, time.monotonic(), *classify(exc))
                )
                continue
            last[response_id] = found.status or "?"
            if found.status in TERMINAL:
                settled.finals[response_id] = found
                pending.discard(response_id)
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # between rounds of polls
    settled.stuck = {i: last.get(i, "unknown") for i in pending}
    settled.seconds = time.monotonic() - started
    return settled


def every_accepted_response_terminal(ledger: Ledger, settled: Settled) -> list[str]:
    jobs = ledger.jobs
    return [
        f"{i} ({jobs[i].kind}) still {status} {settled.seconds:.0f}s after the fault ended"
        for i, status in settled.stuck.items()
    ] + [f"{i} ({jobs[i].kind}) accepted, then gone (404)" for i in settled.lost]


def deliveries(stack: Stack) -> dict[str, list[str]]:
    """Per response, the terminal events its project's webhook outbox holds, oldest first:
    written in the transaction of each status change, one per end of a response."""
    rows = query(stack.settings.database_url, "SELECT payload FROM webhook_deliveries ORDER BY id")
    found: defaultdict[str, list[str]] = defaultdict(list)
    for (payload,) in rows:
        event = orjson.loads(str(payload))
        found[event["data"]["id"]].append(event["type"])
    return found


def model_calls(stack: Stack) -> Counter[str]:
    """Model calls per marker (the last user message: each create's own input)."""
    calls: Counter[str] = Counter()
    for body in stack.fake.requests():
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        if users and isinstance(users[-1].get("content"), str):
            calls[users[-1]["content"]] += 1
    return calls


def attempts(stack: Stack) -> dict[str, int]:
    rows = query(stack.settings.database_url, "SELECT id, attempts FROM responses")
    return {str(i): int(str(n)) for i, n in rows}


def none_completed_twice(stack: Stack, ledger: Ledger, settled: Settled) -> list[str]:
    """A response ends once: at most one terminal event in its outbox, the one its status says;
    and the model was called no more often than its attempts allow (each attempt may retry a
    transient failure job_upstream_retries times; a job given back at SIGTERM runs again
    without counting an attempt, hence one attempt more)."""
    ended = deliveries(stack)
    calls = model_calls(stack)
    tries = attempts(stack)
    per_attempt = 1 + stack.settings.job_upstream_retries
    out = []
    for job in ledger.snapshot():
        final = settled.finals.get(job.id)
        events = ended.get(job.id, [])
        if len(events) > 1:
            out.append(f"{job.id} ({job.kind}) ended {len(events)} times: {events}")
        elif job.background and final is not None and events != [f"response.{final.status}"]:
            out.append(f"{job.id} ({job.kind}) is {final.status}, its outbox says {events}")
        budget = (tries.get(job.id, 0) + 1) * per_attempt if job.background else 1
        if calls[job.marker] > budget:
            out.append(
                f"{job.id} ({job.kind}) called the model {calls[job.marker]} times "
                f"(attempts {tries.get(job.id)}, at most {budget})"
            )
        if final is not None and final.status == "completed" and calls[job.marker] == 0:
            out.append(f"{job.id} ({job.kind}) completed without a model call")
    return out


def cancelled_never_completed(stack: Stack, ledger: Ledger, settled: Settled) -> list[str]:
    ended = deliveries(stack)
    out = []
    for job in ledger.snapshot():
        if not job.cancelled:
            continue
        final = settled.finals.get(job.id)
        if final is not None and final.status != "cancelled":
            out.append(f"{job.id} was cancelled, and is now {final.status}")
        if "response.completed" in ended.get(job.id, []):
            out.append(f"{job.id} was cancelled, and its webhook says completed")
    return out


def _text(item: dict[str, Any]) -> str:
    return "".join(p.get("text") or "" for p in item.get("content") or [])


def _shape(item: dict[str, Any], with_id: bool) -> tuple[str, str, str, str]:
    return (item["type"], item.get("role") or "", _text(item), item["id"] if with_id else "")


def conversations_contiguous(client: openai.OpenAI, ledger: Ledger, settled: Settled) -> list[str]:
    """A conversation's items are each answered turn's input then output, in turn order, once;
    a turn that failed or was cancelled adds nothing."""
    out = []
    for conversation, turns in ledger.conversations.items():
        expected = []
        for turn in turns:
            final = settled.finals.get(turn)
            if final is None or final.status not in ANSWERED:
                continue
            expected.append(("message", "user", ledger.jobs[turn].marker, ""))
            expected += [_shape(o.model_dump(), with_id=True) for o in final.output]
        try:
            items = list(client.conversations.items.list(conversation, order="asc", limit=100))
        except openai.APIError as exc:
            out.append(f"{conversation}: items not listed: {classify(exc)[1]}")
            continue
        actual = []
        for item in items:
            shown = item.model_dump()
            actual.append(_shape(shown, with_id=shown.get("role") != "user"))
        if actual != expected:
            first = next(
                (n for n, (a, e) in enumerate(zip(actual, expected, strict=False)) if a != e),
                min(len(actual), len(expected)),
            )
            out.append(
                f"{conversation}: {len(actual)} items, expected {len(expected)}; from #{first}: "
                f"{actual[first : first + 3]} != {expected[first : first + 3]}"
            )
    return out


def _gaps(numbers: list[int]) -> str:
    if not numbers:
        return "no events"
    if numbers[0] != 0:
        return f"starts at {numbers[0]}"
    for n, (a, b) in enumerate(itertools.pairwise(numbers)):
        if b != a + 1:
            return f"{a} then {b} (event #{n + 1})"
    return "contiguous"


def replay_problems(events: list[Any], final: Response) -> list[str]:
    """What is wrong with a finished background response's replayed stream."""
    problems = []
    numbers = [e.sequence_number for e in events]
    if numbers != list(range(len(numbers))):
        problems.append(f"sequence numbers not 0..{len(numbers) - 1}: {_gaps(numbers)}")
    ends = [e.type for e in events if e.type in TERMINAL_EVENTS]
    if final.status == "cancelled":
        if "response.completed" in ends:
            problems.append("cancelled, yet its stream says response.completed")
        return problems
    want = f"response.{final.status}"
    if ends != [want] or events[-1].type != want:
        last = events[-1].type if events else None
        problems.append(f"terminal events {ends}, last {last}; expected one {want}, last")
    streamed: defaultdict[str, str] = defaultdict(str)
    for e in events:
        if e.type == "response.output_text.delta":
            streamed[e.item_id] += e.delta
    for item in final.output:
        shown = item.model_dump()
        if shown["type"] == "message" and streamed[shown["id"]] != _text(shown):
            problems.append(
                f"item {shown['id']}: streamed {streamed[shown['id']]!r} != stored "
                f"{_text(shown)!r} (the stream's text per item: {dict(streamed)}, its events: "
                f"{', '.join(e.type.removeprefix('response.') for e in events)})"
            )
    return problems


def streams_replay_in_full(client: openai.OpenAI, ledger: Ledger, settled: Settled) -> list[str]:
    """Every finished background response streams again from its start: sequence numbers
    0, 1, 2, ..., one terminal event (its status's) last, and the text deltas of each output
    message are the message stored."""
    out = []
    for job in ledger.snapshot():
        final = settled.finals.get(job.id)
        if not job.background or final is None:
            continue
        try:
            with client.responses.retrieve(job.id, stream=True) as stream:
                events = list(stream)
        except Exception as exc:
            out.append(f"{job.id} ({job.kind}, {final.status}): replay failed: {classify(exc)}")
            continue
        out += [
            f"{job.id} ({job.kind}, {final.status}): {p}" for p in replay_problems(events, final)
        ]
    return out


def _fault_before(faults: list[tuple[str, float, float]], at: float) -> tuple[str, float]:
    """The fault that began last before `at` (the first one, if none did): name and start."""
    began = [f for f in faults if f[1] <= at] or faults[:1]
    return (began[-1][0], began[-1][1]) if began else ("no fault", 0.0)


def answers_well_formed(ledger: Ledger) -> list[str]:
    """Each answer was a success or a well-formed OpenAI error, within the SDK's timeout. A
    client may find no API at all only while the API process is down."""

    def api_was_down(started: float, ended: float) -> bool:
        return any(started <= up and ended >= down for down, up in ledger.api_down)

    out = []
    with ledger.lock:
        calls = list(ledger.calls)
        faults = sorted(ledger.faults, key=lambda f: f[1])
    for call in calls:
        if call.outcome in (Outcome.OK, Outcome.ERROR):
            continue
        if call.outcome in (Outcome.UNREACHABLE, Outcome.CUT) and api_was_down(
            call.started, call.ended
        ):
            continue
        name, began = _fault_before(faults, call.ended)
        out.append(
            f"{call.what} at {call.started - began:+.1f}s from {name}: {call.outcome} after "
            f"{call.ended - call.started:.1f}s, {call.detail}"
        )
    return out


def check(
    stack: Stack, client: openai.OpenAI, ledger: Ledger, settled: Settled
) -> dict[str, list[str]]:
    """Every invariant's violations, by name."""
    return {
        "every accepted response is terminal": every_accepted_response_terminal(ledger, settled),
        "none completed twice": none_completed_twice(stack, ledger, settled),
        "cancelled never completed": cancelled_never_completed(stack, ledger, settled),
        "conversations contiguous": conversations_contiguous(client, ledger, settled),
        "finished background streams replay in full": streams_replay_in_full(
            client, ledger, settled
        ),
        "answers well-formed and in time": answers_well_formed(ledger),
    }


def render(violations: dict[str, list[str]]) -> str:
    lines = []
    for name, found in violations.items():
        if found:
            lines.append(f"{name}: {len(found)} violation(s)")
            lines += [f"    {v}" for v in found[:SHOWN]]
    return "\n".join(lines)
