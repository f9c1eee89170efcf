"""Which provider serves a model: a catalog route (TETHER_MODELS), else the catch-all upstream
(UPSTREAM_BASE_URL), else the built-in echo model."""

import logging
import time
from typing import Any

from app.catalog.spec import load_catalog
from app.config import Settings
from app.errors import InvalidRequest
from app.kit.tiers import RANK, tier_of
from app.limits.slots import SlotStore, create_slot_store
from app.providers.base import ModelProvider, UpstreamFailure
from app.providers.echo import ECHO_MODEL, EchoProvider
from app.providers.openai_compatible import OpenAICompatibleProvider
from app.providers.routed import RouteCall
from app.providers.router import Route

log = logging.getLogger(__name__)

# How long a model's discovered context window is trusted (a server may be restarted with
# another --max-model-len), and how long a failed discovery is not retried.
WINDOW_TTL = 300.0
WINDOW_RETRY = 30.0


class Providers:
    def __init__(self, settings: Settings) -> None:
        self.upstream: ModelProvider | None = (
            OpenAICompatibleProvider(settings) if settings.upstream_base_url else None
        )
        self.echo = EchoProvider()
        self.max_tokens_param = settings.upstream_max_tokens_param
        self.default_context_window = settings.context_window_tokens
        self.merge_messages = settings.upstream_merge_messages
        self.queue_seconds = settings.model_queue_seconds
        self._windows: dict[str, tuple[float, int | None]] = {}  # model -> (until, window)
        self.routes: dict[str, Route] = {}  # every catalog name and alias
        self.slots: SlotStore | None = None
        if settings.tether_models:
            catalog = load_catalog(settings.tether_models)
            if any(d.max_concurrency for m in catalog.models for d in m.deployments):
                # A holder presumed dead gives its places back when other processes would
                # presume it dead: after JOB_LEASE_SECONDS.
                self.slots = create_slot_store(settings.redis_url, settings.job_lease_seconds)
            for spec in catalog.models:
                route = Route(spec, self.slots, settings)
                for name in [spec.name, *spec.aliases]:
                    self.routes[name] = route

    def for_model(
        self, model: str, *, tier: str | None = None, background: bool = False
    ) -> ModelProvider:
        """The provider of one call (or one job's calls) to `model`. A catalog model's is made
        for the call: it waits its turn at the model's concurrency limit by `tier`, up to
        MODEL_QUEUE_SECONDS, or (a `background` job) as long as the job may run."""
        route = self.routes.get(model)
        if route is not None:
            wait = None if background else self.queue_seconds
            return RouteCall(route, wait, RANK[tier_of(tier)])
        if self.upstream is not None:
            return self.upstream
        if model == ECHO_MODEL:
            return self.echo
        served = "a model of TETHER_MODELS" if self.routes else f"the built-in '{ECHO_MODEL}' model"
        raise InvalidRequest(
            f"The model '{model}' does not exist. No upstream model server is configured "
            f"for it (UPSTREAM_BASE_URL), so only {served} is available.",
            param="model",
            code="model_not_found",
        )

    async def context_window(self, model: str) -> int | None:
        """The model's context window: as its catalog entry declares it, or as its server
        publishes it (cached), else CONTEXT_WINDOW_TOKENS, else None (then truncation cannot
        be done)."""
        cached = self._windows.get(model)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1] or self.default_context_window
        window: int | None = None
        ttl = WINDOW_TTL
        try:
            window = await self.for_model(model).context_window(model)
        except UpstreamFailure as failure:
            log.warning("could not read the context window of %s: %s", model, failure.message)
            ttl = WINDOW_RETRY
        self._windows[model] = (time.monotonic() + ttl, window)
        return window or self.default_context_window

    async def list_models(self) -> list[dict[str, Any]]:
        """The catalog's names and aliases, then the catch-all upstream's models (or echo)."""
        listed: list[dict[str, Any]] = []
        for route in dict.fromkeys(self.routes.values()):
            listed += await RouteCall(route, 0, 0).list_models()
        fallback = self.upstream or (self.echo if ECHO_MODEL not in self.routes else None)
        if fallback is None:
            return listed
        try:
            more = await fallback.list_models()
        except UpstreamFailure:
            if not listed:
                raise
            # The catalog is known without asking anyone; a catch-all away hides only its own.
            log.warning("could not list the models of UPSTREAM_BASE_URL; listing the catalog's")
            return listed
        names = {entry["id"] for entry in listed}
        return listed + [entry for entry in more if entry["id"] not in names]

    async def close(self) -> None:
        if self.upstream is not None:
            await self.upstream.close()
        for route in dict.fromkeys(self.routes.values()):
            await route.close()
        if self.slots is not None:
            await self.slots.close()
