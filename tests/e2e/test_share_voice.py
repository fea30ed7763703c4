"""A whole voice session in headless Chromium: fake screen, a tone as the microphone,
typed text, live transcript, barge-in, stop. Checked at the stand-in, in the page and in
the database."""

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from sessions_app.models import LiveSession
from standin import ThreadedStandIn
from tests.e2e.conftest import ARTIFACTS, TONE_HZ, interrupt_a_long_reply, log_in, wait_for_js

FAKE_SCREEN = (1280, 720)
FRAME_CAP = 1024


def dominant_frequency(pcm: bytes, rate: int = 16000) -> float:
    """The strongest frequency of PCM16LE mono audio."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def page_lines(page: Any) -> list[tuple[str, str]]:
    """The transcript panel as (role, text) lines."""
    return page.eval_on_selector_all(
        "[data-testid=transcript] .line",
        "lines => lines.map(l => [l.dataset.role, l.querySelector('.text').textContent.trim()])",
    )


def speak_then_type(page: Any) -> int:
    """Speak, mute, then type a message; returns the audio samples the page sent."""
    # Speak: the fake microphone plays the tone; then mute, which ends the utterance.
    wait_for_js(page, "window.sharePage.stats.audioSamplesSent >= 16000 * 3", timeout=20000)
    page.get_by_test_id("mic-toggle").click()
    sent_samples = page.evaluate("window.sharePage.stats.audioSamplesSent")
    expect(page.locator("[data-testid=transcript] .line.model.final")).to_have_count(
        1, timeout=15000
    )

    # Type a message.
    page.get_by_test_id("text-input").fill("Please describe my screen")
    page.get_by_test_id("send-text").click()
    expect(page.locator("[data-testid=transcript] .line.model.final")).to_have_count(
        2, timeout=15000
    )
    return sent_samples


def check_audio_received(connection: Any, sent_samples: int) -> int:
    """The audio at the stand-in; returns the samples it received."""
    # Audio: 16 kHz PCM, the tone's frequency, as many samples as the page sent: whole
    # samples in every chunk, at least the 3 s spoken before the mute, none lost or added.
    assert {mime for mime, _ in connection.audio} == {"audio/pcm;rate=16000"}
    assert all(len(data) % 2 == 0 for _, data in connection.audio)
    audio = connection.audio_bytes()
    assert abs(dominant_frequency(audio) - TONE_HZ) <= TONE_HZ * 0.02
    received = len(audio) // 2
    assert received == sent_samples
    assert received >= 16000 * 3
    return received


def check_frames_received(page: Any, connection: Any) -> None:
    """Frames: JPEGs with the fake screen's aspect ratio, none wider than the cap."""
    assert connection.frames
    for mime, data in connection.frames:
        assert mime == "image/jpeg"
        width, height = Image.open(io.BytesIO(data)).size
        assert max(width, height) <= FRAME_CAP
        assert abs(width / height - FAKE_SCREEN[0] / FAKE_SCREEN[1]) < 0.01
    frames_shown = int(page.get_by_test_id("stats").locator("[data-stat=frames-sent]").inner_text())
    assert frames_shown >= len(connection.frames)


def check_barge_in(page: Any, e2e_standin: ThreadedStandIn) -> None:
    """Barge-in: a long reply is queued in the player; the stand-in interrupts it."""
    interrupt_a_long_reply(page, e2e_standin)
    wait_for_js(page, "window.sharePage.player.flushes === 1", timeout=5000)
    flushed = page.evaluate(
        "({queued: window.sharePage.player.queuedSamples,"
        " after: window.sharePage.player.playedAfterFlush})"
    )
    e2e_standin.behaviour.reply_audio_s = 0.6
    e2e_standin.behaviour.chunk_interval_s = 0.0
    # The queue is dropped in the first render quantum after the flush: at most 128
    # samples (5.3 ms at 24 kHz) play after it, far inside the 200 ms allowed.
    assert flushed["queued"] == 0
    assert flushed["after"] <= 128


def stop_and_check_tracks_end(page: Any) -> None:
    """Stop the session: every screen and microphone track ends."""
    tracks = page.evaluate_handle(
        "[...window.sharePage.screen.tracks, ...window.sharePage.mic.tracks]"
    )
    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ended", timeout=10000)
    assert page.evaluate("tracks => tracks.every(t => t.readyState === 'ended')", tracks)


def check_stored_session(connection: Any, shown: list[tuple[str, str]], received: int) -> None:
    """The database holds the transcript the page showed and the media counted."""
    session = LiveSession.objects.get()
    stored = list(session.entries.values_list("role", "text"))
    assert [(role, " ".join(text.split())) for role, text in stored] == [
        (role, " ".join(text.split())) for role, text in shown
    ]
    assert [role for role, _ in stored][:4] == ["user", "model", "user", "model"]
    heard = "".join(
        m["serverContent"]["inputTranscription"]["text"]
        for m in connection.replies
        if "inputTranscription" in m.get("serverContent", {})
    )
    assert stored[0] == ("user", heard.strip())
    assert session.frames_received == len(connection.frames)
    # The site counted the same audio as the stand-in received: its seconds of samples.
    assert session.audio_seconds_in == pytest.approx(received / 16000)


def test_voice_session_end_to_end(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    first_connection = len(e2e_standin.connections)
    log_in(page, daphne_server, "alice", "alice-pass-123")
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)
    sent_samples = speak_then_type(page)

    connection = e2e_standin.connections[first_connection]
    assert connection.setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert connection.texts == ["Please describe my screen"]
    received = check_audio_received(connection, sent_samples)
    check_frames_received(page, connection)
    check_barge_in(page, e2e_standin)

    latency = page.get_by_test_id("stats").locator("[data-stat=latency]").inner_text()
    assert latency.isdigit()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "share-page-live.png"))

    shown = page_lines(page)
    stop_and_check_tracks_end(page)
    connection = e2e_standin.connections[first_connection]  # a fresh snapshot
    check_stored_session(connection, shown, received)
