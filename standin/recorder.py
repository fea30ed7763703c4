"""The records a stand-in keeps of its connections, and waiting for them to change.

:class:`Recorder` (the base of ``StandIn``) holds every :class:`Connection` record,
bounds the media they keep and wakes ``wait_for`` callers and listeners on each change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from standin.records import Connection

logger = logging.getLogger(__name__)


class Recorder:
    """Connection records, their memory bounds and change notification.

    ``record_limit_bytes`` bounds the media recorded per connection (None: unbounded)
    and ``keep_closed_records`` how many closed connections keep their media, so a
    long-running demo does not grow without limit. ``Connection.truncated`` tells.
    """

    def __init__(self, record_limit_bytes: int | None, keep_closed_records: int | None) -> None:
        self.connections: list[Connection] = []
        self.record_limit_bytes = record_limit_bytes
        self.keep_closed_records = keep_closed_records
        self.listeners: list[Callable[[], None]] = []
        self._closed_order: list[Connection] = []
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true, re-checking on every record change.

        A predicate raising LookupError or AttributeError (say ``connections[0]`` before
        anyone connected) counts as false. Raises TimeoutError describing the records.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate_holds(predicate):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(self._timeout_message(predicate, timeout))
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def notify(self) -> None:
        """Wake ``wait_for`` callers and listeners: a record changed."""
        self._changed.set()
        self._changed = asyncio.Event()
        for listener in self.listeners:
            listener()

    def may_record(self, record: Connection, size: int) -> bool:
        """Whether ``size`` more bytes of media may be kept for ``record``."""
        limit = self.record_limit_bytes
        if limit is not None and record.recorded_bytes + size > limit:
            if not record.truncated and limit > 0:
                logger.warning("Connection #%s: record limit reached, media not kept", record.index)
            record.truncated = True
            return False
        record.recorded_bytes += size
        return True

    def is_open(self, connection: int) -> bool:
        """Whether connection ``connection`` has not closed yet."""
        return not self.connections[connection].closed

    def _forget_old(self, record: Connection) -> None:
        """Drop the media of closed connections beyond ``keep_closed_records``."""
        self._closed_order.append(record)
        keep = self.keep_closed_records
        while keep is not None and len(self._closed_order) > keep:
            old = self._closed_order.pop(0)
            kept = (old.messages, old.audio, old.frames, old.frame_arrivals, old.replies)
            for items in (*kept, old.reply_marks):
                items.clear()
            old.truncated, old.recorded_bytes = True, 0

    def _timeout_message(self, predicate: Callable[[], bool], timeout: float) -> str:
        """Why ``wait_for`` gave up, with a summary of every connection."""
        code = getattr(predicate, "__code__", None)
        where = f" ({code.co_filename}:{code.co_firstlineno})" if code else ""
        name = getattr(predicate, "__qualname__", repr(predicate))
        state = "; ".join(record.summary() for record in self.connections) or "no connections"
        return f"Condition {name}{where} not met within {timeout} s. Stand-in: {state}"


def predicate_holds(predicate: Callable[[], bool]) -> bool:
    """``predicate()``, with lookups into records that do not exist yet as False."""
    try:
        return bool(predicate())
    except (LookupError, AttributeError):
        return False
