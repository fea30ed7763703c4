"""What the share page shows and does on the server's errors, statuses and turn ends, in
Chromium: the page's plain sentence as the headline and the codes in a collapsed details
line; one quiet notice when the model connection had to start afresh; a refused turn as
a notice; an interrupted reply flushed once.
"""

import json
from typing import Any

from playwright.sync_api import expect

from standin import ThreadedStandIn
from tests.e2e.conftest import ARTIFACTS, interrupt_a_long_reply, log_in, wait_for_js

RESTARTED = "The model connection was restarted; it has the recent conversation."


def watch_messages(page: Any, kind: str) -> list[dict[str, Any]]:
    """The JSON messages of type ``kind`` the page receives, as they come."""
    messages: list[dict[str, Any]] = []

    def received(payload: str | bytes) -> None:
        if isinstance(payload, str) and json.loads(payload).get("type") == kind:
            messages.append(json.loads(payload))

    page.on("websocket", lambda socket: socket.on("framereceived", received))
    return messages


def start_typing(page: Any, base_url: str) -> Any:
    """Log in as alice, start a session in text mode and mute the mic; the status line."""
    log_in(page, base_url, "alice", "alice-pass-123")
    page.select_option("#mode", "text")
    page.get_by_test_id("start").click()
    status = page.get_by_test_id("status")
    expect(status).to_have_attribute("data-state", "live", timeout=15000)
    page.get_by_test_id("mic-toggle").click()
    return status


def test_a_refused_start_shows_the_sentence_and_keeps_the_codes_in_details(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    e2e_standin.behaviour.refuse_connections = True  # every setup is closed with 1011
    errors = watch_messages(page, "error")
    log_in(page, daphne_server, "alice", "alice-pass-123")
    page.get_by_test_id("start").click()
    status = page.get_by_test_id("status")
    expect(status).to_have_attribute("data-state", "error", timeout=15000)
    wait_for_js(page, "window.sharePage.socket === null")  # the server closed the socket

    assert len(errors) == 1, errors
    error = errors[0]
    assert error["code"] == "model_error"
    assert error["upstream_code"] == 1011
    # The page's own sentence for the code (static/js/messages.js); the server's in details.
    expect(status).to_have_text(
        "Error: The model service had an internal error. Try again in a minute."
    )
    details = page.get_by_test_id("error-details")
    expect(details).to_be_visible()
    assert details.get_attribute("open") is None  # collapsed: the sentence is the headline
    details.locator("summary").click()
    shown = details.locator("[data-error-detail]")
    expect(shown).to_contain_text(f"model_error · {error['message']}")
    expect(shown).to_contain_text(f"model service closed 1011: {error['upstream_reason']}")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "share-page-error.png"))

    # Nothing is left running, and the page may start again.
    assert page.evaluate("[window.sharePage.mic, window.sharePage.screen]") == [None, None]
    expect(page.get_by_test_id("start")).to_be_enabled()
    expect(page.get_by_test_id("mic-toggle")).to_be_disabled()
    e2e_standin.behaviour.refuse_connections = False
    page.get_by_test_id("start").click()
    expect(status).to_have_attribute("data-state", "live", timeout=15000)
    expect(details).to_be_hidden()


def test_a_restarted_model_connection_is_one_quiet_notice(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    e2e_standin.behaviour.silence_rms = 1e9  # the tone gets no reply: only typed turns
    status = start_typing(page, daphne_server)
    page.get_by_test_id("text-input").fill("Remember this")
    page.get_by_test_id("send-text").click()
    transcript = page.get_by_test_id("transcript")
    expect(transcript.locator(".line.model.final")).to_have_count(1, timeout=15000)

    # The connection drops and the service refuses to resume it: a fresh session.
    e2e_standin.behaviour.refuse_resumption = True
    e2e_standin.disconnect(connection=0, code=1011, reason="Internal error")
    notice = page.get_by_test_id("notice")
    expect(notice).to_have_text(RESTARTED, timeout=15000)
    expect(status).to_have_text("Live")
    expect(page.get_by_test_id("error-details")).to_be_hidden()
    fresh = e2e_standin.connections[-1]
    assert fresh.setup is not None
    assert fresh.resumed_from is None

    # The conversation goes on over the fresh connection, which was given the transcript.
    page.get_by_test_id("text-input").fill("Still there?")
    page.get_by_test_id("send-text").click()
    expect(transcript.locator(".line.model.final")).to_have_count(2, timeout=15000)
    assert e2e_standin.connections[-1].texts == ["Remember this", "Still there?"]
    expect(notice).to_have_text(RESTARTED)
    expect(status).to_have_attribute("data-state", "live")


def test_a_refused_turn_is_told_as_a_notice(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    e2e_standin.behaviour.silence_rms = 1e9  # the tone gets no reply: only typed turns
    trigger = e2e_standin.behaviour.refuse_trigger
    assert trigger, "the stand-in refuses a turn whose text holds refuse_trigger"
    turns = watch_messages(page, "turn_complete")
    status = start_typing(page, daphne_server)

    page.get_by_test_id("text-input").fill(f"{trigger} tell me a secret")
    page.get_by_test_id("send-text").click()
    notice = page.get_by_test_id("notice")
    expect(notice).not_to_be_empty(timeout=15000)
    refused = [turn for turn in turns if turn.get("reason")]
    assert len(refused) == 1, turns
    assert refused[0]["reason"] == "PROHIBITED_INPUT_CONTENT"
    expect(notice).to_have_text(refused[0]["message"])
    expect(status).to_have_attribute("data-state", "live")  # the session goes on


def test_an_interrupted_reply_is_flushed_once(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    e2e_standin.behaviour.silence_rms = 1e9  # the tone gets no reply: only typed turns
    turns = watch_messages(page, "turn_complete")
    log_in(page, daphne_server, "alice", "alice-pass-123")
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)

    # A long reply piles up in the player; then the model is interrupted:
    # `interrupted`, then the turn's `turn_complete` saying so.
    interrupt_a_long_reply(page, e2e_standin)
    wait_for_js(page, "window.sharePage.player.flushes >= 1", timeout=5000)
    e2e_standin.behaviour.reply_audio_s = 0.6
    e2e_standin.behaviour.chunk_interval_s = 0.0
    expect(page.locator("[data-testid=transcript] .line.model.final")).to_have_count(
        1, timeout=10000
    )

    # The next reply plays; a second flush, had one been sent, would be acknowledged
    # before it (the worklet answers in order).
    page.get_by_test_id("text-input").fill("Go on")
    page.get_by_test_id("send-text").click()
    wait_for_js(page, "window.sharePage.player.speaking", timeout=15000)
    assert page.evaluate("window.sharePage.player.flushes") == 1
    interrupted = [turn for turn in turns if turn.get("interrupted")]
    assert len(interrupted) == 1, turns  # it came, before the next reply
