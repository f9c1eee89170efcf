"""Webhooks in Celery mode: deliveries sent by real `celery worker` processes, on PostgreSQL and
Redis, verified with the `openai` SDK's own `client.webhooks.unwrap`.

The API process runs no dispatcher in Celery mode, so whatever arrives here was sent by a
worker. Workers are each test's own (several tests SIGKILL them); the database and the queue
are this module's own, so no other server or worker of the suite takes these deliveries.
"""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import openai
import pytest
from openai.types.webhooks import WebhookEndpointWithSecret

from app.config import Settings
from app.webhooks.delivery import lease_seconds
from tests.background.conftest import JOB_SETTINGS
from tests.background.harness import Worker
from tests.conftest import SMALL_POOL, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import (
    TEST_REDIS_URL,
    ServerThread,
    migrated_database,
    poll_status,
    query,
    running_server,
    wait_until,
)
from tests.webhooks.receiver import Received, Receiver

# A little more than the embedded tests' second: twenty deliveries at once on a loaded machine
# must not time out, and a SIGKILL must land while an attempt is still waiting for its answer.
WEBHOOK_TIMEOUT = 2.0
# A delivery whose worker died is sent again once its lease has run out.
LEASE = lease_seconds(WEBHOOK_TIMEOUT)
# Much longer than the timeout: the receiver holds the first attempt until the sender hangs up.
HANG = 60.0


@pytest.fixture(scope="module")
def hooks_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_database("postgres", str(tmp_path_factory.mktemp("webhooks-celery"))) as url:
        yield url


@pytest.fixture(scope="module")
def hooks_settings(hooks_database_url: str, fake_upstream: FakeUpstream) -> Settings:
    return Settings(
        database_url=hooks_database_url,
        redis_url=TEST_REDIS_URL,
        # A queue of this module's own: no other worker on the same Redis runs these jobs.
        celery_queue=f"tether-hooks-{uuid.uuid4().hex[:8]}",
        upstream_base_url=f"{fake_upstream.url}/v1",
        upstream_timeout=60.0,
        webhook_allow_http=True,
        webhook_allow_private=True,
        webhook_timeout=WEBHOOK_TIMEOUT,
        webhook_retry_base=0.2,
        **JOB_SETTINGS,
        **SMALL_POOL,
    )


@pytest.fixture(scope="module")
def hooks_server(hooks_settings: Settings) -> Iterator[ServerThread]:
    with running_server(hooks_settings) as srv:
        yield srv


@pytest.fixture
def api(hooks_server: ServerThread) -> Iterator[openai.OpenAI]:
    with sdk(hooks_server.url) as client:
        yield client


@dataclass
class Workers:
    """The workers a test started; all stopped at its end, whatever happened."""

    settings: Settings
    started: list[Worker] = field(default_factory=list)

    def start(self) -> Worker:
        worker = Worker(self.settings)
        self.started.append(worker)  # before start(): one that fails to start is stopped too
        return worker.start()

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()  # a SIGKILLed one only has its log removed


@pytest.fixture
def workers(hooks_settings: Settings) -> Iterator[Workers]:
    found = Workers(hooks_settings)
    try:
        yield found
    finally:
        found.stop_all()


Subscribe = Callable[..., tuple[WebhookEndpointWithSecret, str]]


@pytest.fixture
def subscribe(api: openai.OpenAI, receiver: Receiver) -> Iterator[Subscribe]:
    """An endpoint at a receiver path of the test's own; deleted at the end, so that later
    tests' responses (same project) owe it nothing."""
    made: list[str] = []

    def make(*event_types: str) -> tuple[WebhookEndpointWithSecret, str]:
        path = f"celery-{uuid.uuid4().hex[:12]}"
        endpoint = api.webhooks.create(
            url=receiver.url_for(path),
            event_types=list(event_types or ("response.completed",)),  # type: ignore[arg-type]
            name=path,
        )
        made.append(endpoint.id)
        return endpoint, path

    yield make
    for endpoint_id in made:
        api.webhooks.delete(endpoint_id)


def deliveries(settings: Settings, endpoint_id: str) -> list[tuple[object, ...]]:
    """The endpoint's outbox rows: (id, state, attempts, last_status, last_error)."""
    return query(
        settings.database_url,
        "SELECT id, state, attempts, last_status, last_error FROM webhook_deliveries"
        " WHERE endpoint_id = :e ORDER BY created_at",
        e=endpoint_id,
    )


def wait_delivered(settings: Settings, endpoint_id: str, count: int, timeout: float) -> None:
    def done() -> bool:
        rows = deliveries(settings, endpoint_id)
        return len(rows) == count and all(row[1] == "delivered" for row in rows)

    wait_until(done, timeout=timeout, what=f"{count} deliveries to {endpoint_id} to be delivered")


def unwrap(
    api: openai.OpenAI, endpoint: WebhookEndpointWithSecret, got: Received
) -> tuple[str, str, str]:
    """Verify one copy's signature; (event id, event type, response id)."""
    event = api.webhooks.unwrap(got.body, got.headers, secret=endpoint.signing_secret)
    return event.id, event.type, event.data.id


class TestDeliveredFromAWorker:
    def test_a_completed_background_response(
        self,
        api: openai.OpenAI,
        workers: Workers,
        subscribe: Subscribe,
        receiver: Receiver,
        model: str,
    ) -> None:
        endpoint, path = subscribe("response.completed")
        workers.start()
        created = api.responses.create(model=model, input="hello", background=True)
        [got] = receiver.wait_for(path, 1, timeout=30)
        _, event_type, response_id = unwrap(api, endpoint, got)
        assert (event_type, response_id) == ("response.completed", created.id)
        assert api.responses.retrieve(created.id).status == "completed"
        [(webhook_id, *_)] = deliveries(workers.settings, endpoint.id)
        assert got.headers["webhook-id"] == webhook_id

    def test_a_cancel_written_by_the_api_is_sent_by_a_worker(
        self,
        api: openai.OpenAI,
        workers: Workers,
        subscribe: Subscribe,
        receiver: Receiver,
        fake_upstream: FakeUpstream,
        model: str,
    ) -> None:
        endpoint, path = subscribe("response.completed", "response.cancelled")
        workers.start()
        fake_upstream.script(model, delay=30.0)
        created = api.responses.create(model=model, input="long", background=True)
        poll_status(api, created.id, until=("in_progress",))
        assert api.responses.cancel(created.id).status == "cancelled"
        # Written by the API process, which sends nothing: the worker finds it on its poll.
        [got] = receiver.wait_for(path, 1, timeout=30)
        _, event_type, response_id = unwrap(api, endpoint, got)
        assert (event_type, response_id) == ("response.cancelled", created.id)


class TestWorkerKilled:
    def test_killed_mid_delivery_the_delivery_is_sent_again(
        self,
        api: openai.OpenAI,
        workers: Workers,
        subscribe: Subscribe,
        receiver: Receiver,
        model: str,
    ) -> None:
        settings = workers.settings
        endpoint, path = subscribe("response.completed")
        receiver.script(path, HANG)  # the first attempt hangs; the next ones get a 200
        first = workers.start()
        created = api.responses.create(model=model, input="x", background=True)
        receiver.wait_for(path, 1, timeout=30)
        first.kill()  # while the attempt waits for its answer
        [(webhook_id, state, attempts, last_status, last_error)] = deliveries(settings, endpoint.id)
        # Nothing written back: the kill did land mid-attempt, not after it timed out.
        assert (state, attempts, last_status, last_error) == ("pending", 1, None, None)

        workers.start()
        # The lease of the dead worker's attempt runs out; the new worker sends it again.
        receiver.wait_for(path, 2, timeout=LEASE + 30)
        wait_delivered(settings, endpoint.id, 1, timeout=30)

        copies = receiver.received(path)
        assert {got.headers["webhook-id"] for got in copies} == {webhook_id}
        events = {unwrap(api, endpoint, got) for got in copies}
        assert len(events) == 1
        [(_, event_type, response_id)] = events
        assert (event_type, response_id) == ("response.completed", created.id)
        [(_, state, attempts, last_status, last_error)] = deliveries(settings, endpoint.id)
        assert (state, last_status, last_error) == ("delivered", 200, None)
        assert attempts == len(copies)  # each attempt claimed reached the receiver

    def test_killed_between_the_status_write_and_the_delivery(
        self,
        api: openai.OpenAI,
        workers: Workers,
        subscribe: Subscribe,
        receiver: Receiver,
        model: str,
    ) -> None:
        settings = workers.settings
        endpoint, path = subscribe("response.completed")
        receiver.set_down(path, True)
        first = workers.start()
        created = api.responses.create(model=model, input="x", background=True)
        assert poll_status(api, created.id, timeout=30).status == "completed"

        def refused_twice() -> bool:
            [(_, state, attempts, last_status, _)] = deliveries(settings, endpoint.id)
            assert state == "pending"
            return attempts >= 2 and last_status == 503

        wait_until(refused_twice, timeout=30, what="two refused attempts")
        first.kill()  # the only worker: the event is left in the outbox, pending
        refused = receiver.received(path)
        [(webhook_id, state, *_)] = deliveries(settings, endpoint.id)
        assert state == "pending"

        receiver.set_down(path, False)
        workers.start()
        wait_delivered(settings, endpoint.id, 1, timeout=LEASE + 30)

        copies = receiver.received(path)
        after = copies[len(refused) :]  # nothing was sent while no worker ran
        assert after, "delivered, yet nothing arrived after the receiver came back"
        assert {got.headers["webhook-id"] for got in copies} == {webhook_id}
        events = {unwrap(api, endpoint, got) for got in copies}
        assert len(events) == 1
        [(_, event_type, response_id)] = events
        assert (event_type, response_id) == ("response.completed", created.id)
        [(_, _, attempts, last_status, _)] = deliveries(settings, endpoint.id)
        assert last_status == 200
        assert attempts >= len(copies)


class TestSeveralWorkers:
    def test_they_share_the_outbox(
        self,
        api: openai.OpenAI,
        workers: Workers,
        subscribe: Subscribe,
        receiver: Receiver,
        fake_upstream: FakeUpstream,
        model: str,
    ) -> None:
        settings = workers.settings
        endpoint, path = subscribe("response.completed")
        workers.start()
        workers.start()
        fake_upstream.script(model, delay=0.2)  # long enough for both workers to take jobs
        created = {
            api.responses.create(model=model, input=f"n{n}", background=True).id for n in range(20)
        }

        def distinct_ids() -> set[str]:
            return {got.headers["webhook-id"] for got in receiver.received(path)}

        wait_until(lambda: len(distinct_ids()) >= 20, timeout=60, what="20 distinct deliveries")
        wait_delivered(settings, endpoint.id, 20, timeout=30)

        # At least once: a copy may arrive twice, but each event arrives, and each verifies.
        copies = receiver.received(path)
        by_webhook_id = {got.headers["webhook-id"]: got for got in copies}
        assert len(by_webhook_id) == 20
        events = [unwrap(api, endpoint, got) for got in by_webhook_id.values()]
        assert len({event_id for event_id, _, _ in events}) == 20
        assert {event_type for _, event_type, _ in events} == {"response.completed"}
        assert {response_id for _, _, response_id in events} == created
        assert {row[0] for row in deliveries(settings, endpoint.id)} == set(by_webhook_id)
