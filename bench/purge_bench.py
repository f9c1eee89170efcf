"""A retention purge of the oldest rows of a big database, while creates run.

    python bench/purge_bench.py --api http://127.0.0.1:8731 --upstream http://127.0.0.1:9731 \\
        --database-url postgresql://postgres@127.0.0.1:5432/scale10m --rows 1000000

Starts nothing but the purge (bench/README.md §9): --api must serve --database-url with an
upstream, and RETENTION_DAYS=0 so that its own schedule purges nothing meanwhile.

1. The cutoff: the created_at of the --rows-th oldest response; `tether purge --older-than`
   is given the days that leaves it at. What that removes (responses, and the chat
   completions of the same age) is counted first.
2. Creates alone: closed-loop `POST /v1/responses` (store=true) at --concurrency for --before
   seconds, after a warm-up: p50 and p99.
3. The same creates while `tether purge --older-than DAYS` runs in a process of its own, in
   windows of --window seconds until it ends: p50 and p99 over all of them. Meanwhile every
   --sample seconds pg_stat_activity is read: the longest transaction of the purge so far (how
   long it can hold its row locks), and any backend of this database waiting on a lock.
4. What the purge left: dead tuples, and the tables' sizes (space comes back only once VACUUM
   ran: autovacuum, or the purge's own).
"""

import argparse
import asyncio
import dataclasses
import os
import sys
import time
from typing import Any

import aiohttp
import asyncpg
from loadgen import Result, run, run_load, table
from responses_bench import Bench as ResponsesBench

TABLES = ["responses", "chat_completions", "response_items"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8731", help="Tether base URL")
    parser.add_argument("--upstream", default="http://127.0.0.1:9731", help="(unused: the API's)")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/scale10m")
    parser.add_argument("--rows", type=int, default=1_000_000, help="oldest responses to purge")
    parser.add_argument("--model", default="bench")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--before", type=float, default=20.0, help="seconds of creates alone")
    parser.add_argument("--window", type=float, default=5.0, help="seconds per load window")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--sample", type=float, default=0.2, help="pg_stat_activity interval")
    parser.add_argument("--dry-run", action="store_true", help="count, do not purge")
    args = parser.parse_args(argv)
    args.api = args.api.rstrip("/")
    args.upstream = args.upstream.rstrip("/").removesuffix("/v1")
    args.database_url = args.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return args


async def cutoff_days(db: asyncpg.Connection, rows: int) -> tuple[float, int]:
    """The --older-than that purges the `rows` oldest responses, and their cutoff."""
    created = await db.fetchval(
        "SELECT created_at FROM responses ORDER BY created_at OFFSET $1 LIMIT 1", rows
    )
    if created is None:
        raise SystemExit(f"fewer than {rows} responses: seed first")
    # A second of margin: the purge computes its own cutoff a little later.
    return (time.time() - created + 1) / 86_400, int(created)


async def counts(db: asyncpg.Connection, cutoff: int) -> dict[str, int]:
    return {
        "responses": await db.fetchval(
            "SELECT count(*) FROM responses WHERE created_at < $1", cutoff
        ),
        "chat_completions": await db.fetchval(
            "SELECT count(*) FROM chat_completions WHERE created < $1", cutoff
        ),
    }


async def table_state(db: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    found = {}
    for name in TABLES:
        row = await db.fetchrow(
            "SELECT n_live_tup, n_dead_tup, pg_total_relation_size(relid) AS bytes"
            " FROM pg_stat_user_tables WHERE relname = $1",
            name,
        )
        found[name] = dict(row)
    return found


@dataclasses.dataclass(slots=True)
class Watch:
    longest_purge_xact: float = 0.0  # seconds
    lock_waits: int = 0  # samples that found a backend waiting on a lock
    longest_lock_wait: float = 0.0
    samples: int = 0


async def watch(url: str, interval: float, watched: Watch, stop: asyncio.Event) -> None:
    db = await asyncpg.connect(url)
    try:
        while not stop.is_set():
            rows = await db.fetch(
                """
                SELECT query, wait_event_type,
                       extract(epoch FROM now() - xact_start) AS xact,
                       extract(epoch FROM now() - query_start) AS running
                FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND state <> 'idle'
                """
            )
            watched.samples += 1
            for row in rows:
                # The purge's statements: retention deletes and tombstones (app/ops/).
                if row["query"].lstrip().upper().startswith(("DELETE", "UPDATE RESPONSES")):
                    watched.longest_purge_xact = max(
                        watched.longest_purge_xact, float(row["xact"] or 0)
                    )
                if row["wait_event_type"] == "Lock":
                    watched.lock_waits += 1
                    watched.longest_lock_wait = max(
                        watched.longest_lock_wait, float(row["running"] or 0)
                    )
            await asyncio.sleep(interval)
    finally:
        await db.close()


def merged(name: str, parts: list[Result]) -> Result:
    latencies = sorted(ms for part in parts for ms in part.latencies_ms)
    return Result(
        name=name,
        requests=sum(p.requests for p in parts),
        errors=sum(p.errors for p in parts),
        seconds=sum(p.seconds for p in parts),
        latencies_ms=latencies,
        first_error=next((p.first_error for p in parts if p.first_error), None),
    )


async def main(args: argparse.Namespace) -> int:
    db = await asyncpg.connect(args.database_url)
    try:
        days, cutoff = await cutoff_days(db, args.rows)
        expired = await counts(db, cutoff)
        print(f"cutoff created_at < {cutoff} (--older-than {days:.4f}): {expired}", flush=True)
        before_state = await table_state(db)
        print(f"tables before: {before_state}", flush=True)
        if args.dry_run:
            return 0
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            create = ResponsesBench(session, args).create(input="hello there")
            load = {"concurrency": args.concurrency, "warmup": 0.0}
            await run_load("warm-up", create, seconds=args.warmup, **load)
            alone = await run_load("creates alone", create, seconds=args.before, **load)
            print(table([alone]), flush=True)

            env = {**os.environ, "DATABASE_URL": args.database_url, "LOG_LEVEL": "info"}
            command = [sys.executable, "-m", "app.cli", "purge", "--older-than", f"{days:.6f}"]
            started = time.perf_counter()
            purge = await asyncio.create_subprocess_exec(*command, env=env)
            stop, watched = asyncio.Event(), Watch()
            watcher = asyncio.create_task(watch(args.database_url, args.sample, watched, stop))
            windows: list[Result] = []
            while purge.returncode is None:
                part = await run_load("during", create, seconds=args.window, **load)
                windows.append(part)
                print(
                    f"  {time.perf_counter() - started:6.0f}s: p50 {part.p50:.1f} ms,"
                    f" p99 {part.p99:.1f} ms, {part.rps:.0f} req/s, longest purge"
                    f" transaction so far {watched.longest_purge_xact:.2f}s",
                    flush=True,
                )
                with_timeout = asyncio.wait_for(purge.wait(), timeout=0.01)
                try:
                    await with_timeout
                except TimeoutError:
                    pass
            took = time.perf_counter() - started
            stop.set()
            await watcher
            during = merged("creates during purge", windows)
            after = await run_load("creates after", create, seconds=args.before, **load)
        after_state = await table_state(db)
        left = await counts(db, cutoff)
    finally:
        await db.close()
    print()
    print(table([alone, during, after]))
    print(
        f"\npurge: exit {purge.returncode}, {took:.1f}s for {expired['responses']:,} responses"
        f" + {expired['chat_completions']:,} chat completions"
        f" ({(expired['responses'] + expired['chat_completions']) / took:,.0f} rows/s);"
        f" left older than the cutoff: {left}"
    )
    print(
        f"longest purge transaction {watched.longest_purge_xact:.2f}s; samples with a lock wait"
        f" {watched.lock_waits} of {watched.samples}, longest {watched.longest_lock_wait:.2f}s"
    )
    print(f"create p99 during / alone: {during.p99 / alone.p99:.2f}x")
    for name in TABLES:
        b, a = before_state[name], after_state[name]
        print(
            f"{name}: live {b['n_live_tup']:,} -> {a['n_live_tup']:,}, dead {b['n_dead_tup']:,}"
            f" -> {a['n_dead_tup']:,}, size {b['bytes'] / 2**30:.2f} -> {a['bytes'] / 2**30:.2f}"
            " GiB"
        )
    return 0 if purge.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(run(main(parse_args(None))))
