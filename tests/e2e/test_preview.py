"""The share page's preview and pause, in Chromium: the preview shows the very frame the
model got last (its bytes, its decoded pixels, its real size and aspect ratio), and while
sharing is paused no frame goes out at all (the microphone goes on); resuming sends one
at once."""

import base64
import io
import re
import time
from typing import Any

import numpy as np
from PIL import Image
from playwright.sync_api import expect

from standin import ThreadedStandIn
from tests.e2e.conftest import log_in, wait_for_js

PAUSE_S = 3.0  # how long the page stays paused: several ticks at 1 frame/s

# The preview's image as the page decoded it: RGBA bytes (base64) and its natural size.
SHOWN_PIXELS = """() => {
  const img = document.querySelector("[data-testid=preview] img");
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let text = "";
  for (let i = 0; i < rgba.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, rgba.subarray(i, i + 0x8000));
  }
  return {
    rgba: btoa(text), width: img.naturalWidth, height: img.naturalHeight,
    shownWidth: img.clientWidth, shownHeight: img.clientHeight,
    src: img.src, complete: img.complete,
  };
}"""

# The bytes the preview made its image from (base64).
PREVIEW_BYTES = """() => {
  const bytes = new Uint8Array(window.sharePage.preview.frame.jpeg);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}"""


def preview_bytes(page: Any) -> bytes:
    """The JPEG the preview shows."""
    return base64.b64decode(page.evaluate(PREVIEW_BYTES))


def start_sharing(page: Any, base_url: str, standin: ThreadedStandIn) -> None:
    """Log in, start a voice session and wait for a few frames at the stand-in."""
    log_in(page, base_url, "alice", "alice-pass-123")
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)
    standin.wait_for(lambda: len(standin.connections[-1].frames) >= 2, timeout=15)


def pause(page: Any) -> None:
    """Press the pause toggle; the page says it is paused."""
    toggle = page.get_by_test_id("pause-share")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(toggle).to_have_text("Pause sharing")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(toggle).to_have_text("Resume sharing")
    preview = page.get_by_test_id("preview")
    expect(preview).to_have_attribute("data-paused", "true")
    expect(preview.get_by_test_id("preview-mark")).to_have_attribute("data-mark", "paused")


def settled_last_frame(page: Any, standin: ThreadedStandIn) -> bytes:
    """Once the page is paused: the stand-in's last frame, which the preview shows."""
    shown = preview_bytes(page)
    standin.wait_for(lambda: standin.connections[-1].frames[-1][1] == shown, timeout=10)
    return shown


def check_preview_shows(page: Any, jpeg: bytes) -> None:
    """The preview's image decodes to ``jpeg``'s pixels, at its size and aspect ratio."""
    decoded = Image.open(io.BytesIO(jpeg)).convert("RGB")
    width, height = decoded.size
    wait_for_js(page, "document.querySelector('[data-testid=preview] img').complete")
    shown = page.evaluate(SHOWN_PIXELS)
    assert shown["src"].startswith("blob:")
    assert (shown["width"], shown["height"]) == (width, height)
    rgba = np.frombuffer(base64.b64decode(shown["rgba"]), dtype=np.uint8)
    pixels = rgba.reshape(height, width, 4)[:, :, :3].astype(np.int16)
    assert np.abs(pixels - np.asarray(decoded, dtype=np.int16)).mean() < 1.0
    # Shown at the frame's own aspect ratio, and the size it states is the real one.
    assert abs(shown["shownWidth"] / shown["shownHeight"] - width / height) < 0.02
    preview = page.get_by_test_id("preview")
    size = f"{width} \N{MULTIPLICATION SIGN} {height} px"
    expect(preview.get_by_test_id("preview-size")).to_have_text(size)
    assert preview.get_attribute("data-width") == str(width)
    assert preview.get_attribute("data-height") == str(height)


def check_paused_sends_no_frame(page: Any, standin: ThreadedStandIn) -> None:
    """Paused for a few ticks: no frame captured or sent, while the mic goes on; the age
    shown grows."""
    frames = len(standin.connections[-1].frames)
    audio = len(standin.connections[-1].audio)
    counters = page.evaluate("[window.sharePage.screen.sent, window.sharePage.screen.ticks.length]")
    age = page.get_by_test_id("preview-age")
    expect(age).to_have_text(re.compile(r"^\d+ s ago$"))
    first_age = age.inner_text()
    time.sleep(PAUSE_S)
    assert len(standin.connections[-1].frames) == frames
    assert page.evaluate("window.sharePage.screen.refresh()") is False  # speech: no frame
    assert (
        page.evaluate("[window.sharePage.screen.sent, window.sharePage.screen.ticks.length]")
        == counters
    )
    assert len(standin.connections[-1].frames) == frames
    assert len(standin.connections[-1].audio) > audio  # pausing holds the frames only
    assert age.inner_text() != first_age


def resume(page: Any, standin: ThreadedStandIn) -> None:
    """Resume: one frame goes out at once, by the resume itself, not a later tick."""
    frames = len(standin.connections[-1].frames)
    before = page.evaluate(
        "[window.sharePage.screen.refreshes, window.sharePage.screen.ticks.length]"
    )
    toggle = page.get_by_test_id("pause-share")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(toggle).to_have_text("Pause sharing")
    wait_for_js(page, f"window.sharePage.screen.refreshes === {before[0] + 1}", timeout=5000)
    standin.wait_for(lambda: len(standin.connections[-1].frames) > frames, timeout=5)
    mark = page.get_by_test_id("preview-mark")
    expect(mark).to_have_attribute("data-mark", re.compile("^(sent|unchanged)$"))


def test_the_preview_is_the_last_frame_sent_and_pause_sends_nothing(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    e2e_standin.behaviour.silence_rms = 1e9  # the tone gets no reply
    preview = page.get_by_test_id("preview")
    start_sharing(page, daphne_server, e2e_standin)
    expect(preview.get_by_test_id("preview-mark")).to_have_attribute("data-mark", "sent")
    pause(page)
    check_preview_shows(page, settled_last_frame(page, e2e_standin))
    check_paused_sends_no_frame(page, e2e_standin)
    resume(page, e2e_standin)

    # Frames the ticks skip show as "unchanged" (no change is ever enough here).
    page.evaluate("window.sharePage.screen.changeThreshold = 2")
    expect(preview.get_by_test_id("preview-mark")).to_have_attribute(
        "data-mark", "unchanged", timeout=5000
    )
    expect(preview.get_by_test_id("preview-mark")).to_have_text("unchanged")

    # Paused again, the preview is again what the model got last.
    pause(page)
    check_preview_shows(page, settled_last_frame(page, e2e_standin))
