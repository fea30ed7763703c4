"""The goAway hand-over at its edges: no time left mid-reply, a slow new connection, failure.

Full ASGI stack, real google-genai SDK, the stand-in over TLS with scripted faults.
Ordering is asserted on what the browser received and on the stand-in's records, never
on wall-clock durations.
"""

import io
import logging
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image

from sessions_app.models import LiveSession
from sessions_app.protocol import CloseCode, Kind
from standin import StandIn
from tests.conftest import Browser
from tests.records import live_after_one_turn, stored

pytestmark = pytest.mark.django_db(transaction=True)

logger = logging.getLogger(__name__)

QUESTION = "a long answer please"


class Tap(list[Any]):
    """A list that also logs what is appended to a shared timeline, tagged with ``kind``."""

    def __init__(self, timeline: list[tuple[str, Any]], kind: str) -> None:
        super().__init__()
        self.timeline = timeline
        self.kind = kind

    def append(self, item: Any) -> None:
        """Keep ``item`` and log it."""
        super().append(item)
        self.timeline.append((self.kind, item))


def tap(browser: Browser) -> list[tuple[str, Any]]:
    """Everything ``browser`` receives from now on, audio and messages, in arrival order."""
    timeline: list[tuple[str, Any]] = []
    browser.audio = Tap(timeline, "audio")
    browser.messages = Tap(timeline, "message")
    return timeline


def position(timeline: list[tuple[str, Any]], type_: str, **fields: Any) -> int:
    """Where the first message of ``type_`` (with ``fields``) is in the timeline."""
    for index, (kind, item) in enumerate(timeline):
        wanted = kind == "message" and item["type"] == type_
        if wanted and all(item.get(key) == value for key, value in fields.items()):
            return index
    raise AssertionError(f"no {type_} {fields} in the timeline")


@dataclass
class SentTurn:
    """What a connection sent of one model turn: transcription, audio chunks, whether it ended."""

    text: str = ""
    audio: int = 0
    complete: bool = False


def sent_turns(standin: StandIn, connection: int) -> list[SentTurn]:
    """The model turns a connection sent, in order; the last may be unfinished."""
    turns = [SentTurn()]
    for reply in standin.connections[connection].replies:
        content = reply.get("serverContent", {})
        turn = turns[-1]
        turn.text += content.get("outputTranscription", {}).get("text", "")
        parts = content.get("modelTurn", {}).get("parts", [])
        turn.audio += sum("inlineData" in part for part in parts)
        # A turnComplete with interactionStatus IN_PROGRESS does not end the turn.
        if content.get("turnComplete") and content.get("interactionStatus") != "IN_PROGRESS":
            turn.complete = True
            turns.append(SentTurn())
    return turns if turns[-1].text or turns[-1].audio else turns[:-1]


def model_text(items: list[tuple[str, Any]]) -> str:
    """The model transcript fragments among timeline items, joined."""
    return "".join(
        item["text"]
        for kind, item in items
        if kind == "message" and item["type"] == "transcript" and item["role"] == "model"
    )


def check_switched_at_once(standin: StandIn, old_reply: SentTurn, new_reply: SentTurn) -> None:
    """The relay switched mid-reply, and the new connection answered the question whole."""
    first, second = standin.connections
    # Switched at once: mid-reply, while the old connection was still open.
    assert not old_reply.complete
    assert second.opened_at < first.closed_at
    assert first.close_code == 1000  # closed by the relay
    assert second.resumption_handle_sent == second.resumed_from == "standin-0-0"
    assert second.texts == [QUESTION, "next"]  # the question replayed, then the next text
    assert new_reply.complete
    assert new_reply.text.startswith(f'You said: "{QUESTION}". ')
    assert new_reply.text.startswith(old_reply.text)  # the same answer, cut short


def check_cut_then_new_reply(
    timeline: list[tuple[str, Any]], old_reply: SentTurn, new_reply: SentTurn
) -> str:
    """The browser saw turn 1 cut off, then only the new reply, whole, as turn 2.

    Returns the model text shown of the cut turn.
    """
    cut = position(timeline, "interrupted", turn=1)
    assert cut < position(timeline, "status", state="handed_over")
    before, after = timeline[:cut], timeline[cut + 1 : position(timeline, "turn_complete", turn=2)]
    shown_cut = model_text(before)
    assert shown_cut
    assert old_reply.text.startswith(shown_cut)  # in order, nothing doubled
    assert len(shown_cut) < len(new_reply.text)
    assert sum(kind == "audio" for kind, _ in before) <= old_reply.audio
    fragments = [m for kind, m in after if kind == "message" and m["type"] == "transcript"]
    assert {(m["role"], m["turn"]) for m in fragments} == {("model", 2)}
    assert model_text(after) == new_reply.text
    # Every chunk after the cut is the new reply's: none of the old connection's rest.
    assert sum(kind == "audio" for kind, _ in after) == new_reply.audio
    return shown_cut


async def check_cut_turn_stored(
    session_id: str, shown_cut: str, new_reply: SentTurn, next_reply: SentTurn
) -> None:
    """The cut turn is stored as far as it was shown, then the answer in full, once each."""
    session, lines = await stored(session_id)
    assert session.resumptions == 1
    assert [(seq, role, source) for seq, role, source, _ in lines] == [
        (1, "user", "typed"),
        (2, "model", "speech"),
        (3, "model", "speech"),
        (4, "user", "typed"),
        (5, "model", "speech"),
    ]
    texts = [text for *_, text in lines]
    assert texts[0] == QUESTION
    assert texts[1] == shown_cut.strip()  # the cut turn, as far as it was shown
    assert texts[2] == new_reply.text.strip()  # the answer in full, from the new connection
    assert texts[3] == "next"
    assert texts[4] == next_reply.text.strip()
    assert len(set(texts)) == len(texts)  # no line doubled


async def test_go_away_mid_reply_with_little_time_left_switches_at_once(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    """The old reply is cut at the switch and answered again, whole, on the new connection.

    The handle the new connection resumes predates the question (no handle comes mid-turn),
    so the relay replays the question and the resumed model answers it from the start.
    What the old connection still sends of its reply after the switch is dropped: it
    would interleave with the new answer. The cut turn is stored as it was shown.
    """
    settings.GEMINI_SWITCH_MARGIN_S = 1.5
    standin.behaviour.chunk_interval_s = 0.1
    # 20 steps of 0.1 s: the old reply cannot end within the second the goAway leaves.
    standin.behaviour.reply_audio_s = 2.0
    browser = Browser(cookie)
    timeline = tap(browser)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text=QUESTION)
    await browser.expect("transcript", role="model", turn=1)
    await standin.go_away(1.0)  # less than the margin: the relay must not wait for the turn
    await browser.expect("status", state="handed_over")
    await browser.expect("turn_complete", turn=2, timeout=10)
    standin.behaviour.chunk_interval_s = 0.0
    await browser.send(type="text", text="next")
    await browser.expect("turn_complete", turn=3, timeout=10)
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    await standin.wait_for(lambda: standin.connections[0].closed)
    (old_reply,) = sent_turns(standin, 0)
    new_reply, next_reply = sent_turns(standin, 1)
    check_switched_at_once(standin, old_reply, new_reply)
    shown_cut = check_cut_then_new_reply(timeline, old_reply, new_reply)
    await check_cut_turn_stored(live["session_id"], shown_cut, new_reply, next_reply)
    await browser.close()


def marked_chunk(index: int) -> bytes:
    """100 ms of 16 kHz PCM16, silent but for a first sample holding ``index``: distinct,
    and far below the stand-in's speech threshold (RMS ``index / 40``)."""
    return struct.pack("<h", index) + bytes(3198)


def marked_jpeg(index: int) -> bytes:
    """A distinct real JPEG per index."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (index * 7 % 256, 90, 200)).save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


@dataclass
class Sent:
    """What the browser sent, in order; a mark is a (chunks, frames) count at a moment."""

    browser: Browser
    audio: list[bytes]
    frames: list[bytes]

    def mark(self) -> tuple[int, int]:
        """How much has been sent so far."""
        return len(self.audio), len(self.frames)

    async def send(self, chunks: int) -> None:
        """Send ``chunks`` distinct audio chunks, with a distinct frame after every second."""
        for _ in range(chunks):
            chunk = marked_chunk(len(self.audio) + 1)
            self.audio.append(chunk)
            await self.browser.send_media(Kind.AUDIO, chunk)
            if len(self.audio) % 2 == 0:
                frame = marked_jpeg(len(self.frames))
                self.frames.append(frame)
                await self.browser.send_media(Kind.JPEG, frame)


def arrivals(standin: StandIn, field: str) -> Counter[bytes]:
    """How often each payload arrived, over every connection (``audio`` or ``frames``)."""
    return Counter(data for record in standin.connections for _, data in getattr(record, field))


async def drive_media_into_a_slow_setup(
    standin: StandIn, browser: Browser
) -> tuple[Sent, tuple[int, int], tuple[int, int]]:
    """Send media after the last handle, then a goAway, then media while the new
    connection's setup (0.8 s) is held, up to a typed text's echo.

    Returns what was sent, and the marks at the goAway and once the new setup was sent.
    """
    first = standin.connections[0]
    sent = Sent(browser, [], [])
    await sent.send(4)  # after the last handle, so (as a rule) replayed on the new one
    await standin.wait_for(lambda: len(first.audio) == 4 and len(first.frames) == 2)

    standin.behaviour.setup_delay_s = 0.8
    await standin.go_away(2.5)  # no reply in progress: the relay switches at once
    after_go_away = sent.mark()
    await sent.send(4)  # on the old connection or held, as the relay's timing falls
    await standin.wait_for(lambda: standin.connections[1].setup is not None)
    held = sent.mark()
    await sent.send(10)
    await browser.send(type="text", text="during the switch")
    # The consumer handles messages in order: this echo means the relay has queued all
    # of the media above, and the new connection's setup is still being held.
    await browser.expect("transcript", role="user", source="typed", text="during the switch")
    return sent, after_go_away, held


def check_every_payload_arrived(
    sent: Sent, audio: Counter[bytes], frames: Counter[bytes], after_go_away: tuple[int, int]
) -> None:
    """Nothing arrived that was not sent, and all sent after the goAway arrived."""
    # Nothing arrived that the browser did not send...
    assert set(audio) == set(sent.audio)
    assert set(frames) == set(sent.frames)
    # ...and every chunk and frame sent after the goAway arrived, counted exactly.
    late_audio, late_frames = sent.audio[after_go_away[0] :], sent.frames[after_go_away[1] :]
    assert (len(late_audio), len(late_frames)) == (18, 9)
    assert sum(1 for chunk in late_audio if audio[chunk] >= 1) == 18
    assert sum(1 for frame in late_frames if frames[frame] >= 1) == 9


def check_held_and_replayed(
    standin: StandIn,
    sent: Sent,
    arrived: tuple[Counter[bytes], Counter[bytes]],
    held: tuple[int, int],
    request: pytest.FixtureRequest,
) -> None:
    """Held media reached the new connection only, after the replay, in the order sent.

    The replayed counts are logged and kept as user properties.
    """
    first, second = standin.connections[0], standin.connections[1]
    audio, frames = arrived
    # Held media reached the new connection only. The new connection got the replay (what
    # the old one received since its last handle), then the rest, all in the order sent.
    kinds = (("audio", audio, sent.audio, held[0]), ("frames", frames, sent.frames, held[1]))
    for name, counts, sent_items, held_from in kinds:
        on_first = [data for _, data in getattr(first, name)]
        on_second = [data for _, data in getattr(second, name)]
        indexes = [sent_items.index(data) for data in on_second]
        assert indexes == sorted(set(indexes))  # in the order sent, none twice
        assert set(sent_items[held_from:]) <= set(on_second)
        # A payload arrives at most twice: on the old connection, then in the replay.
        replayed = [data for data in on_first if counts[data] > 1]
        assert max(counts.values()) <= 2
        assert replayed == on_first[len(on_first) - len(replayed) :]
        assert on_second[: len(replayed)] == replayed
        logger.info("Replayed on the new connection: %d %s", len(replayed), name)
        request.node.user_properties.append((f"replayed_{name}", len(replayed)))


async def test_media_sent_while_the_new_connection_sets_up_is_held_and_delivered(
    standin: StandIn, cookie: str, settings: Any, request: pytest.FixtureRequest
) -> None:
    """The new connection's setup takes 0.8 s: browser media meanwhile waits, none is lost.

    Every payload is distinct, so counts are exact. What went out on the old connection
    after its last handle is replayed on the new one: those duplicates are allowed (the
    resumed model needs them) and are measured: logged, and kept as user properties.
    """
    settings.SHARE_AUDIO_RATE_FACTOR = 100.0  # the burst below is no flood
    settings.SHARE_MAX_FRAMES_PER_S = 100.0
    browser = Browser(cookie)
    live = await live_after_one_turn(browser, standin, "before the hand-over")
    sent, after_go_away, held = await drive_media_into_a_slow_setup(standin, browser)
    first, second = standin.connections[0], standin.connections[1]
    assert second.setup_complete_at is None
    assert not set(sent.audio[held[0] :]) & {data for _, data in first.audio}
    assert not set(sent.frames[held[1] :]) & {data for _, data in first.frames}

    await browser.expect("status", state="handed_over")
    await sent.send(4)  # after the switch
    await browser.expect("turn_complete", turn=2)
    await standin.wait_for(
        lambda: (
            set(sent.audio) <= set(arrivals(standin, "audio"))
            and set(sent.frames) <= set(arrivals(standin, "frames"))
        )
    )
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    audio, frames = arrivals(standin, "audio"), arrivals(standin, "frames")
    check_every_payload_arrived(sent, audio, frames, after_go_away)
    check_held_and_replayed(standin, sent, (audio, frames), held, request)
    assert second.texts == ["during the switch"]
    session, lines = await stored(live["session_id"])
    assert session.resumptions == 1
    assert [text for *_, text in lines][0::2] == ["before the hand-over", "during the switch"]
    await browser.close()


async def check_every_attempt_refused_and_lines_kept(
    standin: StandIn, browser: Browser, session_id: str
) -> None:
    """Four refused attempts on the last handle; the session failed, both turns stored."""
    first, *attempts = standin.connections
    assert len(attempts) == 4  # at once, then after each of the three delays
    assert all(c.resumption_handle_sent == "standin-0-1" for c in attempts)
    assert [c.close_code for c in attempts] == [1011] * 4
    assert all(c.setup_complete_at is None for c in attempts)
    assert first.texts == ["kept", "cut short"]
    session, lines = await stored(session_id)
    assert (session.status, session.end_reason, session.resumptions) == (
        LiveSession.Status.FAILED,
        LiveSession.EndReason.UPSTREAM_ERROR,
        0,
    )
    # Intact: both turns, the second as far as it came before the session failed.
    assert [(seq, role, source) for seq, role, source, _ in lines] == [
        (1, "user", "typed"),
        (2, "model", "speech"),
        (3, "user", "typed"),
        (4, "model", "speech"),
    ]
    texts = [text for *_, text in lines]
    first_reply, second_reply = sent_turns(standin, 0)
    assert texts[:3] == ["kept", first_reply.text.strip(), "cut short"]
    assert texts[3] == browser.transcript("model", 2).strip()
    assert second_reply.text.startswith(browser.transcript("model", 2))
    assert not second_reply.complete


async def test_a_hand_over_that_keeps_failing_ends_with_a_final_error(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    """Every attempt to open the new connection is refused: the session fails, lines kept.

    The goAway comes mid-reply with little time left, so the relay tries at once; refused,
    it closes the old connection (the service may refuse two at a time), then tries with
    each reconnect delay (the fixture's three), and gives up.
    """
    settings.GEMINI_SWITCH_MARGIN_S = 1.5
    standin.behaviour.chunk_interval_s = 0.1
    standin.behaviour.reply_audio_s = 2.0
    browser = Browser(cookie)
    live = await live_after_one_turn(browser, standin, "kept")
    await browser.send(type="text", text="cut short")
    await browser.expect("transcript", role="model", turn=2)
    standin.behaviour.refuse_connections = True
    await standin.go_away(1.0)
    error = await browser.expect("error")
    assert error == {
        "type": "error",
        "code": "model_error",
        "message": "The model service had an internal error. Try again in a minute.",
        "upstream_code": 1011,
        "upstream_reason": "Service unavailable.",
        "detail": "the model connection was lost and 3 attempts to resume failed; the last:"
        " model connection closed (1011): Service unavailable.",
    }
    assert await browser.expect_close() == CloseCode.UPSTREAM_FAILED
    states = [m["state"] for m in browser.messages if m["type"] == "status"]
    assert states == ["connecting", "live", "ended"]  # never resumed nor handed over
    await standin.wait_for(lambda: all(c.closed for c in standin.connections))
    await check_every_attempt_refused_and_lines_kept(standin, browser, live["session_id"])


async def test_a_hand_over_whose_handle_is_refused_starts_afresh_with_the_transcript(
    standin: StandIn, cookie: str
) -> None:
    """The service refuses the handle (1008): the relay opens a fresh session, seeds it."""
    browser = Browser(cookie)
    live = await live_after_one_turn(browser, standin, "kept")
    standin.behaviour.refuse_resumption = True
    await standin.go_away(3.0)
    await browser.expect("status", state="restarted", timeout=10)
    await browser.send(type="text", text="goes on")
    await browser.expect("turn_complete", turn=2)
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    *refused, fresh = standin.connections[1:]
    assert [c.close_code for c in refused] == [1008] * len(refused)
    assert all(c.resumption_handle_sent == "standin-0-1" for c in refused)
    assert fresh.resumption_handle_sent is None
    seed = [m["clientContent"] for m in fresh.messages if "clientContent" in m]
    first_turn = seed[0]["turns"][0]
    assert (first_turn["role"], first_turn["parts"][0]["text"]) == ("user", "kept")
    assert fresh.texts == ["kept", "goes on"]  # the seed's user line, then the new text
    session, lines = await stored(live["session_id"])
    assert (session.status, session.resumptions) == ("ended", 1)
    assert [text for *_, text in lines][0::2] == ["kept", "goes on"]
