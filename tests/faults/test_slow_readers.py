"""Streams whose client stops reading, and upstreams that fail mid-stream (issue 14, point 4).

A client that keeps its connection open but reads nothing used to hold its stream, and the
model call behind it, for as long as it liked: every write of a stream now waits at most
STREAM_STALL_SECONDS. A chat stream whose upstream failed after the first chunk used to end in
an unhandled exception (a traceback in the log, the client's stream cut without a word): it
now ends with an error chunk, as OpenAI's do."""

import json
import socket
from collections.abc import Iterator

import openai
import pytest

from tests.conftest import StartServer, sdk
from tests.fakes.upstream import FakeUpstream
from tests.harness import ServerThread, query, wait_until

# Far more than the connection's buffers hold once the client stops reading.
BIG_REPLY = "word " * 1_000_000
STALL = 1.0


@pytest.fixture
def impatient(start_server: StartServer) -> Iterator[ServerThread]:
    with start_server(stream_stall_seconds=STALL, upstream_timeout=120.0) as server:
        yield server


def stalled_stream(server: ServerThread, model: str) -> socket.socket:
    """A stored streaming create sent by a client that then reads nothing at all."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once
    sock.connect((host, int(port)))
    body = json.dumps({"model": model, "input": "go", "stream": True, "store": True}).encode()
    head = (
        f"POST /v1/responses HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def test_a_client_that_stops_reading_is_let_go(
    impatient: ServerThread, fake_upstream: FakeUpstream, model: str
) -> None:
    fake_upstream.script(model, reply=BIG_REPLY, chunks=20_000)
    database = impatient.app.state.settings.database_url
    sock = stalled_stream(impatient, model)
    try:
        sql = "SELECT status, incomplete_details FROM responses WHERE model = :m"
        wait_until(lambda: bool(query(database, sql, m=model)), what="the stored turn")
        # Nobody reads: within the stall limit (and a sweep of slack) the stream is closed
        # and its turn ended, with what was generated, as when a client hangs up.
        wait_until(
            lambda: query(database, sql, m=model)[0][0] == "incomplete",
            timeout=STALL + 15,
            what="the stalled stream's turn to end",
        )
    finally:
        sock.close()
    status, details = query(database, sql, m=model)[0]
    assert status == "incomplete"
    assert "client_disconnected" in str(details)


def test_the_other_requests_go_on_meanwhile(
    impatient: ServerThread, fake_upstream: FakeUpstream, model: str
) -> None:
    fake_upstream.script(model, reply=BIG_REPLY, chunks=20_000)
    socks = [stalled_stream(impatient, model) for _ in range(4)]
    try:
        with sdk(impatient.url) as client:
            done = client.responses.create(model=f"{model}-other", input="still here")
        assert done.output_text == "reply to: still here"
    finally:
        for sock in socks:
            sock.close()


def test_a_chat_stream_whose_upstream_fails_midway_ends_with_an_error(
    start_server: StartServer, fake_upstream: FakeUpstream, model: str
) -> None:
    fake_upstream.script(model, reply="one two three four five six", drop_after_chunks=2)
    with start_server() as server, sdk(server.url) as client:
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "go"}], stream=True
        )
        got: list[str] = []

        def read_all() -> None:
            for chunk in stream:
                got.extend(choice.delta.content or "" for choice in chunk.choices)

        with pytest.raises(openai.APIError) as raised:
            read_all()
        assert "".join(got) == "one two "
        assert raised.value.message  # what went wrong, in OpenAI's shape
