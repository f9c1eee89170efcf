"""Handing background responses to whoever runs them. The app enqueues by task name and never
imports workers/ (STYLE: dependencies point workers -> app only).

With REDIS_URL: a Celery message per job. Without (embedded mode): the API process runs its jobs
itself and is their enqueuer (app.background.runtime.JobRuntime); the database is the queue, so
a restart loses nothing.
"""

import asyncio
import logging
from typing import Protocol

from celery import Celery

from app.config import Settings

log = logging.getLogger(__name__)

RUN_RESPONSE_TASK = "tether.run_response"


class Enqueuer(Protocol):
    async def enqueue(self, ids: list[str]) -> None: ...


def celery_client(settings: Settings) -> Celery:
    """A Celery app for sending only, configured like the workers' (same broker and queue)."""
    client = Celery("tether", broker=settings.redis_url)
    client.conf.update(
        task_default_queue=settings.celery_queue,
        task_serializer="json",
        broker_connection_retry_on_startup=True,
    )
    return client


class CeleryEnqueuer:
    def __init__(self, client: Celery) -> None:
        self.client = client

    async def enqueue(self, ids: list[str]) -> None:
        # kombu's producer blocks on Redis: keep it off the event loop.
        await asyncio.to_thread(self._send, ids)

    def _send(self, ids: list[str]) -> None:
        for response_id in ids:
            try:
                self.client.send_task(RUN_RESPONSE_TASK, args=[response_id])
            except Exception:  # the row stays queued; the sweeper hands it again
                log.exception("could not enqueue %s", response_id)
