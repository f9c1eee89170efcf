"""Edges the code review found: the body guard whatever the Content-Type's case, a deep body
with a huge float, and keyless mode behind a proxy."""

import httpx

from tests.auth.harness import own_settings
from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread, running_server


def test_the_guard_runs_whatever_the_content_types_case(server: ServerThread, model: str) -> None:
    body = b'{"model": "%s", "input": "a\\u0000b"}' % model.encode()
    for content_type in ("application/json", "Application/JSON", "APPLICATION/JSON; charset=utf-8"):
        answer = httpx.post(
            f"{server.url}/v1/responses", content=body, headers={"content-type": content_type}
        )
        assert answer.status_code == 400, (content_type, answer.text)
        assert answer.json()["error"]["param"] == "input"


def test_a_huge_float_beside_deep_nesting_is_a_400(server: ServerThread, model: str) -> None:
    deep = "[" * 900 + "]" * 900
    body = f'{{"model": "{model}", "input": "x", "x": [1e19, {deep}]}}'.encode()
    answer = httpx.post(
        f"{server.url}/v1/responses", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400, answer.text


def test_keyless_mode_refuses_what_a_proxy_passed_on(
    own_database_url: str, fake_upstream: FakeUpstream
) -> None:
    """A proxy on this machine makes every client look local: a forwarded request is not."""
    with running_server(own_settings(own_database_url, fake_upstream)) as srv:
        host = {"host": f"127.0.0.1:{srv.port}"}
        assert httpx.get(f"{srv.url}/v1/responses", headers=host).status_code == 200
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP", "Via"):
            answer = httpx.get(f"{srv.url}/v1/responses", headers={**host, header: "203.0.113.9"})
            assert answer.status_code == 401, header
