"""What the stand-in bills: the token rates, the session's context as a ledger, compression.

Like the real service, every turn bills the whole context as it stands before the turn
runs (``promptTokenCount``): the system instruction, every second of the user's audio
(silence too), every frame that counted toward the context, every text (the user's, and
seeded history of any role) and the model's own earlier replies (the audio actually
sent), since the session began; a session resumption handle carries the context over.
The context is kept as :class:`Segment` s, a new one at the start of each user turn (an
utterance, a user text or user ``clientContent`` turn, an activityStart): the sliding
window of ``contextWindowCompression`` drops whole oldest segments, never the newest one
and never the system instruction ("Context window will always be cut at start of USER
role turn. System instructions ... will always stay at the beginning of context window",
google-genai ``types.SlidingWindow``).

Rounding, so a test can state a figure exactly: AUDIO = ``round(32 * seconds)`` over the
exact (fractional) sum of the audio seconds in the kept context (Python's round, half to
even), IMAGE = the sum of each frame's tokens, TEXT = the sum of ``ceil(len(text) / 4)``
per text item (each system instruction part, each text).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

logger = logging.getLogger(__name__)

# Rates. Sources: ai.google.dev, Live API capabilities guide and "Understand and count
# tokens" (audio 32 tokens per second, input and output alike; an image 258 tokens; text
# about 4 characters a token); google-genai ``types.MediaResolution`` (in the virtualenv:
# LOW "64 tokens", MEDIUM "256 tokens", HIGH "zoomed reframing with 256 tokens");
# /work/shared/design/GEMINI_LIVE.md (a frame about 258 tokens at the default resolution,
# about 64-66 at MEDIA_RESOLUTION_LOW: we bill 66, the figure the service reports).
AUDIO_TOKENS_PER_S = 32
DEFAULT_FRAME_TOKENS = 258  # no mediaResolution in the setup (or UNSPECIFIED)
FRAME_TOKENS: dict[str | None, int] = {
    None: DEFAULT_FRAME_TOKENS,
    "MEDIA_RESOLUTION_LOW": 66,
    "MEDIA_RESOLUTION_MEDIUM": 256,
    "MEDIA_RESOLUTION_HIGH": 256,
}
CHARS_PER_TEXT_TOKEN = 4
# Compression defaults (ai.google.dev "Session management with Live API"; the SDK's
# SlidingWindow.target_tokens: "If not set, trigger_tokens/2 is assumed"): the trigger is
# 80% of the model's context window, the target half the trigger.
TRIGGER_SHARE = Fraction(4, 5)


def audio_tokens(seconds: Fraction) -> int:
    """Tokens of ``seconds`` of audio (input or output)."""
    return round(AUDIO_TOKENS_PER_S * seconds)


def frame_tokens(media_resolution: str | None) -> int:
    """Tokens of one frame at a connection's media resolution (None: the default)."""
    return FRAME_TOKENS.get(media_resolution, DEFAULT_FRAME_TOKENS)


def text_tokens(text: str) -> int:
    """Tokens of one text item."""
    return math.ceil(len(text) / CHARS_PER_TEXT_TOKEN)


@dataclass(frozen=True)
class Segment:
    """What one user turn (and the replies to it) added to the context."""

    audio_s: Fraction = Fraction(0)
    image_tokens: int = 0
    text_tokens: int = 0

    def __add__(self, other: Segment) -> Segment:
        return Segment(
            self.audio_s + other.audio_s,
            self.image_tokens + other.image_tokens,
            self.text_tokens + other.text_tokens,
        )

    def __sub__(self, other: Segment) -> Segment:
        return Segment(
            self.audio_s - other.audio_s,
            self.image_tokens - other.image_tokens,
            self.text_tokens - other.text_tokens,
        )

    @property
    def empty(self) -> bool:
        """Whether nothing was added to it yet."""
        return self == Segment()


@dataclass(frozen=True)
class Prompt:
    """A turn's prompt tokens by modality; ``count`` (promptTokenCount) is their sum."""

    text: int = 0
    audio: int = 0
    image: int = 0

    @property
    def count(self) -> int:
        """promptTokenCount."""
        return self.text + self.audio + self.image

    def details(self) -> list[dict[str, Any]]:
        """promptTokensDetails: TEXT, AUDIO and IMAGE entries, zero ones left out."""
        entries = (("TEXT", self.text), ("AUDIO", self.audio), ("IMAGE", self.image))
        return [{"modality": name, "tokenCount": count} for name, count in entries if count]


@dataclass(frozen=True)
class Window:
    """A sliding window: past ``trigger_tokens`` before a turn, cut to ``target_tokens``."""

    trigger_tokens: int
    target_tokens: int


class Ledger:
    """A session's context: the system instruction's tokens and one segment per user turn.

    ``window`` (None: no ``contextWindowCompression`` in the setup) compresses before each
    turn. Without it nothing is dropped; the real service would close the session once
    the model's context window is full, which the stand-in leaves out.
    """

    def __init__(self) -> None:
        self.system_tokens = 0
        self.window: Window | None = None
        self.segments: list[Segment] = []

    def begin_turn(self) -> None:
        """A user turn starts: a new segment, unless the newest one is still empty."""
        if not self.segments or not self.segments[-1].empty:
            self.segments.append(Segment())

    def add_audio(self, seconds: Fraction) -> None:
        """User audio (silence too) or reply audio the model sent."""
        self._grow(Segment(audio_s=seconds))

    def add_image(self, tokens: int) -> None:
        """A frame that counts toward the context."""
        self._grow(Segment(image_tokens=tokens))

    def add_text(self, text: str) -> None:
        """A user text, or seeded history of any role."""
        self._grow(Segment(text_tokens=text_tokens(text)))

    def before_turn(self) -> Prompt:
        """Compress if the window says so, then the prompt of the turn about to run."""
        total = sum(self.segments, Segment())
        window = self.window
        if window is None or self._prompt(total).count <= window.trigger_tokens:
            return self._prompt(total)
        dropped = 0
        while len(self.segments) > 1 and self._prompt(total).count > window.target_tokens:
            total -= self.segments.pop(0)
            dropped += 1
        logger.info("Context compressed: %s oldest segments dropped", dropped)
        return self._prompt(total)

    def _prompt(self, total: Segment) -> Prompt:
        """The prompt of a context holding ``total`` besides the system instruction."""
        return Prompt(
            text=self.system_tokens + total.text_tokens,
            audio=audio_tokens(total.audio_s),
            image=total.image_tokens,
        )

    def _grow(self, more: Segment) -> None:
        """Add ``more`` to the newest segment (the first one, if there is none)."""
        if not self.segments:
            self.segments.append(Segment())
        self.segments[-1] += more
