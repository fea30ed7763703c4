"""The share WebSocket: authenticate, parse, dispatch, close codes. Nothing else."""

import logging

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from sessions_app import protocol
from sessions_app.conversation import Conversation
from sessions_app.live.relay import UpstreamUnavailable
from sessions_app.models import LiveSession
from sessions_app.protocol import CloseCode, ErrorCode, ProtocolError

logger = logging.getLogger(__name__)


def limits_from_settings() -> protocol.Limits:
    """What the browser may send, from settings."""
    return protocol.Limits(
        max_message_bytes=settings.SHARE_MAX_MESSAGE_BYTES,
        max_text_chars=settings.SHARE_MAX_TEXT_CHARS,
        voices=tuple(settings.GEMINI_VOICES),
        default_voice=settings.GEMINI_DEFAULT_VOICE,
    )


class ShareConsumer(AsyncWebsocketConsumer):
    """One browser connection; at most one live session at a time."""

    conversation: Conversation | None = None

    async def connect(self) -> None:
        """Accept logged-in, active users only; others get a close code, not a session."""
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CloseCode.UNAUTHENTICATED)
            return
        self.limits = limits_from_settings()
        await self.send_text(
            protocol.encode(
                "hello",
                voices=list(self.limits.voices),
                default_voice=self.limits.default_voice,
                max_message_bytes=self.limits.max_message_bytes,
                offline_demo=not settings.GEMINI_API_KEY,
            )
        )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Parse one message and dispatch it; protocol errors become one error reply."""
        if not getattr(self, "limits", None):
            return  # refused at connect; the close is on its way
        try:
            if bytes_data is not None:
                message = protocol.parse_binary(bytes_data, self.limits)
            else:
                message = protocol.parse_text(text_data or "", self.limits)
            await self.dispatch_message(message)
        except ProtocolError as exc:
            await self.send_text(protocol.encode_error(exc.code, exc.message))

    async def dispatch_message(self, message: protocol.ClientMessage) -> None:
        """Route a parsed message to the live session."""
        match message:
            case protocol.Start():
                await self.start_session(message)
            case protocol.Stop():
                await self.end_session(LiveSession.EndReason.CLIENT_STOP)
            case protocol.AudioChunk():
                await self._live().audio(message)
            case protocol.Frame():
                await self._live().frame(message)
            case protocol.TypedText():
                await self._live().text(message)

    async def start_session(self, start: protocol.Start) -> None:
        """Open a live session, unless one is already running."""
        if self.conversation is not None and not self.conversation.ended:
            raise ProtocolError(ErrorCode.ALREADY_STARTED, "A live session is already running.")
        try:
            self.conversation = await Conversation.start(
                user=self.scope["user"],
                start=start,
                user_agent=self._header("user-agent"),
                browser=self,
            )
        except UpstreamUnavailable as exc:
            logger.warning("Could not open a Gemini Live session: %s", exc)
            await self.send_text(protocol.encode_error(ErrorCode.UPSTREAM_UNAVAILABLE, str(exc)))
            await self.close(code=CloseCode.UPSTREAM_FAILED)

    async def end_session(self, reason: str, *, notify: bool = True) -> None:
        """End the live session, if any."""
        if self.conversation is None or self.conversation.ended:
            raise ProtocolError(ErrorCode.NOT_STARTED, "No live session to stop.")
        await self.conversation.end(status=LiveSession.Status.ENDED, reason=reason, notify=notify)

    async def disconnect(self, code: int) -> None:
        """The browser left: finish the session and store what is left."""
        if self.conversation is not None:
            await self.conversation.end(
                status=LiveSession.Status.ENDED,
                reason=LiveSession.EndReason.CLIENT_DISCONNECT,
                notify=False,
            )

    # Browser interface used by Conversation.

    async def send_text(self, text: str) -> None:
        """Send a JSON control message."""
        await self.send(text_data=text)

    async def send_media(self, data: bytes) -> None:
        """Send a binary media frame."""
        await self.send(bytes_data=data)

    async def upstream_lost(self) -> None:
        """The model connection broke: close with the documented code."""
        await self.close(code=CloseCode.UPSTREAM_FAILED)

    def _live(self) -> Conversation:
        """The running conversation, or a not_started error."""
        if self.conversation is None or self.conversation.ended:
            raise ProtocolError(ErrorCode.NOT_STARTED, "Start a live session first.")
        return self.conversation

    def _header(self, name: str) -> str:
        """A request header of the handshake, decoded leniently."""
        wanted = name.encode()
        for key, value in self.scope.get("headers", ()):
            if key == wanted:
                return value.decode("latin-1")
        return ""
