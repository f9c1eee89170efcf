"""The app factory. `uvicorn app.main:app` serves the settings from the environment;
tests and tools call create_app(settings) for their own."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from redis.asyncio import Redis

from app.auth import Authenticator
from app.background.runtime import JobRuntime
from app.catalog.endpoints import router as catalog_router
from app.chat.endpoints import router as chat_router
from app.config import Settings, get_settings, settings_or_exit
from app.conversations.endpoints import router as conversations_router
from app.dashboard.endpoints import install as install_dashboard
from app.db import create_engine, create_sessionmaker
from app.errors import install_error_handlers
from app.jobs import CeleryEnqueuer, celery_enqueuer
from app.kit.eventlog import create_event_log
from app.kit.logs import configure_logging
from app.kit.request_id import RequestIdMiddleware
from app.kit.sealing import Keyring
from app.limits.guard import RequestGuardMiddleware
from app.limits.ratelimit import create_rate_limiter
from app.openapi import install_openapi
from app.ops import metrics
from app.ops.endpoints import router as ops_router
from app.ops.health import announce_mode
from app.providers.registry import Providers
from app.responses.endpoints import router as responses_router
from app.responses.leases import TurnLeases
from app.responses.service import Deps
from app.webhooks.endpoints import admin_router as webhooks_admin_router
from app.webhooks.endpoints import router as webhooks_router
from app.webhooks.transport import Sender

log = logging.getLogger("tether")


def tune_gc() -> None:
    """Fewer, cheaper collections. Measured on create at concurrency 16: with the defaults,
    gen-2 passes over every module-level object put a 100 ms stall into p99 (118 ms; 38 ms with
    GC off). Freezing what startup allocated and collecting gen 0 less often brought p99 to
    ~32 ms and throughput up ~40%, with GC still on for real garbage cycles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


async def announce_auth(auth: Authenticator) -> None:
    """Say at startup who will be served (keyless mode's limits are easy to be surprised by)."""
    if auth.mode == "none":
        log.warning(
            "AUTH=none: every client is served, as the default project, without a key. Run "
            "this only behind a gateway that checks who is asking."
        )
        return
    try:
        keyless = await auth.keyless()
    except Exception as exc:  # the database is down: serving starts all the same (/healthz)
        log.warning(
            "Could not read the API keys at startup (%s); checked per request.",
            type(exc).__name__,
        )
        return
    if keyless:
        log.info(
            "No API keys yet: serving only clients on this machine that address it by a "
            "loopback name. Create one with `tether keys create --project NAME`; from then on "
            "every /v1 request needs a key."
        )
    else:
        log.info("API keys required on every /v1 request (AUTH=%s).", auth.mode or "unset")


def create_app(settings: Settings | None = None, configure_logs: bool = False) -> FastAPI:
    """`configure_logs`: this process's logging is ours to set up (a served app; not an app a
    test or a tool embeds, whose logging belongs to it)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything per-process lives here and is disposed on shutdown; nothing else is global,
        # so any number of replicas can serve one database.
        app.state.settings = settings
        if configure_logs:
            configure_logging(settings)
        app.state.engine = create_engine(settings)
        app.state.sessionmaker = create_sessionmaker(app.state.engine)
        app.state.providers = Providers(settings)
        app.state.event_log = create_event_log(settings, app.state.engine)
        app.state.auth = Authenticator(app.state.engine, settings)
        await announce_auth(app.state.auth)
        app.state.rate_limiter = create_rate_limiter(settings.redis_url)
        # The endpoints' `test` sends from here; deliveries go from the job runtimes.
        app.state.webhook_sender = Sender(
            timeout=settings.webhook_timeout, allow_private=settings.webhook_allow_private
        )
        # For /readyz and the startup look for workers; not for the hot paths.
        app.state.redis = (
            Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
            if settings.redis_url
            else None
        )
        looking = announce_mode(settings, app.state.redis)
        runtime: JobRuntime | None = None
        if settings.redis_url:
            app.state.enqueuer = celery_enqueuer(settings)
        else:
            # Embedded mode: this process runs the background jobs and is their queue.
            runtime = JobRuntime(
                app.state.engine, app.state.providers, settings, app.state.event_log
            )
            app.state.enqueuer = runtime
            runtime.start()
        # The leases of the synchronous turns this process stores before they end.
        app.state.leases = TurnLeases(app.state.engine, settings.job_lease_seconds)
        app.state.leases.start()
        app.state.responses = Deps(
            app.state.engine,
            app.state.providers,
            app.state.enqueuer,
            app.state.event_log,
            app.state.leases,
            Keyring(app.state.engine, settings.encryption_keys),
            hosted_tools=settings.hosted_tools,
            idempotency_wait=settings.upstream_timeout + 30,
        )
        tune_gc()
        try:
            yield
        finally:
            if looking is not None:
                looking.cancel()
            if runtime is not None:
                await runtime.stop()
            await app.state.leases.stop()
            if isinstance(app.state.enqueuer, CeleryEnqueuer):
                await asyncio.to_thread(app.state.enqueuer.close)
            await app.state.event_log.close()
            await app.state.rate_limiter.close()
            await app.state.webhook_sender.close()
            if app.state.redis is not None:
                await app.state.redis.aclose()
            await app.state.providers.close()
            await app.state.engine.dispose()
            metrics.process_exiting()

    app = FastAPI(title="Tether", version="0.1.0", lifespan=lifespan)
    app.add_middleware(RequestGuardMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    for router in (
        responses_router,
        chat_router,
        conversations_router,
        catalog_router,
        webhooks_router,
        webhooks_admin_router,
        ops_router,
    ):
        mount(app, router)
    install_dashboard(app)
    install_openapi(app)
    return app


def mount(app: FastAPI, router: APIRouter) -> None:
    """The router's routes, placed on the app's own router.

    Not include_router: since FastAPI 0.16x an included router stays a wrapper that is matched
    anew on every request, through each router in turn. That cost a quarter of /healthz's CPU
    and a tenth of a create's (bench/flame_summary.py). Our routers carry nothing an include
    would add (their prefix, tags and route class are on each route already; none has
    router-level dependencies), so their routes can stand on the app's router as they are.
    """
    assert not router.dependencies, "router-level dependencies need include_router"
    app.router.routes.extend(router.routes)


# An invalid setting stops `uvicorn app.main:app` here with one line and status 2.
app = create_app(settings_or_exit(), configure_logs=True)
