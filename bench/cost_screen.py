"""What the cost benchmark shows and says: the shared screen, the spoken questions, and how
a frame that reached the stand-in is matched to the screen change it shows.

The share page shares its own tab (Chromium's tab capture); a full-window overlay holds a
document, so the page's own changes (transcript, stats) never show. On the ``active``
screen the document changes every few seconds, a scroll or a typed line in turn. Each
change also sets an 8-bit marker in the top-left corner (eight 40 px squares, black for 1):
the bench reads it back from every frame the stand-in received, so a frame is matched to
the change it shows, not to the time it came. The marker alone is far too small for
change detection to send a frame for it. A scroll moves the document; a typed line is
added to an editor pane at the bottom, which keeps its last three lines.
"""

from __future__ import annotations

import io
import math
import wave
from pathlib import Path

import numpy as np
from PIL import Image

MARKER_BITS = 8
MARKER_PX = 40  # side of one marker square, in CSS pixels of the 1280-px-wide page
VIEWPORT = {"width": 1280, "height": 720}
QUESTION_AT = (1 / 12, 1 / 3, 7 / 12, 5 / 6)  # when the user asks, as shares of the session
QUESTION_S = 2.5  # each question: bursts of tone, as speech, for this long
FIRST_CHANGE_S, CHANGE_EVERY_S = 3.0, 4.0  # the active screen's changes: about this often


def change_times(seconds: float) -> list[float]:
    """When the active screen changes (seconds into the session): every 3 to 5 s, the
    spacing spread evenly (golden-ratio steps) so that changes fall at every phase of the
    page's ticks; none in the last two seconds."""
    times, at, index = [], FIRST_CHANGE_S, 1
    while at <= seconds - 2:
        times.append(at)
        index += 1
        at += CHANGE_EVERY_S - 1 + 2 * ((index * 0.6180339887) % 1)
    return times


RATE = 48000

PARAGRAPH = (
    "The quarterly report lists every deployment of the assistant, the sessions it served "
    "and the time each team spent with it. Reviewers read the transcript of each session "
    "and the notes the model saved, then mark what needs a follow-up before the next review."
)

# window.benchScreen.install(kind) covers the page with the document; change(index) makes
# change number `index` (a scroll for even ones, a typed line for odd ones), sets the marker
# and returns the time (ms since the epoch) it was made.
SCREEN_JS = """
(() => {
  const BITS = %(bits)d, SIDE = %(side)d;
  const LINES = [
    "git commit -m 'Bill frames like the service'",
    "grep -c total_tokens exports/sessions.csv",
    "for turn in turns: context += turn.audio",
    "make bench-cost BENCH_ARGS='--seconds 180'",
    "Dear team, the review moves to Thursday.",
    "=SUM(B2:B31) / COUNT(A2:A31)",
  ];
  const screen = {};
  screen.install = (paragraph) => {
    const cover = document.createElement("div");
    cover.id = "bench-screen";
    // pointer-events:none: the page's own buttons under it still take the bench's clicks.
    cover.style.cssText = "position:fixed;inset:0;z-index:2147483647;background:#fff;" +
      "color:#111;font:20px/1.5 serif;overflow:hidden;padding:0 48px 0 380px;" +
      "pointer-events:none";
    const doc = document.createElement("div");
    for (let i = 0; i < 60; i += 1) {
      const p = document.createElement("p");
      p.textContent = `${i + 1}. ${paragraph}`;
      doc.append(p);
    }
    cover.append(doc);
    const typed = document.createElement("div");  // an editor pane the scroll leaves alone
    typed.style.cssText = "position:absolute;left:0;right:0;bottom:0;height:170px;" +
      "background:#f4f4f4;border-top:2px solid #999;padding:8px 48px;overflow:hidden;" +
      "font:bold 28px/1.4 monospace;color:#000";
    cover.append(typed);
    const marker = document.createElement("div");
    marker.style.cssText = `position:fixed;left:0;top:0;display:flex;z-index:2147483647`;
    for (let bit = 0; bit < BITS; bit += 1) {
      const square = document.createElement("div");
      square.style.cssText = `width:${SIDE}px;height:${SIDE}px;background:#fff`;
      marker.append(square);
    }
    cover.append(marker);
    document.body.append(cover);
    screen.doc = doc;
    screen.typed = typed;
    screen.squares = [...marker.children];
  };
  screen.change = (index) => {
    if (index %% 2 === 0) {
      screen.doc.style.transform = `translateY(-${(index / 2) * 240 %% 2400}px)`;
    } else {
      const line = document.createElement("div");
      line.textContent = `${index}> ${LINES[(index - 1) / 2 %% LINES.length]}`;
      screen.typed.append(line);
      while (screen.typed.children.length > 3) screen.typed.firstElementChild.remove();
    }
    screen.squares.forEach((square, bit) => {
      square.style.background = (index >> bit) & 1 ? "#000" : "#fff";
    });
    return Date.now();
  };
  screen.hidePage = () => {
    for (const element of document.body.children) {
      if (element.id !== "bench-screen") element.style.display = "none";
    }
  };
  window.benchScreen = screen;
})();
""" % {"bits": MARKER_BITS, "side": MARKER_PX}  # noqa: UP031 - the JS has its own braces


def marker_of(jpeg: bytes) -> int | None:
    """The change number a frame shows (None if its corner holds no marker)."""
    image = Image.open(io.BytesIO(jpeg)).convert("L")
    scale = image.width / VIEWPORT["width"]
    pixels = np.asarray(image, dtype=np.float64)
    value = 0
    for bit in range(MARKER_BITS):
        centre_x, centre_y, half = (bit + 0.5) * MARKER_PX * scale, MARKER_PX / 2 * scale, 0.25
        box = pixels[
            round(centre_y - half * MARKER_PX * scale) : round(centre_y + half * MARKER_PX * scale),
            round(centre_x - half * MARKER_PX * scale) : round(centre_x + half * MARKER_PX * scale),
        ]
        level = float(box.mean()) if box.size else 128.0
        if 64 < level < 192:
            return None  # neither black nor white: not a marker square
        value |= (level <= 64) << bit
    return value


def write_questions_wav(path: Path, seconds: float) -> Path:
    """The microphone: silence with a spoken question (300 ms tone bursts) at each of
    QUESTION_AT, for a session of ``seconds``; a little longer, so it does not loop."""
    total = round((seconds + 30) * RATE)
    samples = np.zeros(total, dtype=np.float64)
    for share in QUESTION_AT:
        start = round(share * seconds * RATE)
        count = round(QUESTION_S * RATE)
        t = np.arange(count) / RATE
        phase = t % 0.35  # 250 ms of tone, 100 ms of silence, 10 ms ramps
        ramp = np.minimum(1.0, np.minimum(phase, 0.25 - phase) / 0.01)
        gain = np.where(phase >= 0.25, 0.0, ramp)
        samples[start : start + count] = 0.5 * gain * np.sin(2 * math.pi * 440 * t)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


def change_delays(
    changes: list[tuple[int, float]], frames: list[tuple[float, bytes]]
) -> list[float | None]:
    """For each change (index, epoch s), the seconds until a frame showing it (or a later
    change) reached the stand-in; None if none did."""
    shown = [(at, marker_of(data)) for at, data in frames]
    delays: list[float | None] = []
    for index, made_at in changes:
        arrivals = [
            at for at, mark in shown if mark is not None and mark >= index and at >= made_at
        ]
        delays.append(min(arrivals) - made_at if arrivals else None)
    return delays
