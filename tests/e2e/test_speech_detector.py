"""The speech detector (static/js/audio/speech.js) and ScreenCapture.refresh() (screen.js),
as modules in headless Chromium.

The page under test is tests/e2e/pages/speech.html. The detector is fed synthetic 100 ms
chunks of 16 kHz PCM16 whose RMS level is exact, so every event can be pinned to the
chunk that caused it. The screen is Chromium's fake display.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import module_page

pytestmark = pytest.mark.e2e

PAGE = "/tests/e2e/pages/speech.html"
LOUD = 0.1  # RMS level of a spoken chunk, well above the threshold
QUIET = 0.001  # a quiet room


@pytest.fixture
def speech_page(chromium: Any, static_site: str) -> Iterator[Any]:
    """The fixture page, loaded."""
    with module_page(chromium, static_site, PAGE) as page:
        yield page


def detect(page: Any, steps: list[list[Any]]) -> dict[str, Any]:
    """Feed the steps to a new detector; its events as [type, chunk index] pairs."""
    result: dict[str, Any] = page.evaluate("steps => fixture.detect(steps)", steps)
    return result


# --- speech detector ----------------------------------------------------------------------


def test_speech_ends_after_a_second_of_quiet_following_speech(speech_page: Any) -> None:
    # Quiet before any speech ends nothing; the first loud chunk starts speech; the
    # tenth quiet chunk after it (1.0 s of audio) ends it, once.
    result = detect(speech_page, [[QUIET, 5], [LOUD, 3], [QUIET, 20]])
    assert result["events"] == [["speechstart", 5], ["speechend", 17]]
    assert result["speaking"] is False


def test_pauses_shorter_than_a_second_do_not_end_speech_and_speech_rearms(
    speech_page: Any,
) -> None:
    steps = [
        [LOUD, 2],  # chunks 0-1
        [QUIET, 9],  # 0.9 s: a pause, not the end
        [LOUD, 1],  # 11
        [QUIET, 9],
        [LOUD, 1],  # 21
        [QUIET, 15],  # 22-36: ends at the tenth (31), nothing more after it
        [LOUD, 1],  # 37: speaks again
        [QUIET, 10],  # 38-47: ends again
    ]
    result = detect(speech_page, steps)
    assert result["events"] == [
        ["speechstart", 0],
        ["speechend", 31],
        ["speechstart", 37],
        ["speechend", 47],
    ]


def test_the_threshold_is_the_chunks_rms_level(speech_page: Any) -> None:
    threshold = speech_page.evaluate("fixture.SPEECH_RMS")
    assert threshold == 0.02
    below = detect(speech_page, [[threshold * 0.9, 20]])
    assert below == {"events": [], "speaking": False}
    above = detect(speech_page, [[threshold * 1.1, 1], [threshold * 0.9, 10]])
    assert above["events"] == [["speechstart", 0], ["speechend", 10]]


def test_reset_forgets_the_speech_in_progress(speech_page: Any) -> None:
    # A mute resets the detector: the quiet after it ends nothing; speaking starts afresh.
    result = detect(speech_page, [[LOUD, 3], ["reset"], [QUIET, 20], [LOUD, 1]])
    assert result["events"] == [["speechstart", 0], ["speechstart", 23]]
    assert result["speaking"] is True


# --- ScreenCapture.refresh() --------------------------------------------------------------


def test_refresh_sends_a_frame_unless_the_last_one_is_under_a_second_old(
    speech_page: Any,
) -> None:
    speech_page.click("#share")  # a tick only every 5 s: the frames below are refresh()'s
    speech_page.wait_for_selector("#share[data-shared=true]")

    assert speech_page.evaluate("fixture.screen.refresh()") is True  # nothing sent yet
    first = speech_page.evaluate("fixture.frames")
    assert len(first) == 1
    assert first[0]["head"] == [0xFF, 0xD8, 0xFF]  # a JPEG
    assert speech_page.evaluate("fixture.screen.refresh()") is False  # too recent
    assert len(speech_page.evaluate("fixture.frames")) == 1

    speech_page.wait_for_function("performance.now() - fixture.screen.lastSentAt > 1000")
    # Two at once: the second waits for the first, whose frame is then too recent.
    both = speech_page.evaluate("Promise.all([fixture.screen.refresh(), fixture.screen.refresh()])")
    assert both == [True, False]
    frames = speech_page.evaluate("fixture.frames")
    assert len(frames) == 2
    assert frames[1]["capturedAt"] - frames[0]["capturedAt"] > 1000
    counts = speech_page.evaluate(
        "({sent: fixture.screen.sent, refreshes: fixture.screen.refreshes})"
    )
    assert counts == {"sent": 2, "refreshes": 2}

    speech_page.evaluate("fixture.screen.stop()")
    assert speech_page.evaluate("fixture.screen.refresh()") is False  # nothing shared
