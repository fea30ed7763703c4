"""Session limits, heartbeats and the sweep, through the full ASGI stack and real SDK."""

import asyncio
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.utils import timezone

from sessions_app import services
from sessions_app.models import LiveSession, TranscriptEntry
from sessions_app.protocol import Kind
from standin import StandIn
from tests.conftest import Browser, login_cookie
from tests.records import eventually

pytestmark = pytest.mark.django_db(transaction=True)

SILENCE = bytes(3200)  # 100 ms of 16 kHz PCM16


@database_sync_to_async
def session_row(session_id: str) -> LiveSession:
    """The stored session."""
    return LiveSession.objects.get(pk=session_id)


async def test_duration_limit_ends_the_session_with_its_message(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    settings.SHARE_MAX_SESSION_S = 0.6
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    for _ in range(4):  # activity does not extend the maximum length
        await browser.send_media(Kind.AUDIO, SILENCE)
        await asyncio.sleep(0.1)  # pacing, not a wait: a real-time microphone
    ended = await browser.expect("status", state="ended", timeout=5)
    assert ended["reason"] == "duration_limit"
    assert "maximum length" in ended["message"]
    session = await session_row(live["session_id"])
    assert session.status == LiveSession.Status.ENDED
    assert session.end_reason == LiveSession.EndReason.DURATION_LIMIT
    await standin.wait_for(lambda: standin.connections[0].closed)
    await browser.close()


async def test_idle_timeout_counts_media_and_text_as_activity(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    settings.SHARE_IDLE_TIMEOUT_S = 0.5
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < 1.2:  # more than twice the timeout, with activity
        await browser.send_media(Kind.AUDIO, SILENCE)
        await asyncio.sleep(0.1)  # pacing, not a wait: a real-time microphone
    await browser.send(type="text", text="still here")
    assert (await session_row(live["session_id"])).status == LiveSession.Status.ACTIVE
    ended = await browser.expect("status", state="ended", timeout=5)
    assert ended["reason"] == "idle_timeout"
    assert "without screen, audio or text" in ended["message"]
    session = await session_row(live["session_id"])
    assert session.end_reason == LiveSession.EndReason.IDLE_TIMEOUT
    lines = await database_sync_to_async(
        lambda: list(TranscriptEntry.objects.filter(session=session).values_list("text", flat=True))
    )()
    assert lines[0] == "still here"
    await browser.close()


async def test_per_user_limit_refuses_a_second_session_until_the_first_ends(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    settings.SHARE_MAX_SESSIONS_PER_USER = 1
    first, second = Browser(cookie), Browser(cookie)
    await first.connect()
    await second.connect()
    await first.start()
    await second.send(type="start", mode="audio")
    error = await second.expect("error")
    assert error["code"] == "too_many_sessions"
    assert "1 live session open" in error["message"]
    refused = await database_sync_to_async(
        lambda: LiveSession.objects.get(end_reason=LiveSession.EndReason.USER_LIMIT)
    )()
    assert refused.status == LiveSession.Status.FAILED
    assert len(standin.connections) == 1  # no upstream for the refused one
    await first.send(type="stop")
    await first.expect("status", state="ended")
    await second.start()  # the socket stayed usable
    await first.close()
    await second.close()


async def test_per_worker_limit_refuses_with_server_busy(
    standin: StandIn, cookie: str, other_user: Any, settings: Any
) -> None:
    settings.SHARE_MAX_SESSIONS_PER_WORKER = 1
    first = Browser(cookie)
    second = Browser(await database_sync_to_async(login_cookie)(other_user))
    await first.connect()
    await second.connect()
    await first.start()
    await second.send(type="start", mode="text")
    error = await second.expect("error")
    assert error == {
        "type": "error",
        "code": "server_busy",
        "message": "This server is at capacity right now. Try again in a minute.",
    }
    refused = await database_sync_to_async(lambda: LiveSession.objects.get(user=other_user))()
    assert refused.status == LiveSession.Status.FAILED
    assert refused.end_reason == LiveSession.EndReason.WORKER_LIMIT
    assert refused.ended_at is not None
    assert len(standin.connections) == 1  # no upstream for the refused one
    await first.send(type="stop")
    await first.expect("status", state="ended")
    await second.start(mode="text")  # a place is free again, on the same socket
    assert len(standin.connections) == 2
    await first.close()
    await second.close()


async def test_live_sessions_stamp_a_heartbeat(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    settings.SHARE_HEARTBEAT_S = 0.2
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    first = (await session_row(live["session_id"])).heartbeat_at
    assert first is not None

    async def next_heartbeat() -> Any:
        """A heartbeat stamped after the first one, once there is one."""
        later = (await session_row(live["session_id"])).heartbeat_at
        return later if later is not None and later > first else None

    later = await eventually(next_heartbeat, timeout=5)
    assert later is not None
    assert later > first
    await browser.close()


def make_session(user: Any, *, heartbeat_age_s: float | None, started_age_s: float = 600) -> Any:
    """An active session row whose last heartbeat is ``heartbeat_age_s`` old."""
    now = timezone.now()
    heartbeat = None if heartbeat_age_s is None else now - timedelta(seconds=heartbeat_age_s)
    return LiveSession.objects.create(
        user=user,
        model="m",
        response_modality="AUDIO",
        started_at=now - timedelta(seconds=started_age_s),
        heartbeat_at=heartbeat,
    )


def test_sweep_marks_only_stale_active_sessions_interrupted(user: Any) -> None:
    stale = make_session(user, heartbeat_age_s=300)
    never_beat = make_session(user, heartbeat_age_s=None)
    fresh = make_session(user, heartbeat_age_s=5)
    ended = make_session(user, heartbeat_age_s=300)
    LiveSession.objects.filter(pk=ended.pk).update(status="ended", end_reason="client_stop")
    TranscriptEntry.objects.create(
        session=stale, sequence=1, role="user", source="typed", text="hi"
    )

    assert services.stale_sessions_sweep(stale_after_s=60) == 2

    stale.refresh_from_db()
    assert (stale.status, stale.end_reason) == ("interrupted", "worker_lost")
    assert stale.ended_at == stale.heartbeat_at
    assert stale.entries.count() == 1
    never_beat.refresh_from_db()
    assert never_beat.status == "interrupted"
    assert never_beat.ended_at == never_beat.started_at
    fresh.refresh_from_db()
    assert fresh.status == "active"
    ended.refresh_from_db()
    assert (ended.status, ended.end_reason) == ("ended", "client_stop")


def test_sweep_command_reports_and_checks_its_argument(user: Any) -> None:
    make_session(user, heartbeat_age_s=30)
    out = StringIO()
    call_command("sweep_sessions", stdout=out)  # default 60 s: not stale yet
    assert "Marked 0 abandoned" in out.getvalue()
    call_command("sweep_sessions", "--stale-after", "10", stdout=out)
    assert "Marked 1 abandoned" in out.getvalue()
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="must not be negative"):
        call_command("sweep_sessions", "--stale-after", "-1")


def test_stale_sessions_do_not_count_against_the_per_user_limit(user: Any) -> None:
    make_session(user, heartbeat_age_s=600)  # left behind by a killed worker
    session = services.live_session_create(
        user=user, model="m", modality="AUDIO", voice="Puck", user_agent="", max_per_user=1,
        stale_after_s=60,
    )  # fmt: skip
    assert session.status == "active"
    with pytest.raises(services.SessionRefused) as refused:
        services.live_session_create(
            user=user, model="m", modality="AUDIO", voice="Puck", user_agent="", max_per_user=1,
            stale_after_s=60,
        )  # fmt: skip
    assert refused.value.end_reason == "user_limit"
