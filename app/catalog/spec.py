"""The model catalog (TETHER_MODELS): which model servers serve which model names.

One documented format, TOML (the README has the example and every field). It is read and
validated when the settings are (so every process refuses a bad one at start, in one line
naming the bad key: `models[0].deployments[1].weight: Input should be greater than 0`), and
again by the providers of each process, which build their routes from it.
"""

import os
import tomllib
import urllib.parse
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]


class CatalogError(ValueError):
    """The catalog cannot be used; the message is one line naming the bad key."""


class DeploymentSpec(BaseModel):
    """One model server that serves a catalog model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: Annotated[str, Field(pattern=r"^https?://[^/\s]+")]
    # The upstream's own name for the model; the catalog name when unset.
    model: str | None = Field(default=None, min_length=1)
    # Names the deployment in `x-tether-deployment` and the metrics; its host:port when unset.
    name: str | None = Field(default=None, min_length=1, max_length=128)
    # The environment variable holding its API key (the key itself never sits in the file).
    api_key_env: str | None = Field(default=None, min_length=1)
    # Requests in flight on it at once, across every API process and worker.
    max_concurrency: int | None = Field(default=None, ge=1)
    weight: float = Field(default=1.0, gt=0)
    # How max_output_tokens is sent to it; UPSTREAM_MAX_TOKENS_PARAM when unset.
    max_tokens_param: MaxTokensParam | None = None
    # Its context window in tokens (for truncation="auto"); asked of the server when unset.
    context_window: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _key_is_set(self) -> "DeploymentSpec":
        if self.api_key_env is not None and not os.environ.get(self.api_key_env):
            raise ValueError(f"api_key_env: the environment variable {self.api_key_env} is unset")
        return self

    @property
    def label(self) -> str:
        return self.name or urllib.parse.urlsplit(self.base_url).netloc

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelSpec(BaseModel):
    """A model name clients send (and its aliases), served by one or more deployments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=256)
    aliases: list[Annotated[str, Field(min_length=1, max_length=256)]] = []
    deployments: list[DeploymentSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _labels_differ(self) -> "ModelSpec":
        seen: set[str] = set()
        for n, deployment in enumerate(self.deployments):
            if deployment.label in seen:
                raise ValueError(
                    f"deployments[{n}].name: two deployments are called '{deployment.label}'; "
                    "give each a name of its own"
                )
            seen.add(deployment.label)
        return self

    @property
    def context_window(self) -> int | None:
        """The smallest window a deployment declares: what fits on any of them."""
        windows = [d.context_window for d in self.deployments if d.context_window is not None]
        return min(windows) if windows else None


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[ModelSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_differ(self) -> "Catalog":
        seen: set[str] = set()
        for n, model in enumerate(self.models):
            for where, name in [("name", model.name)] + [
                (f"aliases[{i}]", alias) for i, alias in enumerate(model.aliases)
            ]:
                if name in seen:
                    raise ValueError(f"models[{n}].{where}: '{name}' is already a model name")
                seen.add(name)
        return self

    def by_name(self) -> dict[str, ModelSpec]:
        """Every name a client may send (names and aliases) to its model."""
        out: dict[str, ModelSpec] = {}
        for model in self.models:
            for name in [model.name, *model.aliases]:
                out[name] = model
        return out


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_catalog(path: str) -> Catalog:
    """The catalog in the TOML file at `path`; CatalogError (one line) if it cannot be used."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path} is not valid TOML: {exc}") from None
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        raise CatalogError("; ".join(_problem(e) for e in exc.errors())) from None


def _problem(error: ErrorDetails) -> str:
    where = _where(tuple(error["loc"]))
    if error["type"] != "value_error":
        return f"{where or 'the file'}: {error['msg']}"
    # Our validators' messages start with the key, relative to where they ran.
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}.{message}" if where else message
