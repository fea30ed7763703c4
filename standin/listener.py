"""The ears and eyes of the stand-in's synthetic model: utterances, frames and texts.

A simple energy voice-activity detector cuts the user's audio into utterances (ended by
a pause, the end of the stream, activityEnd or the length limit). With automatic activity
detection disabled in the setup (``manual``, push-to-talk) there is no detector: an
utterance is the audio between activityStart and activityEnd, and only activityEnd ends
it (never a pause, the length limit or ``audioStreamEnd``); audio outside an activity is
heard (counted) but starts nothing. activityStart/End sent while automatic detection is
on are taken leniently, as the service's documentation does not say how it refuses them.

Frames count toward the model's context as the session's turn coverage says: with
``TURN_INCLUDES_ONLY_ACTIVITY`` only a frame seen during user activity (an utterance in
progress, between activityStart and activityEnd) or up to ``Behaviour.activity_window_s``
before a user text; with either other coverage every frame.

The same inputs fill the billed context (:class:`standin.billing.Ledger`): every second
of audio (silence, and audio outside an activity, too), every frame that counts (its
tokens as the connection's media resolution says when it arrives), every text. A user
turn (an utterance starting, a user text or ``clientContent`` turn, an activityStart)
starts a new segment of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

from standin import media
from standin.billing import Ledger, frame_tokens
from standin.profiles import AUDIO_ACTIVITY_AND_ALL_VIDEO, ONLY_ACTIVITY
from standin.protocol import now
from standin.records import Behaviour, ModelContext
from standin.setup import SessionConfig

logger = logging.getLogger(__name__)

PITCH_ANALYSIS_S = 2.0  # bounds the pure-Python pitch estimate's cost per utterance
EPSILON = 1e-6


class BehaviourHost(Protocol):
    """Whatever holds the live :class:`Behaviour` (``StandIn``)."""

    behaviour: Behaviour


@dataclass
class Utterance:
    """User speech collected until a pause, the end of the stream or the length limit."""

    rate: int
    pcm: bytearray = field(default_factory=bytearray)
    speech_bytes: int = 0
    seconds: float = 0.0
    silence_s: float = 0.0


class Listener:
    """What the synthetic model heard and saw; ``on_utterance(seconds, pitch)`` per utterance."""

    def __init__(self, host: BehaviourHost) -> None:
        self.coverage = AUDIO_ACTIVITY_AND_ALL_VIDEO
        self.manual = False  # automatic activity detection disabled: activityStart/End only
        self.audio_s = 0.0
        self.frame_count = 0
        self.frame_size: media.Size | None = None
        self.texts: list[str] = []
        self.media_resolution: str | None = None
        self.ledger = Ledger()
        self.on_utterance: Callable[[float, float | None], None] = _ignore
        self._host = host
        self._utterance: Utterance | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._manual_activity = False
        self._idle_frames: list[tuple[float, media.Size | None, int]] = []

    @property
    def active(self) -> bool:
        """Whether the user is active now: speaking, or between activityStart and End."""
        return self._utterance is not None or self._manual_activity

    def configure(self, config: SessionConfig) -> None:
        """Take what an accepted setup says about hearing, seeing and billing."""
        self.coverage, self.manual = config.turn_coverage, config.manual_activity
        self.media_resolution = config.media_resolution
        self.ledger.system_tokens, self.ledger.window = config.system_tokens, config.window

    def context(self, turns_done: int) -> ModelContext:
        """A snapshot of what the model knows, for a resumption handle."""
        return ModelContext(
            turns_done=turns_done, audio_s=self.audio_s, frame_count=self.frame_count,
            frame_size=self.frame_size, texts=tuple(self.texts),
            segments=tuple(self.ledger.segments),
        )  # fmt: skip

    def restore(self, context: ModelContext) -> None:
        """Continue from a snapshot taken on an earlier connection."""
        self.audio_s, self.frame_count = context.audio_s, context.frame_count
        self.frame_size, self.texts = context.frame_size, list(context.texts)
        self.ledger.segments = list(context.segments)

    def summary(self) -> str:
        """What the model has received so far, as the replies state it."""
        frames = "no frames"
        if self.frame_count:
            size = "x".join(map(str, self.frame_size)) if self.frame_size else "unknown size"
            frames = f"{self.frame_count} frames (latest {size})"
        return f"So far I have received {frames} and {self.audio_s:.1f} s of audio."

    def see_frame(self, data: bytes, *, explicit: bool = False) -> bool:
        """A frame (``explicit``: part of a client turn); whether it counts toward the context."""
        size, tokens = media.image_dimensions(data), frame_tokens(self.media_resolution)
        if explicit or self.coverage != ONLY_ACTIVITY or self.active:
            self._count_frame(size, tokens)
            return True
        at, window = now(), self._host.behaviour.activity_window_s
        self._idle_frames = [item for item in self._idle_frames if item[0] >= at - window]
        self._idle_frames.append((at, size, tokens))
        return False

    def begin_user_turn(self) -> None:
        """A user turn starts (a user ``clientContent`` turn): a new segment of the context."""
        self.ledger.begin_turn()

    def hear_text(self, text: str, *, new_turn: bool = True) -> None:
        """A user text (``new_turn``: it starts a user turn); activity for the frames before it."""
        if new_turn:
            self.ledger.begin_turn()
        window = self._host.behaviour.activity_window_s
        since = now() - window
        for seen_at, size, tokens in self._idle_frames:
            if window > 0 and seen_at >= since:
                self._count_frame(size, tokens)
        self._idle_frames.clear()
        self.texts.append(text)
        self.ledger.add_text(text)

    def hear_history(self, text: str) -> None:
        """Seeded history in a role other than the user's: context only."""
        self.ledger.add_text(text)

    def hear_audio(self, mime: str, data: bytes) -> bool:
        """Count a chunk and run the voice-activity detector; True if it starts an utterance."""
        rate = media.sample_rate(mime)
        seconds = media.pcm16_duration(data, rate)
        self.audio_s += seconds
        started = self._detect(rate, data, seconds)
        if started and not self.manual:
            self.ledger.begin_turn()
        self.ledger.add_audio(Fraction(len(data) // 2, rate))
        return started

    def _detect(self, rate: int, data: bytes, seconds: float) -> bool:
        """The voice-activity detector, over one chunk; True if it starts an utterance."""
        behaviour = self._host.behaviour
        if not behaviour.analyse_audio:
            return False
        loud = media.pcm16_rms(data) >= behaviour.silence_rms
        if self.manual:
            return self._hear_in_activity(rate, data, seconds, loud=loud)
        utterance, started = self._utterance, False
        if utterance is None:
            if not loud:
                return False
            utterance = self._utterance = Utterance(rate)
            started = True
        utterance.pcm += data
        utterance.seconds += seconds
        if loud:
            utterance.speech_bytes, utterance.silence_s = len(utterance.pcm), 0.0
            self._arm_timer(behaviour.speech_gap_s)
        else:
            utterance.silence_s += seconds
        if (
            utterance.silence_s >= behaviour.speech_gap_s - EPSILON
            or utterance.seconds >= behaviour.max_utterance_s - EPSILON
        ):
            self.end_utterance()
        return started

    def _hear_in_activity(self, rate: int, data: bytes, seconds: float, *, loud: bool) -> bool:
        """Manual activity: audio joins the utterance only between activityStart and End."""
        if not self._manual_activity:
            return False
        utterance, started = self._utterance, False
        if utterance is None:
            utterance = self._utterance = Utterance(rate)
            started = True
        utterance.pcm += data
        utterance.seconds += seconds
        if loud:
            utterance.speech_bytes = len(utterance.pcm)
        return started

    def audio_stream_end(self) -> None:
        """The client's microphone stopped: ends the utterance, unless activity is manual."""
        if not self.manual:
            self.end_utterance()

    def activity_start(self) -> None:
        """The client says the user started speaking (manual activity detection)."""
        self._manual_activity = True
        self.ledger.begin_turn()

    def activity_end(self) -> None:
        """The client says the user stopped: the utterance ends."""
        self._manual_activity = False
        self.end_utterance()

    def end_utterance(self) -> None:
        """End the utterance in progress, if any, and report what it held."""
        self.stop()
        utterance, self._utterance = self._utterance, None
        if utterance is None:
            return
        speech = bytes(utterance.pcm[: utterance.speech_bytes])
        heard = media.pcm16_duration(speech, utterance.rate)
        analysed = speech[: 2 * round(PITCH_ANALYSIS_S * utterance.rate)]
        self.on_utterance(heard, media.dominant_frequency(analysed, utterance.rate))

    def stop(self) -> None:
        """Cancel the end-of-utterance timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _count_frame(self, size: media.Size | None, tokens: int) -> None:
        """One more frame in the model's context, billed ``tokens``."""
        self.frame_count += 1
        self.frame_size = size
        self.ledger.add_image(tokens)

    def _arm_timer(self, delay: float) -> None:
        """End the utterance if no speech arrives within ``delay`` seconds."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self.end_utterance)


def _ignore(heard: float, frequency: float | None) -> None:
    """An utterance nobody answers."""
