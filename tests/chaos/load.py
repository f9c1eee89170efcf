"""Traffic for a chaos run, and the ledger of what it was answered.

Every create carries an input of its own (its `marker`), by which the fake model server's
records are counted per response. Every API call is timed and classified: a success, a
well-formed OpenAI error, or something a client should never see (a malformed error, no answer
within the SDK's timeout, a stream cut off while the API was up).
"""

import enum
import itertools
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import httpx2
import openai
from openai.types.responses import Response

from tests.chaos.harness import Fault, Stack

T = TypeVar("T")

# Every call's bound: a call that takes longer is a hang, which a fault must never cause.
SDK_TIMEOUT = 20.0
TERMINAL = ("completed", "failed", "incomplete", "cancelled")
TERMINAL_EVENTS = ("response.completed", "response.failed", "response.incomplete")
POLL = 0.1  # seconds between retrieves of a response a client waits for


def sdk(url: str, timeout: float = SDK_TIMEOUT) -> openai.OpenAI:
    """No retries: every answer the API gives is seen, and judged."""
    return openai.OpenAI(
        base_url=f"{url}/v1",
        api_key="sk-chaos",
        max_retries=0,
        timeout=httpx2.Timeout(timeout, connect=3.0),
    )


class Outcome(enum.StrEnum):
    OK = "ok"
    ERROR = "error"  # a well-formed OpenAI error
    MALFORMED = "malformed"  # an error without {"error": {message, type, param, code}}
    UNREACHABLE = "unreachable"  # no connection, or it was reset before an answer
    CUT = "cut"  # a stream that stopped before its terminal event
    TIMEOUT = "timeout"  # nothing within SDK_TIMEOUT: a hang


def well_formed(body: object) -> bool:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    error = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(error, dict)
        and {"message", "type", "param", "code"} <= error.keys()
        and isinstance(error["message"], str)
    )


def classify(exc: BaseException) -> tuple[Outcome, str]:
    detail = f"{type(exc).__name__}: {str(exc)[:200]}"
    if exc.__cause__ is not None:  # the SDK's "Connection error." says little by itself
        detail += f" ({type(exc.__cause__).__name__}: {str(exc.__cause__)[:200]})"
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException | httpx.TimeoutException):
        return Outcome.TIMEOUT, detail
    if isinstance(exc, openai.APIStatusError):
        try:
            body = exc.response.json()
        except ValueError:
            body = None
        return (Outcome.ERROR if well_formed(body) else Outcome.MALFORMED), detail
    if isinstance(exc, openai.APIConnectionError):
        cut = isinstance(exc.__cause__, httpx2.RemoteProtocolError | httpx2.ReadError)
        return (Outcome.CUT if cut else Outcome.UNREACHABLE), detail  # CUT: an answer begun
    if isinstance(exc, httpx2.RemoteProtocolError | httpx2.ReadError | httpx.TransportError):
        return Outcome.CUT, detail  # a stream broken off mid-body
    if isinstance(exc, httpx2.TransportError):
        return Outcome.UNREACHABLE, detail
    if isinstance(exc, openai.APIError):  # an `error` event in a stream
        return (Outcome.ERROR if well_formed({"error": exc.body}) else Outcome.MALFORMED), detail
    return Outcome.MALFORMED, f"unexpected {detail}"


@dataclass
class Job:
    """A response the API accepted (answered with its id)."""

    id: str
    kind: str
    marker: str
    background: bool
    accepted_at: float
    conversation: str | None = None
    cancelled: bool = False  # a cancel was answered `cancelled`
    deleted: bool = False


@dataclass(frozen=True)
class Call:
    what: str
    started: float
    ended: float
    outcome: Outcome
    detail: str = ""


@dataclass
class Ledger:
    """What the traffic did and was answered; shared by its threads."""

    jobs: dict[str, Job] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    conversations: dict[str, list[str]] = field(default_factory=dict)  # id -> its turns, in order
    api_down: list[tuple[float, float]] = field(default_factory=list)
    faults: list[tuple[str, float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, job: Job) -> Job:
        with self.lock:
            self.jobs[job.id] = job
            if job.conversation is not None:
                self.conversations.setdefault(job.conversation, []).append(job.id)
        return job

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def accepted(self) -> int:
        with self.lock:
            return len(self.jobs)

    def snapshot(self) -> list[Job]:
        with self.lock:
            return list(self.jobs.values())

    def call(self, what: str, fn: Callable[[], T]) -> T | None:
        """fn()'s result, or None if it raised; either way the answer is recorded."""
        started = time.monotonic()
        try:
            result = fn()
        except Exception as exc:
            self.record(Call(what, started, time.monotonic(), *classify(exc)))
            return None
        self.record(Call(what, started, time.monotonic(), Outcome.OK))
        return result

    def stream(
        self,
        what: str,
        open_stream: Callable[[], AbstractContextManager[Iterator[Any]]],
        on_created: Callable[[str], None] | None = None,
    ) -> list[Any]:
        """Read a stream to its end; its events. `on_created` gets the response id as soon as
        an event carries it (the response is accepted from then on, whatever follows)."""
        started = time.monotonic()
        events: list[Any] = []
        outcome, detail = Outcome.OK, ""
        try:
            with open_stream() as stream:
                for event in stream:
                    if not events and on_created is not None and hasattr(event, "response"):
                        on_created(event.response.id)
                    events.append(event)
        except Exception as exc:
            outcome, detail = classify(exc)
            if events and outcome == Outcome.UNREACHABLE:
                outcome = Outcome.CUT  # events came, then the connection went
        else:
            if events and events[-1].type == "error":
                # OpenAI's way to end a stream that failed after its status line: well formed
                # if it says what went wrong.
                last = events[-1]
                ok = bool(getattr(last, "message", None)) and hasattr(last, "code")
                outcome = Outcome.ERROR if ok else Outcome.MALFORMED
                detail = f"error event: {getattr(last, 'message', None)!r}"
            elif not events or events[-1].type not in TERMINAL_EVENTS:
                outcome = Outcome.CUT
                detail = f"ended after {events[-1].type if events else 'nothing'}"
        self.record(Call(what, started, time.monotonic(), outcome, detail))
        return events

    def wait_terminal(
        self, client: openai.OpenAI, response_id: str, stop: threading.Event, timeout: float
    ) -> Response | None:
        """Retrieve until terminal; None once `stop` is set or the deadline passed."""
        deadline = time.monotonic() + timeout
        while not stop.is_set() and time.monotonic() < deadline:
            found = self.call("retrieve", lambda: client.responses.retrieve(response_id))
            if found is not None and found.status in TERMINAL:
                return found
            stop.wait(POLL)
        return None


class Traffic:
    """Threads of clients, each doing one kind of thing over and over until stop():

    * background: background=true creates, not waited for;
    * stream: background=true + stream=true, read to the end;
    * sync_stream: stream=true, store=true, background=false, read to the end;
    * chain: background turns, each continuing the last completed one (previous_response_id);
    * conversation: background turns in a conversation, one after the other;
    * cancel: a slow background response, cancelled after a moment.
    """

    KINDS = ("background", "stream", "sync_stream", "chain", "conversation", "cancel")

    def __init__(self, stack: Stack, ledger: Ledger, pace: float = 0.3, turns: int = 6) -> None:
        self.stack = stack
        self.ledger = ledger
        self.pace = pace  # seconds between two creates of one thread
        self.turns = turns  # per conversation, then a new one (requests stay small)
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.streaming: Counter[str] = Counter()  # streams being read now, per kind
        self.crashed: list[str] = []
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def marker(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}-{uuid.uuid4().hex[:8]}"

    def start(self) -> "Traffic":
        for kind in self.KINDS:
            loop = getattr(self, f"_{kind}")
            thread = threading.Thread(target=self._run, args=(kind, loop), name=f"chaos-{kind}")
            thread.daemon = True
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self, timeout: float = SDK_TIMEOUT + 5) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)
        hung = [t.name for t in self.threads if t.is_alive()]
        assert not hung, f"traffic threads did not stop: {hung}"

    def _run(self, kind: str, loop: Callable[[openai.OpenAI], None]) -> None:
        try:
            with sdk(self.stack.api.url) as client:
                while not self.stop_event.is_set():
                    loop(client)
        except Exception as exc:  # a bug of the traffic itself: reported, never silent
            self.crashed.append(f"{kind}: {exc!r}")

    def _pause(self) -> None:
        self.stop_event.wait(self.pace)

    def burst(self, count: int, model: str = "slow") -> None:
        """`count` background creates at once (a backlog for the queue)."""
        with sdk(self.stack.api.url) as client:
            for _ in range(count):
                self._create(client, "background", self.stack.models[model])

    def _create(
        self, client: openai.OpenAI, kind: str, model: str, **params: Any
    ) -> Response | None:
        marker = self.marker(kind)
        created = self.ledger.call(
            f"create {kind}",
            lambda: client.responses.create(model=model, input=marker, background=True, **params),
        )
        if created is not None:
            conversation = params.get("conversation")
            self.ledger.accept(Job(created.id, kind, marker, True, time.monotonic(), conversation))
        return created

    def _background(self, client: openai.OpenAI) -> None:
        self._create(client, "background", self.stack.models["fast"])
        self._pause()

    def _streamed(self, client: openai.OpenAI, kind: str, background: bool) -> None:
        marker = self.marker(kind)
        model = self.stack.models["slow"]

        def created(response_id: str) -> None:
            self.ledger.accept(Job(response_id, kind, marker, background, time.monotonic()))

        def open_stream() -> Any:
            return client.responses.create(
                model=model, input=marker, stream=True, store=True, background=background
            )

        with self._lock:
            self.streaming[kind] += 1
        try:
            self.ledger.stream(f"create {kind}", open_stream, created)
        finally:
            with self._lock:
                self.streaming[kind] -= 1
        self._pause()

    def _stream(self, client: openai.OpenAI) -> None:
        self._streamed(client, "stream", background=True)

    def _sync_stream(self, client: openai.OpenAI) -> None:
        self._streamed(client, "sync_stream", background=False)

    def _chain(self, client: openai.OpenAI) -> None:
        previous: str | None = None
        while not self.stop_event.is_set():
            extra = {"previous_response_id": previous} if previous else {}
            turn = self._create(client, "chain", self.stack.models["fast"], **extra)
            if turn is None:
                self._pause()
                continue
            done = self.ledger.wait_terminal(client, turn.id, self.stop_event, SDK_TIMEOUT * 3)
            if done is None:
                return  # stopped, or stuck: settling will say which
            if done.status == "completed":
                previous = turn.id

    def _conversation(self, client: openai.OpenAI) -> None:
        conversation = self.ledger.call("create conversation", client.conversations.create)
        if conversation is None:
            self._pause()
            return
        for _ in range(self.turns):
            if self.stop_event.is_set():
                return
            model = self.stack.models["fast"]
            turn = self._create(client, "conversation", model, conversation=conversation.id)
            if turn is None:
                self._pause()
                continue
            if self.ledger.wait_terminal(client, turn.id, self.stop_event, SDK_TIMEOUT * 3) is None:
                return

    def _cancel(self, client: openai.OpenAI) -> None:
        created = self._create(client, "cancel", self.stack.models["slow"])
        if created is None:
            self._pause()
            return
        self.stop_event.wait(random.uniform(0.1, 1.0))  # queued, running, or finished by now
        cancelled = self.ledger.call("cancel", lambda: client.responses.cancel(created.id))
        if cancelled is not None and cancelled.status == "cancelled":
            with self.ledger.lock:
                self.ledger.jobs[created.id].cancelled = True
        self._pause()


def eventually(predicate: Callable[[], bool], timeout: float) -> bool:
    """Whether `predicate` came true within `timeout` (polled): for a test that reports a
    failure in its own words rather than as a TimeoutError."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def load_built_up(traffic: Traffic, jobs: int = 10) -> bool:
    """Enough accepted, and both kinds of stream being read: a fault now hits work in flight."""
    with traffic._lock:
        streaming = traffic.streaming["stream"] > 0 and traffic.streaming["sync_stream"] > 0
    return traffic.ledger.accepted() >= jobs and streaming


def inject(stack: Stack, fault: Fault, ledger: Ledger) -> tuple[float, float]:
    """Break, hold for the fault's duration, repair; when the fault began and ended."""
    began = time.monotonic()
    fault.begin(stack)
    time.sleep(fault.hold)  # the fault's duration, under load: not a wait for anything
    fault.end(stack)
    ended = time.monotonic()
    ledger.faults.append((fault.name, began, ended))
    if fault.api_down:
        ledger.api_down.append((began, ended))
    return began, ended
