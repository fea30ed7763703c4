"""The share WebSocket: authenticate, parse, dispatch.

Whatever the browser is refused is a :class:`~sessions_app.protocol.ClientError`, raised
anywhere and answered in one place (:meth:`ShareConsumer.refuse`): one ``error`` reply,
then the end of the session or the close that the error calls for. How a session ends
follows from its end reason alone (:mod:`sessions_app.session.endings`).

An exception that escapes a handler never ends the consumer with the session still live:
:meth:`ShareConsumer.dispatch` ends the session as failed (``internal_error``), tells the
browser and closes the socket with 1011.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, cast

from asgiref.typing import WebSocketReceiveEvent
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib.auth.models import User
from django.utils import translation
from django.utils.translation import gettext, gettext_noop

from sessions_app import control, metrics, protocol
from sessions_app.events_log import log_event
from sessions_app.languages import connection_language
from sessions_app.live.observe import received_at
from sessions_app.models import LiveSession
from sessions_app.outbound import Hello, encode, error
from sessions_app.protocol import ClientError, CloseCode, ErrorCode, ProtocolError
from sessions_app.ratelimit import ConnectionLimiter, MalformedBudget, Verdict
from sessions_app.services import SessionRefused
from sessions_app.session.conversation import Conversation, SessionFailed
from sessions_app.session.endings import (
    ADMIN_END_MESSAGE,
    INTERNAL_ERROR_MESSAGE,
    ending,
)
from sessions_app.share_config import ShareConfig

EndReason = LiveSession.EndReason
REFUSAL_CODES: dict[str, ErrorCode] = {
    EndReason.USER_LIMIT: ErrorCode.TOO_MANY_SESSIONS,
    EndReason.WORKER_LIMIT: ErrorCode.SERVER_BUSY,
    EndReason.BUDGET_EXHAUSTED: ErrorCode.BUDGET_EXHAUSTED,
}

logger = logging.getLogger(__name__)


METRIC_KINDS = {protocol.AudioChunk: "audio", protocol.Frame: "frame", protocol.TypedText: "text"}
RATE_NAMES = {
    protocol.AudioChunk: gettext_noop("audio chunks"),
    protocol.Frame: gettext_noop("screen frames"),
    protocol.TypedText: gettext_noop("text messages"),
}


class ShareConsumer(AsyncWebsocketConsumer):
    """One browser connection; at most one live session at a time."""

    conversation: Conversation | None = None
    group: str | None = None
    limits: protocol.Limits | None = None
    link: control.LayerLink | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Run the consumer; when the server shuts down, end the live session cleanly.

        Daphne cancels every application on SIGTERM and waits for it to finish, so this
        is where the transcript is flushed and the session marked "server shutdown".
        Whatever ends the consumer also stops a channel-layer recovery still running.
        The connection's language (the switcher's cookie, else Accept-Language) is active
        throughout, so errors and status messages reach the browser in the user's language.
        """
        with translation.override(connection_language(scope)):
            await self._run(scope, receive, send)

    async def _run(self, scope: Any, receive: Any, send: Any) -> None:
        """The consumer's loop; on cancellation, the live session ends as server shutdown."""
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            conversation = self.conversation
            task = asyncio.current_task()
            if conversation is not None and not conversation.ended and task is not None:
                task.uncancel()  # let the clean-up await; the cancellation is re-raised
                logger.info("Server shutdown: ending session %s", conversation.session_id)
                await conversation.end(EndReason.SERVER_SHUTDOWN)
            raise
        finally:
            if self.link is not None:
                self.link.close()

    @property
    def channel_receive(self) -> Any:
        """The channel-layer receive that Channels' consumer loop awaits beside the socket's.

        It is the link's (:class:`~sessions_app.control.LayerLink`): a Redis restart or
        outage is waited out and the session's group re-joined, instead of the layer's
        ConnectionError escaping the loop and killing the live session with it.
        """
        return self.link.receive if self.link is not None else None

    @channel_receive.setter
    def channel_receive(self, layer_receive: Any) -> None:
        """AsyncConsumer.__call__ sets the layer's plain receive here: link the channel."""
        self.link = control.LayerLink(self.channel_layer, self.channel_name)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Dispatch a message; media frames skip Channels' per-message connection clean-up.

        AsyncConsumer.dispatch runs ``close_old_connections`` through the single
        thread-sensitive sync thread before every handler. For a socket carrying ten audio
        chunks and a frame a second, that queued each one behind every database write of
        every session on the worker (hundreds of ms at 50 sessions, docs/benchmarks.md).
        This consumer touches the database only through ``database_sync_to_async``, which
        closes old connections around each call itself, so nothing is lost by skipping it.

        Any other exception a handler raises is logged and ends the session properly.
        """
        try:
            if message["type"] == "websocket.receive":
                if metrics.enabled():  # the relay times the message from here
                    received_at.set(time.perf_counter())
                await self.websocket_receive(cast("WebSocketReceiveEvent", message))
            else:
                await super().dispatch(message)
        except StopConsumer:
            raise
        except Exception:
            logger.exception("Share socket: handling %s failed", message.get("type"))
            await self.fail()

    async def fail(self) -> None:
        """End the live session (if any) as failed, tell the browser, close with 1011."""
        with contextlib.suppress(Exception):  # the socket may be what failed
            await self.refuse(
                ClientError(
                    ErrorCode.INTERNAL_ERROR,
                    INTERNAL_ERROR_MESSAGE,
                    end_reason=EndReason.INTERNAL_ERROR,
                )
            )

    def _user(self) -> User:
        """The connection's user: connect() let only a logged-in, active one stay."""
        return cast(User, self.scope["user"])

    async def connect(self) -> None:
        """Accept logged-in, active users only; others get a close code, not a session."""
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CloseCode.UNAUTHENTICATED)
            return
        self.config = config = ShareConfig.from_settings()
        self.limits = limits = config.messages
        rate_limits = config.rates
        self.limiter = ConnectionLimiter(rate_limits)
        self.malformed = MalformedBudget(rate_limits.malformed_per_min)
        await self.send_text(
            encode(
                Hello(
                    voices=list(limits.voices),
                    default_voice=limits.default_voice,
                    max_message_bytes=limits.max_message_bytes,
                    offline_demo=config.offline_demo,
                )
            )
        )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Parse one message and dispatch it; whatever is refused gets one error reply."""
        limits = self.limits
        if not limits:
            return  # refused at connect, or closing: nothing more is read
        try:
            message: protocol.ClientMessage
            if bytes_data is not None:
                message = protocol.parse_binary(bytes_data, limits)
            else:
                message = protocol.parse_text(text_data or "", limits)
            if await self.within_rate(message):
                await self.dispatch_message(message)
        except ClientError as exc:
            await self.refuse(exc)

    async def refuse(self, exc: ClientError) -> None:
        """The one place a refusal is answered: one error reply, then the end or close it asks.

        Replies to unreadable messages count against the rate limits, and too many
        malformed ones (too_large aside: the page sends one when frames are set larger
        than the server takes) end the session as ``protocol_error``.
        """
        if exc.code in protocol.PARSE_CODES:
            try:
                if not await self.within_rate(None):
                    return
            except ClientError as flood:
                exc = flood
        await self.send_text(encode(error(exc.code, exc.message, **exc.details)))
        end_reason = exc.end_reason
        if exc.code in protocol.MALFORMED_CODES and self.malformed.spend():
            log_event(
                "malformed_closed", session_id=self._session_id(),
                user_id=self._user().pk, last_code=exc.code,
                per_min=self.malformed.per_min, level=logging.WARNING,
            )  # fmt: skip
            end_reason = EndReason.PROTOCOL_ERROR
        if end_reason is not None:
            # The session's last word: the error's own, or the table's for protocol_error.
            said = exc.message if end_reason == exc.end_reason else ""
            await self.end_session(end_reason, message=said)
        elif exc.close_code is not None:
            self.limits = None
            await self.close(code=exc.close_code)

    async def within_rate(self, message: protocol.ClientMessage | None) -> bool:
        """Apply the connection's rate limits; False if the message is dropped.

        A flood that went on past its warning is a ClientError that ends the session.
        """
        match message:
            case protocol.AudioChunk(seconds=seconds):
                verdict = self.limiter.check("audio", seconds)
            case protocol.Frame():
                verdict = self.limiter.check("frame")
            case protocol.TypedText():
                verdict = self.limiter.check("text")
            case protocol.Ack():  # the page sends one every few audio frames: never limited
                return True
            case _:
                verdict = self.limiter.check("other")
        if verdict is Verdict.ACCEPT:
            return True
        metrics.rate_limited(METRIC_KINDS.get(type(message), "other"))  # frames: skipped too
        what = RATE_NAMES.get(type(message), gettext_noop("messages"))
        if verdict is Verdict.CLOSE:
            log_event(
                "flood_closed", session_id=self._session_id(), user_id=self._user().pk,
                kind=what, dropped=self.limiter.dropped, level=logging.WARNING,
            )  # fmt: skip
            raise ClientError(
                ErrorCode.RATE_LIMITED,
                gettext("Closed: the browser kept sending too many %(what)s.")
                % {"what": gettext(what)},
                end_reason=EndReason.RATE_LIMITED,
            )
        if verdict is Verdict.DROP_AND_WARN:
            log_event(
                "rate_limited", session_id=self._session_id(), user_id=self._user().pk,
                kind=what, level=logging.WARNING,
            )  # fmt: skip
            await self.send_text(
                encode(
                    error(
                        ErrorCode.RATE_LIMITED,
                        gettext(
                            "Too many %(what)s: they are being dropped. Slow down or the"
                            " connection will be closed."
                        )
                        % {"what": gettext(what)},
                    )
                )
            )
        return False

    async def dispatch_message(self, message: protocol.ClientMessage) -> None:
        """Route a parsed message to the live session."""
        match message:
            case protocol.Start():
                await self.start_session(message)
            case protocol.Stop():
                if self.conversation is None or self.conversation.ended:
                    raise ProtocolError(ErrorCode.NOT_STARTED, gettext("No live session to stop."))
                await self.end_session(EndReason.CLIENT_STOP)
            case protocol.AudioEnd():
                await self._live().audio_end()
            case protocol.ActivityStart():
                await self._live().activity_start()
            case protocol.ActivityEnd():
                await self._live().activity_end()
            case protocol.AudioChunk():
                await self._live().audio(message)
            case protocol.Frame():
                if self.conversation is None or self.conversation.ended:
                    metrics.frame(sent=False)  # refused below: no session to take it
                await self._live().frame(message)
            case protocol.TypedText():
                await self._live().text(message)
            case protocol.Ack():  # stale after the session ended: nothing to acknowledge
                if self.conversation is not None and not self.conversation.ended:
                    await self.conversation.ack(message)

    async def start_session(self, start: protocol.Start) -> None:
        """Open a live session, unless one is already running."""
        if self.conversation is not None and not self.conversation.ended:
            raise ProtocolError(ErrorCode.ALREADY_STARTED, "A live session is already running.")
        try:
            self.conversation = await Conversation.start(
                user=self._user(),
                start=start,
                user_agent=self._header("user-agent"),
                browser=self,
                limits=self.config.sessions,
            )
        except SessionRefused as exc:
            metrics.session_ended(exc.end_reason, was_live=False)
            log_event(
                "session_refused", session_id=exc.session_id, user_id=self._user().pk,
                reason=exc.end_reason,
            )  # fmt: skip
            raise ClientError(REFUSAL_CODES[exc.end_reason], exc.message) from exc
        except SessionFailed as exc:  # stored and logged as session_error, with the ids
            failure = exc.failure
            raise ClientError(
                failure.error_code,
                failure.message,
                close_code=ending(exc.end_reason).close_code,
                details=failure.details(),
            ) from exc
        self.group = control.session_group(self.conversation.session_id)
        if self.link is not None:  # with the layer away, joined once it is back
            await self.link.join(self.group)

    async def end_session(self, reason: str, *, message: str = "") -> None:
        """End the live session for ``reason``; with none, close the socket as it says."""
        conversation = self.conversation
        if ending(reason).close_code is not None:
            self.limits = None  # the socket closes: nothing more is read from it
        if conversation is not None and not conversation.ended:
            await conversation.end(reason, message=message)  # closes the socket if it must
            return
        close_code = ending(reason).close_code
        if close_code is not None:
            await self.close(code=close_code)

    async def disconnect(self, code: int) -> None:
        """The browser left: finish the session and store what is left."""
        await self.end_session(EndReason.CLIENT_DISCONNECT)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the socket; Daphne (autobahn) refuses anything but a plain int as the code."""
        await super().close(code=None if code is None else int(code), reason=reason)

    # Browser interface used by Conversation.

    async def send_text(self, text: str) -> None:
        """Send a JSON control message."""
        await self.send(text_data=text)

    async def send_media(self, data: bytes) -> None:
        """Send a binary media frame."""
        await self.send(bytes_data=data)

    async def session_ended(self, session_id: uuid.UUID, close_code: int | None) -> None:
        """Leave the session's group; close the socket if the session failed."""
        self.group = None
        if self.link is not None:
            with contextlib.suppress(Exception):  # the layer may be unreachable
                await self.link.leave()
        if close_code is not None:
            await self.close(code=close_code)

    # Channel-layer messages.

    async def session_end(self, event: dict[str, Any]) -> None:
        """Another worker (an admin action) asks to end this socket's live session."""
        conversation = self.conversation
        if conversation is None or conversation.ended:
            return
        if event.get("session_id") != str(conversation.session_id):
            return
        reason = event.get("reason")
        if reason not in EndReason.values:
            reason = EndReason.ADMIN_ENDED
        log_event(
            "session_end_received", session_id=conversation.session_id,
            user_id=conversation.user_id, reason=reason,
        )  # fmt: skip
        await self.end_session(reason, message=event.get("message") or ADMIN_END_MESSAGE)

    def _live(self) -> Conversation:
        """The running conversation, or a not_started error."""
        if self.conversation is None or self.conversation.ended:
            raise ProtocolError(ErrorCode.NOT_STARTED, gettext("Start a live session first."))
        return self.conversation

    def _session_id(self) -> str | None:
        """The id of the socket's current session, if any."""
        return str(self.conversation.session_id) if self.conversation is not None else None

    def _header(self, name: str) -> str:
        """A request header of the handshake, decoded leniently."""
        wanted = name.encode()
        for key, value in self.scope.get("headers", ()):
            if key == wanted:
                return value.decode("latin-1")
        return ""
