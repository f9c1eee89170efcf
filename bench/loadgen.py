"""Closed-loop load generation shared by the bench scripts.

`concurrency` workers each send their next request as soon as the previous one answers (the
way a pool of busy clients behaves), first for a warm-up that is not measured (connections
open, caches fill), then for the measured window. Only requests *started* inside the window
count, so the numbers do not depend on how the warm-up ended.
"""

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import aiohttp

T = TypeVar("T")

# One request: returns (HTTP status, body); raising counts as an error too.
Call = Callable[[], Awaitable[tuple[int, bytes]]]


@dataclasses.dataclass(slots=True)
class Result:
    name: str
    requests: int  # measured requests, errors included
    errors: int  # non-2xx answers and transport failures
    seconds: float  # from the start of the window until the last measured request answered
    latencies_ms: list[float]  # of the successful requests, sorted
    first_error: str | None = None
    cpu_ms: float | None = None  # the server process's CPU time per measured request

    @property
    def rps(self) -> float:
        """Successful requests per second (a fast-failing server must not look fast)."""
        return len(self.latencies_ms) / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        return self.latencies_ms[min(len(self.latencies_ms) - 1, int(q * len(self.latencies_ms)))]

    @property
    def p50(self) -> float:
        return self.percentile(0.50)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """A process's resident set size now (Linux /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for process {pid}")


async def run_load(
    name: str,
    call: Call,
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    pid: int | None = None,
) -> Result:
    """Load `call`; with `pid`, also the CPU that server process spent per measured request.
    CPU per request holds steady on a shared machine, where req/s and latency drift with
    whatever else runs."""
    measure_from = time.perf_counter() + warmup
    stop_at = measure_from + seconds
    result = Result(name=name, requests=0, errors=0, seconds=0.0, latencies_ms=[])
    cpu_from: list[float] = []

    async def mark_window() -> None:
        await asyncio.sleep(warmup)
        if pid is not None:
            cpu_from.append(cpu_seconds(pid))

    async def worker() -> None:
        while (started := time.perf_counter()) < stop_at:
            detail: str | None = None
            try:
                status, body = await call()
                if not 200 <= status < 300:
                    detail = f"HTTP {status}: {body[:1000].decode(errors='replace')}"
            except Exception as exc:  # a benchmark counts failures, it does not stop on them
                detail = f"{type(exc).__name__}: {exc}"
            if started < measure_from:
                continue
            result.requests += 1
            if detail is None:
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                result.errors += 1
                result.first_error = result.first_error or detail

    await asyncio.gather(mark_window(), *(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - measure_from
    if pid is not None and result.requests:
        result.cpu_ms = (cpu_seconds(pid) - cpu_from[0]) * 1000 / result.requests
    result.latencies_ms.sort()
    return result


class SetupError(Exception):
    """A scenario could not be prepared: its server answered badly."""


async def run_scenarios(
    scenarios: Mapping[str, Callable[[], Awaitable[Call]]],
    names: list[str],
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    pids: Mapping[str, int] | None = None,
) -> dict[str, Result]:
    """Set up and load each named scenario in turn; one that cannot be set up is skipped.
    `pids`: the server process whose CPU per request to measure, by scenario name."""
    results: dict[str, Result] = {}
    for name in names:
        print(f"{name}: {warmup:g}s warm-up + {seconds:g}s", flush=True)
        try:
            call = await scenarios[name]()
        except (SetupError, aiohttp.ClientError, OSError) as exc:
            print(f"  setup failed, skipping: {exc}", file=sys.stderr)
            continue
        pid = (pids or {}).get(name)
        result = await run_load(
            name, call, concurrency=concurrency, seconds=seconds, warmup=warmup, pid=pid
        )
        if result.first_error:
            print(f"  first error: {result.first_error}", file=sys.stderr)
        results[name] = result
    return results


def table(results: list[Result]) -> str:
    width = max([len("scenario"), *(len(r.name) for r in results)])
    cpu = any(r.cpu_ms is not None for r in results)
    row = "{:<" + str(width) + "}  {:>9}  {:>9}  {:>8}  {:>8}  {:>7}" + ("  {:>10}" if cpu else "")
    head = ["scenario", "requests", "req/s", "p50 ms", "p99 ms", "errors", "CPU ms/req"]
    lines = [row.format(*head)]
    for r in results:
        rps, p50, p99 = f"{r.rps:.1f}", f"{r.p50:.2f}", f"{r.p99:.2f}"
        per = "" if r.cpu_ms is None else f"{r.cpu_ms:.3f}"
        lines.append(row.format(r.name, r.requests, rps, p50, p99, r.errors, per))
    return "\n".join(lines)


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is installed: the load generator must not be the limit."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def uvloop_in_use() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
