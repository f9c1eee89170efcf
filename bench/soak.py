"""Soak: continuous load while the faults of tests/chaos take turns, for --minutes.

    python bench/soak.py --minutes 10 [--quiet 5] [--only worker_sigkill,redis_restart]

Starts its own services (tests/chaos/harness.py: a PostgreSQL cluster in a temporary directory,
a redis-server on a free port, the API as a subprocess, two Celery workers, the fake model
server behind a fault proxy), so it needs the PostgreSQL 15 binaries and redis-server, and root
(PostgreSQL runs as the `postgres` OS user). The traffic is tests/chaos/load.py's: background
jobs, streamed ones, synchronous stored streams, chains, conversations and cancels.

After each fault it measures the time to recover: from the repair until every response
accepted before it is terminal and a new background job completes. At the end it settles every
response and checks tests/chaos/invariants.py's invariants over the whole run, then prints the
counters: jobs accepted, faults injected, lost, stuck, duplicated, the other invariants'
violations, and the longest recovery. Exit status 1 if anything was lost, stuck, duplicated or
broken.
"""

import argparse
import itertools
import sys
import time
import uuid
from collections import Counter, defaultdict
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.chaos, when run as `python bench/soak.py`

import openai  # noqa: E402

from tests.chaos import invariants  # noqa: E402
from tests.chaos.harness import FAULTS, Fault, Stack  # noqa: E402
from tests.chaos.load import TERMINAL, Job, Ledger, Traffic, inject, load_built_up, sdk  # noqa: E402
from tests.harness import query, wait_until  # noqa: E402

RECOVERY_LIMIT = 120.0  # seconds after a repair; past it the fault's responses count as stuck


def unfinished(stack: Stack, ids: list[str]) -> set[str]:
    """Which of these responses are not terminal (or not there) in the database now."""
    try:
        rows = query(
            stack.settings.database_url,
            "SELECT id, status FROM responses WHERE id = ANY(:ids)",
            ids=ids,
        )
    except Exception:  # the database is not back yet: nothing is known to be done
        return set(ids)
    done = {str(i) for i, status in rows if status in TERMINAL}
    return set(ids) - done


def recover(stack: Stack, ledger: Ledger, client: openai.OpenAI, ended: float) -> float | None:
    """Seconds from the repair until every response accepted before it is terminal and a
    new background job completes; None if that took more than RECOVERY_LIMIT."""
    pending = [job.id for job in ledger.snapshot() if job.accepted_at <= ended]
    probe: str | None = None
    probed = False
    while time.monotonic() - ended < RECOVERY_LIMIT:
        if pending:
            pending = sorted(unfinished(stack, pending))
        if not probed:
            if probe is None:
                marker = f"probe-{uuid.uuid4().hex[:12]}"
                create = partial(
                    client.responses.create,
                    model=stack.models["fast"],
                    input=marker,
                    background=True,
                )
                created = ledger.call("create probe", create)
                if created is not None:
                    probe = created.id
                    ledger.accept(Job(probe, "probe", marker, True, time.monotonic()))
            else:
                found = ledger.call("retrieve probe", partial(client.responses.retrieve, probe))
                if found is not None and found.status in TERMINAL:
                    probed = found.status == "completed"
                    probe = None  # failed or cancelled: try another
        if not pending and probed:
            return time.monotonic() - ended
        time.sleep(0.25)  # between looks
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--quiet", type=float, default=5.0, help="seconds of plain load between faults"
    )
    parser.add_argument("--only", default="", help="comma-separated fault names (default: all)")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds to settle at the end")
    args = parser.parse_args(argv)
    chosen = [FAULTS[name] for name in args.only.split(",") if name] or list(FAULTS.values())

    started = time.monotonic()
    print("starting services ...", flush=True)
    with Stack.up() as stack, sdk(stack.api.url) as client:
        names = ", ".join(f.name for f in chosen)
        print(f"up in {time.monotonic() - started:.1f}s; faults in turn: {names}", flush=True)
        ledger = Ledger()
        traffic = Traffic(stack, ledger).start()
        wait_until(lambda: load_built_up(traffic), timeout=60, what="load to build up")
        began = time.monotonic()
        end = began + args.minutes * 60
        recoveries: defaultdict[str, list[float]] = defaultdict(list)
        unrecovered: list[str] = []
        fault: Fault
        for fault in itertools.cycle(chosen):
            if time.monotonic() >= end:
                break
            traffic.burst(fault.burst, fault.burst_model)
            _, ended = inject(stack, fault, ledger)
            took = recover(stack, ledger, client, ended)
            line = f"{ended - began:7.0f}s  {fault.name:18} held {fault.hold:.1f}s"
            if took is None:
                unrecovered.append(fault.name)
                print(f"{line}  NOT recovered in {RECOVERY_LIMIT:.0f}s", flush=True)
                stack.heal()
            else:
                recoveries[fault.name].append(took)
                so_far = ledger.accepted()
                print(f"{line}  recovered in {took:5.1f}s  ({so_far} accepted)", flush=True)
            time.sleep(args.quiet)  # plain load between two faults
        traffic.stop()
        stack.heal()
        print(f"load stopped after {time.monotonic() - began:.0f}s; settling ...", flush=True)
        settled = invariants.settle(client, ledger, ledger.snapshot(), args.settle)
        found = invariants.check(stack, client, ledger, settled)

    kinds = Counter(job.kind for job in ledger.snapshot())
    injected = sum(len(v) for v in recoveries.values()) + len(unrecovered)
    duplicated = found.pop("none completed twice")
    worst = max(((t, name) for name, ts in recoveries.items() for t in ts), default=(0.0, "-"))
    print()
    print(f"{'fault':18} {'count':>5} {'max recovery':>13} {'mean':>7}")
    for name, times in recoveries.items():
        print(f"{name:18} {len(times):5} {max(times):12.1f}s {sum(times) / len(times):6.1f}s")
    print()
    per_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    print(f"jobs accepted       {ledger.accepted()} ({per_kind})")
    never = (
        f" ({len(unrecovered)} never recovered: {', '.join(unrecovered)})" if unrecovered else ""
    )
    print(f"faults injected     {injected}{never}")
    print(f"lost                {len(settled.lost)}")
    print(f"stuck               {len(settled.stuck)}")
    print(f"duplicated          {len(duplicated)}")
    print(f"max recovery        {worst[0]:.1f}s ({worst[1]})")
    for name, violations in found.items():
        if name != "every accepted response is terminal":
            print(f"{name:<44} {len(violations)} violation(s)")
    rendered = invariants.render({**found, "none completed twice": duplicated})
    if rendered:
        print()
        print(rendered)
    broken = settled.lost or settled.stuck or duplicated or unrecovered or any(found.values())
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
