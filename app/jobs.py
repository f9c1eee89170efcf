"""Handing background responses to whoever runs them. The app enqueues by task name and never
imports workers/ (STYLE: dependencies point workers -> app only).

With REDIS_URL: a Celery message per batch of jobs handed over together. Without (embedded
mode): the API process runs its jobs itself and is their enqueuer
(app.background.runtime.JobRuntime); the database is the queue, so a restart loses nothing.
"""

import logging
import queue
import threading
from typing import Protocol

from celery import Celery

from app.config import Settings

log = logging.getLogger(__name__)

RUN_RESPONSE_TASK = "tether.run_response"  # one id: what earlier versions sent
RUN_RESPONSES_TASK = "tether.run_responses"
# Ids that reach the publishing thread together go out as one message, up to this many. Celery
# and its Redis transport cost a worker ~0.4 of its CPU per message (receive, ack, thread
# hand-off): per job, as it was, that was the larger part of a short job. A batch is not
# held back to fill up: it is whatever arrived while the previous message was being sent.
PUBLISH_BATCH = 32


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
        stopping = False
        while not stopping:
            ids: list[str] = []
            item = self.ids.get()
            while item is not None:
                ids.append(item)
                if len(ids) == PUBLISH_BATCH or self.ids.empty():
                    break
                item = self.ids.get()
            stopping = item is None
            if not ids:
                continue
            try:
                self.client.send_task(RUN_RESPONSES_TASK, args=[ids])
            except Exception:  # the rows stay queued; the sweeper hands them again
                log.exception("could not enqueue %s", ", ".join(ids))

    def close(self, timeout: float = 5.0) -> None:
        """Publish what was handed over, then stop."""
        self.ids.put(None)
        self.thread.join(timeout)
