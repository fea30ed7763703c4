"""The conversation's state on the share page, in Chromium: listening, the user speaking
(the fake microphone plays a tone), the assistant thinking, then speaking, then listening
again; a typed turn the same way; and a model connection handed over or resumed shows as
a quiet notice, never as an error."""

from typing import Any

from playwright.sync_api import expect

from standin import ThreadedStandIn
from tests.e2e.conftest import log_in, wait_for_js

HANDED_OVER = "Switched to a fresh model connection: the conversation goes on."
RESUMED = "Reconnected: the conversation goes on."

# Record every value a test id's data-state takes, as it changes, in window.__seen[testid].
OBSERVE = """(testid) => {
  window.__seen ??= {};
  const element = document.querySelector(`[data-testid=${testid}]`);
  const seen = (window.__seen[testid] = [element.dataset.state]);
  new MutationObserver(() => {
    if (seen.at(-1) !== element.dataset.state) seen.push(element.dataset.state);
  }).observe(element, { attributes: true, attributeFilter: ["data-state"] });
}"""


def seen(page: Any, testid: str) -> list[str]:
    """The data-state values recorded for ``testid``, in order."""
    return page.evaluate(f"window.__seen[{testid!r}].slice()")


def start_session(page: Any, base_url: str) -> Any:
    """Log in, watch the two states, start a voice session; the conversation state."""
    log_in(page, base_url, "alice", "alice-pass-123")
    for testid in ("conversation-state", "status"):
        page.evaluate(OBSERVE, testid)
    state = page.get_by_test_id("conversation-state")
    expect(state).to_be_hidden()
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)
    expect(state).to_be_visible()
    return state


def speak_one_turn(page: Any, state: Any) -> None:
    """The tone makes the user speak; muting ends the turn; the reply plays out."""
    expect(state).to_have_attribute("data-state", "user-speaking", timeout=10000)
    expect(state).to_have_text("You are speaking")
    page.get_by_test_id("mic-toggle").click()  # sends audio_end: the assistant thinks
    expect(page.locator("[data-testid=transcript] .line.model.final")).to_have_count(
        1, timeout=15000
    )
    wait_for_js(page, "window.sharePage.player.speaking === false")
    expect(state).to_have_attribute("data-state", "listening", timeout=10000)
    expect(state).to_have_text("Listening")


def type_one_turn(page: Any, state: Any) -> None:
    """A typed turn: thinking, speaking, listening."""
    page.get_by_test_id("text-input").fill("What do you see?")
    page.get_by_test_id("send-text").click()
    expect(page.locator("[data-testid=transcript] .line.model.final")).to_have_count(
        2, timeout=15000
    )
    expect(state).to_have_attribute("data-state", "listening", timeout=10000)


def check_quiet_notice(page: Any, text: str) -> None:
    """``text`` as the polite notice; the status is live and no error is shown."""
    notice = page.get_by_test_id("notice")
    expect(notice).to_have_text(text, timeout=15000)
    assert notice.get_attribute("role") == "status"
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)
    expect(page.get_by_test_id("error-details")).to_be_hidden()


def test_a_spoken_and_a_typed_turn_go_through_the_states(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    e2e_standin.behaviour.reply_delay_s = 0.3  # the assistant thinks a little
    state = start_session(page, daphne_server)
    speak_one_turn(page, state)
    voice = ["listening", "user-speaking", "thinking", "speaking", "listening"]
    assert seen(page, "conversation-state")[-5:] == voice
    # The screen's keyframes follow: short while someone spoke, long once all listen.
    assert True in page.evaluate("window.sharePage.screen.ticks.map(t => t.speaking)")
    assert page.evaluate("window.sharePage.screen.speaking") is False
    type_one_turn(page, state)
    assert seen(page, "conversation-state")[-8:] == [*voice, "thinking", "speaking", "listening"]
    history = page.evaluate("window.sharePage.states.history")
    assert history == [*voice, "thinking", "speaking", "listening"]

    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ended", timeout=10000)
    expect(state).to_be_hidden()


def test_a_hand_over_and_a_reconnect_are_quiet_notices(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    e2e_standin.behaviour.silence_rms = 1e9  # the tone gets no reply
    state = start_session(page, daphne_server)
    # Speech the model takes no turn for: thinking lapses back to listening.
    page.evaluate("window.sharePage.states.thinkingLapseMs = 300")
    expect(state).to_have_attribute("data-state", "user-speaking", timeout=10000)
    page.get_by_test_id("mic-toggle").click()
    expect(state).to_have_attribute("data-state", "listening", timeout=5000)
    assert seen(page, "conversation-state")[-3:] == ["user-speaking", "thinking", "listening"]

    e2e_standin.go_away(1.0)  # the model service will close this connection
    check_quiet_notice(page, HANDED_OVER)
    assert page.evaluate("window.sharePage.stats.handovers") == 1

    e2e_standin.disconnect(code=1011, reason="Internal error")  # resumed with its handle
    check_quiet_notice(page, RESUMED)
    statuses = seen(page, "status")
    assert "error" not in statuses, statuses
    assert statuses[-1] == "live"

    # The conversation goes on after both.
    page.get_by_test_id("text-input").fill("Still there?")
    page.get_by_test_id("send-text").click()
    expect(page.locator("[data-testid=transcript] .line.model.final")).to_have_count(
        1, timeout=15000
    )
    expect(page.get_by_test_id("conversation-state")).to_have_attribute(
        "data-state", "listening", timeout=10000
    )
    assert seen(page, "conversation-state")[-3:] == ["thinking", "speaking", "listening"]
