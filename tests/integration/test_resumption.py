"""Sessions that outlive their upstream connection: goAway hand-over and resumption.

Full ASGI stack, real google-genai SDK, the stand-in over TLS with scripted faults.
"""

import asyncio
import io
from typing import Any

import pytest
from PIL import Image

from sessions_app.models import LiveSession
from sessions_app.protocol import CloseCode, Kind
from standin import StandIn
from tests.conftest import Browser
from tests.records import live_after_one_turn, stored

pytestmark = pytest.mark.django_db(transaction=True)


def quiet_chunk(index: int) -> bytes:
    """100 ms of near-silence (below the stand-in's speech threshold), unique per index."""
    low, high = index % 50, index // 50
    return bytes([low, high]) * 1600


def small_jpeg(index: int) -> bytes:
    """A distinct real JPEG per index."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (index * 7 % 256, 90, 200)).save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


class MediaStream:
    """Streams distinct audio chunks (every 50 ms) and frames (every 4th chunk)."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.audio: list[bytes] = []
        self.frames: list[bytes] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin streaming in the background."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop streaming."""
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        """Send until cancelled."""
        index = 0
        while True:
            chunk = quiet_chunk(index)
            self.audio.append(chunk)
            await self.browser.send_media(Kind.AUDIO, chunk)
            if index % 4 == 0:
                frame = small_jpeg(index // 4)
                self.frames.append(frame)
                await self.browser.send_media(Kind.JPEG, frame)
            index += 1
            await asyncio.sleep(0.05)  # pacing, not a wait: a real-time microphone


def check_handed_over_losing_nothing(
    standin: StandIn, stream: MediaStream, sent_before: tuple[int, int]
) -> None:
    """The second connection resumed before the first closed, and every chunk and frame
    sent after the goAway (``sent_before`` marks it) reached one of the two, in order."""
    first, second = standin.connections
    # The second connection resumed the last handle while the first was still open.
    assert second.setup["sessionResumption"]["handle"] == "standin-0-1"
    assert second.resumed_from == "standin-0-1"
    assert second.opened_at < first.closed_at
    assert first.close_code == 1000
    assert len(standin.connections) == 2
    # Every chunk and frame sent after the goAway reached one of the two connections.
    received_audio = [data for _, data in first.audio] + [data for _, data in second.audio]
    for chunk in stream.audio[sent_before[0] :]:
        assert chunk in received_audio
    received_frames = [data for _, data in first.frames] + [data for _, data in second.frames]
    for frame in stream.frames[sent_before[1] :]:
        assert frame in received_frames
    # What reached the second connection arrived in the order it was sent.
    on_second = [data for _, data in second.audio]
    positions = [stream.audio.index(chunk) for chunk in on_second]
    assert positions == sorted(positions)
    assert second.texts == ["after the hand-over"]


async def test_go_away_hands_over_seamlessly_and_loses_nothing(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    live = await live_after_one_turn(browser, standin, "before the hand-over")

    stream = MediaStream(browser)
    stream.start()
    # The stream is flowing: chunks and a frame reached the first connection.
    await standin.wait_for(
        lambda: len(standin.connections[0].audio) >= 3 and standin.connections[0].frames
    )
    sent_before = (len(stream.audio), len(stream.frames))
    await standin.go_away(2.5)
    await standin.wait_for(lambda: standin.connections[0].closed, timeout=6)
    # And it goes on flowing to the second connection once the first one is gone.
    received_on_second = len(standin.connections[1].audio)
    await standin.wait_for(lambda: len(standin.connections[1].audio) >= received_on_second + 3)
    await stream.stop()
    await browser.send(type="text", text="after the hand-over")
    await browser.expect("turn_complete", turn=2)

    check_handed_over_losing_nothing(standin, stream, sent_before)
    # The resumed model remembers the first turn's context (frames counted across both).
    reply = browser.transcript("model", 2)
    assert f"{len(stream.frames)} frames" in reply
    assert not [m for m in browser.messages if m.get("state") == "reconnecting"]
    assert [m for m in browser.messages if m.get("state") == "handed_over"]

    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    session, lines = await stored(live["session_id"])
    assert session.resumptions == 1
    assert [(role, source, text) for _, role, source, text in lines][0::2] == [
        ("user", "typed", "before the hand-over"),
        ("user", "typed", "after the hand-over"),
    ]
    assert [line[0] for line in lines] == [1, 2, 3, 4]
    assert [line[1] for line in lines] == ["user", "model", "user", "model"]
    assert len({line[3] for line in lines}) == 4  # no line doubled
    await browser.close()


async def test_go_away_mid_reply_switches_at_the_turn_boundary(
    standin: StandIn, cookie: str
) -> None:
    standin.behaviour.chunk_interval_s = 0.1  # a reply takes about a second
    browser = Browser(cookie)
    await browser.connect()
    await browser.start()
    await browser.send(type="text", text="a long answer please")
    await browser.expect("transcript", role="model")
    await standin.go_away(6.0)
    await browser.expect("turn_complete", turn=1)
    await standin.wait_for(lambda: standin.connections[1].setup is not None)
    # The switch waited for the reply to end: it resumed the handle sent with its
    # turnComplete ("standin-0-0" came with setupComplete).
    assert standin.connections[1].setup["sessionResumption"]["handle"] == "standin-0-1"
    assert not standin.connections[0].closed  # still open: the old one is closed later
    await browser.send(type="text", text="next")
    await browser.expect("turn_complete", turn=2)
    assert standin.connections[1].texts == ["next"]
    await browser.close()


async def test_abrupt_close_mid_turn_reconnects_and_resumes(standin: StandIn, cookie: str) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="first")
    await browser.expect("turn_complete", turn=1)
    standin.abort_mid_turn(after_messages=3)
    await browser.send(type="text", text="cut off")
    await browser.expect("status", state="reconnecting")
    await browser.expect("status", state="resumed")
    states = [m.get("state") or m["type"] for m in browser.messages[-4:]]
    assert states == ["interrupted", "turn_complete", "reconnecting", "resumed"]
    assert standin.connections[0].aborted
    assert standin.connections[1].resumed_from == "standin-0-1"
    # The message the lost connection never answered is not in the resumed context: it is
    # sent again, and answered on the new connection.
    reply = await browser.expect("turn_complete")
    assert 'You said: "cut off"' in browser.transcript("model", reply["turn"])

    await browser.send(type="text", text="goes on")
    await browser.expect("turn_complete", turn=reply["turn"] + 1)
    assert standin.connections[1].texts == ["cut off", "goes on"]
    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    session, lines = await stored(live["session_id"])
    assert (session.status, session.resumptions) == ("ended", 1)
    texts = [(role, text) for _, role, _, text in lines]
    assert texts[0] == ("user", "first")
    assert texts[2] == ("user", "cut off")
    assert texts[3][0] == "model"  # the part of the cut-off reply that arrived is kept
    assert texts[4][0] == "model"
    assert texts[4][1].startswith('You said: "cut off"')
    assert texts[5] == ("user", "goes on")
    assert texts[6][0] == "model"
    assert [line[0] for line in lines] == list(range(1, len(lines) + 1))
    await browser.close()


async def test_resumption_that_keeps_failing_ends_with_a_final_error(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="kept")
    await browser.expect("turn_complete", turn=1)
    standin.behaviour.refuse_connections = True
    await standin.abort()
    await browser.expect("status", state="reconnecting")
    error = await browser.expect("error")
    # Every attempt was refused with 1011: the service's internal error, said plainly.
    assert (error["code"], error["upstream_code"]) == ("model_error", 1011)
    assert error["message"] == "The model service had an internal error. Try again in a minute."
    assert "3 attempts to resume failed" in error["detail"]
    assert await browser.expect_close() == CloseCode.UPSTREAM_FAILED
    assert len(standin.connections) == 4  # the first, then three refused attempts
    assert all(c.resumption_handle_sent == "standin-0-1" for c in standin.connections[1:])
    session, lines = await stored(live["session_id"])
    assert (session.status, session.end_reason) == (
        LiveSession.Status.FAILED,
        LiveSession.EndReason.UPSTREAM_ERROR,
    )
    assert [(role, source) for _, role, source, _ in lines] == [
        ("user", "typed"),
        ("model", "speech"),
    ]
    assert lines[0][3] == "kept"


async def test_resumption_and_compression_are_on_from_the_first_connect(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    settings.GEMINI_COMPRESSION_TRIGGER_TOKENS = 25600
    settings.GEMINI_COMPRESSION_TARGET_TOKENS = 12800
    browser = Browser(cookie)
    await browser.connect()
    await browser.start()
    setup = standin.connections[0].setup
    assert setup["sessionResumption"] == {}
    assert setup["contextWindowCompression"] == {
        "triggerTokens": 25600,
        "slidingWindow": {"targetTokens": 12800},
    }
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    settings.GEMINI_CONTEXT_COMPRESSION = False
    await browser.start()
    assert "contextWindowCompression" not in standin.connections[1].setup
    await browser.close()


async def test_compression_by_default_is_a_plain_sliding_window_and_can_be_turned_off(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    settings.GEMINI_CONTEXT_COMPRESSION = True  # the default, as is leaving the sizes unset
    settings.GEMINI_COMPRESSION_TRIGGER_TOKENS = None
    settings.GEMINI_COMPRESSION_TARGET_TOKENS = None
    browser = Browser(cookie)
    await browser.connect()
    await browser.start()
    setup = standin.connections[0].setup
    assert setup["contextWindowCompression"] == {"slidingWindow": {}}
    assert setup["sessionResumption"] == {}
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    settings.GEMINI_CONTEXT_COMPRESSION = False
    await browser.start()
    setup = standin.connections[1].setup
    assert "contextWindowCompression" not in setup
    assert setup["sessionResumption"] == {}  # resumption stays on without compression
    await browser.close()


def clientcontent_texts(standin: StandIn, connection: int) -> list[str]:
    """The texts of every clientContent turn (the seed) a connection received."""
    return [
        part["text"]
        for message in standin.connections[connection].messages
        for turn in message.get("clientContent", {}).get("turns", [])
        for part in turn.get("parts", [])
        if "text" in part
    ]


async def test_a_text_sent_while_a_handle_was_on_its_way_is_answered_after_a_fresh_start(
    standin: StandIn, cookie: str
) -> None:
    """A handle arriving after a text went out does not drop the text from the replay.

    The handle here is one the service never made (so the resumption is refused and the
    session restarts fresh); the text it could not cover is sent to the fresh session as
    input, answered, and left out of the transcript the session is seeded with.
    """
    browser = Browser(cookie)
    await browser.connect()
    await browser.start(mode="text")
    await browser.send(type="text", text="first")
    await browser.expect("turn_complete", turn=1)
    standin.behaviour.reply_delay_s = 30.0  # "second" is not answered on this connection
    await browser.send(type="text", text="second")
    await standin.wait_for(lambda: "second" in standin.connections[0].texts)
    update = {"sessionResumptionUpdate": {"newHandle": "never-issued", "resumable": True}}
    await standin.push(update)
    standin.behaviour.reply_delay_s = 0.0
    await standin.disconnect(code=1011, reason="Internal error")  # after the update, in order

    await browser.expect("status", state="restarted", timeout=10)
    await browser.expect("turn_complete", turn=2, timeout=10)
    answer = browser.transcript("model", 2)
    assert 'You said: "second".' in answer
    fresh = len(standin.connections) - 1
    assert standin.connections[fresh].resumed_from is None  # a fresh session...
    assert standin.connections[fresh].texts[-1] == "second"  # ...given "second" as input
    assert "first" in clientcontent_texts(standin, fresh)  # seeded with the transcript...
    assert "second" not in clientcontent_texts(standin, fresh)  # ...but not with "second"
    await browser.close()
