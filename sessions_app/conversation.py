"""One live session: the upstream relay, the recorder, and what the browser is told."""

import asyncio
import logging
from typing import Protocol

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from sessions_app import protocol, services
from sessions_app.live import events
from sessions_app.live.client import build_client, build_connect_config, endpoint_from_settings
from sessions_app.live.relay import LiveRelay, UpstreamUnavailable
from sessions_app.models import LiveSession, TranscriptEntry
from sessions_app.recorder import SessionRecorder

logger = logging.getLogger(__name__)

Status = LiveSession.Status
EndReason = LiveSession.EndReason
Role = TranscriptEntry.Role
Source = TranscriptEntry.Source

OUTPUT_BYTES_PER_SECOND = 48000  # PCM16 mono 24 kHz


class Browser(Protocol):
    """What a conversation needs from the browser connection."""

    async def send_text(self, text: str) -> None:
        """Send a JSON control message."""

    async def send_media(self, data: bytes) -> None:
        """Send a binary media frame."""

    async def upstream_lost(self) -> None:
        """The session failed because the model connection broke."""


class Conversation:
    """Relays one session and records it."""

    def __init__(self, *, session: LiveSession, browser: Browser) -> None:
        self.session_id = session.id
        self.browser = browser
        self.recorder = SessionRecorder(session.id)
        self.relay: LiveRelay | None = None
        self._ended = False

    @classmethod
    async def start(
        cls, *, user: AbstractBaseUser, start: protocol.Start, user_agent: str, browser: Browser
    ) -> "Conversation":
        """Create the session row and connect upstream; raises UpstreamUnavailable."""
        endpoint = await asyncio.to_thread(endpoint_from_settings)
        session = await database_sync_to_async(services.live_session_create)(
            user=user,
            model=settings.GEMINI_MODEL,
            modality=start.modality,
            voice=start.voice,
            user_agent=user_agent,
        )
        conversation = cls(session=session, browser=browser)
        await browser.send_text(
            protocol.encode("status", state="connecting", session_id=str(session.id))
        )
        relay = LiveRelay(
            client=build_client(endpoint),
            model=settings.GEMINI_MODEL,
            config=build_connect_config(modality=start.modality, voice=start.voice),
            on_event=conversation.on_event,
            connect_timeout=settings.GEMINI_CONNECT_TIMEOUT_S,
        )
        try:
            await relay.open()
        except UpstreamUnavailable:
            await conversation.recorder.finish(
                status=Status.FAILED, end_reason=EndReason.UPSTREAM_UNAVAILABLE
            )
            raise
        conversation.relay = relay
        logger.info("Session %s live (user %s, %s)", session.id, user.pk, start.modality)
        await browser.send_text(
            protocol.encode(
                "status",
                state="live",
                session_id=str(session.id),
                mode=start.modality.lower(),
                voice=start.voice,
                model=settings.GEMINI_MODEL,
                offline_demo=endpoint.offline_demo,
            )
        )
        return conversation

    async def audio(self, chunk: protocol.AudioChunk) -> None:
        """Relay microphone audio."""
        self.recorder.counters.audio_seconds_in += chunk.seconds
        await self._relay().send_audio(chunk.pcm)

    async def frame(self, frame: protocol.Frame) -> None:
        """Relay a screen frame."""
        self.recorder.counters.frames_received += 1
        await self._relay().send_frame(frame.data, frame.mime_type)

    async def text(self, message: protocol.TypedText) -> None:
        """Record and relay a typed message."""
        line = self.recorder.typed(message.text)
        await self.browser.send_text(
            protocol.encode(
                "transcript", role=line.role, source=line.source, text=line.text, final=True
            )
        )
        await self._relay().send_text(message.text)

    async def end(self, *, status: str, reason: str, notify: bool = True) -> None:
        """Close upstream, store the rest of the transcript and mark the session finished."""
        if self._ended:
            return
        self._ended = True
        if self.relay is not None:
            await self.relay.close()
        await self.recorder.finish(status=status, end_reason=reason)
        logger.info("Session %s ended: %s (%s)", self.session_id, status, reason)
        if notify:
            await self.browser.send_text(
                protocol.encode(
                    "status", state="ended", session_id=str(self.session_id), reason=reason
                )
            )

    async def on_event(self, event: events.LiveEvent) -> None:
        """Apply one upstream event: record it and tell the browser."""
        match event:
            case events.AudioOut(data=data):
                self.recorder.counters.audio_seconds_out += len(data) / OUTPUT_BYTES_PER_SECOND
                await self.browser.send_media(protocol.encode_audio(data))
            case events.InputTranscript(text=text):
                await self._fragment(Role.USER, Source.SPEECH, text)
            case events.OutputTranscript(text=text):
                await self._fragment(Role.MODEL, Source.SPEECH, text)
            case events.TextOut(text=text):
                await self._fragment(Role.MODEL, Source.TEXT_REPLY, text)
            case events.TurnComplete():
                await self._turn_ended("turn_complete")
            case events.Interrupted():
                await self._turn_ended("interrupted")
            case events.Usage():
                await self._usage(event)
            case events.UpstreamClosed(error=error):
                await self._upstream_closed(error)
            case events.GoAway() | events.ResumptionUpdate():
                logger.debug("Session %s: %s", self.session_id, event)

    async def _fragment(self, role: str, source: str, text: str) -> None:
        """Record a fragment and show it live."""
        turn = self.recorder.turns.turn
        self.recorder.fragment(role=role, source=source, text=text)
        await self.browser.send_text(
            protocol.encode("transcript", role=role, source=source, text=text, turn=turn)
        )

    async def _turn_ended(self, how: str) -> None:
        """Store the turn's lines and tell the browser."""
        turn = self.recorder.turns.turn
        self.recorder.complete_turn()
        await self.browser.send_text(protocol.encode(how, turn=turn))

    async def _usage(self, usage: events.Usage) -> None:
        """Add up token usage and show the session totals."""
        counters = self.recorder.counters
        counters.prompt_tokens += usage.prompt_tokens
        counters.response_tokens += usage.response_tokens
        counters.total_tokens += usage.total_tokens
        await self.browser.send_text(
            protocol.encode(
                "usage",
                prompt_tokens=counters.prompt_tokens,
                response_tokens=counters.response_tokens,
                total_tokens=counters.total_tokens,
            )
        )

    async def _upstream_closed(self, error: str | None) -> None:
        """The model connection is gone: end the session and tell the browser."""
        if error is None:
            await self.end(status=Status.ENDED, reason=EndReason.UPSTREAM_CLOSED)
        else:
            await self.browser.send_text(
                protocol.encode_error(protocol.ErrorCode.UPSTREAM_ERROR, error)
            )
            await self.end(status=Status.FAILED, reason=EndReason.UPSTREAM_ERROR)
            await self.browser.upstream_lost()

    def _relay(self) -> LiveRelay:
        """The open relay."""
        if self.relay is None or self._ended:
            raise protocol.ProtocolError(protocol.ErrorCode.NOT_STARTED, "No live session.")
        return self.relay

    @property
    def ended(self) -> bool:
        """Whether the session has ended."""
        return self._ended
