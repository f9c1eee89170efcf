"""The app factory. `uvicorn app.main:app` serves the settings from the environment;
tests and tools call create_app(settings) for their own."""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.background.runtime import JobRuntime
from app.catalog.endpoints import router as catalog_router
from app.chat.endpoints import router as chat_router
from app.config import Settings, get_settings
from app.conversations.endpoints import router as conversations_router
from app.db import create_engine, create_sessionmaker
from app.errors import install_error_handlers
from app.jobs import CeleryEnqueuer, celery_client
from app.kit.eventlog import create_event_log
from app.kit.request_id import RequestIdMiddleware
from app.providers.registry import Providers
from app.responses.endpoints import router as responses_router
from app.responses.service import Deps


def tune_gc() -> None:
    """Fewer, cheaper collections. Measured on create at concurrency 16: with the defaults,
    gen-2 passes over every module-level object put a 100 ms stall into p99 (118 ms; 38 ms with
    GC off). Freezing what startup allocated and collecting gen 0 less often brought p99 to
    ~32 ms and throughput up ~40%, with GC still on for real garbage cycles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything per-process lives here and is disposed on shutdown; nothing else is global,
        # so any number of replicas can serve one database.
        app.state.settings = settings
        app.state.engine = create_engine(settings)
        app.state.sessionmaker = create_sessionmaker(app.state.engine)
        app.state.providers = Providers(settings)
        app.state.event_log = create_event_log(settings, app.state.engine)
        runtime: JobRuntime | None = None
        if settings.redis_url:
            app.state.enqueuer = CeleryEnqueuer(celery_client(settings))
        else:
            # Embedded mode: this process runs the background jobs and is their queue.
            runtime = JobRuntime(
                app.state.engine, app.state.providers, settings, app.state.event_log
            )
            app.state.enqueuer = runtime
            runtime.start()
        app.state.responses = Deps(
            app.state.engine,
            app.state.providers,
            app.state.enqueuer,
            app.state.event_log,
            idempotency_wait=settings.upstream_timeout + 30,
        )
        tune_gc()
        try:
            yield
        finally:
            if runtime is not None:
                await runtime.stop()
            if isinstance(app.state.enqueuer, CeleryEnqueuer):
                await asyncio.to_thread(app.state.enqueuer.close)
            await app.state.event_log.close()
            await app.state.providers.close()
            await app.state.engine.dispose()

    app = FastAPI(title="Tether", version="0.1.0", lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    app.include_router(responses_router)
    app.include_router(chat_router)
    app.include_router(conversations_router)
    app.include_router(catalog_router)
    return app


app = create_app()
