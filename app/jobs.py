"""Handing background responses to whoever runs them. The app enqueues by task name and never
imports workers/ (STYLE: dependencies point workers -> app only).

With REDIS_URL: Celery messages, each carrying the jobs handed over together (at most
PUBLISH_BATCH). Without (embedded mode): the API process runs its jobs itself and is their
enqueuer (app.background.runtime.JobRuntime); the database is the queue, so a restart loses
nothing.

A create `submit`s its job: filed for fair scheduling across projects and tiers, with a ticket
that lets a worker take the fairest job waiting (app/kit/fair.py). A rescue (the
sweeper's) `enqueue`s the job itself, to run as soon as a worker is free.
"""

import logging
import queue
import threading
from typing import Protocol

from celery import Celery

from app.config import Settings
from app.kit.fair import QueuedJob, RedisFairFiler

log = logging.getLogger(__name__)

RUN_RESPONSE_TASK = "tether.run_response"  # one id: what earlier versions sent
RUN_RESPONSES_TASK = "tether.run_responses"  # ids to run now (rescues)
# Tickets: each runs the fairest queued job (the ticket's own id if none is filed).
RUN_NEXT_TASK = "tether.run_next"
# What reaches the publishing thread together goes out together: filed in one round trip (up
# to DRAIN_MAX), and sent as messages of at most PUBLISH_BATCH ids. Celery and its Redis
# transport cost a worker ~0.4 of its CPU per message (receive, ack, thread hand-off): per job,
# as it was, that was the larger part of a short job. Nothing is held back to fill a batch: it
# is whatever arrived while the previous one was being sent.
DRAIN_MAX = 500
PUBLISH_BATCH = 32
# How many ids a message carries, in its headers: the sweeper counts the jobs a queue holds
# without decoding every message's body (app/background/backlog.py).
IDS_HEADER = "tether_ids"


class Enqueuer(Protocol):
    async def enqueue(self, ids: list[str]) -> None:
        """Run these jobs as soon as there is room (rescues)."""
        ...

    async def submit(self, jobs: list[QueuedJob]) -> None:
        """New jobs, taken in their fair turn across projects and tiers."""
        ...


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

    def __init__(self, client: Celery, filer: RedisFairFiler | None = None) -> None:
        self.client = client
        self.filer = filer
        self.ids: queue.SimpleQueue[str | QueuedJob | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._publish, name="tether-enqueue", daemon=True)
        self.thread.start()

    async def enqueue(self, ids: list[str]) -> None:
        for response_id in ids:
            self.ids.put(response_id)

    async def submit(self, jobs: list[QueuedJob]) -> None:
        for job in jobs:
            self.ids.put(job if self.filer is not None else job.id)

    def _publish(self) -> None:
        while True:
            batch = [self.ids.get()]
            while batch[-1] is not None and len(batch) < DRAIN_MAX:
                try:
                    batch.append(self.ids.get_nowait())
                except queue.Empty:
                    break
            self._send([item for item in batch if item is not None])
            if batch[-1] is None:
                return

    def _send(self, items: list[str | QueuedJob]) -> None:
        jobs = [item for item in items if isinstance(item, QueuedJob)]
        if jobs and self.filer is not None:
            try:  # filed before their tickets are sent: a ticket always finds a job
                self.filer.file(jobs)
            except Exception:  # each ticket runs its own job if none is filed; else the sweeper
                log.exception("could not file %d jobs for their fair turn", len(jobs))
        rescues = [item for item in items if isinstance(item, str)]
        for task, ids in ((RUN_NEXT_TASK, [job.id for job in jobs]), (RUN_RESPONSES_TASK, rescues)):
            for start in range(0, len(ids), PUBLISH_BATCH):
                chunk = ids[start : start + PUBLISH_BATCH]
                try:
                    self.client.send_task(task, args=[chunk], headers={IDS_HEADER: len(chunk)})
                except Exception:  # the rows stay queued; the sweeper hands them again
                    log.exception("could not enqueue %s", ", ".join(chunk))

    def close(self, timeout: float = 5.0) -> None:
        """Publish what was handed over, then stop."""
        self.ids.put(None)
        self.thread.join(timeout)
        if self.filer is not None:
            self.filer.close()


def celery_enqueuer(settings: Settings) -> CeleryEnqueuer:
    """The enqueuer of a process in Celery mode, filing new jobs for their fair turn."""
    assert settings.redis_url
    filer = RedisFairFiler(settings.redis_url, settings.celery_queue)
    return CeleryEnqueuer(celery_client(settings), filer)
