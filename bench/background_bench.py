"""Load a running Tether (REDIS_URL set, one Celery worker) with background responses.

    python bench/background_bench.py --api http://127.0.0.1:8000 \\
        --upstream http://127.0.0.1:9100 \\
        --database-url postgresql://postgres@127.0.0.1:5432/bench

Starts nothing itself (see bench/README.md). Job statuses are read straight from the database
Tether writes, so waiting for jobs costs the API nothing. Phases, in order:

  create      closed-loop `"background": true` creates: how fast the API hands a job over
  throughput  --jobs jobs against a model that answers at once: enqueue -> all terminal, jobs/s
  capacity    --slow-jobs jobs against a model that takes --slow-delay seconds: can one worker
              carry them all at once (time to all terminal stays near one delay)
"""

import argparse
import asyncio
import dataclasses
import secrets
import sys
import time

import aiohttp
import asyncpg
import orjson
from loadgen import Call, Result, SetupError, cpu_seconds, run, run_load, table, uvloop_in_use
from responses_bench import JSON_HEADERS, select

# The targets the README promises; printed next to the measured figures.
CREATE_P99_MS_MAX = 50.0
THROUGHPUT_JOBS_PER_S_MIN = 300.0
CAPACITY_SECONDS_MAX = 10.0

PHASES = ["create", "throughput", "capacity"]
TERMINAL = ["completed", "failed", "incomplete", "cancelled"]
# One round trip per poll for both counts; `id = ANY` walks the primary key, so a poll of
# thousands of ids stays cheap for the database the API shares.
COUNTS_SQL = (
    "SELECT count(*) FILTER (WHERE status = ANY($2::text[])),"
    " count(*) FILTER (WHERE status = 'failed')"
    " FROM responses WHERE id = ANY($1::text[])"
)
STATUSES_SQL = (
    "SELECT status, count(*) FROM responses WHERE id = ANY($1::text[]) GROUP BY status ORDER BY 1"
)
FIRST_FAILURE_SQL = (
    "SELECT error::text FROM responses WHERE id = ANY($1::text[]) AND status = 'failed' LIMIT 1"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="Tether base URL")
    parser.add_argument("--upstream", default="http://127.0.0.1:9100", help="fake upstream URL")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/bench",
        help="the PostgreSQL database Tether writes (read only, for job statuses)",
    )
    parser.add_argument("--api-key", default=None, help="sent as a Bearer token to --api")
    parser.add_argument("--concurrency", type=int, default=16, help="for create and throughput")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time of create")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time of create")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs of the throughput phase")
    parser.add_argument("--slow-jobs", type=int, default=500, help="jobs of the capacity phase")
    parser.add_argument("--slow-delay", type=float, default=2.0, help="seconds per slow job")
    parser.add_argument(
        "--enqueue-concurrency", type=int, default=64, help="concurrent creates in capacity"
    )
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between status polls")
    parser.add_argument(
        "--deadline", type=float, default=120.0, help="seconds to wait for a phase's jobs to end"
    )
    parser.add_argument("--only", default=None, help=f"comma-separated: {', '.join(PHASES)}")
    parser.add_argument("--api-pid", type=int, help="the API's process: adds its CPU ms per job")
    parser.add_argument("--worker-pid", type=int, help="the worker's process: the same")
    args = parser.parse_args(argv)
    args.api = args.api.rstrip("/")
    args.upstream = args.upstream.rstrip("/").removesuffix("/v1")
    # Tether's own DATABASE_URL may name SQLAlchemy's driver; asyncpg wants the plain scheme.
    args.database_url = args.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return args


@dataclasses.dataclass(slots=True)
class Batch:
    """Jobs created in one go: the ids the API accepted, and what it refused."""

    ids: list[str]
    errors: int
    seconds: float  # first create sent -> last create answered
    first_error: str | None = None


@dataclasses.dataclass(slots=True)
class Wait:
    """Polling a batch until every job is terminal, or the deadline passes."""

    seconds: float | None  # from the phase's start; None: the deadline passed first
    terminal: int
    failed: int


@dataclasses.dataclass(slots=True)
class Drained:
    """What the create phase measured: the closed loop, then the drain of every job it made."""

    result: Result
    jobs: int  # accepted, warm-up included
    drain: Wait


@dataclasses.dataclass(slots=True)
class Outcome:
    """What one of the two batch phases (throughput, capacity) measured."""

    jobs: int  # asked for
    batch: Batch
    wait: Wait

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.wait.seconds if self.wait.seconds else 0.0


class Bench:
    def __init__(
        self, session: aiohttp.ClientSession, db: asyncpg.Connection, args: argparse.Namespace
    ) -> None:
        self.session = session
        self.db = db
        self.args = args
        self.api_headers = dict(JSON_HEADERS)
        if args.api_key:
            self.api_headers["Authorization"] = f"Bearer {args.api_key}"
        # Fresh names each run: the fake's scripts outlive us and other users share it, so we
        # never reset it, and a name from an earlier run might carry another delay.
        tag = secrets.token_hex(4)
        self.fast_model = f"bg-fast-{tag}"
        self.slow_model = f"bg-slow-{tag}"

    def cpu(self) -> dict[str, float]:
        pids = {"API": self.args.api_pid, "worker": self.args.worker_pid}
        return {name: cpu_seconds(pid) for name, pid in pids.items() if pid is not None}

    def cpu_since(self, before: dict[str, float]) -> dict[str, float]:
        now = self.cpu()
        return {name: now[name] - spent for name, spent in before.items()}

    async def script_models(self) -> None:
        for model, delay in ((self.fast_model, 0.0), (self.slow_model, self.args.slow_delay)):
            url = f"{self.args.upstream}/_fake/script"
            body = orjson.dumps({"model": model, "delay": delay})
            async with self.session.post(url, data=body, headers=JSON_HEADERS) as response:
                if response.status != 200:
                    text = (await response.read())[:1000]
                    raise SetupError(f"POST {url} -> HTTP {response.status}: {text!r}")

    def create(self, model: str) -> Call:
        """A background create; the body is encoded once so the client costs as little as
        possible."""
        url = f"{self.args.api}/v1/responses"
        payload = orjson.dumps({"model": model, "input": "hello", "background": True})

        async def call() -> tuple[int, bytes]:
            async with self.session.post(url, data=payload, headers=self.api_headers) as response:
                return response.status, await response.read()

        return call

    @staticmethod
    def job_id(body: bytes) -> str:
        return str(orjson.loads(body)["id"])

    async def create_many(self, model: str, count: int, concurrency: int) -> Batch:
        call = self.create(model)
        gate = asyncio.Semaphore(concurrency)
        batch = Batch(ids=[], errors=0, seconds=0.0)

        async def one() -> None:
            async with gate:
                try:
                    status, body = await call()
                    if 200 <= status < 300:
                        batch.ids.append(self.job_id(body))
                        return
                    detail = f"HTTP {status}: {body[:1000].decode(errors='replace')}"
                except Exception as exc:  # counted, like loadgen: one refusal must not stop us
                    detail = f"{type(exc).__name__}: {exc}"
                batch.errors += 1
                batch.first_error = batch.first_error or detail

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        batch.seconds = time.perf_counter() - started
        return batch

    async def wait_terminal(self, ids: list[str], since: float) -> Wait:
        """Poll until every id is terminal; times are measured from `since`."""
        deadline = time.perf_counter() + self.args.deadline
        while True:
            # The query's snapshot is taken when it starts, so that is when "all terminal" was
            # true: timing the answer instead would add a round trip to every figure.
            asked = time.perf_counter()
            terminal, failed = await self.db.fetchrow(COUNTS_SQL, ids, TERMINAL)
            if terminal >= len(ids):
                return Wait(seconds=asked - since, terminal=terminal, failed=failed)
            if asked >= deadline:
                return Wait(seconds=None, terminal=terminal, failed=failed)
            await asyncio.sleep(self.args.poll)

    async def explain(self, ids: list[str], wait: Wait) -> None:
        """When a phase went wrong, show where its jobs are and why one failed."""
        if wait.seconds is not None and wait.failed == 0:
            return
        rows = await self.db.fetch(STATUSES_SQL, ids)
        counts = ", ".join(f"{status} {n}" for status, n in rows)
        print(f"  statuses: {counts or 'no rows'}", file=sys.stderr)
        if wait.failed:
            error = await self.db.fetchval(FIRST_FAILURE_SQL, ids)
            print(f"  first failure: {error}", file=sys.stderr)

    async def phase_create(self) -> Drained:
        """Closed-loop creates, then a drain so the next phase starts with an idle worker."""
        args = self.args
        print(f"create: {args.warmup:g}s warm-up + {args.seconds:g}s", flush=True)
        call = self.create(self.fast_model)
        bodies: list[bytes] = []

        async def keep_body() -> tuple[int, bytes]:
            # The warm-up's jobs must be drained too, so every accepted body is kept; the ids
            # are decoded afterwards, outside the measured latency.
            status, body = await call()
            if 200 <= status < 300:
                bodies.append(body)
            return status, body

        result = await run_load(
            "background create",
            keep_body,
            concurrency=args.concurrency,
            seconds=args.seconds,
            warmup=args.warmup,
        )
        if result.first_error:
            print(f"  first error: {result.first_error}", file=sys.stderr)
        print(table([result]), flush=True)
        ids = [self.job_id(b) for b in bodies]
        print(f"  draining {len(ids)} jobs", flush=True)
        wait = await self.wait_terminal(ids, since=time.perf_counter())
        if wait.seconds is None:
            print(f"  drain: {wait.terminal}/{len(ids)} terminal at the deadline", flush=True)
        else:
            print(f"  drain: {wait.seconds:.2f}s, {wait.failed} failed", flush=True)
        await self.explain(ids, wait)
        return Drained(result=result, jobs=len(ids), drain=wait)

    async def phase_batch(self, name: str, model: str, jobs: int, concurrency: int) -> Outcome:
        print(f"{name}: {jobs} jobs on {model}, {concurrency} concurrent creates", flush=True)
        started = time.perf_counter()
        cpu_before = self.cpu()
        batch = await self.create_many(model, jobs, concurrency)
        print(
            f"  enqueue: {batch.seconds:.2f}s ({len(batch.ids) / max(batch.seconds, 1e-9):.0f}"
            " creates/s),"
            f" {batch.errors} errors",
            flush=True,
        )
        if batch.first_error:
            print(f"  first error: {batch.first_error}", file=sys.stderr)
        wait = await self.wait_terminal(batch.ids, since=started)
        outcome = Outcome(jobs=jobs, batch=batch, wait=wait)
        if wait.seconds is None:
            print(f"  {wait.terminal}/{len(batch.ids)} terminal at the deadline", flush=True)
        else:
            print(
                f"  all terminal after {wait.seconds:.2f}s ({outcome.jobs_per_s:.0f} jobs/s),"
                f" {wait.failed} failed",
                flush=True,
            )
        for process, spent in self.cpu_since(cpu_before).items():
            # CPU per job holds steady on a shared machine; one core's worth of it bounds the
            # jobs/s one process could carry.
            per_job = spent * 1000 / max(len(batch.ids), 1)
            print(f"  {process} CPU: {per_job:.2f} ms per job (one core: {1000 / per_job:.0f}/s)")
        await self.explain(batch.ids, wait)
        return outcome


def report(
    create: Drained | None,
    throughput: Outcome | None,
    capacity: Outcome | None,
    slow_delay: float,
) -> None:
    print()

    def check(measured: str, target: str, ok: bool) -> None:
        print(f"{measured}  (target {target})  {'ok' if ok else 'MISSED'}")

    # A job the API refused or the worker failed did not meet any target, however fast.
    if create is not None:
        result = create.result
        errors = f", {result.errors} errors" if result.errors else ""
        check(
            f"background create p99: {result.p99:.1f} ms{errors}",
            f"<= {CREATE_P99_MS_MAX:.0f} ms",
            result.p99 <= CREATE_P99_MS_MAX and result.errors == 0,
        )
    if throughput is not None:
        check(
            f"end-to-end throughput: {throughput.jobs_per_s:.0f} jobs/s{problems(throughput)}",
            f">= {THROUGHPUT_JOBS_PER_S_MIN:.0f} jobs/s",
            throughput.jobs_per_s >= THROUGHPUT_JOBS_PER_S_MIN and not problems(throughput),
        )
    if capacity is not None:
        seconds = capacity.wait.seconds
        shown = f"{seconds:.2f}s" if seconds is not None else "not done by the deadline"
        check(
            f"{capacity.jobs} jobs of {slow_delay:g}s all terminal: {shown}{problems(capacity)}",
            f"<= {CAPACITY_SECONDS_MAX:.0f}s",
            seconds is not None and seconds <= CAPACITY_SECONDS_MAX and not problems(capacity),
        )


def problems(outcome: Outcome) -> str:
    """The reasons a batch phase cannot pass whatever its timing, as a suffix ('' if none)."""
    found = []
    if outcome.batch.errors:
        found.append(f"{outcome.batch.errors} create errors")
    if outcome.wait.seconds is None:
        found.append(f"{len(outcome.batch.ids) - outcome.wait.terminal} unfinished")
    if outcome.wait.failed:
        found.append(f"{outcome.wait.failed} failed")
    return f" ({', '.join(found)})" if found else ""


async def main(args: argparse.Namespace) -> int:
    phases = select(PHASES, args.only)
    # One pooled connection per concurrent create, or the pool, not the API, sets the pace.
    connector = aiohttp.TCPConnector(limit=max(args.concurrency, args.enqueue_concurrency))
    timeout = aiohttp.ClientTimeout(total=120)
    db = await asyncpg.connect(args.database_url)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            bench = Bench(session, db, args)
            try:
                await bench.script_models()
            except (SetupError, aiohttp.ClientError, OSError) as exc:
                print(f"cannot script the fake upstream: {exc}", file=sys.stderr)
                return 1
            create: Drained | None = None
            throughput: Outcome | None = None
            capacity: Outcome | None = None
            if "create" in phases:
                create = await bench.phase_create()
            if "throughput" in phases:
                throughput = await bench.phase_batch(
                    "throughput", bench.fast_model, args.jobs, args.concurrency
                )
            if "capacity" in phases:
                capacity = await bench.phase_batch(
                    "capacity", bench.slow_model, args.slow_jobs, args.enqueue_concurrency
                )
    finally:
        await db.close()
    loop = "uvloop" if uvloop_in_use() else "asyncio"
    print(f"\nconcurrency {args.concurrency}, enqueue concurrency {args.enqueue_concurrency},")
    print(f"models {bench.fast_model!r} / {bench.slow_model!r}, client on {loop}")
    report(create, throughput, capacity, args.slow_delay)
    return 0


if __name__ == "__main__":
    arguments = parse_args(None)
    sys.exit(run(main(arguments)))
