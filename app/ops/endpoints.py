"""/metrics (Prometheus), /healthz (the process is alive) and /readyz (it can serve)."""

import asyncio
import logging

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from app.auth import require_admin
from app.background.repository import JobsRepository
from app.kit.http import json_response
from app.ops import metrics
from app.ops.health import CHECK_TIMEOUT, not_ready
from app.webhooks.repository import DeliveriesRepository

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def get_metrics(request: Request) -> Response:
    """Prometheus text format. Needs the admin key unless METRICS_PUBLIC=true."""
    state = request.app.state
    if not state.settings.metrics_public:
        require_admin(request)
    jobs: dict[str, int] | None
    pending: int | None
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), state.engine.connect() as conn:
            jobs = await JobsRepository(conn).count_unfinished()
            pending = await DeliveriesRepository(conn).count_pending()
    except Exception as exc:  # the rest of the metrics are worth having all the same
        log.warning("/metrics: could not count the jobs and webhook deliveries: %r", exc)
        jobs = pending = None
    snapshot = metrics.Snapshot(jobs, metrics.pool_usage(state.engine.pool), pending)
    body = await asyncio.to_thread(metrics.render, snapshot)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz() -> Response:
    """200 while the process serves; it asks nothing of the database (see /readyz)."""
    return json_response({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """200 when this process can serve: database reachable and migrated, and in Celery mode
    Redis reachable with a live worker; else 503 with the reasons."""
    state = request.app.state
    reasons = await not_ready(state.engine, state.settings, state.redis)
    if reasons:
        return json_response({"status": "unavailable", "reasons": reasons}, 503)
    return json_response({"status": "ok"})
