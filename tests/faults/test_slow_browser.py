"""A slow browser: model speech it does not read is bounded, the oldest dropped and counted.

The stand-in speaks faster than real time while a browser reads nothing (and so acks
nothing). In process (the whole ASGI stack): the session's outbox never holds more than
its bound, the oldest speech is dropped and stored as ``speech_dropped_s``, every line
is stored, and once the browser reads again it gets the newest speech and the session
goes on. Over a real Daphne worker: a browser that reads nothing for 20 s beside one
that reads normally; the normal one gets all its speech, and the worker's memory stays
within a bound that follows from the settings.
"""

import asyncio
from pathlib import Path
from typing import Any

import psutil
import pytest
from channels.db import database_sync_to_async

from sessions_app.models import LiveSession
from sessions_app.session.conversation import live_conversations
from sessions_app.session.outbox import OUTPUT_BYTES_PER_SECOND, SpeechOutbox
from standin import StandIn, ThreadedStandIn
from tests.clients import Socket
from tests.conftest import Browser, login_cookie, running_workers, upstream_worker_env
from tests.records import eventually, sent_audio, stored

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = 4800  # the stand-in's 0.1 s chunks of 24 kHz PCM16
SHORT_REPLY = 28800  # its default 0.6 s reply
STALL_S = 20.0  # how long the slow browser of the worker test reads nothing


def outbox_of_the_session() -> SpeechOutbox:
    """The outbox of the one conversation this process holds."""
    [conversation] = live_conversations()
    return conversation.outbox


async def read_until_drained(browser: Browser, outbox: SpeechOutbox) -> None:
    """Read (and ack) until every frame sent arrived and no speech waits in the outbox."""

    async def drained() -> bool:
        await browser.read_waiting()
        return not outbox.queued_bytes and len(browser.audio) == outbox.sent

    await eventually(drained, timeout=15, what="the outbox drained")


async def stored_lines(session_id: str, count: int) -> list[tuple[int, str, str, str]]:
    """The session's stored lines, once there are ``count`` of them."""

    async def lines() -> list[tuple[int, str, str, str]] | None:
        found = (await stored(session_id))[1]
        return found if len(found) >= count else None

    return await eventually(lines, timeout=30, what=f"{count} lines stored")


@pytest.fixture
def small_outbox(settings: Any) -> Any:
    """A 1 s window and 3 s of room: a 20 s reply overflows it many times over."""
    settings.SHARE_DOWNSTREAM_WINDOW_S = 1.0
    settings.SHARE_DOWNSTREAM_BUFFER_S = 3.0
    return settings


async def test_a_stalled_browser_gets_the_newest_speech_and_no_line_is_lost(
    standin: StandIn, cookie: str, small_outbox: Any
) -> None:
    standin.behaviour.reply_audio_s = 20.0  # sent at once: far faster than real time
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    outbox = outbox_of_the_session()
    for n in (1, 2, 3):  # the browser reads nothing from here on
        await browser.send(type="text", text=f"speak {n}")
        lines = await stored_lines(live["session_id"], 2 * n)  # each turn is stored
    assert [(role, text) for _, role, _, text in lines][::2] == [
        ("user", "speak 1"), ("user", "speak 2"), ("user", "speak 3")
    ]  # fmt: skip
    assert outbox.high_water_bytes <= outbox.buffer_bytes
    assert outbox.in_flight_bytes <= outbox.window_bytes + CHUNK
    assert outbox.dropped_bytes > 0
    assert outbox.sent == outbox.window_bytes // CHUNK  # then nothing, without acks
    said = sent_audio(standin)
    assert len(said) == 3 * 20 * OUTPUT_BYTES_PER_SECOND
    assert len(said) == outbox.sent * CHUNK + outbox.queued_bytes + outbox.dropped_bytes

    await read_until_drained(browser, outbox)  # it reads again
    heard = b"".join(browser.audio)
    assert heard[-outbox.buffer_bytes :] == said[-outbox.buffer_bytes :]  # the newest speech
    assert len(heard) == len(said) - outbox.dropped_bytes
    done = [m["turn"] for m in browser.messages if m["type"] == "turn_complete"]
    assert done == [1, 2, 3]
    for turn in (1, 2, 3):  # the transcripts were never held behind the speech
        assert browser.transcript("model", turn).strip() == lines[2 * turn - 1][3]

    standin.behaviour.reply_audio_s = 0.6
    await browser.send(type="text", text="still there?")
    await browser.expect("turn_complete", turn=4)
    await read_until_drained(browser, outbox)
    assert len(b"".join(browser.audio)) == len(heard) + SHORT_REPLY
    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    session, lines = await stored(live["session_id"])
    assert len(lines) == 8
    assert session.speech_dropped_s == pytest.approx(outbox.dropped_s)
    assert session.speech_dropped_s > 20  # of 60 s said, at most 4 s could wait or go out


async def test_an_interrupted_reply_waiting_for_a_stalled_browser_is_never_sent(
    standin: StandIn, cookie: str, small_outbox: Any
) -> None:
    standin.behaviour.reply_audio_s = 20.0
    standin.behaviour.chunk_interval_s = 0.05  # twice real time: still speaking when cut off
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    outbox = outbox_of_the_session()
    await browser.send(type="text", text="talk")

    async def waiting() -> bool:
        return outbox.queued_bytes >= OUTPUT_BYTES_PER_SECOND  # and not yet full

    await eventually(waiting, timeout=10, what="speech waiting for the browser")
    await standin.interrupt()
    await browser.expect("interrupted", turn=1)
    assert outbox.queued_bytes == 0
    sent = outbox.sent
    await browser.expect("turn_complete", turn=1, interrupted=True)
    await read_until_drained(browser, outbox)
    assert len(browser.audio) == sent  # the frames already sent, and not one more
    assert outbox.dropped_bytes == 0  # an interrupt is not a slow browser's loss
    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    session, _ = await stored(live["session_id"])
    assert session.speech_dropped_s == 0


async def test_bad_acks_get_invalid_field_and_the_session_goes_on(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="hello")
    await browser.expect("turn_complete", turn=1)
    outbox = outbox_of_the_session()
    await read_until_drained(browser, outbox)
    for bad in (outbox.sent + 1, -1, "6", 2.5, None):
        await browser.send(type="ack", audio=bad)
        error = await browser.expect("error")
        assert error["code"] == "invalid_field"
        assert '"audio"' in error["message"]
    assert outbox.acked == outbox.sent  # no bad ack changed the count
    await browser.send(type="text", text="still live")
    await browser.expect("turn_complete", turn=2)
    await browser.send(type="stop")
    ended = await browser.expect("status", state="ended")
    assert ended["reason"] == "client_stop"
    session, lines = await stored(live["session_id"])
    assert (session.status, len(lines)) == ("ended", 4)


def worker_rss(pid: int) -> int:
    """The resident memory of a worker process, in bytes."""
    return int(psutil.Process(pid).memory_info().rss)


WORKER_WINDOW_S, WORKER_BUFFER_S = 1.0, 4.0
LONG_REPLY_S = 400.0  # 19.2 MB of speech for a browser that reads none of it
# The worker's own churn while it relays that much: it grew by about 2 MB with the outbox,
# and by 18 MB with the window opened wide (all the speech buffered for the socket).
MEMORY_MARGIN = 6 * 2**20
TURN_PACE_S = 0.2


@pytest.fixture
def upstream(standin_tls_dir: str) -> Any:
    """A stand-in in a thread that keeps little of the media it sends (the speech is long)."""
    with ThreadedStandIn(tls_dir=standin_tls_dir, record_limit_bytes=2**20) as server:
        yield server


@pytest.fixture
def slow_worker(upstream: ThreadedStandIn, tmp_path: Path) -> Any:
    """One Daphne worker with a small outbox, the stand-in as its upstream."""
    env = upstream_worker_env(
        upstream,
        SHARE_DOWNSTREAM_WINDOW_S=str(WORKER_WINDOW_S),
        SHARE_DOWNSTREAM_BUFFER_S=str(WORKER_BUFFER_S),
        SHARE_MAX_TEXTS_PER_MIN="6000",  # the normal browser types turn after turn
    )
    with running_workers(env, tmp_path, "slow") as [worker]:
        yield worker


async def normal_turns_while_stalled(normal: Socket, pid: int) -> tuple[int, int]:
    """Typed turns on the normal socket for STALL_S seconds; (turns, highest worker RSS)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + STALL_S  # how long the other browser stalls, not an assertion
    turns, highest = 0, worker_rss(pid)
    while loop.time() < until:
        await normal.say(f"normal turn {turns}")
        turns += 1
        await asyncio.sleep(TURN_PACE_S)  # pacing, not a wait: a brisk typist
        highest = max(highest, worker_rss(pid))
    return turns, highest


async def test_a_browser_reading_nothing_for_20_s_costs_its_worker_bounded_memory(
    slow_worker: Any, upstream: ThreadedStandIn, user: Any, other_user: Any
) -> None:
    pid = slow_worker.process.pid
    cookies = [await database_sync_to_async(login_cookie)(u) for u in (user, other_user)]
    normal, slow = [await Socket.open(slow_worker, c, 768 * 1024) for c in cookies]
    normal_id, slow_id = await normal.start(), await slow.start()
    await normal.say("warm up")
    await slow.say("warm up")
    baseline = worker_rss(pid)

    upstream.behaviour.reply_audio_s = LONG_REPLY_S
    upstream.behaviour.audio_chunk_s = 0.5  # fewer, larger frames: less work per second said
    await slow.send_json(type="text", text="talk for four minutes")  # and read nothing
    await asyncio.to_thread(
        upstream.wait_for, lambda: len(upstream.connections[1].replies) > 30, 30
    )  # its long reply is under way: the other browser's replies are short again
    upstream.behaviour.reply_audio_s = 0.6
    turns, highest = await normal_turns_while_stalled(normal, pid)

    buffer_bytes = int(WORKER_BUFFER_S * OUTPUT_BYTES_PER_SECOND)
    assert highest - baseline < 3 * buffer_bytes + MEMORY_MARGIN, (highest, baseline)
    assert normal.audio_bytes == (turns + 1) * SHORT_REPLY  # all of its speech
    await slow.until(lambda m: m["type"] == "turn_complete" and m["turn"] == 2, timeout=60)
    await slow.say("are you still there?")  # reading again, it goes on
    assert slow.audio_bytes < 2 * SHORT_REPLY + (WORKER_WINDOW_S + WORKER_BUFFER_S + 1) * (
        OUTPUT_BYTES_PER_SECOND
    )
    for socket in (normal, slow):
        await socket.stop()
    rows = {
        str(row.pk): row
        for row in await database_sync_to_async(lambda: list(LiveSession.objects.all()))()
    }
    assert rows[normal_id].speech_dropped_s == 0
    assert rows[slow_id].speech_dropped_s > LONG_REPLY_S - WORKER_WINDOW_S - WORKER_BUFFER_S - 1
    assert len((await stored(normal_id))[1]) == 2 * (turns + 1)
    assert len((await stored(slow_id))[1]) == 6
