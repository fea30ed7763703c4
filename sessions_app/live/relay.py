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

The service may refuse to resume. A resumption refused while the old connection is still
open (some deployments allow one connection per session) closes the old one first and
resumes then, input held meanwhile. A handle the service no longer accepts (1007 after
"Deadline expired", or an unknown handle, 1008) is dropped: the relay opens a fresh
session and seeds it with the recent transcript (``history``), so the conversation goes
on. Handles sent while a function call is pending are never kept: the service cannot
resume from them.

A handle covers what the service had received when it made it, which the relay cannot
see: a typed text sent while a handle was on its way would be dropped from the replay
and never answered. So a text stays in the replay until a turn has ended after it
(the service has taken it in); a fresh session gets such texts as new input, not in
the transcript it is seeded with.

A server message the SDK cannot read (a new kind, malformed JSON) makes
``session.receive()`` raise; the relay logs it once per kind, skips it and goes on.
"""

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from google import genai
from google.genai import errors, types
from websockets.exceptions import ConnectionClosed

from sessions_app.live.aio import cancel_and_wait, first_of
from sessions_app.live.events import (
    AudioOut,
    Dropped,
    FunctionResult,
    GoAway,
    Interrupted,
    LiveEvent,
    OutputTranscript,
    Reconnecting,
    Resumed,
    ResumptionUpdate,
    TextOut,
    ToolCall,
    ToolCallCancellation,
    TurnComplete,
    UpstreamClosed,
    events_from_message,
)
from sessions_app.live.observe import NullObserver, RelayObserver, received_at

logger = logging.getLogger(__name__)

EventHandler = Callable[[LiveEvent], Awaitable[None]]
History = Callable[[], Sequence[tuple[str, str]]]  # (role "user" | "model", text), oldest first

AUDIO_MIME = "audio/pcm;rate=16000"
SEND_QUEUE_SIZE = 256
DRAIN_TIMEOUT_S = 2.0
REPLAY_LIMIT = 600  # about a minute of 100 ms audio chunks plus frames
DEFAULT_TIME_LEFT_S = 5.0  # assumed when a goAway gives no timeLeft
SEND_ERRORS = (ConnectionClosed, errors.APIError, OSError)
# What the SDK raises for a server message it cannot read: malformed JSON or a wrong type
# (ValueError, pydantic's ValidationError), JSON that is no object (AttributeError,
# TypeError), an odd enum value (AttributeError), nesting too deep (RecursionError).
UNREADABLE_ERRORS = (TypeError, ValueError, AttributeError, LookupError, RecursionError)
UNREADABLE_KINDS = 32  # kinds of skipped messages counted apart; the rest as OTHER_KINDS
OTHER_KINDS = "other kinds"
REPAIRED = "repaired"  # part of a message left out or mended (events.Dropped), not skipped
MAX_TIME_LEFT_S = 600.0  # a goAway never announces more than a connection's lifetime
# Close codes of a setup whose resumption handle the service will not take (expired after
# "Deadline expired", not resumable, or unknown): resuming again with it cannot work.
HANDLE_REFUSED_CODES = frozenset({1007, 1008})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")
_SAFE_KIND = re.compile(r"[^\w.-]", re.ASCII)  # what a message kind may show in the log


class UpstreamUnavailable(Exception):
    """The Gemini Live connection could not be opened; ``code`` is the service's close code."""

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Resilience:
    """How the relay survives the end of an upstream connection."""

    reconnect_delays: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0)
    switch_margin_s: float = 1.5  # switch at once when less time than this is left
    retire_timeout_s: float = 10.0  # longest wait for an old connection's turn to end


@dataclass(frozen=True)
class _Outbound:
    """One input waiting to be sent upstream: realtime input, or a tool response.

    ``kind`` is ``audio``, ``video``, ``text``, ``audio_end``, ``activity_start``,
    ``activity_end`` or ``tool_response`` (``payload`` then holds the ``FunctionResult``
    list).
    """

    kind: str
    payload: Any = field(repr=False)
    mime_type: str = ""
    # When the browser message arrived (time.perf_counter()), for the relay's latency.
    arrived: float = field(default_factory=lambda: received_at.get() or time.perf_counter())


class _Link:
    """One upstream connection and its receive loop."""

    def __init__(
        self, number: int, session: Any, stack: contextlib.AsyncExitStack, *, calls_block: bool
    ) -> None:
        self.number = number
        self.calls_block = calls_block
        self.session = session
        self.stack = stack
        self.in_turn = False  # still True if the connection ended mid-reply
        self.muted = False  # retired mid-reply: the rest of that reply is dropped
        self.idle = asyncio.Event()
        self.idle.set()
        self.gone = asyncio.Event()
        self.close_code: int | None = None  # the service's close code, once gone
        self.receiver: asyncio.Task[None] | None = None

    def mark_turn(self, event: LiveEvent) -> None:
        """Track whether the model is in the middle of a reply on this connection.

        A blocking tool call is part of the reply: the model waits for the response and
        goes on, so a hand-over waits for the turn's end and the response reaches the old
        link. A model that does not block talks on, and the call is no part of any reply.
        """
        if isinstance(event, AudioOut | OutputTranscript | TextOut) or (
            isinstance(event, ToolCall) and self.calls_block
        ):
            self.in_turn = True
            self.idle.clear()
        elif isinstance(event, Interrupted) or (
            isinstance(event, TurnComplete) and not event.in_progress
        ):
            self.in_turn = False
            self.idle.set()

    async def send(self, item: _Outbound) -> None:
        """Send one realtime input on this connection."""
        if item.kind == "text":
            await self.session.send_realtime_input(text=item.payload)
        elif item.kind == "audio_end":
            await self.session.send_realtime_input(audio_stream_end=True)
        elif item.kind == "activity_start":
            await self.session.send_realtime_input(activity_start=types.ActivityStart())
        elif item.kind == "activity_end":
            await self.session.send_realtime_input(activity_end=types.ActivityEnd())
        elif item.kind == "tool_response":
            await self.session.send_tool_response(
                function_responses=[_function_response(result) for result in item.payload]
            )
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
        history: History | None = None,
        tool_calls_block: bool = True,
        observer: RelayObserver | None = None,
    ) -> None:
        self._client = client
        self._observer: RelayObserver = observer or NullObserver()
        self._model = model
        self._config = config
        self._on_event = on_event
        self._connect_timeout = connect_timeout
        self._resilience = resilience or Resilience()
        self._history = history
        self._calls_block = tool_calls_block
        self._outbound: asyncio.Queue[_Outbound] = asyncio.Queue(maxsize=SEND_QUEUE_SIZE)
        self._replay: deque[_Outbound] = deque(maxlen=REPLAY_LIMIT)
        self._unsettled: list[_Outbound] = []  # texts sent since the last turn's end
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
        self._pending_calls: set[str] = set()  # function calls the model awaits answers to
        self._unreadable: dict[str, int] = {}  # server messages skipped, by kind
        # Push-to-talk: whether an activity_start went out with no activity_end after it,
        # now and when the replay was last cleared (what a resumed session knows of it).
        self._in_activity = False
        self._in_activity_at_handle = False
        self.resumption_handle: str | None = None

    async def open(self) -> None:
        """Connect upstream and start relaying."""
        self._link = await self._connect(handle=None)
        self._writable.set()
        self._sender = asyncio.create_task(self._guard("send", self._send_loop()), name="live-send")

    async def send_audio(self, pcm: bytes) -> None:
        """Queue microphone audio (PCM16LE 16 kHz)."""
        await self._outbound.put(_Outbound("audio", pcm, AUDIO_MIME))

    async def send_frame(self, data: bytes, mime_type: str) -> None:
        """Queue one screen frame."""
        await self._outbound.put(_Outbound("video", data, mime_type))

    async def send_text(self, text: str) -> None:
        """Queue a typed message."""
        await self._outbound.put(_Outbound("text", text))

    async def send_audio_end(self) -> None:
        """Queue ``audio_stream_end``: the microphone stopped, so the service flushes its audio."""
        await self._outbound.put(_Outbound("audio_end", None))

    async def send_activity_start(self) -> None:
        """Queue ``activity_start`` (push-to-talk: automatic activity detection is off)."""
        await self._outbound.put(_Outbound("activity_start", None))

    async def send_activity_end(self) -> None:
        """Queue ``activity_end``: the user's turn is over, the model answers it."""
        await self._outbound.put(_Outbound("activity_end", None))

    async def send_tool_response(self, responses: Sequence[FunctionResult]) -> None:
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
        if self._unreadable:
            logger.info(
                "Gemini Live relay closed; server messages skipped or repaired: %d %s",
                sum(self._unreadable.values()), dict(self._unreadable),
            )  # fmt: skip

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
            code, reason = _close_of(exc)
            self._observer.refused(code)
            raise UpstreamUnavailable(_describe(exc), code, reason) from exc
        except asyncio.CancelledError:
            with contextlib.suppress(*SEND_ERRORS):
                await asyncio.shield(stack.aclose())
            raise
        self._links += 1
        link = _Link(self._links, session, stack, calls_block=self._calls_block)
        link.receiver = asyncio.create_task(
            self._guard("receive", self._receive_loop(link)), name="live-receive"
        )
        return link

    async def _receive_loop(self, link: _Link) -> None:
        """Receive across turns (``session.receive()`` stops after each) until the close."""
        error: str | None = None
        code: int | None = None
        messages = link.session.receive()
        while True:
            try:
                message = await anext(messages)
                arrived = time.perf_counter()
                events = events_from_message(message)
            except StopAsyncIteration:
                messages = link.session.receive()
                continue
            except errors.APIError as exc:
                if not _is_close(exc):  # a message with a "code" and no field the SDK knows
                    self._skip_unreadable(link, exc)
                    messages = link.session.receive()
                    continue
                # The SDK raises APIError for every close, a clean 1000 included.
                code = exc.code
                error = None if exc.code == 1000 else _describe(exc)
                break
            except (ConnectionClosed, OSError) as exc:
                code, _ = _close_of(exc)
                error = _describe(exc)
                break
            except UNREADABLE_ERRORS as exc:  # a message the SDK cannot convert
                self._skip_unreadable(link, exc)
                messages = link.session.receive()
                continue
            for event in events:
                if isinstance(event, Dropped):
                    self._count_unreadable(link, event.what, REPAIRED)
                else:
                    await self._on_link_event(link, event)
            self._observer.relayed_down(time.perf_counter() - arrived)
        link.idle.set()
        link.gone.set()
        link.close_code = code
        self._observer.closed(code)
        self._link_lost(link, error)

    def _skip_unreadable(self, link: _Link, exc: Exception) -> None:
        """Log a server message the SDK could not read, once per kind, and count it."""
        self._observer.unknown_message()
        self._count_unreadable(link, _unreadable_kind(exc), type(exc).__name__)

    def _count_unreadable(self, link: _Link, kind: str, how: str) -> None:
        """Count a server message (or part of one) skipped or repaired, logged once per kind.

        At most UNREADABLE_KINDS kinds are told apart: a stream of made-up kinds does
        not grow the counts (or the log) without bound.
        """
        if kind not in self._unreadable and len(self._unreadable) >= UNREADABLE_KINDS:
            kind = OTHER_KINDS
        seen = self._unreadable.get(kind, 0)
        self._unreadable[kind] = seen + 1
        if not seen:
            done = "repaired" if how == REPAIRED else "skipped a server message the SDK cannot read"
            logger.warning(
                "Gemini Live connection %s: %s (%s: %s); later ones of this kind are counted"
                " silently", link.number, done, kind, how,
            )  # fmt: skip

    @property
    def unreadable_messages(self) -> dict[str, int]:
        """Server messages skipped because the SDK could not read them, by kind, and the
        parts of messages repaired or left out (see events.Dropped), by what."""
        return dict(self._unreadable)

    async def _on_link_event(self, link: _Link, event: LiveEvent) -> None:
        """Apply what one connection received, then pass it on."""
        link.mark_turn(event)
        match event:
            case ToolCall(calls=calls):
                self._pending_calls.update(call.id for call in calls if call.id)
            case ToolCallCancellation(ids=ids):
                self._pending_calls.difference_update(ids)
        if link.muted:
            return
        active = link is self._link
        match event:
            case ResumptionUpdate(handle=handle, resumable=resumable) if active:
                # A handle taken while a call is pending cannot be resumed from.
                if handle and resumable and not self._pending_calls:
                    self.resumption_handle = handle
                    self._replay.clear()
                    self._replay.extend(self._unsettled)  # a turn's end settles them
                    self._in_activity_at_handle = self._in_activity
            case TurnComplete(in_progress=False) if active:
                self._unsettled.clear()
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
            self._recovery = asyncio.create_task(
                self._guard("recovery", recovery()), name="live-recovery"
            )

    async def _hand_over(self, old: _Link, time_left: float) -> None:
        """On goAway: wait for a turn boundary, then switch to a resumed connection.

        The new connection opens while the old one is still up. If the service refuses
        that overlap, the old connection is closed first and the session resumed then.
        """
        margin = self._resilience.switch_margin_s
        wait = max(0.0, time_left - margin)
        logger.info(
            "Gemini Live connection %s: goAway, %.1f s left; switching within %.1f s",
            old.number, time_left, wait,
        )  # fmt: skip
        if old.in_turn and wait > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await first_of(old.idle.wait(), old.gone.wait())
        await self._hold_sends()
        handle = self.resumption_handle
        try:
            new = await self._connect(handle=handle)
        except UpstreamUnavailable as exc:
            logger.warning(
                "Hand-over connection refused while connection %s is open (%s);"
                " closing it first", old.number, str(exc),
            )  # fmt: skip
            self._drop_refused_handle(handle, exc)
            await self._cut_reply(old)
            await old.close()
            await self._resume(old, "handover")
            return
        await self._switch(old, new, "handover")

    async def _reconnect(self, error: str | None) -> None:
        """After an unexpected close: resume with the newest handle, with backoff."""
        await self._hold_sends()
        await self._on_event(Reconnecting(error=error))
        await self._resume(self._link, "reconnect")

    async def _resume(self, old: _Link | None, how: str) -> None:
        """Connect again with backoff: with the newest handle, or afresh once it is refused."""
        failure: UpstreamUnavailable | None = None
        for attempt, delay in enumerate(self._resilience.reconnect_delays, start=1):
            await asyncio.sleep(delay)
            handle = self.resumption_handle
            try:
                new = await self._connect(handle=handle)
            except UpstreamUnavailable as exc:
                failure = exc
                logger.warning("Resumption attempt %d failed: %s", attempt, str(exc))
                self._drop_refused_handle(handle, exc)
                continue
            await self._switch(old, new, how if handle is not None else "fresh")
            return
        tries = len(self._resilience.reconnect_delays)
        await self._give_up(
            f"the model connection was lost and {tries} attempts to resume failed"
            + (f"; the last: {failure}" if failure is not None else ""),
            code=failure.code if failure is not None else None,
            reason=failure.reason if failure is not None else "",
        )

    def _drop_refused_handle(self, handle: str | None, exc: UpstreamUnavailable) -> None:
        """Forget a handle the service will not resume (1007, 1008): start afresh next."""
        if handle is not None and exc.code in HANDLE_REFUSED_CODES:
            logger.warning("The service refused the resumption handle: starting afresh")
            if self.resumption_handle == handle:
                self.resumption_handle = None

    async def _hold_sends(self) -> None:
        """Stop sending: browser input waits in the queue until the switch."""
        self._writable.clear()
        async with self._send_lock:
            pass  # a send in progress has finished

    async def _switch(self, old: _Link | None, new: _Link, how: str) -> None:
        """Make ``new`` the active connection and replay what the handle does not hold.

        A fresh session (``how == "fresh"``) first gets the recent transcript as context.
        """
        replay = list(self._replay)
        self._link = new
        if old is not None:
            # Kept from here on, so that close() closes it even if the session ends while
            # this switch is still cutting the reply, seeding or replaying.
            self._old_links.add(old)
        if old is not None and how != "reconnect":
            await self._cut_reply(old)
        try:
            if how == "fresh":
                await self._seed(new)
            if self._in_activity_at_handle:
                # The user was holding the talk button before the replayed input: the
                # new connection hears that activity start first.
                await new.send(_Outbound("activity_start", None))
            for item in replay:
                await new.send(item)
        except SEND_ERRORS:
            pass  # the receive loop reports the new link's loss
        if old is not None:
            self._spawn(self._guard("retire", self._retire(old)))
        logger.info(
            "Gemini Live session %s on connection %s (replayed %d inputs)", how, new.number,
            len(replay),
        )  # fmt: skip
        self._writable.set()
        await self._on_event(Resumed(how=how))
        if new.gone.is_set():
            self._link_lost(new, "closed during the switch")

    async def _seed(self, link: _Link) -> None:
        """Give a fresh session the recent transcript, with roles, as its context."""
        lines = list(self._history()) if self._history is not None else []
        replayed = [item.payload for item in self._replay if item.kind == "text"]
        lines = _without_replayed(lines, replayed)
        if not lines:
            return
        turns = [types.Content(role=role, parts=[types.Part(text=text)]) for role, text in lines]
        await link.session.send_client_content(turns=turns, turn_complete=False)
        logger.info("Seeded connection %s with %d transcript lines", link.number, len(turns))

    async def _cut_reply(self, old: _Link) -> None:
        """End a reply the old connection is still sending: nothing more of it is relayed.

        Used when a switch comes mid-reply (time was nearly up): the resumed model answers
        anew from the replay, so the old reply ends here rather than interleave with the new.
        """
        if not old.in_turn or old.muted:
            return
        old.muted = True
        old.in_turn = False
        old.idle.set()
        await self._on_event(Interrupted())
        await self._on_event(TurnComplete())

    async def _retire(self, old: _Link) -> None:
        """Let the old connection finish the reply it is sending, then close it."""
        if not old.muted:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._resilience.retire_timeout_s):
                    await first_of(old.idle.wait(), old.gone.wait())
        await old.close()
        self._old_links.discard(old)

    async def _give_up(self, error: str, code: int | None = None, reason: str = "") -> None:
        """Resumption failed for good: tell the owner and stop sending."""
        self._failed = True
        self._writable.set()
        logger.warning("Gemini Live session lost: %s", error)
        await self._on_event(UpstreamClosed(error=error, code=code, reason=reason))

    async def _guard(self, name: str, work: Awaitable[None]) -> None:
        """Run one of the relay's tasks; an error in it ends the conversation, loudly.

        Without this a failed task would die unseen: a deaf receive loop, a send queue
        that fills until the browser's socket blocks.
        """
        try:
            await work
        except Exception:
            logger.exception("Gemini Live relay: the %s task failed", name)
            if self._closing or self._failed:
                return
            self._failed = True
            self._writable.set()
            await self._on_event(
                UpstreamClosed(error=f"the relay's {name} task failed", internal=True)
            )

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
                self._observer.relayed_up(time.perf_counter() - item.arrived)
                if item.kind == "tool_response":
                    self._pending_calls.difference_update(
                        response.id for response in item.payload if response.id
                    )
                else:
                    self._replay.append(item)
                if item.kind == "text":
                    self._unsettled.append(item)
                if item.kind in ("activity_start", "activity_end"):
                    self._in_activity = item.kind == "activity_start"
                return


def _without_replayed(
    lines: list[tuple[str, str]], replayed: Sequence[str]
) -> list[tuple[str, str]]:
    """The transcript without the newest user lines that are replayed as input anyway."""
    pending = list(replayed)
    kept: list[tuple[str, str]] = []
    for role, text in reversed(lines):
        if role == "user" and text in pending:
            pending.remove(text)
            continue
        kept.append((role, text))
    return kept[::-1]


def _seconds(time_left: str | None) -> float:
    """A protobuf Duration such as ``"4.5s"`` in seconds."""
    match = _DURATION.match(time_left or "")
    return min(float(match.group(1)), MAX_TIME_LEFT_S) if match else DEFAULT_TIME_LEFT_S


def _is_close(exc: errors.APIError) -> bool:
    """Whether the SDK raised ``exc`` for the connection's close, not for a message."""
    return isinstance(exc.__context__, ConnectionClosed)


def _function_response(result: FunctionResult) -> types.FunctionResponse:
    """The SDK's form of one function's answer."""
    response = types.FunctionResponse(id=result.id, name=result.name, response=result.response)
    if result.scheduling is not None:
        response.scheduling = types.FunctionResponseScheduling(result.scheduling)
    return response


def _close_of(exc: BaseException) -> tuple[int | None, str]:
    """The WebSocket close code and reason behind an upstream failure, if any."""
    if isinstance(exc, errors.APIError):
        return exc.code, _api_reason(exc)
    if isinstance(exc, ConnectionClosed):
        return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (1006, "")
    return None, ""


def _api_reason(exc: errors.APIError) -> str:
    """The close reason the SDK put in an APIError (for a close, ``details`` is the reason)."""
    if exc.message:
        return exc.message
    if isinstance(exc.details, str):
        return exc.details
    return exc.status or ""


def _unreadable_kind(exc: BaseException) -> str:
    """What kind of server message the SDK failed on: its top-level keys, where they show.

    google-genai 3.x raises ValueError("Failed to parse response...") for malformed JSON,
    and TypeError from ``errors.APIError.raise_error(None, ...)`` for a message none of
    whose fields it knows; the message is then only a local of ``AsyncSession._receive``.
    """
    if isinstance(exc, ValueError) and str(exc).startswith("Failed to parse response"):
        return "malformed JSON"
    trace = exc.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_name == "_receive":
            response = trace.tb_frame.f_locals.get("response")
            if isinstance(response, dict) and response:
                return "+".join(sorted(_SAFE_KIND.sub("?", str(key)[:40]) for key in response)[:4])
        trace = trace.tb_next
    return f"unreadable ({type(exc).__name__})"


def _describe(exc: BaseException) -> str:
    """A short description of an upstream failure, safe to show and log."""
    if isinstance(exc, TimeoutError):
        return "timed out connecting to the model"
    if isinstance(exc, errors.APIError):
        return f"model connection closed ({exc.code}): {_api_reason(exc)}".strip()
    if isinstance(exc, ConnectionClosed):
        return f"model connection closed ({exc.rcvd.code if exc.rcvd else 1006})"
    return f"model connection failed: {exc.__class__.__name__}"
