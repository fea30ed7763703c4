"""The end of the user's audio in headless Chromium: the page sends `audio_end` when the
mic is muted and after a second of quiet following speech; the server relays it to the
model as `audioStreamEnd`. Checked at the stand-in, chunk by chunk, and on the socket."""

import json
import math
import struct
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from standin import ThreadedStandIn
from standin.media import b64decode_any, pcm16_rms
from standin.records import Connection
from tests.e2e.conftest import TONE_HZ, launch_chromium, log_in
from tests.leaks import SCANNER

SPEECH_RMS = 0.02 * 32768  # the page's threshold (SPEECH_RMS in static/js/audio/speech.js)
QUIET_CHUNKS = 10  # 1.0 s of 100 ms chunks
AUDIO_END = {"realtimeInput": {"audioStreamEnd": True}}
TALK_S = 1.0
PAUSE_S = 2.0


def write_utterance_wav(path: Path, talk_s: float = TALK_S, pause_s: float = PAUSE_S) -> Path:
    """A 48 kHz mono WAV: ``talk_s`` of the tone in 300 ms bursts, then ``pause_s`` of
    digital silence. Chromium loops it: the user talks, pauses, talks again.

    The bursts (as in conftest.write_tone_wav) keep the browser's noise suppression from
    fading the tone out; their 200 ms gaps are far shorter than the page's second.
    """
    rate = 48000

    def sample(i: int) -> int:
        t = i / rate
        phase = t % 0.5
        if t >= talk_s or phase >= 0.3:
            return 0
        gain = min(1.0, phase / 0.01, (0.3 - phase) / 0.01)
        return int(16384 * gain * math.sin(2 * math.pi * TONE_HZ * t))

    count = int(rate * (talk_s + pause_s))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(struct.pack(f"<{count}h", *(sample(i) for i in range(count))))
    return path


@pytest.fixture(scope="module")
def chromium_with_pauses(
    playwright_driver: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """Headless Chromium whose microphone talks for a second, then pauses for two."""
    wav = write_utterance_wav(tmp_path_factory.mktemp("audio") / "utterance.wav")
    browser = launch_chromium(playwright_driver, wav)
    yield browser
    browser.close()


class SocketLog:
    """Every frame of the page's WebSockets, in order: text as str, binary as bytes."""

    def __init__(self, page: Any) -> None:
        self.sent: list[str | bytes] = []
        self.received: list[str | bytes] = []
        page.on("websocket", self._watch)

    def _watch(self, socket: Any) -> None:
        socket.on("framesent", lambda payload: self.sent.append(payload))
        socket.on("framereceived", self._received)

    def _received(self, payload: str | bytes) -> None:
        SCANNER.scan("ws", payload)
        self.received.append(payload)

    def sent_kinds(self) -> list[str]:
        """'audio', 'frame' or the JSON type of each frame sent."""
        kinds = []
        for payload in self.sent:
            if isinstance(payload, bytes):
                kinds.append("audio" if payload[:1] == b"\x01" else "frame")
            else:
                kinds.append(json.loads(payload)["type"])
        return kinds


def timeline(connection: Connection) -> str:
    """The realtime audio input as one letter per message: ``L`` a loud chunk, ``q`` a
    quiet one (the page's threshold), ``E`` audioStreamEnd."""
    letters = []
    for message in connection.messages:
        body = message.get("realtimeInput", {})
        if "audio" in body:
            loud = pcm16_rms(b64decode_any(body["audio"]["data"])) >= SPEECH_RMS
            letters.append("L" if loud else "q")
        elif "audioStreamEnd" in body:
            assert message == AUDIO_END, message  # exactly what the stand-in records
            letters.append("E")
    return "".join(letters)


def audio_ends(standin: ThreadedStandIn) -> int:
    return timeline(standin.connections[0]).count("E")


def check_one_audio_end_on_the_socket(page: Any, sockets: SocketLog) -> None:
    """On the socket: one audio_end, sent after the last audio chunk."""
    page.evaluate("1")  # let Playwright deliver the socket events sent so far
    kinds = sockets.sent_kinds()
    assert kinds.count("audio_end") == 1
    end = kinds.index("audio_end")
    assert "audio" in kinds[:end]
    assert "audio" not in kinds[end:]
    assert json.loads(sockets.sent[end]) == {"type": "audio_end"}
    # The model spoke: voice mode does get binary frames (which text mode must not).
    assert any(isinstance(payload, bytes) for payload in sockets.received)


def test_muting_the_mic_ends_the_audio_stream(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    sockets = SocketLog(page)
    log_in(page, daphne_server, "alice", "alice-pass-123")
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)

    # Two seconds of the tone, whose bursts never pause for a second: no end yet.
    e2e_standin.wait_for(lambda: len(e2e_standin.connections[0].audio) >= 20, timeout=10)
    before = timeline(e2e_standin.connections[0])
    assert "L" in before
    assert "E" not in before

    page.get_by_test_id("mic-toggle").click()
    e2e_standin.wait_for(lambda: audio_ends(e2e_standin) == 1, timeout=10)
    sent_samples = page.evaluate("window.sharePage.stats.audioSamplesSent")

    # Unmuting and muting again with no audio in between ends nothing: a typed text sent
    # after it arrives with no second end before it.
    page.evaluate(
        "() => { const toggle = document.querySelector('[data-testid=mic-toggle]');"
        " toggle.click(); toggle.click(); }"
    )
    page.get_by_test_id("text-input").fill("Still there?")
    page.get_by_test_id("send-text").click()
    e2e_standin.wait_for(lambda: e2e_standin.connections[0].texts == ["Still there?"], timeout=10)
    connection = e2e_standin.connections[0]
    assert timeline(connection).count("E") == 1

    # The end came after every chunk the page sent, and no audio followed it.
    line = timeline(connection)
    assert line.endswith("E")
    assert len(connection.audio_bytes()) == 2 * sent_samples

    check_one_audio_end_on_the_socket(page, sockets)

    # Unmuted, audio flows again; the next mute ends it again.
    page.get_by_test_id("mic-toggle").click()
    expect(page.get_by_test_id("mic-toggle")).to_have_attribute("aria-pressed", "false")
    chunks = len(e2e_standin.connections[0].audio)
    e2e_standin.wait_for(lambda: len(e2e_standin.connections[0].audio) >= chunks + 5, timeout=10)
    page.get_by_test_id("mic-toggle").click()
    e2e_standin.wait_for(lambda: audio_ends(e2e_standin) == 2, timeout=10)
    assert timeline(e2e_standin.connections[0]).endswith("E")


def test_a_second_of_quiet_after_speech_ends_the_audio_stream(
    daphne_server: str, chromium_with_pauses: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    context = chromium_with_pauses.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    log_in(page, daphne_server, "alice", "alice-pass-123")
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)

    # The microphone talks and pauses (3 s a loop): each pause ends the stream once.
    e2e_standin.wait_for(lambda: audio_ends(e2e_standin) >= 2, timeout=20)
    # Never muted: the ends came from the pauses alone.
    assert page.get_by_test_id("mic-toggle").get_attribute("aria-pressed") == "false"
    assert page.evaluate("window.sharePage.mic.muted") is False

    line = timeline(e2e_standin.connections[0])
    *utterances, _rest = line.split("E")
    assert len(utterances) >= 2
    for heard in utterances:
        # Speech, then exactly a second of quiet chunks: the end comes at the first
        # second of quiet after speech, neither earlier (shorter gaps) nor later.
        first_second_of_quiet = heard.find("L" + "q" * QUIET_CHUNKS)
        assert first_second_of_quiet == len(heard) - QUIET_CHUNKS - 1, heard
    context.close()
