"""The share page acknowledges the model speech it receives, so a long reply arrives whole.

The server keeps at most SHARE_DOWNSTREAM_WINDOW_S (5 s) of speech unacknowledged; the
stand-in sends a 12.2 s reply at once. Headless Chromium on the real page: every frame
arrives, the page's acks count them every 4 frames, and the last odd frames are acked
by the page's timer.
"""

import json
import time
from typing import Any

from playwright.sync_api import expect

from standin import ThreadedStandIn
from tests.e2e.conftest import log_in

REPLY_S = 12.2  # 122 frames of 0.1 s: longer than the window, and not a multiple of 4
REPLY_FRAMES = 122


class Wire:
    """The share socket's frames as the page sent and received them."""

    def __init__(self) -> None:
        self.audio_frames = 0
        self.audio_bytes = 0
        self.acks: list[int] = []

    def watch(self, socket: Any) -> None:
        """Follow one WebSocket of the page."""
        socket.on("framereceived", self.received)
        socket.on("framesent", self.sent)

    def received(self, payload: str | bytes) -> None:
        """Count model audio frames (kind byte 0x01)."""
        if isinstance(payload, bytes) and payload[:1] == b"\x01":
            self.audio_frames += 1
            self.audio_bytes += len(payload) - 1

    def sent(self, payload: str | bytes) -> None:
        """Keep the counts of the page's acks."""
        if isinstance(payload, str) and '"ack"' in payload:
            self.acks.append(json.loads(payload)["audio"])


def until(page: Any, done: Any, wire: Wire, timeout: float = 20.0) -> None:
    """Let the page run (its socket events are delivered meanwhile) until ``done()``."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{wire.audio_frames} frames arrived, acks {wire.acks[-3:]}")
        page.wait_for_timeout(50)


def test_the_page_acks_speech_so_a_reply_longer_than_the_window_arrives_whole(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    e2e_standin.behaviour.analyse_audio = False  # only the typed turn gets a reply
    e2e_standin.behaviour.reply_audio_s = REPLY_S
    wire = Wire()
    page.on("websocket", wire.watch)
    log_in(page, daphne_server, "alice", "alice-pass-123")
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)
    page.get_by_test_id("text-input").fill("Tell me everything")
    page.get_by_test_id("send-text").click()

    until(
        page, lambda: wire.audio_frames >= REPLY_FRAMES and wire.acks[-1:] == [REPLY_FRAMES], wire
    )
    assert wire.audio_frames == REPLY_FRAMES
    assert wire.audio_bytes == round(REPLY_S * 24000) * 2  # all of it, nothing dropped
    assert wire.acks == [*range(4, REPLY_FRAMES, 4), REPLY_FRAMES]  # the tail by the timer
