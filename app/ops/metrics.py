"""Every Prometheus metric Tether exports, in one place; GET /metrics renders them
(app/ops/endpoints.py).

Labels are bounded on purpose: a route is its template (`/v1/responses/{response_id}`, never
the raw path), a method outside the standard ones is `OTHER`, and a model name past the first
MAX_MODELS a process saw is `other` (clients choose model names, and each label value is a time
series kept forever).

With PROMETHEUS_MULTIPROC_DIR set (several uvicorn processes, or workers sharing the API's
host), every process writes its samples to files there and a scrape adds them up
(prometheus_client's multiprocess mode; the directory must be empty when the processes start).
What is computed at scrape time (jobs by status, the DB pool) is the scraped process's view:
jobs are counted in the database, for every project; the pool is that process's own.
"""

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Model calls and jobs run from well under a second to the 600 s upstream timeout.
LONG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, float("inf"))

REQUEST_SECONDS = Histogram(
    "tether_http_request_duration_seconds",
    "HTTP requests served, by route template, method and status.",
    ["route", "method", "status"],
)
UPSTREAM_SECONDS = Histogram(
    "tether_upstream_request_duration_seconds",
    "Calls to the model server (a streamed one until its last chunk), by model.",
    ["model"],
    buckets=LONG_BUCKETS,
)
UPSTREAM_FAILURES = Counter(
    "tether_upstream_failures",
    "Failed calls to the model server, by model and kind (unreachable, timeout, rate_limited, "
    "server, client).",
    ["model", "kind"],
)
JOB_SECONDS = Histogram(
    "tether_job_duration_seconds",
    "Background job runs, from claim to end, by outcome (the response's final status; "
    "`dropped`: cancelled or re-run meanwhile; `stopped`: cancelled while running; "
    "`released`: given back at shutdown).",
    ["outcome"],
    buckets=LONG_BUCKETS,
)
JOB_RETRIES = Counter(
    "tether_job_upstream_retries",
    "Transient upstream failures of background jobs retried.",
)
JOBS_SWEPT = Counter(
    "tether_jobs_swept",
    "The sweeper's actions: `rerun` (lease lost, run again), `failed` (lease lost on every "
    "attempt), `requeued` (queued but its task lost, handed to the queue again).",
    ["action"],
)
WEBHOOK_DELIVERIES = Counter(
    "tether_webhook_delivery_attempts",
    "Webhook delivery attempts, by outcome: `delivered` (2xx), `retry` (another attempt is "
    "scheduled), `failed` (the retry window closed), `disabled` (410 Gone: the endpoint is "
    "disabled).",
    ["outcome"],
)
WEBHOOK_LATENCY = Histogram(
    "tether_webhook_delivery_latency_seconds",
    "From a background response's terminal status to its receiver's 2xx, retries included.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 300.0, 3600.0, float("inf")),
)
HOSTED_TOOLS_OMITTED = Counter(
    "tether_hosted_tools_omitted",
    "Built-in tools (web_search, file_search, mcp, ...) left out of a model call because the "
    "upstream cannot run them (HOSTED_TOOLS=omit), by type.",
    ["type"],
)
STREAM_FOLLOWERS = Gauge(
    "tether_stream_followers",
    "Clients following a background response's live stream.",
    multiprocess_mode="livesum",
)
UPSTREAM_CIRCUIT_OPEN = Gauge(
    "tether_upstream_circuit_open",
    "1 while a catalog deployment is skipped after failing (its circuit open or half-open), "
    "0 once it answers again; each process decides from its own calls.",
    ["model", "deployment"],
    multiprocess_mode="livemax",
)
UPSTREAM_FAILOVERS = Counter(
    "tether_upstream_failovers",
    "Calls a catalog deployment failed (refused, timed out, 5xx, 429) before anything was "
    "streamed, tried again on another deployment of the model.",
    ["model", "deployment"],
)
MODEL_QUEUE_REJECTED = Counter(
    "tether_model_queue_rejected",
    "Requests answered 429 after waiting MODEL_QUEUE_SECONDS for a place at a catalog model "
    "whose deployments were all at their max_concurrency.",
    ["model"],
)

MAX_MODELS = 100
_models: set[str] = set()
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def model_label(model: str) -> str:
    """`model`, or `other` once this process has seen MAX_MODELS distinct names."""
    if model in _models:
        return model
    if len(_models) >= MAX_MODELS or len(model) > 200:
        return "other"
    _models.add(model)
    return model


# Each request's histogram child, by its labels: labels() takes a lock and builds a key per
# call, ~3 % of a /healthz. Bounded: route templates x methods x statuses.
_request_children: dict[tuple[str, str, int], Histogram] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "OTHER"
    key = (route, method, status)
    child = _request_children.get(key)
    if child is None:
        child = _request_children[key] = REQUEST_SECONDS.labels(route, method, str(status))
    child.observe(seconds)


def observe_upstream(model: str, seconds: float, failure_kind: str | None) -> None:
    label = model_label(model)
    UPSTREAM_SECONDS.labels(label).observe(seconds)
    if failure_kind is not None:
        UPSTREAM_FAILURES.labels(label, failure_kind).inc()


def count_omitted_tools(types: Iterable[str]) -> None:
    """`types` are the known built-in ones (any other is a 400), so the label stays bounded."""
    for kind in types:
        HOSTED_TOOLS_OMITTED.labels(kind).inc()


def observe_job(outcome: str, seconds: float) -> None:
    JOB_SECONDS.labels(outcome).observe(seconds)


def count_swept(rerun: int, failed: int, requeued: int) -> None:
    for action, count in (("rerun", rerun), ("failed", failed), ("requeued", requeued)):
        if count:
            JOBS_SWEPT.labels(action).inc(count)


class Snapshot(Collector):
    """Gauges read at scrape time (a database query, the pool), rendered after the rest."""

    def __init__(
        self,
        jobs: dict[str, int] | None,
        pool: dict[str, int] | None,
        pending_webhooks: int | None = None,
    ) -> None:
        self.jobs = jobs
        self.pool = pool
        self.pending_webhooks = pending_webhooks

    def collect(self) -> Iterable[Metric]:
        if self.jobs is not None:  # None: the database did not answer
            jobs = GaugeMetricFamily(
                "tether_jobs", "Background responses not finished, by status.", labels=["status"]
            )
            for status in ("queued", "in_progress"):
                jobs.add_metric([status], self.jobs.get(status, 0))
            yield jobs
        if self.pending_webhooks is not None:
            yield GaugeMetricFamily(
                "tether_webhook_deliveries_pending",
                "Webhook deliveries not yet taken by their receiver (due, or waiting to retry).",
                value=self.pending_webhooks,
            )
        if self.pool is not None:
            yield GaugeMetricFamily(
                "tether_db_pool_checked_out",
                "Database connections this process has checked out of its pool.",
                value=self.pool["checked_out"],
            )
            yield GaugeMetricFamily(
                "tether_db_pool_size", "This process's database pool size.", value=self.pool["size"]
            )


def pool_usage(pool: Any) -> dict[str, int] | None:
    """Checked-out connections of a QueuePool (PostgreSQL, SQLite files); None for a pool
    that keeps no count."""
    checked_out = getattr(pool, "checkedout", None)
    size = getattr(pool, "size", None)
    if not callable(checked_out) or not callable(size):
        return None
    return {"checked_out": int(checked_out()), "size": int(size())}


def registry() -> Collector:
    """This process's registry, or every process's samples in multiprocess mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
    return combined


def process_exiting() -> None:
    """A process that stops takes its live gauges (stream followers) out of multiprocess sums;
    a process killed outright leaves them until the directory is emptied (at restart)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def render(snapshot: Snapshot) -> bytes:
    return generate_latest(registry()) + generate_latest(snapshot)
