"""Streaming: time to first event, and many concurrent streams checked event by event.

    python bench/streaming_bench.py --api http://127.0.0.1:8000 --upstream http://127.0.0.1:9100

Starts nothing itself. Tether must run with REDIS_URL and one worker process for the background
rows (see bench/README.md); the fake upstream is scripted over its control endpoint.

  sync first event        POST stream=true: request sent -> first SSE event, vs the upstream's
                          own first chunk called directly (target: p50 <= 15 ms over it)
  background first event  POST background+stream: request sent -> first event (p50 <= 50 ms)
  N concurrent streams    N background streams of a 100-token answer at once; each checked:
                          no error, sequence numbers 0..n-1 with none missing or repeated, the
                          deltas add up to the answer, a terminal event at the end
"""

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from typing import Any

import aiohttp
import orjson
from loadgen import rss_bytes, run

JSON_HEADERS = {"Content-Type": "application/json"}
SYNC_OVER_UPSTREAM_MAX_MS = 15.0
BACKGROUND_FIRST_EVENT_MAX_MS = 50.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--upstream", default="http://127.0.0.1:9100")
    parser.add_argument("--samples", type=int, default=200, help="first-event measurements")
    parser.add_argument("--streams", type=int, default=200, help="concurrent streams")
    parser.add_argument("--tokens", type=int, default=100, help="words in each streamed answer")
    parser.add_argument("--chunk-delay", type=float, default=0.01, help="upstream s per token")
    parser.add_argument("--api-pid", type=int, help="the API's process: its memory per stream")
    parser.add_argument("--worker-pid", type=int, help="the worker's process: the same")
    return parser.parse_args()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def sse_events(response: aiohttp.ClientResponse) -> Any:
    """Parsed `data:` payloads of an SSE body, as they arrive."""
    async for line in response.content:
        if line.startswith(b"data:"):
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            yield orjson.loads(data)


async def script(session: aiohttp.ClientSession, upstream: str, model: str, **knobs: Any) -> None:
    async with session.post(f"{upstream}/_fake/script", json={"model": model, **knobs}) as r:
        r.raise_for_status()


async def first_event_ms(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    async with session.post(url, data=orjson.dumps(body), headers=JSON_HEADERS) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
        async for _ in sse_events(response):
            elapsed = (time.perf_counter() - started) * 1000
            break
        else:
            raise RuntimeError("stream ended with no event")
        await response.read()  # drain, so the connection is reused cleanly
    return elapsed


async def first_events(args: argparse.Namespace, session: aiohttp.ClientSession) -> None:
    model = f"stream-{uuid.uuid4().hex[:6]}"
    await script(session, args.upstream, model, reply="hello there, streaming world")
    chat = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    cases = {
        "upstream first chunk": (f"{args.upstream}/v1/chat/completions", chat),
        "sync first event": (
            f"{args.api}/v1/responses",
            {"model": model, "input": "hi", "stream": True},
        ),
        "background first event": (
            f"{args.api}/v1/responses",
            {"model": model, "input": "hi", "stream": True, "background": True},
        ),
    }
    p50s: dict[str, float] = {}
    print(f"{'first event (sequential)':28} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (url, body) in cases.items():
        samples = [await first_event_ms(session, url, body) for _ in range(args.samples)]
        p50s[name] = statistics.median(samples)
        print(f"{name:28} {p50s[name]:8.2f} {pct(samples, 0.99):8.2f}")
    over = p50s["sync first event"] - p50s["upstream first chunk"]
    ok = over <= SYNC_OVER_UPSTREAM_MAX_MS
    print(
        f"sync first event over the upstream's: {over:.2f} ms p50 "
        f"(target <= {SYNC_OVER_UPSTREAM_MAX_MS:.0f})  {'ok' if ok else 'MISSED'}"
    )
    bg = p50s["background first event"]
    ok = bg <= BACKGROUND_FIRST_EVENT_MAX_MS
    print(
        f"background first event: {bg:.2f} ms p50 "
        f"(target <= {BACKGROUND_FIRST_EVENT_MAX_MS:.0f})  {'ok' if ok else 'MISSED'}"
    )


async def one_stream(
    session: aiohttp.ClientSession, api: str, model: str, expected: str
) -> str | None:
    """Run one background stream to its end; None if it was perfect, else what went wrong."""
    body = {"model": model, "input": "go", "stream": True, "background": True}
    events: list[dict[str, Any]] = []
    async with session.post(
        f"{api}/v1/responses", data=orjson.dumps(body), headers=JSON_HEADERS
    ) as response:
        if response.status != 200:
            return f"HTTP {response.status}"
        async for event in sse_events(response):
            events.append(event)
    numbers = [e.get("sequence_number") for e in events]
    if numbers != list(range(len(events))):
        return f"sequence numbers {numbers[:5]}... not 0..{len(events) - 1}"
    if any(e["type"] == "error" for e in events):
        return "error event"
    if not events or events[-1]["type"] != "response.completed":
        return f"ended with {events[-1]['type'] if events else 'nothing'}"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    if text != expected or events[-1]["response"]["output"][0]["content"][0]["text"] != expected:
        return "deltas do not add up to the answer"
    return None


async def concurrent(args: argparse.Namespace, session: aiohttp.ClientSession) -> None:
    model = f"many-{uuid.uuid4().hex[:6]}"
    answer = " ".join(f"t{n}" for n in range(args.tokens))
    await script(session, args.upstream, model, reply=answer, chunk_delay=args.chunk_delay)
    # The fake streams one word per delta, its whitespace attached.
    pids = {"API": args.api_pid, "worker": args.worker_pid}
    before = {name: rss_bytes(pid) for name, pid in pids.items() if pid is not None}
    peak = dict(before)
    started = time.perf_counter()
    streams = asyncio.gather(
        *(one_stream(session, args.api, model, answer) for _ in range(args.streams)),
        return_exceptions=True,
    )
    while not streams.done():  # the peak: while every stream is open at once
        for name, pid in pids.items():
            if pid is not None:
                peak[name] = max(peak[name], rss_bytes(pid))
        await asyncio.wait([streams], timeout=0.05)
    results = streams.result()
    elapsed = time.perf_counter() - started
    problems = [r for r in results if r is not None]
    ideal = args.tokens * args.chunk_delay
    print(
        f"\n{args.streams} concurrent background streams of {args.tokens} tokens "
        f"(the model alone takes {ideal:.1f} s each): all done in {elapsed:.2f} s, "
        f"{len(problems)} with a problem  {'ok' if not problems else 'MISSED'}"
    )
    for problem in problems[:5]:
        print(f"  {problem!r}")
    for name, start in before.items():
        grown = peak[name] - start
        print(
            f"{name} RSS: {start / 2**20:.0f} MB before, {peak[name] / 2**20:.0f} MB at the peak: "
            f"{grown / args.streams / 1024:.0f} KB per live stream"
        )


async def main(args: argparse.Namespace) -> int:
    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=args.streams + 16)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await first_events(args, session)
        await concurrent(args, session)
    return 0


if __name__ == "__main__":
    sys.exit(run(main(parse_args())))
