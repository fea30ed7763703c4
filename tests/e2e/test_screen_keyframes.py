"""Keyframes slow down while nobody speaks: static/js/screen.js on a tab that holds still.

A still screen sends no change, only keyframes: every ``keyframeS`` while someone speaks
(``capture.speaking``, which the share page sets from the conversation's state), every
``idleKeyframeS`` while nobody does. Here 0.9 s and 2.9 s, at 2 frames a second (change
detection ticks twice a frame: 4 ticks a second).
"""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import SHARE_THIS_TAB, wait_for_js

TICKS = 24  # six seconds at 4 ticks a second


@pytest.fixture
def still_tab(chromium_tab_capture: Any, static_site: str) -> Iterator[Any]:
    """The fixture page, sharing its own (still) tab."""
    context = chromium_tab_capture.new_context(viewport={"width": 800, "height": 600})
    context.add_init_script(SHARE_THIS_TAB)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{static_site}/tests/e2e/pages/screen.html")
    page.wait_for_selector("body[data-ready=true]")
    page.click("#share")
    page.wait_for_selector("body[data-sharing=true]")
    yield page
    page.evaluate("window.capture.stop()")
    context.close()
    assert errors == []


def window_of_ticks(page: Any, speaking: bool) -> list[dict[str, Any]]:
    """Set ``speaking``, then the next TICKS ticks, all taken with that setting."""
    start = page.evaluate(f"window.capture.speaking = {str(speaking).lower()}; performance.now()")
    after = f"window.capture.ticks.filter(t => t.at > {start})"
    wait_for_js(page, f"{after}.length >= {TICKS + 1}", timeout=20000)
    ticks: list[dict[str, Any]] = page.evaluate(f"{after}.slice(1, {TICKS + 1})")
    assert all(tick["speaking"] is speaking for tick in ticks)
    return ticks


def test_keyframes_come_every_keyframe_s_while_speaking_and_idle_keyframe_s_while_not(
    still_tab: Any,
) -> None:
    wait_for_js(still_tab, "window.capture.sent >= 1")  # the first tick sends the screen
    idle = window_of_ticks(still_tab, speaking=False)
    speaking = window_of_ticks(still_tab, speaking=True)
    idle_again = window_of_ticks(still_tab, speaking=False)

    for ticks in (idle, speaking, idle_again):
        assert all(tick["changed"] < 0.5 for tick in ticks)  # the tab holds still...
        assert all(tick["keyframe"] for tick in ticks if tick["sent"])  # ...so only keyframes
    # 0.9 s apart while speaking: six or so in six seconds; 2.9 s apart otherwise: two.
    assert sum(tick["sent"] for tick in speaking) >= 5
    assert sum(tick["sent"] for tick in idle) <= 2
    assert sum(tick["sent"] for tick in idle_again) <= 2
    assert sum(tick["sent"] for tick in idle + idle_again) >= 2  # idle still sends keyframes
