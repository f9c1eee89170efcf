"""/v1/models: the catalog's models (TETHER_MODELS), then what the catch-all upstream serves
(or the built-in echo model)."""

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from app.auth import get_caller
from app.errors import NotFound
from app.kit.http import json_response
from app.providers.base import UpstreamFailure, upstream_error

router = APIRouter(tags=["models"])


async def _models(request: Request) -> list[dict[str, Any]]:
    """The upstream's models; its failure answered as any model call's is (502, 429, ...)."""
    try:
        models: list[dict[str, Any]] = await request.app.state.providers.list_models()
    except UpstreamFailure as failure:
        raise upstream_error(failure) from failure
    return models


@router.get("/v1/models", dependencies=[Depends(get_caller)])
async def list_models(request: Request) -> Response:
    """The catalog's models and aliases (TETHER_MODELS), then the models the catch-all upstream
    lists (UPSTREAM_BASE_URL), or the built-in `echo` model."""
    return json_response({"object": "list", "data": await _models(request)})


@router.get("/v1/models/{model_id:path}", dependencies=[Depends(get_caller)])
async def retrieve_model(model_id: str, request: Request) -> Response:
    for model in await _models(request):
        if model["id"] == model_id:
            return json_response(model)
    raise NotFound(f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
