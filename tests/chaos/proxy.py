"""A TCP fault proxy between Tether and the model server: it passes, refuses, cuts or hangs."""

import asyncio
import concurrent.futures
import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Literal

from tests.harness import free_port

ProxyMode = Literal["pass", "refuse", "cut", "hang"]


@dataclass(eq=False)
class _Link:
    """One proxied connection: a client's, and ours to the upstream."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    hung: bool = False
    cut_budget: int | None = None  # bytes of answer still forwarded before the cut

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()


class FaultProxy:
    """A TCP proxy between Tether and the model server, in a thread of its own.

    The mode is looked at whenever a client sends (a new request, on a new or a kept-alive
    connection), so an answer already streaming is left alone:

    * pass: forwards both ways.
    * refuse: stops listening (new connections are refused) and resets a connection on which a
      request is sent.
    * cut: forwards the request, then `cut_after` bytes of the answer, then resets both sides.
    * hang: takes the request and never answers (until the client gives up).

    HTTP 500 and 429 answers are the fake upstream's own knobs (`status`), not the proxy's.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode: ProxyMode = "pass"
        self.cut_after = 450
        self.links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy")
        self._thread.daemon = True

    def start(self) -> "FaultProxy":
        self._thread.start()
        self._call(self._listen())
        return self

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def set_mode(self, mode: ProxyMode, cut_after: int = 450) -> None:
        self._call(self._set_mode(mode, cut_after))

    async def _set_mode(self, mode: ProxyMode, cut_after: int) -> None:
        self.mode, self.cut_after = mode, cut_after
        if mode == "refuse" and self._server is not None:
            self._server.close()  # not wait_closed(): it would wait for the open links
            self._server = None
        elif mode != "refuse" and self._server is None:
            await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True, backlog=512
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        self.links.add(link)
        try:
            if self.mode == "hang":
                link.hung = True
            else:
                up_reader, link.upstream = await asyncio.open_connection(*self.target)
                answer = asyncio.create_task(self._answers(link, up_reader))
            await self._requests(link, reader)
            if link.upstream is not None:
                answer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await answer
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            link.abort()
            self.links.discard(link)

    async def _requests(self, link: _Link, reader: asyncio.StreamReader) -> None:
        """Client -> upstream, until the client hangs up (which hangs up on the upstream too,
        as a model server sees a client that went away)."""
        while data := await reader.read(65536):
            if self.mode == "refuse":
                return
            if self.mode == "hang":
                link.hung = True
            elif self.mode == "cut" and link.cut_budget is None:
                link.cut_budget = self.cut_after
            if link.hung or link.upstream is None:
                continue  # swallowed: never answered
            link.upstream.write(data)
            await link.upstream.drain()

    async def _answers(self, link: _Link, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(65536):
                if link.hung:
                    continue
                if link.cut_budget is not None:
                    data = data[: link.cut_budget]
                    link.cut_budget -= len(data)
                link.client.write(data)
                await link.client.drain()
                if link.cut_budget == 0:
                    break
        except OSError:
            pass
        link.abort()  # the upstream closed, or the cut: the client sees the end at once

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for link in list(self.links):
                link.abort()
            await asyncio.sleep(0)

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self._call(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
