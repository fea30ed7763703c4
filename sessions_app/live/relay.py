"""One Gemini Live conversation that outlives its upstream connections.

Browser input and the responses to the model's tool calls are queued and sent by one
task, so a slow upstream never blocks the browser socket. Each upstream connection (a
:class:`_Link`) has its own receive loop; what it receives becomes ``events`` handed to
``on_event`` in order.

Gemini closes every connection after about ten minutes and announces it with ``goAway``.
Session resumption is on from the first connect and the newest handle is kept. On
``goAway`` the relay waits for a turn boundary (or until the time left is nearly spent),
holds browser input in the queue, opens a second connection with the newest handle while
the first is still open, replays what was sent since that handle, and switches. A
switch that comes mid-reply ends that reply there (``Interrupted``): the handle predates
it, so the resumed connection answers the replayed input anew. An unexpected close is
resumed the same way, with backoff and a bounded number of tries.
"""

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from google import genai
from google.genai import errors, types
from websockets.exceptions import ConnectionClosed

from sessions_app.live.events import (
    AudioOut,
    GoAway,
    Interrupted,
    LiveEvent,
    OutputTranscript,
    Reconnecting,
    Resumed,
    ResumptionUpdate,
    TextOut,
    ToolCall,
    TurnComplete,
    UpstreamClosed,
    events_from_message,
)

logger = logging.getLogger(__name__)

EventHandler = Callable[[LiveEvent], Awaitable[None]]

AUDIO_MIME = "audio/pcm;rate=16000"
SEND_QUEUE_SIZE = 256
DRAIN_TIMEOUT_S = 2.0
REPLAY_LIMIT = 600  # about a minute of 100 ms audio chunks plus frames
DEFAULT_TIME_LEFT_S = 5.0  # assumed when a goAway gives no timeLeft
SEND_ERRORS = (ConnectionClosed, errors.APIError, OSError)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")


class UpstreamUnavailable(Exception):
    """The Gemini Live connection could not be opened."""


@dataclass(frozen=True)
class Resilience:
    """How the relay survives the end of an upstream connection."""

    reconnect_delays: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0)
    switch_margin_s: float = 1.5  # switch at once when less time than this is left
    retire_timeout_s: float = 10.0  # longest wait for an old connection's turn to end


@dataclass(frozen=True)
class _Outbound:
    """One input waiting to be sent upstream: realtime input, or a tool response.

    ``kind`` is ``audio``, ``video``, ``text`` or ``tool_response`` (``payload`` then
    holds the ``types.FunctionResponse`` list).
    """

    kind: str
    payload: Any = field(repr=False)
    mime_type: str = ""


class _Link:
    """One upstream connection and its receive loop."""

    def __init__(self, number: int, session: Any, stack: contextlib.AsyncExitStack) -> None:
        self.number = number
        self.session = session
        self.stack = stack
        self.in_turn = False  # still True if the connection ended mid-reply
        self.muted = False  # retired mid-reply: the rest of that reply is dropped
        self.idle = asyncio.Event()
        self.idle.set()
        self.gone = asyncio.Event()
        self.receiver: asyncio.Task[None] | None = None

    def mark_turn(self, event: LiveEvent) -> None:
        """Track whether the model is in the middle of a reply on this connection.

        A tool call is part of the reply: the model waits for the response and goes on,
        so a hand-over waits for the turn's end and the response reaches the old link.
        """
        if isinstance(event, AudioOut | OutputTranscript | TextOut | ToolCall):
            self.in_turn = True
            self.idle.clear()
        elif isinstance(event, TurnComplete | Interrupted):
            self.in_turn = False
            self.idle.set()

    async def send(self, item: _Outbound) -> None:
        """Send one realtime input on this connection."""
        if item.kind == "text":
            await self.session.send_realtime_input(text=item.payload)
        elif item.kind == "tool_response":
            await self.session.send_tool_response(function_responses=item.payload)
        elif item.kind == "audio":
            await self.session.send_realtime_input(
                audio=types.Blob(data=item.payload, mime_type=item.mime_type)
            )
        else:
            await self.session.send_realtime_input(
                video=types.Blob(data=item.payload, mime_type=item.mime_type)
            )

    async def close(self) -> None:
        """Stop receiving and close the connection."""
        if self.receiver is not None and self.receiver is not asyncio.current_task():
            await cancel_and_wait(self.receiver)
        with contextlib.suppress(*SEND_ERRORS):
            await self.stack.aclose()
        self.gone.set()


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
        resilience: Resilience | None = None,
    ) -> None:
        self._client = client
        self._model = model
        self._config = config
        self._on_event = on_event
        self._connect_timeout = connect_timeout
        self._resilience = resilience or Resilience()
        self._outbound: asyncio.Queue[_Outbound] = asyncio.Queue(maxsize=SEND_QUEUE_SIZE)
        self._replay: deque[_Outbound] = deque(maxlen=REPLAY_LIMIT)
        self._link: _Link | None = None
        self._links = 0
        self._old_links: set[_Link] = set()
        self._writable = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._sender: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False
        self._failed = False
        self.resumption_handle: str | None = None
        self.resumptions = 0

    async def open(self) -> None:
        """Connect upstream and start relaying."""
        self._link = await self._connect(handle=None)
        self._writable.set()
        self._sender = asyncio.create_task(self._send_loop(), name="live-send")

    async def send_audio(self, pcm: bytes) -> None:
        """Queue microphone audio (PCM16LE 16 kHz)."""
        await self._outbound.put(_Outbound("audio", pcm, AUDIO_MIME))

    async def send_frame(self, data: bytes, mime_type: str) -> None:
        """Queue one screen frame."""
        await self._outbound.put(_Outbound("video", data, mime_type))

    async def send_text(self, text: str) -> None:
        """Queue a typed message."""
        await self._outbound.put(_Outbound("text", text))

    async def send_tool_response(self, responses: Sequence[types.FunctionResponse]) -> None:
        """Queue function responses to the model's tool calls.

        They wait through a connection switch like browser input and are sent once, on
        the connection active then; they are never replayed, since a resumed context
        cannot hold a call made after its handle (Gemini sends no resumable handle while
        a call is pending).
        """
        await self._outbound.put(_Outbound("tool_response", list(responses)))

    async def close(self) -> None:
        """Send what the browser already sent, then stop every task and connection."""
        sender = self._sender
        current = asyncio.current_task()
        if sender is not None and not sender.done() and self._writable.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_TIMEOUT_S):
                    await self._outbound.join()
        self._closing = True
        tasks = [sender, self._recovery, *self._background]
        for task in tasks:
            if task is not None and task is not current:
                await cancel_and_wait(task)
        links = [self._link, *self._old_links]
        self._link, self._old_links = None, set()
        for link in links:
            if link is not None:
                await link.close()

    # Connections.

    async def _connect(self, *, handle: str | None) -> _Link:
        """Open one upstream connection, resuming ``handle`` if given."""
        config = self._config.model_copy(
            update={"session_resumption": types.SessionResumptionConfig(handle=handle)}
        )
        stack = contextlib.AsyncExitStack()
        connect = self._client.aio.live.connect(model=self._model, config=config)
        try:
            async with asyncio.timeout(self._connect_timeout):
                session = await stack.enter_async_context(connect)
        except (TimeoutError, OSError, ConnectionClosed, errors.APIError) as exc:
            with contextlib.suppress(*SEND_ERRORS):
                await stack.aclose()
            raise UpstreamUnavailable(_describe(exc)) from exc
        except asyncio.CancelledError:
            with contextlib.suppress(*SEND_ERRORS):
                await asyncio.shield(stack.aclose())
            raise
        self._links += 1
        link = _Link(self._links, session, stack)
        link.receiver = asyncio.create_task(self._receive_loop(link), name="live-receive")
        return link

    async def _receive_loop(self, link: _Link) -> None:
        """Receive across turns: ``session.receive()`` stops after each turn."""
        error: str | None = None
        try:
            while True:
                async for message in link.session.receive():
                    for event in events_from_message(message):
                        await self._on_link_event(link, event)
        except errors.APIError as exc:
            # The SDK raises APIError for every close, a clean 1000 included.
            error = None if exc.code == 1000 else _describe(exc)
        except (ConnectionClosed, OSError, ValueError) as exc:
            error = _describe(exc)
        link.idle.set()
        link.gone.set()
        self._link_lost(link, error)

    async def _on_link_event(self, link: _Link, event: LiveEvent) -> None:
        """Apply what one connection received, then pass it on."""
        link.mark_turn(event)
        if link.muted:
            return
        active = link is self._link
        match event:
            case ResumptionUpdate(handle=handle, resumable=resumable) if active:
                if handle and resumable:
                    self.resumption_handle = handle
                    self._replay.clear()
            case GoAway(time_left=time_left) if active:
                seconds = _seconds(time_left)
                self._start_recovery(lambda: self._hand_over(link, seconds))
        await self._on_event(event)

    def _link_lost(self, link: _Link, error: str | None) -> None:
        """A connection ended on its own: resume unless it was retired or we are closing."""
        if self._closing or link is not self._link:
            return
        logger.info("Gemini Live connection %s lost: %s", link.number, error or "closed")
        self._writable.clear()
        if self._recovery is not None and not self._recovery.done():
            return  # a hand-over in progress switches at once: the old link is gone
        self._start_recovery(lambda: self._reconnect(error))

    def _start_recovery(self, recovery: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a hand-over or a reconnect, one at a time."""
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(recovery(), name="live-recovery")

    async def _hand_over(self, old: _Link, time_left: float) -> None:
        """On goAway: wait for a turn boundary, then switch to a resumed connection."""
        margin = self._resilience.switch_margin_s
        wait = max(0.0, time_left - margin)
        logger.info(
            "Gemini Live connection %s: goAway, %.1f s left; switching within %.1f s",
            old.number, time_left, wait,
        )  # fmt: skip
        if old.in_turn and wait > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await _first(old.idle.wait(), old.gone.wait())
        await self._hold_sends()
        for delay in (0.0, *self._resilience.reconnect_delays):
            await asyncio.sleep(delay)
            try:
                new = await self._connect(handle=self.resumption_handle)
            except UpstreamUnavailable as exc:
                logger.warning("Hand-over connection failed: %s", exc)
                continue
            await self._switch(old, new, "handover")
            return
        await self._give_up("the model connection could not be handed over")

    async def _reconnect(self, error: str | None) -> None:
        """After an unexpected close: resume with the newest handle, with backoff."""
        old = self._link
        await self._hold_sends()
        await self._on_event(Reconnecting(error=error))
        for attempt, delay in enumerate(self._resilience.reconnect_delays, start=1):
            await asyncio.sleep(delay)
            try:
                new = await self._connect(handle=self.resumption_handle)
            except UpstreamUnavailable as exc:
                logger.warning("Resumption attempt %d failed: %s", attempt, exc)
                continue
            await self._switch(old, new, "reconnect")
            return
        tries = len(self._resilience.reconnect_delays)
        await self._give_up(f"the model connection was lost and {tries} attempts to resume failed")

    async def _hold_sends(self) -> None:
        """Stop sending: browser input waits in the queue until the switch."""
        self._writable.clear()
        async with self._send_lock:
            pass  # a send in progress has finished

    async def _switch(self, old: _Link | None, new: _Link, how: str) -> None:
        """Make ``new`` the active connection and replay what the handle does not hold."""
        replay = list(self._replay)
        self._link = new
        self.resumptions += 1
        if old is not None and old.in_turn and how == "handover":
            # Switched mid-reply (time was nearly up): the resumed model answers anew from
            # the replay, so the old reply ends here rather than interleave with the new.
            old.muted = True
            await self._on_event(Interrupted())
        for item in replay:
            try:
                await new.send(item)
            except SEND_ERRORS:
                break  # the receive loop reports the new link's loss
        if old is not None:
            self._old_links.add(old)
            self._spawn(self._retire(old))
        logger.info(
            "Gemini Live session %s on connection %s (replayed %d inputs)", how, new.number,
            len(replay),
        )  # fmt: skip
        self._writable.set()
        await self._on_event(Resumed(how=how, handle=self.resumption_handle))
        if new.gone.is_set():
            self._link_lost(new, "closed during the switch")

    async def _retire(self, old: _Link) -> None:
        """Let the old connection finish the reply it is sending, then close it."""
        if not old.muted:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._resilience.retire_timeout_s):
                    await _first(old.idle.wait(), old.gone.wait())
        await old.close()
        self._old_links.discard(old)

    async def _give_up(self, error: str) -> None:
        """Resumption failed for good: tell the owner and stop sending."""
        self._failed = True
        self._writable.set()
        logger.warning("Gemini Live session lost: %s", error)
        await self._on_event(UpstreamClosed(error=error))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        """A background task kept until it ends."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # Sending.

    async def _send_loop(self) -> None:
        """Send queued browser input upstream, in order, across connections."""
        while True:
            item = await self._outbound.get()
            try:
                await self._deliver(item)
            finally:
                self._outbound.task_done()

    async def _deliver(self, item: _Outbound) -> None:
        """Send one item on the active connection, waiting through a switch."""
        while True:
            await self._writable.wait()
            if self._failed:
                return
            async with self._send_lock:
                link = self._link
                if not self._writable.is_set() or link is None:
                    continue
                try:
                    await link.send(item)
                except SEND_ERRORS as exc:
                    self._link_lost(link, _describe(exc))
                    continue
                if item.kind != "tool_response":
                    self._replay.append(item)
                return


async def _first(*awaitables: Awaitable[Any]) -> None:
    """Wait until the first of ``awaitables`` is done and cancel the rest."""
    tasks = [asyncio.ensure_future(item) for item in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _seconds(time_left: str | None) -> float:
    """A protobuf Duration such as ``"4.5s"`` in seconds."""
    match = _DURATION.match(time_left or "")
    return float(match.group(1)) if match else DEFAULT_TIME_LEFT_S


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
