"""Chaos: background jobs (streamed, in conversations, chained, cancelled) and synchronous
streams running while a fault strikes, then the invariants of DESIGN §6 checked.

The services are the run's own (tests/chaos/harness.py): its PostgreSQL cluster, its
redis-server, the API as a subprocess, two Celery workers, and the fake model server behind a
fault proxy. Each fault is a test of its own, so a failure names the fault and, in its message,
every invariant it broke with the evidence. The queue's length under a backlog and deleting a
running job are checked on their own in tests/faults/, where a fault of one kind needs no stack.
"""

from collections.abc import Callable, Iterator

import openai
import pytest

from tests.chaos import invariants
from tests.chaos.harness import FAULTS, Stack
from tests.chaos.load import Ledger, Outcome, Traffic, inject, load_built_up, sdk
from tests.harness import query, wait_until

# After the fault ended, every accepted response must be terminal within this: a lost worker's
# lease (3 s) and a requeue (3 s), three hung model calls (3 x 3 s), and room for a loaded CI.
SETTLE_SECONDS = 45.0
AFTER_BURST = 24  # background jobs created at once right after each repair

# Under `make test`'s -n: one process runs them all, on the one stack the module starts.
pytestmark = pytest.mark.xdist_group("chaos")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack.up() as running:
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    restarts = stack.restarts()
    with sdk(stack.api.url) as found:
        yield found
    stack.heal()  # whatever the test left broken, the next one starts whole
    if stack.restarts() != restarts:
        # What a restart leaves behind in the processes shows in this test, not the next.
        stack.renew()


def _queued(stack: Stack) -> int:
    rows = query(
        stack.settings.database_url, "SELECT count(*) FROM responses WHERE status = 'queued'"
    )
    return int(str(rows[0][0]))


def _rerun(stack: Stack, ledger: Ledger) -> bool:
    ids = [job.id for job in ledger.snapshot()]
    rows = query(
        stack.settings.database_url,
        "SELECT max(attempts) FROM responses WHERE id = ANY(:ids)",
        ids=ids,
    )
    return int(str(rows[0][0] or 0)) >= 2


def _sync_stream_cut(stack: Stack, ledger: Ledger) -> bool:
    return any(c.what == "create sync_stream" and c.outcome == Outcome.CUT for c in ledger.calls)


def _released(stack: Stack, ledger: Ledger) -> bool:
    return "released to the queue" in stack.workers.dead_output[-1]


def _running_long_jobs(stack: Stack) -> bool:
    return max(stack.workers.in_flight().values(), default=0) >= 2


# What must be true when a fault strikes for it to hit what it is meant to (polled first).
READY: dict[str, Callable[[Stack], bool]] = {
    "redis_restart": lambda stack: _queued(stack) > 0,
    # A worker runs long jobs (2.5 s, against a 0.5 s drain): stopping it gives some back,
    # killing it leaves some to be re-run.
    "worker_sigterm": _running_long_jobs,
    "worker_sigkill": _running_long_jobs,
}
# What shows that the fault did hit it: otherwise the test proved nothing.
EXERCISED: dict[str, tuple[Callable[[Stack, Ledger], bool], str]] = {
    "worker_sigkill": (_rerun, "no response was re-run after the worker was killed"),
    "worker_sigterm": (_released, "the stopped worker gave no job back"),
    "api_sigkill": (_sync_stream_cut, "no synchronous stream was cut by the kill"),
}


class TestUnderLoad:
    """Traffic of every kind, a fault, its repair, a burst of new work; then every invariant."""

    @pytest.mark.parametrize("name", list(FAULTS))
    def test_invariants_hold_through(self, stack: Stack, client: openai.OpenAI, name: str) -> None:
        fault = FAULTS[name]
        ledger = Ledger()
        traffic = Traffic(stack, ledger).start()
        try:
            wait_until(lambda: load_built_up(traffic), timeout=30, what="load to build up")
            traffic.burst(fault.burst, fault.burst_model)
            if name in READY:
                wait_until(lambda: READY[name](stack), timeout=10, what=f"{name} to be ready")
            inject(stack, fault, ledger)
            # Work created after the repair is judged too: a burst of it runs side by side, on
            # whatever the fault left behind (stale pooled connections, say).
            traffic.burst(AFTER_BURST, model="fast")
        finally:
            traffic.stop()
        stack.heal()
        assert not traffic.crashed, traffic.crashed
        settled = invariants.settle(client, ledger, ledger.snapshot(), SETTLE_SECONDS)
        found = invariants.check(stack, client, ledger, settled)
        if name in EXERCISED:
            happened, otherwise = EXERCISED[name]
            found["the fault hit work in flight"] = [] if happened(stack, ledger) else [otherwise]
        kinds = sorted({job.kind for job in ledger.snapshot()})
        assert not any(found.values()), (
            f"{name}: {ledger.accepted()} responses accepted ({', '.join(kinds)})\n"
            + invariants.render(found)
        )


class TestRedisRestart:
    def test_jobs_after_a_quiet_restart_stream_in_full(
        self, stack: Stack, client: openai.OpenAI
    ) -> None:
        """Redis restarted while nothing runs: every connection the processes keep to it is
        stale, and the jobs after it must still log their streams whole, not lose them at the
        first failed append."""
        before = Ledger()
        Traffic(stack, before).burst(24, model="fast")  # connections in every pool, then idle
        invariants.settle(client, before, before.snapshot(), SETTLE_SECONDS)
        stack.redis.restart()
        ledger = Ledger()
        Traffic(stack, ledger).burst(40, model="fast")
        settled = invariants.settle(client, ledger, ledger.snapshot(), SETTLE_SECONDS)
        found = {
            "every accepted response is terminal": invariants.every_accepted_response_terminal(
                ledger, settled
            ),
            "finished background streams replay in full": invariants.streams_replay_in_full(
                client, ledger, settled
            ),
            "answers well-formed and in time": invariants.answers_well_formed(ledger),
        }
        assert not any(found.values()), invariants.render(found)
