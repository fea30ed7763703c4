"""One upstream Gemini Live conversation: a send loop and a receive loop.

Browser media is queued and sent by one task, so a slow upstream never blocks the
browser socket. Received messages become ``events`` handed to ``on_event`` in order.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from google import genai
from google.genai import errors, types
from websockets.exceptions import ConnectionClosed

from sessions_app.live.events import (
    LiveEvent,
    ResumptionUpdate,
    UpstreamClosed,
    events_from_message,
)

logger = logging.getLogger(__name__)

EventHandler = Callable[[LiveEvent], Awaitable[None]]

AUDIO_MIME = "audio/pcm;rate=16000"
SEND_QUEUE_SIZE = 256
DRAIN_TIMEOUT_S = 2.0


class UpstreamUnavailable(Exception):
    """The Gemini Live connection could not be opened."""


@dataclass(frozen=True)
class _Outbound:
    """One realtime input waiting to be sent upstream."""

    kind: str
    payload: Any = field(repr=False)
    mime_type: str = ""


class LiveRelay:
    """Relays one conversation with Gemini Live through the google-genai SDK."""

    def __init__(
        self,
        *,
        client: genai.Client,
        model: str,
        config: types.LiveConnectConfig,
        on_event: EventHandler,
        connect_timeout: float = 15.0,
    ) -> None:
        self._client = client
        self._model = model
        self._config = config
        self._on_event = on_event
        self._connect_timeout = connect_timeout
        self._outbound: asyncio.Queue[_Outbound] = asyncio.Queue(maxsize=SEND_QUEUE_SIZE)
        self._stack = contextlib.AsyncExitStack()
        self._session: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._closed_reported = False
        self.resumption_handle: str | None = None

    async def open(self) -> None:
        """Connect upstream and start the send and receive loops."""
        connect = self._client.aio.live.connect(model=self._model, config=self._config)
        try:
            async with asyncio.timeout(self._connect_timeout):
                self._session = await self._stack.enter_async_context(connect)
        except (TimeoutError, OSError, ConnectionClosed, errors.APIError) as exc:
            await self._stack.aclose()
            raise UpstreamUnavailable(_describe(exc)) from exc
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="live-send"),
            asyncio.create_task(self._receive_loop(), name="live-receive"),
        ]

    async def send_audio(self, pcm: bytes) -> None:
        """Queue microphone audio (PCM16LE 16 kHz)."""
        await self._outbound.put(_Outbound("audio", pcm, AUDIO_MIME))

    async def send_frame(self, data: bytes, mime_type: str) -> None:
        """Queue one screen frame."""
        await self._outbound.put(_Outbound("video", data, mime_type))

    async def send_text(self, text: str) -> None:
        """Queue a typed message."""
        await self._outbound.put(_Outbound("text", text))

    async def close(self) -> None:
        """Send what the browser already sent, then stop both loops and close upstream."""
        current = asyncio.current_task()
        sender = self._tasks[0] if self._tasks else None
        if sender is not None and sender is not current and not sender.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_TIMEOUT_S):
                    await self._outbound.join()
        self._closing = True
        for task in self._tasks:
            if task is not current:
                await cancel_and_wait(task)
        await self._stack.aclose()

    async def _send_loop(self) -> None:
        """Send queued browser input upstream, in order."""
        while True:
            item = await self._outbound.get()
            try:
                await self._send(item)
            except (ConnectionClosed, errors.APIError, OSError) as exc:
                await self._report_closed(_describe(exc))
                return
            finally:
                self._outbound.task_done()

    async def _send(self, item: _Outbound) -> None:
        """Send one realtime input."""
        if item.kind == "text":
            await self._session.send_realtime_input(text=item.payload)
        elif item.kind == "audio":
            await self._session.send_realtime_input(
                audio=types.Blob(data=item.payload, mime_type=item.mime_type)
            )
        else:
            await self._session.send_realtime_input(
                video=types.Blob(data=item.payload, mime_type=item.mime_type)
            )

    async def _receive_loop(self) -> None:
        """Receive across turns: ``session.receive()`` stops after each turn."""
        try:
            while True:
                async for message in self._session.receive():
                    for event in events_from_message(message):
                        if isinstance(event, ResumptionUpdate) and event.handle:
                            self.resumption_handle = event.handle
                        await self._on_event(event)
        except errors.APIError as exc:
            # The SDK raises APIError for every close, a clean 1000 included.
            await self._report_closed(None if exc.code == 1000 else _describe(exc))
        except (ConnectionClosed, OSError, ValueError) as exc:
            await self._report_closed(_describe(exc))

    async def _report_closed(self, error: str | None) -> None:
        """Tell the owner, once, that the upstream connection is gone."""
        if self._closing or self._closed_reported:
            return
        self._closed_reported = True
        logger.info("Gemini Live connection closed: %s", error or "clean close")
        await self._on_event(UpstreamClosed(error=error))


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it; a cancellation of the caller still propagates."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


def _describe(exc: BaseException) -> str:
    """A short description of an upstream failure, safe to show and log."""
    if isinstance(exc, TimeoutError):
        return "timed out connecting to the model"
    if isinstance(exc, errors.APIError):
        return f"model connection closed ({exc.code}): {exc.message or exc.status or ''}".strip()
    if isinstance(exc, ConnectionClosed):
        return f"model connection closed ({exc.rcvd.code if exc.rcvd else 1006})"
    return f"model connection failed: {exc.__class__.__name__}"
