"""Where the machine's cores go while Tether serves a closed-loop load of creates.

    python bench/cpu_split.py --api http://127.0.0.1:8000 --api-key sk-... \\
        [--seconds 10] [--concurrency 16] [--group NAME=PATTERN ...]

Loads `POST /v1/responses` (store=true) as responses_bench.py's create does, and meanwhile
reads the CPU time of every process whose command line matches each group's pattern
(`pgrep -f`): by default the API on --api's port (every worker process of `--workers N`),
PostgreSQL's backends of --database, the fake upstream on --upstream-port, and this load
generator itself. Prints
req/s, then per group its CPU in ms per request and its share of the machine's cores. With one
API process against two, this tells where a second core goes: to Tether, or to the database,
the model server and the client that share the box.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time

import aiohttp
from loadgen import cpu_seconds, run, run_load
from responses_bench import Bench


def default_groups(args: argparse.Namespace) -> dict[str, str]:
    """The processes of this stack only: the box may run others' servers and databases."""
    port = args.api.rsplit(":", 1)[-1]
    return {
        "api": f"app.main:app.*--port {port}",
        "postgres": f"^postgres: .* {args.database} ",
        "fake upstream": f"tests.fakes.upstream --port {args.upstream_port}",
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--model", default="bench")
    parser.add_argument("--database", default="bench", help="the database Tether writes")
    parser.add_argument("--upstream-port", default="9100")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME=PATTERN",
        help="a process group to measure (pgrep -f PATTERN); replaces the defaults",
    )
    args = parser.parse_args()
    args.api = args.api.rstrip("/")
    args.upstream = ""
    args.reference = None
    args.depth = 1
    return args


def pids(pattern: str) -> list[int]:
    """The processes matching `pattern`, with their descendants (uvicorn's --workers children
    are started by multiprocessing, under a command line of its own)."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    mine = {os.getpid(), os.getppid()}
    todo = [int(p) for p in found.split() if int(p) not in mine]
    seen: list[int] = []
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        todo += [int(c) for c in children.stdout.split()]
    return seen


def group_cpu(groups: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    readings: dict[str, dict[int, float]] = {}
    for name, members in groups.items():
        readings[name] = {}
        for pid in members:
            try:
                readings[name][pid] = cpu_seconds(pid)
            except FileNotFoundError:  # ended meanwhile
                pass
    return readings


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two readings, of the processes alive at both."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


async def main(args: argparse.Namespace) -> int:
    wanted = dict(g.split("=", 1) for g in args.group) if args.group else default_groups(args)
    groups = {name: pids(pattern) for name, pattern in wanted.items()}
    groups["load generator"] = [os.getpid()]
    for name, members in groups.items():
        print(f"{name}: {len(members)} processes")
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        call = await Bench(session, args).scenarios()["create (store=true)"]()
        load = asyncio.create_task(
            run_load(
                "create (store=true)",
                call,
                concurrency=args.concurrency,
                seconds=args.seconds,
                warmup=args.warmup,
            )
        )
        await asyncio.sleep(args.warmup)
        before, started = group_cpu(groups), time.perf_counter()
        result = await load
        after, wall = group_cpu(groups), time.perf_counter() - started
    cores = os.cpu_count() or 1
    print(f"\ncreate: {result.rps:.0f} req/s, p50 {result.p50:.1f} ms, p99 {result.p99:.1f} ms")
    print(f"errors: {result.errors}" + (f" (first: {result.first_error})" if result.errors else ""))
    print(f"\n{'group':<16} {'ms CPU/req':>10} {'cores':>6} {'of machine':>10}")
    total = 0.0
    for name in groups:
        used = spent(before[name], after[name])
        total += used
        per = used * 1000 / max(result.requests, 1)
        print(f"{name:<16} {per:10.3f} {used / wall:6.2f} {100 * used / wall / cores:9.0f} %")
    print(
        f"{'all measured':<16} {total * 1000 / max(result.requests, 1):10.3f} "
        f"{total / wall:6.2f} {100 * total / wall / cores:9.0f} %"
    )
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(run(main(parse_args())))
