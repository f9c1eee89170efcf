"""A real webhook receiver on loopback, served from a background thread, scriptable per path.

Tests share one receiver and keep apart by path: each sends to `url_for("its-own-name")` and reads
back only what arrived there. Every request is recorded, whatever it was answered with.
"""

import asyncio
import concurrent.futures
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from aiohttp import web

BIG_BODY = b"x" * (1024 * 1024)  # answered at /big, to test that a sender reads only a little
REDIRECT_TO = "http://169.254.169.254/"  # where a "redirect" answer points: a sender must not go

Answer = int | float | str


@dataclass(frozen=True, slots=True)
class Received:
    body: bytes
    headers: dict[str, str]  # lower-cased names
    path: str
    at: float  # time.time() when received


class Receiver:
    """Every public method is safe from any thread."""

    def __init__(self) -> None:
        # The server thread writes, test threads read and wait: one condition guards it all.
        self._changed = threading.Condition()
        self._received: defaultdict[str, list[Received]] = defaultdict(list)
        self._scripts: defaultdict[str, deque[Answer]] = defaultdict(deque)
        self._down: set[str] = set()
        self._url: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    # -- scripting and inspection -------------------------------------------------------------

    @property
    def url(self) -> str:
        """e.g. "http://127.0.0.1:40123"."""
        if self._url is None:
            raise RuntimeError("Receiver is not started")
        return self._url

    def url_for(self, name: str) -> str:
        return f"{self.url}/{name}"

    def script(self, name: str, *answers: Answer) -> None:
        """Queue the next answers for /name, used in order; 200 once they run out.

        An int answers with that status; a float sleeps that many seconds, then answers 200;
        "redirect" answers 302 to the cloud metadata address.
        """
        for answer in answers:
            # Fail here, in the test that made the mistake, not inside the server thread.
            if isinstance(answer, bool) or not isinstance(answer, int | float | str):
                raise TypeError(f"not an answer: {answer!r}")
            if isinstance(answer, str) and answer != "redirect":
                raise ValueError(f'the only string answer is "redirect", not {answer!r}')
            if isinstance(answer, int) and not 100 <= answer <= 599:
                raise ValueError(f"not an HTTP status: {answer}")
            if isinstance(answer, float) and answer < 0:
                raise ValueError(f"a delay must be >= 0, not {answer}")
        with self._changed:
            self._scripts[name].extend(answers)

    def set_down(self, name: str, down: bool) -> None:
        """While down, /name answers 503 (scripted answers wait until it is up again)."""
        with self._changed:
            if down:
                self._down.add(name)
            else:
                self._down.discard(name)

    def received(self, name: str) -> list[Received]:
        with self._changed:
            return list(self._received[name])

    def wait_for(self, name: str, count: int, timeout: float = 15.0) -> list[Received]:
        """Everything received at /name once there are at least `count` deliveries."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._received[name]) >= count, timeout):
                got = [(r.body[:200], r.at) for r in self._received[name]]
                raise AssertionError(
                    f"expected {count} deliveries to /{name} within {timeout:g}s, "
                    f"got {len(got)}: {got}"
                )
            return list(self._received[name])

    # -- HTTP ---------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{name:.+}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        received = Received(
            body=await request.read(),
            headers={k.lower(): v for k, v in request.headers.items()},
            path=request.path,
            at=time.time(),
        )
        with self._changed:
            self._received[name].append(received)
            self._changed.notify_all()
            if name == "big":
                return web.Response(body=BIG_BODY)
            if name in self._down:
                return web.Response(status=503, text="down")
            script = self._scripts[name]
            answer: Answer = script.popleft() if script else 200
        if answer == "redirect":
            return web.Response(status=302, headers={"Location": REDIRECT_TO}, text="moved")
        if isinstance(answer, float):
            if not await _wait(request, answer):
                return web.Response(status=499)  # the sender gave up; nobody reads this
            answer = 200
        assert isinstance(answer, int)
        return web.Response(status=answer, text="ok" if answer < 400 else "no")

    # -- running in a background thread -------------------------------------------------------

    def start(self) -> None:
        """Serve from a daemon thread with its own event loop; returns once it is listening."""
        if self._thread is not None:
            raise RuntimeError("Receiver is already started")
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()

        def run() -> None:
            try:
                asyncio.run(self._serve(ready))
            except BaseException as exc:  # surface bind errors in the caller's thread
                if not ready.done():
                    ready.set_exception(exc)
                else:
                    raise

        self._thread = threading.Thread(target=run, name="webhook-receiver", daemon=True)
        self._thread.start()
        try:
            self._url = ready.result(timeout=10)
        except BaseException:
            self._thread.join(timeout=5)
            self._thread = None
            raise

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=10)
        self._thread = self._loop = self._stopping = self._url = None

    async def _serve(self, ready: concurrent.futures.Future[str]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        # A short shutdown_timeout: stop() must not wait out answers scripted to be slow.
        runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            ready.set_result(f"http://127.0.0.1:{runner.addresses[0][1]}")
            await self._stopping.wait()
        finally:
            await runner.cleanup()


async def _wait(request: web.Request, delay: float) -> bool:
    """Sleep `delay` watching the client; False as soon as it hangs up (a timed-out sender)."""
    deadline = time.monotonic() + delay
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 0.05))
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
    return True
