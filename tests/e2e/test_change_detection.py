"""Change detection on a screen that holds still: the page shares its own tab."""

from typing import Any

from playwright.sync_api import expect

from standin import ThreadedStandIn
from tests.e2e.conftest import ARTIFACTS, log_in, wait_for_js

# Chromium's fake capture UI always picks the (animated) fake display, so this browser
# runs without it and shares the current tab, which holds still.
SHARE_THIS_TAB = """
const original = navigator.mediaDevices.getDisplayMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getDisplayMedia = (options) =>
  original({...options, preferCurrentTab: true});
"""
WINDOW_S = 20


def check_still_window_sends_few_frames(page: Any) -> None:
    """Twenty ticks (ten seconds at the default 1 frame/s: two ticks a frame) on the still
    page send keyframes alone."""
    # The first frame period after the mute has painted may still send the mute's own
    # change (a tick compares with the last frame sent), and the next one the preview
    # showing that frame (this tab shares itself, preview included; the echo of the echo
    # is far under the threshold); the window starts after both: four ticks.
    painted = page.evaluate(
        "new Promise(done => requestAnimationFrame(() => requestAnimationFrame("
        "() => done(performance.now()))))"
    )
    after = f"(window.sharePage.screen?.ticks ?? []).filter(t => t.at > {painted})"
    still = f"{after}.slice(4)"
    try:
        wait_for_js(
            page,
            f"{still}.length >= {WINDOW_S} || window.sharePage.screen === null",
            timeout=(WINDOW_S + 15) * 1000,
        )
    finally:
        page.screenshot(path=str(ARTIFACTS / "change-detection.png"))
    status = page.get_by_test_id("status").inner_text()
    notice = page.get_by_test_id("notice").inner_text()
    assert page.evaluate("window.sharePage.screen !== null"), f"{status} / {notice}"
    ticks = page.evaluate(f"{still}.slice(0, {WINDOW_S})")
    sent = sum(1 for tick in ticks if tick["sent"])
    assert len(ticks) == WINDOW_S
    # A fixed rate would send a frame every other tick; keyframes alone go out every 60 s
    # (10 s while someone speaks).
    assert sent <= 0.2 * WINDOW_S, ticks
    assert all(tick["keyframe"] for tick in ticks if tick["sent"]), ticks


def check_a_change_is_sent_at_once(page: Any, e2e_standin: ThreadedStandIn) -> None:
    """Change the screen: the first tick that sees it sends it, one or two ticks later,
    unless a frame went out less than a frame period before (then it waits for that).

    A tick samples what the tab capture last delivered, which can lag the paint by a
    frame or so: a tick right after the change may not see it yet (and may send a
    keyframe). The next one, half a second later at 1 frame/s, must see it; if that
    keyframe left less than 0.75 s of a period, it holds the change for the tick after.
    """
    frames_before = len(e2e_standin.connections[-1].frames)
    changed_at = page.evaluate("""() => {
        const cover = document.createElement('div');
        cover.style.cssText = 'position:fixed;inset:0;background:#b4235a;z-index:9';
        document.body.append(cover);
        return performance.now();
    }""")
    after = f"window.sharePage.screen.ticks.filter(t => t.at > {changed_at})"
    wait_for_js(page, f"{after}.length >= 4", timeout=10000)
    ticks = page.evaluate(f"{after}.slice(0, 4)")
    first_seen = next((i for i, tick in enumerate(ticks) if tick["changed"] > 0.5), 4)
    assert first_seen <= 1, ticks  # the capture lags a tick at most
    assert all(tick["changed"] < 0.01 for tick in ticks[:first_seen]), ticks
    seeing = ticks[first_seen:]
    sent = next((i for i, tick in enumerate(seeing) if tick["sent"]), len(seeing))
    assert all(tick["held"] for tick in seeing[:sent]), ticks  # only the period held it
    assert sent <= 1, ticks
    assert not seeing[sent]["keyframe"]
    e2e_standin.wait_for(lambda: len(e2e_standin.connections[-1].frames) > frames_before, timeout=5)


def test_static_screen_sends_few_frames_and_a_change_at_once(
    daphne_server: str, chromium_tab_capture: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    # The stand-in hears only silence, so no reply changes the page while it holds still.
    e2e_standin.behaviour.silence_rms = 1e9
    context = chromium_tab_capture.new_context(
        viewport={"width": 1280, "height": 720}, permissions=["microphone"]
    )
    context.add_init_script(SHARE_THIS_TAB)
    page = context.new_page()
    log_in(page, daphne_server, "alice", "alice-pass-123")
    page.select_option("#mode", "text")
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)
    page.get_by_test_id("mic-toggle").click()  # a silent, still page
    notice = page.get_by_test_id("notice").inner_text()
    assert page.evaluate("window.sharePage.screen !== null"), notice

    check_still_window_sends_few_frames(page)
    check_a_change_is_sent_at_once(page, e2e_standin)
    context.close()
