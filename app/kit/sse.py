"""Server-sent event answers that let go of a client that stopped reading.

A stream's events wait in the connection's buffers while its client reads; a client that stops
reading (but keeps the connection open) fills them, and from then on the stream's writer waits
forever: the model call behind it holds a slot of the model server, and a stored turn stays
`in_progress`, for as long as the client likes. So each write may wait at most
STREAM_STALL_SECONDS; past it the stream is closed as if the client had gone (a stored turn ends
`incomplete`, its model call is closed) and a log line says so.
"""

import asyncio
import logging
from collections.abc import AsyncGenerator

from starlette.responses import StreamingResponse
from starlette.types import Send

log = logging.getLogger(__name__)


class EventStreamResponse(StreamingResponse):
    def __init__(
        self, body: AsyncGenerator[bytes, None], stall_seconds: float, headers: dict[str, str]
    ) -> None:
        super().__init__(body, media_type="text/event-stream", headers=headers)
        self.events = body
        self.stall_seconds = stall_seconds

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            async for chunk in self.events:
                async with asyncio.timeout(self.stall_seconds):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except TimeoutError:
            log.warning(
                "a stream's client read nothing for %gs (STREAM_STALL_SECONDS); closing it",
                self.stall_seconds,
            )
            # Closed here, not whenever it is collected: its `finally` ends the turn now.
            await self.events.aclose()
            # No end of the body (nothing is read any more): returning without it makes the
            # server close the connection.
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
