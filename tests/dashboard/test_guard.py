"""What guards the dashboard, over raw HTTP: no page without the admin key (outside keyless
mode on this machine), no form without its CSRF token, a strict Content-Security-Policy on
every answer. And the pages on SQLite, in keyless mode."""

import re
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from app.config import Settings
from app.dashboard import session as sessions
from app.dashboard.web import CSP
from tests.conftest import SMALL_POOL, sdk
from tests.dashboard.conftest import Project
from tests.dashboard.harness import COOKIE, Dashboard, csrf_of
from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread, migrated_database, poll_status, running_server

Visitors = Callable[..., Dashboard]


def pages(response_id: str) -> list[str]:
    return [
        "/dashboard",
        "/dashboard/responses",
        "/dashboard/responses?metadata=a%3Db",
        f"/dashboard/responses/{response_id}",
        f"/dashboard/responses/{response_id}/live",
        "/dashboard/conversations",
        "/dashboard/conversations/conv_nothing",
        "/dashboard/chat",
        "/dashboard/chat/chatcmpl-nothing",
        "/dashboard/jobs",
        "/dashboard/webhooks",
        "/dashboard/export?kind=responses",
        "/dashboard/no-such-page",
    ]


def forms(response_id: str) -> list[str]:
    return [
        f"/dashboard/responses/{response_id}/cancel",
        f"/dashboard/responses/{response_id}/requeue",
        "/dashboard/project",
        "/dashboard/logout",
    ]


@pytest.fixture
def job(as_alpha: openai.OpenAI, model: str) -> str:
    """A finished background response of project alpha."""
    made = as_alpha.responses.create(model=model, input="hello", background=True)
    return poll_status(as_alpha, made.id).id


def test_no_page_without_the_admin_key(
    dash_server: ServerThread,
    dash_settings: Settings,
    alpha: Project,
    job: str,
    dashboard: Visitors,
) -> None:
    other = dash_settings.model_copy(update={"admin_api_key": "another-admin-key"})
    forged = sessions.encode(sessions.Session.new(admin=True, project=alpha.id), other)
    anonymous = dashboard(dash_server.url)
    anonymous.get("/dashboard/login")  # an anonymous session: a CSRF token, nothing more
    assert anonymous.cookie is not None
    for who, cookie in (("nobody", None), ("forged", forged), ("anonymous", anonymous.cookie)):
        for host in ("127.0.0.1", "localhost"):  # keys exist: not keyless, even from here
            visitor = dashboard(dash_server.url, host=host)
            visitor.cookie = cookie
            for path in pages(job):
                answer = visitor.get(path)
                assert answer.status_code == 303, (who, path, answer.status_code)
                assert answer.headers["location"].startswith("/dashboard/login?next=%2Fdashboard")
                assert job not in answer.text
            for path in forms(job):
                token = "whatever"
                answer = visitor.post(path, {"csrf_token": token, "project": alpha.id})
                assert answer.status_code == 403, (who, path, answer.status_code)
            # Nor the stream the live page reads: without a key or a session, the API's 401.
            stream = visitor.get(f"/v1/responses/{job}?stream=true")
            assert stream.status_code == 401
            assert stream.json()["error"]["code"] == "invalid_api_key"

    admin = dashboard(dash_server.url)
    assert admin.login().status_code == 303
    admin.select(alpha.id)
    for path in pages(job):
        answer = admin.get(path)
        assert answer.status_code in (200, 404), (path, answer.status_code)
    assert job in admin.get("/dashboard/responses").text
    # A key is judged alone, whatever cookie comes with it.
    answer = admin.get(f"/v1/responses/{job}", authorization="Bearer sk-tether-wrong")
    assert answer.status_code == 401
    assert admin.get(f"/v1/responses/{job}").json()["id"] == job


def test_forms_refuse_requests_without_the_csrf_token(
    dash_server: ServerThread, alpha: Project, beta: Project, job: str, dashboard: Visitors
) -> None:
    visitor = dashboard(dash_server.url)
    visitor.get("/dashboard/login")
    refused = visitor.post("/dashboard/login", {"key": "x", "next": "/dashboard"})
    assert refused.status_code == 403
    assert "security token" in refused.text

    admin = dashboard(dash_server.url)
    assert admin.login().status_code == 303
    admin.select(alpha.id)
    token = csrf_of(admin.get("/dashboard").text)
    for path in forms(job):
        for sent in ({}, {"csrf_token": "not-the-token"}, {"csrf_token": ""}):
            answer = admin.post(path, sent | {"project": beta.id, "next": "/dashboard"})
            assert answer.status_code == 403, (path, sent)
        # The right token from another site's page is refused too.
        answer = admin.post(
            path, {"csrf_token": token, "project": beta.id}, origin="https://evil.example"
        )
        assert answer.status_code == 403, path
    # Nothing happened: still logged in, alpha still selected.
    assert job in admin.get("/dashboard/responses").text

    # With the token, the same forms work (a finished job's cancel changes nothing).
    answer = admin.post(f"/dashboard/responses/{job}/cancel", {"csrf_token": token})
    assert answer.status_code == 303
    assert "done=cancelled" in answer.headers["location"]
    assert "status=completed" in answer.headers["location"]
    answer = admin.post("/dashboard/logout", {"csrf_token": token})
    assert answer.status_code == 303
    assert admin.cookie is None
    assert admin.get("/dashboard").status_code == 303


def test_every_answer_carries_a_strict_csp(
    dash_server: ServerThread, alpha: Project, job: str, dashboard: Visitors
) -> None:
    admin = dashboard(dash_server.url)
    admin.login()
    admin.select(alpha.id)
    answers = [admin.get(path) for path in [*pages(job), "/dashboard/responses/resp_none"]]
    answers += [
        dashboard(dash_server.url).get("/dashboard/login"),
        dashboard(dash_server.url).get("/dashboard"),
    ]
    for answer in answers:
        headers = answer.headers
        assert headers["content-security-policy"] == CSP, answer.url
        assert "script-src 'self';" in CSP
        assert "unsafe" not in CSP
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        if headers.get("content-type", "").startswith("text/html"):
            # No inline script or style that the policy would have to allow.
            assert not re.search(r"<script(?![^>]*\bsrc=)", answer.text), answer.url
            assert not re.search(r"<style| style=", answer.text), answer.url


def test_keyless_mode_is_open_on_this_machine_only(
    fake_upstream: FakeUpstream, tmp_path: Path, dashboard: Visitors
) -> None:
    """No key yet, no admin key: this machine's browser sees the dashboard without logging in,
    as the API serves it without a key; a request naming another host does not. On SQLite,
    with a thread that forks and a conversation."""
    with migrated_database("sqlite", str(tmp_path)) as url:
        settings = Settings(
            database_url=url, upstream_base_url=f"{fake_upstream.url}/v1", **SMALL_POOL
        )
        with running_server(settings) as server, sdk(server.url) as client:
            first = client.responses.create(model="echo", input="root turn")
            left = client.responses.create(
                model="echo", input="left", previous_response_id=first.id
            )
            right = client.responses.create(
                model="echo", input="right", previous_response_id=first.id
            )
            conversation = client.conversations.create(
                items=[{"type": "message", "role": "user", "content": "in a conversation"}]
            )
            local = dashboard(server.url)
            page = local.get(f"/dashboard/responses/{left.id}")
            assert page.status_code == 200
            assert local.cookie is not None  # the session that carries the forms' token
            assert first.id in page.text
            assert right.id in page.text
            listed = local.get("/dashboard/conversations")
            assert conversation.id in listed.text
            assert ">1<" in listed.text  # its item count
            exported = local.get("/dashboard/export?kind=responses")
            assert exported.headers["content-disposition"].startswith("attachment")
            assert len(exported.text.splitlines()) == 3
            # The live page's stream answers the session (no key exists to send).
            assert local.get(f"/v1/responses/{left.id}").json()["id"] == left.id

            remote = dashboard(server.url, host="tether.example.com")
            answer = remote.get("/dashboard")
            assert answer.status_code == 303
            login = remote.get("/dashboard/login")
            assert "has none" in login.text  # no ADMIN_API_KEY: say what would open it
            token = csrf_of(login.text)
            refused = remote.post("/dashboard/login", {"key": "", "csrf_token": token})
            assert refused.status_code == 401
            assert remote.get("/dashboard").status_code == 303


def test_a_cookie_is_not_a_key_to_other_routes(
    dash_server: ServerThread, alpha: Project, model: str, dashboard: Visitors
) -> None:
    """Only reading a response (the live page's stream) accepts the dashboard's session; the
    rest of the API wants a key."""
    admin = dashboard(dash_server.url)
    admin.login()
    admin.select(alpha.id)
    assert admin.get("/v1/responses").status_code == 401
    answer = admin.http.post(
        "/v1/responses",
        json={"model": model, "input": "hi"},
        headers={"cookie": f"{COOKIE}={admin.cookie}"},
    )
    assert answer.status_code == 401
