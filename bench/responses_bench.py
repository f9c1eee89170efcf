"""Load a running Tether server and a running fake upstream; print throughput and latency.

    python bench/responses_bench.py --api http://127.0.0.1:8000 \\
        --upstream http://127.0.0.1:9100 --concurrency 16 --seconds 10

Starts nothing itself (see bench/README.md). Scenarios, in order:

  upstream direct       POST {upstream}/v1/chat/completions: the ceiling Tether sits on
  create (store=true)   POST /v1/responses, stored
  retrieve              GET /v1/responses/{id}, cycling over ids created beforehand
  turn at depth 1       POST /v1/responses forking a child of the first response of a chain
  turn at depth N       ... of the last (N-th) response: what a long conversation costs
"""

import argparse
import asyncio
import dataclasses
import itertools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from loadgen import Call, Result, SetupError, run, run_scenarios, table, uvloop_in_use

JSON_HEADERS = {"Content-Type": "application/json"}
# The targets the README promises; printed next to the measured ratios.
CREATE_VS_UPSTREAM_MIN = 0.20
RETRIEVE_RPS_MIN = 2000.0
DEPTH_COST_MAX = 1.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="Tether base URL")
    parser.add_argument("--upstream", default="http://127.0.0.1:9100", help="fake upstream URL")
    parser.add_argument("--api-key", default=None, help="sent as a Bearer token to --api")
    parser.add_argument("--model", default="bench", help='"echo" for the built-in echo model')
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per scenario")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per scenario")
    parser.add_argument("--retrieve-ids", type=int, default=200, help="ids the retrieve cycles")
    parser.add_argument("--depth", type=int, default=200, help="length of the turn chain")
    parser.add_argument("--only", default=None, help="comma-separated scenario names (or prefixes)")
    parser.add_argument("--api-pid", type=int, help="Tether's process: adds CPU ms per request")
    parser.add_argument("--reference-pid", type=int, help="the minimal handler's process, same")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the chosen scenarios this many times, alternately, and report each one's "
        "median round: drift on a shared machine then hits every scenario alike",
    )
    parser.add_argument(
        "--reference",
        default=None,
        help="base URL of bench/minimal_handler.py: adds a 'minimal handler create' scenario, the "
        "reference point the create target was set from",
    )
    args = parser.parse_args(argv)
    args.api = args.api.rstrip("/")
    args.upstream = args.upstream.rstrip("/").removesuffix("/v1")
    return args


def select(names: list[str], only: str | None) -> list[str]:
    if only is None:
        return names
    chosen: list[str] = []
    for wanted in (w.strip().lower() for w in only.split(",") if w.strip()):
        # Exact first: "turn at depth 1" is also a prefix of "turn at depth 200".
        matches = [n for n in names if n.lower() == wanted] or [
            n for n in names if n.lower().startswith(wanted)
        ]
        if len(matches) != 1:
            raise SystemExit(f"--only {wanted!r} must name one of: {', '.join(names)}")
        chosen.append(matches[0])
    return [n for n in names if n in chosen]


class Bench:
    def __init__(self, session: aiohttp.ClientSession, args: argparse.Namespace) -> None:
        self.session = session
        self.args = args
        self.api_headers = dict(JSON_HEADERS)
        if args.api_key:
            self.api_headers["Authorization"] = f"Bearer {args.api_key}"

    def post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> Call:
        payload = orjson.dumps(body)  # encoded once: the client should cost as little as possible

        async def call() -> tuple[int, bytes]:
            async with self.session.post(url, data=payload, headers=headers) as response:
                return response.status, await response.read()

        return call

    def create(self, **fields: Any) -> Call:
        body = {"model": self.args.model, "store": True, **fields}
        return self.post(f"{self.args.api}/v1/responses", body, self.api_headers)

    async def create_id(self, **fields: Any) -> str:
        status, body = await self.create(**fields)()
        if not 200 <= status < 300:
            raise SetupError(f"POST /v1/responses -> HTTP {status}: {body[:1000]!r}")
        return str(orjson.loads(body)["id"])

    def retrieve_cycling(self, ids: list[str]) -> Call:
        urls = itertools.cycle([f"{self.args.api}/v1/responses/{i}" for i in ids])

        async def call() -> tuple[int, bytes]:
            async with self.session.get(next(urls), headers=self.api_headers) as response:
                return response.status, await response.read()

        return call

    async def created_ids(self, count: int) -> list[str]:
        gate = asyncio.Semaphore(self.args.concurrency)

        async def one(n: int) -> str:
            async with gate:
                return await self.create_id(input=f"retrieve me {n}")

        return list(await asyncio.gather(*(one(n) for n in range(count))))

    async def chain(self, depth: int) -> list[str]:
        """A conversation `depth` responses long; sequential, each continuing the last."""
        ids = [await self.create_id(input="turn 1")]
        for n in range(2, depth + 1):
            ids.append(await self.create_id(input=f"turn {n}", previous_response_id=ids[-1]))
        return ids

    def scenarios(self) -> dict[str, Callable[[], Awaitable[Call]]]:
        """Name -> coroutine function building that scenario's Call (setup runs lazily)."""
        args = self.args
        chain: list[str] = []

        async def upstream() -> Call:
            body = {"model": args.model, "messages": [{"role": "user", "content": "hello there"}]}
            return self.post(f"{args.upstream}/v1/chat/completions", body, JSON_HEADERS)

        async def create() -> Call:
            return self.create(input="hello there")

        async def reference() -> Call:
            if not args.reference:
                raise SetupError("no --reference given")
            body = {"model": args.model, "input": "hello there"}
            return self.post(f"{args.reference}/v1/responses", body, JSON_HEADERS)

        async def retrieve() -> Call:
            print(f"  setup: creating {args.retrieve_ids} responses to retrieve", flush=True)
            return self.retrieve_cycling(await self.created_ids(args.retrieve_ids))

        async def turn(at_end: bool) -> Call:
            if not chain:
                print(f"  setup: building a chain of {args.depth} turns", flush=True)
                chain.extend(await self.chain(args.depth))
            return self.create(input="next", previous_response_id=chain[-1 if at_end else 0])

        return {
            "upstream direct": upstream,
            "create (store=true)": create,
            "minimal handler create": reference,
            "retrieve": retrieve,
            "turn at depth 1": lambda: turn(at_end=False),
            f"turn at depth {args.depth}": lambda: turn(at_end=True),
        }


def report(results: dict[str, Result], depth: int) -> None:
    print()
    print(table(list(results.values())))
    print()

    def check(measured: str, target: str, ok: bool) -> None:
        print(f"{measured}  (target {target})  {'ok' if ok else 'MISSED'}")

    upstream, create = results.get("upstream direct"), results.get("create (store=true)")
    if upstream and create and upstream.rps > 0:
        ratio = create.rps / upstream.rps
        check(
            f"create / upstream direct req/s: {ratio:.2f}",
            f">= {CREATE_VS_UPSTREAM_MIN:.2f}",
            ratio >= CREATE_VS_UPSTREAM_MIN,
        )
    reference = results.get("minimal handler create")
    if upstream and reference and upstream.rps > 0:
        print(f"minimal handler / upstream direct req/s: {reference.rps / upstream.rps:.2f}")
    if create and reference and reference.rps > 0:
        print(f"Tether create / minimal handler req/s: {create.rps / reference.rps:.2f}")
    if create and reference and create.cpu_ms and reference.cpu_ms:
        print(
            f"CPU per request, minimal handler / Tether create: "
            f"{reference.cpu_ms / create.cpu_ms:.2f} "
            f"({reference.cpu_ms:.3f} / {create.cpu_ms:.3f} ms)"
        )
    if retrieve := results.get("retrieve"):
        check(
            f"retrieve req/s: {retrieve.rps:.0f}",
            f">= {RETRIEVE_RPS_MIN:.0f}",
            retrieve.rps >= RETRIEVE_RPS_MIN,
        )
    shallow, deep = results.get("turn at depth 1"), results.get(f"turn at depth {depth}")
    if shallow and deep and deep.rps > 0 and shallow.p50 > 0:
        p50_cost, rps_cost = deep.p50 / shallow.p50, shallow.rps / deep.rps
        check(
            f"depth {depth} vs depth 1: p50 x{p50_cost:.2f}, req/s cost x{rps_cost:.2f}",
            f"<= {DEPTH_COST_MAX:.1f}x",
            max(p50_cost, rps_cost) <= DEPTH_COST_MAX,
        )


async def main(args: argparse.Namespace) -> int:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        bench = Bench(session, args)
        scenarios = bench.scenarios()
        names = [n for n in scenarios if args.reference or n != "minimal handler create"]
        rounds: list[dict[str, Result]] = []
        for n in range(args.rounds):
            if args.rounds > 1:
                print(f"\n== round {n + 1} of {args.rounds}", flush=True)
            rounds.append(
                await run_scenarios(
                    scenarios,
                    select(names, args.only),
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                    warmup=args.warmup,
                    pids=server_pids(args, names),
                )
            )
    loop = "uvloop" if uvloop_in_use() else "asyncio"
    print(f"\nconcurrency {args.concurrency}, model {args.model!r}, client on {loop}")
    if args.rounds > 1:
        print("\nevery round:")
        print(table([_tagged(r, n) for n, results in enumerate(rounds) for r in results.values()]))
        print("\nthe median round of each scenario (by req/s):")
    results = median_rounds(rounds)
    report(results, args.depth)
    return 0 if results else 1


def server_pids(args: argparse.Namespace, names: list[str]) -> dict[str, int]:
    """Which process serves each scenario, where its pid was given."""
    pids = {}
    for name in names:
        pid = args.reference_pid if name == "minimal handler create" else args.api_pid
        if pid is not None and name != "upstream direct":
            pids[name] = pid
    return pids


def _tagged(result: Result, n: int) -> Result:
    return dataclasses.replace(result, name=f"{result.name} [round {n + 1}]")


def median_rounds(rounds: list[dict[str, Result]]) -> dict[str, Result]:
    """Per scenario, its round of median req/s (the lower middle one of an even count)."""
    medians: dict[str, Result] = {}
    for name in rounds[0]:
        runs = sorted((r[name] for r in rounds if name in r), key=lambda r: r.rps)
        medians[name] = runs[(len(runs) - 1) // 2]
    return medians


if __name__ == "__main__":
    arguments = parse_args(None)
    sys.exit(run(main(arguments)))
