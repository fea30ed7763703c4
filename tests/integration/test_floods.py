"""Floods from one browser are dropped, warned about, then closed; others go on."""

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async

from sessions_app.models import LiveSession
from sessions_app.protocol import CloseCode, Kind
from standin import StandIn
from tests.conftest import Browser, login_cookie
from tests.records import flood, jpeg, stored

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = bytes(3200)  # 100 ms of 16 kHz PCM16


async def run_flood_beside_a_quiet_session(
    cookie: str, other: Any, kind: Kind, payload: bytes, interval: float
) -> tuple[list[dict[str, Any]], int, str, Browser]:
    """Flood from one session while another talks; the flood's messages and close code."""
    noisy = Browser(cookie)
    quiet = Browser(await database_sync_to_async(login_cookie)(other))
    await noisy.connect()
    await quiet.connect()
    live = await noisy.start()
    await quiet.start(mode="text")
    sender = asyncio.create_task(flood(noisy, kind, payload, interval))
    try:
        for turn in (1, 2, 3):  # the other session stays responsive during the flood
            await quiet.send(type="text", text=f"still answering {turn}")
            await quiet.expect("turn_complete", turn=turn, timeout=5)
            await asyncio.sleep(0.5)  # pacing, not a wait: the turns spread over the flood
        code = await noisy.expect_close(timeout=15)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    await quiet.close()
    return noisy.messages, code, live["session_id"], noisy


async def test_audio_at_ten_times_real_time_is_warned_then_closed(
    standin: StandIn, cookie: str, other_user: Any
) -> None:
    messages, code, session_id, _ = await run_flood_beside_a_quiet_session(
        cookie, other_user, Kind.AUDIO, CHUNK, 0.01
    )
    assert code == CloseCode.RATE_LIMITED
    warnings = [m for m in messages if m.get("code") == "rate_limited"]
    assert len(warnings) == 2  # one when dropping starts, one with the close
    assert "Too many audio chunks" in warnings[0]["message"]
    assert "Closed" in warnings[1]["message"]
    session, _ = await stored(session_id)
    assert (session.status, session.end_reason) == ("ended", LiveSession.EndReason.RATE_LIMITED)
    # Audio was accepted up to about twice real time, not all of it.
    relayed = sum(len(data) for _, data in standin.connections[0].audio)
    assert 0 < relayed < 3200 * 200


async def test_frames_at_twenty_per_second_are_warned_then_closed(
    standin: StandIn, cookie: str, other_user: Any
) -> None:
    messages, code, session_id, _ = await run_flood_beside_a_quiet_session(
        cookie, other_user, Kind.JPEG, jpeg(64, 48), 0.05
    )
    assert code == CloseCode.RATE_LIMITED
    warnings = [m for m in messages if m.get("code") == "rate_limited"]
    assert "Too many screen frames" in warnings[0]["message"]
    session, _ = await stored(session_id)
    assert session.end_reason == LiveSession.EndReason.RATE_LIMITED
    frames = standin.connections[0].frames
    assert 0 < len(frames) < 60


async def test_text_flood_is_dropped_with_one_warning(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    settings.SHARE_MAX_TEXTS_PER_MIN = 6  # a burst of one, then one every ten seconds
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start(mode="text")
    for index in range(4):
        await browser.send(type="text", text=f"message {index}")
    warning = await browser.expect("error", code="rate_limited")
    assert "Too many text messages" in warning["message"]
    if not [m for m in browser.messages if m["type"] == "turn_complete"]:
        await browser.expect("turn_complete", turn=1)
    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    _, lines = await stored(live["session_id"])
    typed = [text for _, role, source, text in lines if source == "typed"]
    assert typed == ["message 0"]  # the dropped ones were not stored or relayed
    assert standin.connections[0].texts == ["message 0"]
    assert len([m for m in browser.messages if m.get("code") == "rate_limited"]) == 1
    await browser.close()
