"""The webhook sender against a real receiver on loopback: what it sends, what it refuses."""

import asyncio
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from app.webhooks.transport import MAX_BODY_BYTES, Sender, Sent, address_problem, url_problem
from tests.webhooks.receiver import Receiver

HINT = "(WEBHOOK_ALLOW_PRIVATE=true allows it)"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


def post(
    url: str,
    *,
    allow_private: bool,
    timeout: float = 5.0,
    body: bytes = b'{"type": "response.completed"}',
    headers: dict[str, str] | None = None,
) -> Sent:
    """One attempt with a fresh Sender, closed afterwards: an unclosed session warns (= fails)."""

    async def attempt() -> Sent:
        sender = Sender(timeout=timeout, allow_private=allow_private)
        try:
            return await sender.post(url, body, headers or {})
        finally:
            await sender.close()

    return asyncio.run(attempt())


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released: nobody else took it so fast)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TestDelivery:
    def test_delivers_body_and_headers(self, receiver: Receiver) -> None:
        body = b'{"id": "evt_1"}'
        sent = post(
            receiver.url_for("delivers"),
            allow_private=True,
            body=body,
            headers={"Webhook-Signature": "v1,abc"},
        )

        assert (sent.status, sent.error, sent.body) == (200, None, b"ok")
        assert 0 < sent.seconds < 5
        [got] = receiver.wait_for("delivers", 1)
        assert got.body == body
        assert got.path == "/delivers"
        assert got.headers["content-type"] == "application/json"
        assert got.headers["user-agent"] == "Tether-Webhooks/1"
        assert got.headers["webhook-signature"] == "v1,abc"
        assert "accept-encoding" not in got.headers

    def test_callers_content_type_wins(self, receiver: Receiver) -> None:
        post(
            receiver.url_for("content-type"),
            allow_private=True,
            headers={"content-type": "application/cloudevents+json"},
        )

        [got] = receiver.wait_for("content-type", 1)
        assert got.headers["content-type"] == "application/cloudevents+json"

    def test_error_status_is_an_answer(self, receiver: Receiver) -> None:
        receiver.script("error-status", 500)

        sent = post(receiver.url_for("error-status"), allow_private=True)

        assert (sent.status, sent.error, sent.body) == (500, None, b"no")
        assert len(receiver.received("error-status")) == 1

    def test_down_receiver_answers_503(self, receiver: Receiver) -> None:
        receiver.set_down("down", True)
        try:
            assert post(receiver.url_for("down"), allow_private=True).status == 503
        finally:
            receiver.set_down("down", False)
        assert post(receiver.url_for("down"), allow_private=True).status == 200

    def test_one_sender_sends_many(self, receiver: Receiver) -> None:
        async def twice() -> list[Sent]:
            sender = Sender(timeout=5, allow_private=True, max_connections=1)
            try:
                return [await sender.post(receiver.url_for("reuse"), b"{}", {}) for _ in "ab"]
            finally:
                await sender.close()

        assert [s.status for s in asyncio.run(twice())] == [200, 200]
        assert len(receiver.wait_for("reuse", 2)) == 2

    def test_redirect_is_not_followed(self, receiver: Receiver) -> None:
        receiver.script("redirect", "redirect")

        sent = post(receiver.url_for("redirect"), allow_private=True)

        # Following it would have meant a request to the metadata address, and no 302 here.
        assert (sent.status, sent.error) == (302, None)

    def test_slow_receiver_times_out(self, receiver: Receiver) -> None:
        receiver.script("slow", 2.0)

        sent = post(receiver.url_for("slow"), allow_private=True, timeout=0.5)

        assert (sent.status, sent.error, sent.body) == (None, "timed out after 0.5s", b"")
        assert 0.4 < sent.seconds < 1.5
        assert len(receiver.received("slow")) == 1

    def test_answer_is_read_up_to_the_cap(self, receiver: Receiver) -> None:
        sent = post(receiver.url_for("big"), allow_private=True)

        assert sent.status == 200
        assert len(sent.body) == MAX_BODY_BYTES

    def test_closed_port_is_an_error_not_an_exception(self) -> None:
        sent = post(f"http://127.0.0.1:{closed_port()}/x", allow_private=True)

        assert (sent.status, sent.error, sent.body) == (None, "connection refused", b"")


class TestRefusedByDefault:
    def test_loopback_literal(self, receiver: Receiver) -> None:
        sent = post(receiver.url_for("loopback-literal"), allow_private=False)

        assert sent.status is None
        assert sent.error == f"refused: 127.0.0.1 is a loopback address {HINT}"
        assert receiver.received("loopback-literal") == []

    def test_name_resolving_to_loopback_is_refused_at_connect(self, receiver: Receiver) -> None:
        port = port_of(receiver.url)
        url = f"http://localhost:{port}/loopback-name"
        # The name passes nothing on its own here: only the resolver's answer is judged.
        sent = post(url, allow_private=False)

        assert sent.status is None
        assert sent.error is not None
        assert sent.error.startswith("refused: localhost resolves to no public address: ")
        assert "127.0.0.1 is a loopback address" in sent.error
        assert sent.error.endswith(HINT)
        assert receiver.received("loopback-name") == []
        # The same URL is delivered when private addresses are allowed.
        assert post(url, allow_private=True).status == 200
        assert len(receiver.wait_for("loopback-name", 1)) == 1

    @pytest.mark.parametrize(
        ("host", "expected"),
        [
            ("169.254.169.254", "169.254.169.254 is a link-local address"),
            ("[fd00:ec2::254]", "fd00:ec2::254 is a private address"),
            ("[::1]", "::1 is a loopback address"),
            ("10.1.2.3", "10.1.2.3 is a private address"),
            ("100.64.0.1", "100.64.0.1 is not a public address"),
        ],
    )
    def test_literal_refused_without_connecting(self, host: str, expected: str) -> None:
        sent = post(f"http://{host}/latest/meta-data/", allow_private=False, timeout=30)

        assert (sent.status, sent.error) == (None, f"refused: {expected} {HINT}")
        assert sent.seconds < 1  # no connection attempt to wait for

    def test_ipv4_mapped_loopback(self, receiver: Receiver) -> None:
        url = f"http://[::ffff:127.0.0.1]:{port_of(receiver.url)}/mapped"

        sent = post(url, allow_private=False)

        assert sent.status is None
        assert (
            sent.error == f"refused: ::ffff:7f00:1 stands for 127.0.0.1, a loopback address {HINT}"
        )
        assert receiver.received("mapped") == []


class TestUrlProblem:
    @pytest.mark.parametrize(
        "url",
        [
            "https://hooks.example.com/tether",
            "https://hooks.example.com:8443/a?b=c",
            "https://8.8.8.8/hook",
            "https://[2606:4700:4700::1111]/hook",
            "https://localhost.example.com/hook",  # only *.localhost is special
        ],
    )
    def test_public_https_is_fine(self, url: str) -> None:
        assert url_problem(url, allow_http=False, allow_private=False) is None

    @pytest.mark.parametrize(
        ("url", "allow_http", "expected"),
        [
            ("http://hooks.example.com/", False, "the URL must start with https://"),
            ("ftp://hooks.example.com/", True, "the URL must start with https:// or http://"),
            ("/relative/path", False, "the URL must start with https://"),
            ("https://", False, "the URL has no host"),
            ("https:/just-a-path", False, "the URL has no host"),
            ("https://[::1/", False, "not a valid URL: Invalid IPv6 URL"),
            (
                "https://user:secret@hooks.example.com/",
                False,
                "the URL must not contain a user name or password (user:pass@)",
            ),
            (
                "https://hooks.example.com/" + "a" * 2048,
                False,
                "the URL is longer than 2048 characters",
            ),
            ("https://127.1/", False, "127.1 is not a valid IP address"),
        ],
    )
    def test_malformed(self, url: str, allow_http: bool, expected: str) -> None:
        assert url_problem(url, allow_http=allow_http, allow_private=True) == expected

    def test_http_allowed_when_asked(self) -> None:
        assert (
            url_problem("http://hooks.example.com/", allow_http=True, allow_private=False) is None
        )

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("https://127.0.0.1/", "127.0.0.1 is a loopback address"),
            ("https://169.254.169.254/", "169.254.169.254 is a link-local address"),
            ("https://192.168.1.10:8080/", "192.168.1.10 is a private address"),
            ("https://[fd00:ec2::254]/", "fd00:ec2::254 is a private address"),
            ("https://[::ffff:10.0.0.1]/", "::ffff:a00:1 stands for 10.0.0.1, a private address"),
            ("https://localhost/", "localhost is a loopback name"),
            ("https://LocalHost./", "localhost. is a loopback name"),
            ("https://app.localhost/", "app.localhost is a loopback name"),
        ],
    )
    def test_private_host_refused_unless_allowed(self, url: str, expected: str) -> None:
        assert url_problem(url, allow_http=False, allow_private=False) == f"{expected} {HINT}"
        assert url_problem(url, allow_http=False, allow_private=True) is None


class TestAddressProblem:
    @pytest.mark.parametrize(
        "ip", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]
    )
    def test_public(self, ip: str) -> None:
        assert address_problem(ip) is None

    @pytest.mark.parametrize(
        ("ip", "expected"),
        [
            ("127.0.0.1", "127.0.0.1 is a loopback address"),
            ("127.8.9.10", "127.8.9.10 is a loopback address"),
            ("::1", "::1 is a loopback address"),
            ("10.0.0.1", "10.0.0.1 is a private address"),
            ("172.16.0.1", "172.16.0.1 is a private address"),
            ("192.168.0.1", "192.168.0.1 is a private address"),
            ("169.254.169.254", "169.254.169.254 is a link-local address"),
            ("fe80::1", "fe80::1 is a link-local address"),
            ("fe80::1%eth0", "fe80::1%eth0 is a link-local address"),
            ("100.64.0.1", "100.64.0.1 is not a public address"),
            ("224.0.0.1", "224.0.0.1 is a multicast address"),
            ("ff0e::1", "ff0e::1 is a multicast address"),
            ("240.0.0.1", "240.0.0.1 is a reserved address"),
            ("0.0.0.0", "0.0.0.0 is an unspecified address"),
            ("::", ":: is an unspecified address"),
            ("fd00:ec2::254", "fd00:ec2::254 is a private address"),
            ("::7f00:1", "::7f00:1 is a reserved address"),
            ("::ffff:127.0.0.1", "::ffff:127.0.0.1 stands for 127.0.0.1, a loopback address"),
            (
                "::ffff:169.254.169.254",
                "::ffff:169.254.169.254 stands for 169.254.169.254, a link-local address",
            ),
            ("2002:7f00:1::", "2002:7f00:1:: stands for 127.0.0.1, a loopback address"),
            (
                "64:ff9b::a9fe:a9fe",
                "64:ff9b::a9fe:a9fe stands for 169.254.169.254, a link-local address",
            ),
            ("not-an-ip", "not-an-ip is not an IP address"),
        ],
    )
    def test_not_public(self, ip: str, expected: str) -> None:
        assert address_problem(ip) == expected
