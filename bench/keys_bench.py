"""What API keys cost: create and retrieve against a Tether with keys and one without, in the
same run, alternating rounds so that drift on a shared machine hits both alike.

    python bench/keys_bench.py --keys-off http://127.0.0.1:8000 \\
        --keys-on http://127.0.0.1:8001 --api-key sk-tether-... --rounds 2

Both servers run against the same fake upstream, each on a database of its own (the keys-on
one holding the key; see bench/README.md). Prints req/s and p99 per round and the keys-on /
keys-off ratio of the medians (target >= 0.9).
"""

import argparse
import statistics
import sys

import aiohttp
from loadgen import Result, run, run_scenarios, table
from responses_bench import Bench

TARGET = 0.9
SCENARIOS = ["create (store=true)", "retrieve"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys-off", required=True, help="Tether without keys (keyless mode)")
    parser.add_argument("--keys-on", required=True, help="Tether whose database has keys")
    parser.add_argument("--api-key", required=True, help="a key of the keys-on server")
    parser.add_argument("--upstream", default="http://127.0.0.1:9100")
    parser.add_argument("--model", default="bench")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--retrieve-ids", type=int, default=200)
    return parser.parse_args()


async def measure(args: argparse.Namespace, api: str, key: str | None) -> dict[str, Result]:
    one = argparse.Namespace(**{**vars(args), "api": api, "api_key": key, "depth": 1})
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        scenarios = Bench(session, one).scenarios()
        return await run_scenarios(
            scenarios,
            SCENARIOS,
            concurrency=args.concurrency,
            seconds=args.seconds,
            warmup=args.warmup,
        )


async def main(args: argparse.Namespace) -> int:
    runs: dict[str, list[Result]] = {"keys off": [], "keys on": []}
    for n in range(args.rounds):
        for label, api, key in (
            ("keys off", args.keys_off, None),
            ("keys on", args.keys_on, args.api_key),
        ):
            print(f"\n== round {n + 1}, {label}", flush=True)
            for result in (await measure(args, api, key)).values():
                result.name = f"{result.name} [{label}, round {n + 1}]"
                runs[label].append(result)
    print()
    print(table(runs["keys off"] + runs["keys on"]))
    print()
    ok = True
    for scenario in SCENARIOS:

        def median(label: str, name: str = scenario) -> float:
            return statistics.median(r.rps for r in runs[label] if r.name.startswith(name))

        ratio = median("keys on") / median("keys off")
        ok = ok and ratio >= TARGET
        verdict = "met" if ratio >= TARGET else "MISSED"
        print(f"{scenario}: keys on / keys off = {ratio:.2f} (target >= {TARGET}) {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run(main(parse_args())))
