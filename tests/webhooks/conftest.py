"""Webhooks against a real receiver on loopback, verified with the `openai` SDK's own
`client.webhooks.unwrap`.

The servers here get databases of their own: every process that runs jobs runs a webhook
dispatcher, and the suite's other servers (which refuse private addresses, as by default)
would otherwise take these deliveries and refuse them.
"""

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

import openai
import pytest

from app.config import Settings
from tests.conftest import SMALL_POOL, UPSTREAM_TIMEOUT, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread, migrated_database, running_server
from tests.webhooks.helpers import Made
from tests.webhooks.receiver import Receiver

# Loopback receivers over http, retries a fraction of a second apart.
WEBHOOK_SETTINGS: dict[str, Any] = {
    "webhook_allow_http": True,
    "webhook_allow_private": True,
    "webhook_timeout": 1.0,
    "webhook_retry_base": 0.2,
}


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.start()
    yield found
    found.stop()


@pytest.fixture(scope="session")
def webhook_database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_database(backend, str(tmp_path_factory.mktemp(f"webhooks-{backend}"))) as url:
        yield url


@pytest.fixture(scope="session")
def webhook_settings(webhook_database_url: str, fake_upstream: FakeUpstream) -> Settings:
    return Settings(
        database_url=webhook_database_url,
        upstream_base_url=f"{fake_upstream.url}/v1",
        upstream_timeout=UPSTREAM_TIMEOUT,
        job_retry_backoff=0.05,
        job_upstream_retries=1,
        **WEBHOOK_SETTINGS,
        **SMALL_POOL,
    )


@pytest.fixture(scope="session")
def webhook_server(webhook_settings: Settings) -> Iterator[ServerThread]:
    with running_server(webhook_settings) as srv:
        yield srv


@pytest.fixture
def client(webhook_server: ServerThread) -> Iterator[openai.OpenAI]:
    with sdk(webhook_server.url) as c:
        yield c


@pytest.fixture
def hook() -> str:
    """A receiver path of this test's own: tests share one receiver."""
    return f"h-{uuid.uuid4().hex[:12]}"


class StartServer(Protocol):
    def __call__(self, **changes: Any) -> AbstractContextManager[ServerThread]: ...


@pytest.fixture
def start_webhook_server(webhook_settings: Settings) -> StartServer:
    """Another server on the webhook database with some settings changed."""

    def start(**changes: Any) -> AbstractContextManager[ServerThread]:
        return running_server(webhook_settings.model_copy(update=changes))

    return start


@pytest.fixture
def made(client: openai.OpenAI, receiver: Receiver) -> Iterator[Made]:
    """Endpoints made through the SDK, deleted when the test ends: they live in the default
    project, which every test's background responses send to."""
    helper = Made(client, receiver)
    yield helper
    helper.cleanup()
