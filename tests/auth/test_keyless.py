"""Keyless mode (AUTH unset, no key yet): served only to loopback clients that name this machine
by a loopback Host, so a page reaching 127.0.0.1 through DNS rebinding (its own hostname in
Host) is refused. The first key ends it; AUTH=required and AUTH=none; the admin key is no
project key."""

import uuid

from tests.auth.harness import assert_error, http, make_key, own_settings, poll, revoke
from tests.fakes.upstream import FakeUpstream
from tests.harness import running_server

LOOPBACK_HOSTS = [
    "127.0.0.1:{port}",
    "localhost:{port}",
    "localhost",
    "LocalHost:{port}",
    "127.0.0.2:{port}",
    "[::1]:{port}",
]
FORGED_HOSTS = [
    "evil.example",
    "attacker.com:80",
    "evil.example:{port}",
    "localhost.evil.example:{port}",
    "127.0.0.1.nip.io:{port}",
    "0.0.0.0:{port}",
]


def statuses(base_url: str, hosts: list[str], port: int, key: str | None = None) -> dict[str, int]:
    """GET /v1/responses from this (loopback) client under each Host: its status."""
    out = {}
    for template in hosts:
        host = template.format(port=port)
        with http(base_url, key, host=host) as api:
            out[host] = api.get("/v1/responses").status_code
    return out


def test_keyless_serves_loopback_names_only(
    own_database_url: str, fake_upstream: FakeUpstream, model: str
) -> None:
    with running_server(own_settings(own_database_url, fake_upstream)) as srv:
        port = srv.port
        served = statuses(srv.url, LOOPBACK_HOSTS, port)
        assert served == {h.format(port=port): 200 for h in LOOPBACK_HOSTS}
        refused = statuses(srv.url, FORGED_HOSTS, port)
        assert refused == {h.format(port=port): 401 for h in FORGED_HOSTS}

        with http(srv.url, host="evil.example") as api:
            answer = api.post("/v1/responses", json={"model": model, "input": "hi"})
            error = assert_error(answer, 401, "invalid_api_key")
            assert "keys create" in error["message"]
        assert fake_upstream.requests(model) == []
        with http(srv.url, host=f"localhost:{port}") as api:
            assert api.post("/v1/responses", json={"model": model, "input": "hi"}).is_success


def test_the_first_key_ends_keyless_mode_for_good(
    own_database_url: str, fake_upstream: FakeUpstream, model: str
) -> None:
    settings = own_settings(own_database_url, fake_upstream)
    with running_server(settings) as srv, http(srv.url) as keyless:
        before = keyless.post("/v1/responses", json={"model": model, "input": "before keys"})
        assert before.status_code == 200
        made_before = before.json()["id"]

        # Keyless requests were the `default` project's: its key owns what they stored.
        default_id, default_key = make_key(settings, "default")
        _, other_key = make_key(settings, "other")
        refused = poll(
            lambda: keyless.get("/v1/responses"),
            lambda r: r.status_code != 200,
            timeout=5,
            what="the first key to end keyless mode",
        )
        assert_error(refused, 401, "invalid_api_key")
        with http(srv.url, default_key) as owner:
            assert owner.get(f"/v1/responses/{made_before}").status_code == 200
        with http(srv.url, other_key) as stranger:
            assert_error(stranger.get(f"/v1/responses/{made_before}"), 404, None)

    # A revoked key still counts: keyless mode does not come back (a new process, no cache).
    revoke(settings, default_id)
    with running_server(settings) as srv:
        assert statuses(srv.url, ["127.0.0.1:{port}"], srv.port) == {f"127.0.0.1:{srv.port}": 401}
        with http(srv.url, other_key) as api:
            assert api.get("/v1/responses").status_code == 200


def test_auth_required_refuses_loopback_before_any_key(
    own_database_url: str, fake_upstream: FakeUpstream
) -> None:
    settings = own_settings(own_database_url, fake_upstream, auth="required")
    with running_server(settings) as srv:
        with http(srv.url) as api:
            assert_error(api.get("/v1/responses"), 401, "invalid_api_key")
        _, key = make_key(settings, "acme")
        with http(srv.url, key) as api:
            assert api.get("/v1/responses").status_code == 200


def test_auth_none_serves_anyone_as_the_default_project(
    own_database_url: str, fake_upstream: FakeUpstream, model: str
) -> None:
    settings = own_settings(own_database_url, fake_upstream, auth="none")
    _, key = make_key(settings, "default")
    with running_server(settings) as srv:
        with http(srv.url, host="evil.example") as api:
            made = api.post("/v1/responses", json={"model": model, "input": "hi"})
            assert made.status_code == 200
        with http(srv.url, "sk-tether-not-a-key", host="attacker.com:80") as api:
            assert api.get(f"/v1/responses/{made.json()['id']}").status_code == 200
        with http(srv.url, key) as api:
            assert api.get(f"/v1/responses/{made.json()['id']}").status_code == 200


def test_the_admin_key_is_not_a_project_key(
    own_database_url: str, fake_upstream: FakeUpstream
) -> None:
    admin = f"adm-{uuid.uuid4().hex}"
    settings = own_settings(own_database_url, fake_upstream, admin_api_key=admin)
    make_key(settings, "acme")
    with running_server(settings) as srv, http(srv.url, admin) as api:
        answer = api.get("/v1/responses")
        assert_error(answer, 401, "invalid_api_key")
        assert admin not in answer.text
