"""Fill a migrated PostgreSQL database with stored chat completions and responses to list.

    python bench/seed_metadata.py --database-url postgresql://postgres@127.0.0.1:5432/listbench \\
        --rows 1000000 --truncate [--projects 1000] [--drop-indexes]

Writes --rows chat completions and --rows responses (with their `response_items` index rows),
spread over the last --days days, then VACUUM ANALYZEs the tables: what bench/list_bench.py
and bench/scale_bench.py measure against. Rows are made in Python and sent with COPY
(asyncpg's copy_records_to_table): each table is cut into --segments contiguous time ranges,
and --jobs processes each generate and COPY one segment at a time, so generating and writing
overlap on every core.

Projects: with --projects 1 every row belongs to `proj_default` (Tether's project when auth is
off). With more, `proj_default` gets --bench-share of the rows (the project the benchmarks
query: a known share, so its size at 1M and 10M rows is known) and the other projects share the
rest with Zipf-like weights 1/k^--zipf: a few big tenants and a long tail of small ones.

Rows look like what Tether stores (the shapes of app/chat/service.py and app/responses/), with
metadata {"user", "job", "env", "tenant"} whose keys are sometimes absent, so that filters have
realistic selectivities (metadata[job]=nightly&metadata[env]=prod matches about 1 % of rows).
Two kinds of job are not spread evenly over time:
- `legacy` is on --legacy-rows rows per table (about --bench-share of them in proj_default),
  all in the oldest --old-share of the time range: a job that stopped, whose rows do not grow
  with the traffic that came after it. A filter on it has matches that are all old, which an
  id-ordered walk finds only after every newer row;
- `agent` marks threads of 50 to 120 turns chained by previous_response_id (what a depth-50
  turn is measured on). Other responses continue shorter threads of their project (see
  Threads), so a quarter of the rows have a parent, as multi-turn traffic does.
The data is a function of --seed, --rows, --projects, --bench-share, --zipf and --segments;
only the time range moves with the clock.

A table that already holds rows is refused unless --truncate empties them first (so a second
run cannot double the data by accident). Ids end a minute before the seed starts, so what the
API creates afterwards still sorts after them.

--drop-indexes drops the secondary indexes of the seeded tables before the load and builds them
again after it (with maintenance_work_mem raised): an index built once from sorted input is
faster to make, and smaller, than one grown row by row (bench/README.md §9 has the times).
--renice N renices the PostgreSQL backends of the seeder's own connections (when the server
runs on this host and we may), so that a seed on a shared box yields to the others' work.
--only-segments A-B --end-us T writes segments A..B of the data set a run with that --end-us
made (each run prints its own), skipping rows that are there: what puts back the rows a purge
benchmark removed.
"""

import argparse
import bisect
import contextlib
import dataclasses
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import asyncpg
import orjson
from loadgen import run

PROJECT_ID = "proj_default"
TABLES = ["chat_completions", "responses"]
# What --truncate empties: the seeded tables and everything that references responses.
TRUNCATED = ["chat_completions", "responses", "response_events", "response_items"]
# Whose secondary indexes --drop-indexes drops and builds again.
INDEXED = ["chat_completions", "responses", "response_items"]
CHAT_COLUMNS = [
    "id",
    "project_id",
    "model",
    "created",
    "metadata",
    "messages",
    "request",
    "completion",
]
# Only the columns we fill: the rest (deleted_at, lease_expires_at, idempotency_key,
# request_hash, service_tier) stay NULL, as they are on most real rows.
RESPONSE_COLUMNS = [
    "id",
    "project_id",
    "status",
    "model",
    "background",
    "created_at",
    "completed_at",
    "previous_response_id",
    "instructions",
    "input",
    "messages",
    "params",
    "output",
    "usage",
    "error",
    "incomplete_details",
    "metadata",
    "attempts",
    "enqueued_at",
]
ITEM_COLUMNS = ["project_id", "item_id", "response_id"]

MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o4-mini",
    "llama-3.1-70b-instruct",
    "qwen2.5-72b-instruct",
    "mistral-large",
]
# Weights as repetition (random.choice on a pool is several times cheaper than random.choices):
# a few popular models and a long tail, like a real deployment.
MODEL_POOL = [m for m, w in zip(MODELS, [8, 5, 4, 3, 2, 2, 1, 1], strict=True) for _ in range(w)]
JOBS = [
    "nightly", "import", "export", "backfill", "digest", "triage", "summarize", "classify",
    "translate", "moderate", "extract", "enrich", "dedupe", "tagging", "search", "rerank",
    "support", "chat", "onboarding", "billing", "invoice", "report", "weekly", "monthly",
    "hourly", "sync", "crawl", "index", "embed", "qa", "eval", "canary", "smoke", "regression",
    "feedback", "survey", "email", "sms", "notify", "alert", "audit", "compliance", "legal",
    "sales", "marketing", "campaign", "research", "draft", "review", "publish",
]  # fmt: skip
ENV_POOL = ["prod"] * 12 + ["staging"] * 5 + ["dev"] * 3
USERS = [f"u{n}" for n in range(10_000)]
TENANTS = [f"t{n}" for n in range(500)]
# (present-with-probability) per key: absent keys make `@>` tests and key counts vary.
P_USER, P_JOB, P_ENV, P_TENANT = 0.90, 0.95, 0.95, 0.80

BACKGROUND_SHARE = 0.20
# Statuses by mode: cancel only exists for background jobs; failed is the rarer filter (~4 %).
FOREGROUND_STATUSES = ["completed"] * 92 + ["failed"] * 4 + ["incomplete"] * 4
BACKGROUND_STATUSES = ["completed"] * 85 + ["failed"] * 5 + ["incomplete"] * 3 + ["cancelled"] * 7
TEMPERATURES: list[float | None] = [None, None, 0.0, 0.2, 0.7, 1.0]

WORDS = (
    "the a of to and in is it that for on with as this be are was at by from or an not you we "
    "can data model answer request report user order invoice summary status result list page "
    "table value error please thanks check update review daily nightly batch import export job "
    "run queue worker latency cache index query metric chart trend customer account payment "
    "ticket issue support question short long first last next previous total average number"
).split()


def texts(rng: random.Random, count: int, low: int, high: int) -> list[str]:
    """`count` pseudo-sentences of low..high words: a pool rows draw from, so each row costs a
    choice instead of a string build while rows still differ in length and content."""
    out = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
        out.append(" ".join(words).capitalize() + ".")
    return out


# Old-only and agent jobs (see the docstring): `legacy` on --legacy-rows rows in the oldest
# --old-share of the time range, `agent` on the turns of long threads.
LEGACY_JOB = "legacy"
AGENT_JOB = "agent"


def hex_body(rng: random.Random, micros: int) -> str:
    # app.kit.ids.new_id's body: 14 hex digits of microseconds, then 34 random hex digits.
    return f"{micros:014x}{rng.getrandbits(136):034x}"


@dataclasses.dataclass(frozen=True, slots=True)
class Shape:
    """What every process must agree on to make its segment of the same data set."""

    rows: int
    seed: int
    end_us: int
    days: float
    projects: int
    bench_share: float
    zipf: float
    old_share: float
    legacy_rows: int
    segments: int

    @property
    def start_us(self) -> int:
        return self.end_us - int(self.days * 86_400_000_000)

    @property
    def step_us(self) -> int:
        # Ids carry microseconds, so at most one row per microsecond keeps them increasing.
        return max(1, (self.end_us - self.start_us) // max(1, self.rows))

    def segment(self, index: int) -> range:
        size = -(-self.rows // self.segments)
        return range(index * size, min(self.rows, (index + 1) * size))


class Projects:
    """The project of each row: `proj_default` with its fixed share, the others by Zipf weight."""

    def __init__(self, shape: Shape) -> None:
        rng = random.Random(f"{shape.seed}:projects")
        # Ids the way app/keys/service.py makes them (new_id("proj")), a day before the data.
        made_us = shape.start_us - 86_400_000_000
        self.ids = [PROJECT_ID] + [
            f"proj_{hex_body(rng, made_us + k)}" for k in range(1, shape.projects)
        ]
        if shape.projects == 1:
            weights = [1.0]
        else:
            zipf = [1 / k**shape.zipf for k in range(1, shape.projects)]
            total = sum(zipf)
            weights = [shape.bench_share] + [(1 - shape.bench_share) * w / total for w in zipf]
        cumulative, running = [], 0.0
        for w in weights:
            running += w
            cumulative.append(running)
        self.cumulative = cumulative

    def pick(self, rng: random.Random) -> str:
        at = bisect.bisect(self.cumulative, rng.random() * self.cumulative[-1])
        return self.ids[min(at, len(self.ids) - 1)]


@dataclasses.dataclass(slots=True)
class Thread:
    head: str
    turns: int
    length: int  # it ends after this many turns


class Threads:
    """previous_response_id chains, per project, within one segment (a parent is always written
    before its child by the same process, so the foreign key holds at every COPY).

    A response continues one of its project's open threads with P_CONTINUE (a user's next
    message minutes later, other traffic in between), else starts a new one, which stays open
    for more turns with P_OPEN (most requests are one-shot). Threads last 2 to 12 turns; with
    P_AGENT a row is a turn of its project's agent thread instead, which runs 50 to 120 turns.
    """

    P_CONTINUE = 0.25
    P_OPEN = 0.30
    P_AGENT = 0.02
    OPEN_PER_PROJECT = 8

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.open: dict[str, list[Thread]] = {}
        self.agents: dict[str, Thread] = {}

    def next(self, project: str, response_id: str) -> tuple[str | None, bool]:
        """The parent of this new response (None: a new thread), and whether it is an agent's."""
        rng = self.rng
        if rng.random() < self.P_AGENT:
            agent = self.agents.get(project)
            if agent is None or agent.turns >= agent.length:
                self.agents[project] = Thread(response_id, 1, rng.randint(50, 120))
                return None, True
            parent, agent.head, agent.turns = agent.head, response_id, agent.turns + 1
            return parent, True
        threads = self.open.setdefault(project, [])
        if threads and rng.random() < self.P_CONTINUE:
            thread = threads[rng.randrange(len(threads))]
            parent, thread.head, thread.turns = thread.head, response_id, thread.turns + 1
            if thread.turns >= thread.length:
                threads.remove(thread)
            return parent, False
        if rng.random() < self.P_OPEN:
            threads.append(Thread(response_id, 1, rng.randint(2, 12)))
            if len(threads) > self.OPEN_PER_PROJECT:
                del threads[0]  # the user went away
        return None, False


class Rows:
    """Deterministic rows of one segment of one table; `make(n)` is row n (n rising)."""

    def __init__(self, table: str, shape: Shape, segment: int, projects: Projects) -> None:
        self.shape = shape
        self.rng = random.Random(f"{shape.seed}:{table}:{segment}")
        pool_rng = random.Random(f"{shape.seed}:texts")
        self.prompts = texts(pool_rng, 1000, 4, 30)
        self.answers = texts(pool_rng, 1000, 15, 90)
        self.systems = texts(pool_rng, 20, 5, 15)
        self.projects = projects
        self.threads = Threads(self.rng)
        self.old_rows = int(shape.rows * shape.old_share)
        # Of the rows with a job (P_JOB): the chance one of the old ones is `legacy`.
        self.p_legacy = min(1.0, shape.legacy_rows / max(1, self.old_rows * P_JOB))

    def _micros(self, n: int) -> int:
        # Jitter within the row's own slot: ids and timestamps stay increasing with n.
        step = self.shape.step_us
        return self.shape.start_us + n * step + self.rng.randrange(step)

    def _hex(self, micros: int) -> str:
        return hex_body(self.rng, micros)

    def _metadata(self, n: int, agent: bool = False) -> str:
        rng = self.rng
        meta: dict[str, str] = {}
        if rng.random() < P_USER:
            meta["user"] = rng.choice(USERS)
        if agent:
            meta["job"] = AGENT_JOB
        elif rng.random() < P_JOB:
            old = n < self.old_rows and rng.random() < self.p_legacy
            meta["job"] = LEGACY_JOB if old else rng.choice(JOBS)
        if rng.random() < P_ENV:
            meta["env"] = rng.choice(ENV_POOL)
        if rng.random() < P_TENANT:
            meta["tenant"] = rng.choice(TENANTS)
        return dumps(meta)

    def chat_completion(self, n: int) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
        rng = self.rng
        micros = self._micros(n)
        cid = f"chatcmpl-{self._hex(micros)}"
        created = micros // 1_000_000
        model = rng.choice(MODEL_POOL)
        prompt, answer = rng.choice(self.prompts), rng.choice(self.answers)
        messages: list[dict[str, Any]] = []
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": rng.choice(self.systems)})
        messages.append({"role": "user", "content": prompt})
        request: dict[str, Any] = {"temperature": rng.choice(TEMPERATURES[2:])}
        if rng.random() < 0.2:
            request["max_completion_tokens"] = 512
        prompt_tokens, completion_tokens = len(prompt) // 4 + 8, len(answer) // 4
        completion = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": None,
        }
        row = (
            cid,
            self.projects.pick(rng),
            model,
            created,
            self._metadata(n),
            dumps([{"id": f"{cid}-{i}", **m} for i, m in enumerate(messages)]),
            dumps(request),
            dumps(completion),
        )
        return row, []

    def response(self, n: int) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
        """A response row and its response_items rows (its input and output items' ids)."""
        rng = self.rng
        micros = self._micros(n)
        response_id = f"resp_{self._hex(micros)}"
        project = self.projects.pick(rng)
        parent, agent = self.threads.next(project, response_id)
        created_at = micros // 1_000_000
        background = rng.random() < BACKGROUND_SHARE
        status = rng.choice(BACKGROUND_STATUSES if background else FOREGROUND_STATUSES)
        model = rng.choice(MODEL_POOL)
        prompt, answer = rng.choice(self.prompts), rng.choice(self.answers)
        instructions = rng.choice(self.systems) if rng.random() < 0.2 else None
        temperature = rng.choice(TEMPERATURES)
        params: dict[str, Any] = {
            "store": True,
            "max_output_tokens": 256 if status == "incomplete" else None,
            "max_tool_calls": None,
            "parallel_tool_calls": True,
            "temperature": temperature,
            "top_p": None,
            "top_logprobs": None,
            "text": {"format": {"type": "text"}},
            "reasoning": {"effort": None, "summary": None},
            "tool_choice": "auto",
            "tools": [],
            "truncation": "disabled",
            "user": None,
            "safety_identifier": None,
            "prompt_cache_key": None,
            "service_tier": None,
        }
        user_item = {
            "id": f"msg_{self._hex(micros)}",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": prompt}],
            "status": "completed",
        }
        items = [(project, user_item["id"], response_id)]
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        output: list[dict[str, Any]] = []
        usage: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        incomplete: dict[str, Any] | None = None
        completed_at: int | None = None
        if status in ("completed", "incomplete"):
            text = answer if status == "completed" else answer[: len(answer) // 2]
            output_id = f"msg_{self._hex(micros + 1)}"
            output.append(
                {
                    "id": output_id,
                    "type": "message",
                    "status": status,
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                    ],
                }
            )
            items.append((project, output_id, response_id))
            messages.append({"role": "assistant", "content": text})
            input_tokens, output_tokens = len(prompt) // 4 + 8, len(text) // 4
            usage = {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            }
            completed_at = created_at + rng.randint(1, 30)
            if status == "incomplete":
                incomplete = {"reason": "max_output_tokens"}
        elif status == "failed":
            error = {"code": "server_error", "message": "The model server answered HTTP 502."}
        row = (
            response_id,
            project,
            status,
            model,
            background,
            created_at,
            completed_at,
            parent,
            None if instructions is None else dumps(instructions),
            dumps([user_item]),
            dumps(messages),
            dumps(params),
            dumps(output),
            None if usage is None else dumps(usage),
            None if error is None else dumps(error),
            None if incomplete is None else dumps(incomplete),
            self._metadata(n, agent),
            1 if background else 0,  # a background job was claimed once
            micros / 1_000_000 if background else None,
        )
        return row, items


def dumps(value: Any) -> str:
    # asyncpg's json and jsonb codecs take text.
    return orjson.dumps(value).decode()


async def connect(database_url: str, renice: int | None) -> asyncpg.Connection:
    conn = await asyncpg.connect(database_url, server_settings={"application_name": "seed"})
    if renice is not None:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        # Only works when the server runs on this host and we may renice its processes.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, renice)
    return conn


async def write(
    conn: asyncpg.Connection, table: str, records: list[Any], columns: Sequence[str], refill: bool
) -> None:
    if not refill:
        await conn.copy_records_to_table(table, records=records, columns=columns)
        return
    # Refilling what a purge removed: rows it kept are there already and stay as they are.
    async with conn.transaction():
        await conn.execute(
            f"CREATE TEMP TABLE refill (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        await conn.copy_records_to_table("refill", records=records, columns=columns)
        names = ", ".join(columns)
        await conn.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM refill ON CONFLICT DO NOTHING"
        )


async def seed_segment(
    database_url: str,
    table: str,
    shape: Shape,
    segment: int,
    batch: int,
    renice: int | None,
    refill: bool,
) -> tuple[int, float, float]:
    """Write one segment of one table in COPY batches: (rows, python seconds, copy seconds)."""
    maker = Rows(table, shape, segment, Projects(shape))
    make: Callable[[int], tuple[tuple[Any, ...], list[tuple[Any, ...]]]]
    columns: Sequence[str]
    if table == "chat_completions":
        make, columns = maker.chat_completion, CHAT_COLUMNS
    else:
        make, columns = maker.response, RESPONSE_COLUMNS
    conn = await connect(database_url, renice)
    rows = shape.segment(segment)
    generating = copying = 0.0
    try:
        # Each batch commits on its own: nothing waits on a flush of the whole load, and an
        # interrupted run leaves whole batches behind (rerun with --truncate).
        await conn.execute("SET synchronous_commit = off")
        for start in range(rows.start, rows.stop, batch):
            t0 = time.perf_counter()
            records, items = [], []
            for n in range(start, min(rows.stop, start + batch)):
                row, row_items = make(n)
                records.append(row)
                items += row_items
            t1 = time.perf_counter()
            await write(conn, table, records, columns, refill)
            if items:  # after their responses: the foreign key checks them
                await write(conn, "response_items", items, ITEM_COLUMNS, refill)
            t2 = time.perf_counter()
            generating, copying = generating + t1 - t0, copying + t2 - t1
    finally:
        await conn.close()
    return len(rows), generating, copying


def seed_segment_process(
    database_url: str,
    table: str,
    shape: Shape,
    segment: int,
    batch: int,
    renice: int | None,
    refill: bool,
) -> tuple[int, float, float]:
    """seed_segment in a worker process: segments are generated on every core at once."""
    return run(seed_segment(database_url, table, shape, segment, batch, renice, refill))


async def prepare(database_url: str, truncate: bool, refill: bool, projects: Projects) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        if truncate:
            await conn.execute(f"TRUNCATE {', '.join(TRUNCATED)}")
            print(f"truncated {', '.join(TRUNCATED)}", flush=True)
        elif not refill:
            for table in TABLES:
                if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
                    raise SystemExit(f"{table} already holds rows: pass --truncate to replace them")
        # The tenants, as `tether keys create --project` would have made them.
        now = int(time.time())
        await conn.executemany(
            "INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            [
                (pid, "default" if pid == PROJECT_ID else f"scale-{k:04d}", now)
                for k, pid in enumerate(projects.ids)
            ],
        )
    finally:
        await conn.close()


async def drop_indexes(database_url: str) -> list[tuple[str, str]]:
    """Drop the seeded tables' secondary indexes (not those of constraints); their names and
    definitions, to build them again."""
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetch(
            """
            SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            WHERE t.relname = ANY($1::text[])
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
            ORDER BY t.relname, i.relname
            """,
            INDEXED,
        )
        for row in found:
            print(f"dropping {row['name']}: {row['definition']}", flush=True)
            await conn.execute(f'DROP INDEX "{row["name"]}"')
        return [(row["name"], row["definition"]) for row in found]
    finally:
        await conn.close()


async def build_indexes(
    database_url: str, indexes: list[tuple[str, str]], renice: int | None
) -> None:
    conn = await connect(database_url, renice)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        for name, definition in indexes:
            t0 = time.perf_counter()
            await conn.execute(definition)
            print(f"built {name} in {time.perf_counter() - t0:.1f}s", flush=True)
    finally:
        await conn.close()


async def analyze(database_url: str, renice: int | None) -> None:
    conn = await connect(database_url, renice)
    try:
        for table in [*TABLES, "response_items"]:
            t0 = time.perf_counter()
            # VACUUM too: it sets the visibility map, which index-only scans need, and it is
            # what autovacuum would do to a real table of this age anyway.
            await conn.execute(f"VACUUM (ANALYZE) {table}")
            count = await conn.fetchval(f"SELECT count(*) FROM {table}")
            size = await conn.fetchval(
                "SELECT pg_size_pretty(pg_total_relation_size($1::regclass))", table
            )
            print(
                f"vacuum analyze {table}: {time.perf_counter() - t0:.1f}s; {count:,} rows, {size}",
                flush=True,
            )
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(f"database size {size}")
    finally:
        await conn.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/listbench",
        help="a database migrated with `alembic upgrade head`",
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per table")
    parser.add_argument("--batch", type=int, default=20_000, help="rows per COPY")
    parser.add_argument("--days", type=float, default=30.0, help="time range the rows span")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same rows")
    parser.add_argument("--projects", type=int, default=1, help="tenants the rows belong to")
    parser.add_argument(
        "--bench-share",
        type=float,
        default=0.10,
        help="share of the rows in proj_default when --projects > 1",
    )
    parser.add_argument("--zipf", type=float, default=1.0, help="exponent of the other projects")
    parser.add_argument(
        "--old-share", type=float, default=0.10, help="oldest share of rows that has `legacy`"
    )
    parser.add_argument("--legacy-rows", type=int, default=2000, help="rows of the old job")
    parser.add_argument(
        "--segments", type=int, default=None, help="time ranges per table (default rows/250k)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes generating and copying")
    parser.add_argument(
        "--drop-indexes", action="store_true", help="drop secondary indexes, build them after"
    )
    parser.add_argument("--renice", type=int, default=None, help="renice our server backends")
    parser.add_argument(
        "--end-us", type=int, default=None, help="the end of the time range (printed by a run)"
    )
    parser.add_argument(
        "--only-segments",
        default=None,
        metavar="FIRST-LAST",
        help="write only these segments, skipping rows already there (with the --end-us of the"
        " first run: refills what a purge removed)",
    )
    parser.add_argument(
        "--truncate", action="store_true", help="empty the seeded tables (and response_*) first"
    )
    args = parser.parse_args(argv)
    # Tether's own DATABASE_URL may name SQLAlchemy's driver; asyncpg wants the plain scheme.
    args.database_url = args.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    if args.segments is None:
        args.segments = max(1, args.rows // 250_000)
    if args.only_segments is not None:
        first, _, last = args.only_segments.partition("-")
        args.only_segments = range(int(first), int(last or first) + 1)
        if args.end_us is None or args.truncate:
            parser.error("--only-segments needs --end-us, and no --truncate")
    if not 0 < args.bench_share <= 1:
        parser.error("--bench-share must be in (0, 1]")
    return args


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    shape = Shape(
        rows=args.rows,
        seed=args.seed,
        end_us=args.end_us or time.time_ns() // 1000 - 60_000_000,
        days=args.days,
        projects=args.projects,
        bench_share=args.bench_share,
        zipf=args.zipf,
        old_share=args.old_share,
        legacy_rows=args.legacy_rows,
        segments=args.segments,
    )
    refill = args.only_segments is not None
    segments = args.only_segments or range(args.segments)
    run(prepare(args.database_url, args.truncate, refill, Projects(shape)))
    dropped = run(drop_indexes(args.database_url)) if args.drop_indexes else []
    print(
        f"seeding {args.rows:,} rows into each of {', '.join(TABLES)} across {args.projects}"
        f" projects: {args.segments} segments each, {args.jobs} processes;"
        f" --end-us {shape.end_us} makes the same rows again",
        flush=True,
    )
    try:
        loaded = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            # Tables interleaved, so both grow together and a crash leaves both half-full.
            tasks = [(table, segment) for segment in segments for table in TABLES]
            futures = [
                pool.submit(
                    seed_segment_process,
                    args.database_url,
                    table,
                    shape,
                    segment,
                    args.batch,
                    args.renice,
                    refill,
                )
                for table, segment in tasks
            ]
            done = generating = copying = 0.0
            for (table, segment), future in zip(tasks, futures, strict=True):
                rows, gen, copy = future.result()
                done, generating, copying = done + rows, generating + gen, copying + copy
                elapsed = time.perf_counter() - loaded
                print(
                    f"  {table} segment {segment}: {rows:,} rows; total {done:,.0f} rows,"
                    f" {done / elapsed:,.0f} rows/s (python {generating:.0f}s,"
                    f" copy {copying:.0f}s, over {args.jobs} processes)",
                    flush=True,
                )
        print(f"loaded in {time.perf_counter() - loaded:.1f}s", flush=True)
    finally:
        if dropped:
            t0 = time.perf_counter()
            run(build_indexes(args.database_url, dropped, args.renice))
            print(f"indexes built in {time.perf_counter() - t0:.1f}s", flush=True)
    run(analyze(args.database_url, args.renice))
    print(f"total {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args(None)))
