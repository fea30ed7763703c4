"""Model speech on its way to one browser: flow control over the share socket.

An ASGI ``send`` never blocks: whatever the server sends to a browser that does not read
is buffered in the worker, without bound. So the browser acknowledges the model audio
frames it received (``{"type": "ack", "audio": N}``, N counted since the session's
``connecting`` status), and :class:`SpeechOutbox` keeps at most ``window_s`` seconds of
speech unacknowledged. What the model says beyond that waits here, at most ``buffer_s``
seconds of it; past that the oldest queued speech is dropped and counted. JSON control
messages never pass through the outbox: they are neither held behind speech nor dropped.
"""

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sessions_app.protocol import ErrorCode, ProtocolError

logger = logging.getLogger(__name__)

OUTPUT_BYTES_PER_SECOND = 48000  # PCM16 mono 24 kHz


@dataclass(frozen=True)
class OutboxLimits:
    """How much model speech may be unacknowledged, and how much may wait, in seconds."""

    window_s: float
    buffer_s: float


class SpeechOutbox:
    """One session's model speech: sent within the window, queued, or dropped oldest first."""

    def __init__(
        self,
        *,
        send: Callable[[bytes], Awaitable[None]],
        limits: OutboxLimits,
        session_id: uuid.UUID | None = None,
    ) -> None:
        self._send = send
        self.window_bytes = max(2, int(limits.window_s * OUTPUT_BYTES_PER_SECOND))
        self.buffer_bytes = max(2, int(limits.buffer_s * OUTPUT_BYTES_PER_SECOND))
        self.session_id = session_id
        self._queue: deque[bytes] = deque()
        self._in_flight: deque[int] = deque()  # sizes of sent, unacknowledged frames
        self.queued_bytes = 0
        self.in_flight_bytes = 0
        self.sent = 0  # frames sent
        self.acked = 0  # frames acknowledged
        self.high_water_bytes = 0  # the most speech ever queued here at once
        self.dropped_bytes = 0
        self.dropped_chunks = 0
        self._closed = False
        self._lock = asyncio.Lock()

    @property
    def dropped_s(self) -> float:
        """Seconds of speech dropped because the browser did not read it in time."""
        return self.dropped_bytes / OUTPUT_BYTES_PER_SECOND

    async def push(self, pcm: bytes) -> None:
        """Queue a chunk of model speech and send what the window allows."""
        if self._closed or not pcm:
            return
        self._queue.append(pcm)
        self.queued_bytes += len(pcm)
        self._drop_oldest()
        self.high_water_bytes = max(self.high_water_bytes, self.queued_bytes)
        await self._pump()

    async def ack(self, frames: int) -> None:
        """The browser received ``frames`` frames in all; send what now fits the window.

        A count lower than an earlier one is stale and changes nothing; one above the
        frames sent is refused with ``invalid_field``.
        """
        if frames > self.sent:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f'Field "audio" acknowledges {frames} audio frames, but {self.sent} were sent.',
            )
        while self.acked < frames:
            self.in_flight_bytes -= self._in_flight.popleft()
            self.acked += 1
        await self._pump()

    def clear(self) -> int:
        """Drop the queued speech now (the reply was interrupted); the bytes dropped."""
        dropped = self.queued_bytes
        self._queue.clear()
        self.queued_bytes = 0
        return dropped

    def close(self) -> None:
        """The session is over: drop what is queued and send nothing more."""
        self._closed = True
        self.clear()

    def _drop_oldest(self) -> None:
        """Past the buffer's bound, drop the oldest queued chunks and count them."""
        if self.queued_bytes <= self.buffer_bytes:
            return
        first = not self.dropped_chunks
        while self.queued_bytes > self.buffer_bytes and len(self._queue) > 1:
            chunk = self._queue.popleft()
            self.queued_bytes -= len(chunk)
            self.dropped_bytes += len(chunk)
            self.dropped_chunks += 1
        if first and self.dropped_chunks:
            logger.warning(
                "Session %s: the browser is not reading model speech; dropping the oldest"
                " (%d frames sent, %d acknowledged, %.1f s queued, %.1f s dropped so far)",
                self.session_id, self.sent, self.acked,
                self.queued_bytes / OUTPUT_BYTES_PER_SECOND, self.dropped_s,
            )  # fmt: skip

    async def _pump(self) -> None:
        """Send queued chunks, oldest first, while the unacknowledged speech is in the window."""
        async with self._lock:  # one sender at a time keeps the frames in order
            while self._queue and not self._closed and self.in_flight_bytes < self.window_bytes:
                chunk = self._queue.popleft()
                self.queued_bytes -= len(chunk)
                self._in_flight.append(len(chunk))
                self.in_flight_bytes += len(chunk)
                self.sent += 1
                await self._send(chunk)
