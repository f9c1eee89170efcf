"""A deployment's max_concurrency: never exceeded, across API processes (Redis) or in one
(embedded mode); a request past its wait is a 429 before anything is stored; a place held by a
process that died comes back when its lease ends; waiting calls go in tier order."""

import asyncio
import threading
import uuid
from typing import Any

import httpx
import openai
import pytest
import redis

from app.providers.router import Route
from tests.conftest import sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import TEST_REDIS_URL, ServerThread, poll_status, wait_until
from tests.routing.conftest import StartRouted, deployment


def route_of(server: ServerThread, name: str) -> Route:
    """The server's own view of the model (to see who waits; the test touches nothing)."""
    route: Route = server.app.state.providers.routes[name]
    return route


def in_background(call: Any) -> threading.Thread:
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


class TestAcrossProcesses:
    def test_200_concurrent_requests_never_exceed_the_caps(
        self,
        start_routed: StartRouted,
        fake_upstream: FakeUpstream,
        fake_b: FakeUpstream,
        name: str,
        model: str,
    ) -> None:
        fake_upstream.script(f"{model}-a", delay=0.02)
        fake_b.script(f"{model}-b", delay=0.02)
        spec = [
            deployment(fake_upstream, f"{model}-a", name="a", max_concurrency=3),
            deployment(fake_b, f"{model}-b", name="b", max_concurrency=2),
        ]
        redis_mode = {"redis_url": TEST_REDIS_URL, "celery_queue": f"q-{uuid.uuid4().hex[:8]}"}
        with (
            start_routed({name: spec}, **redis_mode) as one,
            start_routed({name: spec}, **redis_mode) as two,
        ):

            async def load() -> list[str]:
                clients = [
                    openai.AsyncOpenAI(base_url=f"{s.url}/v1", api_key="sk", max_retries=0)
                    for s in (one, two)
                ]

                async def create(n: int) -> str:
                    response = await clients[n % 2].responses.create(model=name, input=f"{n}")
                    return response.status

                try:
                    return await asyncio.gather(*(create(n) for n in range(200)))
                finally:
                    for client in clients:
                        await client.close()

            assert asyncio.run(load()) == ["completed"] * 200
        assert fake_upstream.max_in_flight(f"{model}-a") == 3
        assert fake_b.max_in_flight(f"{model}-b") == 2
        assert len(fake_upstream.requests(f"{model}-a")) + len(fake_b.requests(f"{model}-b")) == 200

    def test_a_place_held_by_a_dead_process_comes_back_with_its_lease(
        self, start_routed: StartRouted, fake_upstream: FakeUpstream, name: str, model: str
    ) -> None:
        spec = [deployment(fake_upstream, model, name="a", max_concurrency=1)]
        store = redis.Redis.from_url(TEST_REDIS_URL)
        seconds, micros = store.time()
        # The only place, taken by a process that died a moment ago: it renews it no more.
        store.zadd(f"tether:slots:{name}:a", {"dead": seconds + micros / 1e6 + 1.0})
        with start_routed({name: spec}, redis_url=TEST_REDIS_URL) as server:
            assert sdk(server.url).responses.create(model=name, input="x").status == "completed"
        assert store.zscore(f"tether:slots:{name}:a", "dead") is None
        store.close()


class TestInOneProcess:
    def test_past_its_wait_a_request_is_a_429_and_nothing_is_stored(
        self, start_routed: StartRouted, fake_upstream: FakeUpstream, name: str, model: str
    ) -> None:
        fake_upstream.script(model, hold=True)  # the first call keeps the only slot
        spec = [deployment(fake_upstream, model, max_concurrency=1)]
        with start_routed({name: spec}, model_queue_seconds=0.2) as server:
            client = sdk(server.url)
            holder = in_background(lambda: client.responses.create(model=name, input="first"))
            wait_until(lambda: fake_upstream.in_flight(model) == 1, what="the first call")
            with pytest.raises(openai.RateLimitError) as err:
                client.responses.create(model=name, input="second")
            error = err.value.body
            assert error["code"] == "rate_limit_exceeded"  # type: ignore[index]
            assert error["type"] == "rate_limit_error"  # type: ignore[index]
            assert "MODEL_QUEUE_SECONDS" in error["message"]  # type: ignore[index]
            assert "x-tether-response-id" not in err.value.response.headers
            body = {"model": name, "input": "third", "stream": True}
            streamed = httpx.post(f"{server.url}/v1/responses", json=body)
            assert streamed.status_code == 429  # before the stream starts
            # A background job is not refused: it waits its turn.
            job = client.responses.create(model=name, input="job", background=True)
            fake_upstream.release(model)
            holder.join()
            assert poll_status(client, job.id).status == "completed"
            listed = httpx.get(f"{server.url}/v1/responses", params={"model": name}).json()
            assert len(listed["data"]) == 2  # the first and the job: the refused left nothing
        assert fake_upstream.max_in_flight(model) == 1

    def test_waiting_calls_are_served_by_tier(
        self, start_routed: StartRouted, fake_upstream: FakeUpstream, name: str, model: str
    ) -> None:
        fake_upstream.script(model, delay=1.0)
        spec = [deployment(fake_upstream, model, max_concurrency=1)]
        with start_routed({name: spec}) as server:
            client = sdk(server.url)
            threads = [in_background(lambda: client.responses.create(model=name, input="hold"))]
            wait_until(lambda: fake_upstream.in_flight(model) == 1, what="the first call")
            for tier in ("flex", "default", "priority"):
                threads.append(
                    in_background(
                        lambda tier=tier: client.responses.create(  # type: ignore[misc]
                            model=name, input=tier, service_tier=tier
                        )
                    )
                )
                queued = len(threads) - 1
                wait_until(lambda n=queued: len(route_of(server, name).waiters) == n)  # type: ignore[misc]
            fake_upstream.script(model)  # the waiting ones answer at once
            for thread in threads:
                thread.join()
        order = [body["messages"][-1]["content"] for body in fake_upstream.requests(model)]
        assert order == ["hold", "priority", "default", "flex"]
