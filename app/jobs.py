"""Handing background responses to whoever runs them. The app enqueues by task name and never
imports workers/ (STYLE: dependencies point workers -> app only).

With REDIS_URL: a Celery message per job. Without (embedded mode): the API process runs its jobs
itself and is their enqueuer (app.background.runtime.JobRuntime); the database is the queue, so
a restart loses nothing.
"""

import logging
import queue
import threading
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
    """Publishes run_response tasks from one thread of its own.

    kombu publishes synchronously; run per create in a worker thread it was most of a
    background create's time. The row is committed before enqueue() is called and the sweeper
    re-enqueues any queued row left behind, so the request need not wait for the publish: it
    hands the ids over and answers.
    """

    def __init__(self, client: Celery) -> None:
        self.client = client
        self.ids: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._publish, name="tether-enqueue", daemon=True)
        self.thread.start()

    async def enqueue(self, ids: list[str]) -> None:
        for response_id in ids:
            self.ids.put(response_id)

    def _publish(self) -> None:
        while (response_id := self.ids.get()) is not None:
            try:
                self.client.send_task(RUN_RESPONSE_TASK, args=[response_id])
            except Exception:  # the row stays queued; the sweeper hands it again
                log.exception("could not enqueue %s", response_id)

    def close(self, timeout: float = 5.0) -> None:
        """Publish what was handed over, then stop."""
        self.ids.put(None)
        self.thread.join(timeout)
