"""A browser that keeps sending malformed messages is closed with 4400; others are not."""

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from websockets.asyncio.client import connect

from sessions_app.models import LiveSession
from sessions_app.protocol import CloseCode, Kind
from standin import StandIn, ThreadedStandIn
from tests.clients import Socket
from tests.conftest import Browser, login_cookie, running_workers, upstream_worker_env
from tests.processes import DaphneWorker
from tests.records import ended_session, stored

pytestmark = pytest.mark.django_db(transaction=True)

BUDGET = 5  # SHARE_MAX_MALFORMED_PER_MIN in these tests
MALFORMED = [  # (what is sent, its error code); a browser speaking the protocol sends none
    ("{", "bad_json"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "text", "text": "nul\\u0000"}', "invalid_field"),
    (bytes([Kind.AUDIO, 1, 2, 3]), "bad_audio"),
    (bytes([Kind.JPEG]) + b"GIF89a", "bad_image"),
    (bytes([0x42, 0]), "unknown_kind"),
]


async def send_raw(browser: Browser, payload: str | bytes) -> None:
    """One frame as it is: text for str, binary for bytes."""
    if isinstance(payload, str):
        await browser.ws.send_to(text_data=payload)
    else:
        await browser.ws.send_to(bytes_data=payload)


async def send_and_expect(browser: Browser, payload: str | bytes, code: str) -> None:
    """Send one refused message; its error comes back."""
    await send_raw(browser, payload)
    await browser.expect("error", code=code)


@pytest.fixture
def budget(settings: Any) -> int:
    """A small budget of malformed messages a minute."""
    settings.SHARE_MAX_MALFORMED_PER_MIN = BUDGET
    return BUDGET


async def test_past_the_budget_the_session_ends_as_protocol_error_and_the_socket_closes(
    standin: StandIn, cookie: str, user: Any, budget: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="before the garbage")
    await browser.expect("turn_complete", turn=1)
    for payload, code in MALFORMED[:budget]:  # within the budget: each refused, nothing more
        await send_and_expect(browser, payload, code)
    await browser.send(type="text", text="still live")
    await browser.expect("turn_complete", turn=2)

    payload, code = MALFORMED[budget]
    await send_and_expect(browser, payload, code)  # one too many: still answered, then closed
    ended = await browser.expect("status", state="ended")
    assert ended["reason"] == "protocol_error"
    assert "cannot read" in ended["message"]
    assert await browser.expect_close() == CloseCode.PROTOCOL_ERROR

    session, lines = await stored(live["session_id"])
    assert (session.status, session.end_reason) == ("ended", LiveSession.EndReason.PROTOCOL_ERROR)
    typed = [text for _, role, source, text in lines if source == "typed"]
    assert typed == ["before the garbage", "still live"]
    assert standin.connections[0].texts == typed  # nothing malformed reached the model
    [closed] = [r for r in caplog.records if getattr(r, "event", None) == "malformed_closed"]
    assert (closed.session_id, closed.user_id) == (live["session_id"], user.pk)  # type: ignore[attr-defined]
    assert closed.ev_last_code == code  # type: ignore[attr-defined]


async def test_state_errors_and_oversized_messages_do_not_count(
    standin: StandIn, cookie: str, budget: int, settings: Any
) -> None:
    """Media in flight when a session ends gets not_started; that is no protocol violation."""
    browser = Browser(cookie)
    await browser.connect()
    for _ in range(3 * budget):
        await send_and_expect(browser, bytes([Kind.AUDIO]) + bytes(3200), "not_started")
        big = '{"type": "text", "text": "%s"}' % ("x" * (settings.SHARE_MAX_TEXT_CHARS + 1))
        await send_and_expect(browser, big, "too_large")
    for payload, code in MALFORMED[:budget]:
        await send_and_expect(browser, payload, code)
    live = await browser.start()  # the socket is still open and usable
    await browser.send(type="start", mode="audio")
    await browser.expect("error", code="already_started")
    await send_raw(browser, MALFORMED[budget][0])  # the budget was spent before the start
    await browser.expect("error", code=MALFORMED[budget][1])
    assert await browser.expect_close() == CloseCode.PROTOCOL_ERROR
    session, _ = await stored(live["session_id"])
    assert session.end_reason == LiveSession.EndReason.PROTOCOL_ERROR


async def test_without_a_session_the_socket_is_closed_and_nothing_stored(
    cookie: str, user: Any, budget: int
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    for _ in range(budget):
        await send_and_expect(browser, "{", "bad_json")
    await send_raw(browser, "{")
    await browser.expect("error", code="bad_json")
    assert await browser.expect_close() == CloseCode.PROTOCOL_ERROR
    assert not [m for m in browser.messages if m["type"] == "status"]
    count = database_sync_to_async(LiveSession.objects.filter(user=user).count)
    assert await count() == 0


async def test_a_budget_of_zero_never_closes(cookie: str, settings: Any) -> None:
    settings.SHARE_MAX_MALFORMED_PER_MIN = 0
    browser = Browser(cookie)
    await browser.connect()
    for _ in range(100):
        await send_and_expect(browser, "{", "bad_json")
    await browser.send(type="stop")  # still read and answered
    await browser.expect("error", code="not_started")
    await browser.close()


@pytest.fixture
def worker(upstream: ThreadedStandIn, tmp_path: Path) -> Iterator[DaphneWorker]:
    """A production-like Daphne worker with a small malformed-message budget."""
    env = upstream_worker_env(upstream, SHARE_MAX_MALFORMED_PER_MIN=str(BUDGET))
    with running_workers(env, tmp_path, "malformed") as [process]:
        yield process


async def test_a_real_browser_socket_sees_the_close_codes(worker: DaphneWorker, user: Any) -> None:
    """Daphne sends the site's close codes as they are (it takes plain ints only)."""
    async with connect(worker.ws_url, origin=worker.url) as anonymous:  # type: ignore[arg-type]
        assert await Socket(anonymous).close_code() == CloseCode.UNAUTHENTICATED

    cookie = await database_sync_to_async(login_cookie)(user)
    socket = await Socket.open(worker, cookie, django_settings.SHARE_MAX_MESSAGE_BYTES)
    session_id = await socket.start()
    for payload, code in MALFORMED[: BUDGET + 1]:
        await socket.send(payload)
        await socket.until(lambda m, code=code: m["type"] == "error" and m["code"] == code)
    assert await socket.close_code() == CloseCode.PROTOCOL_ERROR
    session = await ended_session(session_id)
    assert (session.status, session.end_reason) == ("ended", "protocol_error")
