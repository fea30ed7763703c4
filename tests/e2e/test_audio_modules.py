"""The browser audio layer (static/js/audio/) in headless Chromium with a fake microphone.

The page under test is tests/e2e/pages/audio.html, served from the repository root by a small
static HTTP server. Chromium's fake capture device plays a generated WAV file (a 440 Hz tone),
so the microphone path can be checked end to end; the worklets are also run on their own in
an OfflineAudioContext, where audio time is exact and the output can be inspected sample by
sample.
"""

import base64
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.e2e.conftest import TONE_HZ, module_page

pytestmark = pytest.mark.e2e

PAGE = "/tests/e2e/pages/audio.html"

MIC_RATE = 16000
CHUNK_SAMPLES = 1600  # 100 ms at 16 kHz


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def audio_page(chromium: Any, static_site: str) -> Iterator[Any]:
    """The fixture page, loaded and clicked once (a user activation lets audio start)."""
    with module_page(chromium, static_site, PAGE) as page:
        page.click("#activate")
        page.wait_for_selector("#activate[data-clicked=true]")
        yield page


# --- signal analysis ----------------------------------------------------------------------


def pcm16(encoded: str) -> np.ndarray:
    """Base64 PCM16 little-endian to float samples in [-1, 1)."""
    return np.frombuffer(base64.b64decode(encoded), dtype="<i2").astype(np.float64) / 32768


def dominant_frequency(samples: np.ndarray, rate: float) -> float:
    """The strongest frequency, refined between FFT bins by a parabola on the log magnitude."""
    spectrum = np.abs(np.fft.rfft((samples - samples.mean()) * np.hanning(len(samples))))
    peak = int(np.argmax(spectrum[1:-1])) + 1
    left, centre, right = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
    offset = 0.5 * (left - right) / (left - 2 * centre + right)
    return (peak + offset) * rate / len(samples)


def sinusoid_fit(samples: np.ndarray, rate: float, frequency: float) -> tuple[float, np.ndarray]:
    """Least-squares fit of a DC + sinusoid at ``frequency``: its amplitude, and the residual."""
    t = np.arange(len(samples)) / rate
    basis = np.column_stack(
        [np.ones_like(t), np.cos(2 * np.pi * frequency * t), np.sin(2 * np.pi * frequency * t)]
    )
    coefficients, *_ = np.linalg.lstsq(basis, samples, rcond=None)
    return float(np.hypot(*coefficients[1:])), samples - basis @ coefficients


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2)))


def db(ratio: float) -> float:
    return 20 * math.log10(max(ratio, 1e-12))


# --- microphone -----------------------------------------------------------------------------


def record_mic(page: Any, seconds: float, **options: Any) -> dict[str, Any]:
    """Start the mic, wait for its first chunk, collect for ``seconds``, stop."""
    page.evaluate("options => fixture.startMic(options)", options)
    page.wait_for_function("() => fixture.chunks.length > 0")
    page.wait_for_timeout(seconds * 1000)  # a fixed collection window, not a synchronisation
    return page.evaluate("() => fixture.stopMic()")


def check_chunks_carry_the_tone(result: dict[str, Any]) -> np.ndarray:
    assert result["byteLengths"], "no chunks"
    assert set(result["byteLengths"]) == {CHUNK_SAMPLES * 2}
    samples = pcm16(result["pcm"])
    assert len(samples) == result["samplesSent"] == CHUNK_SAMPLES * len(result["byteLengths"])
    frequency = dominant_frequency(samples, MIC_RATE)
    assert frequency == pytest.approx(TONE_HZ, rel=0.02)
    return samples


def test_mic_streams_16khz_pcm16_chunks_of_the_tone(audio_page: Any) -> None:
    result = record_mic(audio_page, 3.0)
    check_chunks_carry_the_tone(result)

    # Rate: samples delivered over the page's own clock (first to last chunk, plus one chunk).
    elapsed = (result["lastAt"] - result["firstAt"]) / 1000 + CHUNK_SAMPLES / MIC_RATE
    total = CHUNK_SAMPLES * len(result["byteLengths"])
    assert total / elapsed == pytest.approx(MIC_RATE, rel=0.10)
    assert result["contextRate"] in (44100, 48000)


def test_mic_resamples_from_a_44100hz_context(audio_page: Any) -> None:
    result = record_mic(audio_page, 2.0, contextRate=44100)
    assert result["contextRate"] == 44100
    check_chunks_carry_the_tone(result)


def wait_for_loud_level(page: Any) -> dict[str, float]:
    """The first "level" report with rms > 0.05 from now on (the tone comes in bursts)."""
    seen = page.evaluate("() => fixture.levels.length")
    handle = page.wait_for_function(
        "seen => fixture.levels.slice(seen).find((level) => level.rms > 0.05)", arg=seen
    )
    return handle.json_value()


def test_mute_stops_chunks_and_zeroes_the_level(audio_page: Any) -> None:
    audio_page.evaluate("() => fixture.startMic({})")
    audio_page.wait_for_function("() => fixture.chunks.length >= 2")
    level = wait_for_loud_level(audio_page)
    assert 0.05 < level["rms"] <= level["peak"] <= 1

    chunks, levels = audio_page.evaluate(
        "() => { fixture.mic.muted = true; return [fixture.chunks.length, fixture.levels.length] }"
    )
    audio_page.wait_for_function(f"() => fixture.levels.length > {levels}")
    audio_page.wait_for_timeout(500)  # a fixed window in which no chunk may arrive
    assert audio_page.evaluate("() => fixture.chunks.length") == chunks
    assert audio_page.evaluate("() => fixture.mic.muted") is True
    while_muted = audio_page.evaluate(f"() => fixture.levels.slice({levels})")
    assert len(while_muted) >= 5  # still reported, about 20 times a second
    assert all(level == {"rms": 0, "peak": 0} for level in while_muted)

    audio_page.evaluate("() => { fixture.mic.muted = false }")
    audio_page.wait_for_function(f"() => fixture.chunks.length > {chunks}")
    wait_for_loud_level(audio_page)
    result = audio_page.evaluate("() => fixture.stopMic()")
    assert set(result["byteLengths"]) == {CHUNK_SAMPLES * 2}


@pytest.mark.parametrize("rate", [44100, 48000])
def test_mic_worklet_low_passes_before_resampling(audio_page: Any, rate: int) -> None:
    """Tones above 8 kHz must not fold back into the band; the rate must be exact."""
    tones = [
        {"frequency": 1000, "amplitude": 0.25},
        {"frequency": 9000, "amplitude": 0.25},  # a decimator without a filter: 7 kHz alias
        {"frequency": 12000, "amplitude": 0.25},  # ... and a 4 kHz alias
    ]
    # 2.05 s is 20.5 chunks of output, so exactly 20 whole chunks whatever the filter delay.
    result = audio_page.evaluate(
        "args => fixture.renderMicWorklet(args)",
        {"rate": rate, "seconds": 2.05, "tones": tones, "chunkCount": 20},
    )
    assert result["byteLengths"] == [CHUNK_SAMPLES * 2] * 20
    samples = pcm16(result["pcm"])[200:]  # past the filter's start-up

    # No drift: the 1 kHz tone comes out at 1 kHz to within 0.05 % (0.5 Hz).
    assert dominant_frequency(samples, MIC_RATE) == pytest.approx(1000, abs=0.5)
    wanted, _ = sinusoid_fit(samples, MIC_RATE, 1000)
    assert wanted == pytest.approx(0.25, rel=0.02)
    for alias in (7000, 4000):
        leaked, _ = sinusoid_fit(samples, MIC_RATE, alias)
        assert db(leaked / wanted) < -40, f"{alias} Hz alias at {db(leaked / wanted):.1f} dB"

    # Seamless across render quanta and chunks: what is not the three tones is tiny.
    _, residual = sinusoid_fit(samples, MIC_RATE, 1000)
    for alias in (7000, 4000):
        _, residual = sinusoid_fit(residual, MIC_RATE, alias)
    assert db(rms(residual) / (wanted / math.sqrt(2))) < -50


# --- player -------------------------------------------------------------------------------


def test_player_queues_plays_and_flushes_at_once(audio_page: Any) -> None:
    audio_page.evaluate("() => fixture.startPlayer()")
    # 3 s of 24 kHz tone in 100 ms chunks, all at once, as a burst from the server would be.
    audio_page.evaluate("() => fixture.enqueueTone({ chunkSamples: 2400, chunkCount: 30 })")
    audio_page.wait_for_function("() => fixture.player.queuedSamples > 24000")
    audio_page.wait_for_function("() => fixture.player.speaking")
    # The one "state" so far is the flip to speaking (its queue depth depends on how many
    # chunks had reached the worklet by then, so only the flag is checked).
    assert audio_page.evaluate("() => fixture.states.map((state) => state.speaking)") == [True]

    audio_page.evaluate("() => fixture.player.flush()")
    audio_page.wait_for_function("() => fixture.player.flushes === 1")
    player = audio_page.evaluate(
        """() => ({
            queued: fixture.player.queuedSamples,
            speaking: fixture.player.speaking,
            flushes: fixture.player.flushes,
            playedAfterFlush: fixture.player.playedAfterFlush,
            lastState: fixture.states.at(-1),
        })"""
    )
    assert player["queued"] == 0
    assert player["speaking"] is False
    assert player["flushes"] == 1
    assert 0 <= player["playedAfterFlush"] <= 128
    assert player["lastState"] == {"queued": 0, "speaking": False}


def test_player_plays_a_chunk_shorter_than_the_prebuffer(audio_page: Any) -> None:
    audio_page.evaluate("() => fixture.startPlayer({ prebufferMs: 80 })")
    # 40 ms alone: less than the 80 ms prebuffer, so it must start after the short wait.
    audio_page.evaluate("() => fixture.enqueueTone({ chunkSamples: 960, chunkCount: 1 })")
    audio_page.wait_for_function("() => fixture.states.some((state) => state.speaking)")
    audio_page.wait_for_function(
        "() => !fixture.player.speaking && fixture.player.queuedSamples === 0"
    )
    started, ended = audio_page.evaluate("() => fixture.states")  # exactly two flips
    assert started["speaking"] is True
    assert 0 < started["queued"] < 960
    assert ended == {"queued": 0, "speaking": False}


@pytest.mark.parametrize("rate", [24000, 48000])
def test_player_worklet_output_is_continuous_and_a_flush_is_immediate(
    audio_page: Any, rate: int
) -> None:
    """In audio time: the queued tone plays without a glitch; after a flush, silence within
    one render quantum. At 48 kHz this is the fallback path that resamples 24 kHz input."""
    result = audio_page.evaluate(
        "args => fixture.renderPlayerWorklet(args)",
        {"rate": rate, "seconds": 0.6, "pushMs": 500, "flushAtMs": 300},
    )
    output = np.array(result["output"])
    push, flush = result["pushFrame"], result["flushFrame"]

    assert not output[:push].any(), "sound before anything was queued"
    played = output[push + 64 : flush]  # past the resampler's start-up
    amplitude, residual = sinusoid_fit(played, rate, 1000)
    assert amplitude == pytest.approx(0.5, rel=0.02)
    assert db(rms(residual) / (amplitude / math.sqrt(2))) < -50, "the tone is not clean"
    assert np.abs(output[flush : flush + 128]).max() <= 0.5 + 1e-3  # the fade, if any
    assert not output[flush + 128 :].any(), "sound after the flush's render quantum"

    acks = [m for m in result["messages"] if m["type"] == "flushed"]
    assert len(acks) == 1
    assert acks[0]["queued"] == 0
    assert acks[0]["flushes"] == 1
    assert 0 <= acks[0]["playedAfterFlush"] <= 128
    assert acks[0]["speaking"] is False
