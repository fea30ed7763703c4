"""The share settings, read once per browser connection into frozen data.

Nothing else in the app reads SHARE_* settings: the consumer builds a :class:`ShareConfig`
when a browser connects and hands each part to whoever needs it.
"""

from dataclasses import dataclass

from django.conf import settings

from sessions_app.languages import default_speech_language
from sessions_app.live.config import LiveConfig
from sessions_app.protocol import Limits
from sessions_app.ratelimit import RateLimits


@dataclass(frozen=True)
class SessionLimits:
    """Per-session limits; 0 turns one off."""

    max_session_s: float
    idle_timeout_s: float
    max_per_user: int
    max_per_worker: int
    heartbeat_s: float
    stale_after_s: float
    # Model speech a browser may leave unacknowledged, and how much more may wait for it.
    downstream_window_s: float = 5.0
    downstream_buffer_s: float = 30.0
    # Transcript lines that may wait in memory while the database is away, and how long
    # the end of a finished session is retried after it (recorder.py).
    max_unsaved_lines: int = 2000
    storage_retry_s: float = 600.0
    # Tokens a user may spend a day, across workers (0: no limit; a user's own figure wins).
    daily_tokens: int = 0


@dataclass(frozen=True)
class ShareConfig:
    """What a browser may send, how fast, and how long its sessions may run."""

    messages: Limits
    rates: RateLimits
    sessions: SessionLimits
    offline_demo: bool

    @classmethod
    def from_settings(cls) -> "ShareConfig":
        """The settings as they are now."""
        return cls(
            messages=Limits(
                max_message_bytes=settings.SHARE_MAX_MESSAGE_BYTES,
                max_text_chars=settings.SHARE_MAX_TEXT_CHARS,
                voices=tuple(settings.GEMINI_VOICES),
                default_voice=settings.GEMINI_DEFAULT_VOICE,
                languages=tuple(settings.GEMINI_SPEECH_LANGUAGES),
                default_language=default_speech_language(),
            ),
            rates=RateLimits(
                audio_rate_factor=settings.SHARE_AUDIO_RATE_FACTOR,
                frames_per_s=settings.SHARE_MAX_FRAMES_PER_S,
                texts_per_min=settings.SHARE_MAX_TEXTS_PER_MIN,
                flood_close_s=settings.SHARE_FLOOD_CLOSE_S,
                malformed_per_min=settings.SHARE_MAX_MALFORMED_PER_MIN,
            ),
            sessions=SessionLimits(
                max_session_s=settings.SHARE_MAX_SESSION_S,
                idle_timeout_s=settings.SHARE_IDLE_TIMEOUT_S,
                max_per_user=settings.SHARE_MAX_SESSIONS_PER_USER,
                max_per_worker=settings.SHARE_MAX_SESSIONS_PER_WORKER,
                heartbeat_s=settings.SHARE_HEARTBEAT_S,
                stale_after_s=settings.SHARE_STALE_AFTER_S,
                max_unsaved_lines=settings.SHARE_UNSAVED_LINES_MAX,
                storage_retry_s=settings.SHARE_STORAGE_RETRY_S,
                downstream_window_s=settings.SHARE_DOWNSTREAM_WINDOW_S,
                downstream_buffer_s=settings.SHARE_DOWNSTREAM_BUFFER_S,
                daily_tokens=settings.SHARE_DAILY_TOKENS_PER_USER,
            ),
            offline_demo=LiveConfig.from_settings().offline_demo,
        )
