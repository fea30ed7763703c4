"""Text mode in headless Chromium: the reply comes as text only, and a typed message goes
out with a fresh frame of the screen, even when the screen has not changed."""

from typing import Any

from playwright.sync_api import expect

from sessions_app.models import LiveSession
from standin import ThreadedStandIn
from tests.e2e.conftest import ARTIFACTS, SHARE_THIS_TAB, log_in, wait_for_js
from tests.leaks import SCANNER

# With a tick every 5 s (the lowest rate) the page can be caught between ticks: a frame
# sent then can only come from ScreenCapture.refresh(). A tick that sends is over once the
# capture time of the last frame sent is its own.
STILL = """(() => {
  const screen = window.sharePage.screen;
  const tick = screen?.ticks.at(-1);
  const now = performance.now();
  const settled = tick && (!tick.sent || screen.lastSentAt === tick.at);
  return settled && now - screen.lastSentAt > 1200 && now - tick.at < 2500;
})()"""


def realtime_kind(message: dict[str, Any]) -> str | None:
    """The field of a realtimeInput message (audio, video, text, audioStreamEnd...)."""
    body = message.get("realtimeInput")
    return next(iter(body)) if isinstance(body, dict) and len(body) == 1 else None


def open_watched_tab(chromium_tab_capture: Any) -> tuple[Any, Any, list[bytes]]:
    """A page that shares its own tab; returns its context, the page and the list the
    binary frames it receives over its WebSockets are collected in."""
    context = chromium_tab_capture.new_context(
        viewport={"width": 1280, "height": 720}, permissions=["microphone"]
    )
    context.add_init_script(SHARE_THIS_TAB)
    page = context.new_page()
    binary_frames: list[bytes] = []

    def watch(socket: Any) -> None:
        def received(payload: str | bytes) -> None:
            SCANNER.scan("ws", payload)
            if isinstance(payload, bytes):
                binary_frames.append(payload)

        socket.on("framereceived", received)

    page.on("websocket", watch)
    return context, page, binary_frames


def check_setup(connection: Any) -> None:
    """The upstream session asked for audio with its transcription; the text went up."""
    setup = connection.setup
    assert setup is not None
    assert setup["model"] == "models/gemini-3.8-live"
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert "outputAudioTranscription" in setup
    assert connection.texts == ["What is on my screen?"]


def check_reply_shown_as_text(connection: Any, model_line: Any, binary_frames: list) -> str:
    """The reply is shown as text: what the model's speech was transcribed as. Returns it."""
    contents = [m["serverContent"] for m in connection.replies if "serverContent" in m]
    reply = "".join(
        c["outputTranscription"]["text"] for c in contents if "outputTranscription" in c
    )
    spoken = [
        part
        for c in contents
        for part in c.get("modelTurn", {}).get("parts", [])
        if "inlineData" in part
    ]
    assert reply.strip()
    assert spoken, "the model spoke: audio the server must not forward in text mode"
    expect(model_line).to_have_attribute("data-source", "text-reply")
    expect(model_line.locator(".text")).to_have_text(reply.strip())
    assert binary_frames == []
    return reply


def check_fresh_frame_before_text(
    page: Any, connection: Any, videos_before: int, refreshes: int
) -> None:
    """A fresh frame went out right before the text, though nothing had changed."""
    kinds = [realtime_kind(m) for m in connection.messages]
    at = kinds.index("text")
    assert kinds[at - 1] == "video", kinds[at - 5 : at + 1]
    assert kinds[:at].count("video") == videos_before + 1
    assert page.evaluate("window.sharePage.screen.refreshes") == refreshes + 1


def check_stored_text_session(reply: str, frames: int) -> None:
    """The database holds a text-mode session with the typed turn and the text reply."""
    session = LiveSession.objects.get()
    assert session.response_modality == LiveSession.Modality.TEXT
    assert list(session.entries.values_list("role", "source", "text")) == [
        ("user", "typed", "What is on my screen?"),
        ("model", "text-reply", reply.strip()),
    ]
    assert session.frames_received == frames


def test_text_mode_shows_the_reply_as_text_and_sends_a_fresh_frame_first(
    daphne_server: str, chromium_tab_capture: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    e2e_standin.behaviour.silence_rms = 1e9  # the tone gets no reply: one turn, the typed one
    context, page, binary_frames = open_watched_tab(chromium_tab_capture)
    log_in(page, daphne_server, "alice", "alice-pass-123")
    page.select_option("#mode", "text")
    page.select_option("#fps", "0.2")
    page.get_by_test_id("start").click()
    status = page.get_by_test_id("status")
    expect(status).to_have_attribute("data-state", "live", timeout=15000)
    page.get_by_test_id("mic-toggle").click()  # a silent page that holds still
    assert page.evaluate("window.sharePage.player === null")  # no player in text mode

    # The screen has held still for more than a second, and the next tick is seconds away.
    wait_for_js(page, STILL, timeout=20000)
    sent = page.evaluate("window.sharePage.screen.sent")
    e2e_standin.wait_for(lambda: len(e2e_standin.connections[0].frames) == sent, timeout=5)
    videos_before = sum(realtime_kind(m) == "video" for m in e2e_standin.connections[0].messages)
    refreshes = page.evaluate("window.sharePage.screen.refreshes")

    page.get_by_test_id("text-input").fill("What is on my screen?")
    page.get_by_test_id("send-text").click()
    transcript = page.get_by_test_id("transcript")
    model_line = transcript.locator(".line.model.final")
    expect(model_line).to_have_count(1, timeout=15000)

    connection = e2e_standin.connections[0]
    check_setup(connection)
    reply = check_reply_shown_as_text(connection, model_line, binary_frames)
    check_fresh_frame_before_text(page, connection, videos_before, refreshes)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "share-page-text-mode.png"))

    page.get_by_test_id("stop").click()
    expect(status).to_have_attribute("data-state", "ended", timeout=10000)
    assert binary_frames == []
    check_stored_text_session(reply, len(e2e_standin.connections[0].frames))
    context.close()
