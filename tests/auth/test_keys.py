"""API keys: made, used, listed and revoked through the `tether` CLI; refused in OpenAI's shape.

Each test has a database of its own (a key there ends keyless mode for every server on it).
"""

import hashlib
import re
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from app.keys.service import SHOWN_PREFIX
from tests.auth.harness import (
    Cli,
    assert_error,
    http,
    keys_table,
    make_key,
    own_settings,
    poll,
    room_in_window,
    window_now,
)
from tests.fakes.upstream import FakeUpstream
from tests.harness import query, running_server

KEY = re.compile(r"sk-tether-[A-Za-z0-9_-]{32}")


def listed_keys(cli: Cli) -> list[dict[str, str]]:
    return keys_table(cli.ok("keys", "list"))


def test_key_lifecycle_through_the_cli(
    own_database_url: str, fake_upstream: FakeUpstream, model: str, tmp_path: Path
) -> None:
    settings = own_settings(
        own_database_url, fake_upstream, api_key_pepper=f"pepper-{uuid.uuid4().hex}"
    )
    cli = Cli(settings, tmp_path)

    created = cli.ok("keys", "create", "--project", "acme", "--name", "ci")
    lines = created.rstrip("\n").split("\n")
    key = lines[-1]
    assert KEY.fullmatch(key), created  # alone on the last line: `| tail -1` gives the key
    assert key not in "\n".join(lines[:-1])
    found = re.search(r"\bkey_[0-9a-f]{48}\b", created)
    assert found is not None, created
    key_id = found[0]

    # Not yet used: listed without its secret, never used.
    out = cli.ok("keys", "list")
    assert key not in out
    assert key[SHOWN_PREFIX:] not in out
    [row] = keys_table(out)
    assert (row["ID"], row["PROJECT"], row["NAME"]) == (key_id, "acme", "ci")
    assert row["PREFIX"].rstrip("…") == key[:SHOWN_PREFIX]
    assert (row["LAST USED"], row["REVOKED"]) == ("never", "-")

    # Only a keyed hash is stored: no column holds the key or its secret part.
    stored = query(own_database_url, "SELECT * FROM api_keys")
    assert len(stored) == 1
    for value in stored[0]:
        assert key not in str(value)
        assert key[SHOWN_PREFIX:] not in str(value)
    assert hashlib.sha256(key.encode()).hexdigest() not in [str(v) for v in stored[0]]

    with running_server(settings) as srv:
        with openai.OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0) as client:
            made = client.responses.create(model=model, input="hello")
            assert made.output_text == "reply to: hello"
            assert client.responses.retrieve(made.id).id == made.id

        used = poll(
            lambda: listed_keys(cli),
            lambda rows: rows[0]["LAST USED"] != "never",
            timeout=5,
            what="`keys list` to show a last-used time",
        )
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", used[0]["LAST USED"]), used

        # `projects set` gives the project a limit every server applies within the cache TTL.
        with http(srv.url, key) as api:
            # Room for a `tether` run (seconds of imports on a busy machine) and the cache TTL.
            room_in_window(20.0)
            window = window_now()
            assert "rpm=3" in cli.ok("projects", "set", "acme", "--rpm", "3")
            first = poll(
                lambda: api.get("/v1/responses"),
                lambda r: r.headers.get("x-ratelimit-limit-requests") == "3",
                timeout=5,
                what="the new limit to reach the server",
            )
            answers = [first]
            while answers[-1].status_code == 200 and len(answers) < 10:
                answers.append(api.get("/v1/responses"))
            assert window_now() == window
            remaining = [a.headers["x-ratelimit-remaining-requests"] for a in answers]
            assert [a.status_code for a in answers] == [200, 200, 200, 429], remaining
            assert remaining == ["2", "1", "0", "0"]
            assert_error(answers[-1], 429, "rate_limit_exceeded")

            assert "rpm=0" in cli.ok("projects", "set", "acme", "--rpm", "0")  # 0: no limit
            unlimited = poll(
                lambda: api.get("/v1/responses"),
                lambda r: r.status_code == 200,
                timeout=5,
                what="the limit to be lifted",
            )
            assert "x-ratelimit-limit-requests" not in unlimited.headers

            # Revoked: refused on this running server within the cache TTL.
            assert key_id in cli.ok("keys", "revoke", key_id)
            refused = poll(
                lambda: api.get("/v1/responses"),
                lambda r: r.status_code != 200,
                timeout=5,
                what="the revoked key to be refused",
            )
            assert_error(refused, 401, "invalid_api_key")
            assert key not in refused.text

    [row] = listed_keys(cli)
    assert row["REVOKED"] != "-"

    for unknown in (key_id, "key_does_not_exist"):  # revoked already, or never made
        done = cli.run("keys", "revoke", unknown)
        assert done.returncode != 0, done
        assert unknown in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_keys_are_checked_under_the_servers_pepper(
    own_database_url: str, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    settings = own_settings(own_database_url, fake_upstream, api_key_pepper="one-pepper")
    key = Cli(settings, tmp_path).ok("keys", "create", "--project", "acme").splitlines()[-1]
    with running_server(settings) as srv, http(srv.url, key) as api:
        assert api.get("/v1/responses").status_code == 200
    other = settings.model_copy(update={"api_key_pepper": "another-pepper"})
    with running_server(other) as srv, http(srv.url, key) as api:
        assert_error(api.get("/v1/responses"), 401, "invalid_api_key")


def test_missing_and_wrong_keys_are_401_in_openais_shape(
    own_database_url: str, fake_upstream: FakeUpstream, model: str
) -> None:
    settings = own_settings(own_database_url, fake_upstream)
    _, key = make_key(settings, "acme")
    wrong = "sk-tether-" + "W" * 32
    body = {"model": model, "input": "hi"}
    with running_server(settings) as srv:
        requests = [
            ("GET", "/v1/responses", None),
            ("POST", "/v1/responses", body),
            ("GET", "/v1/responses/resp_1", None),
            ("POST", "/v1/chat/completions", {"model": model, "messages": [{"role": "user"}]}),
            ("GET", "/v1/chat/completions", None),
            ("POST", "/v1/conversations", {}),
            ("GET", "/v1/models", None),
            # Who is asking is settled before the body is even parsed: no key, no 400.
            ("POST", "/v1/responses", {"model": model, "input": "a\u0000"}),
            ("POST", "/v1/responses", "{not json"),
        ]
        for headers in (
            {},
            {"authorization": f"Bearer {wrong}"},
            {"authorization": "Bearer"},
            {"authorization": f"Basic {key}"},
            {"authorization": key},
        ):
            with httpx.Client(base_url=srv.url, headers=headers, timeout=30) as api:
                for method, path, payload in requests:
                    if isinstance(payload, str):
                        answer = api.request(method, path, content=payload)
                    else:
                        answer = api.request(method, path, json=payload)
                    error = assert_error(answer, 401, "invalid_api_key")
                    assert error["type"] == "invalid_request_error"
                    assert wrong not in answer.text
                    assert key not in answer.text

        with openai.OpenAI(base_url=f"{srv.url}/v1", api_key=wrong, max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError) as caught:
                client.responses.create(model=model, input="hi")
        assert (caught.value.status_code, caught.value.code) == (401, "invalid_api_key")
        assert fake_upstream.requests(model) == []

        with http(srv.url, key) as api:
            assert api.post("/v1/responses", json=body).status_code == 200
        assert len(fake_upstream.requests(model)) == 1
