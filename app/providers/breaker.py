"""A deployment's circuit breaker, per process.

Closed: calls go to it. After CIRCUIT_FAILURES failures in a row (refused, timed out, 5xx) it
opens: skipped for CIRCUIT_OPEN_SECONDS. Then it is half-open: the next call to the model goes
to it first, as the probe (the others still skip it); the probe's success closes it, its failure
opens it again. A 4xx or a 429 proves the server alive, so it counts as a success here.

Per process on purpose: it is an opinion formed from this process's own calls, costs nothing
on the hot path, and every process finds a dead server by itself within a few calls.
"""

import time
from enum import StrEnum


class Circuit(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    def __init__(self, failures: int, open_seconds: float) -> None:
        self.threshold = failures
        self.open_seconds = open_seconds
        self.failures = 0
        self.open_until: float | None = None
        self.probing = False  # a half-open probe is out

    def state(self, now: float | None = None) -> Circuit:
        if self.open_until is None:
            return Circuit.CLOSED
        now = time.monotonic() if now is None else now
        return Circuit.HALF_OPEN if now >= self.open_until else Circuit.OPEN

    def usable(self, now: float) -> bool:
        """Closed, or half-open with no probe out."""
        state = self.state(now)
        return state == Circuit.CLOSED or (state == Circuit.HALF_OPEN and not self.probing)

    def start(self, now: float) -> bool:
        """A call goes to it; True if that call is the half-open probe."""
        if self.state(now) == Circuit.HALF_OPEN:
            self.probing = True
            return True
        return False

    def succeeded(self) -> None:
        self.failures = 0
        self.open_until = None
        self.probing = False

    def failed(self, probe: bool) -> None:
        self.failures += 1
        if probe or self.failures >= self.threshold:
            self.open_until = time.monotonic() + self.open_seconds
            self.probing = False

    def abandoned(self, probe: bool) -> None:
        """A call that ended without a verdict (its client went away): the next one probes."""
        if probe:
            self.probing = False
