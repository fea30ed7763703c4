"""Per-connection rate limits on what a browser sends.

Each kind of input has a token bucket: audio in seconds of sound (about twice real time),
frames and typed texts in messages, and every message together. A message over its
limit is dropped; the first drop of a flood gets one ``rate_limited`` warning, and a
flood that goes on for ``flood_close_s`` closes the connection. Separately, a connection
that sends more than ``malformed_per_min`` malformed messages within a minute is closed
(:class:`MalformedBudget`): a browser speaking the protocol never sends one.
"""

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    """What to do with one message."""

    ACCEPT = "accept"
    DROP_AND_WARN = "drop_and_warn"
    DROP = "drop"
    CLOSE = "close"


@dataclass
class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``."""

    rate: float
    burst: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.updated = self.clock()

    def take(self, amount: float = 1.0) -> bool:
        """Spend ``amount`` tokens if there are enough."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens + 1e-9 < amount:
            return False
        self.tokens -= amount
        return True


@dataclass(frozen=True)
class RateLimits:
    """The configured limits of one connection."""

    audio_rate_factor: float = 2.0  # seconds of audio per second
    frames_per_s: float = 4.0
    texts_per_min: int = 30
    messages_per_s: float = 100.0
    flood_close_s: float = 3.0
    malformed_per_min: int = 30  # 0: never close for malformed messages


class ConnectionLimiter:
    """The buckets of one connection and the state of a flood in progress."""

    QUIET_S = 1.0  # a flood is over after this long without a drop

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.audio = TokenBucket(limits.audio_rate_factor, 2 * limits.audio_rate_factor, clock)
        self.frames = TokenBucket(limits.frames_per_s, 2 * limits.frames_per_s, clock)
        per_s = limits.texts_per_min / 60
        self.texts = TokenBucket(per_s, max(1.0, limits.texts_per_min / 6), clock)
        self.messages = TokenBucket(limits.messages_per_s, 2 * limits.messages_per_s, clock)
        self.dropped = 0
        self._flood_started: float | None = None
        self._last_drop = 0.0

    def check(self, kind: str, amount: float = 1.0) -> Verdict:
        """Judge one message: ``kind`` is audio (amount in seconds), frame, text or other."""
        allowed = self.messages.take()
        if allowed and kind == "audio":
            allowed = self.audio.take(amount)
        elif allowed and kind == "frame":
            allowed = self.frames.take()
        elif allowed and kind == "text":
            allowed = self.texts.take()
        now = self.clock()
        if allowed:
            if self._flood_started is not None and now - self._last_drop > self.QUIET_S:
                self._flood_started = None
            return Verdict.ACCEPT
        self.dropped += 1
        quiet = now - self._last_drop > self.QUIET_S
        self._last_drop = now
        if self._flood_started is None or quiet:
            self._flood_started = now
            return Verdict.DROP_AND_WARN
        if now - self._flood_started >= self.limits.flood_close_s:
            return Verdict.CLOSE
        return Verdict.DROP


class MalformedBudget:
    """Counts a connection's malformed messages over the last minute."""

    WINDOW_S = 60.0

    def __init__(self, per_min: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_min = per_min
        self.clock = clock
        self._times: deque[float] = deque(maxlen=max(per_min, 0) + 1)

    def spend(self) -> bool:
        """Count one malformed message; True once more than ``per_min`` came within a minute."""
        if self.per_min <= 0:
            return False
        now = self.clock()
        self._times.append(now)
        return len(self._times) == self._times.maxlen and now - self._times[0] < self.WINDOW_S
