"""Which provider serves a model: the upstream when one is configured, else the echo model."""

import logging
import time
from typing import Any

from app.config import Settings
from app.errors import InvalidRequest
from app.providers.base import ModelProvider, UpstreamFailure
from app.providers.echo import ECHO_MODEL, EchoProvider
from app.providers.openai_compatible import OpenAICompatibleProvider

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
        self._windows: dict[str, tuple[float, int | None]] = {}  # model -> (until, window)

    def for_model(self, model: str) -> ModelProvider:
        if self.upstream is not None:
            return self.upstream
        if model == ECHO_MODEL:
            return self.echo
        raise InvalidRequest(
            f"The model '{model}' does not exist. No upstream model server is configured "
            f"(UPSTREAM_BASE_URL), so only the built-in '{ECHO_MODEL}' model is available.",
            param="model",
            code="model_not_found",
        )

    async def context_window(self, model: str) -> int | None:
        """The model's context window: as its server publishes it (cached), else
        CONTEXT_WINDOW_TOKENS, else None (then truncation cannot be done)."""
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
        if self.upstream is not None:
            return await self.upstream.list_models()
        return await self.echo.list_models()

    async def close(self) -> None:
        if self.upstream is not None:
            await self.upstream.close()
