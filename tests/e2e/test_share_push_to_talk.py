"""Push-to-talk in headless Chromium, its microphone a looping tone: the user ticks
"Push to talk", starts, and holds the talk button (or the space bar) to speak.

Checked at the stand-in: automatic activity detection off in the setup, no audio until
the hold, then activityStart, audio, activityEnd in that order, and the reply sent only
after the end (the stand-in's ``reply_marks``). Holds are measured in audio chunks the
stand-in received, never in wall-clock time.
"""

from typing import Any

from playwright.sync_api import expect

from standin import ThreadedStandIn
from tests.e2e.conftest import log_in, wait_for_js
from tests.records import first_answer, position, realtime_fields

HELD_CHUNKS = 15  # about 1.5 s of 100 ms chunks
ACTIVITY = ("activityStart", "audio", "activityEnd", "audioStreamEnd")


def activity_kinds(standin: ThreadedStandIn) -> list[str]:
    """The audio and activity fields of the realtimeInput the stand-in got, in order."""
    return [key for key in realtime_fields(standin) if key in ACTIVITY]


def first_answer_after(standin: ThreadedStandIn) -> tuple[int, int]:
    """(messages received when the first model turn went out, index of the activityEnd)."""
    return first_answer(standin), position(standin, "activityEnd")


def start_push_to_talk(page: Any, server: str, standin: ThreadedStandIn) -> None:
    """Log in, tick push-to-talk, start; the mic runs but nothing of it is sent yet."""
    log_in(page, server, "alice", "alice-pass-123")
    talk = page.get_by_test_id("talk")
    expect(talk).to_be_hidden()
    page.get_by_test_id("push-to-talk").check()
    expect(talk).to_be_visible()
    expect(talk).to_be_disabled()
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)
    expect(talk).to_be_enabled()
    expect(page.get_by_test_id("push-to-talk")).to_be_disabled()
    setup = standin.connections[0].setup
    assert setup["realtimeInputConfig"]["automaticActivityDetection"] == {"disabled": True}
    wait_for_js(page, "document.getElementById('level').value > 0", timeout=10000)  # mic on
    page.get_by_test_id("text-input").press_sequentially("a b")  # a space typed: no talk
    assert page.evaluate("window.sharePage.ptt.held") is False
    page.get_by_test_id("text-input").fill("")
    assert activity_kinds(standin) == []
    assert page.evaluate("window.sharePage.stats.audioSamplesSent") == 0


def check_one_held_turn(page: Any, standin: ThreadedStandIn) -> None:
    """activityStart, audio, activityEnd, nothing else; the reply came after the end."""
    expect(page.get_by_test_id("talk")).to_have_attribute("aria-pressed", "false")
    standin.wait_for(lambda: "activityEnd" in activity_kinds(standin), timeout=10)
    expect(page.get_by_test_id("transcript")).to_contain_text("I heard", timeout=15000)
    kinds = activity_kinds(standin)
    chunks = kinds.count("audio")
    assert chunks >= HELD_CHUNKS
    assert kinds == ["activityStart", *["audio"] * chunks, "activityEnd"]
    answered_at, end = first_answer_after(standin)
    assert answered_at > end
    sent = page.evaluate("window.sharePage.stats.audioSamplesSent")
    assert len(standin.connections[0].audio_bytes()) == 2 * sent  # every chunk held, no more


def hold_until_heard(page: Any, standin: ThreadedStandIn) -> None:
    """While held: the button says so, and about 1.5 s of audio reaches the stand-in."""
    expect(page.get_by_test_id("talk")).to_have_attribute("aria-pressed", "true")
    standin.wait_for(lambda: len(standin.connections[0].audio) >= HELD_CHUNKS, timeout=10)


def test_holding_the_talk_button_sends_one_turn_answered_after_the_release(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    start_push_to_talk(page, daphne_server, e2e_standin)
    page.get_by_test_id("talk").hover()
    page.mouse.down()
    hold_until_heard(page, e2e_standin)
    page.mouse.up()
    check_one_held_turn(page, e2e_standin)


def test_holding_the_space_bar_sends_one_turn_answered_after_the_release(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    start_push_to_talk(page, daphne_server, e2e_standin)
    page.evaluate("document.activeElement.blur()")  # the space bar anywhere on the page
    page.keyboard.down("Space")
    hold_until_heard(page, e2e_standin)
    page.keyboard.up("Space")
    check_one_held_turn(page, e2e_standin)
