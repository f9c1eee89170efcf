"""The operators' view of an endpoint's deliveries: the admin route and `tether webhooks
deliveries`. Both backends."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from app.config import Settings
from tests.auth.harness import Cli
from tests.harness import (
    ServerThread,
    poll_status,
    running_server,
    wait_until,
)
from tests.webhooks.helpers import ADMIN_KEY, ERROR_KEYS, Made, deliveries, settled
from tests.webhooks.receiver import Receiver

# `tether webhooks deliveries` prints these columns (app/ops/cli.py).
CLI_COLUMNS = ["ID", "EVENT", "STATE", "ATTEMPTS", "CREATED", "LAST STATUS", "NEXT ATTEMPT"]
CLI_COLUMNS += ["LAST ERROR"]


@pytest.fixture(scope="class")
def admin_server(webhook_settings: Settings) -> Iterator[ServerThread]:
    with running_server(webhook_settings.model_copy(update={"admin_api_key": ADMIN_KEY})) as srv:
        yield srv


def deliver_twice(client: openai.OpenAI, receiver: Receiver, hook: str) -> list[dict[str, Any]]:
    """Two background responses, one after the other; the events the receiver got, in order."""
    events = []
    for n in (1, 2):
        job = client.responses.create(model="echo", input=f"hi {n}", background=True)
        assert poll_status(client, job.id).status == "completed"
        received = receiver.wait_for(hook, n)
        event = orjson.loads(received[-1].body)
        assert event["data"]["id"] == job.id
        events.append(event)
    return events


def table(stdout: str) -> list[dict[str, str]]:
    lines = stdout.splitlines()
    assert lines, "no output"
    header = lines[0].split("\t")
    assert header == CLI_COLUMNS, lines[0]
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


class TestOperatorsView:
    def test_the_admin_route_needs_the_admin_key(
        self, admin_server: ServerThread, made: Made, hook: str
    ) -> None:
        created = made.endpoint(hook)
        path = f"{admin_server.url}/admin/webhook_endpoints/{created.id}/deliveries"
        for headers in ({}, {"Authorization": "Bearer sk-test"}):
            answer = httpx.get(path, headers=headers)
            assert answer.status_code == 401, answer.text
            assert set(answer.json()["error"]) == ERROR_KEYS
            assert answer.json()["error"]["code"] == "invalid_api_key"
        assert deliveries(admin_server, created.id) == []

        unknown = httpx.get(
            f"{admin_server.url}/admin/webhook_endpoints/whe_{'0' * 48}/deliveries",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert unknown.status_code == 404, unknown.text
        assert set(unknown.json()["error"]) == ERROR_KEYS

    def test_lists_deliveries_newest_first(
        self,
        admin_server: ServerThread,
        client: openai.OpenAI,
        made: Made,
        receiver: Receiver,
        hook: str,
    ) -> None:
        created = made.endpoint(hook, event_types=["response.completed"])
        first, second = deliver_twice(client, receiver, hook)

        found = settled(admin_server, created.id, 2)
        assert [d["event_id"] for d in found] == [second["id"], first["id"]]
        for delivery in found:
            assert delivery["webhook_endpoint_id"] == created.id
            assert delivery["event_type"] == "response.completed"
            assert (delivery["state"], delivery["attempts"]) == ("delivered", 1)
            assert (delivery["last_status_code"], delivery["last_error"]) == (200, None)
            assert delivery["next_attempt_at"] is None
            assert delivery["delivered_at"] is not None
        # The `webhook-id` header is the delivery's id.
        ids = [r.headers["webhook-id"] for r in receiver.received(hook)]
        assert ids == [found[1]["id"], found[0]["id"]]

        newest = deliveries(admin_server, created.id, limit=1)
        assert [d["id"] for d in newest] == [found[0]["id"]]

    def test_a_failing_receiver_shows_the_error_and_the_next_attempt(
        self,
        admin_server: ServerThread,
        client: openai.OpenAI,
        made: Made,
        receiver: Receiver,
        hook: str,
        webhook_settings: Settings,
        tmp_path: Path,
    ) -> None:
        receiver.script(hook, *[500] * 30)
        created = made.endpoint(hook, event_types=["response.completed"])
        job = client.responses.create(model="echo", input="fail", background=True)
        assert poll_status(client, job.id).status == "completed"

        found: list[dict[str, Any]] = []

        def failed_once() -> bool:
            found[:] = deliveries(admin_server, created.id)
            return bool(found) and found[0]["last_status_code"] == 500

        wait_until(failed_once, timeout=15, what="a failed attempt")
        [delivery] = found
        assert delivery["state"] == "pending"
        assert delivery["attempts"] >= 1
        assert delivery["last_error"].startswith("HTTP 500")
        assert delivery["next_attempt_at"] is not None
        assert delivery["next_attempt_at"] > delivery["last_attempt_at"]
        assert delivery["delivered_at"] is None

        [row] = table(Cli(webhook_settings, tmp_path).ok("webhooks", "deliveries", created.id))
        assert (row["ID"], row["STATE"], row["LAST STATUS"]) == (delivery["id"], "pending", "500")
        assert row["LAST ERROR"].startswith("HTTP 500")
        assert row["NEXT ATTEMPT"] != "-"

    def test_the_cli_prints_one_line_per_delivery(
        self,
        admin_server: ServerThread,
        client: openai.OpenAI,
        made: Made,
        receiver: Receiver,
        hook: str,
        webhook_settings: Settings,
        tmp_path: Path,
    ) -> None:
        created = made.endpoint(hook, event_types=["response.completed"])
        deliver_twice(client, receiver, hook)
        found = settled(admin_server, created.id, 2)
        cli = Cli(webhook_settings, tmp_path)

        rows = table(cli.ok("webhooks", "deliveries", created.id))
        assert [r["ID"] for r in rows] == [d["id"] for d in found]
        for row in rows:
            assert (row["EVENT"], row["STATE"], row["ATTEMPTS"]) == (
                "response.completed",
                "delivered",
                "1",
            )
            assert (row["LAST STATUS"], row["NEXT ATTEMPT"], row["LAST ERROR"]) == ("200", "-", "-")
            assert row["CREATED"].endswith("Z")

        [newest] = table(cli.ok("webhooks", "deliveries", created.id, "--limit", "1"))
        assert newest["ID"] == found[0]["id"]

        # An endpoint with no deliveries: the header alone.
        assert table(cli.ok("webhooks", "deliveries", made.endpoint(hook).id)) == []

    def test_the_cli_names_an_unknown_endpoint_and_exits_1(
        self, webhook_settings: Settings, tmp_path: Path
    ) -> None:
        unknown = "whe_" + "0" * 48
        done = Cli(webhook_settings, tmp_path).run("webhooks", "deliveries", unknown)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert unknown in done.stderr
