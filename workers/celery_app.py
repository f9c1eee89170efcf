"""The Celery app: `celery -A workers.celery_app worker`.

Model calls are long and I/O-bound, so a worker process carries hundreds of jobs at once: the
pool is threads (worker_concurrency, default 500), and each task thread hands its job to the
process's one asyncio event loop (workers/runtime.py) and waits for it. A prefork pool would
hold one job per process. Waiting keeps acks late: a job's message is acknowledged only once
its response reached a terminal status.

Broker: Redis (REDIS_URL). Without it Tether runs in embedded mode and needs no worker at all.
"""

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from app.config import get_settings
from app.jobs import RUN_RESPONSE_TASK  # noqa: F401  (the name the tasks register under)

settings = get_settings()

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
    # Longer than the longest job, so Redis does not redeliver a job still running; a worker
    # that died is noticed much sooner through its lease (DESIGN §6.3).
    broker_transport_options={"visibility_timeout": int(settings.upstream_timeout) + 600},
    # Bounds a stuck job: past the upstream timeout and every retry, the task is ended.
    task_time_limit=int(settings.upstream_timeout * (settings.job_upstream_retries + 1)) + 120,
)


@worker_ready.connect
def _start_runtime(**_: object) -> None:
    # The sweeper must run even on a worker that receives no task: it is what rescues the jobs
    # of a worker that died.
    from workers.runtime import get_runtime

    get_runtime()


@worker_shutdown.connect
def _stop_runtime(**_: object) -> None:
    from workers.runtime import stop_runtime

    stop_runtime()
