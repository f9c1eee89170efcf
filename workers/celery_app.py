"""The Celery app: `celery -A workers.celery_app worker`.

Model calls are long and I/O-bound, so a worker process carries hundreds of jobs at once: the
pool is threads (worker_concurrency, default 500), and each task thread hands its job to the
process's one asyncio event loop (workers/runtime.py) and waits for it. A prefork pool would
hold one job per process. Waiting keeps acks late: a job's message is acknowledged only once
its response reached a terminal status.

Broker: Redis (REDIS_URL). Without it Tether runs in embedded mode and needs no worker at all.
"""

from celery import Celery
from celery.signals import setup_logging, worker_ready, worker_shutdown, worker_shutting_down

from app.config import settings_or_exit
from app.kit.logs import configure_logging
from workers.runtime import get_runtime, release_after, stop_runtime

settings = settings_or_exit("tether worker")

app = Celery("tether", broker=settings.redis_url, include=["workers.tasks.responses"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,  # the database holds every status; no result backend
    task_default_queue=settings.celery_queue,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_pool="threads",
    worker_concurrency=settings.worker_concurrency,
    broker_connection_retry_on_startup=True,
    # Survives the broker restarting under jobs in flight (workers/consumer.py).
    worker_consumer="workers.consumer:Consumer",
    # Longer than the longest job, so Redis does not redeliver a job still running; a worker
    # that died is noticed much sooner through its lease (DESIGN §6.3).
    broker_transport_options={"visibility_timeout": int(settings.job_time_limit_seconds) + 600},
    # No task_time_limit: only the prefork pool enforces it. A job is bounded by JOB_TIME_LIMIT
    # in the job engine, and its task thread's wait by workers/runtime.py.
)


@setup_logging.connect
def _logging(**_: object) -> None:
    # Connected, so Celery leaves the root logger to us: one format for API and workers.
    configure_logging(settings)


@worker_ready.connect
def _start_runtime(**_: object) -> None:
    # The sweeper must run even on a worker that receives no task: it is what rescues the jobs
    # of a worker that died.
    get_runtime()


@worker_shutting_down.connect
def _drain(**_: object) -> None:
    # SIGTERM (a warm shutdown): Celery stops consuming and waits for the tasks in flight. A
    # model call may outlast the orchestrator's patience, and a SIGKILLed worker's jobs wait for
    # their lease and are charged an attempt; so after WORKER_DRAIN_SECONDS what still runs is
    # given back (queued again, the attempt not counted) and another worker's sweeper sends it
    # out again at once.
    release_after(settings.worker_drain_seconds)


@worker_shutdown.connect
def _stop_runtime(**_: object) -> None:
    stop_runtime()
