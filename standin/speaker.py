"""The sending side of one stand-in connection: every server message, and the turn worker.

Replies are queued (:class:`standin.turns.TurnQueue`) and played one at a time by a
worker task, so turns never interleave. Every message goes out under one send lock and
is recorded in ``Connection.replies`` (a raw text frame as ``{"raw": text}``), and every
usageMetadata in ``Connection.usage``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from standin.protocol import INTERNAL_ERROR, INTERNAL_ERROR_REASON, Outgoing
from standin.records import Connection
from standin.turns import Turn, TurnQueue

logger = logging.getLogger(__name__)

# What Speaker.emit sends: messages, or a function making them once the turn may go on.
Messages = list[Outgoing] | Callable[[], list[Outgoing]]


class RecordHost(Protocol):
    """What the speaker needs from its server (``StandIn`` provides it)."""

    def notify(self) -> None:
        """Wake ``wait_for`` callers and listeners: a record changed."""

    def may_record(self, record: Connection, size: int) -> bool:
        """Whether ``size`` more bytes of media may be kept for ``record``."""


class Speaker:
    """Sends and records a connection's messages; its worker plays turns with ``play``."""

    def __init__(self, host: RecordHost, ws: ServerConnection, record: Connection) -> None:
        self.ws, self.record = ws, record
        self.lock = asyncio.Lock()
        self.queue = TurnQueue()
        self.current: Turn | None = None
        self.play: Callable[[Turn], Awaitable[None]] | None = None  # set before start()
        self._host = host
        self._worker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._abort_after: int | None = None

    def start(self) -> None:
        """Start playing queued turns."""
        self._worker = asyncio.create_task(self._work(), name=f"standin-{self.record.index}")
        self._worker.add_done_callback(self._worker_done)

    async def stop(self) -> None:
        """Stop the turn worker."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.wait({self._worker})

    def playing(self) -> Turn | None:
        """The turn playing, unless it is already cancelled or complete."""
        turn = self.current
        return turn if turn is not None and not (turn.cancelled or turn.finished) else None

    async def send(self, message: Outgoing) -> None:
        """Send one server message outside any turn."""
        async with self.lock:
            await self.send_unlocked(message)

    async def send_unlocked(self, message: Outgoing) -> None:
        """Send and record one message (a str goes out as is); the caller holds the lock."""
        raw = isinstance(message, str)
        text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
        await self.ws.send(text)
        kept = len(self.record.replies)
        self.keep(self.record.replies, {"raw": text} if raw else message, len(text))
        if len(self.record.replies) > kept:
            self.record.reply_marks.append(len(self.record.messages))
        if isinstance(message, dict) and "usageMetadata" in message:
            self.record.usage.append(message["usageMetadata"])
        self._host.notify()

    async def emit(self, turn: Turn, messages: Messages, *, finish: bool = False) -> bool:
        """Send messages of ``turn`` unless it was cancelled or dropped; False once it is.

        A callable is called (under the send lock) only if the turn goes on; with
        ``finish``, the turn counts as complete once everything went out.
        """
        async with self.lock:
            if turn.cancelled:
                return False
            for message in messages() if callable(messages) else messages:
                if self._dropped(turn):
                    return False
                await self.send_unlocked(message)
                turn.sent += 1
                turn.delivered(message)
            turn.finished = finish
            return not self._dropped(turn)

    async def pause(self, turn: Turn, seconds: float) -> None:
        """Wait ``seconds`` (cut short by an interrupt); always lets other tasks run."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(turn.wake.wait(), seconds)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        if self.record.aborted:
            return
        self.record.aborted = True
        logger.info("Connection #%s: aborted", self.record.index)
        self.ws.transport.abort()
        self._host.notify()

    def abort_mid_turn(self, after_messages: int) -> None:
        """Abort as soon as a reply turn has sent ``after_messages`` of its messages.

        The turn playing counts (if it has sent that many already, it is dropped before
        its next message), else the next turn; the arming lasts until it fires.
        """
        if after_messages < 0:
            raise ValueError("after_messages must not be negative.")
        self._abort_after = after_messages

    def keep(self, items: list[Any], item: Any, size: int) -> bool:
        """Append ``item`` to a media record unless the record limit is reached; if kept."""
        if not self._host.may_record(self.record, size):
            return False
        items.append(item)
        return True

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` in a task kept alive until it ends (never cancelled)."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _dropped(self, turn: Turn) -> bool:
        """Whether the connection is aborted, by ``abort_mid_turn`` now if ``turn`` is due."""
        if self._abort_after is not None and turn.sent >= self._abort_after:
            self._abort_after = None
            self.abort()
        return self.record.aborted

    async def _work(self) -> None:
        """Play queued turns one after another."""
        if self.play is None:
            raise RuntimeError("Speaker.play is not set.")
        with contextlib.suppress(ConnectionClosed):
            while True:
                turn = await self.queue.get()
                self.current = turn
                try:
                    await self.play(turn)
                finally:
                    self.current = None
                if self.record.aborted:
                    return

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        """A crashed turn worker closes the connection with 1011 instead of hanging it."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        logger.error("Connection #%s: reply worker failed", self.record.index, exc_info=error)
        self.spawn(self.ws.close(INTERNAL_ERROR, INTERNAL_ERROR_REASON))
