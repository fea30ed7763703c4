"""The recorder while the database is away: its queue, its bound, its backoff, its cap.

The two database writes are replaced by a store that can be switched off, a mock of the
database only because a unit test stops none: tests/faults/test_postgres_outage.py
stops a real PostgreSQL under a real worker.
"""

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from django.db import OperationalError

from sessions_app import services
from sessions_app.session import recorder as recorder_module
from sessions_app.session.recorder import SessionRecorder
from sessions_app.session.transcripts import Line
from tests.records import eventually


class SwitchableStore:
    """Stands in for transcript_lines_save and live_session_finish; ``down`` refuses both."""

    def __init__(self) -> None:
        self.down = True
        self.attempts = 0
        self.batches: list[list[int]] = []  # the sequences of each stored batch
        self.finished: list[tuple[str, str]] = []

    def save(self, *, session_id: uuid.UUID, lines: Sequence[Line], counters: Any) -> None:
        """Store a batch, or fail as a lost connection does."""
        self.attempts += 1
        if self.down:
            raise OperationalError("connection refused")
        self.batches.append([line.sequence for line in lines])

    def finish(self, *, session_id: uuid.UUID, status: str, end_reason: str, counters: Any) -> bool:
        """Store the end, or fail."""
        if self.down:
            raise OperationalError("connection refused")
        self.finished.append((status, end_reason))
        return True


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> SwitchableStore:
    """The switchable store, down at first, in place of the database writes."""
    switchable = SwitchableStore()
    monkeypatch.setattr(services, "transcript_lines_save", switchable.save)
    monkeypatch.setattr(services, "live_session_finish", switchable.finish)
    monkeypatch.setattr(recorder_module, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(recorder_module, "RETRY_MAX_S", 0.04)
    return switchable


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The recorder's log messages at ``level``."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "sessions_app.session.recorder" and r.levelno == level
    ]


async def test_lines_wait_in_order_retry_on_their_own_and_are_stored_once_back(
    store: SwitchableStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    recorder = SessionRecorder(uuid.uuid4())
    for number in range(1, 6):
        recorder.typed(f"line {number}")
        await asyncio.sleep(0.01)  # lines come one by one, as a session types them
    attempts = store.attempts

    async def retried_without_a_new_line() -> bool:
        return store.attempts >= attempts + 3

    await eventually(retried_without_a_new_line)
    assert recorder.unsaved == 5
    store.down = False

    async def all_stored() -> bool:
        return recorder.unsaved == 0

    await eventually(all_stored)
    stored = [sequence for batch in store.batches for sequence in batch]
    assert stored == [1, 2, 3, 4, 5]
    warnings = messages(caplog, logging.WARNING)
    assert len(warnings) == 2, warnings  # one when it began, one when it was over
    assert "the database is unreachable" in warnings[0]
    assert "the database is back" in warnings[1]
    assert "5 waiting transcript lines stored" in warnings[1]
    assert await recorder.finish(status="ended", end_reason="client_stop")
    assert store.finished == [("ended", "client_stop")]


async def test_the_backoff_doubles_from_half_a_second_to_five(
    store: SwitchableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_module, "RETRY_FIRST_S", 0.5)
    monkeypatch.setattr(recorder_module, "RETRY_MAX_S", 5.0)
    delays: list[float] = []

    async def pause(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0)

    recorder = SessionRecorder(uuid.uuid4())
    monkeypatch.setattr(recorder, "_pause", pause)
    recorder.typed("waits")

    async def seven_pauses() -> bool:
        return len(delays) >= 7

    await eventually(seven_pauses)
    assert delays[:7] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    store.down = False
    await recorder.finish(status="ended", end_reason="client_stop")
    await recorder.stored()
    assert store.batches == [[1]]


async def test_past_the_bound_the_session_is_ended_once_and_no_line_is_dropped(
    store: SwitchableStore,
) -> None:
    overflows: list[int] = []
    recorder = SessionRecorder(uuid.uuid4(), max_unsaved=3)
    recorder.on_overflow = lambda: overflows.append(recorder.unsaved)
    for number in range(1, 6):
        recorder.typed(f"line {number}")
    assert overflows == [4]  # the fourth line, once
    assert recorder.unsaved == 5

    # The session ends at once: the end waits for the database with the lines.
    assert await recorder.finish(status="failed", end_reason="storage_unavailable", wait=False)
    assert store.finished == []
    store.down = False
    await recorder.stored()
    assert [sequence for batch in store.batches for sequence in batch] == [1, 2, 3, 4, 5]
    assert store.finished == [("failed", "storage_unavailable")]
    assert recorder_module.draining() == 0


async def test_an_end_during_an_outage_returns_after_one_attempt_and_gives_up_at_the_cap(
    store: SwitchableStore, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = SessionRecorder(uuid.uuid4(), retry_cap_s=0.2)
    recorder.typed("one")
    recorder.typed("two")
    await recorder.finish(status="ended", end_reason="client_stop")
    assert store.finished == []  # returned with the database still away
    assert recorder_module.draining() == 1
    await recorder.stored()
    assert store.batches == []
    errors = messages(caplog, logging.ERROR)
    assert len(errors) == 1, errors
    assert "2 transcript lines lost" in errors[0]
    assert recorder_module.draining() == 0
