"""Fill a migrated PostgreSQL database with stored chat completions and responses to list.

    python bench/seed_metadata.py --database-url postgresql://postgres@127.0.0.1:5432/listbench \\
        --rows 1000000 --truncate

Writes --rows chat completions and --rows responses for project `proj_default`, spread over the
last --days days, then ANALYZEs both tables: what bench/list_bench.py measures the list endpoints
against. Rows are made in Python and sent with COPY (asyncpg's copy_records_to_table), one
process per table so that one table's rows are generated while the other's are written.

Rows look like what Tether stores (the shapes of app/chat/service.py and app/responses/), with
metadata {"user", "job", "env", "tenant"} whose keys are sometimes absent, so that filters have
realistic selectivities (metadata[job]=nightly&metadata[env]=prod matches about 1 % of rows).
The data is a function of --seed and --rows; only the time range moves with the clock.

A table that already holds rows is refused unless --truncate empties both first (so a second run
cannot double the data by accident). Ids end a minute before the seed starts, so what the API
creates afterwards still sorts after them.
"""

import argparse
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
# Only the columns we fill: the rest (previous_response_id, deleted_at, lease_expires_at,
# idempotency_key, request_hash) stay NULL, as they are on most real rows.
RESPONSE_COLUMNS = [
    "id",
    "project_id",
    "status",
    "model",
    "background",
    "created_at",
    "completed_at",
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


class Rows:
    """Deterministic rows for one table; `batch(start, count)` is rows start..start+count-1."""

    def __init__(self, table: str, rows: int, seed: int, end_us: int, days: float) -> None:
        self.rng = random.Random(f"{seed}:{table}")
        pool_rng = random.Random(f"{seed}:texts")
        self.prompts = texts(pool_rng, 1000, 4, 30)
        self.answers = texts(pool_rng, 1000, 15, 90)
        self.systems = texts(pool_rng, 20, 5, 15)
        self.start_us = end_us - int(days * 86_400_000_000)
        # Ids carry microseconds, so at most one row per microsecond keeps them increasing.
        self.step_us = max(1, (end_us - self.start_us) // max(1, rows))

    def _micros(self, n: int) -> int:
        # Jitter within the row's own slot: ids and timestamps stay increasing with n.
        return self.start_us + n * self.step_us + self.rng.randrange(self.step_us)

    def _hex(self, micros: int) -> str:
        # app.kit.ids.new_id's body: 14 hex digits of microseconds, then 34 random hex digits.
        return f"{micros:014x}{self.rng.getrandbits(136):034x}"

    def _metadata(self) -> str:
        rng = self.rng
        meta: dict[str, str] = {}
        if rng.random() < P_USER:
            meta["user"] = rng.choice(USERS)
        if rng.random() < P_JOB:
            meta["job"] = rng.choice(JOBS)
        if rng.random() < P_ENV:
            meta["env"] = rng.choice(ENV_POOL)
        if rng.random() < P_TENANT:
            meta["tenant"] = rng.choice(TENANTS)
        return dumps(meta)

    def chat_completion(self, n: int) -> tuple[Any, ...]:
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
        return (
            cid,
            PROJECT_ID,
            model,
            created,
            self._metadata(),
            dumps([{"id": f"{cid}-{i}", **m} for i, m in enumerate(messages)]),
            dumps(request),
            dumps(completion),
        )

    def response(self, n: int) -> tuple[Any, ...]:
        rng = self.rng
        micros = self._micros(n)
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
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        output: list[dict[str, Any]] = []
        usage: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        incomplete: dict[str, Any] | None = None
        completed_at: int | None = None
        if status in ("completed", "incomplete"):
            text = answer if status == "completed" else answer[: len(answer) // 2]
            output.append(
                {
                    "id": f"msg_{self._hex(micros + 1)}",
                    "type": "message",
                    "status": status,
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                    ],
                }
            )
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
        return (
            f"resp_{self._hex(micros)}",
            PROJECT_ID,
            status,
            model,
            background,
            created_at,
            completed_at,
            None if instructions is None else dumps(instructions),
            dumps([user_item]),
            dumps(messages),
            dumps(params),
            dumps(output),
            None if usage is None else dumps(usage),
            None if error is None else dumps(error),
            None if incomplete is None else dumps(incomplete),
            self._metadata(),
            1 if background else 0,  # a background job was claimed once
            micros / 1_000_000 if background else None,
        )


def dumps(value: Any) -> str:
    # asyncpg's json and jsonb codecs take text.
    return orjson.dumps(value).decode()


async def seed_table(
    database_url: str, table: str, rows: int, batch: int, seed: int, end_us: int, days: float
) -> float:
    """Write one table's rows in COPY batches; returns the seconds it took."""
    started = time.perf_counter()
    maker = Rows(table, rows, seed, end_us, days)
    make: Callable[[int], tuple[Any, ...]]
    columns: Sequence[str]
    if table == "chat_completions":
        make, columns = maker.chat_completion, CHAT_COLUMNS
    else:
        make, columns = maker.response, RESPONSE_COLUMNS
    conn = await asyncpg.connect(database_url)
    try:
        # Each batch commits on its own: nothing waits on a flush of the whole load, and an
        # interrupted run leaves whole batches behind (rerun with --truncate).
        await conn.execute("SET synchronous_commit = off")
        generating = copying = 0.0
        for start in range(0, rows, batch):
            t0 = time.perf_counter()
            records = [make(n) for n in range(start, min(rows, start + batch))]
            t1 = time.perf_counter()
            await conn.copy_records_to_table(table, records=records, columns=columns)
            t2 = time.perf_counter()
            generating, copying = generating + t1 - t0, copying + t2 - t1
            done = start + len(records)
            rate = done / (t2 - started)
            print(
                f"  {table}: {done:,}/{rows:,} rows, {rate:,.0f} rows/s "
                f"(python {generating:.1f}s, copy {copying:.1f}s)",
                flush=True,
            )
    finally:
        await conn.close()
    return time.perf_counter() - started


def seed_table_process(
    database_url: str, table: str, rows: int, batch: int, seed: int, end_us: int, days: float
) -> float:
    """seed_table in a process of its own: the two tables' Python work runs on two cores."""
    return run(seed_table(database_url, table, rows, batch, seed, end_us, days))


async def prepare(database_url: str, truncate: bool) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        if truncate:
            # response_events references responses: it must go in the same statement.
            await conn.execute("TRUNCATE chat_completions, responses, response_events")
            print("truncated chat_completions, responses, response_events", flush=True)
            return
        for table in TABLES:
            if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
                raise SystemExit(f"{table} already holds rows: pass --truncate to replace them")
    finally:
        await conn.close()


async def analyze(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for table in TABLES:
            t0 = time.perf_counter()
            # VACUUM too: it sets the visibility map, which index-only scans need, and it is
            # what autovacuum would do to a real table of this age anyway.
            await conn.execute(f"VACUUM (ANALYZE) {table}")
            count = await conn.fetchval(f"SELECT count(*) FROM {table}")
            size = await conn.fetchval(
                "SELECT pg_size_pretty(pg_total_relation_size($1::regclass))", table
            )
            print(
                f"vacuum analyze {table}: {time.perf_counter() - t0:.1f}s; {count:,} rows, {size}"
            )
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
    parser.add_argument("--batch", type=int, default=50_000, help="rows per COPY")
    parser.add_argument("--days", type=float, default=30.0, help="time range the rows span")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same rows")
    parser.add_argument(
        "--truncate", action="store_true", help="empty both tables (and response_events) first"
    )
    args = parser.parse_args(argv)
    # Tether's own DATABASE_URL may name SQLAlchemy's driver; asyncpg wants the plain scheme.
    args.database_url = args.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return args


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    run(prepare(args.database_url, args.truncate))
    end_us = time.time_ns() // 1000 - 60_000_000
    print(f"seeding {args.rows:,} rows into each of {', '.join(TABLES)}", flush=True)
    with ProcessPoolExecutor(max_workers=len(TABLES)) as pool:
        futures = {
            table: pool.submit(
                seed_table_process,
                args.database_url,
                table,
                args.rows,
                args.batch,
                args.seed,
                end_us,
                args.days,
            )
            for table in TABLES
        }
        took = {table: future.result() for table, future in futures.items()}
    for table, seconds in took.items():
        print(f"{table}: {args.rows:,} rows in {seconds:.1f}s")
    run(analyze(args.database_url))
    print(f"total {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args(None)))
