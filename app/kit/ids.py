"""OpenAI-style ids whose body sorts by creation time.

Cursor pagination needs a total order; a microsecond timestamp in front of random bits gives one
that agrees with creation order across processes (up to clock skew) without a sequence.
"""

import secrets
import time


def new_id(prefix: str) -> str:
    # 14 hex digits of microseconds last until the year 4253; 34 random hex digits after them make
    # the body 48 characters long, like OpenAI's.
    return f"{prefix}_{time.time_ns() // 1000:014x}{secrets.token_hex(17)}"


def now_seconds() -> int:
    return int(time.time())
