"""Load Tether's list endpoints on a big seeded database; then show PostgreSQL's plans for them.

    python bench/seed_metadata.py --truncate          # once: 1M chat completions, 1M responses
    python bench/list_bench.py --api http://127.0.0.1:8000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/listbench [--explain-only]

Starts nothing itself (see bench/README.md): --api must serve the database --database-url names.
Scenarios, in order (each one GET, repeated; pages of --limit):

  chat filtered          /v1/chat/completions?metadata[job]=nightly&metadata[env]=prod
  chat filtered + model  ... &model=gpt-4o-mini
  chat deep page         /v1/chat/completions?after=<id>, the id reached by walking the cursor
                         --walk-pages pages on from the middle of the table
  responses filtered     /v1/responses?metadata[job]=nightly&status=failed (newest first)
  responses deep page    /v1/responses?after=<id>, reached the same way (walking to older ones)

Every scenario's first page is checked before it is loaded (filters honoured, ids in order,
first_id/last_id/has_more right): a fast wrong answer must not look like a fast right one.

Then EXPLAIN (ANALYZE, BUFFERS) of the SQL each scenario amounts to, built by the repositories'
own list_query (app/chat/repository.py, app/responses/repository.py), its values written in.
Each query runs once before its EXPLAIN
(its time is shown as `first ms`: a cold cache if nothing ran before), so the plan shows a warm
cache, like the load's.
"""

import argparse
import dataclasses
import re
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp
import asyncpg
import orjson
from loadgen import Call, Result, SetupError, run, run_scenarios, table, uvloop_in_use
from responses_bench import select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from app.chat import repository as chat_repository
from app.kit.listing import PageQuery
from app.responses import repository as responses_repository
from app.responses.domain import ResponseStatus

PROJECT_ID = "proj_default"  # the project seed_metadata.py writes, and Tether's without auth
# The target the README promises for every scenario here; printed next to the measured p50.
P50_MS_MAX = 20.0
SCENARIOS = [
    "chat filtered",
    "chat filtered + model",
    "chat deep page",
    "responses filtered",
    "responses deep page",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="Tether base URL")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/listbench",
        help="the database --api serves, seeded by bench/seed_metadata.py",
    )
    parser.add_argument("--api-key", default=None, help="sent as a Bearer token to --api")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per scenario")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per scenario")
    parser.add_argument("--limit", type=int, default=20, help="page size of every request")
    parser.add_argument(
        "--walk-pages", type=int, default=500, help="pages walked from the middle to the deep id"
    )
    parser.add_argument("--job", default="nightly", help="metadata[job] filter value")
    parser.add_argument("--env", default="prod", help="metadata[env] filter value (chat)")
    parser.add_argument("--model", default="gpt-4o-mini", help="model filter (chat)")
    parser.add_argument("--status", default="failed", help="status filter (responses)")
    parser.add_argument("--only", default=None, help="comma-separated scenario names (or prefixes)")
    parser.add_argument(
        "--explain-only", action="store_true", help="skip the HTTP load: only the SQL plans"
    )
    args = parser.parse_args(argv)
    args.api = args.api.rstrip("/")
    # Tether's own DATABASE_URL may name SQLAlchemy's driver; asyncpg wants the plain scheme.
    args.database_url = args.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return args


@dataclasses.dataclass(slots=True)
class Listing:
    """One list endpoint's view of a scenario: what to ask, and what a right answer holds."""

    path: str  # /v1/chat/completions or /v1/responses
    query: dict[str, str]  # without after and limit
    descending: bool  # the endpoint's default order
    metadata: dict[str, str]  # each item's metadata must contain these
    fields: dict[str, str]  # each item's top-level fields must equal these (model, status)


@dataclasses.dataclass(slots=True)
class Walk:
    pages: int
    seconds: float
    last_id: str


class Bench:
    def __init__(
        self, session: aiohttp.ClientSession, db: asyncpg.Connection, args: argparse.Namespace
    ) -> None:
        self.session = session
        self.db = db
        self.args = args
        self.headers: dict[str, str] = {}
        if args.api_key:
            self.headers["Authorization"] = f"Bearer {args.api_key}"
        # Cursors the deep scenarios load from; the EXPLAIN part uses them too, so its plans
        # are for the page the load asked for. Until a walk ran: the middle of the table.
        self.deep: dict[str, str] = {}
        self.walks: dict[str, Walk] = {}

    def listings(self) -> dict[str, Listing]:
        a = self.args
        chat_meta = {"job": a.job, "env": a.env}
        resp_meta = {"job": a.job}
        return {
            "chat filtered": Listing(
                "/v1/chat/completions", meta_query(chat_meta), False, chat_meta, {}
            ),
            "chat filtered + model": Listing(
                "/v1/chat/completions",
                {**meta_query(chat_meta), "model": a.model},
                False,
                chat_meta,
                {"model": a.model},
            ),
            "chat deep page": Listing("/v1/chat/completions", {}, False, {}, {}),
            "responses filtered": Listing(
                "/v1/responses",
                {**meta_query(resp_meta), "status": a.status},
                True,
                resp_meta,
                {"status": a.status},
            ),
            "responses deep page": Listing("/v1/responses", {}, True, {}, {}),
        }

    def url(self, listing: Listing, after: str | None) -> str:
        query = {**listing.query, "limit": str(self.args.limit)}
        if after is not None:
            query["after"] = after
        # urlencode percent-encodes the brackets of metadata[k]; Starlette decodes them.
        return f"{self.args.api}{listing.path}?{urlencode(query)}"

    async def get(self, url: str) -> tuple[int, bytes]:
        async with self.session.get(url, headers=self.headers) as response:
            return response.status, await response.read()

    async def page(self, listing: Listing, after: str | None) -> dict[str, Any]:
        """One page, checked; SetupError says what is wrong with it."""
        url = self.url(listing, after)
        status, body = await self.get(url)
        if status != 200:
            raise SetupError(f"GET {url} -> HTTP {status}: {body[:1000]!r}")
        page: dict[str, Any] = orjson.loads(body)
        if problem := page_problem(page, listing, after, self.args.limit):
            raise SetupError(f"GET {url}: {problem}")
        return page

    def fixed(self, url: str) -> Call:
        async def call() -> tuple[int, bytes]:
            return await self.get(url)

        return call

    async def walk(self, name: str, listing: Listing, table_name: str) -> str:
        """Follow last_id --walk-pages pages on from the middle of the table, the way a client
        pages; every page is checked. Returns the cursor reached."""
        after = await self.middle_id(table_name, listing.descending)
        started = time.perf_counter()
        for _ in range(self.args.walk_pages):
            page = await self.page(listing, after)
            if not page["has_more"]:
                raise SetupError(f"{listing.path}: has_more false in the middle of the table")
            after = page["last_id"]
        self.walks[name] = Walk(self.args.walk_pages, time.perf_counter() - started, after)
        self.deep[table_name] = after
        return after

    async def middle_id(self, table_name: str, descending: bool) -> str:
        if table_name not in self.deep:
            # Once per run: OFFSET walks half the index (a few hundred ms on 1M rows).
            order = "DESC" if descending else "ASC"
            found = await self.db.fetchval(
                f"SELECT id FROM {table_name} WHERE project_id = $1 ORDER BY id {order}"
                f" OFFSET (SELECT count(*) / 2 FROM {table_name} WHERE project_id = $1) LIMIT 1",
                PROJECT_ID,
            )
            if found is None:
                raise SetupError(f"{table_name} is empty: run bench/seed_metadata.py first")
            self.deep[table_name] = found
        return self.deep[table_name]

    def scenarios(self) -> dict[str, Callable[[], Awaitable[Call]]]:
        """Name -> coroutine function building that scenario's Call (setup runs lazily)."""
        listings = self.listings()

        def filtered(name: str) -> Callable[[], Awaitable[Call]]:
            async def build() -> Call:
                listing = listings[name]
                page = await self.page(listing, None)
                if not page["data"]:
                    raise SetupError(f"{name}: no rows match; seed with bench/seed_metadata.py")
                return self.fixed(self.url(listing, None))

            return build

        def deep(name: str, table_name: str) -> Callable[[], Awaitable[Call]]:
            async def build() -> Call:
                listing = listings[name]
                print(f"  setup: walking {self.args.walk_pages} pages from the middle", flush=True)
                after = await self.walk(name, listing, table_name)
                return self.fixed(self.url(listing, after))

            return build

        return {
            "chat filtered": filtered("chat filtered"),
            "chat filtered + model": filtered("chat filtered + model"),
            "chat deep page": deep("chat deep page", "chat_completions"),
            "responses filtered": filtered("responses filtered"),
            "responses deep page": deep("responses deep page", "responses"),
        }


def meta_query(metadata: dict[str, str]) -> dict[str, str]:
    return {f"metadata[{k}]": v for k, v in metadata.items()}


def page_problem(page: dict[str, Any], listing: Listing, after: str | None, limit: int) -> str:
    """What is wrong with a list page ('' if nothing)."""
    if page.get("object") != "list" or not isinstance(page.get("data"), list):
        return f"not a list page: {orjson.dumps(page)[:300]!r}"
    data: list[dict[str, Any]] = page["data"]
    if len(data) > limit:
        return f"{len(data)} items for limit={limit}"
    ids = [i for i in (item.get("id") for item in data) if isinstance(i, str)]
    if len(ids) != len(data) or len(set(ids)) != len(ids):
        return "item ids missing or repeated"
    in_order = sorted(ids, reverse=listing.descending)
    if ids != in_order:
        return f"ids not in {'descending' if listing.descending else 'ascending'} order"
    if after is not None and ids and (ids[0] >= after if listing.descending else ids[0] <= after):
        return f"first id {ids[0]} is not past the cursor {after}"
    if page.get("first_id") != (ids[0] if ids else None):
        return f"first_id {page.get('first_id')} is not the first item's id"
    if page.get("last_id") != (ids[-1] if ids else None):
        return f"last_id {page.get('last_id')} is not the last item's id"
    if not isinstance(page.get("has_more"), bool) or (page["has_more"] and len(data) < limit):
        return f"has_more {page.get('has_more')!r} with {len(data)} items for limit={limit}"
    for item in data:
        metadata = item.get("metadata") or {}
        if any(metadata.get(k) != v for k, v in listing.metadata.items()):
            return f"{item['id']} has metadata {metadata}, not matching {listing.metadata}"
        if any(item.get(k) != v for k, v in listing.fields.items()):
            wrong = {k: item.get(k) for k in listing.fields}
            return f"{item['id']} has {wrong}, not {listing.fields}"
    return ""


# --- EXPLAIN -----------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Plan:
    name: str
    sql: str
    text: str  # the plan, one line per node and detail
    first_ms: float  # the run before EXPLAIN's, as the client saw it: cold if nothing ran yet

    @property
    def execution_ms(self) -> float:
        found = re.search(r"Execution Time: ([\d.]+) ms", self.text)
        return float(found.group(1)) if found else float("nan")

    @property
    def indexes(self) -> list[str]:
        """The access paths that use an index: 'Index Scan using pk_x', 'Bitmap Index Scan on
        ix_y', ...; empty when the plan reads the table sequentially."""
        found = re.findall(
            r"((?:Index|Index Only|Bitmap Index) Scan(?: Backward)? \S+ \S+)", self.text
        )
        return list(dict.fromkeys(found))

    @property
    def seq_scan(self) -> bool:
        return "Seq Scan" in self.text

    @property
    def rows_filtered(self) -> int:
        """Rows read and then thrown away by a Filter: an index walked for its order while the
        filter is tested row by row costs in proportion to this, not to the page."""
        return sum(int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", self.text))


@dataclasses.dataclass(slots=True)
class Sql:
    """A statement as Tether sends it: text with $n parameters, and their values."""

    text: str
    params: list[Any]

    def driver_params(self) -> list[Any]:
        # asyncpg's json and jsonb codecs take text.
        return [orjson.dumps(p).decode() if isinstance(p, dict | list) else p for p in self.params]


def compiled(statement: Any, values: dict[str, Any] | None = None) -> Sql:
    found = statement.compile(
        dialect=asyncpg_dialect(), compile_kwargs={"render_postcompile": True}
    )
    params = {**found.params, **(values or {})}
    return Sql(found.string, [params[name] for name in found.positiontup])


def sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return "'" + text.replace("'", "''") + "'"


def explain_queries(args: argparse.Namespace, deep: dict[str, str]) -> dict[str, Sql]:
    """The SQL of each scenario's page, built by the repositories' own list queries (so it is
    what Tether sends): limit + 1 rows, as app/kit/listing.py fetches to tell has_more."""
    chat_meta = {"job": args.job, "env": args.env}

    def page(order: Literal["asc", "desc"], after: str | None = None) -> PageQuery:
        return PageQuery(limit=args.limit, order=order, after=after)

    def chat(query: PageQuery, model: str | None = None, meta: dict[str, str] | None = None) -> Sql:
        return compiled(
            chat_repository.list_query(
                PROJECT_ID, query, model=model, metadata=meta or {}, dialect="postgresql"
            )
        )

    def responses(query: PageQuery, meta: dict[str, str], status: str | None = None) -> Sql:
        return compiled(
            responses_repository.list_query(
                PROJECT_ID,
                query,
                model=None,
                status=ResponseStatus(status) if status else None,
                metadata=meta,
                dialect="postgresql",
            )
        )

    return {
        "chat filtered": chat(page("asc"), meta=chat_meta),
        "chat filtered + model": chat(page("asc"), model=args.model, meta=chat_meta),
        "chat deep page": chat(page("asc", deep["chat_completions"])),
        "responses filtered": responses(page("desc"), {"job": args.job}, args.status),
        "responses deep page": responses(page("desc", deep["responses"]), {}),
    }


async def explain(db: asyncpg.Connection, name: str, sql: Sql) -> Plan:
    started = time.perf_counter()
    await db.fetch(sql.text, *sql.driver_params())
    first_ms = (time.perf_counter() - started) * 1000
    rows = await db.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql.text}", *sql.driver_params())
    return Plan(name, sql.text, "\n".join(r[0] for r in rows), first_ms)


def print_plans(plans: list[Plan]) -> None:
    for plan in plans:
        print(f"\n--- {plan.name}\n{plan.sql}\n{plan.text}")
        uses = ", ".join(plan.indexes) or "NO INDEX"
        seq = "; has a Seq Scan" if plan.seq_scan else ""
        print(f"=> index: {uses}{seq}; {plan.rows_filtered} rows removed by filters")
    width = max(len(p.name) for p in plans)
    row = "{:<" + str(width) + "}  {:>8}  {:>9}  {:>9}  {:<5}  {}"
    print("\n" + row.format("query", "exec ms", "first ms", "filtered", "index", "access path"))
    for plan in plans:
        index = "yes" if plan.indexes and not plan.seq_scan else "NO"
        print(
            row.format(
                plan.name,
                f"{plan.execution_ms:.2f}",
                f"{plan.first_ms:.2f}",
                plan.rows_filtered,
                index,
                ", ".join(plan.indexes) or "-",
            )
        )


# --- report and main ---------------------------------------------------------------------------


def report(results: dict[str, Result], walks: dict[str, Walk]) -> None:
    print()
    if not results:
        print("no scenario ran: see the setup errors above")
        return
    print(table(list(results.values())))
    print()
    for name, walk in walks.items():
        per_page = walk.seconds * 1000 / walk.pages
        print(
            f"{name}: walked {walk.pages} pages from the middle in {walk.seconds:.2f}s"
            f" ({per_page:.2f} ms/page), to after={walk.last_id}"
        )
    for name, result in results.items():
        # A scenario with errors misses whatever its p50: the failures are not in it.
        errors = f", {result.errors} errors" if result.errors else ""
        ok = result.p50 <= P50_MS_MAX and result.errors == 0
        print(
            f"{name} p50: {result.p50:.2f} ms{errors}  (target <= {P50_MS_MAX:.0f} ms)  "
            f"{'ok' if ok else 'MISSED'}"
        )


async def load(bench: Bench, args: argparse.Namespace) -> dict[str, Result]:
    return await run_scenarios(
        bench.scenarios(),
        select(SCENARIOS, args.only),
        concurrency=args.concurrency,
        seconds=args.seconds,
        warmup=args.warmup,
    )


async def main(args: argparse.Namespace) -> int:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    db = await asyncpg.connect(args.database_url)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            bench = Bench(session, db, args)
            results: dict[str, Result] = {}
            if not args.explain_only:
                results = await load(bench, args)
                loop = "uvloop" if uvloop_in_use() else "asyncio"
                print(f"\nconcurrency {args.concurrency}, limit {args.limit}, client on {loop}")
                report(results, bench.walks)
            try:
                for table_name, descending in (("chat_completions", False), ("responses", True)):
                    await bench.middle_id(table_name, descending)
            except SetupError as exc:
                print(f"cannot explain: {exc}", file=sys.stderr)
                return 1
            queries = explain_queries(args, bench.deep)
            names = select(SCENARIOS, args.only)
            plans = [await explain(db, name, queries[name]) for name in names]
    finally:
        await db.close()
    print_plans(plans)
    return 0 if args.explain_only or results else 1


if __name__ == "__main__":
    arguments = parse_args(None)
    sys.exit(run(main(arguments)))
