"""What routing through the model catalog costs: creates through a one-deployment catalog
model against the same creates through the plain UPSTREAM_BASE_URL, on one server, in one run.

    python bench/routing_bench.py --api http://127.0.0.1:8000 --concurrency 16 --seconds 5

The server runs with both UPSTREAM_BASE_URL (the fake upstream, model `bench`) and
TETHER_MODELS=bench/routing_models.toml (bench/README.md, section 7). Scenarios, each a
`POST /v1/responses` (store=true) of the same body, all reaching the same fake model:

  plain      model `bench`: the catch-all upstream, no routing
  catalog    model `bench-routed`: one deployment, no limit
  capped     model `bench-capped`: one deployment with max_concurrency (a lease in Redis per
             call with REDIS_URL, an in-process count without)

They alternate for `--rounds` rounds, in reverse order every other round, so that drift on a
shared machine (another process waking up) falls on every scenario alike; the ratios are of the
summed rounds.
"""

import argparse
import sys

import aiohttp
import orjson
from loadgen import Call, Result, run, run_load, table, uvloop_in_use

SCENARIOS = {"plain": "bench", "catalog": "bench-routed", "capped": "bench-capped"}
# The target: routing costs at most 5 % of a create's throughput.
CATALOG_VS_PLAIN_MIN = 0.95


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="Tether base URL")
    parser.add_argument("--api-key", default=None, help="sent as a Bearer token")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per round")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the scenarios")
    parser.add_argument(
        "--without-capped", action="store_true", help="plain and catalog only (no Redis leases)"
    )
    args = parser.parse_args(argv)
    args.api = args.api.rstrip("/")
    return args


def merged(name: str, rounds: list[Result]) -> Result:
    out = Result(name=name, requests=0, errors=0, seconds=0.0, latencies_ms=[])
    for result in rounds:
        out.requests += result.requests
        out.errors += result.errors
        out.seconds += result.seconds
        out.latencies_ms += result.latencies_ms
        out.first_error = out.first_error or result.first_error
    out.latencies_ms.sort()
    return out


async def main(args: argparse.Namespace) -> int:
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    scenarios = {k: v for k, v in SCENARIOS.items() if k != "capped" or not args.without_capped}
    rounds: dict[str, list[Result]] = {name: [] for name in scenarios}
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:

        def create(model: str) -> Call:
            body = orjson.dumps({"model": model, "input": "hello there", "store": True})

            async def call() -> tuple[int, bytes]:
                url = f"{args.api}/v1/responses"
                async with session.post(url, data=body, headers=headers) as response:
                    return response.status, await response.read()

            return call

        for n in range(args.rounds):
            order = list(scenarios.items())
            for name, model in order if n % 2 == 0 else reversed(order):
                print(f"round {n + 1}/{args.rounds}: {name}", flush=True)
                result = await run_load(
                    name,
                    create(model),
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                    warmup=args.warmup,
                )
                if result.first_error:
                    print(f"  first error: {result.first_error}", file=sys.stderr)
                rounds[name].append(result)
    results = {name: merged(name, found) for name, found in rounds.items()}
    loop = "uvloop" if uvloop_in_use() else "asyncio"
    print(f"\nconcurrency {args.concurrency}, {args.rounds} rounds, client on {loop}\n")
    print(table(list(results.values())))
    print()
    plain = results["plain"]
    if plain.rps <= 0 or any(r.errors for r in results.values()):
        print("errors or no successful plain create: no ratio")
        return 1
    ratio = results["catalog"].rps / plain.rps
    verdict = "ok" if ratio >= CATALOG_VS_PLAIN_MIN else "MISSED"
    print(f"catalog / plain req/s: {ratio:.3f}  (target >= {CATALOG_VS_PLAIN_MIN})  {verdict}")
    if "capped" in results:
        print(f"capped / plain req/s: {results['capped'].rps / plain.rps:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main(parse_args(None))))
