"""The asyncio side of a worker process: one event loop thread, shared by every task thread.

Created after the pool exists (per process, never inherited through a fork), as SQLAlchemy's
pooling docs ask: the engine and the upstream client belong to the loop that uses them.
"""

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from app.background.eventlog import create_event_log
from app.background.runtime import JobRuntime
from app.config import get_settings
from app.db import create_engine
from app.jobs import CeleryEnqueuer
from app.providers.registry import Providers


class WorkerRuntime:
    def __init__(self) -> None:
        from workers.celery_app import app as celery

        settings = get_settings()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="tether-jobs", daemon=True
        )
        self.thread.start()
        self.engine = create_engine(settings)
        self.providers = Providers(settings)
        self.log = create_event_log(settings, self.engine)
        self.enqueuer = CeleryEnqueuer(celery)
        self.jobs = JobRuntime(
            self.engine, self.providers, settings, self.log, requeue=self.enqueuer.enqueue
        )
        self.call(self._start())

    async def _start(self) -> None:
        self.jobs.start()

    def call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def run(self, response_id: str) -> None:
        """Run one job to its end; called from a task thread, which waits."""
        self.call(self.jobs.run(response_id))

    def stop(self) -> None:
        self.call(self._stop())
        self.enqueuer.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _stop(self) -> None:
        await self.jobs.stop()
        await self.log.close()
        await self.providers.close()
        await self.engine.dispose()


_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def get_runtime() -> WorkerRuntime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = WorkerRuntime()
        return _runtime


def stop_runtime() -> None:
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.stop()
            _runtime = None
