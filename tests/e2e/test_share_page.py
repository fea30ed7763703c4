"""The share page in headless Chromium against Daphne, with the stand-in upstream."""

from typing import Any

from playwright.sync_api import expect

from sessions_app.models import LiveSession
from standin import ThreadedStandIn
from tests.e2e.conftest import ARTIFACTS, log_in


def narrow_window_checks(page: Any) -> None:
    """A narrow window: nothing scrolls sideways and every control stays on screen."""
    page.set_viewport_size({"width": 380, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for test_id in ("start", "stop", "mic-toggle", "text-input", "send-text", "status"):
        box = page.get_by_test_id(test_id).bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 380
    page.screenshot(path=str(ARTIFACTS / "share-page-narrow.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 720})


def test_page_starts_a_session_and_shows_the_stored_transcript(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    before = len(e2e_standin.connections)
    # The fake microphone beeps: the model answers only the typed question here.
    e2e_standin.behaviour.analyse_audio = False
    log_in(page, daphne_server, "alice", "alice-pass-123")
    page.select_option("#mode", "text")
    page.get_by_test_id("start").click()
    status = page.get_by_test_id("status")
    expect(status).to_have_attribute("data-state", "live", timeout=10000)

    page.get_by_test_id("text-input").fill("What is on my screen?")
    page.get_by_test_id("send-text").click()
    transcript = page.get_by_test_id("transcript")
    model_line = transcript.locator(".line.model.final")
    expect(model_line).to_have_count(1, timeout=10000)

    connection = e2e_standin.connections[before]
    assert connection.texts == ["What is on my screen?"]
    # Text mode: the model speaks (every Live model does) and the page shows its words.
    reply = "".join(
        message["serverContent"]["outputTranscription"]["text"]
        for message in connection.replies
        if "outputTranscription" in message.get("serverContent", {})
    )
    expect(transcript.locator(".line.user .text")).to_have_text("What is on my screen?")
    expect(model_line.locator(".text")).to_have_text(reply)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "share-page-text.png"))

    narrow_window_checks(page)

    # The user stops sharing from the browser's own control: the session goes on.
    page.evaluate("window.sharePage.screen.tracks[0].dispatchEvent(new Event('ended'))")
    expect(page.get_by_test_id("notice")).to_contain_text("audio only")
    expect(status).to_have_attribute("data-state", "live")

    page.get_by_test_id("stop").click()
    expect(status).to_have_attribute("data-state", "ended", timeout=10000)
    session = LiveSession.objects.get()
    assert session.user == user
    assert session.status == LiveSession.Status.ENDED
    assert list(session.entries.values_list("role", "source", "text")) == [
        ("user", "typed", "What is on my screen?"),
        ("model", "text-reply", reply.strip()),
    ]
