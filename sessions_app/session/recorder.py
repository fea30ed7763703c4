"""Persisting one session as it happens, without blocking the media path.

Lines are written by one background task, in batches, as soon as each turn completes;
a crash loses at most the turn in progress.

While the database is away the session goes on: lines wait in memory, in order, and the
writer tries again on its own (0.5 s, doubling to 5 s), not only when the next turn
comes. The outage is logged once as a warning when it starts and once when it is over,
with counts. Each line keeps its sequence number and the write ignores lines already
stored, so a batch whose commit was lost on the way is written again with no duplicate.

At most ``max_unsaved`` lines wait: the next turn past that calls ``on_overflow`` (the
conversation ends as ``storage_unavailable``) instead of dropping anything. The end of
a session is written the same way, in the background, for up to ``retry_cap_s``; only
past that cap, or if the process stops first, are lines lost, and then logged as an
error with their number.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.db import DatabaseError

from sessions_app import metrics, services
from sessions_app.services import SessionCounters
from sessions_app.session.transcripts import Line, TurnBuffer

logger = logging.getLogger(__name__)

HISTORY_LINES = 40  # the recent lines a fresh model session is seeded with
HISTORY_CHARS = 8000
MAX_UNSAVED_LINES = 2000  # SHARE_UNSAVED_LINES_MAX
STORAGE_RETRY_S = 600.0  # SHARE_STORAGE_RETRY_S
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0

# Recorders still writing a finished session in the background (the database was away
# when it ended): held here so that nothing drops them before they are done.
_draining: set[asyncio.Task[None]] = set()


def draining() -> int:
    """How many finished sessions are still being written in the background."""
    return len(_draining)


@dataclass
class _Outage:
    """The current run of failed writes of one session."""

    started: float  # loop time of the first failure
    attempts: int = 1


@dataclass(frozen=True)
class _Final:
    """How the session ended, to be stored once its lines are."""

    status: str
    end_reason: str
    at: float  # loop time the session ended


class SessionRecorder:
    """Collects a session's transcript and totals and stores them in the background."""

    def __init__(
        self,
        session_id: uuid.UUID,
        *,
        max_unsaved: int = MAX_UNSAVED_LINES,
        retry_cap_s: float = STORAGE_RETRY_S,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self.session_id = session_id
        self.counters = SessionCounters()
        self.turns = TurnBuffer()
        self.max_unsaved = max_unsaved
        self.retry_cap_s = retry_cap_s
        self.on_overflow = on_overflow
        self._unsaved: list[Line] = []
        self._counters_dirty = False  # totals changed since they were last stored
        self._recent: deque[Line] = deque(maxlen=HISTORY_LINES)
        self._outage: _Outage | None = None
        self._final: _Final | None = None
        self._finished_row: bool | None = None  # live_session_finish's answer, once stored
        self._gave_up = False
        self._overflowed = False  # on_overflow was called
        self._settled = asyncio.Event()  # the first attempt at the end was made
        self._ending = asyncio.Event()  # finish() was called
        self._wake = asyncio.Event()
        self._writer = asyncio.create_task(self._write_loop(), name="transcript-writer")

    @property
    def unsaved(self) -> int:
        """How many lines wait to be stored."""
        return len(self._unsaved)

    @property
    def storage_down(self) -> bool:
        """Whether the last write failed."""
        return self._outage is not None

    def typed(self, text: str) -> None:
        """Record a typed message: stored now, or after the turn it came in (transcripts)."""
        line = self.turns.add_typed(text)
        if line is not None:
            self._queue([line])

    def fragment(self, *, role: str, source: str, text: str) -> str:
        """Record a transcription fragment of the turn in progress; returns what was kept."""
        return self.turns.add_fragment(role=role, source=source, text=text)

    def counters_changed(self) -> None:
        """The totals changed (a usage report): store them soon, with or without new lines.

        Other workers read them from the row (the user's daily budget), so they must not
        wait for the next turn's lines.
        """
        self._counters_dirty = True
        self._wake.set()

    def complete_turn(self) -> list[Line]:
        """Close the turn in progress and queue its lines."""
        lines = self.turns.complete_turn()
        self._queue(lines)
        return lines

    async def finish(self, *, status: str, end_reason: str, wait: bool = True) -> bool:
        """Store what is left and mark the session finished; False if already finished.

        With ``wait``, returns once the end is stored, or once a first attempt failed:
        the writer then goes on in the background. Without, returns at once.
        """
        if self._final is not None:
            return False
        self._final = _Final(status, end_reason, asyncio.get_running_loop().time())
        self._ending.set()
        if self.turns.pending:
            self.complete_turn()
        self._wake.set()
        if not self._writer.done():
            _draining.add(self._writer)
            self._writer.add_done_callback(_draining.discard)
        if wait:
            await self._settled.wait()
            if self._writer.done() and not self._writer.cancelled():
                self._writer.result()  # a failure other than the database's is raised here
        if self._has_work():
            logger.warning(
                "Session %s ended (%s) with %d transcript lines and its end not stored yet;"
                " retrying in the background for up to %g s",
                self.session_id,
                end_reason,
                len(self._unsaved),
                self.retry_cap_s,
            )
        return self._finished_row is not False

    async def stored(self) -> None:
        """Wait until the writer is done: everything stored, or given up."""
        await asyncio.shield(self._writer)

    def recent_history(self) -> list[tuple[str, str]]:
        """The newest stored lines as (role, text), oldest first, within HISTORY_CHARS."""
        history: list[tuple[str, str]] = []
        size = 0
        for line in reversed(self._recent):
            size += len(line.text)
            if size > HISTORY_CHARS and history:
                break
            history.append((line.role, line.text[:HISTORY_CHARS]))
        return history[::-1]

    def _queue(self, lines: list[Line]) -> None:
        """Hand lines to the writer; past the bound, ask for the session to end."""
        if not lines:
            return
        self._unsaved.extend(lines)
        self._recent.extend(lines)
        self._wake.set()
        if len(self._unsaved) > self.max_unsaved and not self._overflowed:
            self._overflowed = True
            logger.warning(
                "Session %s: %d transcript lines wait for the database (bound %d);"
                " ending the session",
                self.session_id,
                len(self._unsaved),
                self.max_unsaved,
            )
            if self.on_overflow is not None:
                self.on_overflow()

    async def _write_loop(self) -> None:
        """Write queued lines as they come, retrying on its own while the database is away."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._write_until_stored()
                if self._final is not None:
                    return
        except asyncio.CancelledError:
            if self._has_work():
                logger.error(
                    "Session %s: stopped before the database came back; %d transcript lines"
                    " lost, end not stored",
                    self.session_id,
                    len(self._unsaved),
                )
            raise
        finally:
            self._settled.set()

    def _has_work(self) -> bool:
        """Whether lines, or the end of the session, still wait to be stored."""
        if self._unsaved or self._counters_dirty:
            return True
        return self._final is not None and self._finished_row is None and not self._gave_up

    async def _write_until_stored(self) -> None:
        """Write until nothing waits; back off between failed attempts."""
        delay = RETRY_FIRST_S
        loop = asyncio.get_running_loop()
        while self._has_work():
            if await self._write_once():
                delay = RETRY_FIRST_S
                continue
            final = self._final
            if final is not None:
                self._settled.set()
                if loop.time() - final.at >= self.retry_cap_s:
                    self._give_up(final)
                    return
            await self._pause(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _pause(self, delay: float) -> None:
        """Wait ``delay`` before trying again; the end of the session cuts it short once."""
        if self._final is not None:
            await asyncio.sleep(delay)  # backoff between attempts, not a wait on an event
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ending.wait(), delay)

    async def _write_once(self) -> bool:
        """One attempt at storing the waiting lines (and the end, if it came); False if it
        failed."""
        batch = list(self._unsaved)
        final = self._final
        try:
            if batch or self._counters_dirty:
                self._counters_dirty = False  # a change from here on is stored next time
                started = time.perf_counter()
                try:
                    await database_sync_to_async(services.transcript_lines_save)(
                        session_id=self.session_id, lines=batch, counters=self.counters.snapshot()
                    )
                finally:
                    metrics.transcript_write(started)
                del self._unsaved[: len(batch)]  # only appended to meanwhile
            if final is not None and not self._unsaved:
                self._finished_row = await database_sync_to_async(services.live_session_finish)(
                    session_id=self.session_id,
                    status=final.status,
                    end_reason=final.end_reason,
                    counters=self.counters.snapshot(),
                )
        except DatabaseError as exc:
            self._counters_dirty = True
            self._failed(exc, len(batch))
            return False
        self._recovered(len(batch))
        return True

    def _failed(self, exc: DatabaseError, lines: int) -> None:
        """A write failed: warn once at the start of an outage, count the attempts after."""
        if self._outage is not None:
            self._outage.attempts += 1
            return
        self._outage = _Outage(started=asyncio.get_running_loop().time())
        logger.warning(
            "Session %s: the database is unreachable (%s); %d transcript lines wait in"
            " memory (bound %d), retrying",
            self.session_id,
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            lines,
            self.max_unsaved,
        )

    def _recovered(self, lines: int) -> None:
        """A write succeeded: if it ended an outage, say so with its counts."""
        outage, self._outage = self._outage, None
        if outage is None:
            return
        logger.warning(
            "Session %s: the database is back after %.1f s and %d failed attempts;"
            " %d waiting transcript lines stored",
            self.session_id,
            asyncio.get_running_loop().time() - outage.started,
            outage.attempts,
            lines,
        )

    def _give_up(self, final: _Final) -> None:
        """Past the retry cap after the session ended: what still waits is lost."""
        self._gave_up = True
        logger.error(
            "Session %s: the database stayed unreachable for %.0f s after the session ended"
            " (%s); %d transcript lines lost, end not stored",
            self.session_id,
            self.retry_cap_s,
            final.end_reason,
            len(self._unsaved),
        )
