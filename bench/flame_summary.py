"""Summarise a `py-spy record -f raw` profile: where the samples go, by function.

    py-spy record -p <pid> -d 15 -r 200 -f raw -o create.raw   # while a bench loads the server
    python bench/flame_summary.py create.raw [--top 40] [--match app/]

Prints, per function (file:name), the share of samples it is on the stack for (inclusive) and
at the top of (self). Idle samples (the event loop waiting in select/epoll) are counted
separately, so the shares are of the time the process was busy.
"""

import argparse
import collections
import re

IDLE = re.compile(r"\b(select|poll|epoll_wait|_run_once \(asyncio/base_events|run_forever)\b")


def frame_key(frame: str) -> str:
    # py-spy frames read "name (path/to/file.py:123)"; lines differ per call site, drop them.
    return re.sub(r":\d+\)$", ")", frame.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="", help="only functions whose frame contains this")
    args = parser.parse_args()

    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    with open(args.raw) as raw:
        for line in raw:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = [frame_key(f) for f in stack.split(";")]
            if "select (selectors.py)" in frames[-1] or "epoll" in frames[-1]:
                idle += count
                continue
            busy += count
            own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    total = busy + idle
    print(f"samples: {total}, busy {busy} ({100 * busy / max(total, 1):.0f} %), idle {idle}")
    print(f"\n{'incl %':>7} {'self %':>7}  function (of busy samples)")
    shown = 0
    for frame, count in inclusive.most_common():
        if args.match not in frame:
            continue
        print(f"{100 * count / busy:7.1f} {100 * own[frame] / busy:7.1f}  {frame}")
        shown += 1
        if shown >= args.top:
            break
    print(f"\n{'self %':>7}  top of stack")
    for frame, count in own.most_common(args.top // 2):
        print(f"{100 * count / busy:7.1f}  {frame}")


if __name__ == "__main__":
    main()
