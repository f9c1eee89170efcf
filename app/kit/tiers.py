"""OpenAI's service tiers as Tether schedules them: `priority` before `default` before `flex`.

`auto`, `scale`, or none at all are served as `default`. The tier decides which background job
a worker takes next (app/kit/fair.py) and who gets the next free place at a model that
is at its concurrency limit (app/providers/router.py); the Response reports it (unless the
upstream itself says which tier served it).
"""

from enum import StrEnum


class Tier(StrEnum):
    PRIORITY = "priority"
    DEFAULT = "default"
    FLEX = "flex"


# Lower goes first.
RANK = {Tier.PRIORITY: 0, Tier.DEFAULT: 1, Tier.FLEX: 2}


def tier_of(service_tier: str | None) -> Tier:
    """The tier a request's `service_tier` is served at."""
    if service_tier == Tier.PRIORITY:
        return Tier.PRIORITY
    if service_tier == Tier.FLEX:
        return Tier.FLEX
    return Tier.DEFAULT
