"""The leases of the turns a request owns: a synchronous create stored before it ends (a stored
stream, or a create with an Idempotency-Key) is `in_progress` while its request runs, and only
that request can end it. Should the process die (kill -9, a container stopped past its grace),
nothing would; so the row carries a lease, renewed here for every such turn of the process in
one UPDATE, and the job sweeper (app/background/runtime.py) fails a turn whose lease ran out,
with the output of its last checkpoint (DESIGN §6.3, as for background jobs).

A checkpoint writes a turn's output so far with the renewal, only when it changed since the
last one: a stream costs one small write per renewal period at most, never one per delta.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.responses.repository import ResponsesRepository

log = logging.getLogger(__name__)

Progress = Callable[[], tuple[int, list[dict[str, Any]]]]  # (a version, the output so far)


@dataclass(slots=True)
class _Held:
    progress: Progress | None
    saved: int = -1  # the version last checkpointed


class TurnLeases:
    def __init__(self, engine: AsyncEngine, lease_seconds: float) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds
        self.held: dict[str, _Held] = {}
        self._task: asyncio.Task[None] | None = None

    def until(self) -> float:
        """A new lease's end: what a turn's row is stored with."""
        return time.time() + self.lease_seconds

    @contextlib.contextmanager
    def hold(self, response_id: str, progress: Progress | None = None) -> Iterator[None]:
        """Keep `response_id`'s lease while the block runs; `progress` gives its output so far
        for the checkpoints."""
        self.held[response_id] = _Held(progress)
        try:
            yield
        finally:
            self.held.pop(response_id, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tether-turn-leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.renew()
            except Exception:  # a database hiccup: the next renewal may still be in time
                log.exception("could not renew the leases of %d turns", len(self.held))

    async def renew(self) -> None:
        if not self.held:
            return
        until = self.until()
        plain: list[str] = []
        changed: list[tuple[str, int, list[dict[str, Any]]]] = []
        for response_id, held in list(self.held.items()):
            version, output = held.progress() if held.progress else (held.saved, [])
            if version == held.saved:
                plain.append(response_id)
            else:
                changed.append((response_id, version, output))
        async with self.engine.begin() as conn:
            repo = ResponsesRepository(conn)
            await repo.renew_turn_leases(plain, until)
            for response_id, _, output in changed:
                await repo.checkpoint_turn(response_id, output, until)
        for response_id, version, _ in changed:
            still = self.held.get(response_id)
            if still is not None:
                still.saved = version
