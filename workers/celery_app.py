"""The Celery app: `celery -A workers.celery_app worker`.

Broker: Redis when REDIS_URL is set; otherwise kombu's SQLAlchemy transport on a SQLite file
next to the database, so the embedded mode needs no broker server. Background jobs arrive with
the background-responses issue; the reliability settings are in place from the start.
"""

from celery import Celery

from app.config import get_settings

settings = get_settings()
broker = settings.redis_url or "sqla+sqlite:///tether-broker.db"

app = Celery("tether", broker=broker, include=["workers.tasks"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,  # the database holds every status; no result backend
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
if settings.redis_url:
    # Longer than the longest job, so Redis does not redeliver a job still running.
    app.conf.broker_transport_options = {"visibility_timeout": int(settings.upstream_timeout) + 600}
