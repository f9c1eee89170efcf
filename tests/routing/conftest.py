"""Catalog models in front of fake upstreams: servers started with a TETHER_MODELS of the
test's own, on a PostgreSQL database of this directory's (routing does not depend on the
database; the migration's column is tested on both backends by tests/test_migrations.py)."""

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from tests.conftest import SMALL_POOL
from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread, migrated_database, running_server

StartRouted = Callable[..., AbstractContextManager[ServerThread]]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def catalog_toml(models: dict[str, list[dict[str, Any]]], **aliases: list[str]) -> str:
    """TOML for {name: [deployment, ...]}; `aliases` by model name."""
    out = []
    for name, deployments in models.items():
        out.append(f"[[models]]\nname = {toml_value(name)}")
        if name in aliases:
            out.append(f"aliases = {toml_value(aliases[name])}")
        for deployment in deployments:
            out.append("[[models.deployments]]")
            out += [f"{key} = {toml_value(value)}" for key, value in deployment.items()]
    return "\n".join(out) + "\n"


def deployment(fake: FakeUpstream, model: str, **fields: Any) -> dict[str, Any]:
    """A deployment on `fake` whose upstream model name is `model`."""
    return {"base_url": f"{fake.url}/v1", "model": model, **fields}


@pytest.fixture(scope="session")
def routing_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_database("postgres", str(tmp_path_factory.mktemp("routing"))) as url:
        yield url


@pytest.fixture(scope="session")
def fake_b() -> Iterator[FakeUpstream]:
    """A second model server, next to the suite's `fake_upstream`."""
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def name() -> str:
    """A catalog model name of this test's own."""
    return f"cat-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def start_routed(routing_database_url: str, tmp_path: Path) -> StartRouted:
    """A server whose catalog is `models` ({name: [deployment, ...]}), other settings changed
    by keyword; no catch-all upstream unless given."""

    def start(
        models: dict[str, list[dict[str, Any]]],
        aliases: dict[str, list[str]] | None = None,
        **changes: Any,
    ) -> AbstractContextManager[ServerThread]:
        path = tmp_path / f"models-{uuid.uuid4().hex[:6]}.toml"
        path.write_text(catalog_toml(models, **(aliases or {})))
        settings = Settings(
            database_url=routing_database_url,
            tether_models=str(path),
            **{"upstream_timeout": 5.0, **SMALL_POOL, **changes},
        )
        return running_server(settings)

    return start
