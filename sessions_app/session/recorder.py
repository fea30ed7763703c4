"""Persisting one session as it happens, without blocking the media path.

Lines are written by one background task, in batches, as soon as each turn completes;
a crash loses at most the turn in progress. A failed write is kept and tried again with
the next batch and at the end, so no line is dropped while the database is briefly away.
"""

import asyncio
import logging
import uuid
from collections import deque

from channels.db import database_sync_to_async
from django.db import DatabaseError

from sessions_app import services
from sessions_app.services import SessionCounters
from sessions_app.session.transcripts import Line, TurnBuffer

logger = logging.getLogger(__name__)

HISTORY_LINES = 40  # the recent lines a fresh model session is seeded with
HISTORY_CHARS = 8000


class SessionRecorder:
    """Collects a session's transcript and totals and stores them in the background."""

    def __init__(self, session_id: uuid.UUID) -> None:
        self.session_id = session_id
        self.counters = SessionCounters()
        self.turns = TurnBuffer()
        self._unsaved: list[Line] = []
        self._recent: deque[Line] = deque(maxlen=HISTORY_LINES)
        self._wake = asyncio.Event()
        self._writer = asyncio.create_task(self._write_loop(), name="transcript-writer")
        self._finished = False

    def typed(self, text: str) -> None:
        """Record a typed message: stored now, or after the turn it came in (transcripts)."""
        line = self.turns.add_typed(text)
        if line is not None:
            self._queue([line])

    def fragment(self, *, role: str, source: str, text: str) -> None:
        """Record a transcription fragment of the turn in progress."""
        self.turns.add_fragment(role=role, source=source, text=text)

    def complete_turn(self) -> list[Line]:
        """Close the turn in progress and queue its lines."""
        lines = self.turns.complete_turn()
        self._queue(lines)
        return lines

    async def finish(self, *, status: str, end_reason: str) -> bool:
        """Store what is left and mark the session finished; False if already finished."""
        if self._finished:
            return False
        self._finished = True
        if self.turns.pending:
            self.complete_turn()
        self._wake.set()
        await self._writer
        if self._unsaved:
            await self._flush()
        return await database_sync_to_async(services.live_session_finish)(
            session_id=self.session_id,
            status=status,
            end_reason=end_reason,
            counters=self.counters.snapshot(),
        )

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
        """Hand lines to the writer."""
        if lines:
            self._unsaved.extend(lines)
            self._recent.extend(lines)
            self._wake.set()

    async def _write_loop(self) -> None:
        """Write queued lines as they come."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()
            if self._finished:
                return

    async def _flush(self) -> None:
        """Write every unsaved line with the current totals; keep them on failure."""
        lines, self._unsaved = self._unsaved, []
        try:
            await database_sync_to_async(services.transcript_lines_save)(
                session_id=self.session_id, lines=lines, counters=self.counters.snapshot()
            )
        except DatabaseError:
            logger.exception(
                "Saving %d transcript lines of session %s failed; will retry",
                len(lines),
                self.session_id,
            )
            self._unsaved[:0] = lines
