"""Which HTTP client should Tether use to call the upstream? Measure, don't guess.

    python bench/upstream_clients.py --upstream http://127.0.0.1:9100 --concurrency 16 --seconds 8

Each client runs inside one asyncio process the way the server would use it: one shared client,
`concurrency` tasks looping on POST /v1/chat/completions, each answer read and JSON-decoded.
This isolates the client's own cost; in the real server the client shares the CPU with request
handling, so the gap there shows up as server throughput rather than client throughput.
"""

import argparse
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import httpx
import orjson
from loadgen import Result, run, run_load, table, uvloop_in_use

HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench"}


async def with_aiohttp(url: str, payload: bytes, args: argparse.Namespace) -> Result:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def call() -> tuple[int, bytes]:
            async with session.post(url, data=payload, headers=HEADERS) as response:
                body = await response.read()
                orjson.loads(body)  # the server has to parse every answer too
                return response.status, body

        return await run_load(
            "aiohttp.ClientSession",
            call,
            concurrency=args.concurrency,
            seconds=args.seconds,
            warmup=args.warmup,
        )


async def with_httpx(url: str, payload: bytes, args: argparse.Namespace) -> Result:
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(http2=False, limits=limits, timeout=60) as client:

        async def call() -> tuple[int, bytes]:
            response = await client.post(url, content=payload, headers=HEADERS)
            orjson.loads(response.content)
            return response.status_code, response.content

        return await run_load(
            "httpx.AsyncClient (http1)",
            call,
            concurrency=args.concurrency,
            seconds=args.seconds,
            warmup=args.warmup,
        )


Bench = Callable[[str, bytes, argparse.Namespace], Coroutine[Any, Any, Result]]
CLIENTS: dict[str, Bench] = {
    "aiohttp": with_aiohttp,
    "httpx": with_httpx,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upstream", default="http://127.0.0.1:9100", help="fake upstream URL")
    parser.add_argument("--model", default="bench")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per client")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per client")
    args = parser.parse_args()

    url = args.upstream.rstrip("/").removesuffix("/v1") + "/v1/chat/completions"
    payload = orjson.dumps(
        {"model": args.model, "messages": [{"role": "user", "content": "hello there"}]}
    )
    results: dict[str, Result] = {}
    for name, bench in CLIENTS.items():
        print(f"{name}: {args.warmup:g}s warm-up + {args.seconds:g}s", flush=True)
        # A fresh event loop per client, so neither inherits the other's connections or tasks.
        results[name] = run(bench(url, payload, args))
        if results[name].first_error:
            print(f"  first error: {results[name].first_error}")

    loop = "uvloop" if uvloop_in_use() else "asyncio"
    print(f"\nconcurrency {args.concurrency}, one process, {loop} event loop\n")
    print(table(list(results.values())))
    fast, slow = results["aiohttp"], results["httpx"]
    if slow.rps > 0 and fast.p50 > 0:
        print(
            f"\naiohttp / httpx: req/s x{fast.rps / slow.rps:.2f}, "
            f"p50 x{slow.p50 / fast.p50:.2f} lower, p99 x{slow.p99 / fast.p99:.2f} lower"
        )


if __name__ == "__main__":
    main()
