"""The HTTP leg of a webhook delivery: one POST to a user-supplied URL, safe against SSRF.

A webhook URL is chosen by a user, so without care it can make this server reach what only it
can reach: loopback services, the private network, the cloud metadata endpoint
(169.254.169.254, fd00:ec2::254). Checking the URL's hostname once is not enough, as its DNS
answer can change between the check and the connection (DNS rebinding). So the check runs on the
addresses actually connected to: a resolver that drops non-public addresses, plus a check of a
literal IP host, which aiohttp connects to without asking the resolver. Redirects are not
followed (a 3xx is the answer), proxies from the environment are ignored, and at most
MAX_BODY_BYTES of an answer is read.

Network problems never raise here: they come back as `Sent(status=None, error=...)`, translated
at this edge (as httpx's `map_httpcore_exceptions()` does) so callers see one type.
"""

import ipaddress
import socket
import time
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.helpers import is_ip_address
from multidict import CIMultiDict
from yarl import URL

MAX_BODY_BYTES = 4096  # what is read of a receiver's answer
MAX_URL_LENGTH = 2048
USER_AGENT = "Tether-Webhooks/1"
_ALLOW_HINT = "WEBHOOK_ALLOW_PRIVATE=true allows it"
_MAX_ERROR_CHARS = 300  # errors are stored with each attempt and shown to users
# RFC 6052's well-known NAT64 prefix: a NAT64 gateway turns these into the embedded IPv4 address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True, slots=True)
class Sent:
    """What one attempt got back."""

    status: int | None  # the receiver's HTTP status, None if no answer
    error: str | None  # why there was no answer (or None): short, human readable
    body: bytes  # at most MAX_BODY_BYTES of the answer
    seconds: float  # how long the attempt took


def url_problem(url: str, *, allow_http: bool, allow_private: bool) -> str | None:
    """Why `url` cannot be a webhook endpoint (checked when one is created or updated), or None.

    Hostnames are not resolved here: their answer may change, so the resolver checks it at every
    connection. This check gives an early, clear error for what is wrong whatever DNS says.
    """
    if len(url) > MAX_URL_LENGTH:
        return f"the URL is longer than {MAX_URL_LENGTH} characters"
    try:
        # yarl is what aiohttp parses the URL with, so what is checked is what is connected to.
        parsed = URL(url)
        host = parsed.raw_host
    except (ValueError, TypeError) as exc:
        return f"not a valid URL: {exc}"
    schemes = ("https", "http") if allow_http else ("https",)
    if parsed.scheme not in schemes:
        return "the URL must start with " + " or ".join(f"{s}://" for s in schemes)
    if not host:
        return "the URL has no host"
    if parsed.raw_user is not None or parsed.raw_password is not None:
        return "the URL must not contain a user name or password (user:pass@)"
    if is_ip_address(host):
        # aiohttp treats this host as an address and never resolves it: it has to parse as one.
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return f"{host} is not a valid IP address"
        if not allow_private and (problem := address_problem(host)) is not None:
            return f"{problem} ({_ALLOW_HINT})"
    elif not allow_private:
        name = host.lower().rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):
            return f"{host} is a loopback name ({_ALLOW_HINT})"
    return None


def address_problem(ip: str) -> str | None:
    """Why a delivery must not connect to this address, or None if it is a public one."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return f"{ip} is not an IP address"
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address reach that IPv4 address, so they are judged by it.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            kind = _non_public_kind(embedded)
            return None if kind is None else f"{ip} stands for {embedded}, {kind}"
    kind = _non_public_kind(address)
    return None if kind is None else f"{ip} is {kind}"


def _non_public_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    # is_global alone is not enough before Python 3.13: it calls multicast and the deprecated
    # IPv4-compatible IPv6 addresses (::a.b.c.d, reserved) global.
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"  # e.g. CGNAT 100.64.0.0/10: neither private nor global
    return None


class _Refused(OSError):
    """A connection this module will not make; its message is the reason given to the user."""


class _PublicOnlyResolver(aiohttp.ThreadedResolver):
    """The default resolver, minus every address a delivery must not connect to."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        kept = [r for r in results if address_problem(r["host"]) is None]
        if not kept:
            problems = dict.fromkeys(p for r in results if (p := address_problem(r["host"])))
            raise _Refused(
                f"refused: {host} resolves to no public address: "
                f"{'; '.join(problems) or 'none at all'} ({_ALLOW_HINT})"
            )
        return kept


class Sender:
    """POSTs webhook bodies; one connection pool, created in the loop that first uses it."""

    def __init__(self, *, timeout: float, allow_private: bool, max_connections: int = 100) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: aiohttp binds the session and the resolver to the running loop.
        if self._session is None:
            resolver = None if self.allow_private else _PublicOnlyResolver()
            connector = aiohttp.TCPConnector(limit=self.max_connections, resolver=resolver)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,  # an HTTP(S)_PROXY from the environment would bypass the checks
                # No compressed answers: only a few KB are read, and nothing should inflate.
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Sent:
        """POST `body` to `url`; never raises for network problems, answers Sent(None, error)."""
        started = time.monotonic()

        def failed(error: str) -> Sent:
            return Sent(None, error[:_MAX_ERROR_CHARS], b"", time.monotonic() - started)

        if not self.allow_private and (problem := _literal_host_problem(url)) is not None:
            return failed(f"refused: {problem} ({_ALLOW_HINT})")
        sent_headers: CIMultiDict[str] = CIMultiDict(
            {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        )
        sent_headers.update(headers)
        try:
            async with self._get_session().post(
                url, data=body, headers=sent_headers, allow_redirects=False
            ) as response:
                answer = await _read_capped(response)
                return Sent(response.status, None, answer, time.monotonic() - started)
        except TimeoutError:  # also asyncio.TimeoutError and aiohttp's timeout errors
            return failed(f"timed out after {self.timeout:g}s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return failed(_describe(exc))

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _literal_host_problem(url: str) -> str | None:
    """Why the URL's host, when it is an IP address, must not be connected to, or None."""
    try:
        host = URL(url).raw_host
    except (ValueError, TypeError):
        return None  # aiohttp reports the bad URL itself
    # The same test aiohttp uses to skip the resolver, so nothing skips both checks.
    if host is None or not is_ip_address(host):
        return None
    return address_problem(host)


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    # read(n) returns what is buffered (up to n), so loop until the cap or the end of the body.
    chunks: list[bytes] = []
    left = MAX_BODY_BYTES
    while left > 0:
        chunk = await response.content.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    if not response.content.at_eof():
        response.close()  # the rest is not wanted: drop the connection instead of draining it
    return b"".join(chunks)


def _describe(exc: BaseException) -> str:
    """A short reason for a failed attempt, from aiohttp's wrapper down to the OS error."""
    if isinstance(exc, aiohttp.ClientSSLError):  # also a certificate that does not verify
        return f"TLS error: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, _Refused):
            return str(cause)
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return f"DNS lookup of {exc.host} failed: {cause.strerror or cause}"
        return f"cannot connect to {exc.host}:{exc.port}: {cause.strerror or cause}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    return f"{type(exc).__name__}: {exc}"
