"""One live session: the upstream relay, the recorder, and what the browser is told."""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError
from google.genai import types

from sessions_app import protocol, services
from sessions_app.events_log import log_event
from sessions_app.live import events
from sessions_app.live.client import (
    Endpoint,
    build_client,
    build_connect_config,
    endpoint_from_settings,
    resilience_from_settings,
)
from sessions_app.live.relay import LiveRelay, UpstreamUnavailable, cancel_and_wait
from sessions_app.models import LiveSession, TranscriptEntry
from sessions_app.recorder import SessionRecorder
from sessions_app.tools import ToolRunner

logger = logging.getLogger(__name__)

Status = LiveSession.Status
EndReason = LiveSession.EndReason
Role = TranscriptEntry.Role
Source = TranscriptEntry.Source

OUTPUT_BYTES_PER_SECOND = 48000  # PCM16 mono 24 kHz


@dataclass(frozen=True)
class SessionLimits:
    """Per-session limits; 0 turns one off."""

    max_session_s: float
    idle_timeout_s: float
    max_per_user: int
    max_per_worker: int
    heartbeat_s: float
    stale_after_s: float


def session_limits_from_settings() -> SessionLimits:
    """The configured limits."""
    return SessionLimits(
        max_session_s=settings.SHARE_MAX_SESSION_S,
        idle_timeout_s=settings.SHARE_IDLE_TIMEOUT_S,
        max_per_user=settings.SHARE_MAX_SESSIONS_PER_USER,
        max_per_worker=settings.SHARE_MAX_SESSIONS_PER_WORKER,
        heartbeat_s=settings.SHARE_HEARTBEAT_S,
        stale_after_s=settings.SHARE_STALE_AFTER_S,
    )


class Browser(Protocol):
    """What a conversation needs from the browser connection."""

    async def send_text(self, text: str) -> None:
        """Send a JSON control message."""

    async def send_media(self, data: bytes) -> None:
        """Send a binary media frame."""

    async def session_ended(self, session_id: uuid.UUID, close_code: int | None) -> None:
        """The session is over; close the socket with ``close_code`` if one is given."""


# The conversations live in this process, for the per-worker limit and for shutdown.
_live: set["Conversation"] = set()


def live_conversations() -> list["Conversation"]:
    """The conversations this process holds now."""
    return list(_live)


class Conversation:
    """Relays one session and records it."""

    def __init__(self, *, session: LiveSession, browser: Browser, limits: SessionLimits) -> None:
        self.session_id = session.id
        self.user_id = session.user_id
        self.browser = browser
        self.limits = limits
        self.recorder = SessionRecorder(session.id)
        self.relay: LiveRelay | None = None
        self.tools = ToolRunner(
            session_id=session.id,
            user_id=session.user_id,
            respond=self._tool_response,
            show=browser.send_text,
        )
        self._ended = False
        loop = asyncio.get_running_loop()
        self._started_at = self._active_at = loop.time()
        self._watchdog: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, *, user: AbstractBaseUser, start: protocol.Start, user_agent: str, browser: Browser
    ) -> "Conversation":
        """Create the session row and connect upstream.

        Raises SessionRefused past a limit and UpstreamUnavailable if the model cannot
        be reached; both are stored on the session row.
        """
        limits = session_limits_from_settings()
        refuse = None
        if limits.max_per_worker and len(_live) >= limits.max_per_worker:
            refuse = services.SessionRefused(
                EndReason.WORKER_LIMIT,
                "This server is at capacity right now. Try again in a minute.",
            )
        endpoint = await asyncio.to_thread(endpoint_from_settings)
        session = await database_sync_to_async(services.live_session_create)(
            user=user,
            model=settings.GEMINI_MODEL,
            modality=start.modality,
            voice=start.voice,
            user_agent=user_agent,
            max_per_user=limits.max_per_user,
            stale_after_s=limits.stale_after_s,
            refuse=refuse,
        )
        conversation = cls(session=session, browser=browser, limits=limits)
        _live.add(conversation)
        try:
            await conversation._open(start, endpoint)
        except BaseException:
            _live.discard(conversation)
            raise
        return conversation

    async def _open(self, start: protocol.Start, endpoint: Endpoint) -> None:
        """Connect upstream and start the watchdog."""
        await self.browser.send_text(
            protocol.encode("status", state="connecting", session_id=str(self.session_id))
        )
        relay = LiveRelay(
            client=build_client(endpoint),
            model=settings.GEMINI_MODEL,
            config=build_connect_config(modality=start.modality, voice=start.voice),
            on_event=self.on_event,
            connect_timeout=settings.GEMINI_CONNECT_TIMEOUT_S,
            resilience=resilience_from_settings(),
        )
        try:
            await relay.open()
        except UpstreamUnavailable as exc:
            log_event(
                "session_error", session_id=self.session_id, user_id=self.user_id,
                reason=EndReason.UPSTREAM_UNAVAILABLE, error=str(exc), level=logging.WARNING,
            )  # fmt: skip
            await self.recorder.finish(
                status=Status.FAILED, end_reason=EndReason.UPSTREAM_UNAVAILABLE
            )
            raise
        self.relay = relay
        self._watchdog = asyncio.create_task(self._watch(), name="session-watchdog")
        log_event(
            "session_start", session_id=self.session_id, user_id=self.user_id,
            modality=start.modality,
        )  # fmt: skip
        await self.browser.send_text(
            protocol.encode(
                "status",
                state="live",
                session_id=str(self.session_id),
                mode=start.modality.lower(),
                voice=start.voice,
                model=settings.GEMINI_MODEL,
                offline_demo=endpoint.offline_demo,
            )
        )

    async def audio(self, chunk: protocol.AudioChunk) -> None:
        """Relay microphone audio."""
        self._touch()
        self.recorder.counters.audio_seconds_in += chunk.seconds
        await self._relay().send_audio(chunk.pcm)

    async def frame(self, frame: protocol.Frame) -> None:
        """Relay a screen frame."""
        self._touch()
        self.recorder.counters.frames_received += 1
        await self._relay().send_frame(frame.data, frame.mime_type)

    async def text(self, message: protocol.TypedText) -> None:
        """Record and relay a typed message."""
        self._touch()
        line = self.recorder.typed(message.text)
        await self.browser.send_text(
            protocol.encode(
                "transcript", role=line.role, source=line.source, text=line.text, final=True
            )
        )
        await self._relay().send_text(message.text)

    async def end(
        self,
        *,
        status: str,
        reason: str,
        notify: bool = True,
        message: str = "",
        close_code: int | None = None,
    ) -> None:
        """Close upstream, store the rest of the transcript and mark the session finished."""
        if self._ended:
            return
        self._ended = True
        _live.discard(self)
        watchdog = self._watchdog
        if watchdog is not None and watchdog is not asyncio.current_task():
            await cancel_and_wait(watchdog)
        await self.tools.close()
        if self.relay is not None:
            await self.relay.close()
        await self.recorder.finish(status=status, end_reason=reason)
        log_event(
            "session_end", session_id=self.session_id, user_id=self.user_id, status=status,
            reason=reason, resumptions=self.recorder.counters.resumptions,
        )  # fmt: skip
        if notify:
            fields = {"message": message} if message else {}
            with contextlib.suppress(Exception):  # the browser may already be gone
                await self.browser.send_text(
                    protocol.encode(
                        "status",
                        state="ended",
                        session_id=str(self.session_id),
                        reason=reason,
                        **fields,
                    )
                )
        await self.browser.session_ended(self.session_id, close_code)

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
            case events.ToolCall(calls=calls):
                for call in calls:
                    self.tools.start(call)
            case events.ToolCallCancellation(ids=ids):
                self._cancel_tool_calls(ids)
            case events.UpstreamClosed(error=error):
                await self._upstream_closed(error)
            case events.Reconnecting(error=error):
                await self._reconnecting(error)
            case events.Resumed(how=how):
                await self._resumed(how)
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
        counters.add_usage(
            prompt=usage.prompt_tokens,
            response=usage.response_tokens,
            total=usage.total_tokens,
            prompt_by_modality=usage.prompt_by_modality,
            response_by_modality=usage.response_by_modality,
        )
        await self.browser.send_text(
            protocol.encode(
                "usage",
                prompt_tokens=counters.prompt_tokens,
                response_tokens=counters.response_tokens,
                total_tokens=counters.total_tokens,
                prompt_tokens_by_modality=counters.prompt_tokens_by_modality,
                response_tokens_by_modality=counters.response_tokens_by_modality,
            )
        )

    async def _tool_response(self, response: types.FunctionResponse) -> None:
        """Send a tool call's response upstream, through the relay's queue."""
        await self._relay().send_tool_response([response])

    def _cancel_tool_calls(self, ids: Sequence[str]) -> None:
        """The model withdrew tool calls: stop those still running, answer none of them."""
        cancelled = self.tools.cancel(ids)
        log_event(
            "tool_calls_cancelled", session_id=self.session_id, user_id=self.user_id,
            asked=len(ids), running=len(cancelled),
        )  # fmt: skip

    async def _reconnecting(self, error: str | None) -> None:
        """The model connection was lost: end the turn it cut off and say we resume."""
        log_event(
            "session_reconnecting", session_id=self.session_id, user_id=self.user_id,
            error=error or "closed", level=logging.WARNING,
        )  # fmt: skip
        if self.recorder.turns.pending:
            await self._turn_ended("interrupted")
        await self.browser.send_text(
            protocol.encode("status", state="reconnecting", session_id=str(self.session_id))
        )

    async def _resumed(self, how: str) -> None:
        """The conversation goes on over a new model connection."""
        self.recorder.counters.resumptions += 1
        log_event(
            "session_resumed", session_id=self.session_id, user_id=self.user_id, how=how,
            count=self.recorder.counters.resumptions,
        )  # fmt: skip
        state = "resumed" if how == "reconnect" else "handed_over"
        await self.browser.send_text(
            protocol.encode("status", state=state, session_id=str(self.session_id))
        )

    async def _upstream_closed(self, error: str | None) -> None:
        """The model connection is gone for good: end the session and tell the browser."""
        if error is None:
            await self.end(status=Status.ENDED, reason=EndReason.UPSTREAM_CLOSED)
            return
        log_event(
            "session_error", session_id=self.session_id, user_id=self.user_id, error=error,
            level=logging.WARNING,
        )  # fmt: skip
        await self.browser.send_text(
            protocol.encode_error(protocol.ErrorCode.UPSTREAM_ERROR, error)
        )
        await self.end(
            status=Status.FAILED,
            reason=EndReason.UPSTREAM_ERROR,
            close_code=protocol.CloseCode.UPSTREAM_FAILED,
        )

    def _touch(self) -> None:
        """The browser sent media or text: the session is not idle."""
        self._active_at = asyncio.get_running_loop().time()

    async def _watch(self) -> None:
        """Stamp the heartbeat and end the session at its duration or idle limit."""
        limits = self.limits
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + limits.heartbeat_s
        while True:
            deadlines = [next_beat]
            if limits.max_session_s:
                deadlines.append(self._started_at + limits.max_session_s)
            if limits.idle_timeout_s:
                deadlines.append(self._active_at + limits.idle_timeout_s)
            await asyncio.sleep(max(0.0, min(deadlines) - loop.time()))
            now = loop.time()
            if limits.max_session_s and now >= self._started_at + limits.max_session_s:
                minutes = limits.max_session_s / 60
                await self.end(
                    status=Status.ENDED,
                    reason=EndReason.DURATION_LIMIT,
                    message=f"The session reached its maximum length of {minutes:g} minutes.",
                )
                return
            if limits.idle_timeout_s and now >= self._active_at + limits.idle_timeout_s:
                await self.end(
                    status=Status.ENDED,
                    reason=EndReason.IDLE_TIMEOUT,
                    message=(
                        f"The session ended after {limits.idle_timeout_s:g} seconds"
                        " without screen, audio or text."
                    ),
                )
                return
            if now >= next_beat:
                next_beat = now + limits.heartbeat_s
                with contextlib.suppress(DatabaseError):
                    await database_sync_to_async(services.live_session_heartbeat)(
                        session_id=self.session_id
                    )

    def _relay(self) -> LiveRelay:
        """The open relay."""
        if self.relay is None or self._ended:
            raise protocol.ProtocolError(protocol.ErrorCode.NOT_STARTED, "No live session.")
        return self.relay

    @property
    def ended(self) -> bool:
        """Whether the session has ended."""
        return self._ended
