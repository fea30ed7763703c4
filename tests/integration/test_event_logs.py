"""One structured log line per session event, with ids, and never what the user said."""

import logging
from typing import Any

import pytest

from sessions_app.live.emulator import StandIn
from tests.conftest import Browser

pytestmark = pytest.mark.django_db(transaction=True)


async def test_session_events_are_logged_with_ids_and_without_content(
    standin: StandIn, cookie: str, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="my private words")
    await browser.expect("turn_complete")
    standin.abort_mid_turn(after_messages=1)
    await browser.send(type="text", text="more private words")
    await browser.expect("status", state="resumed")
    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    await browser.close()

    events = [r for r in caplog.records if r.name == "sessions_app.events"]
    names = [r.event for r in events]  # type: ignore[attr-defined]
    assert names == ["session_start", "session_reconnecting", "session_resumed", "session_end"]
    for record in events:
        assert record.session_id == live["session_id"]  # type: ignore[attr-defined]
        assert record.user_id == user.pk  # type: ignore[attr-defined]
        assert f"session={live['session_id']}" in record.getMessage()
    assert events[-1].ev_reason == "client_stop"  # type: ignore[attr-defined]
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "private words" not in everything
