"""Which provider serves a model: the upstream when one is configured, else the echo model."""

from typing import Any

from app.config import Settings
from app.errors import InvalidRequest
from app.providers.base import ModelProvider
from app.providers.echo import ECHO_MODEL, EchoProvider
from app.providers.openai_compatible import OpenAICompatibleProvider


class Providers:
    def __init__(self, settings: Settings) -> None:
        self.upstream: ModelProvider | None = (
            OpenAICompatibleProvider(settings) if settings.upstream_base_url else None
        )
        self.echo = EchoProvider()
        self.max_tokens_param = settings.upstream_max_tokens_param
        self.context_window = settings.context_window_tokens

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

    async def list_models(self) -> list[dict[str, Any]]:
        if self.upstream is not None:
            return await self.upstream.list_models()
        return await self.echo.list_models()

    async def close(self) -> None:
        if self.upstream is not None:
            await self.upstream.close()
