"""Tether on a big database: lists, deep pages, retrieve and a depth-50 turn, over HTTP and in SQL.

    python bench/seed_metadata.py --database-url .../scale10m --rows 10000000 --projects 1000
    python bench/scale_bench.py --api http://127.0.0.1:8731 \\
        --database-url postgresql://postgres@127.0.0.1:5432/scale10m --label 10m \\
        [--evict] [--json /tmp/10m.json] [--only "chat old,turn"] [--sql-only]
    python bench/scale_bench.py --compare /tmp/1m.json /tmp/10m.json

Starts nothing itself (bench/README.md §9): --api must serve --database-url's database, with an
upstream for the turn (`python -m tests.fakes.upstream --fixed-usage`). Every scenario is in
project `proj_default`, which seed_metadata.py gives a known share of the rows.

  chat filtered              /v1/chat/completions?metadata[job]=nightly&metadata[env]=prod
  chat filtered + model      ... &model=gpt-4o-mini
  chat deep page             ?after=<id>, --walk-pages pages of --limit past the middle
  chat old matches           ?metadata[job]=legacy&order=desc: every match is in the oldest
                             tenth of the table, so an id-ordered walk meets them last
  responses filtered         /v1/responses?metadata[job]=nightly&status=failed (newest first)
  responses filtered + model /v1/responses?metadata[job]=nightly&model=gpt-4o-mini
  responses deep page        ?after=<id>, as for chat, towards older rows
  responses old matches      ?metadata[job]=legacy
  retrieve                   GET /v1/responses/{id}, cycling over --retrieve-ids seeded ids
                             sampled all over the table
  turn at depth 50           POST /v1/responses with previous_response_id = a seeded turn that
                             has 49 ancestors (cycling over --turn-heads such threads)

For each: the SQL Tether sends for it (built by the repositories' own query functions, so it
cannot drift from them) is PREPAREd and run under EXPLAIN (ANALYZE, BUFFERS), once with
custom plans and once with `plan_cache_mode = force_generic_plan`: the first run is `cold`
(with --evict, after this database's files were dropped from the OS page cache; PostgreSQL's
own shared_buffers may still hold some pages), then `warm` is the best of --warm-runs more.
Then the HTTP load: closed loop at --concurrency, p50 and p99. The plan mode of the HTTP part
is the database's (`ALTER DATABASE ... SET plan_cache_mode = force_generic_plan`, then restart
Tether): it is printed, and recorded in --json.

--compare A.json B.json prints B/A per scenario and figure, against the 1.5x target.
"""

import argparse
import dataclasses
import itertools
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from list_bench import Bench as ListBench
from list_bench import Listing, Sql, compiled, meta_query, sql_literal
from loadgen import Call, SetupError, run, run_scenarios, table
from responses_bench import select
from sqlalchemy import Select

from app.chat import repository as chat_repository
from app.kit.listing import PageQuery
from app.responses import repository as responses_repository
from app.responses.domain import ResponseStatus

PROJECT_ID = "proj_default"
RATIO_MAX = 1.5
DEPTH = 50
JSON_HEADERS = {"Content-Type": "application/json"}
# --evict reads this table into shared_buffers to push our pages out of them.
FLUSH_TABLE = "bench_flush"


@dataclasses.dataclass(frozen=True, slots=True)
class ListCase:
    """A list scenario: the request, and the same thing as list_query's arguments."""

    name: str
    table: str  # chat_completions or responses
    metadata: dict[str, str]
    model: str | None = None
    status: str | None = None
    order: str | None = None  # None: the endpoint's default
    deep: bool = False

    @property
    def path(self) -> str:
        return "/v1/chat/completions" if self.table == "chat_completions" else "/v1/responses"

    @property
    def descending(self) -> bool:
        default = "asc" if self.table == "chat_completions" else "desc"
        return (self.order or default) == "desc"

    def listing(self) -> Listing:
        query = meta_query(self.metadata)
        fields = {}
        for key in ("model", "status"):
            if (value := getattr(self, key)) is not None:
                query[key] = fields[key] = value
        if self.order is not None:
            query["order"] = self.order
        return Listing(self.path, query, self.descending, self.metadata, fields)

    def query(self, limit: int, after: str | None) -> Select[Any]:
        page = PageQuery(after=after, limit=limit, order="desc" if self.descending else "asc")
        if self.table == "chat_completions":
            return chat_repository.list_query(
                PROJECT_ID, page, model=self.model, metadata=self.metadata, dialect="postgresql"
            )
        status = ResponseStatus(self.status) if self.status else None
        return responses_repository.list_query(
            PROJECT_ID,
            page,
            model=self.model,
            status=status,
            metadata=self.metadata,
            dialect="postgresql",
        )


def list_cases(args: argparse.Namespace) -> list[ListCase]:
    chat_meta = {"job": args.job, "env": args.env}
    old = {"job": "legacy"}
    return [
        ListCase("chat filtered", "chat_completions", chat_meta),
        ListCase("chat filtered + model", "chat_completions", chat_meta, model=args.model),
        ListCase("chat deep page", "chat_completions", {}, deep=True),
        ListCase("chat old matches", "chat_completions", old, order="desc"),
        ListCase("responses filtered", "responses", {"job": args.job}, status=args.status),
        ListCase("responses filtered + model", "responses", {"job": args.job}, model=args.model),
        ListCase("responses deep page", "responses", {}, deep=True),
        ListCase("responses old matches", "responses", old),
    ]


SCENARIOS = [
    "chat filtered",
    "chat filtered + model",
    "chat deep page",
    "chat old matches",
    "responses filtered",
    "responses filtered + model",
    "responses deep page",
    "responses old matches",
    "retrieve",
    f"turn at depth {DEPTH}",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8731", help="Tether base URL")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/scale1m",
        help="the database --api serves, seeded by bench/seed_metadata.py",
    )
    parser.add_argument("--api-key", default=None, help="sent as a Bearer token to --api")
    parser.add_argument("--label", default=None, help="name of this run (default: the database)")
    parser.add_argument("--json", default=None, help="write the figures here, for --compare")
    parser.add_argument("--compare", nargs=2, metavar="JSON", help="print B/A of two runs")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per scenario")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per scenario")
    parser.add_argument("--limit", type=int, default=20, help="page size of every request")
    parser.add_argument("--walk-pages", type=int, default=500, help="deep page: pages past middle")
    parser.add_argument("--retrieve-ids", type=int, default=1000)
    parser.add_argument("--turn-heads", type=int, default=20, help="depth-50 threads cycled")
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--model", default="gpt-4o-mini", help="model filter of the lists")
    parser.add_argument(
        "--turn-model", default="bench", help="the turns' model (not the lists' filter's)"
    )
    parser.add_argument("--job", default="nightly", help="metadata[job] filter value")
    parser.add_argument("--env", default="prod", help="metadata[env] filter value (chat)")
    parser.add_argument("--status", default="failed", help="status filter (responses)")
    parser.add_argument("--only", default=None, help="comma-separated scenario names (or prefixes)")
    parser.add_argument(
        "--jit",
        choices=["on", "off"],
        default="off",
        help="JIT in the EXPLAIN session: off, as Tether's sessions run (app/db.py); on, as they"
        " ran before",
    )
    parser.add_argument("--plans", action="store_true", help="print every warm plan in full")
    parser.add_argument("--sql-only", action="store_true", help="skip the HTTP load")
    parser.add_argument("--http-only", action="store_true", help="skip the EXPLAINs")
    parser.add_argument(
        "--evict",
        action="store_true",
        help="before each cold run, drop this database's files from the OS page cache "
        "(PostgreSQL on this host, run as a user that may open its files)",
    )
    args = parser.parse_args(argv)
    args.api = args.api.rstrip("/")
    args.database_url = args.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    args.label = args.label or args.database_url.rsplit("/", 1)[-1]
    return args


# --- SQL ---------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Run:
    ms: float  # execution time
    planning_ms: float
    read: int  # blocks read from outside shared_buffers (OS cache or disk)
    hit: int


@dataclasses.dataclass(slots=True)
class Explained:
    mode: str
    cold: Run
    warm: Run
    plan: str  # the warm run's

    def summary(self) -> str:
        found = re.findall(
            r"((?:Index|Index Only|Bitmap Index) Scan(?: Backward)? \S+ \S+|Seq Scan on \S+)",
            self.plan,
        )
        removed = sum(int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", self.plan))
        return f"{', '.join(dict.fromkeys(found)) or '-'}; {removed} removed by filter"


def parse_run(plan: str) -> Run:
    def number(pattern: str) -> float:
        found = re.search(pattern, plan)
        return float(found.group(1)) if found else float("nan")

    # The top node's Buffers line counts the whole statement.
    buffers = re.search(r"Buffers: ([^\n]*)", plan)
    line = buffers.group(1) if buffers else ""
    read = re.search(r"read=(\d+)", line)
    hit = re.search(r"hit=(\d+)", line)
    return Run(
        ms=number(r"Execution Time: ([\d.]+) ms"),
        planning_ms=number(r"Planning Time: ([\d.]+) ms"),
        read=int(read.group(1)) if read else 0,
        hit=int(hit.group(1)) if hit else 0,
    )


class Explainer:
    def __init__(self, db: asyncpg.Connection, evict: bool, warm_runs: int) -> None:
        self.db = db
        self.evict_first = evict
        self.warm_runs = warm_runs
        self.counter = itertools.count()
        self.files: list[str] | None = None

    async def evict(self) -> None:
        """Empty the caches of this database's pages: PostgreSQL's shared_buffers, by reading a
        table five times their size into them (pg_prewarm; a sequential scan would use a small
        ring of buffers and evict nothing), then the OS page cache, by posix_fadvise
        DONTNEED on this database's files only, so the box's other users keep theirs."""
        if self.files is None:
            await self.make_flush_table()
            data = await self.db.fetchval("SHOW data_directory")
            rows = await self.db.fetch(
                "SELECT pg_relation_filepath(oid) AS path FROM pg_class"
                " WHERE relfilenode <> 0 AND NOT relisshared AND relkind IN ('r','i','t','m')"
                f" AND relname <> '{FLUSH_TABLE}'"
            )
            self.files = [os.path.join(data, r["path"]) for r in rows if r["path"]]
        await self.db.execute(f"SELECT pg_prewarm('{FLUSH_TABLE}', 'buffer')")
        for base in self.files:
            for path in [base, f"{base}_vm", f"{base}_fsm"] + [
                f"{base}.{n}" for n in range(1, 10_000)
            ]:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    if path.startswith(f"{base}."):
                        break  # no more segments
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)

    async def make_flush_table(self) -> None:
        await self.db.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        buffers = await self.db.fetchval(
            "SELECT setting::bigint FROM pg_settings WHERE name = 'shared_buffers'"
        )
        # Every buffer is used up to 5 times before the clock sweep evicts it: 5 sweeps.
        wanted = 5 * buffers
        pages = await self.db.fetchval(
            "SELECT coalesce((SELECT relpages FROM pg_class WHERE relname = $1), 0)", FLUSH_TABLE
        )
        if pages < wanted:
            print(f"  making {FLUSH_TABLE} ({wanted} pages) to flush shared_buffers", flush=True)
            await self.db.execute(f"DROP TABLE IF EXISTS {FLUSH_TABLE}")
            # Eight rows of 960 incompressible-enough bytes fill a page; stored inline.
            await self.db.execute(
                f"CREATE TABLE {FLUSH_TABLE} AS SELECT repeat(md5(g::text), 30) AS filler"
                f" FROM generate_series(1, {wanted * 8}) g"
            )
            await self.db.execute(f"VACUUM ANALYZE {FLUSH_TABLE}")

    async def once(self, name: str, args: str) -> str:
        rows = await self.db.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE {name}{args}")
        return "\n".join(r[0] for r in rows)

    async def explain(self, sql: Sql, mode: str) -> Explained:
        name = f"bench_{next(self.counter)}"
        await self.db.execute(f"SET plan_cache_mode = {mode}")
        await self.db.execute(f"PREPARE {name} AS {sql.text}")
        args = f"({', '.join(sql_literal(p) for p in sql.params)})" if sql.params else ""
        try:
            if self.evict_first:
                await self.evict()
            cold = await self.once(name, args)
            warm_runs = [await self.once(name, args) for _ in range(self.warm_runs)]
        finally:
            await self.db.execute(f"DEALLOCATE {name}")
            await self.db.execute("RESET plan_cache_mode")
        best = min(warm_runs, key=lambda plan: parse_run(plan).ms)
        return Explained(mode, parse_run(cold), parse_run(best), best)


# --- setup: cursors, ids and threads from the seeded data ---------------------------------------


async def deep_cursor(db: asyncpg.Connection, table_name: str, descending: bool, skip: int) -> str:
    """The id a client reaches after paging `skip` rows on from the middle of the project."""
    order = "DESC" if descending else "ASC"
    found = await db.fetchval(
        f"SELECT id FROM {table_name} WHERE project_id = $1 ORDER BY id {order}"
        f" OFFSET (SELECT count(*) / 2 FROM {table_name} WHERE project_id = $1) + $2 LIMIT 1",
        PROJECT_ID,
        skip,
    )
    if found is None:
        raise SetupError(f"{table_name} has no rows in {PROJECT_ID}: run seed_metadata.py first")
    return str(found)


async def sampled_ids(db: asyncpg.Connection, count: int) -> list[str]:
    """Response ids of the project from all over the table (random pages: the cache is cold)."""
    rows = await db.fetch(
        "SELECT id FROM responses TABLESAMPLE SYSTEM (1) REPEATABLE (0)"
        " WHERE project_id = $1 AND deleted_at IS NULL LIMIT $2",
        PROJECT_ID,
        count,
    )
    return [r["id"] for r in rows]


async def depth_heads(db: asyncpg.Connection, count: int) -> list[str]:
    """Turns with exactly DEPTH - 1 ancestors: walked down from the roots of seeded agent
    threads (seed_metadata.py's `agent` job), newest first."""
    rows = await db.fetch(
        """
        WITH RECURSIVE down(id, depth) AS (
            SELECT id, 1 FROM (
                SELECT id FROM responses
                WHERE project_id = $1 AND previous_response_id IS NULL
                  AND metadata @> '{"job": "agent"}' AND deleted_at IS NULL
                ORDER BY id DESC LIMIT $2
            ) roots
            UNION ALL
            SELECT r.id, down.depth + 1 FROM down
            JOIN responses r ON r.previous_response_id = down.id
            WHERE down.depth < $3 AND r.project_id = $1
        )
        SELECT id FROM down WHERE depth = $3 ORDER BY id DESC LIMIT $4
        """,
        PROJECT_ID,
        count * 4,
        DEPTH,
        count,
    )
    return [r["id"] for r in rows]


# --- the run -----------------------------------------------------------------------------------


class ScaleBench(ListBench):
    """list_bench's client (page checks, walks) with this bench's scenarios."""

    def __init__(
        self, session: aiohttp.ClientSession, db: asyncpg.Connection, args: argparse.Namespace
    ) -> None:
        super().__init__(session, db, args)
        self.cases = {case.name: case for case in list_cases(args)}
        self.cursors: dict[str, str] = {}
        self.retrieve_ids: list[str] = []
        self.heads: list[str] = []
        self.started = int(time.time())

    async def setup(self, names: list[str]) -> None:
        for name in names:
            case = self.cases.get(name)
            if case and case.deep and case.table not in self.cursors:
                skip = self.args.walk_pages * self.args.limit
                self.cursors[case.table] = await deep_cursor(
                    self.db, case.table, case.descending, skip
                )
        if "retrieve" in names:
            self.retrieve_ids = await sampled_ids(self.db, self.args.retrieve_ids)
            if not self.retrieve_ids:
                raise SetupError("no responses to retrieve: run seed_metadata.py first")
        if f"turn at depth {DEPTH}" in names:
            self.heads = await depth_heads(self.db, self.args.turn_heads)
            if not self.heads:
                raise SetupError(f"no seeded thread reaches depth {DEPTH}")

    async def remove_turns(self) -> None:
        """Delete the turns the load made (forks of the seeded heads, made since it started):
        they would be the newest rows of the project in every later run, and change what the
        lists walk through."""
        if self.heads:
            removed = await self.db.execute(
                "DELETE FROM responses WHERE project_id = $1 AND previous_response_id = ANY($2)"
                " AND created_at >= $3",
                PROJECT_ID,
                self.heads,
                self.started,
            )
            print(f"  removed the turns the load made: {removed}", flush=True)

    def sql(self, name: str) -> Sql:
        if case := self.cases.get(name):
            after = self.cursors.get(case.table) if case.deep else None
            return compiled(case.query(self.args.limit, after))
        if name == "retrieve":
            values = {"response_id": self.retrieve_ids[0], "project_id": PROJECT_ID}
            return compiled(responses_repository.GET.stmt, values)
        values = {"response_id": self.heads[0], "project_id": PROJECT_ID}
        return compiled(responses_repository.CHAIN.stmt, values)

    def http(self) -> dict[str, Callable[[], Awaitable[Call]]]:
        def listed(case: ListCase) -> Callable[[], Awaitable[Call]]:
            async def build() -> Call:
                listing = case.listing()
                after = self.cursors.get(case.table) if case.deep else None
                page = await self.page(listing, after)
                if not page["data"]:
                    raise SetupError(f"{case.name}: no rows match; seed with seed_metadata.py")
                return self.fixed(self.url(listing, after))

            return build

        async def retrieve() -> Call:
            urls = itertools.cycle(f"{self.args.api}/v1/responses/{i}" for i in self.retrieve_ids)

            async def call() -> tuple[int, bytes]:
                return await self.get(next(urls))

            return call

        async def turn() -> Call:
            bodies = itertools.cycle(
                orjson.dumps(
                    {"model": self.args.turn_model, "input": "next", "previous_response_id": head}
                )
                for head in self.heads
            )
            url = f"{self.args.api}/v1/responses"
            headers = {**JSON_HEADERS, **self.headers}

            async def call() -> tuple[int, bytes]:
                async with self.session.post(url, data=next(bodies), headers=headers) as r:
                    return r.status, await r.read()

            status, body = await call()
            if status != 200 or orjson.loads(body).get("status") != "completed":
                raise SetupError(f"POST {url} -> HTTP {status}: {body[:500]!r}")
            return call

        scenarios: dict[str, Callable[[], Awaitable[Call]]] = {
            name: listed(case) for name, case in self.cases.items()
        }
        scenarios["retrieve"] = retrieve
        scenarios[f"turn at depth {DEPTH}"] = turn
        return scenarios


async def database_facts(db: asyncpg.Connection, url: str) -> dict[str, Any]:
    fresh = await asyncpg.connect(url)  # what a new connection of Tether's gets
    try:
        mode = await fresh.fetchval("SHOW plan_cache_mode")
    finally:
        await fresh.close()
    counts = {}
    for name in ("responses", "chat_completions"):
        counts[name] = await db.fetchval(
            "SELECT reltuples::bigint FROM pg_class WHERE relname = $1", name
        )
        counts[f"{name} in {PROJECT_ID}"] = await db.fetchval(
            f"SELECT count(*) FROM {name} WHERE project_id = $1", PROJECT_ID
        )
    counts["size"] = await db.fetchval(
        "SELECT pg_size_pretty(pg_database_size(current_database()))"
    )
    return {"plan_cache_mode": mode, **counts}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    names = select(SCENARIOS, args.only)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    db = await asyncpg.connect(args.database_url)
    out: dict[str, Any] = {"label": args.label, "scenarios": {n: {} for n in names}}
    try:
        out["database"] = await database_facts(db, args.database_url)
        print(f"{args.label}: {out['database']}", flush=True)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            bench = ScaleBench(session, db, args)
            await bench.setup(names)
            if not args.http_only:
                await db.execute(f"SET jit = {args.jit}")
                explainer = Explainer(db, args.evict, args.warm_runs)
                for name in names:
                    sql = bench.sql(name)
                    for mode in ("force_custom_plan", "force_generic_plan"):
                        found = await explainer.explain(sql, mode)
                        out["scenarios"][name][mode] = dataclasses.asdict(found)
                        print(
                            f"{name} [{mode}]: cold {found.cold.ms:.2f} ms"
                            f" (read {found.cold.read}), warm {found.warm.ms:.2f} ms;"
                            f" {found.summary()}",
                            flush=True,
                        )
                        if args.plans:
                            print(f"{sql.text}\n{found.plan}\n", flush=True)
            if not args.sql_only:
                results = await run_scenarios(
                    bench.http(),
                    names,
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                    warmup=args.warmup,
                )
                print()
                print(table(list(results.values())))
                await bench.remove_turns()
                for name, result in results.items():
                    out["scenarios"][name]["http"] = {
                        "p50": result.p50,
                        "p99": result.p99,
                        "rps": result.rps,
                        "errors": result.errors,
                    }
    finally:
        await db.close()
    print_summary(out)
    return out


FIGURES = [
    ("custom cold", "force_custom_plan", "cold"),
    ("custom warm", "force_custom_plan", "warm"),
    ("generic cold", "force_generic_plan", "cold"),
    ("generic warm", "force_generic_plan", "warm"),
]


def figures(scenario: dict[str, Any]) -> dict[str, float]:
    found: dict[str, float] = {}
    for label, mode, which in FIGURES:
        if mode in scenario:
            found[f"{label} ms"] = scenario[mode][which]["ms"]
    if "http" in scenario:
        found["http p50"] = scenario["http"]["p50"]
        found["http p99"] = scenario["http"]["p99"]
    return found


def print_summary(out: dict[str, Any]) -> None:
    columns = [f"{label} ms" for label, _, _ in FIGURES] + ["http p50", "http p99"]
    print(f"\n{out['label']} (HTTP with plan_cache_mode={out['database']['plan_cache_mode']})")
    print(f"{'scenario':<28}" + "".join(f"{c:>16}" for c in columns))
    for name, scenario in out["scenarios"].items():
        values = figures(scenario)
        cells = [f"{values[c]:.2f}" if c in values else "-" for c in columns]
        print(f"{name:<28}" + "".join(f"{c:>16}" for c in cells))


def compare(a_path: str, b_path: str) -> int:
    a, b = (orjson.loads(Path(p).read_bytes()) for p in (a_path, b_path))
    columns = [f"{label} ms" for label, _, _ in FIGURES] + ["http p50", "http p99"]
    print(f"{b['label']} / {a['label']} (target <= {RATIO_MAX}x; '!' marks a miss)")
    print(f"{'scenario':<28}" + "".join(f"{c:>16}" for c in columns))
    missed = 0
    for name, scenario in b["scenarios"].items():
        before, after = figures(a["scenarios"].get(name, {})), figures(scenario)
        cells = []
        for column in columns:
            if column in before and column in after and before[column] > 0:
                ratio = after[column] / before[column]
                flag = "!" if ratio > RATIO_MAX else " "
                missed += ratio > RATIO_MAX
                cells.append(f"{ratio:.2f}x{flag}")
            else:
                cells.append("-")
        print(f"{name:<28}" + "".join(f"{c:>16}" for c in cells))
    print(f"{missed} figures over {RATIO_MAX}x")
    return 0


if __name__ == "__main__":
    arguments = parse_args(None)
    if arguments.compare:
        sys.exit(compare(*arguments.compare))
    figures_out = run(main(arguments))
    if arguments.json:
        Path(arguments.json).write_bytes(orjson.dumps(figures_out, option=orjson.OPT_INDENT_2))
